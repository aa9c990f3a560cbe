"""Training settings (``TrainConfig``) and the train stage's options — no torch import, so the
command line can be built without loading it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ehrfast.errors import InvalidInputError
from ehrfast.inputs import DEFAULT_MIN_OVERLAP, check_min_overlap
from ehrfast.model.config import MODALITIES, PRESET_NAMES
from ehrfast.stages import option, overwrite_option, progress_option

PRESETS = PRESET_NAMES
SCHEDULES = ("linear", "cosine")


@dataclass
class TrainConfig:
    preset: str = option("model: tiny (tests), demo (2 CPU cores), paper (the genomics paper's GPT) or ethos_ares (the ETHOS-ARES "
                         "model: 6 layers, 12 heads, 768 wide, 2048 window, dropout 0.3, no biases)", "demo", choices=PRESETS)
    modality: str = option("how the model reads PRS: none, cross (cross-attention) or prefix (soft tokens prepended)", "cross",
                           choices=MODALITIES)
    steps: int = option("optimizer steps", 300)
    batch_size: int = option("rows per step (per rank under torchrun)", 16)
    seq_len: int = option("tokens per row", 256)
    lr: float = option("peak learning rate", 1e-3)
    min_lr_ratio: float = option("final learning rate as a share of the peak", 0.1)
    warmup_steps: int = option("linear warm-up steps", 30)
    schedule: str = option("after the warm-up: linear (decay to min_lr_ratio·lr at the last step) or cosine (nanoGPT / ETHOS: "
                           "cosine to min_lr_ratio·lr at lr_decay_steps, then flat)", "linear", choices=SCHEDULES)
    lr_decay_steps: int | None = option("cosine: the step where the decay ends (default: steps)", None)
    beta2: float = option("AdamW β2 (ETHOS-ARES: 0.95)", 0.999)
    weight_decay: float = option("AdamW weight decay (matrices only)", 0.1)
    grad_clip: float = option("gradient-norm clip", 1.0)
    eval_every: int | None = option("steps between validation losses (default: 5 evaluations per run)", None)
    eval_batches: int = option("validation batches per evaluation", 8)
    seed: int = option("random seed", 0)
    device: str = option("torch device (cpu, cuda, cuda:1, ...)", "cpu")
    missing_prs: str = option("subjects without PRS: a learned 'missing' vector, or left out of training", "embedding",
                              choices=("embedding", "exclude"))
    min_prs_overlap: float = option("cross/prefix: refuse when fewer than this share of the training subjects (or of the PRS file's "
                                    "subjects, the smaller side) have PRS", DEFAULT_MIN_OVERLAP)
    pack: bool = option("several subjects per row, each with its own soft tokens (any modality)", True, flag="--no-pack",
                        negate="one subject per row, right-padded, instead of packed rows")

    def __post_init__(self):
        if self.eval_every is None:
            self.eval_every = max(1, self.steps // 5)
        for name in ("steps", "batch_size", "seq_len", "eval_every", "eval_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise InvalidInputError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        for name, low, high in (("lr", 0, math.inf), ("grad_clip", 0, math.inf)):
            value = getattr(self, name)
            if not low < value < high:
                raise InvalidInputError(f"{name} must be a positive finite number, got {value}")
        for name in ("min_lr_ratio", "weight_decay"):
            if not 0 <= getattr(self, name) < math.inf:
                raise InvalidInputError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.lr_decay_steps is None:
            self.lr_decay_steps = self.steps
        if isinstance(self.lr_decay_steps, bool) or not isinstance(self.lr_decay_steps, int) or self.lr_decay_steps <= self.warmup_steps:
            if self.schedule == "cosine":
                raise InvalidInputError(f"lr_decay_steps must be an integer > warmup_steps ({self.warmup_steps}), got {self.lr_decay_steps!r}")
        if self.schedule not in SCHEDULES:
            raise InvalidInputError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0 < self.beta2 < 1:
            raise InvalidInputError(f"beta2 must be in (0, 1), got {self.beta2}")
        if self.preset not in PRESETS:
            raise InvalidInputError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        if self.modality not in MODALITIES:
            raise InvalidInputError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        check_min_overlap(self.min_prs_overlap, "min_prs_overlap (--min-prs-overlap)")
        if self.missing_prs not in ("embedding", "exclude"):
            raise InvalidInputError(f"missing_prs must be 'embedding' or 'exclude', got {self.missing_prs!r}")


@dataclass
class TrainOptions:
    """``ehrfast train``: the arguments of ``ehrfast.train.train``."""

    data_dir: Path = option("tokenize output directory (train/ and tuning/ splits)", role="input", positional=True,
                            metavar="TOKENS_DIR")
    out_dir: Path = option("run directory: model/ (checkpoint), last/ (resumable state), history.json", role="output_dir",
                           flag="--out")
    cfg: TrainConfig = option("training settings", default_factory=TrainConfig)
    prs_path: Path | None = option("PRS.parquet from `ehrfast prs`, or pgsc_calc aggregated_scores.txt.gz (needed for modality cross/prefix)", None, role="input",
                                   flag="--prs")
    resume: bool = option("continue the run in OUT from OUT/last", False)
    overwrite: bool = overwrite_option("a run directory OUT (start it afresh)")
    stop_after: int | None = option("pause after this many steps (resumable)", None, cli=False)
    progress: bool = progress_option()
