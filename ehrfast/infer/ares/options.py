"""Settings of ARES trajectories and the options of ``ehrfast ares`` and ``ehrfast next-token`` —
no torch import, so the command line can be built without loading it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ehrfast.errors import InvalidInputError
from ehrfast.stages import option, overwrite_option, progress_option
from ehrfast.task import EventTask, catalog_task

POSITIONS = ("every_token", "every_k", "per_timestamp", "per_group")
REQUIRED_EVENTS = {"mortality": ("death", "discharge"), "icu": ("icu", "death", "discharge")}
NEXT_TOKEN_TASK_NAMES = ("drg", "sofa", "sofa_at_unit")


def _positive(name: str, value, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True)
class TrajectorySettings:
    """How trajectories are sampled (ARES.md S7): which positions of a stay, how many futures at
    each, their token cap, the context length, the prolonged-stay thresholds (θ before and after
    the switch, which happens at the first), the seed, common random numbers, and the base tasks
    (catalog names or ``EventTask`` s with events named death, discharge and, for ICU, icu)."""

    positions: str = option("every_token; every_k (every k-th token from the first, plus the last); per_timestamp (the last token "
                            "of each distinct time); per_group (the last token of each explanation group)", "every_token",
                            choices=POSITIONS)
    every_k: int = option("k of positions=every_k", 10)
    n_samples: int = option("sampled futures per position (the paper's N)", 100)
    max_new_tokens: int | None = option("token cap of each future (default: the scorer's safety cap, 16,384)", None)
    context_tokens: int | None = option("cut each context to its last this many tokens, static prefix kept (default: the model's "
                                        "window); context + token cap within the window lets the KV cache run", None)
    thresholds_days: tuple[float, float] = option("prolonged stay: θ while the stay is younger than the first, then the second", (10.0, 15.0))
    seed: int = option("random seed of the sampled futures", 0)
    common_random_numbers: bool = option("one random stream per stay, shared by its positions: low-variance risk differences for the "
                                         "explanations", False, flag="--crn")
    deterministic: bool = option("bit-identical trajectories whatever the batching: each stay position decoded on its own "
                                 "(slower; see ehrfast score --deterministic)", False)
    mortality_task: str | EventTask = option("base task of the mortality run", "hospital_mortality", cli=False, parse=str)
    icu_task: str | EventTask = option("base task of the ICU run", "icu_admission", cli=False, parse=str)

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise InvalidInputError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        _positive("every_k", self.every_k)
        _positive("n_samples", self.n_samples)
        _positive("max_new_tokens", self.max_new_tokens, optional=True)
        _positive("context_tokens", self.context_tokens, optional=True)
        first, second = (float(x) for x in self.thresholds_days)
        if not (np.isfinite(first) and np.isfinite(second) and 0 < first <= second):
            raise InvalidInputError(f"thresholds_days must be finite with 0 < first <= second, got {self.thresholds_days}")
        object.__setattr__(self, "thresholds_days", (first, second))

    def task(self, which: str) -> EventTask:
        """The base task of the ``mortality`` or ``icu`` run, its events checked."""
        spec = self.mortality_task if which == "mortality" else self.icu_task
        task = catalog_task(spec) if isinstance(spec, str) else spec
        missing = [e for e in REQUIRED_EVENTS[which] if e not in task.events]
        if missing:
            raise InvalidInputError(f"the {which} run's task {task.name!r} needs events named {list(REQUIRED_EVENTS[which])}; "
                                    f"it has {list(task.events)} (missing {missing})")
        return task


@dataclass
class AresStageOptions:
    """``ehrfast ares``: the arguments of ``ehrfast.infer.ares.run_ares``."""

    checkpoint: Path = option("checkpoint directory (e.g. RUN/model)", role="input", positional=True)
    data_dir: Path = option("one split of a tokenize output (e.g. TOKENS/held_out)", role="input", positional=True, metavar="DATA")
    anchors_path: Path = option("anchored labels of the stays (ehrfast label --task hospital_mortality)", role="input", flag="--anchors")
    out_dir: Path = option("output directory: trajectory.parquet, explanations.parquet, figures, index.html", role="output_dir",
                           flag="--out")
    settings: TrajectorySettings = option("trajectory settings", default_factory=TrajectorySettings)
    stays: tuple[str, ...] | None = option("only these stays, as SUBJECT or SUBJECT:ANCHOR_ID (default: every stay of the anchors in DATA)",
                                           None)
    max_stays: int | None = option("at most this many stays, the first of the anchors file (after --stays)", None)
    top_k: int = option("explanation: groups per stay and component", 5)
    figures: int = option("at most this many stays get a figure (the overview shows all)", 6)
    device: str = option("torch device (cpu, cuda, ...)", "cpu")
    prs_path: Path | None = option("PRS.parquet for models that read PRS", None, role="input", flag="--prs")
    truth_path: Path | None = option("a synthetic cohort's ground_truth/stay_trajectories.parquet: draw the true risk beside the estimate",
                                     None, role="input", flag="--truth")
    overwrite: bool = overwrite_option("the output directory")
    progress: bool = progress_option()

    def __post_init__(self):
        _positive("top_k", self.top_k)
        _positive("max_stays", self.max_stays, optional=True)
        if isinstance(self.figures, bool) or not isinstance(self.figures, int) or self.figures < 0:
            raise InvalidInputError(f"figures must be a non-negative integer, got {self.figures!r}")


@dataclass
class NextTokenStageOptions:
    """``ehrfast next-token``: the arguments of ``ehrfast.infer.ares.run_next_token``."""

    checkpoint: Path = option("checkpoint directory (e.g. RUN/model)", role="input", positional=True)
    data_dir: Path = option("one split of a tokenize output (e.g. TOKENS/held_out)", role="input", positional=True, metavar="DATA")
    task: str = option("drg (at the real HCFA DRG), sofa (ETHOS tokens: ICU_ADMISSION, type, SOFA, Q) or sofa_at_unit "
                       "(ICU_ADMISSION//<unit>, SOFA, Q)", flag="--task", choices=NEXT_TOKEN_TASK_NAMES)
    out_path: Path = option("readouts parquet (one row per read)", role="output_file", flag="--out")
    parity: bool = option("SOFA: marginalise the ICU type over its tokens, as the reference's sampling does", False)
    device: str = option("torch device (cpu, cuda, ...)", "cpu")
    prs_path: Path | None = option("PRS.parquet for models that read PRS", None, role="input", flag="--prs")
    overwrite: bool = overwrite_option("the readouts file")
