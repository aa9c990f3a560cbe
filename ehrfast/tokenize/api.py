"""``tokenize_dataset``: MEDS directory in, one TokenizedDataset per split out.

Each split is written straight into memory-mapped ``.npy`` files: its shards are measured
first (tokens per subject), the files are sized, then every shard writes its slice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ehrfast._backend import resolve_backend
from ehrfast._memory import reuse_freed_memory
from ehrfast.data.meds import data_files
from ehrfast.io import atomic_directory
from ehrfast.tokenize import reference
from ehrfast.tokenize.config import TokenizerConfig
from ehrfast.tokenize.reader import ShardRows, SubjectRegistry, read_shard
from ehrfast.tokenize.tokenizer import CACHE_ROWS, Tokenizer, fit_statistics


@dataclass
class TokenizeSummary:
    out_dir: str
    splits: dict[str, dict]  # split -> subjects, tokens, filtered counts
    vocab_size: int
    seconds: float
    backend: str


@dataclass
class _Measured:
    path: Path
    shard: ShardRows | None  # None when not kept in memory (re-read to write)
    entry: np.ndarray | None
    keep: np.ndarray
    filtered: dict
    n_tokens: np.ndarray  # [kept subjects]
    n_intervals: np.ndarray | None  # [kept subjects] (C++ backend)
    interval_total: int
    static_lengths: np.ndarray
    births: np.ndarray
    subject_ids: np.ndarray
    reference_output: tuple | None = None  # Python backend: the finished arrays


def _measure(tok: Tokenizer, shard: ShardRows, backend: str, want_intervals: bool) -> _Measured:
    entry = tok.entries(shard)
    keep, filtered = tok.keep_subjects(shard, entry, backend)
    rows = (shard.time, entry, shard.value, shard.seg, keep.astype(np.uint8))
    ids = shard.subject_ids[keep]
    if backend == "cpp":
        n_tokens, n_intervals, static_lengths, births = tok.program().measure(*rows)
        return _Measured(shard.path, shard, entry, keep, filtered, n_tokens, n_intervals, int(n_intervals.sum()), static_lengths, births, ids)
    out = reference.tokenize_rows_reference(*rows, tok.table, tok.rules, want_intervals)
    total = len(out[5][0]) if want_intervals else 0
    return _Measured(shard.path, None, None, keep, filtered, np.diff(out[2]), None, total, out[3], out[4], ids, out)


def write_split(tok: Tokenizer, directory: Path, paths: list[Path], cached: dict[Path, ShardRows], registry: SubjectRegistry | None,
                backend: str, want_intervals: bool, progress: bool, desc: str):
    """Tokenizes one split's shards into ``directory``. Returns (summary dict, (bins, shares) or None)."""
    measured, kept_rows = [], 0
    for path in tqdm(paths, desc=f"{desc}: measure", unit="shard", disable=not progress, leave=False):
        shard = cached.pop(path, None)
        if shard is None:
            shard = read_shard(path)
            if registry is not None:
                registry.add(shard)
        m = _measure(tok, shard, backend, want_intervals)
        if m.shard is not None:
            kept_rows += shard.n_rows
            if kept_rows > CACHE_ROWS:  # over the memory budget: read it again when writing
                m.shard, m.entry = None, None
        measured.append(m)
    tok_off = np.cumsum([0] + [int(m.n_tokens.sum()) for m in measured])
    int_off = np.cumsum([0] + [m.interval_total for m in measured])
    directory.mkdir()
    tokens = np.lib.format.open_memmap(directory / "tokens.npy", mode="w+", dtype=np.int32, shape=(int(tok_off[-1]),))
    times = np.lib.format.open_memmap(directory / "times.npy", mode="w+", dtype=np.int64, shape=(int(tok_off[-1]),))
    bins = np.empty(int(int_off[-1]) if want_intervals else 0, np.int32)
    shares = np.empty(int(int_off[-1]) if want_intervals else 0, np.float64)
    for k, m in enumerate(tqdm(measured, desc=f"{desc}: write", unit="shard", disable=not progress, leave=False)):
        a, b, ia, ib = tok_off[k], tok_off[k + 1], int_off[k], int_off[k + 1]
        if m.reference_output is not None:
            out = m.reference_output
            tokens[a:b], times[a:b] = out[0], out[1]
            if want_intervals:
                bins[ia:ib], shares[ia:ib] = out[5]
            continue
        shard = m.shard or read_shard(m.path)
        entry = m.entry if m.entry is not None else tok.entries(shard)
        offsets = np.r_[0, np.cumsum(m.n_tokens)]
        ioff = np.r_[0, np.cumsum(m.n_intervals)]
        tok.program().write(shard.time, entry, shard.value, shard.seg, m.keep.astype(np.uint8), offsets, ioff,
                            tokens[a:b], times[a:b], bins[ia:ib] if want_intervals else bins, shares[ia:ib] if want_intervals else shares)
        m.shard = m.entry = None
    del tokens, times  # no msync: the page cache writes the pages back on its own
    np.save(directory / "offsets.npy", np.r_[0, np.cumsum(np.concatenate([m.n_tokens for m in measured]) if measured else [])].astype(np.int64))
    np.save(directory / "subject_ids.npy", np.concatenate([m.subject_ids for m in measured]).astype(np.int64) if measured else np.zeros(0, np.int64))
    np.save(directory / "static_lengths.npy", np.concatenate([m.static_lengths for m in measured]).astype(np.int32) if measured else np.zeros(0, np.int32))
    np.save(directory / "birth_times.npy", np.concatenate([m.births for m in measured]).astype(np.int64) if measured else np.zeros(0, np.int64))
    filtered = {k: sum(m.filtered[k] for m in measured) for k in ("too_few_events", "too_many_events")}
    summary = {"subjects": int(sum(len(m.subject_ids) for m in measured)), "tokens": int(tok_off[-1]), "filtered": filtered}
    return summary, ((bins, shares) if want_intervals else None)


def tokenize_dataset(*args, **kwargs) -> TokenizeSummary:
    """Fits a tokenizer on the training split (or loads one from ``vocab_from``) and writes
    ``out_dir/<split>/`` TokenizedDatasets for every split, plus the fitted tokenizer files
    at ``out_dir/``. Inputs are validated as they are read; the output directory appears only
    when everything succeeded.

    Signature: ``tokenize_dataset(meds_dir, out_dir, config=None, *, backend=None,
    vocab_from=None, overwrite=False, progress=True)``.
    """
    with reuse_freed_memory():
        return _tokenize_dataset(*args, **kwargs)


def _tokenize_dataset(
    meds_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TokenizerConfig | None = None,
    *,
    backend: str | None = None,
    vocab_from: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TokenizeSummary:
    t0 = time.perf_counter()
    backend = resolve_backend(backend, "tokenizer")
    shards = data_files(meds_dir)
    registry = SubjectRegistry()
    cached: dict[Path, ShardRows] = {}
    fitting = vocab_from is None
    if not fitting:
        if config is not None:
            raise ValueError("give either a config or --vocab FROM_DIR, not both (the fitted tokenizer carries its config)")
        tok = Tokenizer.load(vocab_from)
    else:
        config = config or TokenizerConfig()
        if config.train_split not in shards:
            raise ValueError(f"{meds_dir}: no '{config.train_split}' split to fit on (splits: {sorted(shards)})")
        tok, cached = fit_statistics(shards[config.train_split], config, backend, registry, progress)
    with atomic_directory(out_dir, overwrite=overwrite) as root:
        summary = {}
        for split, paths in shards.items():
            is_train = fitting and split == tok.config.train_split
            summary[split], intervals = write_split(tok, root / split, paths, cached, None if is_train else registry,
                                                    backend, is_train, progress, f"tokenize {split}")
            if is_train:
                tok.fit_durations([intervals[0]], [intervals[1]], backend)
        for directory in (root, *(root / split for split in shards)):
            tok.save(directory)
    return TokenizeSummary(str(out_dir), summary, len(tok.vocab), round(time.perf_counter() - t0, 3), backend)
