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


BIN_STRATEGIES = ("quantile", "uniform")
BRIER_LABELS = ((0.05, "excellent"), (0.10, "good"), (0.20, "acceptable"))  # the ETHOS-ARES paper's reading; else "poor"


def brier_label(brier_score: float) -> str:
    """The paper's words for a Brier score: < 0.05 excellent, < 0.10 good, < 0.20 acceptable, else poor."""
    return next((label for bound, label in BRIER_LABELS if brier_score < bound), "poor")


def quantile_bins(score, n_bins: int) -> np.ndarray:
    """Bin index per prediction using quantile edges, as scikit-learn's calibration_curve does."""
    edges = np.percentile(score, np.linspace(0, 1, n_bins + 1) * 100)
    return np.searchsorted(edges[1:-1], score)


def uniform_bins(score, n_bins: int) -> np.ndarray:
    """Bin index per prediction on equal-width bins of [0, 1] (the ETHOS-ARES calibration plots;
    scikit-learn's ``strategy="uniform"``: a score on an inner edge falls in the bin below)."""
    edges = np.linspace(0.0, 1.0 + 1e-8, n_bins + 1)
    return np.searchsorted(edges[1:-1], score)


def reliability_curve(label, score, n_bins: int = 10, iterations: int = 500, seed: int = 0, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                      strategy: str = "quantile", clusters: np.ndarray | None = None) -> Reliability:
    """Reliability on ``n_bins`` quantile or uniform bins, with a 95 % bootstrap band (resampling
    predictions, or whole subjects with ``clusters``) and the Brier score. With uniform bins the
    band is the reference's (ETHOS-ARES): each resample's curve — its own mean prediction and
    observed rate per non-empty bin — linearly interpolated onto the point estimate's mean
    predictions; with quantile bins each bin's observed rate is resampled in place."""
    y = np.asarray(label, np.float64)
    s = np.asarray(score, np.float64)
    if len(y) == 0:
        raise MetricError("no subjects to calibrate")
    if strategy not in BIN_STRATEGIES:
        raise MetricError(f"calibration bins must be one of {BIN_STRATEGIES}, got {strategy!r}")
    bins = quantile_bins(s, n_bins) if strategy == "quantile" else uniform_bins(s, n_bins)
    onehot = np.zeros((len(s), n_bins))
    onehot[np.arange(len(s)), bins] = 1.0
    total = onehot.sum(0)
    nonzero = total > 0
    predicted = (s @ onehot)[nonzero] / total[nonzero]
    observed = (y @ onehot)[nonzero] / total[nonzero]
    boot = []
    for w in resample_counts(len(s), iterations, seed, memory_bytes, clusters):
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = w @ onehot
            observed_w = ((w * y) @ onehot) / weight
            if strategy == "uniform":
                predicted_w = ((w * s) @ onehot) / weight
                rows = np.full((len(w), int(nonzero.sum())), np.nan)
                for r in range(len(w)):
                    keep = weight[r] > 0
                    if keep.any():
                        rows[r] = np.interp(predicted, predicted_w[r, keep], observed_w[r, keep])
                boot.append(rows)
            else:
                boot.append(observed_w[:, nonzero])
    b = np.concatenate(boot)
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
