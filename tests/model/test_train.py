"""Training loop on CPU: loss goes down, resume gives the same next steps, per-subject loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrfast.genomics.matrix import read_prs_matrix
from ehrfast.genomics.prs import compute_prs
from ehrfast.model import load_checkpoint
from ehrfast.tokenize import TokenizedDataset, tokenize_dataset
from ehrfast.train import TrainConfig, per_subject_loss, train
from ehrfast.train.loop import learning_rate


@pytest.fixture(scope="module")
def prepared(small_cohort, tmp_path_factory):
    root, _, _ = small_cohort
    base = tmp_path_factory.mktemp("train")
    tokenize_dataset(root, base / "tokens", progress=False)
    scores = sorted((root / "genomics" / "scores").glob("SYN_[A-Z]*.txt"))[:6]
    compute_prs(root / "genomics" / "genotypes", scores, base / "prs" / "PRS.parquet", meds_dir=root, progress=False)
    return base


def _cfg(**kw):
    return TrainConfig(**{**dict(preset="tiny", modality="cross", steps=6, batch_size=4, seq_len=48, lr=3e-3, warmup_steps=2,
                                 eval_every=3, eval_batches=2, seed=3), **kw})


def test_schedule():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert learning_rate(0, cfg) == pytest.approx(0.1) and learning_rate(9, cfg) == pytest.approx(1.0)
    assert learning_rate(100, cfg) == pytest.approx(0.1) and learning_rate(55, cfg) == pytest.approx(0.55)


def test_resume_gives_the_same_run(prepared, tmp_path):
    data, prs = prepared / "tokens", prepared / "prs" / "PRS.parquet"
    train(data, tmp_path / "a", _cfg(), prs_path=prs, progress=False)
    train(data, tmp_path / "b", _cfg(), prs_path=prs, stop_after=3, progress=False)
    assert not (tmp_path / "b" / "model").exists()
    train(data, tmp_path / "b", _cfg(), prs_path=prs, resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "a" / "model"), load_checkpoint(tmp_path / "b" / "model")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert ha["train_loss"] == hb["train_loss"] and len(ha["train_loss"]) == _cfg().steps


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_training_lowers_validation_loss(prepared, tmp_path, modality):
    hist = train(prepared / "tokens", tmp_path / modality, _cfg(modality=modality, steps=40, eval_every=20, eval_batches=4),
                 prs_path=prepared / "prs" / "PRS.parquet", progress=False)
    (s1, first), (s2, last) = hist.val_loss[0], hist.val_loss[-1]
    assert s2 > s1 and last < first and len(hist.train_loss) == 40  # losses are read every few steps: none lost
    assert hist.train_loss[-1] < np.log(len(TokenizedDataset(prepared / "tokens" / "train").vocab))


@pytest.mark.gpu
@pytest.mark.parametrize("modality", ["cross", "prefix"])
def test_training_on_cuda_lowers_validation_loss(prepared, tmp_path, modality):
    """bf16 autocast, packed rows; cross-attention through the Triton kernel (auto-picked)."""
    hist = train(prepared / "tokens", tmp_path / modality, _cfg(modality=modality, steps=40, eval_every=20, eval_batches=4, device="cuda"),
                 prs_path=prepared / "prs" / "PRS.parquet", progress=False)
    (_, first), (_, last) = hist.val_loss[0], hist.val_loss[-1]
    assert np.isfinite(last) and last < first


def test_per_subject_loss_and_prs_join(prepared, tmp_path):
    train(prepared / "tokens", tmp_path / "m", _cfg(steps=2, eval_every=2), prs_path=prepared / "prs" / "PRS.parquet", progress=False)
    model = load_checkpoint(tmp_path / "m" / "model")
    ds = TokenizedDataset(prepared / "tokens" / "held_out")
    matrix = read_prs_matrix(prepared / "prs" / "PRS.parquet")
    rows, traits = matrix.rows_for(ds.subject_ids), matrix.traits
    assert rows.shape == (len(ds), 6) and len(traits) == 6
    assert np.isnan(rows).all(1).sum() < len(ds)  # most subjects have genotypes
    loss = per_subject_loss(model, ds, rows, max_tokens=32)
    assert loss.shape == (len(ds),) and np.isfinite(loss).all() and (loss > 0).all()
    with pytest.raises(ValueError, match="needs --prs"):
        train(prepared / "tokens", tmp_path / "x", _cfg(), progress=False)



class _Timelines:
    """What subject_window reads from a TokenizedDataset without static_latest categories."""

    has_window_head = False

    def __init__(self, n_static: int, n_body: int):
        self.tokens = np.arange(n_static + n_body, dtype=np.int32)
        self.static_lengths = np.array([n_static])

    def timeline(self, i):
        return self.tokens, None

    def head_length(self, i):
        return int(self.static_lengths[i])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 12), st.integers(0, 40), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_subject_windows_fit_any_room(n_static, n_body, room, seed):
    """A window fits the room it is given — also when the room is too small for the static
    tokens plus the rest (a packed row's last slot; this used to raise) — and is the static head
    followed by one contiguous chunk of the body."""
    from ehrfast.train.batches import subject_window

    ds = _Timelines(n_static, n_body)
    if n_static + n_body == 0:
        return
    w = subject_window(ds, 0, room, np.random.default_rng(seed))
    assert 1 <= len(w) <= room
    if n_static + n_body <= room:
        np.testing.assert_array_equal(w, ds.tokens)
    else:
        head = w[w < n_static]
        np.testing.assert_array_equal(head, np.arange(len(head)))
        body = w[len(head):]
        assert (body >= n_static).all() and (np.diff(body) == 1).all()


_DDP_DRIVER = """
import sys
from ehrfast.train import TrainConfig, train
data, out, prs, stop_after, resume = sys.argv[1:6]
cfg = TrainConfig(preset="tiny", modality="cross", steps=4, batch_size=2, seq_len=32, eval_every=2, eval_batches=1, seed=1)
train(data, out, cfg, prs_path=prs, progress=False, stop_after=int(stop_after) or None, resume=resume == "1")
"""


_LEAVE_DRIVER = """
import atexit
import sys
import torch.distributed as dist
from ehrfast import distributed
ranks, _ = distributed.join("cpu")
assert dist.is_initialized() and distributed.total(1.0, ranks) == 2.0
if sys.argv[1] == "failed":
    distributed.mark_failed()
atexit._run_exitfuncs()
assert dist.is_initialized() == (sys.argv[1] == "failed"), "the exit hook did not do its part"
if dist.is_initialized():
    dist.destroy_process_group()
"""


def _torchrun(tmp_path, *args, driver_text=_DDP_DRIVER):
    import subprocess
    import sys

    driver = tmp_path / "driver.py"
    driver.write_text(driver_text)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("ending", ["ok", "failed"])
def test_joined_process_group_is_destroyed_before_a_clean_exit(tmp_path, ending):
    """Left to the interpreter's teardown, gloo could abort a rank after its work was done
    ("terminate called without an active exception", about 1 run in 10 on a 2-core machine).
    After a failure the group is left alone: an NCCL destroy could wait on the other ranks."""
    _torchrun(tmp_path, ending, driver_text=_LEAVE_DRIVER)


@pytest.mark.slow
def test_torchrun_ddp_trains_on_disjoint_shards_and_resumes(prepared, tmp_path):
    """Two CPU ranks (gloo): one checkpoint from rank 0 covering every training subject once,
    replicas checked equal at the end, and pause + resume gives the uninterrupted run's weights."""
    data, prs = prepared / "tokens", prepared / "prs" / "PRS.parquet"
    _torchrun(tmp_path, data, tmp_path / "whole", prs, 0, 0)
    history = json.loads((tmp_path / "whole" / "history.json").read_text())
    assert history["world_size"] == 2
    assert history["train_subjects"] == len(TokenizedDataset(data / "train"))
    assert len(history["val_loss"]) == 2 and all(np.isfinite(v) for _, v in history["val_loss"])
    _torchrun(tmp_path, data, tmp_path / "paused", prs, 2, 0)
    assert not (tmp_path / "paused" / "model").exists()
    _torchrun(tmp_path, data, tmp_path / "paused", prs, 0, 1)
    whole, resumed = load_checkpoint(tmp_path / "whole" / "model"), load_checkpoint(tmp_path / "paused" / "model")
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_pgsc_calc_aggregated_scores_train_like_ehrfast_ones(small_cohort, prepared, tmp_path):
    """pgsc_calc's aggregated_scores.txt.gz is a --prs input: the same traits, the same
    subjects, its sums standardized (over all samples rather than the train split)."""
    root, _, _ = small_cohort
    scores = sorted((root / "genomics" / "scores").glob("SYN_[A-Z]*.txt"))[:6]
    aggregated = tmp_path / "aggregated_scores.txt.gz"
    compute_prs(root / "genomics" / "genotypes", scores, aggregated, meds_dir=root, progress=False)
    ours, theirs = read_prs_matrix(prepared / "prs" / "PRS.parquet"), read_prs_matrix(aggregated)
    assert theirs.traits == ours.traits and sorted(theirs.subject_ids) == sorted(ours.subject_ids)
    a, b = ours.rows_for(ours.subject_ids), theirs.rows_for(ours.subject_ids)
    for j in range(len(ours.traits)):
        assert np.corrcoef(a[:, j], b[:, j])[0, 1] > 0.999
    hist = train(prepared / "tokens", tmp_path / "run", _cfg(steps=3, eval_every=3), prs_path=aggregated, progress=False)
    assert np.isfinite(hist.train_loss).all()
