"""The MEDS on-disk format: schemas, writing, and validation with errors that say where.

A MEDS dataset is ``data/<split>/*.parquet`` or flat ``data/*.parquet`` shards (splits then
from ``metadata/subject_splits.parquet``): ``subject_id`` int64, ``time`` timestamp[us], null
for static rows, ``code`` string, ``numeric_value`` float32 nullable, optional ``text_value``
large_string; extra columns allowed; sorted by subject then time (static rows first); plus
``metadata/codes.parquet``, ``metadata/subject_splits.parquet`` and ``metadata/dataset.json``.

ehrfast reads more than it calls MEDS: float64 values, large_string or dictionary codes and
string text are read as they are, and with ``cast_timestamps`` nanosecond or time-zone-aware
times are read as µs (UTC). ``validate_meds_dataset`` says "valid MEDS" only when the official
``meds`` schemas accept every file, and lists each deviation otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrfast.backends import require_core, resolve_backend
from ehrfast.errors import InvalidInputError
from ehrfast.inputs import read_parquet, read_parquet_rows, read_parquet_schema

MEDS_VERSION = "0.4.1"
SPLITS = ("train", "tuning", "held_out")
BIRTH_CODE = "MEDS_BIRTH"
DEATH_CODE = "MEDS_DEATH"
STATIC_TIME = np.iinfo(np.int64).min  # null (static) time in int64 µs arrays

DATA_SCHEMA = pa.schema(
    [
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("time", pa.timestamp("us")),
        pa.field("code", pa.string(), nullable=False),
        pa.field("numeric_value", pa.float32()),
    ]
)
CODES_SCHEMA = pa.schema(
    [
        pa.field("code", pa.string(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("parent_codes", pa.list_(pa.string())),
    ]
)
SPLITS_SCHEMA = pa.schema(
    [pa.field("subject_id", pa.int64(), nullable=False), pa.field("split", pa.string(), nullable=False)]
)
# Every dataset.json key is optional in MEDS 0.4; those present must be strings.
STRING_DATASET_KEYS = ("dataset_name", "dataset_version", "etl_name", "etl_version", "meds_version", "created_at", "license")


class MedsValidationError(InvalidInputError):
    """A MEDS dataset breaks the format; the message names the file, row and column."""


@dataclass(frozen=True, eq=False)  # identity hash: a ShardFile keys the tokenizer's cache
class ShardFile:
    """One split's rows of one parquet shard: the whole file (``subjects`` None) or, for a flat
    ``data/*.parquet`` shard that holds several splits, the rows of ``subjects`` (sorted int64).
    ``cast_timestamps``: read ns / time-zone-aware ``time`` as timestamp[us] (UTC)."""

    path: Path
    split: str
    subjects: np.ndarray | None = None
    cast_timestamps: bool = False

    def __str__(self) -> str:
        return str(self.path) if self.subjects is None else f"{self.path} ({self.split} subjects)"

    def schema(self) -> pa.Schema:
        """The file's arrow schema (``time`` as read, i.e. after the cast)."""
        schema = read_parquet_schema(self.path)
        i = schema.get_field_index("time")
        if self.cast_timestamps and i >= 0 and _castable_time(schema.field(i).type):
            schema = schema.set(i, schema.field(i).with_type(pa.timestamp("us")))
        return schema

    @property
    def num_rows(self) -> int:
        if self.subjects is None:
            return read_parquet_rows(self.path)
        return self.read(["subject_id"]).num_rows

    def read(self, columns: list[str] | None = None, **options) -> pa.Table:
        """The rows of this split (``columns``, default all), in file order; ``options`` go to
        ``pyarrow.parquet.read_table`` (e.g. ``read_dictionary``)."""
        wanted = None if columns is None else list(columns)
        extra = self.subjects is not None and wanted is not None and "subject_id" not in wanted
        table = read_parquet(self.path, columns=None if wanted is None else wanted + (["subject_id"] if extra else []), **options)
        if self.subjects is not None:
            table = table.filter(pc.is_in(table.column("subject_id"), value_set=pa.array(self.subjects, pa.int64())))
            if extra:
                table = table.drop_columns(["subject_id"])
        i = table.schema.get_field_index("time")
        if self.cast_timestamps and i >= 0 and _castable_time(table.schema.field(i).type):
            table = table.set_column(i, "time", _time_as_us(table.column("time")))
        return table


def _castable_time(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) and (t.unit != "us" or t.tz is not None)


def _time_as_us(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """timestamp[any unit, any tz] -> timestamp[us] naive UTC (sub-µs digits dropped)."""
    t = column.type
    if t.tz is not None:  # arrow stores instants as UTC: dropping the zone keeps the UTC wall time
        column = column.cast(pa.timestamp(t.unit))
    return pc.floor_temporal(column, unit="microsecond").cast(pa.timestamp("us"), safe=False) if t.unit == "ns" else column.cast(
        pa.timestamp("us"))


def as_shard(path) -> ShardFile:
    """``path`` as a whole-file ShardFile (a ShardFile is returned as is)."""
    return path if isinstance(path, ShardFile) else ShardFile(Path(path), Path(path).parent.name)


@dataclass(frozen=True)
class MedsSummary:
    """What ``validate_meds_dataset`` found."""

    n_subjects: int
    n_rows: int
    n_codes: int
    rows_per_split: dict[str, int]
    subjects_per_split: dict[str, int]
    meds_dir: str = ""
    events_after_death: int = 0  # subjects with a timed event after their first MEDS_DEATH (valid MEDS, but suspicious)
    example_after_death: int | None = None  # one such subject
    deviations: tuple[str, ...] = ()  # what the official MEDS schemas reject ("file: problem"); empty: conformant
    checked_with: str = "meds"  # "meds <version>" or "ehrfast's copy of the MEDS 0.4 schemas" (meds not installed)

    @property
    def conformant(self) -> bool:
        return not self.deviations

    def describe(self) -> str:
        counts = f"{self.n_subjects:,} subjects, {self.n_rows:,} rows, {self.n_codes:,} codes"
        if self.conformant:
            lines = [f"{self.meds_dir}: valid MEDS ({self.checked_with}) — {counts}"]
        else:
            lines = [f"{self.meds_dir}: readable by ehrfast, not MEDS-conformant ({self.checked_with}) — {counts}"]
            lines += [f"  not MEDS: {d}" for d in self.deviations[:20]]
            if len(self.deviations) > 20:
                lines.append(f"  ... and {len(self.deviations) - 20} more")
        for split, rows in self.rows_per_split.items():
            lines.append(f"  {split:<10} {self.subjects_per_split[split]:>9,} subjects {rows:>12,} rows")
        if self.events_after_death:
            lines.append(f"  warning: {self.events_after_death:,} subject(s) have events after their {DEATH_CODE} row (e.g. subject "
                         f"{self.example_after_death}); a death recorded as a date at 00:00 (MIMIC) does this, so does a generator bug")
        return "\n".join(lines)


def data_files(root: str | os.PathLike, *, cast_timestamps: bool = False) -> dict[str, list[ShardFile]]:
    """Shards per split, sorted by name: ``data/<split>/**.parquet``, or flat ``data/*.parquet``
    shards split by ``metadata/subject_splits.parquet`` (a shard appears under every split it
    holds subjects of, read as those subjects' rows)."""
    data = Path(root) / "data"
    if not data.is_dir():
        raise MedsValidationError(f"{root}: no data/ directory, not a MEDS dataset")
    flat = sorted(p for p in data.glob("*.parquet") if p.is_file())
    out: dict[str, list[ShardFile]] = {}
    for split_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(split_dir.rglob("*.parquet"))
        if files:
            out[split_dir.name] = [ShardFile(f, split_dir.name, None, cast_timestamps) for f in files]
    if flat and out:
        raise MedsValidationError(f"{data}: holds both flat shards ({flat[0].name}) and split directories ({next(iter(out))}/); use one layout")
    if flat:
        return _flat_shards(Path(root), flat, cast_timestamps)
    if not out:
        raise MedsValidationError(f"{data}: no parquet shards under data/ or data/<split>/")
    return out


def _flat_shards(root: Path, files: list[Path], cast_timestamps: bool) -> dict[str, list[ShardFile]]:
    splits_path = root / "metadata" / "subject_splits.parquet"
    if not splits_path.exists():
        raise MedsValidationError(f"{root}/data: flat data/*.parquet shards need {splits_path} to say which subject is in which split")
    sp = read_parquet(splits_path)
    for col in ("subject_id", "split"):
        if col not in sp.column_names:
            raise MedsValidationError(f"{splits_path}: missing required column '{col}'")
    ids = sp.column("subject_id").to_numpy().astype(np.int64)
    names = np.asarray(sp.column("split").to_pylist(), dtype=object)
    order = np.argsort(ids, kind="stable")
    ids, names = ids[order], names[order]
    out: dict[str, list[ShardFile]] = {}
    for f in files:
        subjects = np.unique(read_parquet(f, columns=["subject_id"]).column("subject_id").to_numpy())
        at = np.clip(np.searchsorted(ids, subjects), 0, max(len(ids) - 1, 0))
        known = (ids[at] == subjects) if len(ids) else np.zeros(len(subjects), bool)
        if not known.all():
            raise MedsValidationError(f"{splits_path}: subject {int(subjects[~known][0])} of {f} has no split")
        split_of = names[at]
        for split in sorted(set(split_of.tolist())):
            mine = subjects[split_of == split]
            out.setdefault(split, []).append(ShardFile(f, split, None if len(mine) == len(subjects) else mine, cast_timestamps))
    return out


def _check_type(path: Path, schema: pa.Schema, name: str, expected: pa.DataType, allow_dict: bool = False):
    if name not in schema.names:
        raise MedsValidationError(f"{path}: missing required column '{name}' (columns: {schema.names})")
    actual = schema.field(name).type
    if allow_dict and pa.types.is_dictionary(actual):
        actual = actual.value_type
    if name == "code" and actual in (pa.large_string(), pa.string_view()):
        return
    if name == "time" and pa.types.is_timestamp(actual) and actual.tz is None and actual.unit == "us":
        return
    if name == "time" and pa.types.is_timestamp(actual):
        raise MedsValidationError(f"{path}: column 'time' has type {actual}, MEDS requires timestamp[us] without a time zone; "
                                  "pass cast_timestamps=True / --cast-timestamps to read it as µs UTC")
    if actual != expected:
        raise MedsValidationError(f"{path}: column '{name}' has type {actual}, MEDS requires {expected}")


def validate_shard_schema(path: str | os.PathLike, schema: pa.Schema) -> None:
    """Checks a shard's columns and types (extra columns are allowed)."""
    path = Path(path)
    _check_type(path, schema, "subject_id", pa.int64())
    _check_type(path, schema, "time", pa.timestamp("us"))
    _check_type(path, schema, "code", pa.string(), allow_dict=True)
    if "numeric_value" in schema.names:
        t = schema.field("numeric_value").type
        if t not in (pa.float32(), pa.float64()):
            raise MedsValidationError(f"{path}: column 'numeric_value' has type {t}, MEDS requires float32")


def _arrow_chunks(column: pa.ChunkedArray):
    """Per non-empty chunk of a fixed-width column: (values view, validity bits or an empty
    array when it has no nulls, bit offset, row at which the chunk starts) — Arrow's own
    buffers, not copied."""
    at = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n:
            validity, data = chunk.buffers()[:2]
            dtype = np.dtype(np.int64) if pa.types.is_timestamp(chunk.type) else np.dtype(chunk.type.to_pandas_dtype())
            values = np.frombuffer(data, dtype, count=chunk.offset + n)[chunk.offset:]
            bits = np.frombuffer(validity, np.uint8) if validity is not None and chunk.null_count else np.zeros(0, np.uint8)
            yield values, bits, chunk.offset, at
        at += n


def _fill_reference(values: np.ndarray, bits: np.ndarray, bit_offset: int, fill, out: np.ndarray) -> None:
    if len(bits) == 0:
        out[:] = values
        return
    valid = np.unpackbits(bits, bitorder="little", count=bit_offset + len(out))[bit_offset:].astype(bool)
    out[:] = np.where(valid, values, fill)


def _filled(column: pa.ChunkedArray, dtype, fill, core_fill: str, backend: str | None) -> np.ndarray:
    """The column as one ``dtype`` array with ``fill`` in its null slots, chunk by chunk — the
    C++ core's ``core_fill`` function or the numpy reference."""
    fast = resolve_backend(backend, "MEDS reader") == "cpp"
    out = np.empty(len(column), dtype)
    for values, bits, offset, at in _arrow_chunks(column):
        target = out[at: at + len(values)]
        if fast:
            getattr(require_core(), core_fill)(values, bits, offset, target)
        else:
            _fill_reference(values, bits, offset, fill, target)
    return out


def time_values(column: pa.ChunkedArray, backend: str | None = None) -> np.ndarray:
    """[n] int64 µs of a timestamp[us] column, STATIC_TIME where null."""
    return _filled(column, np.int64, STATIC_TIME, "fill_null_times", backend)


def numeric_values(column: pa.ChunkedArray, backend: str | None = None) -> np.ndarray:
    """[n] float32 of a float32/float64 column, NaN where null."""
    return _filled(column, np.float32, np.nan, "fill_null_values", backend)


def check_finite_values(shard, value: np.ndarray, code: pa.ChunkedArray | pa.Array) -> None:
    """Refuses a shard whose ``numeric_value`` holds ±inf — or a number too large for MEDS's
    float32, which becomes inf (1e308) — naming the row, the code and the value: a code whose
    training values are all inf would get the quantile cut [inf], and every model input after
    it a meaningless bin. ``value`` [n] float32 as read (NaN = null, allowed)."""
    bad = np.isinf(value)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise MedsValidationError(f"{shard}: row {row} (code {code[row].as_py()!r}): numeric_value is {value[row]} "
                                  f"({int(bad.sum()):,} such rows; values beyond float32's ±3.4e38 read as inf); "
                                  "remove or null these values before tokenizing")


def id_chunks(column: pa.ChunkedArray) -> list[np.ndarray]:
    """The non-null int64 column's chunks as numpy views of Arrow's buffers (no copy)."""
    return [values for values, _, _, _ in _arrow_chunks(column)]


def subject_segments(path: str | os.PathLike, subject_id: list[np.ndarray], time: np.ndarray,
                     backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(seg [n_subjects + 1] int64 row boundaries of each subject, subject_ids [n_subjects]) of
    rows whose subject_id comes in consecutive chunks; raises if the rows are not sorted by
    subject_id, then time with null (static) rows first. ``time`` int64 µs, STATIC_TIME = null."""
    if resolve_backend(backend, "MEDS reader") == "cpp":
        seg, ids, bad_row, bad_subject = require_core().subject_segments(subject_id, time)
    else:
        seg, ids, bad_row, bad_subject = _segments_reference(np.concatenate(subject_id) if subject_id else np.zeros(0, np.int64), time)
    if bad_row >= 0:
        both = np.concatenate(subject_id)[bad_row - 1: bad_row + 1]
        raise MedsValidationError(
            f"{path}: row {bad_row} is out of order in column '{'subject_id' if bad_subject else 'time'}' (subject {both[1]} after "
            f"{both[0]}); MEDS shards must be sorted by subject_id, then time, static rows first"
        )
    return seg, ids


def _segments_reference(subject_id: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, bool]:
    s0, s1 = subject_id[:-1], subject_id[1:]
    bad_subject = s1 < s0
    # STATIC_TIME is the smallest int64, so "time never decreases" also puts static rows first
    bad = bad_subject | ((s1 == s0) & (time[1:] < time[:-1]))
    if bad.any():
        i = int(np.argmax(bad))
        return np.zeros(0, np.int64), np.zeros(0, np.int64), i + 1, bool(bad_subject[i])
    starts = np.flatnonzero(np.r_[True, s1 != s0]) if len(subject_id) else np.zeros(0, np.int64)
    return np.r_[starts, len(subject_id)].astype(np.int64), subject_id[starts], -1, False


def shard_core_columns(path, table: pa.Table, backend: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subject_ids [n_subjects] int64, time [n] µs int64 with STATIC_TIME for null, seg
    [n_subjects + 1]) of a shard table, after checking the non-nullable columns and the sort order."""
    for col in ("subject_id", "code"):
        if table.column(col).null_count:
            row = int(np.argmax(table.column(col).is_null().to_numpy(zero_copy_only=False)))
            raise MedsValidationError(f"{path}: row {row}: column '{col}' is null")
    time = time_values(table.column("time"), backend)
    seg, subject_ids = subject_segments(path, id_chunks(table.column("subject_id")), time, backend)
    return subject_ids, time, seg


def validate_meds_dataset(meds_dir: str | os.PathLike, cast_timestamps: bool = False) -> MedsSummary:
    """Validates a whole MEDS dataset: schemas, nulls, sort order, subjects in one shard only,
    metadata files, and that every code and subject is listed in the metadata; then checks every
    file against the official MEDS schemas (``deviations``: what ehrfast reads but MEDS rejects).

    Returns counts; raises ``MedsValidationError`` naming the file, row and column when ehrfast
    cannot read the dataset. ``cast_timestamps``: accept ns / time-zone-aware ``time``.
    """
    root = Path(meds_dir)
    shards = data_files(root, cast_timestamps=cast_timestamps)
    seen_subjects: dict[int, ShardFile] = {}
    all_codes: set[str] = set()
    rows_per_split, subjects_per_split = {}, {}
    after_death: list[int] = []
    for split, files in shards.items():
        rows_per_split[split] = 0
        n_subj = 0
        for f in files:
            validate_shard_schema(f.path, f.schema())
            has_values = "numeric_value" in f.schema().names
            t = f.read(["subject_id", "time", "code"] + (["numeric_value"] if has_values else []))
            t = t.set_column(2, "code", t.column("code").cast(pa.string()))  # large_string / dictionary codes read as strings
            if has_values:
                check_finite_values(f, numeric_values(t.column("numeric_value")), t.column("code"))
                t = t.drop_columns(["numeric_value"])
            uniq, _, _ = shard_core_columns(f, t)  # sorted and distinct
            for s in uniq[np.isin(uniq, np.fromiter(seen_subjects, dtype=np.int64, count=len(seen_subjects)))]:
                raise MedsValidationError(f"{f}: subject {s} also appears in {seen_subjects[int(s)]}; a subject must live in one shard")
            seen_subjects.update(dict.fromkeys(uniq.tolist(), f))
            all_codes.update(pc.unique(t.column("code").combine_chunks()).to_pylist())
            after_death.extend(subjects_with_events_after_death(t).tolist())
            rows_per_split[split] += t.num_rows
            n_subj += len(uniq)
        subjects_per_split[split] = n_subj
    _validate_metadata(root, all_codes, seen_subjects)
    deviations, checked_with = meds_deviations(root, sorted({f.path for files in shards.values() for f in files}))
    return MedsSummary(
        n_subjects=len(seen_subjects),
        n_rows=sum(rows_per_split.values()),
        n_codes=len(all_codes),
        rows_per_split=rows_per_split,
        subjects_per_split=subjects_per_split,
        meds_dir=str(meds_dir),
        events_after_death=len(after_death),
        example_after_death=after_death[0] if after_death else None,
        deviations=tuple(deviations),
        checked_with=checked_with,
    )


# MEDS 0.4's column types (meds.DataSchema etc.), for machines without the meds package
STRICT_TYPES = {
    "data": {"subject_id": pa.int64(), "time": pa.timestamp("us"), "code": pa.string(), "numeric_value": pa.float32(),
             "text_value": pa.large_string()},
    "codes": {"code": pa.string(), "description": pa.string(), "parent_codes": pa.list_(pa.string())},
    "splits": {"subject_id": pa.int64(), "split": pa.string()},
}
REQUIRED = {"data": ("subject_id", "time", "code"), "codes": ("code",), "splits": ("subject_id", "split")}


def strict_deviations(kind: str, schema: pa.Schema) -> list[str]:
    """What MEDS 0.4 rejects in a ``kind`` ("data", "codes", "splits") file's schema: missing
    required columns and columns of another type (extra columns are allowed)."""
    out = [f"missing column '{c}'" for c in REQUIRED[kind] if c not in schema.names]
    for name, want in STRICT_TYPES[kind].items():
        if name in schema.names and schema.field(name).type != want:
            out.append(f"column '{name}' is {schema.field(name).type}, MEDS wants {want}")
    return out


def meds_deviations(root: Path, shard_paths: list[Path]) -> tuple[list[str], str]:
    """(["file: problem", ...] the official schemas reject, what checked them): the ``meds``
    package when installed, else ``strict_deviations``."""
    try:
        import meds
    except ImportError:
        meds = None
    checks = [(p, "data") for p in shard_paths]
    checks += [(p, k) for p, k in ((root / "metadata" / "codes.parquet", "codes"), (root / "metadata" / "subject_splits.parquet", "splits"))
               if p.exists()]
    out = []
    for path, kind in checks:
        schema = read_parquet_schema(path)
        if meds is None:
            out += [f"{path}: {d}" for d in strict_deviations(kind, schema)]
            continue
        official = {"data": meds.DataSchema, "codes": meds.CodeMetadataSchema, "splits": meds.SubjectSplitSchema}[kind]
        try:
            official.validate(schema)
        except Exception as exc:  # flexible_schema's SchemaValidationError; its message names the columns
            out.append(f"{path}: {exc}")
    ds_path = root / "metadata" / "dataset.json"
    if meds is not None:
        try:
            meds.DatasetMetadataSchema.validate(json.loads(ds_path.read_text()))
        except Exception as exc:
            out.append(f"{ds_path}: {exc.__cause__ or exc}")
    version = getattr(meds, "__version__", "") if meds is not None else ""
    return out, (f"checked with meds {version}".strip() if meds is not None else "checked with ehrfast's copy of the MEDS 0.4 schemas")


def subjects_with_events_after_death(table: pa.Table) -> np.ndarray:
    """Sorted subject ids of a shard (subject_id, time, code; sorted by subject) with a timed row
    later than their first MEDS_DEATH."""
    sid = table.column("subject_id").to_numpy()
    if not len(sid):
        return sid
    time = pc.fill_null(table.column("time").cast(pa.int64()), np.iinfo(np.int64).min).to_numpy()
    is_death = pc.equal(table.column("code"), DEATH_CODE).fill_null(False).to_numpy(zero_copy_only=False)
    new = np.r_[True, sid[1:] != sid[:-1]]
    first_death = np.minimum.reduceat(np.where(is_death, time, np.iinfo(np.int64).max), np.flatnonzero(new))
    after = time > first_death[np.cumsum(new) - 1]
    return np.unique(sid[after])


def _validate_metadata(root: Path, all_codes: set[str], subjects: dict[int, ShardFile]) -> None:
    meta = root / "metadata"
    ds_path = meta / "dataset.json"
    if not ds_path.exists():
        raise MedsValidationError(f"{ds_path}: missing")
    try:
        ds = json.loads(ds_path.read_text())
    except json.JSONDecodeError as exc:
        raise MedsValidationError(f"{ds_path}: not valid JSON ({exc})") from None
    if not isinstance(ds, dict):
        raise MedsValidationError(f"{ds_path}: must hold a JSON object, got {type(ds).__name__}")
    for key in STRING_DATASET_KEYS:
        if key in ds and not isinstance(ds[key], str):
            raise MedsValidationError(f"{ds_path}: key '{key}' must be a string, got {ds[key]!r}")

    codes_path = meta / "codes.parquet"
    if codes_path.exists():
        codes = read_parquet(codes_path)
        if "code" not in codes.column_names:
            raise MedsValidationError(f"{codes_path}: missing required column 'code'")
        listed = set(codes.column("code").to_pylist())
        # MEDS 0.4 asks codes.parquet to list every code; 0.3 datasets often list fewer.
        if ds.get("meds_version", "").startswith("0.4"):
            unlisted = sorted(all_codes - listed)
            if unlisted:
                raise MedsValidationError(
                    f"{codes_path}: {len(unlisted)} codes of the data are not listed, e.g. {unlisted[:3]}"
                )

    splits_path = meta / "subject_splits.parquet"
    if splits_path.exists():
        sp = read_parquet(splits_path)
        for col in ("subject_id", "split"):
            if col not in sp.column_names:
                raise MedsValidationError(f"{splits_path}: missing required column '{col}'")
        split_of = dict(zip(sp.column("subject_id").to_pylist(), sp.column("split").to_pylist()))
        for s, f in subjects.items():
            declared = split_of.get(s)
            actual = f.split
            if declared is not None and declared != actual and actual in SPLITS:
                raise MedsValidationError(
                    f"{splits_path}: subject {s} is in split '{declared}' but its rows are in {f}"
                )


def created_at() -> str:
    """Now in ISO 8601 (UTC, seconds), or ``SOURCE_DATE_EPOCH``'s time when set (reproducible builds)."""
    import datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch and epoch.isdigit() else \
        datetime.datetime.now(datetime.timezone.utc)
    return when.isoformat(timespec="seconds")


def write_dataset_metadata(root: Path, **fields) -> None:
    """Writes ``metadata/dataset.json`` with the MEDS keys plus ``fields``."""
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    payload = {"meds_version": MEDS_VERSION, "created_at": created_at(), **fields}
    (root / "metadata" / "dataset.json").write_text(json.dumps(payload, indent=2) + "\n")


def code_descriptions(meds_dir: str | os.PathLike) -> dict[str, str]:
    """code -> description from ``metadata/codes.parquet`` (empty when absent)."""
    path = Path(meds_dir) / "metadata" / "codes.parquet"
    if not path.exists():
        return {}
    t = read_parquet(path, columns=[c for c in ("code", "description") if c in read_parquet_schema(path).names])
    if "description" not in t.column_names:
        return {}
    return {c: d or "" for c, d in zip(t.column("code").to_pylist(), t.column("description").to_pylist())}
