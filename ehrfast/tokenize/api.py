"""``tokenize_dataset``: MEDS directory in, one TokenizedDataset per split out."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ehrfast.data.meds import data_files
from ehrfast.io import atomic_directory
from ehrfast.tokenize.config import TokenizerConfig
from ehrfast.tokenize.dataset import ARRAYS, DTYPES, write_npy_parts
from ehrfast.tokenize.reader import SubjectRegistry, read_shard
from ehrfast.tokenize.tokenizer import ShardTokens, Tokenizer


@dataclass
class TokenizeSummary:
    out_dir: str
    splits: dict[str, dict]  # split -> subjects, tokens, rows, filtered counts
    vocab_size: int
    seconds: float
    backend: str


def write_split(directory: Path, parts: list[ShardTokens]) -> None:
    """Writes one split's TokenizedDataset arrays from its shards' outputs."""
    offsets, base = [np.zeros(1, np.int64)], 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += int(p.offsets[-1])
    columns = {
        "tokens": [p.tokens for p in parts],
        "offsets": offsets,
        "subject_ids": [p.subject_ids for p in parts],
        "times": [p.times for p in parts],
        "static_lengths": [p.static_lengths for p in parts],
        "birth_times": [p.births for p in parts],
    }
    for name in ARRAYS:
        write_npy_parts(directory / f"{name}.npy", columns[name], DTYPES[name])


def tokenize_dataset(
    meds_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TokenizerConfig | None = None,
    *,
    backend: str | None = None,
    vocab_from: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TokenizeSummary:
    """Fits a tokenizer on the training split (or loads one from ``vocab_from``) and writes
    ``out_dir/<split>/`` TokenizedDatasets for every split, plus the fitted tokenizer files
    at ``out_dir/``. Everything is validated before the output directory appears."""
    from ehrfast._backend import resolve_backend

    t0 = time.perf_counter()
    used_backend = resolve_backend(backend, "tokenizer")
    shards = data_files(meds_dir)
    done: dict[str, list[ShardTokens]] = {}
    registry = SubjectRegistry()
    if vocab_from is not None:
        if config is not None:
            raise ValueError("give either a config or --vocab FROM_DIR, not both (the fitted tokenizer carries its config)")
        tok = Tokenizer.load(vocab_from)
    else:
        tok, train = Tokenizer.fit(meds_dir, config, backend, progress, registry)
        done[tok.config.train_split] = train
    with atomic_directory(out_dir, overwrite=overwrite) as root:
        tok.save(root)
        summary = {}
        for split, paths in shards.items():
            parts = done.get(split)
            rows = 0
            if parts is None:
                parts = []
                for p in tqdm(paths, desc=f"tokenize {split}", unit="shard", disable=not progress, leave=False):
                    shard = read_shard(p)
                    registry.add(shard)
                    rows += shard.n_rows
                    parts.append(tok.tokenize_shard(shard, backend))
            split_dir = root / split
            split_dir.mkdir()
            write_split(split_dir, parts)
            tok.save(split_dir)
            filtered = {k: sum(p.n_filtered.get(k, 0) for p in parts) for k in ("too_few_events", "too_many_events")}
            summary[split] = {"subjects": sum(len(p.subject_ids) for p in parts), "tokens": sum(len(p.tokens) for p in parts), "filtered": filtered}
    return TokenizeSummary(str(out_dir), summary, len(tok.vocab), round(time.perf_counter() - t0, 3), used_backend)
