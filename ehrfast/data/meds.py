"""The MEDS on-disk format: schemas, writing, and validation with errors that say where.

A MEDS dataset is ``data/<split>/*.parquet`` (``subject_id`` int64, ``time`` timestamp[us],
null for static rows, ``code`` string, ``numeric_value`` float32 nullable, optional
``text_value``; extra columns allowed), sorted by subject then time (static rows first),
plus ``metadata/codes.parquet``, ``metadata/subject_splits.parquet`` and
``metadata/dataset.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MEDS_VERSION = "0.4.1"
SPLITS = ("train", "tuning", "held_out")
BIRTH_CODE = "MEDS_BIRTH"
DEATH_CODE = "MEDS_DEATH"

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


class MedsValidationError(ValueError):
    """A MEDS dataset breaks the format; the message names the file, row and column."""


@dataclass(frozen=True)
class MedsSummary:
    """What ``validate_meds_dataset`` found."""

    n_subjects: int
    n_rows: int
    n_codes: int
    rows_per_split: dict[str, int]
    subjects_per_split: dict[str, int]


def data_files(root: str | os.PathLike) -> dict[str, list[Path]]:
    """Shard files per split, sorted by name (``data/<split>/*.parquet``)."""
    data = Path(root) / "data"
    if not data.is_dir():
        raise MedsValidationError(f"{root}: no data/ directory, not a MEDS dataset")
    out = {}
    for split_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(split_dir.rglob("*.parquet"))
        if files:
            out[split_dir.name] = files
    if not out:
        raise MedsValidationError(f"{data}: no parquet shards under data/<split>/")
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


def check_shard_order(path: str | os.PathLike, subject_id: np.ndarray, time_us: np.ndarray, time_null: np.ndarray) -> None:
    """Raises if rows are not sorted by subject_id, then time with null (static) rows first.

    ``time_us`` int64 µs (any value where ``time_null``), ``time_null`` bool.
    """
    n = len(subject_id)
    if n < 2:
        return
    s0, s1 = subject_id[:-1], subject_id[1:]
    bad_subject = s1 < s0
    same = s1 == s0
    n0, n1 = time_null[:-1], time_null[1:]
    # within a subject: a static row after a timed one, or time going backwards
    bad_time = same & ((n1 & ~n0) | (~n1 & ~n0 & (time_us[1:] < time_us[:-1])))
    bad = bad_subject | bad_time
    if bad.any():
        i = int(np.argmax(bad)) + 1
        what = "subject_id" if bad_subject[i - 1] else "time"
        raise MedsValidationError(
            f"{path}: row {i} is out of order in column '{what}' (subject {subject_id[i]} after "
            f"{subject_id[i - 1]}); MEDS shards must be sorted by subject_id, then time, static rows first"
        )


def shard_core_columns(path, table: pa.Table, static_time: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subject_id int64, time µs int64 with ``static_time`` for null, null mask) of a shard
    table, after checking the non-nullable columns and the sort order."""
    for col in ("subject_id", "code"):
        if table.column(col).null_count:
            row = int(np.argmax(table.column(col).is_null().to_numpy(zero_copy_only=False)))
            raise MedsValidationError(f"{path}: row {row}: column '{col}' is null")
    sid = table.column("subject_id").to_numpy()
    time_col = table.column("time").cast(pa.int64())
    null = time_col.is_null().to_numpy(zero_copy_only=False)
    time = time_col.fill_null(static_time).to_numpy()
    check_shard_order(path, sid, time, null)
    return sid, time, null


def validate_meds_dataset(root: str | os.PathLike) -> MedsSummary:
    """Validates a whole MEDS dataset: schemas, nulls, sort order, subjects in one shard only,
    metadata files, and that every code and subject is listed in the metadata.

    Returns counts; raises ``MedsValidationError`` naming the file, row and column.
    """
    root = Path(root)
    shards = data_files(root)
    seen_subjects: dict[int, Path] = {}
    all_codes: set[str] = set()
    rows_per_split, subjects_per_split = {}, {}
    for split, files in shards.items():
        rows_per_split[split] = 0
        n_subj = 0
        for f in files:
            pf = pq.ParquetFile(f)
            validate_shard_schema(f, pf.schema_arrow)
            t = pf.read(columns=["subject_id", "time", "code"])
            sid, _, _ = shard_core_columns(f, t)
            uniq = np.unique(sid)
            for s in uniq[np.isin(uniq, np.fromiter(seen_subjects, dtype=np.int64, count=len(seen_subjects)))]:
                raise MedsValidationError(f"{f}: subject {s} also appears in {seen_subjects[int(s)]}; a subject must live in one shard")
            seen_subjects.update(dict.fromkeys(uniq.tolist(), f))
            all_codes.update(pc.unique(t.column("code").combine_chunks()).to_pylist())
            rows_per_split[split] += t.num_rows
            n_subj += len(uniq)
        subjects_per_split[split] = n_subj
    _validate_metadata(root, all_codes, seen_subjects, shards)
    return MedsSummary(
        n_subjects=len(seen_subjects),
        n_rows=sum(rows_per_split.values()),
        n_codes=len(all_codes),
        rows_per_split=rows_per_split,
        subjects_per_split=subjects_per_split,
    )


def _validate_metadata(root: Path, all_codes: set[str], subjects: dict[int, Path], shards: dict) -> None:
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
        codes = pq.read_table(codes_path)
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
        sp = pq.read_table(splits_path)
        for col in ("subject_id", "split"):
            if col not in sp.column_names:
                raise MedsValidationError(f"{splits_path}: missing required column '{col}'")
        split_of = dict(zip(sp.column("subject_id").to_pylist(), sp.column("split").to_pylist()))
        for s, f in subjects.items():
            declared = split_of.get(s)
            actual = f.parent.name
            if declared is not None and declared != actual and actual in SPLITS:
                raise MedsValidationError(
                    f"{splits_path}: subject {s} is in split '{declared}' but its rows are in {f}"
                )


def write_dataset_metadata(root: Path, **fields) -> None:
    """Writes ``metadata/dataset.json`` with the MEDS keys plus ``fields``."""
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    payload = {"meds_version": MEDS_VERSION, **fields}
    (root / "metadata" / "dataset.json").write_text(json.dumps(payload, indent=2) + "\n")
