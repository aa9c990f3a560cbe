"""Reading MEDS shards into the flat arrays the tokenizer works on, with validation.

The ``code`` column is read dictionary-encoded, so each distinct code string of a shard is
seen once (``code_dictionary``) and rows carry only an index into it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrfast.data.meds import (
    STATIC_TIME,
    MedsValidationError,
    ShardFile,
    as_shard,
    check_finite_values,
    numeric_values,
    shard_core_columns,
    validate_shard_schema,
)

__all__ = ["STATIC_TIME", "ShardRows", "SubjectRegistry", "read_shard", "shards_in_order"]


@dataclass
class ShardRows:
    """One shard as flat arrays; rows sorted by subject, then time (static rows first)."""

    path: Path | ShardFile
    subject_ids: np.ndarray  # [m] int64, one per subject, in row order
    seg: np.ndarray  # [m + 1] int64 row boundaries of each subject
    time: np.ndarray  # [n] int64 µs, STATIC_TIME for static rows
    code_index: np.ndarray  # [n] int32 index into code_dictionary
    code_dictionary: list[str]  # distinct codes of this shard
    value: np.ndarray  # [n] float32, NaN when absent

    @property
    def n_rows(self) -> int:
        return len(self.time)


def read_shard(path: str | Path | ShardFile, backend: str | None = None) -> ShardRows:
    """Reads and validates one shard (schema, nulls, sort order): a file, or a ShardFile (one
    split's rows of a flat shard, timestamps cast on request)."""
    shard = as_shard(path)
    path = shard.path
    schema = shard.schema()
    validate_shard_schema(path, schema)
    cols = ["subject_id", "time", "code"] + (["numeric_value"] if "numeric_value" in schema.names else [])
    table = shard.read(cols, read_dictionary=["code"])
    subject_ids, time, seg = shard_core_columns(shard, table, backend)
    code = table.column("code")
    if not pa.types.is_dictionary(code.type):  # e.g. large_string read plainly
        code = pc.dictionary_encode(code)
    # chunks (row groups) may carry different dictionaries: unify them, then one array
    code = code.unify_dictionaries().combine_chunks() if code.num_chunks else pa.array([], pa.dictionary(pa.int32(), pa.string()))
    indices = code.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    dictionary = code.dictionary.to_pylist()
    if "numeric_value" in table.column_names:
        value = numeric_values(table.column("numeric_value"), backend)
        check_finite_values(shard, value, table.column("code"))
    else:
        value = np.full(len(time), np.nan, np.float32)
    return ShardRows(path, subject_ids, seg, time, indices, dictionary, value)


def shards_in_order(paths: list[Path], backend: str | None = None, cached: dict[Path, ShardRows] | None = None
                    ) -> Iterator[tuple[Path, ShardRows, bool]]:
    """Yields (path, shard, freshly read) for each path in order — taken from ``cached`` (and
    removed from it) when there, else read while the caller still works on the shard before:
    pyarrow and the C++ core release the GIL, so reading overlaps tokenizing."""
    cached = cached if cached is not None else {}
    with ThreadPoolExecutor(1, thread_name_prefix="ehrfast-read") as pool:

        def start(path: Path) -> Future | None:
            return None if path in cached else pool.submit(read_shard, path, backend)

        pending = start(paths[0]) if paths else None
        for i, path in enumerate(paths):
            current, pending = pending, (start(paths[i + 1]) if i + 1 < len(paths) else None)
            yield path, (cached.pop(path) if current is None else current.result()), current is not None


class SubjectRegistry:
    """Remembers which shard each subject came from; a subject in two shards is an error."""

    def __init__(self):
        self._ids: list[np.ndarray] = []
        self._paths: list[Path] = []

    def add(self, shard: ShardRows) -> None:
        self.add_ids(shard.subject_ids, shard.path)

    def add_ids(self, subject_ids: np.ndarray, path: Path | ShardFile) -> None:
        """Adds one shard's subjects ([m] int64, distinct), read from ``path``."""
        for ids, seen in zip(self._ids, self._paths):
            both = np.intersect1d(ids, subject_ids, assume_unique=True)
            if len(both):
                raise MedsValidationError(
                    f"{path}: subject {both[0]} also appears in {seen}; a subject's rows must all be in one shard"
                )
        self._ids.append(subject_ids)
        self._paths.append(path)
