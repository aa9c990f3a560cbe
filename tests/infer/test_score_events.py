"""``ehrfast score`` with ETHOS-ARES event tasks: a tiny CPU model on the synthetic hospital world
and on the MIMIC-IV demo writes predictions v2, one row per anchored label row, whose columns
agree with its per-sample file; two models' files evaluate per prediction."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ehrfast.errors import EhrfastError
from ehrfast.evaluate import EvaluateOptions, evaluate
from ehrfast.infer import ScoreOptions
from ehrfast.infer.score import score_cohort
from ehrfast.infer.score_events import event_token_classes, prediction_keys
from ehrfast.labels import make_labels
from ehrfast.task import EventTask, load_task
from ehrfast.tokenize import tokenize_dataset
from ehrfast.train import TrainConfig, train


def _small(name: str, **changes) -> EventTask:
    """A catalog task with few samples and a short cap, so a CPU test runs in seconds."""
    return EventTask.from_dict({**load_task(name).to_dict(), "n_samples": 6, "max_new_tokens": 40, **changes})


@pytest.fixture(scope="module")
def hospital_run(small_cohort, tmp_path_factory):
    root, _, _ = small_cohort
    d = tmp_path_factory.mktemp("events")
    tokenize_dataset(root, d / "tok", progress=False)
    for seed in (0, 1):
        train(d / "tok", d / f"run{seed}", TrainConfig(preset="tiny", steps=4, batch_size=2, seq_len=32, eval_every=4, eval_batches=1, seed=seed,
                                                       modality="none"), progress=False)
    return root, d


def test_hospital_mortality_predictions_v2(hospital_run):
    root, d = hospital_run
    task = _small("hospital_mortality")
    make_labels(root, task, d / "hm.parquet", splits=("held_out",))
    labels = pq.read_table(d / "hm.parquet")
    summary = score_cohort(d / "run0" / "model", d / "tok" / "held_out", d / "hm.parquet", task, d / "pred.parquet",
                           samples_path=d / "samples.parquet", progress=False)
    pred = pq.read_table(d / "pred.parquet")
    assert pred.num_rows == labels.num_rows == summary.predictions > 0
    assert pred.column("anchor_id").to_pylist() == labels.column("anchor_id").to_pylist()
    for o in ("hospital_mortality", "prolonged_stay"):  # one run, both outcomes
        for c in ("p_mc_", "n_valid_", "ci_low_", "ci_high_", "risk_level_"):
            assert f"{c}{o}" in pred.column_names
    assert pred.schema.metadata[b"ehrfast_predictions_version"] == b"2"
    p = pred.to_pandas()
    samples = pq.read_table(d / "samples.parquet").to_pandas()
    assert len(samples) == len(p) * task.n_samples
    # p_mc is the mean of the per-sample indicator over the valid samples (the sample file's first events)
    valid = ~samples.mc_event.isin(["timeline_end", "none"])
    died = samples.mc_event == "death"
    long = samples.mc_event.isin(["death", "discharge"]) & (samples.mc_elapsed_us >= 10 * 86_400e6)
    g = samples.assign(valid=valid, hm=died & valid, ps=long & valid).groupby(["subject_id", "anchor_id"], sort=False)
    agg = g[["valid", "hm", "ps"]].sum().reindex(list(zip(p.subject_id, p.anchor_id)))
    np.testing.assert_array_equal(agg.valid.to_numpy(), p.n_valid_hospital_mortality.to_numpy())
    has = agg.valid.to_numpy() > 0
    np.testing.assert_allclose(p.p_mc_hospital_mortality.to_numpy()[has], (agg.hm / agg.valid).to_numpy()[has], rtol=1e-6)
    np.testing.assert_allclose(p.p_mc_prolonged_stay.to_numpy()[has], (agg.ps / agg.valid).to_numpy()[has], rtol=1e-6)
    assert p.p_mc_hospital_mortality[~has].isna().all()
    np.testing.assert_allclose(p.predicted_boolean_probability[has], p.p_mc_hospital_mortality[has], rtol=1e-6)
    assert p.predicted_boolean_probability.between(0, 1).all()  # the path estimate where no sample was valid
    assert (p.ci_low_hospital_mortality[has] <= p.p_mc_hospital_mortality[has] + 1e-7).all()
    assert p.tokens_generated.sum() == summary.tokens_generated == samples.tokens.sum()
    assert ((0 <= p.share_max_tokens) & (p.share_max_tokens <= 1)).all()


def test_path_estimator_and_evaluation_of_two_models(hospital_run):
    """The composite from the ICU run with the path estimator; two models' predictions of
    subjects with several admissions (different labels) evaluate and match scikit-learn."""
    root, d = hospital_run
    task = _small("composite", estimator="path")
    make_labels(root, task, d / "comp.parquet", splits=("held_out",))
    for seed in (0, 1):
        score_cohort(d / f"run{seed}" / "model", d / "tok" / "held_out", d / "comp.parquet", task, d / f"c{seed}.parquet",
                     ScoreOptions(seed=seed), progress=False)
    a, b = (pq.read_table(d / f"c{s}.parquet").to_pandas() for s in (0, 1))
    for o in ("icu_admission", "icu_admission_or_death", "composite"):
        assert a[f"p_path_{o}"].between(0, 1).all()
    np.testing.assert_allclose(a.predicted_boolean_probability, a.p_path_composite, rtol=1e-6)
    labels = pq.read_table(d / "comp.parquet").to_pandas()
    assert (labels.groupby("subject_id").boolean_value.nunique() == 2).any()  # a subject with both labels
    res = evaluate([(d / "c0.parquet", d / "c1.parquet")], d / "eval", EvaluateOptions(iterations=50, cluster_by_subject=True), progress=False)
    t = res.tasks["task"]
    y = a.boolean_value.to_numpy()
    assert t.n == len(a)
    assert t.metrics_a.auroc == pytest.approx(roc_auc_score(y, a.predicted_boolean_probability.astype(float)), abs=1e-12)
    assert t.metrics_b.auprc == pytest.approx(average_precision_score(y, b.predicted_boolean_probability.astype(float)), abs=1e-12)


def test_event_scoring_on_the_mimic_demo(shared_data, tmp_path):
    meds = shared_data / "mimic-iv-demo-meds"
    tokenize_dataset(meds, tmp_path / "tok", progress=False)
    train(tmp_path / "tok", tmp_path / "run", TrainConfig(preset="tiny", steps=2, batch_size=2, seq_len=32, eval_every=2, eval_batches=1,
                                                          modality="none"), progress=False)
    task = _small("icu_admission")
    make_labels(meds, task, tmp_path / "ia.parquet", splits=("held_out",))
    s = score_cohort(tmp_path / "run" / "model", tmp_path / "tok" / "held_out", tmp_path / "ia.parquet", task, tmp_path / "p.parquet",
                     progress=False)
    assert pq.read_table(tmp_path / "p.parquet").num_rows == pq.read_table(tmp_path / "ia.parquet").num_rows == s.predictions > 0


def test_bad_inputs_of_event_scoring(hospital_run, tmp_path):
    root, d = hospital_run
    make_labels(root, _small("icu_mortality"), tmp_path / "im.parquet", splits=("held_out",))
    # a plain MEDS label file (as ACES writes) is scored row by row at its prediction times (#22 item 2) ...
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(tmp_path / "im.parquet").select(["subject_id", "prediction_time", "boolean_value"]), plain)
    score_cohort(d / "run0" / "model", d / "tok" / "held_out", plain, _small("icu_mortality"), tmp_path / "plain_pred.parquet", progress=False)
    scored = pq.read_table(tmp_path / "plain_pred.parquet")
    assert scored.column("anchor_id").to_pylist() == list(range(pq.read_metadata(plain).num_rows))
    # ... but a file that has anchor_id without the anchor's columns is refused, naming them
    partial = tmp_path / "partial.parquet"
    pq.write_table(pq.read_table(tmp_path / "im.parquet").select(["subject_id", "prediction_time", "boolean_value", "anchor_id"]), partial)
    with pytest.raises(EhrfastError, match="anchor_code"):
        score_cohort(d / "run0" / "model", d / "tok" / "held_out", partial, _small("icu_mortality"), tmp_path / "x.parquet", progress=False)
    assert not (tmp_path / "x.parquet").exists()
    bad = _small("icu_mortality", events={"death": "^MEDS_DEATH$", "icu_discharge": "^ICU_OUT//", "timeline_end": "^TIMELINE_END$"})
    with pytest.raises(EhrfastError, match="icu_discharge.*matches no code"):
        score_cohort(d / "run0" / "model", d / "tok" / "held_out", tmp_path / "im.parquet", bad, tmp_path / "x.parquet", progress=False)
    with pytest.raises(EhrfastError, match="samples"):
        score_cohort(d / "run0" / "model", d / "tok" / "held_out", tmp_path / "im.parquet", _small("icu_mortality"), tmp_path / "x.parquet",
                     trajectories_path=tmp_path / "t.parquet", progress=False)
    assert not (tmp_path / "x.parquet").exists()


def test_died_discharge_is_the_death_and_prediction_keys_differ():
    task = load_task("hospital_mortality")
    tokens = ["A", "MEDS_DEATH", "HOSPITAL_DISCHARGE//HOME", "HOSPITAL_DISCHARGE//DIED", "TIMELINE_END"]
    assert event_token_classes(task, tokens, "t").tolist() == [-1, 0, 1, 0, 2]
    no_reorder = EventTask.from_dict({**task.to_dict(), "order": {"death_before_discharge": False}})
    assert event_token_classes(no_reorder, tokens, "t").tolist() == [-1, 0, 1, 1, 2]
    keys = prediction_keys(np.array([5, 5, 6]), np.array([10, 11, 10]))
    assert len(set(keys.tolist())) == 3 and (keys >= 0).all()


def test_a_visit_token_works_as_an_event():
    """Events are regexes over every token kind, visit tokens included (ARES.md S2)."""
    task = EventTask.from_dict({**load_task("icu_admission").to_dict(),
                                "events": {"icu": "^VISIT_START//ICU$", "discharge": "^VISIT_END//INPATIENT$", "death": "^MEDS_DEATH$"},
                                "valid": {}})
    tokens = ["VISIT_START//INPATIENT", "VISIT_START//ICU", "VISIT_END//INPATIENT", "MEDS_DEATH", "Q1"]
    assert event_token_classes(task, tokens, "t").tolist() == [-1, 0, 1, 2, -1]
    with pytest.raises(EhrfastError, match="event 'icu'"):
        event_token_classes(task, ["VISIT_START//INPATIENT", "VISIT_END//INPATIENT", "MEDS_DEATH"], "t")


def test_contexts_end_at_the_anchor_token(hospital_run, tmp_path):
    """icu_mortality's context is the ICU admission's own token (``context: anchor``); the
    mortality task's ends with the last token at the admission's time."""
    from ehrfast.infer.score_events import anchor_token_offsets
    from ehrfast.tokenize import TokenizedDataset

    root, d = hospital_run
    ds = TokenizedDataset(d / "tok" / "held_out")
    for name in ("icu_mortality", "hospital_mortality"):
        task = _small(name)
        make_labels(root, task, tmp_path / f"{name}.parquet", splits=("held_out",))
        labels = pq.read_table(tmp_path / f"{name}.parquet")
        offsets = anchor_token_offsets(ds, labels, task)
        assert (offsets >= 0).all()
        for s, t, code, k in zip(labels.column("subject_id").to_pylist(), labels.column("prediction_time").cast("int64").to_pylist(),
                                 labels.column("anchor_code").to_pylist(), offsets.tolist()):
            tokens, times = ds.timeline(ds.row(s))
            assert times[k] == t
            if task.anchor.context == "anchor":
                assert ds.vocab.tokens[tokens[k]] == code
            else:
                assert k + 1 == len(times) or times[k + 1] > t
