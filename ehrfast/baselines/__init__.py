"""The baselines the ETHOS-ARES paper compares with (ARES.md S11–S12): early-warning scores at ED
triage and tabular models, written as method-scores files for ``ehrfast evaluate --methods``."""

from ehrfast.baselines.options import BaselinesSettings
from ehrfast.baselines.run import BaselinesSummary, run_baselines
from ehrfast.baselines.scores import SCORE_NAMES, early_warning_scores

__all__ = ["SCORE_NAMES", "BaselinesSettings", "BaselinesSummary", "early_warning_scores", "run_baselines"]
