"""Evaluation settings and the evaluate stage's options (light: no numpy work at import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.stages import option, overwrite_option, progress_option

THRESHOLD_RULES = ("fixed", "youden", "closest")
DEFAULT_SCORE = "predicted_boolean_probability"


@dataclass(frozen=True)
class EvaluateOptions:
    """How model A is compared with model B: task ``names`` (one per pair of files), the two
    ``model_names``, the ``score_column`` ranked, bootstrap ``iterations`` and ``seed``, the
    threshold rule of the thresholded metrics, PRS ``traits`` for the Spearman analysis,
    ``subgroup_columns``, a per-subject ``loss_column`` for paired tests, other score columns
    to report beside the main one, the tasks pooled by the meta-analysis (default all), and
    whether the bootstrap resamples predictions (the default) or whole subjects."""

    names: tuple[str, ...] | None = option("task names, one per pair (default: file names of B)", None)
    model_names: tuple[str, str] = option("names of model A and model B", ("A", "B"), metavar=("A", "B"))
    score_column: str = option("the score column to rank", DEFAULT_SCORE)
    iterations: int = option("bootstrap iterations", 2000)
    seed: int = option("random seed of the bootstrap", 0)
    threshold_rule: str = option("threshold rule of the thresholded metrics (precision, recall, F1, ...): closest (the ROC point "
                                 "closest to (0, 1), chosen per model on the data), youden, or fixed (--fixed-threshold)", "closest",
                                 flag="--threshold", choices=THRESHOLD_RULES)
    fixed_threshold: float = option("the threshold of the 'fixed' rule", 0.5)
    traits: tuple[str, ...] | None = option("PRS trait columns to correlate with P(B) − P(A)", None)
    subgroup_columns: tuple[str, ...] = option("columns of --subgroups to break AUROC down by", ())
    loss_column: str | None = option("per-subject test-loss column present in both files: paired t / Wilcoxon tests", None)
    other_score_columns: tuple[str, ...] = option("other score columns reported beside the main one (AUROC, operating points)", ())
    meta_tasks: tuple[str, ...] | None = option("tasks pooled by the meta-analysis (default: every task)", None)
    cluster_by_subject: bool = option("bootstrap whole subjects (each with all of its predictions) instead of single predictions", False)
    calibration_bins: str = option("calibration bins: quantile, or uniform (equal-width, as the ETHOS-ARES plots)", "quantile",
                                   choices=("quantile", "uniform"))

    def __post_init__(self):
        for name in ("names", "traits", "subgroup_columns", "other_score_columns", "meta_tasks", "model_names"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))


@dataclass
class EvaluateStageOptions:
    """``ehrfast evaluate``: the arguments of ``ehrfast.evaluate.evaluate``."""

    pairs: tuple[tuple[Path, Path], ...] = option("prediction files in pairs: A B [A B ...] (one pair per task)", role="input",
                                                 positional=True, metavar="PRED")
    out_dir: Path = option("report directory", role="output_dir", flag="--out")
    options: EvaluateOptions = option("evaluation settings", default_factory=EvaluateOptions)
    prs_path: Path | None = option("PRS.parquet from `ehrfast prs` (or pgsc_calc aggregated_scores.txt.gz) for the Spearman analysis", None, role="input",
                                   flag="--prs")
    subgroups_path: Path | None = option("parquet with subject_id and demographic columns", None, role="input", flag="--subgroups")
    demographics_from: Path | None = option("MEDS dataset: also break AUROC down by gender and race (ETHOS-ARES race groups)", None,
                                            role="input", flag="--demographics")
    methods: tuple[str, ...] = option("method-scores files set beside A and B in the methods table: TASK=FILE (from ehrfast baselines; "
                                      "every method column of FILE), any number per task", (), metavar="TASK=FILE")
    overwrite: bool = overwrite_option("the report directory")
    progress: bool = progress_option()
