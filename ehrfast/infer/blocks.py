"""Scoring in blocks of label rows: under torchrun one block per rank, on a Dask cluster
(``score --cluster``) one task per block of subjects. The blocks' sampling results are put back
in label order before anything is written, so the predictions are the file one process writes
(with ``--deterministic``, bit for bit: every subject's logits are then computed on shapes set
by that subject alone, and the random stream is keyed by subject and sample, not by block)."""

from __future__ import annotations

import math
import os
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow.parquet as pq

from ehrfast.errors import InvalidInputError

R = TypeVar("R")

TASKS_PER_WORKER = 4  # a few blocks per worker, so a slow block does not hold the run up
MAX_BLOCK_ROWS = 512  # label rows per cluster task: a task's contexts and results stay small
_SHARED_FIELDS = frozenset({"time_edges_us"})  # the same in every block, not per row


def check_cluster_scoring(cluster, device: str, world: int) -> None:
    """A cluster scores on the workers' CPUs; GPU scoring scales with torchrun instead."""
    if cluster is None:
        return
    if not str(device).startswith("cpu"):
        raise InvalidInputError(f"--cluster scores on the Dask workers' CPUs, not on --device {device}; GPU scoring scales with "
                                "torchrun (torchrun --nproc_per_node K -m ehrfast.cli score ...)")
    if world > 1:
        raise InvalidInputError("--cluster and torchrun (WORLD_SIZE > 1) are two ways to split the same work: use one")


def row_blocks(n_rows: int, n_workers: int) -> list[np.ndarray]:
    """Label rows 0 … n − 1 in consecutive blocks, about ``TASKS_PER_WORKER`` per worker and
    at most ``MAX_BLOCK_ROWS`` rows each; [int64] arrays."""
    if n_rows == 0:
        return []
    size = min(MAX_BLOCK_ROWS, max(1, math.ceil(n_rows / (TASKS_PER_WORKER * max(1, n_workers)))))
    return [np.arange(start, min(start + size, n_rows), dtype=np.int64) for start in range(0, n_rows, size)]


def block_label(what: str, rows: np.ndarray, sids: np.ndarray) -> str:
    """How an error in a block names it: the label rows and their first and last subject."""
    return f"{what}: label rows {rows[0]}–{rows[-1]} (subjects {sids[rows[0]]} … {sids[rows[-1]]})"


def assembled(parts: list[tuple[np.ndarray, R]], n_rows: int) -> R:
    """One result for all ``n_rows`` label rows from the blocks' ``(rows, result)`` parts (a
    ``SamplingResult`` or ``EventSamples``: dataclasses of per-row arrays, [n, ...] each;
    ``time_edges_us`` is the same in every block). The rows of the parts cover 0 … n − 1."""
    first = parts[0][1]
    out = {}
    for f in fields(first):
        value = getattr(first, f.name)
        if value is None or f.name in _SHARED_FIELDS:
            out[f.name] = value
        elif is_dataclass(value):
            out[f.name] = assembled([(rows, getattr(part, f.name)) for rows, part in parts], n_rows)
        else:
            whole = np.zeros((n_rows, *value.shape[1:]), value.dtype)
            for rows, part in parts:
                whole[rows] = getattr(part, f.name)
            out[f.name] = whole
    return replace(first, **out)


def part_path(parts_dir: str, rows: np.ndarray) -> Path:
    """Where a block's rows of a streamed output (trajectories) go until the client joins them."""
    return Path(parts_dir) / f"part-{int(rows[0]):012d}.parquet"


def join_parts(parts: list[Path], out_path: str | os.PathLike, schema) -> None:
    """Appends the parts, in block order, into one parquet file (``out_path``: a temporary path
    of ``atomic_output``); one row group at a time, so the client never holds them all."""
    with pq.ParquetWriter(out_path, schema) as writer:
        for part in parts:
            source = pq.ParquetFile(part)
            for i in range(source.num_row_groups):
                writer.write_table(source.read_row_group(i))
