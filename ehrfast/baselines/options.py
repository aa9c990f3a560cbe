"""Settings of the baselines stage (light: no numpy work at import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.baselines.features import FeatureCodes
from ehrfast.baselines.triage import TriageCodes
from ehrfast.stages import option, overwrite_option, progress_option


@dataclass(frozen=True)
class BaselinesSettings:
    """Which baselines, for which label rows, fitted on what."""

    scores: bool = option("the six early-warning scores NEWS, NEWS2, MEWS, REMS, CART, ESI (triage vitals at every anchor)", True,
                          flag="--no-scores", negate="leave the early-warning scores out (anchors without triage, e.g. admissions)")
    tabular: bool = option("also the tabular models LR, RF, GB and MLP, fitted on the training split's label rows", False)
    splits: tuple[str, ...] = option("splits whose label rows are scored", ("held_out",))
    train_split: str = option("the split the imputation medians and the tabular models are fitted on", "train")
    seed: int = option("random seed of the tabular models", 0)
    triage_window_hours: float = option("tabular features: the latest triage within this many hours before the anchor", 24.0)
    triage_codes: TriageCodes = option("MEDS codes of the triage values", default_factory=TriageCodes, cli=False)
    feature_codes: FeatureCodes = option("MEDS codes of visits, diagnoses, gender and birth", default_factory=FeatureCodes, cli=False)

    def __post_init__(self):
        object.__setattr__(self, "splits", tuple(self.splits))


@dataclass
class BaselinesStageOptions:
    """``ehrfast baselines``: the arguments of ``ehrfast.baselines.run_baselines``."""

    meds_dir: Path = option("MEDS dataset the labels were made from", role="input", positional=True, metavar="MEDS_DIR")
    labels_path: Path = option("label file (ehrfast label; the train split's rows too with --tabular)", role="input", positional=True,
                               metavar="LABELS")
    out_path: Path = option("method-scores parquet: one column per method, higher = riskier", role="output_file", flag="--out")
    settings: BaselinesSettings = option("baseline settings", default_factory=BaselinesSettings)
    overwrite: bool = overwrite_option("the method-scores file")
    progress: bool = progress_option()
