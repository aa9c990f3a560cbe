"""Risk levels and binomial intervals (ARES.md S6): the paper's five levels, the spec's table of
intervals, and statsmodels' intervals as the oracle on random counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from ehrfast.errors import EhrfastError
from ehrfast.infer.risk import Z_95, binomial_interval, risk_level, wilson_interval


def test_risk_levels_are_the_papers_five():
    assert risk_level([0, 0.1999, 0.2, 0.5, 0.79, 0.8, 1.0]).tolist() == [1, 1, 2, 3, 4, 5, 5]
    assert risk_level([0.01, 0.07, 0.15, 0.3, 0.9], cuts=(0.05, 0.1, 0.2, 0.4)).tolist() == [1, 2, 3, 4, 5]  # the old cuts, asked for


@pytest.mark.parametrize("bad", [(), (0.5, 0.4), (0.0, 0.5), (0.5, 1.0)])
def test_risk_level_refuses_cuts_that_are_not_increasing_inside_the_unit_interval(bad):
    with pytest.raises(EhrfastError, match="cuts"):
        risk_level([0.3], cuts=bad)


def test_risk_level_refuses_nan():
    with pytest.raises(EhrfastError, match="NaN"):
        risk_level([0.3, np.nan])


# ARES.md S6, z = 1.959964
TABLE = {
    (5, 10): {"wald": (0.1901, 0.8099), "wilson": (0.2366, 0.7634), "clopper_pearson": (0.1871, 0.8129)},
    (30, 100): {"wald": (0.2102, 0.3898), "wilson": (0.2189, 0.3958), "clopper_pearson": (0.2124, 0.3998)},
    (0, 100): {"wald": (0.0, 0.0), "wilson": (0.0, 0.0370), "clopper_pearson": (0.0, 0.0362)},
    (100, 100): {"wald": (1.0, 1.0), "wilson": (0.9630, 1.0), "clopper_pearson": (0.9638, 1.0)},
}


@pytest.mark.parametrize("method", ["wald", "wilson", "clopper_pearson"])
@pytest.mark.parametrize("k, n", list(TABLE))
def test_intervals_match_the_specification_table(k, n, method):
    lo, hi = binomial_interval(k, n, method)
    want = TABLE[(k, n)][method]
    np.testing.assert_allclose([float(lo), float(hi)], want, atol=5e-5, rtol=0)


_STATSMODELS = {"wald": "normal", "wilson": "wilson", "clopper_pearson": "beta"}


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 5000), share=st.floats(0, 1), method=st.sampled_from(list(_STATSMODELS)))
def test_intervals_agree_with_statsmodels(n, share, method):
    k = int(round(share * n))
    lo, hi = binomial_interval(k, n, method)
    want_lo, want_hi = proportion_confint(k, n, alpha=0.05, method=_STATSMODELS[method])
    np.testing.assert_allclose([float(lo), float(hi)], [np.clip(want_lo, 0, 1), np.clip(want_hi, 0, 1)], atol=1e-9, rtol=1e-7)
    assert lo <= k / n <= hi


def test_intervals_are_elementwise_and_wilson_is_the_wilson_method():
    k, n = np.array([0, 3, 7, 40]), np.array([10, 10, 20, 40])
    lo, hi = binomial_interval(k, n, "clopper_pearson")
    assert lo.shape == hi.shape == (4,)
    for i in range(4):
        one = binomial_interval(int(k[i]), int(n[i]), "clopper_pearson")
        assert (lo[i], hi[i]) == (float(one[0]), float(one[1]))
    np.testing.assert_array_equal(np.stack(wilson_interval(k, n)), np.stack(binomial_interval(k, n, "wilson", Z_95)))


@pytest.mark.parametrize("k, n", [(1, 0), (-1, 5), (6, 5), (np.nan, 5)])
def test_intervals_refuse_impossible_counts(k, n):
    with pytest.raises(EhrfastError, match="successes"):
        binomial_interval(k, n)


def test_interval_refuses_unknown_method():
    with pytest.raises(EhrfastError, match="clopper_pearson"):
        binomial_interval(1, 2, "agresti")
