"""Anchored labels of the ETHOS-ARES catalog (ARES.md S2, S3).

The oracle is written here from the catalog table of ARES.md, in plain Python over the parquet
rows (one loop per subject, no package code): for each anchor row, the first later row whose code
is one of the task's events, with MEDS_DEATH moved before a same-time discharge."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrfast.errors import EhrfastError
from ehrfast.labels import make_labels
from ehrfast.task import CATALOG, EventTask, catalog_task, load_task

DAY = 86_400_000_000
HOUR = 3_600_000_000
DEATH = "MEDS_DEATH"

# task -> (anchor test, events in order, time limit µs, positive events, min elapsed for the clause
# "any event at >= 10 d" or None, max elapsed of the positive events or None)
ORACLE = {
    "hospital_mortality": dict(anchor="adm", events=["death", "discharge"], limit=730 * DAY, positive=["death"]),
    "prolonged_stay": dict(anchor="adm", events=["death", "discharge"], limit=730 * DAY, positive=[], long_stay=10 * DAY),
    "icu_admission": dict(anchor="adm", events=["icu", "discharge", "death"], limit=730 * DAY, positive=["icu"]),
    "composite": dict(anchor="adm", events=["icu", "discharge", "death"], limit=730 * DAY, positive=["icu", "death"], long_stay=10 * DAY),
    "ed_hospitalization": dict(anchor="ed_reg", events=["admission", "death"], limit=730 * DAY, positive=["admission"], within=72 * HOUR),
    "ed_critical_outcome": dict(anchor="ed_reg", events=["icu", "discharge", "death"], limit=12 * HOUR, positive=["icu", "death"]),
    "ed_representation": dict(anchor="ed_out_no_hadm", events=["ed_registration", "death"], limit=72 * HOUR, positive=["ed_registration"]),
    "readmission_30d": dict(anchor="discharge_not_after_death", events=["admission", "death"], limit=30 * DAY, positive=["admission", "death"]),
    "icu_mortality": dict(anchor="icu_adm", events=["death", "icu_discharge"], limit=730 * DAY, positive=["death"]),
    "icu_readmission": dict(anchor="first_icu_out", events=["icu", "discharge", "death"], limit=730 * DAY, positive=["icu"]),
}


def _kind(code: str) -> str | None:
    if code == DEATH:
        return "death"
    for prefix, kind in (("HOSPITAL_DISCHARGE//", "discharge"), ("HOSPITAL_ADMISSION//", "admission"), ("ICU_ADMISSION//", "icu"),
                         ("ICU_DISCHARGE//", "icu_discharge")):
        if code.startswith(prefix):
            return kind
    return {"ED_REGISTRATION": "ed_registration", "ED_OUT": "ed_out"}.get(code)


def _subjects(meds_dir: Path, splits):
    """{subject: [(time µs or None, code, hadm_id or None), ...]} in file order, splits in name order."""
    out = {}
    for split in sorted(splits):
        for f in sorted((meds_dir / "data" / split).rglob("*.parquet")):
            t = pq.read_table(f)
            times = t.column("time").cast(pa.int64()).to_pylist()
            hadm = t.column("hadm_id").to_pylist() if "hadm_id" in t.column_names else [None] * t.num_rows
            for s, tm, c, h in zip(t.column("subject_id").to_pylist(), times, t.column("code").to_pylist(), hadm):
                out.setdefault(s, []).append((tm, c, h))
    return out


def _death_first(rows):
    """MEDS_DEATH moved before the first hospital or ICU discharge of its time, when one precedes it."""
    out = []
    for row in rows:
        if row[1] == DEATH:
            j = len(out)
            while j > 0 and out[j - 1][0] == row[0]:
                j -= 1
            for k in range(j, len(out)):
                if out[k][0] == row[0] and (out[k][1].startswith("HOSPITAL_DISCHARGE//") or out[k][1].startswith("ICU_DISCHARGE//")):
                    out.insert(k, row)
                    break
            else:
                out.append(row)
        else:
            out.append(row)
    return out


def _is_anchor(name, rows, i) -> bool:
    t, code, hadm = rows[i]
    kind = _kind(code)
    if t is None:
        return False
    if name == "adm":
        return kind == "admission"
    if name == "ed_reg":
        return kind == "ed_registration"
    if name == "icu_adm":
        return kind == "icu"
    if name == "ed_out_no_hadm":
        return kind == "ed_out" and hadm is None
    if name == "discharge_not_after_death":
        return kind == "discharge" and not (i > 0 and rows[i - 1][1] == DEATH)
    if name == "first_icu_out":
        if kind != "icu_discharge":
            return False
        for j in range(i - 1, -1, -1):  # back to the admission: no other ICU discharge, discharge or death on the way
            k = _kind(rows[j][1])
            if k == "admission":
                return True
            if k in ("icu_discharge", "discharge", "death"):
                return False
        return False
    raise AssertionError(name)


def oracle_labels(meds_dir: Path, task: str, splits) -> list[tuple]:
    spec = ORACLE[task]
    out = []
    for subject, rows in _subjects(meds_dir, splits).items():
        rows = _death_first(rows)
        for i in range(len(rows)):
            if not _is_anchor(spec["anchor"], rows, i):
                continue
            t0 = rows[i][0]
            event, elapsed = "timeline_end", rows[-1][0] - t0
            for t, code, _ in rows[i + 1:]:
                if _kind(code) in spec["events"]:
                    event, elapsed = _kind(code), t - t0
                    break
            if elapsed > spec["limit"]:
                event, elapsed = "none", spec["limit"]
            positive = event in spec["positive"] and elapsed <= spec.get("within", elapsed)
            if "long_stay" in spec and event in spec["events"] and elapsed >= spec["long_stay"]:
                positive = True
            out.append((subject, t0, event, elapsed, positive))
    return sorted(out)


def _written(path) -> list[tuple]:
    t = pq.read_table(path)
    return sorted(zip(t.column("subject_id").to_pylist(), t.column("prediction_time").cast(pa.int64()).to_pylist(),
                      t.column("true_event").to_pylist(), t.column("true_time_us").to_pylist(), t.column("boolean_value").to_pylist()))


def test_catalog_loads_and_validates():
    assert set(CATALOG) == set(ORACLE)
    for name in CATALOG:
        task = load_task(name)
        assert isinstance(task, EventTask) and task.name == name
        assert EventTask.from_dict(task.to_dict()) == task  # the file's settings round-trip


@pytest.mark.parametrize("task", sorted(ORACLE))
def test_labels_on_the_mimic_demo_equal_an_independent_first_event_rule(shared_data, tmp_path, task):
    meds = shared_data / "mimic-iv-demo-meds"
    for splits in (("train", "tuning", "held_out"), ("held_out",)):
        out = tmp_path / f"{task}_{len(splits)}.parquet"
        summary = make_labels(meds, task, out, splits=splits)
        got, want = _written(out), oracle_labels(meds, task, splits)
        assert got == want
        assert summary.positive == sum(r[-1] for r in want) and sum(summary.rows_per_split.values()) == len(want)


def test_mimic_demo_catalog_counts_are_plausible(shared_data, tmp_path):
    """Not empty and not degenerate: each task has anchors on the demo; the common ones have
    both labels."""
    meds = shared_data / "mimic-iv-demo-meds"
    for task in ("hospital_mortality", "icu_admission", "prolonged_stay", "composite", "readmission_30d", "icu_mortality"):
        s = make_labels(meds, task, tmp_path / f"{task}.parquet")
        assert s.positive > 0 and s.negative > 0, (task, s.describe())


def test_death_reorder_decides_a_same_time_discharge_and_death(tmp_path):
    """A DIED discharge written before the death at the same time: mortality-positive only with
    the reorder; and a discharge right after a death starts no readmission window."""
    meds = _tiny_meds(tmp_path / "meds", [
        (1, 0, "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", 1), (1, 5 * DAY, "HOSPITAL_DISCHARGE//DIED", 1), (1, 5 * DAY, DEATH, None),
        (2, 0, "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", 2), (2, 3 * DAY, "HOSPITAL_DISCHARGE//HOME", 2),
    ])
    with_reorder = load_task("hospital_mortality")
    make_labels(meds, with_reorder, tmp_path / "a.parquet")
    without = EventTask.from_dict({**with_reorder.to_dict(), "order": {"death_before_discharge": False}})
    make_labels(meds, without, tmp_path / "b.parquet")
    a, b = pq.read_table(tmp_path / "a.parquet").to_pylist(), pq.read_table(tmp_path / "b.parquet").to_pylist()
    assert [r["boolean_value"] for r in a] == [True, False] and [r["true_event"] for r in a] == ["death", "discharge"]
    assert [r["boolean_value"] for r in b] == [False, False]
    make_labels(meds, "readmission_30d", tmp_path / "r.parquet")
    assert pq.read_table(tmp_path / "r.parquet").column("subject_id").to_pylist() == [2]  # subject 1's discharge follows the death


def test_two_anchors_at_one_time_get_distinct_ids_and_the_label_columns(tmp_path):
    meds = _tiny_meds(tmp_path / "meds", [
        (1, 0, "ED_REGISTRATION", None), (1, 0, "ED_REGISTRATION", None), (1, HOUR, "ED_OUT", None),
        (1, 2 * HOUR, "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", 7), (1, 4 * HOUR, "ICU_ADMISSION//MICU", 7),
        (1, 10 * DAY, "ICU_DISCHARGE//MICU", 7), (1, 12 * DAY, "HOSPITAL_DISCHARGE//HOME", 7), (9, 0, DEATH, None),
    ])
    make_labels(meds, "ed_critical_outcome", tmp_path / "e.parquet")
    t = pq.read_table(tmp_path / "e.parquet")
    assert t.column_names[:3] == ["subject_id", "prediction_time", "boolean_value"]
    assert {"anchor_id", "anchor_code", "hadm_id", "true_event", "true_time_us", "label_ed_critical_outcome"} <= set(t.column_names)
    assert len(set(t.column("anchor_id").to_pylist())) == 2
    assert t.column("true_event").to_pylist() == ["icu", "icu"] and t.column("true_time_us").to_pylist() == [4 * HOUR] * 2
    make_labels(meds, "composite", tmp_path / "c.parquet")
    c = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert c[0]["hadm_id"] == 7 and c[0]["label_icu_admission"] and c[0]["label_composite"]
    make_labels(meds, "icu_readmission", tmp_path / "i.parquet")
    i = pq.read_table(tmp_path / "i.parquet").to_pylist()
    assert len(i) == 1 and i[0]["true_event"] == "discharge" and not i[0]["boolean_value"]


def test_time_limit_and_timeline_end(tmp_path):
    meds = _tiny_meds(tmp_path / "meds", [
        (1, 0, "ED_REGISTRATION", None), (1, 13 * HOUR, "ICU_ADMISSION//MICU", None),  # after the 12 h limit: none
        (2, 0, "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", 3), (2, DAY, "LAB//x", 3),  # the record ends first
        (9, 0, "HOSPITAL_DISCHARGE//HOME", None), (9, DAY, DEATH, None),  # so that every event regex matches a code
    ])
    make_labels(meds, "ed_critical_outcome", tmp_path / "e.parquet")
    e = pq.read_table(tmp_path / "e.parquet").to_pylist()
    assert (e[0]["true_event"], e[0]["true_time_us"], e[0]["boolean_value"]) == ("none", 12 * HOUR, False)
    s = make_labels(meds, "hospital_mortality", tmp_path / "h.parquet")
    h = pq.read_table(tmp_path / "h.parquet").to_pylist()
    assert (h[0]["true_event"], h[0]["true_time_us"]) == ("timeline_end", DAY) and s.first_events == {"timeline_end": 1}
    s = make_labels(meds, "hospital_mortality", tmp_path / "h2.parquet", drop_timeline_end=True)
    assert pq.read_table(tmp_path / "h2.parquet").num_rows == 0 and s.dropped["timeline_end"] == 1


# ---- bad input -------------------------------------------------------------------------------


def test_an_event_regex_that_matches_no_code_is_an_error_and_nothing_is_written(shared_data, tmp_path):
    task = load_task("icu_admission").to_dict()
    task["events"]["icu"] = "^ICU_ADMITTED//"
    out = tmp_path / "x.parquet"
    with pytest.raises(EhrfastError, match=r"event 'icu'.*matches no code"):
        make_labels(shared_data / "mimic-iv-demo-meds", EventTask.from_dict(task), out)
    assert not out.exists()


@pytest.mark.parametrize("change, field", [
    ({"time_limit": "ten days"}, "time_limit"),
    ({"time_limit": 10}, "time_limit"),
    ({"outcomes": {"x": {"any_of": [{"events": ["dead"]}]}}}, "outcomes.x"),
    ({"outcomes": {"x": {"any_of": [{"events": ["death"], "min_time": "5x"}]}}}, r"outcomes.x.any_of\[0\].min_time"),
    ({"anchor": {"code_regex": "(", "context": "same_time"}}, "anchor.code_regex"),
    ({"anchor": {"code_regex": "^A", "context": "later"}}, "anchor.context"),
    ({"valid": {"exclude_events": ["nope"]}}, "valid.exclude_events"),
    ({"events": {"none": "^X$"}}, "reserved"),
    ({"colour": "red"}, "colour"),
])
def test_task_files_with_bad_fields_are_refused_naming_the_field(tmp_path, change, field):
    d = {**load_task("hospital_mortality").to_dict(), **change}
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(d))
    with pytest.raises(EhrfastError, match=field) as info:
        load_task(path)
    assert str(path) in str(info.value)


def test_catalog_name_and_file_path(tmp_path):
    assert catalog_task("composite").label_outcome == "composite"
    with pytest.raises(EhrfastError, match="hospital_mortality"):  # the message lists the catalog
        load_task("hospital_mortalty")
    path = tmp_path / "hm.yaml"
    path.write_text((Path(CATALOG["hospital_mortality"])).read_text().replace("name: hospital_mortality", "name: mine"))
    assert load_task(path).name == "mine"


def test_per_anchor_evaluation_needs_anchor_ids(tmp_path):
    """A label file without anchor_id cannot be read as a per-anchor task's labels."""
    from ehrfast.predictions import read_anchored_labels

    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"subject_id": [1], "prediction_time": pa.array([0], pa.timestamp("us")), "boolean_value": [True]}), path)
    with pytest.raises(EhrfastError, match="anchor_id"):
        read_anchored_labels(path)


# ---- helpers ---------------------------------------------------------------------------------


def _tiny_meds(root: Path, rows) -> Path:
    """A one-shard MEDS dataset (train split) from (subject, time µs, code, hadm_id) rows."""
    from ehrfast.data.meds import write_dataset_metadata

    (root / "data" / "train").mkdir(parents=True)
    base = 4_102_444_800_000_000  # 2100-01-01
    t = pa.table({"subject_id": pa.array([r[0] for r in rows], pa.int64()),
                  "time": pa.array([base + r[1] for r in rows], pa.int64()).cast(pa.timestamp("us")),
                  "code": pa.array([r[2] for r in rows], pa.string()),
                  "numeric_value": pa.array([None] * len(rows), pa.float32()),
                  "hadm_id": pa.array([r[3] for r in rows], pa.int64())})
    pq.write_table(t, root / "data" / "train" / "0.parquet")
    write_dataset_metadata(root)
    return root


def test_the_oracles_death_reorder():
    rows = [(0, "A", None), (5, "B", None), (5, "HOSPITAL_DISCHARGE//DIED", 1), (5, "ICU_DISCHARGE//X", 1), (5, DEATH, None)]
    assert [r[1] for r in _death_first(rows)] == ["A", "B", DEATH, "HOSPITAL_DISCHARGE//DIED", "ICU_DISCHARGE//X"]


def test_labels_on_the_synthetic_hospital_world_give_its_realized_rates(tmp_path):
    """The generator counts its own realized outcomes (cohort.json); ehrfast label, reading only
    the MEDS rows, gives the same rates for the tasks whose definitions coincide."""
    import json

    from ehrfast.synth.generator import SyntheticConfig, generate_cohort

    root = tmp_path / "c"
    generate_cohort(root, SyntheticConfig(n_subjects=3_000, seed=5, n_variants=200, n_null_traits=1, causal_variants=10, score_variants=40),
                    progress=False)
    rates = json.loads((root / "cohort.json").read_text())["hospital"]
    # in-hospital tasks: the same definition (rates are rounded to 4 decimals); ED tasks: the
    # generator counts the ED visit's own episode, a label any first event (another visit's too)
    for task, rate, tol in (("hospital_mortality", "hospital_mortality", 6e-5), ("prolonged_stay", "prolonged_stay_10d", 6e-5),
                            ("icu_admission", "icu_admission", 6e-5), ("composite", "composite", 6e-5),
                            ("ed_critical_outcome", "ed_critical_outcome_12h", 2e-3), ("ed_representation", "ed_return_72h", 2e-3)):
        s = make_labels(root, task, tmp_path / f"{task}.parquet")
        assert s.positive / s.anchors == pytest.approx(rates[rate], abs=tol), task
    assert make_labels(root, "hospital_mortality", tmp_path / "n.parquet").anchors == rates["admissions"]
