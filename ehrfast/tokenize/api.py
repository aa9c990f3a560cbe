"""``tokenize_dataset``: MEDS directory in, one TokenizedDataset per split out.

Each split's tokens stream to its ``.npy`` files shard by shard, in the blocks the C++ core
fills in parallel, so a shard is read once and its tokens written once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ehrfast._memory import reuse_freed_memory
from ehrfast.backends import resolve_backend
from ehrfast.data.meds import data_files
from ehrfast.data.reader import ShardRows, SubjectRegistry, shards_in_order
from ehrfast.errors import InvalidInputError
from ehrfast.io import NpyAppender, atomic_directory, check_outputs
from ehrfast.tokenize.config import TokenizerConfig
from ehrfast.tokenize.tokenizer import Tokenizer, fit_statistics


@dataclass
class TokenizeSummary:
    out_dir: str
    splits: dict[str, dict]  # split -> subjects, tokens, filtered counts
    vocab_size: int
    seconds: float
    backend: str
    meds_dir: str = ""

    def describe(self) -> str:
        lines = [f"tokenized {self.meds_dir} -> {self.out_dir} in {self.seconds:.1f} s ({self.backend} backend); "
                 f"vocabulary {self.vocab_size:,} tokens"]
        for split, d in self.splits.items():
            f = d["filtered"]
            lines.append(f"  {split:<10} {d['subjects']:>9,} subjects {d['tokens']:>13,} tokens  (dropped: {f['too_few_events']} too few, "
                         f"{f['too_many_events']} too many events)")
        return "\n".join(lines)


def write_split(tok: Tokenizer, directory: Path, paths: list[Path], cached: dict[Path, ShardRows], registry: SubjectRegistry | None,
                backend: str, gaps, progress: bool, desc: str) -> dict:
    """Tokenizes one split's shards into ``directory``, streaming each shard's tokens to disk;
    interval gaps are added to ``gaps`` when given. Returns the split's summary."""
    directory.mkdir()
    per_subject: dict[str, list[np.ndarray]] = {"n_tokens": [], "subject_ids": [], "static_lengths": [], "births": []}
    filtered = {"too_few_events": 0, "too_many_events": 0}
    latest: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with NpyAppender(directory / "tokens.npy", np.int32) as tokens, NpyAppender(directory / "times.npy", np.int64) as times:
        for _, shard, fresh in tqdm(shards_in_order(paths, backend, cached), total=len(paths), desc=desc, unit="shard",
                                    disable=not progress, leave=False):
            if fresh and registry is not None:
                registry.add(shard)
            out = tok.tokenize_shard(shard, backend, gaps, files=(tokens, times))
            for name, arrays in per_subject.items():
                arrays.append(getattr(out, name))
            for k in filtered:
                filtered[k] += out.n_filtered[k]
            if out.latest is not None:
                latest.append(out.latest)
        n_tokens = tokens.length
    joined = {name: np.concatenate(arrays) if arrays else np.zeros(0) for name, arrays in per_subject.items()}
    np.save(directory / "offsets.npy", np.r_[0, np.cumsum(joined["n_tokens"])].astype(np.int64))
    np.save(directory / "subject_ids.npy", joined["subject_ids"].astype(np.int64))
    np.save(directory / "static_lengths.npy", joined["static_lengths"].astype(np.int32))
    np.save(directory / "birth_times.npy", joined["births"].astype(np.int64))
    if tok.has_latest:  # static_latest rows per subject (TokenizedDataset.head)
        counts = np.concatenate([c for c, _, _ in latest]) if latest else np.zeros(0, np.int64)
        np.save(directory / "latest_offsets.npy", np.r_[0, np.cumsum(counts)].astype(np.int64))
        np.save(directory / "latest_times.npy", np.concatenate([t for _, t, _ in latest]) if latest else np.zeros(0, np.int64))
        np.save(directory / "latest_tokens.npy", np.concatenate([k for _, _, k in latest]) if latest else np.zeros(0, np.int32))
    return {"subjects": len(joined["subject_ids"]), "tokens": int(n_tokens), "filtered": filtered}


def tokenize_dataset(
    meds_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TokenizerConfig | str | os.PathLike | None = None,
    *,
    backend: str | None = None,
    vocab_from: str | os.PathLike | None = None,
    preset: str | None = None,
    cast_timestamps: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TokenizeSummary:
    """Fits a tokenizer on the training split (or loads one from ``vocab_from``) and writes
    ``out_dir/<split>/`` TokenizedDatasets for every split, plus the fitted tokenizer files at
    ``out_dir/``. ``config``: a TokenizerConfig or a config file; ``preset``: a shipped config
    (``TokenizerConfig.preset``) instead. Inputs are validated as they are read; the output
    directory appears only when everything succeeded."""
    if preset is not None:
        if config is not None:
            raise InvalidInputError("give either a config or a preset, not both")
        config = TokenizerConfig.preset(preset)
    check_outputs(directories=[out_dir], inputs=[meds_dir, vocab_from, config if not isinstance(config, TokenizerConfig) else None],
                  overwrite=overwrite)
    if config is not None and not isinstance(config, TokenizerConfig):
        config = TokenizerConfig.load(config)
    with reuse_freed_memory():
        return _tokenize_dataset(meds_dir, out_dir, config, backend, vocab_from, cast_timestamps, overwrite, progress)


def _tokenize_dataset(meds_dir, out_dir, config: TokenizerConfig | None, backend, vocab_from, cast_timestamps: bool, overwrite: bool,
                      progress: bool) -> TokenizeSummary:
    t0 = time.perf_counter()
    backend = resolve_backend(backend, "tokenizer")
    shards = data_files(meds_dir, cast_timestamps=cast_timestamps)
    registry = SubjectRegistry()
    cached: dict[Path, ShardRows] = {}
    fitting = vocab_from is None
    if not fitting:
        if config is not None:
            raise InvalidInputError("give either a config or --vocab FROM_DIR, not both (the fitted tokenizer carries its config)")
        tok = Tokenizer.load(vocab_from)
    else:
        config = config or TokenizerConfig()
        if config.train_split not in shards:
            raise InvalidInputError(f"{meds_dir}: no '{config.train_split}' split to fit on (splits: {sorted(shards)})")
        tok, cached = fit_statistics(shards[config.train_split], config, backend, registry, progress)
    with atomic_directory(out_dir, overwrite=overwrite, kind="tokens") as root:
        summary = {}
        for split, paths in shards.items():
            is_train = fitting and split == tok.config.train_split
            gaps = tok.new_gaps(backend) if is_train else None
            summary[split] = write_split(tok, root / split, paths, cached, None if is_train else registry, backend, gaps, progress,
                                         f"tokenize {split}")
            if is_train:
                tok.fit_durations(gaps)
        for directory in (root, *(root / split for split in shards)):
            tok.save(directory)
    return TokenizeSummary(str(out_dir), summary, len(tok.vocab), round(time.perf_counter() - t0, 3), backend, str(meds_dir))
