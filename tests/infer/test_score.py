"""Labels and zero-shot scoring on the synthetic cohort with a small CPU model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ehrfast.evaluate.metrics import auroc
from ehrfast.genomics.prs import compute_prs
from ehrfast.infer import ScoreOptions
from ehrfast.infer.score import score_cohort
from ehrfast.labels import make_labels
from ehrfast.task import Task
from ehrfast.tokenize import tokenize_dataset
from ehrfast.train import TrainConfig, train

T2D = Task(name="t2d_10y", target_all_of=("type 2 diabetes",), horizon_years=10, max_new_tokens=24, n_samples=4)


def test_task_matching_and_loading(tmp_path):
    assert T2D.matches("DIAGNOSIS//ICD//10//E119", "Type 2 diabetes mellitus without complications")
    assert not T2D.matches("DIAGNOSIS//ICD//10//E109", "Type 1 diabetes mellitus without complications")
    (tmp_path / "t.json").write_text(json.dumps({"target_regex": "E11", "horizon_years": 5}))
    t = Task.load(tmp_path / "t.json")
    assert t.name == "t" and t.target_regex == ("E11",)
    (tmp_path / "t.yaml").write_text("name: cad\ntarget_all_of: [coronary]\nn_samples: 3\n")
    assert Task.load(tmp_path / "t.yaml").n_samples == 3
    with pytest.raises(ValueError, match="target"):
        Task(name="x")


def check_trajectories(traj, pred, meds_dir, data_dir):
    """The written futures are the scored ones: token counts, target hits, times."""
    from ehrfast.data.meds import code_descriptions
    from ehrfast.tokenize import TokenizedDataset

    vocab = TokenizedDataset(data_dir).vocab
    targets = set(vocab.decode(T2D.target_token_ids(vocab, code_descriptions(meds_dir))))
    assert len(traj) == pred.tokens_generated.sum()
    per_subject = traj.groupby("subject_id").size()
    np.testing.assert_array_equal(per_subject.reindex(pred.subject_id, fill_value=0).to_numpy(), pred.tokens_generated.to_numpy())
    for _, path in traj.groupby(["subject_id", "sample"]):
        assert (path.step.to_numpy() == np.arange(len(path))).all()
        assert (np.diff(path.elapsed_us.to_numpy()) >= 0).all()
    offset = (traj.time - traj.prediction_time).dt.total_seconds().to_numpy() * 1e6
    np.testing.assert_allclose(offset, traj.elapsed_us.to_numpy(), atol=1.0)
    assert not traj.code.isin(targets).any()  # the survival paths; hits are marked instead
    assert traj.groupby(["subject_id", "sample"]).target_drawn.sum().max() == 1
    hit_paths = traj[traj.target_drawn].groupby("subject_id")["sample"].nunique()
    np.testing.assert_allclose(hit_paths.reindex(pred.subject_id, fill_value=0).to_numpy() / T2D.n_samples, pred.mc_frequency.to_numpy())


def check_torchrun_scoring(tmp_path, meds_dir, pred):
    """`torchrun -m ehrfast.cli score` with two CPU ranks (gloo): rank 0 writes the predictions of
    a one-process run; each rank writes the trajectories of its own subjects."""
    import os
    import subprocess
    import sys

    (tmp_path / "t2d.json").write_text(json.dumps(dataclasses.asdict(T2D)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ehrfast.cli", "score",
           str(tmp_path / "run" / "model"), str(tmp_path / "tok" / "held_out"), str(tmp_path / "labels.parquet"),
           "--task", str(tmp_path / "t2d.json"), "--out", str(tmp_path / "pred_ddp.parquet"), "--meds", str(meds_dir),
           "--prs", str(tmp_path / "prs" / "PRS.parquet"), "--trajectories", str(tmp_path / "traj_ddp.parquet"), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = pq.read_table(tmp_path / "pred_ddp.parquet").to_pandas()
    np.testing.assert_array_equal(ddp.subject_id, pred.subject_id)
    np.testing.assert_allclose(ddp.path_probability, pred.path_probability, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(ddp.tokens_generated, pred.tokens_generated)
    parts = [pq.read_table(tmp_path / f"traj_ddp.rank{r}.parquet").to_pandas() for r in range(2)]
    assert not set(parts[0].subject_id) & set(parts[1].subject_id)
    assert sum(len(p) for p in parts) == pred.tokens_generated.sum()


def test_labels_score_end_to_end(small_cohort, tmp_path, meds_evaluation):
    root, _, _ = small_cohort
    counts = make_labels(root, T2D, tmp_path / "labels.parquet").counts()
    labels = pq.read_table(tmp_path / "labels.parquet")
    assert counts["positive"] > 10 and counts["negative"] > 100 and counts["excluded_prior_target"] > 0
    assert labels.column_names == ["subject_id", "prediction_time", "boolean_value"]
    # labels agree with the generator's ground truth onsets
    truth = pq.read_table(root / "ground_truth" / "subjects.parquet").to_pandas().set_index("subject_id")
    lab = labels.to_pandas()
    onset = truth.loc[lab.subject_id, "onset_T2D"].to_numpy()
    assert (lab.boolean_value.to_numpy() <= (onset == onset)).all()  # positives have a true onset

    tokenize_dataset(root, tmp_path / "tok", progress=False)
    scores = sorted((root / "genomics" / "scores").glob("SYN_[A-Z]*.txt"))[:6]
    compute_prs(root / "genomics" / "genotypes", scores, tmp_path / "prs" / "PRS.parquet", meds_dir=root, progress=False)
    train(tmp_path / "tok", tmp_path / "run", TrainConfig(preset="tiny", steps=4, batch_size=2, seq_len=32, eval_every=4, eval_batches=1),
          prs_path=tmp_path / "prs" / "PRS.parquet", progress=False)
    summary = score_cohort(tmp_path / "run" / "model", tmp_path / "tok" / "held_out", tmp_path / "labels.parquet", T2D,
                           tmp_path / "pred.parquet", ScoreOptions(), meds_dir=root, prs_path=tmp_path / "prs" / "PRS.parquet",
                           progress=False)
    pred = pq.read_table(tmp_path / "pred.parquet").to_pandas()
    assert summary.targets_matched == 4 and len(pred) == summary.subjects > 0
    assert pred.predicted_boolean_probability.between(0, 1).all() and (pred.ci_low <= pred.mc_frequency).all()
    assert set(pred.risk_level) <= {1, 2, 3, 4, 5} and (pred.n_samples == 4).all()
    strict = pq.read_table(tmp_path / "pred_strict.parquet")  # written by default (#22 item 1)
    assert strict.column_names == ["subject_id", "prediction_time", "boolean_value", "predicted_boolean_value", "predicted_boolean_probability"]
    official = meds_evaluation(tmp_path / "pred_strict.parquet")["samples_equally_weighted"]
    assert official["roc_auc_score"] == pytest.approx(auroc(pred.boolean_value.to_numpy(), pred.predicted_boolean_probability.to_numpy()),
                                                      abs=1e-12)
    again = score_cohort(tmp_path / "run" / "model", tmp_path / "tok" / "held_out", tmp_path / "labels.parquet", T2D,
                         tmp_path / "pred2.parquet", ScoreOptions(strict_copy=False), meds_dir=root, prs_path=tmp_path / "prs" / "PRS.parquet", progress=False,
                         trajectories_path=tmp_path / "traj.parquet")
    assert again.subjects == summary.subjects and not (tmp_path / "pred2_strict.parquet").exists()
    np.testing.assert_array_equal(pq.read_table(tmp_path / "pred2.parquet").column("path_probability").to_numpy(),
                                  pred.path_probability.to_numpy())  # same seed, same output
    check_trajectories(pq.read_table(tmp_path / "traj.parquet").to_pandas(), pred, root, tmp_path / "tok" / "held_out")
    check_torchrun_scoring(tmp_path, root, pred)
    with pytest.raises(ValueError, match="no vocabulary token"):
        score_cohort(tmp_path / "run" / "model", tmp_path / "tok" / "held_out", tmp_path / "labels.parquet",
                     Task(name="none", target_regex=("NO_SUCH_CODE",)), tmp_path / "x.parquet", progress=False)
