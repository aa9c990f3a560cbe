"""``ehrfast evaluate`` end to end: prediction files in, report folder out; and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrfast.evaluate import EvaluateOptions, PredictionError, evaluate
from ehrfast.evaluate.metrics import MetricError

pytest.importorskip("matplotlib")


def _write_predictions(path, subject_id, label, prob, extra=None, repeat_first=False):
    n = len(subject_id)
    cols = {
        "subject_id": pa.array(subject_id, pa.int64()),
        "prediction_time": pa.array([datetime(2020, 1, 1)] * n, pa.timestamp("us")),
        "boolean_value": pa.array(label, pa.bool_()),
        "integer_value": pa.nulls(n, pa.int64()),  # ACES writes these all-null
        "predicted_boolean_value": pa.array(np.asarray(prob) >= 0.5),
        "predicted_boolean_probability": pa.array(np.asarray(prob, np.float32)),
        **(extra or {}),
    }
    table = pa.table(cols)
    if repeat_first:
        table = pa.concat_tables([table, table.slice(0, 3)])
    pq.write_table(table, path)
    return str(path)


def _task(tmp_path, name, n, effect_a, effect_b, seed):
    rng = np.random.default_rng(seed)
    sid = np.arange(1000, 1000 + n)
    y = rng.random(n) < 0.15
    z = rng.standard_normal(n)
    pa_ = 1 / (1 + np.exp(-(z + effect_a * y - 2)))
    pb_ = 1 / (1 + np.exp(-(z + effect_b * y - 2 + 0.3 * rng.standard_normal(n))))
    loss_a = rng.gamma(2, 1, n)
    a = _write_predictions(tmp_path / f"{name}_A.parquet", sid, y, pa_, {"test_loss": pa.array(loss_a)}, repeat_first=True)
    b = _write_predictions(tmp_path / f"{name}_B.parquet", sid, y, pb_, {"test_loss": pa.array(loss_a - 0.05 + 0.1 * rng.standard_normal(n))})
    return a, b, sid


def test_report_folder(tmp_path):
    pairs, sid = [], None
    for i, name in enumerate(["t2d", "cad", "depression"]):
        a, b, sid = _task(tmp_path, name, 600, 0.8, 1.3 - 0.2 * i, seed=i)
        pairs.append((a, b))
    rng = np.random.default_rng(5)
    pq.write_table(pa.table({"subject_id": sid, "prs_t2d": rng.standard_normal(len(sid)), "prs_null": rng.standard_normal(len(sid))}), tmp_path / "prs.parquet")
    pq.write_table(pa.table({"subject_id": sid, "sex": np.where(rng.random(len(sid)) < 0.5, "F", "M")}), tmp_path / "demo.parquet")
    out = tmp_path / "report"
    res = evaluate(pairs, out, EvaluateOptions(names=["t2d", "cad", "depression"], iterations=300, seed=1, threshold_rule="youden",
                                               traits=["prs_t2d", "prs_null"], subgroup_columns=("sex",), loss_column="test_loss"),
                   prs_path=tmp_path / "prs.parquet", subgroups_path=tmp_path / "demo.parquet", progress=False)
    on_disk = json.loads((out / "results.json").read_text())
    assert set(on_disk["tasks"]) == {"t2d", "cad", "depression"}
    t = on_disk["tasks"]["t2d"]
    assert t["n"] == 600 and "averaged" in " ".join(t["notes"])
    assert set(t["bootstrap"]["deltas"]) >= {"auroc", "auprc", "accuracy", "precision", "recall", "f1", "specificity", "brier"}
    assert t["loss_tests"]["recommended_test"] in ("paired t-test", "Wilcoxon signed-rank")
    assert len(t["spearman"]["rho"]) == 2 and set(t["subgroups"]["sex"]) == {"A", "B"}
    assert on_disk["meta_analysis"]["emphasized"] == "random"  # k = 3 ≤ 5
    assert res.tasks["t2d"].bootstrap.deltas["auroc"].mean == pytest.approx(t["bootstrap"]["deltas"]["auroc"]["mean"])
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "forest_auroc.png" in pngs and "t2d_roc.png" in pngs and "t2d_pr_difference.png" in pngs
    assert "t2d_calibration.png" in pngs and "t2d_risk_histogram.png" in pngs
    for png in (out / "plots").glob("*.png"):
        assert png.with_suffix(".csv").exists()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "src='http" not in html
    md = (out / "report.md").read_text()
    assert "Meta-analysis" in md and "Reading:" in md


def test_cli_evaluate(tmp_path):
    a, b, _ = _task(tmp_path, "x", 300, 0.5, 1.5, seed=3)
    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "ehrfast.cli", "evaluate", a, b, "--out", str(out), "--iterations", "200", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "AUROC A" in proc.stdout and (out / "report.html").exists()
    bad = subprocess.run([sys.executable, "-m", "ehrfast.cli", "evaluate", a, "--out", str(tmp_path / "r2")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "pairs" in bad.stderr


def test_degenerate_inputs(tmp_path):
    sid = np.arange(10)
    y = np.arange(10) % 3 == 0
    good = _write_predictions(tmp_path / "good.parquet", sid, y, np.linspace(0, 1, 10))
    other = _write_predictions(tmp_path / "other.parquet", sid + 1, y, np.linspace(0, 1, 10))
    with pytest.raises(PredictionError, match="different predictions"):
        evaluate([(good, other)], tmp_path / "o1", progress=False)
    nan = _write_predictions(tmp_path / "nan.parquet", sid, y, np.r_[np.nan, np.linspace(0, 1, 9)])
    with pytest.raises(PredictionError, match="row 0: column 'predicted_boolean_probability' is nan"):
        evaluate([(good, nan)], tmp_path / "o2", progress=False)
    one = _write_predictions(tmp_path / "one.parquet", sid, np.zeros(10, bool), np.linspace(0, 1, 10))
    with pytest.raises(MetricError, match="only one class"):
        evaluate([(one, one)], tmp_path / "o3", progress=False)
    empty = _write_predictions(tmp_path / "empty.parquet", sid[:0], y[:0], np.zeros(0))
    with pytest.raises(PredictionError, match="empty"):
        evaluate([(empty, empty)], tmp_path / "o4", progress=False)
    with pytest.raises(PredictionError, match="missing column"):
        evaluate([(good, str(tmp_path / "good.parquet"))], tmp_path / "o5", EvaluateOptions(score_column="nope"), progress=False)
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))  # nothing half-written


def test_meta_analysis_pools_only_the_chosen_tasks_with_varying_deltas(tmp_path):
    pairs = [_task(tmp_path, name, 400, 0.8, 1.2, seed=i)[:2] for i, name in enumerate(["t2d", "t2d_3y", "cad"])]
    # a task where both models rank identically: Δ AUROC is 0 in every resample, so it has no weight
    sid = np.arange(50)
    y = np.arange(50) % 5 == 0
    same = np.linspace(0.1, 0.9, 50)
    loss = {"test_loss": pa.array(same[::-1].copy())}
    pairs.append((_write_predictions(tmp_path / "flat_A.parquet", sid, y, same, loss), _write_predictions(tmp_path / "flat_B.parquet", sid, y, same, loss)))
    names = ["t2d", "t2d_3y", "cad", "flat"]
    res = evaluate(pairs, tmp_path / "r1", EvaluateOptions(names=names, iterations=200, meta_tasks=["t2d", "cad", "flat"],
                                                          other_score_columns=("test_loss",)), progress=False)
    assert res.meta_analysis.names == ["t2d", "cad"]
    other = res.tasks["t2d"].other_scores["test_loss"]
    assert 0 <= other.metrics_a.auroc <= 1 and other.metrics_b.operating_points > 1
    assert "Left out" in (tmp_path / "r1" / "report.md").read_text()
    with pytest.raises(ValueError, match="not among the tasks"):
        evaluate(pairs, tmp_path / "r2", EvaluateOptions(names=names, meta_tasks=["stroke"]), progress=False)
    assert not (tmp_path / "r2").exists()


def test_report_threshold_is_data_driven_and_few_cases_are_caveated(tmp_path):
    """Low-prevalence probabilities (all below 0.5): a fixed 0.5 threshold made precision, recall
    and F1 zero and printed '+nan%'; the default is now each model's ROC point closest to (0, 1).
    A task with fewer than 10 cases shows its p-value with a caveat, not a verdict."""
    rng = np.random.default_rng(3)
    n = 800
    sid = np.arange(n)
    y = rng.random(n) < 0.03
    a = _write_predictions(tmp_path / "a.parquet", sid, y, 0.02 + 0.02 * y * rng.random(n) + 0.01 * rng.random(n))
    b = _write_predictions(tmp_path / "b.parquet", sid, y, 0.02 + 0.03 * y * rng.random(n) + 0.01 * rng.random(n))
    few = np.zeros(n, bool)
    few[:6] = True
    c = _write_predictions(tmp_path / "c.parquet", sid, few, 0.01 + 0.02 * few + 0.01 * rng.random(n))
    d = _write_predictions(tmp_path / "d.parquet", sid, few, 0.01 + 0.01 * few + 0.02 * rng.random(n))
    res = evaluate([(a, b), (c, d)], tmp_path / "out", EvaluateOptions(names=["common", "rare"], iterations=200, meta_tasks=()),
                   progress=False)
    m = res.tasks["common"].metrics_a
    assert 0 < m.threshold < 0.5 and m.precision > 0 and m.recall > 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "nan%" not in text.lower() and "NaN" not in text
    assert "the ROC point closest to (0, 1)" in text
    assert "Fewer than 10 cases" in text and "with 6 cases, too few to test" in text
