"""Gender and race per subject from a MEDS dataset, for subgroup AUROCs (ARES.md S10), with the
reference's race mapping (``DemographicData.process_race`` of ETHOS-ARES, MIT licence):

* UNKNOWN / UNABLE TO OBTAIN / PATIENT DECLINED TO ANSWER → UNKNOWN;
* NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER, AMERICAN INDIAN/ALASKA NATIVE, MULTIPLE RACE/ETHNICITY → OTHER;
* SOUTH AMERICAN → HISPANIC; PORTUGUESE → WHITE;
* otherwise the text before the first "/" or " " (WHITE - RUSSIAN → WHITE, ASIAN - CHINESE → ASIAN);
* a subject with several race rows gets the first specific race, else OTHER, else UNKNOWN.

Gender is the text of the ``GENDER//<g>`` code, race that of ``RACE//<text>`` codes (static or
timed rows, as MIMIC records race at each admission).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pyarrow as pa
from scipy.stats import bartlett

from ehrfast.data.meds import data_files

RACE_UNKNOWN = ("UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER")
RACE_MINOR = ("NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER", "AMERICAN INDIAN/ALASKA NATIVE", "MULTIPLE RACE/ETHNICITY")
_PRIORITY = {"OTHER": 1, "UNKNOWN": 2}  # every specific race: 0
UNKNOWN_GROUP = "(unknown)"


def process_race(text: str) -> str:
    """The reference's race group of one race text."""
    if text in RACE_UNKNOWN:
        return "UNKNOWN"
    if text in RACE_MINOR:
        return "OTHER"
    if text == "SOUTH AMERICAN":
        return "HISPANIC"
    if text == "PORTUGUESE":
        return "WHITE"
    return re.split(r"/| ", text, maxsplit=1)[0]


def subject_race(texts: list[str]) -> str:
    """One subject's race from its race texts in row order: the first specific group, else
    OTHER, else UNKNOWN."""
    groups = [process_race(t) for t in texts]
    return min(groups, key=lambda g: _PRIORITY.get(g, 0)) if groups else UNKNOWN_GROUP


def demographics(meds_dir: str | os.PathLike) -> pa.Table:
    """subject_id, gender, race for every subject of ``meds_dir`` ("(unknown)" where absent)."""
    gender: dict[int, str] = {}
    races: dict[int, list[str]] = {}
    subjects: list[int] = []
    for paths in data_files(meds_dir).values():
        for path in paths:
            t = path.read(["subject_id", "code"])
            sid = t.column("subject_id").to_numpy()
            code = t.column("code").to_pylist()
            subjects.extend(np.unique(sid).tolist())
            for s, c in zip(sid.tolist(), code):
                if c.startswith("GENDER//"):
                    gender.setdefault(s, c[len("GENDER//"):])
                elif c.startswith("RACE//"):
                    races.setdefault(s, []).append(c[len("RACE//"):])
    ids = sorted(set(subjects))
    return pa.table({"subject_id": pa.array(ids, pa.int64()), "gender": [gender.get(s, UNKNOWN_GROUP) for s in ids],
                     "race": [subject_race(races.get(s, [])) for s in ids]})


def subgroup_variability_p(aurocs_a: list[float], aurocs_b: list[float]) -> float | None:
    """Bartlett's test of equal variance of two models' AUROCs across the subgroups of one column
    (the reference's comparison of ETHOS with MEDS-Tab); None with fewer than two finite
    subgroup AUROCs for either model."""
    a = [x for x in aurocs_a if np.isfinite(x)]
    b = [x for x in aurocs_b if np.isfinite(x)]
    if len(a) < 2 or len(b) < 2 or (np.var(a) == 0 and np.var(b) == 0):
        return None
    return float(bartlett(a, b).pvalue)
