"""Evaluation: the statistics of the papers, checked against scikit-learn, scipy and statsmodels.

Public API::

    evaluate(pairs, out_dir, ...)          # report folder for one or more tasks
    compare_pair(pred_a, pred_b, name)     # all numbers for one task
    model_metrics, paired_bootstrap, pr_difference, meta_analysis,
    compare_losses, spearman_vs_traits, reliability_curve, subgroup_auroc
"""

from ehrfast.evaluate.bootstrap import paired_bootstrap, pr_difference
from ehrfast.evaluate.calibration import reliability_curve, subgroup_auroc
from ehrfast.evaluate.compare import compare_pair, evaluate
from ehrfast.evaluate.meta import meta_analysis
from ehrfast.evaluate.metrics import MetricError, model_metrics
from ehrfast.evaluate.paired_tests import compare_losses, spearman_vs_traits
from ehrfast.evaluate.predictions import PredictionError

__all__ = [
    "MetricError",
    "PredictionError",
    "compare_losses",
    "compare_pair",
    "evaluate",
    "meta_analysis",
    "model_metrics",
    "paired_bootstrap",
    "pr_difference",
    "reliability_curve",
    "spearman_vs_traits",
    "subgroup_auroc",
]
