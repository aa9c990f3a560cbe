"""The demo's options (``ehrfast demo``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.stages import option, progress_option


@dataclass(frozen=True)
class DemoOptions:
    n_subjects: int = option("cohort size", 5_000, flag="--subjects")
    seed: int = option("random seed of every stage", 0)
    force: bool = option("rerun stages that already finished", False)
    train_steps: int = option("training steps per model", 2_000)
    ares: bool = option("run the ETHOS-ARES demo instead (ARES.md S15): the MIMIC-IV demo in MEDS and the synthetic hospital world — "
                        "scoring at admission, trajectories with explanations, figures", False)
    mimic: Path | None = option("--ares: the MIMIC-IV demo in MEDS (default: ../shared/data/mimic-iv-demo-meds)", None)
    ares_train_steps: int = option("--ares: training steps per model", 400)
    device: str = option("torch device for training and sampling (cpu, cuda, cuda:1, ...)", "cpu")
    progress: bool = progress_option()
