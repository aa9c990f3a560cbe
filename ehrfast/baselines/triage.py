"""Triage vitals at ED anchors, with the MIMIC-IV-ED benchmark's preprocessing (ARES.md
"Early-warning score tables": keep rows with an acuity, °F → °C, MIMIC-Extract outlier limits,
median imputation fitted on the training split).

A triage event is one (subject, time) with at least one triage row; its values are the first
row of each vital at that time. ``Blood Pressure`` carries the systolic pressure as its number and
the diastolic as its text (or "SBP/DBP" as text, as MIMIC's OMR writes it); pain is a text 0–10.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from ehrfast.baselines.rows import number, read_matching_rows
from ehrfast.data.meds import STATIC_TIME
from ehrfast.errors import InvalidInputError
from ehrfast.stages import option
from ehrfast.units import US_PER_YEAR

FIELDS = ("temperature", "heart_rate", "resp_rate", "o2sat", "sbp", "dbp", "pain", "acuity")
# outlier_low, valid_low, valid_high, outlier_high (°C for temperature): outside the outer pair a
# value is an error of record (NaN, then imputed); between a pair it is clamped to the valid edge
OUTLIER_LIMITS = {
    "temperature": (14.2, 26.0, 45.0, 47.0), "heart_rate": (0.0, 0.0, 350.0, 390.0), "resp_rate": (0.0, 0.0, 300.0, 330.0),
    "o2sat": (0.0, 0.0, 100.0, 150.0), "sbp": (0.0, 0.0, 375.0, 375.0), "dbp": (0.0, 0.0, 375.0, 375.0), "pain": (0.0, 0.0, 10.0, 10.0),
    "acuity": (1.0, 1.0, 5.0, 5.0),
}


@dataclass(frozen=True)
class TriageCodes:
    """Which MEDS codes hold the triage values (regexes, searched). The defaults follow the
    ethos-ares ED event configuration (and the synthetic hospital world)."""

    temperature: str = option("code regex of temperature", "^TEMPERATURE$")
    heart_rate: str = option("code regex of heart rate", "^HEART_RATE$")
    resp_rate: str = option("code regex of respiratory rate", "^RESPIRATORY_RATE$")
    o2sat: str = option("code regex of oxygen saturation", "^O2_SATURATION$")
    blood_pressure: str = option("code regex of blood pressure (number = systolic, text = diastolic or 'SBP/DBP')", "^Blood Pressure$")
    pain: str = option("code regex of pain (text 0-10)", "^PAIN$")
    acuity: str = option("code regex of acuity (ESI 1-5)", "^ACUITY$")
    temperature_unit: str = option("unit of the recorded temperature: F (MIMIC-IV-ED) or C", "F", choices=("F", "C"))

    def __post_init__(self):
        if self.temperature_unit not in ("F", "C"):
            raise InvalidInputError(f"temperature_unit must be 'F' or 'C', got {self.temperature_unit!r}")

    def patterns(self) -> dict[str, str]:
        d = asdict(self)
        d.pop("temperature_unit")
        return d


@dataclass(frozen=True)
class TriageEvents:
    """One row per triage event: ``subject_id``, ``time`` (µs) [n] int64, ``split`` [n] object,
    ``values`` [n, len(FIELDS)] float64 as recorded (NaN = not recorded)."""

    subject_id: np.ndarray
    time: np.ndarray
    split: np.ndarray
    values: np.ndarray

    def find(self, subject_id: np.ndarray, time: np.ndarray) -> np.ndarray:
        """[m] int64: the event at each (subject, time), −1 where there is none."""
        index = {(s, t): i for i, (s, t) in enumerate(zip(self.subject_id.tolist(), self.time.tolist()))}
        return np.array([index.get((s, t), -1) for s, t in zip(np.asarray(subject_id).tolist(), np.asarray(time).tolist())], np.int64)


def read_triage_events(meds_dir: str | os.PathLike, codes: TriageCodes = TriageCodes(), splits: tuple[str, ...] | None = None) -> TriageEvents:
    """Every triage event of ``meds_dir`` (the given splits, default all)."""
    rows = read_matching_rows(meds_dir, codes.patterns(), splits)
    timed = rows.time != STATIC_TIME
    sid, time, key = rows.subject_id[timed], rows.time[timed], rows.key[timed]
    numeric, text, split = rows.numeric[timed], rows.text[timed], rows.split[timed]
    if not len(sid):
        return TriageEvents(sid, time, split, np.zeros((0, len(FIELDS))))
    order = np.lexsort((time, sid))  # stable: the first row of a vital at a time is kept
    sid, time, key, numeric, text, split = sid[order], time[order], key[order], numeric[order], text[order], split[order]
    new = np.r_[True, (sid[1:] != sid[:-1]) | (time[1:] != time[:-1])]
    event = np.cumsum(new) - 1
    values = np.full((int(event[-1]) + 1, len(FIELDS)), np.nan)
    pattern_names = list(codes.patterns())
    for r in range(len(sid) - 1, -1, -1):  # in reverse, so the first row of a vital at a time is the one kept
        name = pattern_names[key[r]]
        e = event[r]
        if name == "blood_pressure":
            sbp, dbp = numeric[r], number(text[r])
            if text[r] is not None and "/" in str(text[r]):
                a, _, b = str(text[r]).partition("/")
                sbp, dbp = number(a), number(b)
            values[e, FIELDS.index("sbp")], values[e, FIELDS.index("dbp")] = sbp, dbp
        else:
            v = numeric[r] if np.isfinite(numeric[r]) else number(text[r])
            values[e, FIELDS.index(name)] = v
    first = np.flatnonzero(new)
    return TriageEvents(sid[first], time[first], split[first], values)


def clean(values: np.ndarray, temperature_unit: str = "F") -> np.ndarray:
    """[n, len(FIELDS)] float64: °F → °C, then the outlier limits (a copy; NaN stays NaN)."""
    out = np.array(values, np.float64, copy=True)
    t = FIELDS.index("temperature")
    if temperature_unit == "F":
        out[:, t] = (out[:, t] - 32.0) * 5.0 / 9.0
    for j, name in enumerate(FIELDS):
        outlier_low, valid_low, valid_high, outlier_high = OUTLIER_LIMITS[name]
        col = out[:, j]
        col[(col < outlier_low) | (col > outlier_high)] = np.nan
        col[(col >= outlier_low) & (col < valid_low)] = valid_low
        col[(col > valid_high) & (col <= outlier_high)] = valid_high
    return out


def fit_medians(cleaned: np.ndarray, source: str) -> np.ndarray:
    """[len(FIELDS)] float64: the median of each value over the training events (the benchmark's
    ``SimpleImputer(strategy="median")``)."""
    if not len(cleaned):
        raise InvalidInputError(f"{source}: no triage events in the training split to fit the imputation on")
    counts = np.isfinite(cleaned).sum(0)
    if (counts == 0).any():
        missing = [f for f, c in zip(FIELDS, counts) if c == 0]
        raise InvalidInputError(f"{source}: no training value of {missing} among {len(cleaned)} triage events")
    return np.nanmedian(cleaned, axis=0)


def impute(cleaned: np.ndarray, medians: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """(values with NaN replaced by the medians, how many were imputed per field)."""
    missing = ~np.isfinite(cleaned)
    out = np.where(missing, medians[None, :], cleaned)
    return out, {f: int(m) for f, m in zip(FIELDS, missing.sum(0))}


def age_years(time: np.ndarray, birth: np.ndarray) -> np.ndarray:
    """[n] float64 whole years from birth (µs) to ``time`` (µs), as the benchmark's integer ages;
    NaN where the birth is unknown (STATIC_TIME)."""
    known = birth != STATIC_TIME
    years = np.floor((time - np.where(known, birth, 0)) / US_PER_YEAR)
    return np.where(known, years, np.nan)
