"""Early-warning scores at ED triage, as the MIMIC-IV-ED benchmark computes them (ARES.md
"Early-warning score tables"; Xie et al. 2022, ``add_score_NEWS`` … ``add_score_CART``).

Each parameter takes the points of the first band that contains its value, in the listed order
(the benchmark's ``np.select``); a value in no band scores 0. The bands are written for integers,
so a non-integer value in a gap (a respiratory rate of 8.5 between "≤ 8" and "9–11") scores 0 —
kept on purpose: these are the scores the paper's baselines are, not the official ones (no
supplemental O₂, AVPU, SpO₂ scale 2 or GCS, none of which triage records).

Bands are intervals in the usual notation: "[9,11]" is 9 ≤ x ≤ 11, "(35,36]" is 35 < x ≤ 36,
"(-inf,8]" is x ≤ 8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ehrfast.errors import InvalidInputError

SCORE_NAMES = ("news_edbench", "news2_edbench", "mews_edbench", "rems", "cart", "esi")
_BAND = re.compile(r"^([\[(])\s*(-inf|[-+]?\d+(?:\.\d+)?)\s*,\s*(inf|[-+]?\d+(?:\.\d+)?)\s*([\])])$")


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    low_closed: bool
    high_closed: bool
    points: int

    def contains(self, x: np.ndarray) -> np.ndarray:
        above = x >= self.low if self.low_closed else x > self.low
        below = x <= self.high if self.high_closed else x < self.high
        return above & below


def bands(*spec: tuple[str, int]) -> tuple[Band, ...]:
    """Bands from ("[9,11]", 1)-style pairs."""
    out = []
    for interval, points in spec:
        m = _BAND.match(interval)
        if not m:
            raise InvalidInputError(f"bad band {interval!r}")
        out.append(Band(float(m.group(2)), float(m.group(3)), m.group(1) == "[", m.group(4) == "]", points))
    return tuple(out)


def band_points(x: np.ndarray, table: tuple[Band, ...]) -> np.ndarray:
    """[n] int64: the points of the first band containing each value of ``x`` [n]; 0 in a gap."""
    x = np.asarray(x, np.float64)
    points = np.zeros(len(x), np.int64)
    unmatched = np.ones(len(x), bool)
    for band in table:
        hit = unmatched & band.contains(x)
        points[hit] = band.points
        unmatched &= ~hit
    return points


NEWS = {
    "resp_rate": bands(("(-inf,8]", 3), ("[9,11]", 1), ("[12,20]", 0), ("[21,24]", 2), ("[25,inf)", 3)),
    "o2sat": bands(("(-inf,91]", 3), ("[92,93]", 2), ("[94,95]", 1), ("[96,inf)", 0)),
    "temperature": bands(("(-inf,35]", 3), ("(35,36]", 1), ("(36,38]", 0), ("(38,39]", 1), ("(39,inf)", 2)),
    "sbp": bands(("(-inf,90]", 3), ("[91,100]", 2), ("[101,110]", 1), ("[111,219]", 0), ("(219,inf)", 3)),
    "heart_rate": bands(("(-inf,40]", 3), ("[41,50]", 1), ("[51,90]", 0), ("[91,110]", 1), ("[111,130]", 2), ("(130,inf)", 3)),
}
NEWS2_PARAMETERS = ("resp_rate", "temperature", "sbp", "heart_rate")  # the benchmark's NEWS2 leaves SpO₂ out
MEWS = {
    "sbp": bands(("(-inf,70]", 3), ("[71,80]", 2), ("[81,100]", 1), ("[101,199]", 0), ("(199,inf)", 2)),
    "heart_rate": bands(("(-inf,40]", 2), ("[41,50]", 1), ("[51,100]", 0), ("[101,110]", 1), ("[111,129]", 2), ("[130,inf)", 3)),
    "resp_rate": bands(("(-inf,9)", 2), ("[9,14]", 0), ("[15,20]", 1), ("[21,29]", 2), ("[30,inf)", 3)),
    "temperature": bands(("(-inf,35)", 2), ("[35,38.5)", 0), ("[38.5,inf)", 2)),
}
REMS = {
    "age": bands(("(-inf,45)", 0), ("[45,54]", 2), ("[55,64]", 3), ("[65,74]", 5), ("(74,inf)", 6)),
    "map": bands(("(159,inf)", 4), ("[130,159]", 3), ("[110,129]", 2), ("[70,109]", 0), ("[50,69]", 2), ("(-inf,49)", 4)),
    "heart_rate": bands(("(179,inf)", 4), ("[140,179]", 3), ("[110,139]", 2), ("[70,109]", 0), ("[55,69]", 2), ("[40,54]", 3),
                        ("(-inf,40)", 4)),
    "resp_rate": bands(("(49,inf)", 4), ("[35,49]", 3), ("[25,34]", 1), ("[12,24]", 0), ("[10,11]", 1), ("[6,9]", 2), ("(-inf,6)", 4)),
    "o2sat": bands(("(-inf,75)", 4), ("[75,85]", 3), ("[86,89]", 1), ("(89,inf)", 0)),
}
CART = {
    "age": bands(("(-inf,55)", 0), ("[55,69]", 4), ("[70,inf)", 9)),
    "resp_rate": bands(("(-inf,21)", 0), ("[21,23]", 8), ("[24,25]", 12), ("[26,29]", 15), ("[30,inf)", 22)),
    "heart_rate": bands(("(-inf,110)", 0), ("[110,139]", 4), ("[140,inf)", 13)),
    "dbp": bands(("(49,inf)", 0), ("[40,49]", 4), ("[35,39]", 6), ("(-inf,35)", 13)),
}


def mean_arterial_pressure(sbp: np.ndarray, dbp: np.ndarray) -> np.ndarray:
    """MAP = SBP/3 + 2·DBP/3 (mmHg), the benchmark's ``add_triage_MAP``."""
    return np.asarray(sbp, np.float64) / 3 + 2 * np.asarray(dbp, np.float64) / 3


def _total(table: dict, values: dict[str, np.ndarray], parameters=None) -> np.ndarray:
    return sum(band_points(values[p], table[p]) for p in (parameters or table))


def early_warning_scores(age, temperature, heart_rate, resp_rate, o2sat, sbp, dbp, acuity) -> dict[str, np.ndarray]:
    """The six scores (``SCORE_NAMES``, higher = riskier) from preprocessed triage values, each
    [n] float64: age (whole years), temperature (°C), heart rate and respiratory rate (/min),
    SpO₂ (%), systolic and diastolic BP (mmHg), acuity (ESI level, 1 = most urgent). Values
    must be finite (imputed): a NaN would silently fall in no band."""
    values = {k: np.asarray(v, np.float64) for k, v in dict(age=age, temperature=temperature, heart_rate=heart_rate, resp_rate=resp_rate,
                                                             o2sat=o2sat, sbp=sbp, dbp=dbp, acuity=acuity).items()}
    n = {len(v) for v in values.values()}
    if len(n) != 1:
        raise InvalidInputError(f"triage arrays of different lengths: { {k: len(v) for k, v in values.items()} }")
    for name, v in values.items():
        if not np.isfinite(v).all():
            raise InvalidInputError(f"triage value {name!r} is not finite at row {int(np.flatnonzero(~np.isfinite(v))[0])}; impute first")
    values["map"] = mean_arterial_pressure(values["sbp"], values["dbp"])
    return {
        "news_edbench": _total(NEWS, values).astype(np.float64),
        "news2_edbench": _total(NEWS, values, NEWS2_PARAMETERS).astype(np.float64),
        "mews_edbench": _total(MEWS, values).astype(np.float64),
        "rems": _total(REMS, values).astype(np.float64),
        "cart": _total(CART, values).astype(np.float64),
        "esi": -values["acuity"],
    }
