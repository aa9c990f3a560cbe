"""The ED-benchmark's tabular features at each anchor that MEDS can supply (ARES.md S12): age and
gender; prior ED, hospital and ICU visits in the 30, 90 and 365 days before the anchor; the triage
vitals, pain and acuity (cleaned, not yet imputed); the 17 Charlson and 31 Elixhauser flags from
ICD-10 diagnoses recorded before the anchor. The benchmark's 10 chief-complaint flags need free
text, which MEDS lacks: dropped.

Triage values are those of the latest triage event at or before the anchor, within
``triage_window_hours`` (at an ED anchor: its own triage); none → NaN, imputed later.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass

import numpy as np

from ehrfast.baselines.comorbidity import FLAG_NAMES, comorbidity_flags
from ehrfast.baselines.rows import read_matching_rows
from ehrfast.baselines.triage import FIELDS, TriageEvents, age_years, clean
from ehrfast.data.meds import STATIC_TIME
from ehrfast.stages import option
from ehrfast.units import US_PER_DAY, US_PER_HOUR

VISIT_WINDOWS_DAYS = (30, 90, 365)
VISIT_KINDS = ("ed", "hospital", "icu")


@dataclass(frozen=True)
class FeatureCodes:
    """Which MEDS codes are visits, diagnoses, gender and birth (regexes, searched; the ICD-10
    pattern's first group is the code itself)."""

    ed: str = option("code regex of an ED visit", "^ED_REGISTRATION$")
    hospital: str = option("code regex of a hospital admission", "^HOSPITAL_ADMISSION//")
    icu: str = option("code regex of an ICU admission", "^ICU_ADMISSION")
    icd10: str = option("code regex of an ICD-10 diagnosis (group 1: the code)", "^DIAGNOSIS//ICD//10//(.+)$")
    female: str = option("code regex of female gender", "^GENDER//F$")
    male: str = option("code regex of male gender", "^GENDER//M$")
    birth: str = option("code regex of the birth", "^MEDS_BIRTH$")

    def patterns(self) -> dict[str, str]:
        return asdict(self)


def feature_names() -> list[str]:
    return ["age", "female", *(f"n_{k}_{w}d" for k in VISIT_KINDS for w in VISIT_WINDOWS_DAYS), *FIELDS, *FLAG_NAMES]


def _first_times(subject_id: np.ndarray, time: np.ndarray) -> dict[int, int]:
    """{subject_id: its first timed row's time µs} (rows in MEDS order)."""
    out: dict[int, int] = {}
    for s, t in zip(subject_id.tolist(), time.tolist()):
        if t != STATIC_TIME:
            out.setdefault(s, t)
    return out


def births(meds_dir: str | os.PathLike, pattern: str = "^MEDS_BIRTH$") -> dict[int, int]:
    """{subject_id: birth time µs} (the first birth row of each subject)."""
    rows = read_matching_rows(meds_dir, {"birth": pattern})
    return _first_times(rows.subject_id, rows.time)


def _by_subject(subject_id: np.ndarray, time: np.ndarray) -> dict[int, np.ndarray]:
    """{subject: its row indices in time order}."""
    order = np.lexsort((time, subject_id))
    sid = subject_id[order]
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]]) if len(sid) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(sid)]
    return {int(sid[a]): order[a:b] for a, b in zip(starts, ends)}


def tabular_features(meds_dir: str | os.PathLike, subject_id: np.ndarray, time: np.ndarray, triage: TriageEvents,
                     codes: FeatureCodes = FeatureCodes(), temperature_unit: str = "F", triage_window_hours: float = 24.0) -> np.ndarray:
    """[n, len(feature_names())] float64 at the anchors (``subject_id``, ``time`` µs [n]); NaN where
    a value is unknown (gender, birth, triage values), to be imputed with training medians."""
    rows = read_matching_rows(meds_dir, codes.patterns())
    names = list(codes.patterns())
    n = len(subject_id)
    out = np.full((n, len(feature_names())), np.nan)
    birth = np.full(n, STATIC_TIME, np.int64)
    is_birth = rows.key == names.index("birth")
    first_birth = _first_times(rows.subject_id[is_birth], rows.time[is_birth])
    female: dict[int, float] = {}
    for k, value in (("male", 0.0), ("female", 1.0)):
        for s in rows.subject_id[rows.key == names.index(k)].tolist():
            female[s] = value
    for i, s in enumerate(subject_id.tolist()):
        birth[i] = first_birth.get(s, STATIC_TIME)
        out[i, 1] = female.get(s, np.nan)
    out[:, 0] = age_years(time, birth)
    col = 2
    for kind in VISIT_KINDS:
        m = (rows.key == names.index(kind)) & (rows.time != STATIC_TIME)
        groups = _by_subject(rows.subject_id[m], rows.time[m])
        t_kind = rows.time[m]
        for w in VISIT_WINDOWS_DAYS:
            for i, (s, t) in enumerate(zip(subject_id.tolist(), time.tolist())):
                idx = groups.get(s)
                if idx is None:
                    out[i, col] = 0
                    continue
                ts = t_kind[idx]
                out[i, col] = np.searchsorted(ts, t, "left") - np.searchsorted(ts, t - w * US_PER_DAY, "left")
            col += 1
    cleaned = clean(triage.values, temperature_unit)
    groups = _by_subject(triage.subject_id, triage.time)
    window = triage_window_hours * US_PER_HOUR
    for i, (s, t) in enumerate(zip(subject_id.tolist(), time.tolist())):
        idx = groups.get(s)
        if idx is None:
            continue
        ts = triage.time[idx]
        j = np.searchsorted(ts, t, "right") - 1
        if j >= 0 and t - ts[j] <= window:
            out[i, col:col + len(FIELDS)] = cleaned[idx[j]]
    col += len(FIELDS)
    m = (rows.key == names.index("icd10")) & (rows.time != STATIC_TIME)
    icd = re.compile(codes.icd10)
    diag_codes = rows.code[m]
    unique, inverse = np.unique(diag_codes.astype(str), return_inverse=True)
    flags_of_code = comorbidity_flags([(mm.group(1) if (mm := icd.search(c)) and mm.groups() else c) for c in unique.tolist()])
    flags = flags_of_code[inverse.reshape(-1)] if len(unique) else np.zeros((0, len(FLAG_NAMES)), bool)
    groups = _by_subject(rows.subject_id[m], rows.time[m])
    t_diag = rows.time[m]
    for i, (s, t) in enumerate(zip(subject_id.tolist(), time.tolist())):
        idx = groups.get(s)
        if idx is None:
            out[i, col:] = 0
            continue
        before = idx[: np.searchsorted(t_diag[idx], t, "left")]
        out[i, col:] = flags[before].any(0) if len(before) else 0
    return out
