"""``tokenize_dataset(..., cluster=...)``: the MEDS shards as Dask tasks, the same files as one process.

1. The fit: one task per training shard accumulates that shard's code statistics alone
   (``shard_statistics``: subject counts, static flags and every numeric value per code, in the
   C++ ``TrainStatistics``); the client merges them in shard order (``TrainingStatistics.merge``),
   which is the single-process accumulation exactly — quantiles are computed from the gathered
   values, as one process computes them, not from a sketch.
2. The fitted tokenizer is broadcast once to every worker; one task per shard of every split
   tokenizes it into its own part files (``<split>/.parts/<k>.tokens.npy``, ``.times.npy``) in the
   temporary output directory and returns the per-subject arrays (and, on the training split,
   its interval gaps).
3. The client, in shard order: checks that no subject is in two shards, appends the parts to
   the split's ``tokens.npy`` / ``times.npy``, writes the subject index, fits the interval
   durations from the gathered gaps, saves the tokenizer and renames the directory into place.

Interval durations are means rounded to whole µs; the client adds the gaps in shard order where
one process adds them thread by thread, so the unrounded means may differ in their last bits
(as between two thread counts of one process).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ehrfast.cluster import connect, map_tasks
from ehrfast.data.reader import SubjectRegistry, read_shard
from ehrfast.io import NpyAppender, atomic_directory
from ehrfast.tokenize.config import TokenizerConfig
from ehrfast.tokenize.dataset import write_subject_index
from ehrfast.tokenize.tokenizer import ShardTokens, Tokenizer, TrainingStatistics, shard_statistics


@dataclass(frozen=True)
class _PartTask:
    path: object  # Path | ShardFile
    token_file: Path
    time_file: Path
    gaps: bool


@dataclass
class _Part:
    """What one tokenize task returns: the shard's per-subject arrays (``tokens``/``times``
    None: they are in the task's part files), every subject id of the shard, and its gaps."""

    task: _PartTask
    tokens: ShardTokens
    all_subject_ids: np.ndarray  # [m] int64, kept or not (the one-shard-per-subject check)
    path: object  # Path | ShardFile, as the reader names it
    gaps: tuple[np.ndarray, np.ndarray] | None  # (bins, shares) on the training split


def _tokenize_part(task: _PartTask, tok: Tokenizer, backend: str) -> _Part:
    shard = read_shard(task.path, backend)
    gaps = tok.new_gaps(backend) if task.gaps else None
    with NpyAppender(task.token_file, np.int32) as tokens, NpyAppender(task.time_file, np.int64) as times:
        out = tok.tokenize_shard(shard, backend, gaps, files=(tokens, times))
    return _Part(task, out, shard.subject_ids, shard.path, gaps.take_shares() if gaps is not None else None)


def tokenize_on_cluster(shards: dict[str, list], tok: Tokenizer | None, config: TokenizerConfig, backend: str, out_dir, overwrite: bool,
                        progress: bool, cluster) -> tuple[Tokenizer, dict]:
    """Fits (when ``tok`` is None) and tokenizes every split of ``shards`` on ``cluster``; writes
    ``out_dir`` as ``_tokenize_dataset`` does. Returns the tokenizer and the per-split summary."""
    registry = SubjectRegistry()
    fitting = tok is None
    train = config.train_split
    with connect(cluster) as c, atomic_directory(out_dir, overwrite=overwrite, kind="tokens") as root:
        if fitting:
            paths = shards[train]
            bar = tqdm(total=len(paths), desc="fit: statistics", unit="shard", disable=not progress, leave=False)
            parts = map_tasks(c, shard_statistics, paths, labels=[str(p) for p in paths], name="tokenize-fit", progress=bar.update,
                              args=(config, backend))
            bar.close()
            stats = TrainingStatistics(config, backend)
            for part in parts:
                registry.add_ids(part.subject_ids, part.path)
                stats.merge(part)
            del parts
            tok = stats.tokenizer()
        shared_tok = c.broadcast(tok)
        tasks, splits = [], []
        for split, paths in shards.items():
            (root / split / ".parts").mkdir(parents=True)
            for k, path in enumerate(paths):
                base = root / split / ".parts" / f"{k:06d}"
                tasks.append(_PartTask(path, base.with_suffix(".tokens.npy"), base.with_suffix(".times.npy"), fitting and split == train))
                splits.append(split)
        bar = tqdm(total=len(tasks), desc="tokenize", unit="shard", disable=not progress, leave=False)
        results = map_tasks(c, _tokenize_part, tasks, labels=[str(t.path) for t in tasks], name="tokenize", progress=bar.update,
                            args=(shared_tok, backend))
        bar.close()
        summary = {}
        for split in shards:
            mine = [r for r, s in zip(results, splits) if s == split]
            if not (fitting and split == train):
                for r in mine:
                    registry.add_ids(r.all_subject_ids, r.path)
            summary[split] = _assemble_split(tok, root / split, mine)
            if fitting and split == train:
                gaps = tok.new_gaps(backend)
                for r in mine:
                    gaps.add(*r.gaps)
                tok.fit_durations(gaps)
        for directory in (root, *(root / split for split in shards)):
            tok.save(directory)
    return tok, summary


def _assemble_split(tok: Tokenizer, directory: Path, parts: list[_Part]) -> dict:
    """The split's tokens.npy / times.npy from its parts (shard order), then its subject index."""
    with NpyAppender(directory / "tokens.npy", np.int32) as tokens, NpyAppender(directory / "times.npy", np.int64) as times:
        for part in parts:
            tokens.append_npy(part.task.token_file)
            times.append_npy(part.task.time_file)
        n_tokens = tokens.length
    shutil.rmtree(directory / ".parts")
    return write_subject_index(directory, [p.tokens for p in parts], n_tokens, tok.has_latest)
