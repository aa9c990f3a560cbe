"""The early-warning scores against ARES.md's worked examples (exact oracles, gaps included) and
against a plain per-value reading of the band tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrfast.baselines.scores import CART, MEWS, NEWS, REMS, band_points, bands, early_warning_scores, mean_arterial_pressure

# age, RR, SpO2, T °C, SBP, DBP, HR -> NEWS, NEWS2, MEWS, REMS, CART (ARES.md, "Worked examples")
WORKED = [
    ((70, 22, 93, 38.5, 95, 60, 115), (9, 7, 7, 7, 21)),
    ((40, 16, 98, 37.0, 120, 80, 72), (0, 0, 1, 0, 0)),
    ((85, 8, 88, 34.9, 70, 30, 140), (15, 12, 10, 16, 35)),
    ((60, 8.5, 91.5, 36.0, 90.5, 49.5, 50.5), (1, 1, 3, 10, 4)),  # values in the gaps between bands
]


def _scores(rows, acuity=None):
    a = np.array(rows, np.float64)
    acuity = np.full(len(a), 3.0) if acuity is None else np.asarray(acuity, np.float64)
    return early_warning_scores(age=a[:, 0], resp_rate=a[:, 1], o2sat=a[:, 2], temperature=a[:, 3], sbp=a[:, 4], dbp=a[:, 5],
                                heart_rate=a[:, 6], acuity=acuity)


@pytest.mark.parametrize(("row", "expected"), WORKED)
def test_worked_examples(row, expected):
    s = _scores([row])
    got = tuple(int(s[k][0]) for k in ("news_edbench", "news2_edbench", "mews_edbench", "rems", "cart"))
    assert got == expected


def test_esi_is_minus_acuity_and_higher_is_riskier():
    s = _scores([WORKED[1][0]] * 5, acuity=[1, 2, 3, 4, 5])
    np.testing.assert_array_equal(s["esi"], [-1, -2, -3, -4, -5])


def test_gap_values_score_zero_and_band_edges_are_inclusive():
    rr = NEWS["resp_rate"]
    np.testing.assert_array_equal(band_points(np.array([8, 8.5, 9, 11, 11.5, 12, 20, 20.5, 21, 24, 24.5, 25]), rr),
                                  [3, 0, 1, 1, 0, 0, 0, 0, 2, 2, 0, 3])
    t = NEWS["temperature"]  # the temperature bands have no gaps: 35 < t <= 36 -> 1
    np.testing.assert_array_equal(band_points(np.array([35.0, 35.01, 36.0, 36.01, 38.0, 39.0, 39.01]), t), [3, 1, 1, 0, 0, 1, 2])
    # REMS MAP gaps: 49 <= MAP < 50 and MAP in (69, 70), (109, 110), (129, 130) score 0
    np.testing.assert_array_equal(band_points(np.array([48.9, 49, 49.5, 50, 69, 69.5, 70, 109.5, 129.5, 130, 159, 159.5, 160]), REMS["map"]),
                                  [4, 0, 0, 2, 2, 0, 0, 0, 0, 3, 3, 4, 4])  # "> 159" has no gap above 159
    assert mean_arterial_pressure(np.array([90.5]), np.array([49.5]))[0] == pytest.approx(63.1667, abs=1e-4)


def test_healthy_adult_has_mews_one():
    assert _scores([(30, 16, 99, 36.8, 125, 78, 70)])["mews_edbench"][0] == 1  # RR 15–20 scores 1


def test_nan_is_refused_not_scored_as_zero():
    with pytest.raises(Exception, match="not finite"):
        _scores([(70, float("nan"), 93, 38.5, 95, 60, 115)])


def test_bad_band_spec():
    with pytest.raises(Exception, match="bad band"):
        bands(("9-11", 1))


def _plain(x: float, spec: list[tuple[str, int]]) -> int:
    """The band tables read one value at a time, as a person reads them."""
    for interval, points in spec:
        lo_c, rest = interval[0], interval[1:-1]
        hi_c = interval[-1]
        lo, hi = (float(v) for v in rest.split(","))
        if (x >= lo if lo_c == "[" else x > lo) and (x <= hi if hi_c == "]" else x < hi):
            return points
    return 0


def _spec(table):
    def fmt(b):
        lo = "-inf" if math.isinf(b.low) else repr(b.low)
        hi = "inf" if math.isinf(b.high) else repr(b.high)
        return f"{'[' if b.low_closed else '('}{lo},{hi}{']' if b.high_closed else ')'}"
    return [(fmt(b), b.points) for b in table]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-10, max_value=400, allow_nan=False).map(lambda v: round(v * 2) / 2), min_size=1, max_size=30))
def test_vectorised_bands_equal_the_plain_reading(values):
    x = np.array(values)
    for table in (*NEWS.values(), *MEWS.values(), *REMS.values(), *CART.values()):
        spec = _spec(table)
        np.testing.assert_array_equal(band_points(x, table), [_plain(v, spec) for v in values])
