"""What ``evaluate`` returns and writes as ``results.json``: typed results per task, the
meta-analysis, and the settings they came from. ``results.json`` is ``to_json()`` of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ehrfast.evaluate.bootstrap import Delta, PairedBootstrap, PRDifference
from ehrfast.evaluate.calibration import Reliability, SubgroupAUROC
from ehrfast.evaluate.meta import MetaAnalysis
from ehrfast.evaluate.methods import MethodRow
from ehrfast.evaluate.metrics import ModelMetrics
from ehrfast.evaluate.paired_tests import LossComparison

RESULTS_FORMAT_VERSION = 1


@dataclass
class BootstrapSummary:
    """The paired bootstrap of one task, without its resamples: Δ per metric (B − A)."""

    iterations_used: int
    skipped_one_class: int
    p_floor: float  # the smallest p-value the resamples can show: 1 / iterations_used
    threshold_a: float
    threshold_b: float
    deltas: dict[str, Delta]


@dataclass
class ScorePair:
    """Both models' metrics under one score column."""

    metrics_a: ModelMetrics
    metrics_b: ModelMetrics


@dataclass
class TraitSpearman:
    """Spearman of per-subject P(B) − P(A) with PRS traits (one-sided, rho > 0), and of the label
    with each trait (``label_p_value``: whether the trait is itself associated with the outcome)."""

    n: int
    traits: list[str]
    rho: list[float]
    p_value: list[float]
    label_p_value: list[float]


@dataclass
class TaskResult:
    """Every number of one task (one pair of prediction files)."""

    n: int
    n_positive: int
    notes: list[str]
    metrics_a: ModelMetrics
    metrics_b: ModelMetrics
    bootstrap: BootstrapSummary
    pr_difference: PRDifference
    calibration_a: Reliability
    calibration_b: Reliability
    other_scores: dict[str, ScorePair] = field(default_factory=dict)
    methods: list[MethodRow] = field(default_factory=list)  # per model: AUROC, AUPRC, sensitivity, specificity with CIs
    loss_tests: LossComparison | None = None
    spearman: TraitSpearman | None = None
    subgroups: dict[str, dict[str, list[SubgroupAUROC]]] | None = None  # column -> model -> groups
    subgroup_variability: dict[str, float | None] | None = None  # column -> Bartlett p of the two models' subgroup AUROCs


@dataclass
class EvaluationResult:
    """Model B against model A on every task: ``tasks`` by name, the ``meta_analysis`` of
    Δ AUROC when two or more tasks were pooled, and the settings."""

    out_dir: str
    model_names: list[str]
    iterations: int
    seed: int
    score_column: str
    alpha: float
    tasks: dict[str, TaskResult]
    meta_analysis: MetaAnalysis | None = None
    format_version: int = RESULTS_FORMAT_VERSION

    def to_json(self) -> dict:
        """``results.json``: plain JSON types, NaN as null, absent optional parts left out."""
        d = dataclasses.asdict(self)
        d.pop("out_dir")
        for task in d["tasks"].values():
            for key in ("loss_tests", "spearman", "subgroups", "subgroup_variability"):
                if task[key] is None:
                    del task[key]
        if d["meta_analysis"] is None:
            del d["meta_analysis"]
        return _jsonable(d)

    def describe(self) -> str:
        lines = []
        for name, t in self.tasks.items():
            d = t.bootstrap.deltas["auroc"]
            p = f"< {t.bootstrap.p_floor:.1e}" if d.p_at_floor else f"= {d.p_value:.4f}"
            lines.append(f"{name}: AUROC A {d.value_a:.4f}  B {d.value_b:.4f}  Δ {d.mean:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}]  p {p}")
        if self.meta_analysis is not None:
            m = self.meta_analysis
            pooled = getattr(m, m.emphasized)
            lines.append(f"meta-analysis ({m.emphasized} effects): pooled Δ AUROC {pooled.estimate:+.4f} [{pooled.ci_low:+.4f}, "
                         f"{pooled.ci_high:+.4f}]  p = {pooled.p_value:.3g}")
        lines.append(f"report: {self.out_dir}/report.md, {self.out_dir}/report.html, {self.out_dir}/results.json")
        return "\n".join(lines)


@dataclass
class TaskComparison:
    """Everything computed for one task (one pair of prediction files), arrays included."""

    name: str
    subject_id: np.ndarray
    label: np.ndarray
    score_a: np.ndarray
    score_b: np.ndarray
    metrics_a: ModelMetrics
    metrics_b: ModelMetrics
    bootstrap: PairedBootstrap
    pr: PRDifference
    calibration_a: Reliability
    calibration_b: Reliability
    methods: list[MethodRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # other score columns of the same predictions (e.g. mc_frequency): column -> (metrics A, metrics B)
    other_scores: dict[str, tuple[ModelMetrics, ModelMetrics]] = field(default_factory=dict)

    def result(self) -> TaskResult:
        """The serializable summary (no per-subject arrays, no bootstrap resamples)."""
        boot = self.bootstrap
        return TaskResult(
            n=self.metrics_a.n, n_positive=self.metrics_a.n_positive, notes=list(self.notes), metrics_a=self.metrics_a,
            metrics_b=self.metrics_b,
            bootstrap=BootstrapSummary(boot.iterations_used, boot.skipped_one_class, boot.p_floor, boot.threshold_a, boot.threshold_b,
                                       dict(boot.deltas)),
            pr_difference=self.pr, calibration_a=self.calibration_a, calibration_b=self.calibration_b,
            other_scores={c: ScorePair(a, b) for c, (a, b) in self.other_scores.items()}, methods=list(self.methods))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and x != x:
        return None  # NaN -> null
    return x
