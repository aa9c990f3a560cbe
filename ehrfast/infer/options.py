"""Scoring settings and the score stage's options — no torch import, so the command line can
be built without loading it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.errors import InvalidInputError
from ehrfast.inputs import DEFAULT_MIN_OVERLAP, check_min_overlap
from ehrfast.stages import cluster_option, option, overwrite_option, progress_option
from ehrfast.task import EventTask, Task


@dataclass(frozen=True)
class ScoreOptions:
    """How a cohort is scored: the random ``seed``, the torch ``device``, the ``model_name``
    written in the predictions (default: the checkpoint folder's name), ``strict_copy``
    (also write ``<stem>_strict.parquet``, the copy meds-evaluation reads; on by default), and, for event
    tasks, ``context_tokens`` (contexts are never cut for the token cap unless asked)."""

    def __post_init__(self):
        check_min_overlap(self.min_overlap, "min_overlap (--min-overlap)")
        if self.context_tokens is not None and (isinstance(self.context_tokens, bool) or self.context_tokens < 1):
            raise InvalidInputError(f"context_tokens must be a positive integer, got {self.context_tokens!r}")

    seed: int = option("random seed of the sampled futures", 0)
    device: str = option("torch device (cpu, cuda, ...); under torchrun each rank takes its LOCAL_RANK GPU", "cpu")
    model_name: str | None = option("model name written in the predictions (default: the checkpoint folder's name)", None,
                                    flag="--model-name")
    strict_copy: bool = option("also write <stem>_strict.parquet, the copy meds-evaluation-cli reads (its columns only, labelled rows)",
                               True, flag="--no-strict-copy", negate="do not write the meds-evaluation copy")
    context_tokens: int | None = option("event tasks: cut each context to its last this many tokens, static prefix kept (default: the "
                                        "model's window); context + token cap within the window lets the KV cache run", None)
    deterministic: bool = option("bit-identical results whatever the batching (slot count, batch size, ranks, other subjects): each "
                                 "subject's logits on shapes set by that subject alone; slower. Default: the random stream is keyed by "
                                 "(seed, subject, sample, step), but batched matmuls may round a row's logits differently", False)
    min_overlap: float = option("refuse when fewer than this share of the label rows have a subject in DATA", DEFAULT_MIN_OVERLAP)


@dataclass
class ScoreStageOptions:
    """``ehrfast score``: the arguments of ``ehrfast.infer.score_cohort``."""

    checkpoint: Path = option("checkpoint directory (e.g. RUN/model)", role="input", positional=True)
    data_dir: Path = option("one split of a tokenize output (e.g. TOKENS/held_out)", role="input", positional=True, metavar="DATA")
    labels_path: Path = option("label parquet (subject_id, prediction_time, boolean_value)", role="input", positional=True,
                               metavar="LABELS")
    task: Task | EventTask | Path = option("task file (YAML or JSON) or an ETHOS-ARES catalog name (hospital_mortality, ...)",
                                           role="input", flag="--task", parse=Path)
    out_path: Path = option("predictions parquet", role="output_file", flag="--out")
    options: ScoreOptions = option("scoring settings", default_factory=ScoreOptions)
    meds_dir: Path | None = option("MEDS dataset (for code descriptions in task patterns)", None, role="input", flag="--meds")
    prs_path: Path | None = option("PRS.parquet for models that read PRS", None, role="input", flag="--prs")
    trajectories_path: Path | None = option("incidence tasks: also write the sampled futures here (parquet: one row per generated token)",
                                            None, role="output_file", flag="--trajectories")
    samples_path: Path | None = option("event tasks: also write each sample's first event here (parquet: one row per sample)", None,
                                       role="output_file", flag="--samples")
    overwrite: bool = overwrite_option("existing output files")
    progress: bool = progress_option()
    cluster: str | None = cluster_option()
