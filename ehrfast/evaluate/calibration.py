"""Calibration (reliability curve with a bootstrap band) and AUROC by subgroup."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrfast.evaluate.bootstrap import DEFAULT_MEMORY_BYTES, auroc_ci, resample_counts
from ehrfast.evaluate.metrics import MetricError, brier


@dataclass(frozen=True)
class Reliability:
    """Per quantile bin (empty bins dropped): mean predicted probability, observed frequency
    with a 95% bootstrap band, and the number of subjects."""

    predicted: np.ndarray
    observed: np.ndarray
    observed_low: np.ndarray
    observed_high: np.ndarray
    count: np.ndarray
    brier: float


def quantile_bins(score, n_bins: int) -> np.ndarray:
    """Bin index per subject using quantile edges, as scikit-learn's calibration_curve does."""
    edges = np.percentile(score, np.linspace(0, 1, n_bins + 1) * 100)
    return np.searchsorted(edges[1:-1], score)


def reliability_curve(label, score, n_bins: int = 10, iterations: int = 500, seed: int = 0, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> Reliability:
    y = np.asarray(label, np.float64)
    s = np.asarray(score, np.float64)
    if len(y) == 0:
        raise MetricError("no subjects to calibrate")
    bins = quantile_bins(s, n_bins)
    onehot = np.zeros((len(s), n_bins))
    onehot[np.arange(len(s)), bins] = 1.0
    total = onehot.sum(0)
    nonzero = total > 0
    predicted = (s @ onehot)[nonzero] / total[nonzero]
    observed = (y @ onehot)[nonzero] / total[nonzero]
    boot = []
    for w in resample_counts(len(s), iterations, seed, memory_bytes):
        with np.errstate(invalid="ignore", divide="ignore"):
            boot.append(((w * y) @ onehot) / (w @ onehot))
    b = np.concatenate(boot)[:, nonzero]
    lo, hi = np.nanpercentile(b, [2.5, 97.5], axis=0)
    return Reliability(predicted, observed, lo, hi, total[nonzero].astype(int), brier(y, s))


@dataclass(frozen=True)
class SubgroupAUROC:
    group: str
    n: int
    n_positive: int
    auroc: float
    ci_low: float
    ci_high: float
    note: str = ""


def subgroup_auroc(label, score, groups, iterations: int = 1000, seed: int = 0) -> list[SubgroupAUROC]:
    """AUROC with a 95% bootstrap CI in each subgroup (the ETHOS demographic table);
    groups with one class only get NaN and a note saying so."""
    y = np.asarray(label, bool)
    s = np.asarray(score, np.float64)
    g = np.asarray(groups).astype(str)
    out = []
    for value in ["(all)", *sorted(np.unique(g))]:
        m = np.ones(len(y), bool) if value == "(all)" else g == value
        n_pos = int(y[m].sum())
        if n_pos == 0 or n_pos == m.sum():
            out.append(SubgroupAUROC(value, int(m.sum()), n_pos, float("nan"), float("nan"), float("nan"), "one class only"))
            continue
        auc, lo, hi = auroc_ci(y[m], s[m], iterations, seed)
        out.append(SubgroupAUROC(value, int(m.sum()), n_pos, auc, lo, hi))
    return out
