"""Meta-analysis of per-task effects: inverse-variance fixed effect and DerSimonian–Laird
random effects, with Cochran's Q, I² and τ², and the genomics paper's rule for which to report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ehrfast.errors import InvalidInputError


@dataclass(frozen=True)
class Pooled:
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float  # two-sided, normal


@dataclass(frozen=True)
class MetaAnalysis:
    names: list[str]
    effects: np.ndarray  # [k]
    variances: np.ndarray  # [k]
    fixed: Pooled
    random: Pooled
    q: float  # Cochran's Q
    q_df: int
    q_p_value: float
    i2: float  # in [0, 1]
    tau2: float  # DerSimonian–Laird between-task variance
    emphasized: str  # "fixed" or "random"
    emphasis_reason: str


def _pooled(effects, weights) -> Pooled:
    est = float(np.sum(weights * effects) / np.sum(weights))
    se = float(np.sqrt(1.0 / np.sum(weights)))
    z = est / se
    half = stats.norm.ppf(0.975) * se
    return Pooled(est, se, est - half, est + half, z, float(2 * stats.norm.sf(abs(z))))


def emphasis_rule(k: int, i2: float, q_p: float) -> tuple[str, str]:
    """Random effects when k ≤ 5 (Q has little power); otherwise fixed effect under low
    heterogeneity (I² ≤ 25% or Q p ≥ 0.10) and random effects under moderate to high."""
    if k <= 5:
        return "random", f"k = {k} ≤ 5 tasks: random effects favoured (Q has little power)"
    if i2 <= 0.25 or q_p >= 0.10:
        return "fixed", f"low heterogeneity (I² = {i2:.0%}, Q p = {q_p:.3f})"
    return "random", f"moderate to high heterogeneity (I² = {i2:.0%}, Q p = {q_p:.3f})"


def meta_analysis(effects, variances, names=None) -> MetaAnalysis:
    """Pools per-task ``effects`` [k] with their sampling ``variances`` [k] (e.g. ΔAUROC and
    the variance of its bootstrap distribution)."""
    y = np.asarray(effects, np.float64)
    v = np.asarray(variances, np.float64)
    if y.ndim != 1 or y.shape != v.shape or len(y) < 2:
        raise InvalidInputError(f"need at least two tasks with one effect and one variance each, got {y.shape} and {v.shape}")
    if not (np.isfinite(y).all() and np.isfinite(v).all()):
        raise InvalidInputError("effects and variances must be finite")
    if (v <= 0).any():
        raise InvalidInputError(f"variances must be positive; task {int(np.argmax(v <= 0))} has {v[v <= 0][0]}")
    k = len(y)
    w = 1.0 / v
    fixed = _pooled(y, w)
    q = float(np.sum(w * (y - fixed.estimate) ** 2))
    df = k - 1
    q_p = float(stats.chi2.sf(q, df))
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    tau2 = max(0.0, (q - df) / (w.sum() - np.sum(w**2) / w.sum()))
    random = _pooled(y, 1.0 / (v + tau2))
    emphasized, reason = emphasis_rule(k, i2, q_p)
    return MetaAnalysis(list(names) if names is not None else [f"task{i + 1}" for i in range(k)], y, v, fixed, random, q, df, q_p, i2, tau2, emphasized, reason)
