"""The export-hf stage's options (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.stages import option, overwrite_option


@dataclass
class ExportHFOptions:
    """``ehrfast export-hf``: the arguments of ``ehrfast.model.export_hf``."""

    model_dir: Path = option("checkpoint directory (RUN/model of ehrfast train)", role="input", positional=True, metavar="MODEL_DIR")
    out_dir: Path = option("output directory: a Hugging Face GPT-2 model + tokenizer (GPT2LMHeadModel.from_pretrained reads it)",
                           role="output_dir", positional=True, metavar="OUT")
    overwrite: bool = overwrite_option("the output directory")
