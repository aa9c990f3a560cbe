"""``ehrfast ares`` and ``ehrfast next-token`` end to end on the real MIMIC-IV demo with a tiny
model: the files of the output contract, their schema and row counts, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ehrfast.cli import main
from ehrfast.errors import EhrfastError
from ehrfast.infer.ares import COMPONENTS, TrajectorySettings, run_ares, run_next_token
from ehrfast.labels import make_labels
from ehrfast.tokenize import tokenize_dataset
from ehrfast.train import TrainConfig, train

TRAJECTORY_COLUMNS = ["subject_id", "anchor_id", "position", "token", "time", "elapsed_us", "component", "risk", "n_valid", "ci_low",
                      "ci_high", "risk_level", "deactivated", "threshold_days"]


@pytest.fixture(scope="module")
def mimic_run(shared_data, tmp_path_factory):
    meds = shared_data / "mimic-iv-demo-meds"
    d = tmp_path_factory.mktemp("ares")
    tokenize_dataset(meds, d / "tok", progress=False)
    train(d / "tok", d / "run", TrainConfig(preset="tiny", steps=2, batch_size=2, seq_len=32, eval_every=2, eval_batches=1, modality="none"),
          progress=False)
    make_labels(meds, "hospital_mortality", d / "hm.parquet", splits=("held_out",))
    return meds, d


def test_ares_writes_the_trajectory_explanations_figures_and_page(mimic_run):
    meds, d = mimic_run
    settings = TrajectorySettings(positions="every_k", every_k=40, n_samples=3, max_new_tokens=16, context_tokens=32, seed=1)
    s = run_ares(d / "run" / "model", d / "tok" / "held_out", d / "hm.parquet", d / "out", settings, max_stays=2, figures=1, progress=False)
    assert s.stays == 2 and s.positions > 0 and s.tokens_generated > 0
    table = pq.read_table(d / "out" / "trajectory.parquet")
    assert table.column_names == TRAJECTORY_COLUMNS
    assert table.num_rows == len(COMPONENTS) * s.positions
    assert set(table.column("component").to_pylist()) == set(COMPONENTS)
    risk = table.column("risk").to_numpy(zero_copy_only=False)
    assert np.all((risk[np.isfinite(risk)] >= 0) & (risk[np.isfinite(risk)] <= 1))
    icu = table.filter(np.array(table.column("component").to_pylist()) == "icu_admission")
    off = np.array(icu.column("deactivated").to_pylist())
    assert icu.column("risk").is_null().to_numpy(zero_copy_only=False)[off].all()
    assert set(table.column("threshold_days").to_pylist()) <= {10.0, 15.0}
    ex = pq.read_table(d / "out" / "explanations.parquet")
    assert {"tokens", "delta", "z", "significant", "window"} <= set(ex.column_names)
    assert len(list((d / "out" / "figures").glob("stay_*.png"))) == 1
    page = (d / "out" / "index.html").read_text()
    assert "data:image/png;base64," in page and "ares-cell" in page and "Table S10" in page
    summary = json.loads((d / "out" / "summary.json").read_text())
    assert summary["positions"] == s.positions and summary["settings"]["positions"] == "every_k"
    # the same run twice: the same bytes of the trajectory (seeded)
    run_ares(d / "run" / "model", d / "tok" / "held_out", d / "hm.parquet", d / "out2", settings, max_stays=2, figures=0, progress=False)
    assert pq.read_table(d / "out2" / "trajectory.parquet").equals(table)


def test_ares_refuses_bad_input_naming_it(mimic_run, tmp_path, capsys):
    meds, d = mimic_run
    model, data = d / "run" / "model", d / "tok" / "held_out"
    with pytest.raises(EhrfastError, match="--stays"):
        run_ares(model, data, d / "hm.parquet", tmp_path / "a", stays=("999:1",), progress=False)
    make_labels(meds, "hospital_mortality", tmp_path / "train_only.parquet", splits=("train",))
    with pytest.raises(EhrfastError, match="no stay"):
        run_ares(model, data, tmp_path / "train_only.parquet", tmp_path / "b", progress=False)
    with pytest.raises(EhrfastError, match="lies inside|contains|is"):
        run_ares(model, data, d / "hm.parquet", data / "ares", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert main(["ares", str(model), str(data), "--anchors", str(d / "hm.parquet"), "--out", str(tmp_path / "c"), "--n-samples", "0"]) == 2
    assert "n_samples" in capsys.readouterr().err


def test_drg_readout_on_the_mimic_demo(mimic_run):
    meds, d = mimic_run
    s = run_next_token(d / "run" / "model", d / "tok" / "held_out", "drg", d / "drg.parquet")
    t = pq.read_table(d / "drg.parquet")
    assert t.num_rows == s.reads > 0
    assert all(x.startswith("DRG//HCFA//") for x in t.column("truth").to_pylist())
    p = np.array(t.column("probabilities").to_pylist())
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert s.top1 == pytest.approx(np.mean(t.column("truth_rank").to_numpy() == 1))
    with pytest.raises(EhrfastError, match="SOFA"):
        run_next_token(d / "run" / "model", d / "tok" / "held_out", "sofa_at_unit", d / "sofa.parquet")
