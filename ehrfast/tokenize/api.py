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
from ehrfast.cluster import check_cluster
from ehrfast.data.meds import data_files
from ehrfast.data.reader import ShardRows, SubjectRegistry, shards_in_order
from ehrfast.errors import InvalidInputError
from ehrfast.io import NpyAppender, atomic_directory, check_outputs
from ehrfast.tokenize.config import TokenizerConfig
from ehrfast.tokenize.dataset import write_subject_index
from ehrfast.tokenize.tokenizer import ShardTokens, Tokenizer, fit_statistics


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
    parts: list[ShardTokens] = []
    with NpyAppender(directory / "tokens.npy", np.int32) as tokens, NpyAppender(directory / "times.npy", np.int64) as times:
        for _, shard, fresh in tqdm(shards_in_order(paths, backend, cached), total=len(paths), desc=desc, unit="shard",
                                    disable=not progress, leave=False):
            if fresh and registry is not None:
                registry.add(shard)
            parts.append(tok.tokenize_shard(shard, backend, gaps, files=(tokens, times)))
        n_tokens = tokens.length
    return write_subject_index(directory, parts, n_tokens, tok.has_latest)


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
    cluster=None,
) -> TokenizeSummary:
    """Fits a tokenizer on the training split (or loads one from ``vocab_from``) and writes
    ``out_dir/<split>/`` TokenizedDatasets for every split, plus the fitted tokenizer files at
    ``out_dir/``. ``config``: a TokenizerConfig or a config file; ``preset``: a shipped config
    (``TokenizerConfig.preset``) instead. Inputs are validated as they are read; the output
    directory appears only when everything succeeded. ``cluster``: run the shards as Dask tasks
    (``ehrfast.cluster``; ``local:N``, a scheduler address or a Client) — the same files as one
    process writes (``ehrfast.tokenize.on_cluster``)."""
    if preset is not None:
        if config is not None:
            raise InvalidInputError("give either a config or a preset, not both")
        config = TokenizerConfig.preset(preset)
    check_outputs(directories=[out_dir], inputs=[meds_dir, vocab_from, config if not isinstance(config, TokenizerConfig) else None],
                  overwrite=overwrite)
    check_cluster(cluster)
    if config is not None and not isinstance(config, TokenizerConfig):
        config = TokenizerConfig.load(config)
    with reuse_freed_memory():
        return _tokenize_dataset(meds_dir, out_dir, config, backend, vocab_from, cast_timestamps, overwrite, progress, cluster)


def loaded_or_config(meds_dir, shards: dict, config: TokenizerConfig | None, vocab_from) -> tuple[Tokenizer | None, TokenizerConfig]:
    """(the tokenizer loaded from ``vocab_from``, its config) or (None, the config to fit)."""
    if vocab_from is not None:
        if config is not None:
            raise InvalidInputError("give either a config or --vocab FROM_DIR, not both (the fitted tokenizer carries its config)")
        tok = Tokenizer.load(vocab_from)
        return tok, tok.config
    config = config or TokenizerConfig()
    if config.train_split not in shards:
        raise InvalidInputError(f"{meds_dir}: no '{config.train_split}' split to fit on (splits: {sorted(shards)})")
    return None, config


def _tokenize_dataset(meds_dir, out_dir, config: TokenizerConfig | None, backend, vocab_from, cast_timestamps: bool, overwrite: bool,
                      progress: bool, cluster) -> TokenizeSummary:
    t0 = time.perf_counter()
    backend = resolve_backend(backend, "tokenizer")
    shards = data_files(meds_dir, cast_timestamps=cast_timestamps)
    registry = SubjectRegistry()
    cached: dict[Path, ShardRows] = {}
    tok, config = loaded_or_config(meds_dir, shards, config, vocab_from)
    if cluster is not None:
        from ehrfast.tokenize.on_cluster import tokenize_on_cluster

        tok, summary = tokenize_on_cluster(shards, tok, config, backend, out_dir, overwrite, progress, cluster)
        return TokenizeSummary(str(out_dir), summary, len(tok.vocab), round(time.perf_counter() - t0, 3), backend, str(meds_dir))
    fitting = tok is None
    if fitting:
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
