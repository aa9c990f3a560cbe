"""The tokenize stage's options (light: the command line is built from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.stages import cluster_option, option, overwrite_option, progress_option
from ehrfast.tokenize.config import TOKENIZER_PRESETS, TokenizerConfig


@dataclass
class TokenizeOptions:
    """``ehrfast tokenize``: the arguments of ``ehrfast.tokenize.tokenize_dataset``."""

    meds_dir: Path = option("MEDS dataset directory", role="input", positional=True)
    out_dir: Path = option("output directory: one TokenizedDataset per split, plus the fitted tokenizer", role="output_dir",
                           positional=True)
    config: TokenizerConfig | Path | None = option("tokenizer config JSON (a TokenizerConfig, or a saved tokenizer.json)", None,
                                                   role="input", parse=Path)
    backend: str | None = option("auto, fast (the C++ core) or reference (Python); default: the process setting", None)
    vocab_from: Path | None = option("reuse the tokenizer fitted in this directory instead of fitting", None, role="input",
                                     flag="--vocab", metavar="FROM_DIR")
    preset: str | None = option("a shipped tokenizer config instead of --config: ethos_mimic (the ETHOS-ARES MIMIC-IV rules)", None,
                                choices=TOKENIZER_PRESETS)
    cast_timestamps: bool = option("read nanosecond or time-zone-aware 'time' columns as timestamp[us] (UTC)", False)
    overwrite: bool = overwrite_option("the output directory")
    progress: bool = progress_option()
    cluster: str | None = cluster_option()
