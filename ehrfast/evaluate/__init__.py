"""Evaluation: the statistics of the papers, checked against scikit-learn, scipy and statsmodels.

Public API (imported on first use)::

    evaluate(pairs, out_dir, EvaluateOptions(...), *, prs_path, subgroups_path) -> EvaluationResult
    compare_pair(pred_a, pred_b, name)     # all numbers for one task
    model_metrics, paired_bootstrap, pr_difference, meta_analysis,
    compare_losses, spearman_vs_traits, reliability_curve, subgroup_auroc
"""

from typing import TYPE_CHECKING

from ehrfast._lazy import lazy_exports

_EXPORTS = {
    "paired_bootstrap": "bootstrap", "pr_difference": "bootstrap", "reliability_curve": "calibration", "subgroup_auroc": "calibration",
    "compare_pair": "compare", "evaluate": "compare", "meta_analysis": "meta", "MetricError": "metrics", "model_metrics": "metrics",
    "EvaluateOptions": "options", "compare_losses": "paired_tests", "spearman_vs_traits": "paired_tests",
    "PredictionError": "predictions", "EvaluationResult": "result", "TaskResult": "result",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "EvaluateOptions",
    "EvaluationResult",
    "MetricError",
    "PredictionError",
    "TaskResult",
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

if TYPE_CHECKING:
    from ehrfast.evaluate.bootstrap import paired_bootstrap, pr_difference
    from ehrfast.evaluate.calibration import reliability_curve, subgroup_auroc
    from ehrfast.evaluate.compare import compare_pair, evaluate
    from ehrfast.evaluate.meta import meta_analysis
    from ehrfast.evaluate.metrics import MetricError, model_metrics
    from ehrfast.evaluate.options import EvaluateOptions
    from ehrfast.evaluate.paired_tests import compare_losses, spearman_vs_traits
    from ehrfast.evaluate.predictions import PredictionError
    from ehrfast.evaluate.result import EvaluationResult, TaskResult
