"""Score files: PGS Catalog scoring files (format 2.0 headers, older column layouts,
harmonized ``hm_*`` columns, pgscatalog "normalised" files) and plink2-style weight tables
(``ID``, ``effect_allele``, one column per trait), gzip or not."""

from __future__ import annotations

import gzip
import io
import mmap
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ehrfast.backends import require_core, resolve_backend
from ehrfast.errors import InvalidInputError
from ehrfast.genomics.builds import build_from_filename, normalize_build

if TYPE_CHECKING:  # pyarrow is imported where it is used
    import pyarrow as pa


class ScoreFileError(InvalidInputError):
    """A score file that cannot be used; the message names the file, line and column."""


@dataclass
class ScoreFile:
    """Score rows: one variant per row, one weight column per trait.

    ``ids``, ``effect_allele`` and ``other_allele`` are pyarrow string arrays (matching runs
    on them in C++ hash tables); ``chrom``/``pos`` are None for files keyed by variant ID
    only; ``other_allele`` entries are "" when unknown. ``weights`` [n_rows, n_traits] float64 (column-major for wide tables).
    """

    path: str
    traits: list[str]
    ids: pa.Array
    chrom: list[str] | None
    pos: np.ndarray | None
    effect_allele: pa.Array
    other_allele: pa.Array
    weights: np.ndarray
    header: dict[str, str] = field(default_factory=dict)
    weight_type: str = "NR"
    genome_build: str | None = None  # of chrom/pos: GRCh37, GRCh38 or None (not reported)

    @property
    def n_rows(self) -> int:
        return len(self.effect_allele)

    @property
    def matches_by_position(self) -> bool:
        """Whether some rows are matched by chromosome and position (and so depend on the build)."""
        return self.chrom is not None and self.pos is not None and bool((self.pos >= 0).any())


def is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with gzip's magic bytes."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_text(path: Path):
    """A text reader of ``path``, gzip or plain (by its magic bytes)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8")
    return open(path, encoding="utf-8")


def _norm_chrom(c: str) -> str:
    c = c.strip()
    return c[3:] if c.lower().startswith("chr") else c


def _header(path: Path) -> tuple[dict[str, str], int, list[str]]:
    """(``#key=value`` header entries, number of lines before the column line, column names)."""
    header: dict[str, str] = {}
    with open_text(path) as fh:
        for n, line in enumerate(fh):
            if line.startswith("#"):
                if "=" in line and not line.startswith("##"):
                    key, value = line[1:].split("=", 1)
                    header[key.strip()] = value.strip()
            elif line.strip():
                return header, n, line.rstrip("\r\n").split("\t")
    raise ScoreFileError(f"{path}: no column header line")


def _table(path: Path, skip: int, columns: list[str], numeric: set[str] = frozenset(), backend: str | None = None
           ) -> tuple[dict, np.ndarray | None]:
    """The body as columns: ``numeric`` columns as float64, the rest as strings; with the
    numeric columns also as one [n_rows, n_numeric] column-major matrix (file order) when the
    C++ fast path read the file, else None. The fast path reads clean files only; anything it
    declines is read by pyarrow's CSV reader (the reference), whose errors name the line."""
    if resolve_backend(backend, "score-file reader") == "cpp":
        fast = _fast_table(path, skip, columns, numeric)
        if fast is not None:
            return fast
    return _pyarrow_table(path, skip, columns, numeric), None


def _body(path: Path, skip: int):
    """(buffer, offset of the first body row): the file mapped (gzip: decompressed) and the
    byte after its column line (``skip`` lines come before it); -1 when no line follows it."""
    if is_gzip(path):
        with gzip.open(path) as fh:
            buf = fh.read()
    elif path.stat().st_size == 0:
        buf = b""
    else:
        with open(path, "rb") as fh:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    at = 0
    for _ in range(skip + 1):
        at = buf.find(b"\n", at) + 1
        if at == 0:  # the column line is the last line, with no newline: pyarrow's own case
            return buf, -1
    return buf, at


def _fast_table(path: Path, skip: int, columns: list[str], numeric: set[str]) -> tuple[dict, np.ndarray] | None:
    import pyarrow as pa

    buf, at = _body(path, skip)
    try:
        if at < 0 or buf.find(b"\r", 0, at) >= 0:  # '\r' line ends: the header's line count (universal newlines) is not ours
            return None
        with memoryview(buf) as view:
            n_rows, declined, numbers, text = require_core().parse_score_table(view[at:], [c in numeric for c in columns])
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    if declined >= 0:
        return None
    col, texts, j = {}, iter(text), 0
    for c in columns:
        if c in numeric:
            col[c] = pa.chunked_array([pa.array(numbers[:, j])], pa.float64())
            j += 1
        else:
            offsets, data = next(texts)
            col[c] = pa.chunked_array([pa.Array.from_buffers(pa.string(), n_rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)])])
    return col, numbers


def _pyarrow_table(path: Path, skip: int, columns: list[str], numeric: set[str] = frozenset()) -> dict:
    """The reference: pyarrow's multithreaded CSV reader, ``numeric`` columns as float64
    (falling back to strings so a bad value can be located), the rest as strings."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def read(types):
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=skip + 1, column_names=columns, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )

    strings = {c: pa.string() for c in columns}
    try:
        try:
            t = read({**strings, **{c: pa.float64() for c in numeric}})
        except pa.ArrowInvalid:
            t = read(strings)  # a weight does not parse: read as text; _weights names the line
    except pa.ArrowInvalid as exc:
        raise ScoreFileError(f"{path}: {exc}") from None
    return {c: t.column(c) for c in columns}


def read_score_file(path: str | os.PathLike, backend: str | None = None) -> ScoreFile:
    """Reads one score file; traits are named by ``pgs_id`` (PGS Catalog), the ``accession``
    column (normalised files) or the weight column names (plink2-style tables). ``backend``:
    "python" reads every file with pyarrow (the reference of the C++ reader)."""
    path = Path(path)
    if not path.exists():
        raise ScoreFileError(f"{path}: no such score file")
    if path.is_dir():
        raise ScoreFileError(f"{path}: is a directory; --scores takes the score files themselves (e.g. {path}/*.txt.gz)")
    try:
        return _parse_score_file(path, backend)
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}) — not a score file, or written in another "
                             "encoding") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a broken gzip file
        raise ScoreFileError(f"{path}: not a readable score file ({type(exc).__name__}: {exc})") from None


def _parse_score_file(path: Path, backend: str | None) -> ScoreFile:
    header, body_start, columns = _header(path)
    if len(set(columns)) != len(columns):
        raise ScoreFileError(f"{path}: duplicate column names in {columns}")
    is_pgs = any(c in columns for c in ("effect_weight", "chr_position", "hm_pos", "rsID"))
    skip = {"ID", "effect_allele", "A1", "other_allele", "A2", "CHR", "POS", "chr_name", "chr_position"}
    numeric = {"effect_weight"} if is_pgs else {c for c in columns if c not in skip}
    col, numbers = _table(path, body_start, columns, numeric, backend)
    if "effect_weight" in col or "chr_position" in col or "hm_pos" in col or "rsID" in col:
        sf = _pgs_catalog(path, header, col, body_start)
    elif "ID" in col and ("effect_allele" in col or "A1" in col):
        sf = _plink_table(path, col, columns, body_start, numbers)
    else:
        raise ScoreFileError(f"{path}: unrecognised columns {columns}; expected a PGS Catalog file or ID/effect_allele/weight columns")
    _check_alleles(sf, body_start)
    return sf


def _weights(path: Path, values, column: str, body_start: int) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if values.type == pa.float64():
        w = values.to_numpy()
    else:
        try:
            w = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            strings = values.to_pylist()
            bad = next((i for i, v in enumerate(strings) if not _is_float(v)), None)
            if bad is None:  # every value reads as a Python float, not as Arrow's (e.g. "1_000")
                raise ScoreFileError(f"{path}: column '{column}' is not numeric: {exc}") from None
            raise ScoreFileError(f"{path}: line {body_start + 2 + bad}: column '{column}' has non-numeric weight {strings[bad]!r}") from None
    if not np.isfinite(w).all():
        bad = int(np.flatnonzero(~np.isfinite(w))[0])
        raise ScoreFileError(f"{path}: line {body_start + 2 + bad}: column '{column}' has weight {values[bad]!r} (NaN/inf)")
    return w


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _strings(col: dict, name: str, upper: bool = False) -> list[str] | None:
    array = _arrow_strings(col, name, upper)
    return None if array is None else array.to_pylist()


def _arrow_strings(col: dict, name: str, upper: bool = False):
    """Column ``name`` as one pyarrow string array (upper-cased for alleles), or None."""
    if name not in col:
        return None
    import pyarrow.compute as pc

    return (pc.utf8_upper(col[name]) if upper else col[name]).combine_chunks()


def _first_column(col: dict, names, n: int, upper: bool = False):
    """The first of ``names`` present, else n empty strings."""
    import pyarrow as pa

    for name in names:
        if name in col:
            return _arrow_strings(col, name, upper)
    return pa.array([""] * n, pa.string())


def _pgs_catalog(path: Path, header: dict, col: dict, body_start: int) -> ScoreFile:
    if "effect_allele" not in col:
        raise ScoreFileError(f"{path}: missing column 'effect_allele'")
    weight_col = "effect_weight" if "effect_weight" in col else None
    if weight_col is None:
        raise ScoreFileError(f"{path}: missing column 'effect_weight'")
    # Harmonized positions win when present and filled in (pgsc_calc does the same).
    use_hm = "hm_chr" in col and "hm_pos" in col and any(_strings(col, "hm_pos"))
    chrom_col, pos_col = ("hm_chr", "hm_pos") if use_hm else ("chr_name", "chr_position")
    n = len(col["effect_allele"])
    chrom = pos = None
    if chrom_col in col and pos_col in col:
        chrom = [_norm_chrom(c) for c in _strings(col, chrom_col)]
        positions = _strings(col, pos_col)
        try:
            pos = np.array([int(p) if p else -1 for p in positions], np.int64)
        except ValueError:
            bad = next(i for i, p in enumerate(positions) if p and not p.isdigit())
            raise ScoreFileError(f"{path}: line {body_start + 2 + bad}: column '{pos_col}' is not an integer: {positions[bad]!r}") from None
    ids = _first_column(col, ("rsID", "hm_rsID", "ID"), n)
    if chrom is None and not any(ids.to_pylist()):
        raise ScoreFileError(f"{path}: needs chr_name/chr_position (or hm_chr/hm_pos) or rsID columns to match variants")
    other = _first_column(col, ("other_allele", "hm_inferOtherAllele"), n, upper=True)
    accession = _strings(col, "accession")
    trait = header.get("pgs_id") or (accession[0] if accession else None) or path.name.split(".")[0]
    weight_types = _strings(col, "weight_type")
    weight_type = header.get("weight_type") or (weight_types[0] if weight_types else "NR")
    return ScoreFile(str(path), [trait], ids, chrom, pos, _arrow_strings(col, "effect_allele", upper=True), other,
                     _weights(path, col[weight_col], weight_col, body_start)[:, None], header, weight_type,
                     _build(path, header, use_hm))


def _build(path: Path, header: dict, harmonized: bool) -> str | None:
    """The build of the positions used: ``#HmPOS_build`` (or the file name's ``_hmPOS_GRCh3x``)
    for harmonized positions, ``#genome_build`` for the author-reported ones."""
    if harmonized:
        declared = header.get("HmPOS_build")
        return normalize_build(declared, where=f"{path}: #HmPOS_build") if declared else build_from_filename(path.name)
    declared = header.get("genome_build")
    if declared is None and "HmPOS_build" not in header:  # a pgscatalog "normalised" file keeps only the name
        return build_from_filename(path.name)
    return normalize_build(declared, where=f"{path}: #genome_build")


def _plink_table(path: Path, col: dict, columns: list[str], body_start: int, numbers: np.ndarray | None) -> ScoreFile:
    """``numbers``: the weight columns as one column-major matrix when the C++ reader parsed
    them (finite by construction), else None."""
    ea_col = "effect_allele" if "effect_allele" in col else "A1"
    skip = {"ID", ea_col, "other_allele", "A2", "CHR", "POS", "chr_name", "chr_position"}
    traits = [c for c in columns if c not in skip]
    if not traits:
        raise ScoreFileError(f"{path}: no weight columns besides {sorted(skip & set(columns))}")
    if numbers is not None and numbers.shape[1] == len(traits):  # the numeric columns are the traits, in file order
        weights = numbers
    else:
        weights = np.empty((len(col[ea_col]), len(traits)), order="F")  # column by column: contiguous writes
        for j, t in enumerate(traits):
            weights[:, j] = _weights(path, col[t], t, body_start)
    ids = _arrow_strings(col, "ID")
    other = _first_column(col, ("other_allele", "A2"), len(ids), upper=True)
    return ScoreFile(str(path), traits, ids, None, None, _arrow_strings(col, ea_col, upper=True), other, weights)


def _check_alleles(sf: ScoreFile, body_start: int) -> None:
    # Non-DNA alleles (PGS Catalog uses e.g. P/N for HLA presence, I/D for indels) are legal in
    # score files; they simply never match a genotype allele. An empty one is an error.
    import pyarrow.compute as pc

    i = pc.index(sf.effect_allele, "").as_py()
    if i >= 0:
        raise ScoreFileError(f"{sf.path}: line {body_start + 2 + i}: empty effect allele")


def read_score_files(paths, backend: str | None = None) -> list[ScoreFile]:
    """Reads several score files; duplicate trait names across files are an error."""
    files = [read_score_file(p, backend) for p in paths]
    seen: dict[str, str] = {}
    for f in files:
        for t in f.traits:
            if t in seen:
                raise ScoreFileError(f"trait {t!r} appears in both {seen[t]} and {f.path}; trait names must be unique")
            seen[t] = f.path
    return files
