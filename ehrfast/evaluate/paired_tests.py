"""Paired tests on per-subject test loss, and Spearman correlation of probability
differences with PRS traits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ehrfast.errors import InvalidInputError

SHAPIRO_MAX_N = 5000  # scipy's Shapiro–Wilk p-value is unreliable above this size


@dataclass(frozen=True)
class LossComparison:
    n: int
    mean_difference: float  # mean(loss_b − loss_a); negative = B has lower loss
    t_statistic: float
    t_p_value: float
    normality_test: str
    normality_p_value: float
    differences_normal: bool  # at alpha 0.05
    wilcoxon_statistic: float
    wilcoxon_p_value: float
    recommended_test: str  # "paired t-test" if the differences look normal, else "Wilcoxon"
    recommended_p_value: float


def paired_t_test(a, b) -> tuple[float, float]:
    """Paired t-test of mean(b − a) = 0: (t, two-sided p)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    n = len(d)
    sd = d.std(ddof=1)
    if sd == 0:
        return (float("nan"), float("nan"))
    t = d.mean() / (sd / np.sqrt(n))
    return float(t), float(2 * stats.t.sf(abs(t), n - 1))


def compare_losses(loss_a, loss_b, alpha: float = 0.05) -> LossComparison:
    """The genomics paper's test of per-subject test loss: a paired t-test when the
    differences look normal (Shapiro–Wilk, or D'Agostino–Pearson above 5,000 subjects),
    the Wilcoxon signed-rank test otherwise. Both are always reported."""
    a = np.asarray(loss_a, np.float64)
    b = np.asarray(loss_b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidInputError(f"loss arrays must be 1-D and paired, got {a.shape} and {b.shape}")
    if len(a) < 3:
        raise InvalidInputError(f"need at least 3 paired losses, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidInputError("losses must be finite")
    d = b - a
    t, t_p = paired_t_test(a, b)
    if len(d) <= SHAPIRO_MAX_N:
        name, norm_p = "Shapiro-Wilk", float(stats.shapiro(d).pvalue)
    else:
        name, norm_p = "D'Agostino-Pearson", float(stats.normaltest(d).pvalue)
    w = stats.wilcoxon(a, b)
    normal = norm_p >= alpha
    return LossComparison(
        n=len(d),
        mean_difference=float(d.mean()),
        t_statistic=t,
        t_p_value=t_p,
        normality_test=name,
        normality_p_value=norm_p,
        differences_normal=normal,
        wilcoxon_statistic=float(w.statistic),
        wilcoxon_p_value=float(w.pvalue),
        recommended_test="paired t-test" if normal else "Wilcoxon signed-rank",
        recommended_p_value=t_p if normal else float(w.pvalue),
    )


@dataclass(frozen=True)
class TraitCorrelations:
    traits: list[str]
    rho: np.ndarray  # [T] Spearman correlation with the probability difference
    p_value: np.ndarray  # [T] one-sided, H1: rho > 0
    n: int


def spearman_vs_traits(difference, traits: np.ndarray, names=None) -> TraitCorrelations:
    """Spearman rank correlation of per-subject ``difference`` [n] (e.g. P_B − P_A) with each
    column of ``traits`` [n, T], one-sided for positive correlation (scipy's t approximation).
    Vectorized over traits: thousands of PRS columns cost one matrix product."""
    d = np.asarray(difference, np.float64)
    x = np.asarray(traits, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] != len(d):
        raise InvalidInputError(f"traits have {x.shape[0]} rows but difference has {len(d)}")
    if len(d) < 3:
        raise InvalidInputError("need at least 3 subjects")
    if not (np.isfinite(d).all() and np.isfinite(x).all()):
        raise InvalidInputError("difference and traits must be finite (impute or drop missing PRS first)")
    rd = stats.rankdata(d)
    rx = stats.rankdata(x, axis=0)
    rd = (rd - rd.mean()) / np.linalg.norm(rd - rd.mean())
    rx = rx - rx.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.clip((rd @ rx) / np.linalg.norm(rx, axis=0), -1, 1)
        n = len(d)
        t = rho * np.sqrt((n - 2) / ((1 - rho) * (1 + rho)))
    p = stats.t.sf(t, n - 2)
    names = list(names) if names is not None else [f"trait{i}" for i in range(x.shape[1])]
    return TraitCorrelations(names, rho, p, len(d))
