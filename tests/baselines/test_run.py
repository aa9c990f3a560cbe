"""``ehrfast baselines`` end to end on tiny MEDS datasets with triage rows, on the MIMIC-IV demo
(which has no triage: a clear error), on the synthetic hospital world with the tabular models,
and ``ehrfast evaluate --methods``."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrfast.baselines import BaselinesSettings, run_baselines
from ehrfast.baselines.tabular import fit_and_score
from ehrfast.baselines.triage import FIELDS, clean
from ehrfast.errors import InvalidInputError
from ehrfast.predictions import label_table, read_method_names

SCHEMA = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.string()), ("numeric_value", pa.float32()),
                    ("text_value", pa.string())])
T0 = datetime(2020, 1, 1, 8, 0)


def _write(root, splits: dict[str, list[tuple]]):
    for split, rows in splits.items():
        d = root / "data" / split
        d.mkdir(parents=True, exist_ok=True)
        rows = sorted(rows, key=lambda r: (r[0], r[1] is not None, r[1] or datetime.min))
        pq.write_table(pa.Table.from_pylist([dict(zip(SCHEMA.names, r)) for r in rows], schema=SCHEMA), d / "0.parquet")
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "dataset.json").write_text(json.dumps({"dataset_name": "triage", "meds_version": "0.3.3"}))
    return root


def _triage(s, t, temp_f=None, hr=None, rr=None, o2=None, sbp=None, dbp=None, pain=None, acuity=None):
    rows = [(s, t, "ED_REGISTRATION", None, None)]
    for code, v in (("TEMPERATURE", temp_f), ("HEART_RATE", hr), ("RESPIRATORY_RATE", rr), ("O2_SATURATION", o2), ("ACUITY", acuity)):
        if v is not None:
            rows.append((s, t, code, v, None))
    if sbp is not None:
        rows.append((s, t, "Blood Pressure", sbp, None if dbp is None else str(dbp)))
    if pain is not None:
        rows.append((s, t, "PAIN", None, str(pain)))
    return rows


def _subject(s, birth_year, *triage_rows):
    return [(s, datetime(birth_year, 1, 1), "MEDS_BIRTH", None, None), (s, None, "GENDER//F", None, None), *triage_rows]


def _labels(path, rows):
    sid, t, y = zip(*rows)
    us = [int((x - datetime(1970, 1, 1)) / timedelta(microseconds=1)) for x in t]
    pq.write_table(label_table(np.array(sid), np.array(us), np.array(y)), path)
    return path


def test_worked_example_through_meds(tmp_path):
    """Row 1 of the worked examples, recorded as MIMIC-IV-ED records it (°F, BP text)."""
    train = [_subject(s, 1960, *_triage(s, T0, 98.6, 80, 16, 98, 130, 80, 3, 3)) for s in (1, 2, 3)]
    held = _subject(10, 1950, *_triage(10, datetime(2020, 6, 1, 9), (38.5 * 9 / 5) + 32, 115, 22, 93, 95, 60, 5, 2))
    meds = _write(tmp_path / "meds", {"train": sum(train, []), "held_out": held})
    labels = _labels(tmp_path / "labels.parquet", [(10, datetime(2020, 6, 1, 9), True)])
    s = run_baselines(meds, labels, tmp_path / "bl.parquet", progress=False)
    t = pq.read_table(tmp_path / "bl.parquet")
    assert read_method_names(tmp_path / "bl.parquet") == ["news_edbench", "news2_edbench", "mews_edbench", "rems", "cart", "esi"]
    row = {c: t.column(c)[0].as_py() for c in t.column_names}
    assert (row["news_edbench"], row["news2_edbench"], row["mews_edbench"], row["rems"], row["cart"], row["esi"]) == (9, 7, 7, 7, 21, -2)
    assert s.imputed == {f: 0 for f in FIELDS} and s.train_triage_events == 3


def test_missing_values_take_the_training_medians(tmp_path):
    train = [_subject(s, 1980, *_triage(s, T0, 98.6, hr, 16, 98, 120, 80, 2, 3)) for s, hr in ((1, 60), (2, 70), (3, 140))]
    # the held-out anchor has no heart rate and no BP: HR median 70, SBP 120, DBP 80
    held = _subject(10, 1980, *_triage(10, datetime(2020, 6, 1, 9), 98.6, None, 16, 98, None, None, 2, 3))
    meds = _write(tmp_path / "meds", {"train": sum(train, []), "held_out": held})
    labels = _labels(tmp_path / "labels.parquet", [(10, datetime(2020, 6, 1, 9), False)])
    s = run_baselines(meds, labels, tmp_path / "bl.parquet", progress=False)
    assert s.medians["heart_rate"] == 70 and s.medians["sbp"] == 120 and s.medians["temperature"] == pytest.approx(37.0)
    assert s.imputed["heart_rate"] == 1 and s.imputed["sbp"] == 1 and s.imputed["dbp"] == 1
    assert pq.read_table(tmp_path / "bl.parquet").column("mews_edbench")[0].as_py() == 1  # only RR 16


def test_fahrenheit_and_outlier_limits():
    v = np.full((5, len(FIELDS)), np.nan)
    t, hr, o2 = FIELDS.index("temperature"), FIELDS.index("heart_rate"), FIELDS.index("o2sat")
    v[:, t] = [98.6, 50.0, 114.0, 115.0, 120.0]  # 37.0, 10.0 (< 14.2: NaN), 45.6 (clamped to 45), 46.1 (-> 45), 48.9 (> 47: NaN)
    v[:, hr] = [-1, 0, 360, 390, 391]
    v[:, o2] = [99, 100, 120, 150, 151]
    c = clean(v)
    np.testing.assert_allclose(c[:, t], [37.0, np.nan, 45.0, 45.0, np.nan])
    np.testing.assert_array_equal(c[:, hr], [np.nan, 0, 350, 350, np.nan])
    np.testing.assert_array_equal(c[:, o2], [99, 100, 100, 100, np.nan])
    assert np.isnan(v[1, t]) is np.False_  # the input is not changed


def test_anchor_without_triage_is_a_clear_error(tmp_path):
    train = [_subject(s, 1960, *_triage(s, T0, 98.6, 80, 16, 98, 130, 80, 3, 3)) for s in (1, 2)]
    held = _subject(10, 1950, (10, datetime(2020, 6, 1, 9), "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", None, None))
    meds = _write(tmp_path / "meds", {"train": sum(train, []), "held_out": held})
    labels = _labels(tmp_path / "labels.parquet", [(10, datetime(2020, 6, 1, 9), True)])
    with pytest.raises(InvalidInputError, match=r"no triage vitals for 1 of 1 anchors \(e.g. subject 10 at 2020-06-01T09:00"):
        run_baselines(meds, labels, tmp_path / "bl.parquet", progress=False)
    assert not (tmp_path / "bl.parquet").exists()


def test_triage_without_acuity_is_refused(tmp_path):
    train = [_subject(s, 1960, *_triage(s, T0, 98.6, 80, 16, 98, 130, 80, 3, 3)) for s in (1, 2)]
    held = _subject(10, 1950, *_triage(10, datetime(2020, 6, 1, 9), 98.6, 80, 16, 98, 130, 80, 3, None))
    meds = _write(tmp_path / "meds", {"train": sum(train, []), "held_out": held})
    labels = _labels(tmp_path / "labels.parquet", [(10, datetime(2020, 6, 1, 9), True)])
    with pytest.raises(InvalidInputError, match="no acuity"):
        run_baselines(meds, labels, tmp_path / "bl.parquet", progress=False)


def test_mimic_demo_has_no_triage_vitals(shared_data, tmp_path):
    from ehrfast.labels import make_labels

    meds = shared_data / "mimic-iv-demo-meds"
    make_labels(meds, "hospital_mortality", tmp_path / "hm.parquet")
    with pytest.raises(InvalidInputError, match="no triage vitals for"):
        run_baselines(meds, tmp_path / "hm.parquet", tmp_path / "bl.parquet", BaselinesSettings(splits=("held_out", "tuning")),
                      progress=False)


def test_tabular_models_find_a_planted_signal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 6))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values: imputed with the training medians
    y = rng.random(1200) < 1 / (1 + np.exp(-2 * np.nan_to_num(x[:, 0])))
    out = fit_and_score(x[:900], y[:900], x[900:], [f"f{i}" for i in range(6)])
    from sklearn.metrics import roc_auc_score

    for name, p in out.items():
        assert roc_auc_score(y[900:], p) > 0.7, name
    assert "tensorflow" not in sys.modules


def test_synthetic_hospital_world_with_tabular_models_and_evaluate(small_cohort, tmp_path):
    from ehrfast.evaluate import evaluate
    from ehrfast.evaluate.options import EvaluateOptions
    from ehrfast.labels import make_labels
    from ehrfast.predictions import prediction_table

    cohort = small_cohort[0]
    make_labels(cohort, "ed_hospitalization", tmp_path / "labels.parquet")
    s = run_baselines(cohort, tmp_path / "labels.parquet", tmp_path / "bl.parquet", BaselinesSettings(tabular=True), progress=False)
    assert s.methods == ["news_edbench", "news2_edbench", "mews_edbench", "rems", "cart", "esi", "lr", "rf", "gb", "mlp"]
    bl = pq.read_table(tmp_path / "bl.parquet")
    y = bl.column("boolean_value").to_numpy(zero_copy_only=False)
    from sklearn.metrics import roc_auc_score

    for m in s.methods:  # triage severity drives admission in this world: every baseline ranks better than chance
        assert roc_auc_score(y, bl.column(m).to_numpy()) > 0.55, m
    # again, bit for bit
    run_baselines(cohort, tmp_path / "labels.parquet", tmp_path / "bl2.parquet", BaselinesSettings(tabular=True), progress=False)
    assert pq.read_table(tmp_path / "bl2.parquet").equals(bl)
    # two "models" on a subset of the rows, the baselines beside them
    keys = bl.select(["subject_id", "prediction_time", "boolean_value"])
    for name, col in (("A", "lr"), ("B", "gb")):
        t = prediction_table(keys, bl.column(col).to_numpy(), name).append_column("anchor_id", bl.column("anchor_id"))
        pq.write_table(t.slice(0, bl.num_rows - 20), tmp_path / f"{name}.parquet")
    res = evaluate([(tmp_path / "A.parquet", tmp_path / "B.parquet")], tmp_path / "ev", EvaluateOptions(names=("ed",), iterations=50),
                   methods=(f"ed={tmp_path / 'bl.parquet'}",), progress=False)
    rows = res.tasks["ed"].methods
    assert [r.method for r in rows] == ["A", "B", *s.methods]
    assert rows[2 + s.methods.index("lr")].auroc.value == pytest.approx(rows[0].auroc.value)
    assert "| news_edbench |" in (tmp_path / "ev" / "report.md").read_text()
    with pytest.raises(InvalidInputError, match="no task 'other'"):
        evaluate([(tmp_path / "A.parquet", tmp_path / "B.parquet")], tmp_path / "ev2", EvaluateOptions(names=("ed",), iterations=50),
                 methods=(f"other={tmp_path / 'bl.parquet'}",), progress=False)
    from ehrfast.evaluate.compare import parse_methods

    assert parse_methods(("Stay (>= 10 d)=a=b.parquet", "x=c.parquet"), ["Stay (>= 10 d)", "x"]) == {
        "Stay (>= 10 d)": (Path("a=b.parquet"),), "x": (Path("c.parquet"),)}
    # a method file that lacks some of the models' predictions
    pq.write_table(bl.slice(0, 10).replace_schema_metadata(bl.schema.metadata), tmp_path / "short.parquet")
    with pytest.raises(InvalidInputError, match="no score for"):
        evaluate([(tmp_path / "A.parquet", tmp_path / "B.parquet")], tmp_path / "ev3", EvaluateOptions(names=("ed",), iterations=50),
                 methods=(f"ed={tmp_path / 'short.parquet'}",), progress=False)
