"""Classification metrics on one set of scores, and threshold selection.

All functions take ``label`` [n] bool and ``score`` [n] float (higher = more likely positive).
AUROC and AUPRC treat tied scores exactly as scikit-learn does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.ranking import RankedScores

THRESHOLD_RULES = ("fixed", "youden", "closest")
THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1", "specificity")
BOOTSTRAP_METRICS = ("auroc", "auprc", *THRESHOLD_METRICS, "brier")


class MetricError(InvalidInputError):
    """A metric is undefined for this input (e.g. only one class)."""


def check_binary(label: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(label).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise MetricError(f"label and score must be 1-D of equal length, got {y.shape} and {s.shape}")
    if len(y) == 0:
        raise MetricError("no subjects to evaluate (empty input)")
    if not np.isfinite(s).all():
        raise MetricError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise MetricError(f"only one class present ({n_pos} positives of {len(y)}); AUROC/AUPRC are undefined")
    return y, s


def roc_points(label, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, descending, starting at (0, 0, +inf)."""
    y, s = check_binary(label, score)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_group]
    fp = np.cumsum(~y)[last_of_group]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]], np.r_[np.inf, s[last_of_group]]


def auroc(label, score) -> float:
    """Area under the ROC curve (Mann–Whitney with ties counted one half)."""
    y, s = check_binary(label, score)
    return float(RankedScores(y, s).auroc_auprc(np.ones((1, len(y))))[0][0])


def average_precision(label, score) -> float:
    """AUPRC as average precision: Σ_k (R_k − R_{k−1}) P_k over distinct thresholds."""
    y, s = check_binary(label, score)
    return float(RankedScores(y, s).auroc_auprc(np.ones((1, len(y))))[1][0])


def choose_threshold(label, score, rule: str = "fixed", fixed: float = 0.5) -> float:
    """A decision threshold: ``fixed``, ``youden`` (max TPR − FPR) or ``closest`` to (0, 1)
    on the ROC curve (the ETHOS papers' rule). Predicted positive means score ≥ threshold."""
    if rule == "fixed":
        return float(fixed)
    if rule not in THRESHOLD_RULES:
        raise InvalidInputError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    fpr, tpr, thr = roc_points(label, score)
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]  # drop the (0, 0, inf) start
    if rule == "youden":
        k = int(np.argmax(tpr - fpr))
    else:
        k = int(np.argmin(fpr**2 + (1 - tpr) ** 2))
    return float(thr[k])


def confusion_metrics(label, score, threshold: float) -> dict[str, float]:
    """accuracy, precision, recall, F1, specificity at ``score >= threshold``.
    Precision with no predicted positives is 0 (scikit-learn's zero_division=0)."""
    y = np.asarray(label).astype(bool)
    pred = np.asarray(score) >= threshold
    tp = float(np.sum(pred & y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    tn = float(np.sum(~pred & ~y))
    return _confusion_to_metrics(tp, fp, fn, tn)


def _confusion_to_metrics(tp, fp, fn, tn):
    """Works on floats or arrays of equal shape."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1e-300), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
        specificity = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1e-300), 0.0)
        accuracy = (tp + tn) / (tp + fp + fn + tn)
    out = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "specificity": specificity}
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def brier(label, score) -> float:
    """Mean squared error of probabilities against outcomes."""
    return float(np.mean((np.asarray(score, float) - np.asarray(label, float)) ** 2))


def n_operating_points(score) -> int:
    """Distinct thresholds available on the ROC curve (= distinct score values).
    Monte-Carlo frequencies from N samples give at most N + 1."""
    return int(len(np.unique(np.asarray(score))))


@dataclass(frozen=True)
class ModelMetrics:
    """All metrics of one model on one task."""

    n: int
    n_positive: int
    auroc: float
    auprc: float
    threshold: float
    threshold_rule: str
    accuracy: float
    precision: float
    recall: float
    f1: float
    specificity: float
    brier: float
    operating_points: int


def model_metrics(label, score, threshold_rule: str = "fixed", fixed_threshold: float = 0.5) -> ModelMetrics:
    y, s = check_binary(label, score)
    thr = choose_threshold(y, s, threshold_rule, fixed_threshold)
    return ModelMetrics(
        n=len(y),
        n_positive=int(y.sum()),
        auroc=auroc(y, s),
        auprc=average_precision(y, s),
        threshold=thr,
        threshold_rule=threshold_rule,
        **confusion_metrics(y, s, thr),
        brier=brier(y, s),
        operating_points=n_operating_points(s),
    )
