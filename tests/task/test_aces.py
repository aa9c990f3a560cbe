"""#22 items 2 and 3: ACES task configs as ehrfast event tasks, checked against the real ACES
(es-aces): its parser accepts the configs, its labels equal ``ehrfast label``'s for a config ehrfast
can label, and its label files score with the mapped task; codes match as ACES matches them."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ehrfast.errors import InvalidInputError
from ehrfast.task import EventTask, Task, load_task
from ehrfast.task.aces import aces_task, parse_aces_timedelta
from ehrfast.units import US_PER_DAY, US_PER_HOUR

AT_ADMISSION = """\
predicates:
  admission:
    code: { regex: "^HOSPITAL_ADMISSION//.*" }
  discharge:
    code: { regex: "^HOSPITAL_DISCHARGE//.*" }
  death:
    code: MEDS_DEATH
  discharge_or_death:
    expr: or(discharge, death)
trigger: admission
windows:
  input:
    start: null
    end: trigger
    start_inclusive: True
    end_inclusive: True
    index_timestamp: end
  target:
    start: input.end
    end: start -> discharge_or_death
    start_inclusive: False
    end_inclusive: True
    label: death
"""


def _configs(shared_data) -> Path:
    return shared_data / "mimic-iv-demo-meds" / "tasks" / "configs"


def test_the_shipped_aces_configs_map_to_event_tasks(shared_data):
    aces = pytest.importorskip("aces.config")
    for path in sorted(_configs(shared_data).glob("*.yaml")):
        aces.TaskExtractorConfig.load(path)  # the real parser accepts what we map
    hosp = load_task(_configs(shared_data) / "mortality_in_hospital_first_24h.yaml")
    assert isinstance(hosp, EventTask) and hosp.anchor.code_regex == "^HOSPITAL_ADMISSION//.*"
    assert list(hosp.events) == ["death", "discharge_or_death", "timeline_end"]
    assert hosp.event_of_code(["MEDS_DEATH", "HOSPITAL_DISCHARGE//HOME", "meds_death", "MEDS_DEATH_X"]).tolist() == [0, 1, -1, -1]
    assert hosp.extra["aces"]["index_offset_us"] == 24 * US_PER_HOUR and hosp.extra["aces"]["cohort_criteria"] == []
    assert hosp.valid.exclude_time_limit and hosp.valid.exclude_events == ("timeline_end",)
    icu = load_task(_configs(shared_data) / "mortality_in_icu_first_24h.yaml")
    clause = icu.outcomes[icu.label_outcome].any_of[0]
    assert clause.events == ("death",) and clause.min_time_us == US_PER_DAY  # the target starts 48 h after the trigger, 24 h after the index
    assert icu.extra["aces"]["cohort_criteria"] and "gap" in icu.extra["aces"]["cohort_criteria"][0]


def test_aces_labels_equal_ehrfast_labels_for_a_config_at_the_trigger(shared_data, tmp_path):
    """The real aces-cli and ``ehrfast label`` on the MIMIC-IV demo, one config: the same
    (subject, prediction time, label) rows."""
    if shutil.which("aces-cli") is None or shutil.which("expand_shards") is None:
        pytest.skip("es-aces is not installed")
    from ehrfast.labels import make_labels

    meds = shared_data / "mimic-iv-demo-meds"
    (tmp_path / "at_admission.yaml").write_text(AT_ADMISSION)
    shards = subprocess.run(["expand_shards", str(meds / "data")], capture_output=True, text=True, check=True).stdout.strip()
    done = subprocess.run(["aces-cli", "data=sharded", "data.standard=meds", f"data.root={meds / 'data'}", f"data.shard={shards}",
                           f"cohort_dir={tmp_path}", "cohort_name=at_admission", "-m"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = set()
    for path in (tmp_path / "at_admission").rglob("*.parquet"):
        t = pq.read_table(path, columns=["subject_id", "prediction_time", "boolean_value"]).to_pylist()
        theirs |= {(r["subject_id"], r["prediction_time"], r["boolean_value"]) for r in t}
    make_labels(meds, tmp_path / "at_admission.yaml", tmp_path / "ours.parquet")
    ours = {(r["subject_id"], r["prediction_time"], r["boolean_value"])
            for r in pq.read_table(tmp_path / "ours.parquet", columns=["subject_id", "prediction_time", "boolean_value"]).to_pylist()}
    assert len(ours) > 200 and sum(label for *_, label in ours) > 5
    assert ours == theirs


def test_a_config_ehrfast_cannot_label_is_refused_naming_why(shared_data, tmp_path):
    from ehrfast.labels import make_labels

    for name, why in (("mortality_in_hospital_first_24h", "1d after the trigger"), ("mortality_in_icu_first_24h", "windows.gap.has")):
        with pytest.raises(InvalidInputError, match=why) as info:
            make_labels(shared_data / "mimic-iv-demo-meds", _configs(shared_data) / f"{name}.yaml", tmp_path / f"{name}.parquet")
        assert "aces-cli" in str(info.value) and not (tmp_path / f"{name}.parquet").exists()


def test_aces_labels_score_with_the_mapped_task(shared_data, tmp_path, meds_evaluation):
    """ACES config -> task -> score: ACES's own label file (the MIMIC demo's held-out in-hospital
    mortality labels), each row scored at its prediction time; meds-evaluation reads the result."""
    from ehrfast.infer import ScoreOptions
    from ehrfast.infer.score import score_cohort
    from ehrfast.tokenize import tokenize_dataset
    from ehrfast.train import TrainConfig, train

    meds = shared_data / "mimic-iv-demo-meds"
    labels = meds / "tasks" / "mortality_in_hospital_first_24h" / "held_out" / "0.parquet"
    tokenize_dataset(meds, tmp_path / "tok", progress=False)
    train(tmp_path / "tok", tmp_path / "run", TrainConfig(preset="tiny", modality="none", steps=2, batch_size=2, seq_len=32, eval_every=2,
                                                          eval_batches=1),
          progress=False)
    task = dataclasses.replace(load_task(_configs(shared_data) / "mortality_in_hospital_first_24h.yaml"), n_samples=3, max_new_tokens=16)
    summary = score_cohort(tmp_path / "run" / "model", tmp_path / "tok" / "held_out", labels, task, tmp_path / "pred.parquet",
                           ScoreOptions(), progress=False)
    pred = pq.read_table(tmp_path / "pred.parquet")
    n_labels = pq.read_metadata(labels).num_rows
    assert summary.predictions == pred.num_rows == n_labels  # every held-out label row (their subjects are all in held_out)
    assert pred.column("anchor_id").to_pylist() == list(range(n_labels))
    strict = pq.read_table(tmp_path / "pred_strict.parquet")
    assert strict.num_rows == n_labels
    if 0 < sum(strict.column("boolean_value").to_pylist()) < n_labels:
        assert "roc_auc_score" in meds_evaluation(tmp_path / "pred_strict.parquet")["samples_equally_weighted"]


@pytest.mark.parametrize("change,message", [
    ({"predicates": {"admission": {"code": {"regex": "^HOSPITAL_ADMISSION//"}}, "death": {"code": "MEDS_DEATH", "value_min": 1},
                     "discharge": {"code": {"regex": "^HOSPITAL_DISCHARGE//"}}, "discharge_or_death": {"expr": "or(discharge, death)"}}},
     "value_min"),
    ({"predicates": {"admission": {"code": {"regex": "^HOSPITAL_ADMISSION//"}}, "death": {"code": "MEDS_DEATH"},
                     "discharge": {"code": {"regex": "^HOSPITAL_DISCHARGE//"}}, "discharge_or_death": {"expr": "and(discharge, death)"}}},
     "and\\(...\\)"),
    ({"trigger": "nope"}, "predicate 'nope' is not defined"),
    ({"trigger": "_ANY_EVENT"}, "special predicate"),
    ({"extra_key": 1}, "unknown key\\(s\\) \\['extra_key'\\]"),
])
def test_what_cannot_be_mapped_is_refused_naming_the_field(tmp_path, change, message):
    import yaml

    data = {**yaml.safe_load(AT_ADMISSION), **change}
    with pytest.raises(InvalidInputError, match=message):
        aces_task(data, "cfg.yaml", "t")
    # through a task file too: the file is named, no traceback type other than EhrfastError
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInputError, match="cfg.yaml"):
        load_task(tmp_path / "cfg.yaml")


def test_a_target_that_starts_before_the_prediction_time_is_refused():
    import yaml

    data = yaml.safe_load(AT_ADMISSION)
    data["windows"]["input"]["end"] = "trigger + 24h"  # index at 24 h, target still from the trigger
    data["windows"]["target"]["start"] = "trigger"
    with pytest.raises(InvalidInputError, match="before the prediction time"):
        aces_task(data, "cfg.yaml", "t")


@pytest.mark.parametrize("text", ["24h", "1 day", "30 days", "2 hours", "1 days 2 hours 3 minutes 4 seconds", "1 day, 14:20:16", "48h",
                                  "365 days", "1w", "90 minutes"])
def test_window_offsets_read_as_aces_reads_them(text):
    pytimeparse = pytest.importorskip("pytimeparse")
    assert parse_aces_timedelta(text, "w") == round(pytimeparse.parse(text) * 1e6)


def test_incidence_regexes_match_the_code_alone_case_sensitive(tmp_path):
    """#22 item 2: ``^MEDS_DEATH$`` never matched (the code was matched with its description
    appended, case-insensitive); descriptions are searched only when asked."""
    death = Task(name="death", target_regex=("^MEDS_DEATH$",))
    assert death.matches("MEDS_DEATH", "Death of the subject") and not death.matches("meds_death")
    cad = Task(name="cad", target_regex=("myocardial infarction",))
    assert not cad.matches("DIAGNOSIS//ICD//10//I21", "Acute myocardial infarction")
    assert dataclasses.replace(cad, match_descriptions=True).matches("DIAGNOSIS//ICD//10//I21", "Acute Myocardial infarction")
    (tmp_path / "t.yaml").write_text("target_regex: [x]\nmatch_descriptions: 'yes'\n")
    with pytest.raises(InvalidInputError, match="match_descriptions"):
        load_task(tmp_path / "t.yaml")
