"""Inputs: parquet files read so that every error names the file, and the joins between inputs
(genotype samples × MEDS subjects, labels × token timelines, PRS × training subjects) checked
and reported the same way everywhere.

pyarrow's own messages ("Parquet magic bytes not found in footer", "Corrupt snappy compressed
data") do not always say which file; a user with a hundred shards needs the name. A join that
silently loses most of one side is how a wrong analysis looks right, so every join reports its
matched and unmatched counts and refuses an empty or nearly empty one (``min_overlap``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ehrfast.errors import InputNotFoundError, InvalidInputError

if TYPE_CHECKING:  # pyarrow is imported where it is used
    import pyarrow as pa

PathLike = str | os.PathLike

# The default share of a join's smaller side that must match (see JoinReport.check): low enough
# for a biobank whose EHR extract is a subset of the genotyped samples, high enough that a wrong
# id column or a wrong split (a few percent matching) is an error, not a result.
DEFAULT_MIN_OVERLAP = 0.5


def _existing_file(path: PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such {what}")
    if path.is_dir():
        raise InputNotFoundError(f"{path}: is a directory, not a {what}")
    return path


def _parquet(path: PathLike, what: str, read):
    """``read(path)`` for a pyarrow.parquet call, every failure — missing, a directory, truncated,
    not parquet, a corrupt page — an ``EhrfastError`` naming the file."""
    import pyarrow as pa

    path = _existing_file(path, what)
    try:
        return read(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable {what} ({_reason(exc)})") from None


def read_parquet(path: PathLike, *, what: str = "parquet file", columns: list[str] | None = None, **options) -> pa.Table:
    """``pyarrow.parquet.read_table`` with the file named in every error (``what`` says what it
    was meant to be: "label file")."""
    import pyarrow.parquet as pq

    return _parquet(path, what, lambda p: pq.read_table(p, columns=columns, **options))


def read_parquet_schema(path: PathLike, *, what: str = "parquet file") -> pa.Schema:
    """The schema of a parquet file (its footer only), with the same errors as ``read_parquet``."""
    import pyarrow.parquet as pq

    return _parquet(path, what, pq.read_schema)


def read_parquet_rows(path: PathLike, *, what: str = "parquet file") -> int:
    """The row count of a parquet file from its footer."""
    import pyarrow.parquet as pq

    return _parquet(path, what, lambda p: pq.ParquetFile(p).metadata.num_rows)


def decode_text(raw: bytes, path: PathLike, what: str = "text file") -> str:
    """``raw`` as UTF-8 text; bytes that are not (a binary file, another encoding) are an error
    naming the file, the line and the byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidInputError(f"{path}: line {line}: byte {exc.start:,} (0x{raw[exc.start]:02x}) is not UTF-8 text — "
                                f"not a {what}, or written in another encoding") from None


def read_text(path: PathLike, *, what: str = "text file") -> str:
    """A whole text file as UTF-8 (``decode_text``'s errors), missing or a directory named."""
    path = _existing_file(path, what)
    return decode_text(path.read_bytes(), path, what)


def read_json(path: PathLike, *, what: str = "JSON file"):
    """A JSON document; missing or malformed is an error naming the file and the line."""
    import json

    path = _existing_file(path, what)
    try:
        return json.loads(decode_text(path.read_bytes(), path, what))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: not a valid {what} ({exc})") from None


def _reason(exc: Exception) -> str:
    """pyarrow's message without its own repetition of the path and its advice paragraph."""
    text = " ".join(str(exc).split(". Either the file")[0].split())  # one line
    return text.split(": ", 1)[1] if text.startswith("Could not open Parquet input source") and ": " in text else text


@dataclass(frozen=True)
class JoinReport:
    """The result of joining two sides by subject: ``n_left`` rows of ``left`` (what is being
    joined: "genotype samples"), ``n_right`` of ``right`` ("MEDS subjects"), ``matched`` of
    the left side that found a partner."""

    left: str
    n_left: int
    right: str
    n_right: int
    matched: int
    denominator: str = "smaller"  # the overlap's denominator: "smaller" side, or the "left" side (every label row should match)

    @property
    def unmatched(self) -> int:
        return self.n_left - self.matched

    @property
    def overlap(self) -> float:
        """matched / the smaller side (1.0 when every subject of the smaller side is on both), or
        matched / the left side."""
        base = self.n_left if self.denominator == "left" else min(self.n_left, self.n_right)
        return self.matched / base if base else 0.0

    def describe(self) -> str:
        return f"{self.matched:,} of {self.n_left:,} {self.left} matched {self.right} ({self.n_right:,}); {self.unmatched:,} unmatched"

    def check(self, min_overlap: float, *, option: str, where: str, warn: bool = True) -> JoinReport:
        """Refuses an empty join, or one whose overlap is below ``min_overlap`` (naming
        ``option``, the setting that lowers it); warns when anything is left unmatched, unless
        ``warn`` is False (the caller reports ``describe()`` itself: unmatched is normal there)."""
        if self.matched == 0:
            raise InvalidInputError(f"{where}: none of the {self.n_left:,} {self.left} matched {self.right} ({self.n_right:,})")
        if self.overlap < min_overlap:
            raise InvalidInputError(f"{where}: only {self.describe()} — an overlap of {self.overlap:.1%} of the {'smaller side' if self.denominator == 'smaller' else self.left}, below the "
                                    f"minimum of {min_overlap:.0%} ({option}); check the ids, or lower {option} if this is meant")
        if self.unmatched and warn:
            warnings.warn(f"{where}: {self.describe()}", RuntimeWarning, stacklevel=3)
        return self


def check_min_overlap(value: float, name: str) -> float:
    """A ``min_overlap`` setting: a share in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInputError(f"{name} must be a share in [0, 1], got {value!r}")
    return float(value)


__all__ = ["DEFAULT_MIN_OVERLAP", "JoinReport", "check_min_overlap", "decode_text", "read_json", "read_parquet", "read_parquet_rows", "read_parquet_schema", "read_text"]
