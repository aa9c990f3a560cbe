"""Risk levels and binomial intervals of a sampled risk (ARES.md S6).

A risk estimated from ``n`` valid sampled futures, ``k`` of them positive, is shown as one of the
ETHOS-ARES paper's five levels (0–20 % → 1, …, 80–100 % → 5) with a 95 % interval. Three
intervals: ``wald`` (the reference code's, for parity), ``wilson`` and ``clopper_pearson`` (exact;
"Binomial(N, p)" in the paper, the default of reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.special import ndtri
from scipy.stats import beta

from ehrfast.errors import InvalidInputError

RISK_LEVEL_CUTS = (0.2, 0.4, 0.6, 0.8)  # the paper's five levels
Z_95 = float(ndtri(0.975))  # 1.959963984540054
IntervalMethod = Literal["wald", "wilson", "clopper_pearson"]
INTERVAL_METHODS: tuple[str, ...] = ("wald", "wilson", "clopper_pearson")


def risk_level(probability, cuts: Sequence[float] = RISK_LEVEL_CUTS) -> np.ndarray:
    """Risk level 1 … len(cuts) + 1 of each probability, [n] int64: [0, .2) → 1, [.2, .4) → 2,
    …, [.8, 1] → 5 with the default cuts. A NaN probability (no valid sample) raises."""
    p = np.asarray(probability, np.float64)
    c = np.asarray(cuts, np.float64)
    if c.ndim != 1 or not len(c) or np.any(np.diff(c) <= 0) or c[0] <= 0 or c[-1] >= 1:
        raise InvalidInputError(f"risk level cuts must increase strictly inside (0, 1), got {list(cuts)}")
    if np.isnan(p).any():
        raise InvalidInputError("risk_level: a probability is NaN (a prediction without valid samples has no level)")
    return 1 + np.searchsorted(c, p, side="right")


def binomial_interval(successes, n, method: IntervalMethod = "clopper_pearson", z: float = Z_95,
                      confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided interval for a binomial proportion k / n, elementwise over ``successes`` and
    ``n`` (broadcast; float64 arrays in [0, 1]).

    * ``wald``: p ± z·√(p(1−p)/n), clipped to [0, 1] (the reference clips only at 1; at
      k = 0 or k = n the interval is the point, as there).
    * ``wilson``: the score interval at ``z``.
    * ``clopper_pearson``: the exact interval at ``confidence`` (beta quantiles), [0, ·] at k = 0
      and [·, 1] at k = n.

    ``n`` must be ≥ 1 and 0 ≤ k ≤ n: a prediction with no valid sample has no interval.
    """
    k = np.asarray(successes, np.float64)
    n = np.asarray(n, np.float64)
    if method not in INTERVAL_METHODS:
        raise InvalidInputError(f"interval method must be one of {', '.join(INTERVAL_METHODS)}, got {method!r}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n) or not np.all(np.isfinite(k)):
        raise InvalidInputError("binomial_interval needs 0 <= successes <= n and n >= 1 (no valid samples: no interval)")
    k, n = np.broadcast_arrays(k, n)
    p = k / n
    if method == "wald":
        half = z * np.sqrt(p * (1 - p) / n)
        return np.clip(p - half, 0, 1), np.clip(p + half, 0, 1)
    if method == "wilson":
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        # exact ends at k = 0 and k = n (centre − half rounds to ±1e-18 there)
        return np.where(k == 0, 0.0, np.clip(centre - half, 0, 1)), np.where(k == n, 1.0, np.clip(centre + half, 0, 1))
    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):  # beta.ppf with a zero shape parameter, replaced below
        lo = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lo, hi


def wilson_interval(successes, n, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval (``binomial_interval(..., method="wilson")``)."""
    return binomial_interval(successes, n, "wilson", z)
