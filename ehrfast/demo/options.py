"""The demo's options (``ehrfast demo``)."""

from __future__ import annotations

from dataclasses import dataclass

from ehrfast.stages import option


@dataclass(frozen=True)
class DemoOptions:
    n_subjects: int = option("cohort size", 5_000, flag="--subjects")
    seed: int = option("random seed of every stage", 0)
    force: bool = option("rerun stages that already finished", False)
    train_steps: int = option("training steps per model", 2_000)
