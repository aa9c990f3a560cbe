"""Gender and race subgroups (ARES.md S10): the reference's race mapping against an
independent implementation written from the rule, on the MIMIC-IV demo's race texts; subgroup
AUROCs in the report with Bartlett's test."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import bartlett

from ehrfast.evaluate import EvaluateOptions, evaluate
from ehrfast.evaluate.calibration import brier_label
from ehrfast.evaluate.demographics import demographics, process_race, subgroup_variability_p, subject_race


def _independent_race(text: str) -> str:
    """ARES.md S10, written again: the unknowns, the minor groups, two fixed mappings, else the
    text up to the first '/' or space."""
    if text in {"UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER"}:
        return "UNKNOWN"
    if text in {"NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER", "AMERICAN INDIAN/ALASKA NATIVE", "MULTIPLE RACE/ETHNICITY"}:
        return "OTHER"
    if text == "SOUTH AMERICAN":
        return "HISPANIC"
    if text == "PORTUGUESE":
        return "WHITE"
    cut = len(text)
    for sep in ("/", " "):
        i = text.find(sep)
        if i >= 0:
            cut = min(cut, i)
    return text[:cut]


MIMIC_RACES = ["WHITE", "WHITE - OTHER EUROPEAN", "WHITE - RUSSIAN", "BLACK/AFRICAN AMERICAN", "BLACK/CAPE VERDEAN", "HISPANIC/LATINO - PUERTO RICAN",
               "HISPANIC OR LATINO", "ASIAN - CHINESE", "ASIAN", "OTHER", "UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER",
               "SOUTH AMERICAN", "PORTUGUESE", "AMERICAN INDIAN/ALASKA NATIVE", "MULTIPLE RACE/ETHNICITY",
               "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER"]


def test_race_mapping_matches_an_independent_implementation(shared_data):
    meds = shared_data / "mimic-iv-demo-meds"
    seen = set()
    for f in sorted((meds / "data").rglob("*.parquet")):
        codes = pq.read_table(f, columns=["code"]).column("code").unique().to_pylist()
        seen |= {c[len("RACE//"):] for c in codes if c.startswith("RACE//")}
    assert seen, "the demo has race rows"
    for text in sorted(seen | set(MIMIC_RACES)):
        assert process_race(text) == _independent_race(text), text
    assert subject_race(["UNKNOWN", "OTHER", "WHITE", "ASIAN"]) == "WHITE"
    assert subject_race(["UNKNOWN", "MULTIPLE RACE/ETHNICITY"]) == "OTHER" and subject_race(["UNABLE TO OBTAIN"]) == "UNKNOWN"


def test_demographics_of_the_mimic_demo(shared_data):
    meds = shared_data / "mimic-iv-demo-meds"
    table = demographics(meds).to_pandas().set_index("subject_id")
    assert len(table) == 100 and set(table.gender) <= {"F", "M"}
    # independently: each subject's race rows in file order, through the independent rule
    rows = {}
    for f in sorted((meds / "data").rglob("*.parquet")):
        t = pq.read_table(f, columns=["subject_id", "code"])
        for s, c in zip(t.column("subject_id").to_pylist(), t.column("code").to_pylist()):
            if c.startswith("RACE//"):
                rows.setdefault(s, []).append(_independent_race(c[6:]))
    for s, groups in rows.items():
        specific = [g for g in groups if g not in ("OTHER", "UNKNOWN")]
        want = specific[0] if specific else ("OTHER" if "OTHER" in groups else "UNKNOWN")
        assert table.loc[s, "race"] == want


def test_subgroups_in_the_report_with_bartletts_test(shared_data, tmp_path):
    meds = shared_data / "mimic-iv-demo-meds"
    subjects = demographics(meds).column("subject_id").to_numpy()
    rng = np.random.default_rng(0)
    sid = np.repeat(subjects, 3)
    y = rng.random(len(sid)) < 0.3
    paths = []
    for k, effect in enumerate((0.8, 1.4)):
        p = 1 / (1 + np.exp(-(rng.standard_normal(len(sid)) + effect * y - 1)))
        path = tmp_path / f"{k}.parquet"
        pq.write_table(pa.table({"subject_id": pa.array(sid, pa.int64()),
                                 "prediction_time": pa.array(np.tile([0, 1, 2], len(subjects)), pa.int64()).cast(pa.timestamp("us")),
                                 "boolean_value": y, "predicted_boolean_value": p >= 0.5, "predicted_boolean_probability": p.astype(np.float32)}), path)
        paths.append(path)
    res = evaluate([tuple(paths)], tmp_path / "out", EvaluateOptions(iterations=50), demographics_from=meds, progress=False)
    t = res.tasks["task"]
    assert set(t.subgroups) == {"gender", "race"}
    a = [g.auroc for g in t.subgroups["gender"]["A"] if g.group != "(all)"]
    b = [g.auroc for g in t.subgroups["gender"]["B"] if g.group != "(all)"]
    assert t.subgroup_variability["gender"] == pytest.approx(bartlett(a, b).pvalue)
    assert "AUROC by race" in (tmp_path / "out" / "report.md").read_text()


def test_bartlett_needs_two_groups_and_brier_labels():
    assert subgroup_variability_p([0.7], [0.8, 0.6]) is None
    assert subgroup_variability_p([0.7, np.nan, 0.6], [0.8, 0.6]) == pytest.approx(bartlett([0.7, 0.6], [0.8, 0.6]).pvalue)
    assert [brier_label(b) for b in (0.01, 0.05, 0.0999, 0.15, 0.2, 0.5)] == ["excellent", "good", "good", "acceptable", "poor", "poor"]
