"""Evaluation per prediction (ARES.md S10): the unit is (subject, prediction time, anchor); two
models align on that key; the bootstrap resamples predictions, or whole subjects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ehrfast.errors import EhrfastError
from ehrfast.evaluate import EvaluateOptions, evaluate
from ehrfast.evaluate.bootstrap import auroc_ci, paired_bootstrap, resample_counts


def _anchored(path, subject, time_us, anchor, label, prob):
    n = len(subject)
    pq.write_table(pa.table({
        "subject_id": pa.array(subject, pa.int64()),
        "prediction_time": pa.array(time_us, pa.int64()).cast(pa.timestamp("us")),
        "boolean_value": pa.array(label, pa.bool_()),
        "predicted_boolean_value": pa.array(np.asarray(prob) >= 0.5),
        "predicted_boolean_probability": pa.array(np.asarray(prob, np.float32)),
        "anchor_id": pa.array(anchor, pa.int64()),
        "model": pa.array(["m"] * n),
    }), path)
    return path


def _admissions(seed=0, n_subjects=150):
    """Several admissions per subject, each with its own label (a subject dies in one stay, not another)."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 5, n_subjects)
    subject = np.repeat(np.arange(n_subjects), per)
    time = np.concatenate([np.sort(rng.integers(0, 10**12, k)) for k in per])
    anchor = np.arange(len(subject)) * 7 + 3
    y = rng.random(len(subject)) < 0.25
    z = rng.standard_normal(len(subject))
    pa_ = 1 / (1 + np.exp(-(z + 1.0 * y - 1)))
    pb_ = 1 / (1 + np.exp(-(z + 1.6 * y - 1 + 0.3 * rng.standard_normal(len(subject)))))
    return subject, time, anchor, y, pa_, pb_


def test_two_models_with_several_predictions_per_subject_match_scikit_learn(tmp_path):
    subject, time, anchor, y, pa_, pb_ = _admissions()
    assert any(len(set(y[subject == s])) == 2 for s in np.unique(subject))  # mixed labels within a subject
    order = np.random.default_rng(1).permutation(len(y))  # B's rows in another order: aligned on the key
    a = _anchored(tmp_path / "a.parquet", subject, time, anchor, y, pa_)
    b = _anchored(tmp_path / "b.parquet", subject[order], time[order], anchor[order], y[order], pb_[order])
    res = evaluate([(a, b)], tmp_path / "out", EvaluateOptions(iterations=200), progress=False)
    t = res.tasks["task"]
    assert t.n == len(y)
    pa32, pb32 = pa_.astype(np.float32).astype(np.float64), pb_.astype(np.float32).astype(np.float64)
    assert t.metrics_a.auroc == pytest.approx(roc_auc_score(y, pa32), abs=1e-12)
    assert t.metrics_b.auroc == pytest.approx(roc_auc_score(y, pb32), abs=1e-12)
    assert t.metrics_a.auprc == pytest.approx(average_precision_score(y, pa32), abs=1e-12)
    assert t.metrics_b.auprc == pytest.approx(average_precision_score(y, pb32), abs=1e-12)
    clustered = evaluate([(a, b)], tmp_path / "out2", EvaluateOptions(iterations=200, cluster_by_subject=True), progress=False)
    assert any("resamples subjects" in n for n in clustered.tasks["task"].notes)


def test_predictions_that_differ_in_anchor_or_label_do_not_align(tmp_path):
    subject, time, anchor, y, pa_, pb_ = _admissions(n_subjects=20)
    a = _anchored(tmp_path / "a.parquet", subject, time, anchor, y, pa_)
    other = anchor.copy()
    other[0] += 1
    b = _anchored(tmp_path / "b.parquet", subject, time, other, y, pb_)
    with pytest.raises(EhrfastError, match="different predictions"):
        evaluate([(a, b)], tmp_path / "o", EvaluateOptions(iterations=20), progress=False)
    flipped = y.copy()
    flipped[0] = ~flipped[0]
    c = _anchored(tmp_path / "c.parquet", subject, time, anchor, flipped, pb_)
    with pytest.raises(EhrfastError, match=f"subject {subject[0]} at .*anchor {anchor[0]}.* label"):
        evaluate([(a, c)], tmp_path / "o2", EvaluateOptions(iterations=20), progress=False)


def test_one_unit_with_two_labels_is_refused(tmp_path):
    a = _anchored(tmp_path / "a.parquet", [1, 1], [0, 0], [5, 5], [True, False], [0.2, 0.3])
    with pytest.raises(EhrfastError, match="both true and false"):
        evaluate([(a, a)], tmp_path / "o", EvaluateOptions(iterations=20), progress=False)


def test_cluster_bootstrap_with_one_prediction_per_subject_is_the_row_bootstrap():
    rng = np.random.default_rng(3)
    n = 300
    rows = list(resample_counts(n, 50, seed=4))
    clustered = list(resample_counts(n, 50, seed=4, clusters=np.arange(n)))
    np.testing.assert_array_equal(np.concatenate(rows), np.concatenate(clustered))
    y = rng.random(n) < 0.3
    s = rng.random(n) + 0.3 * y
    assert auroc_ci(y, s, 100, seed=2) == auroc_ci(y, s, 100, seed=2, clusters=np.arange(n))


def test_cluster_bootstrap_of_duplicated_predictions_is_the_bootstrap_of_one_copy():
    """Each subject scored twice with the same label and score: resampling subjects gives, draw
    for draw, the metrics of resampling one copy of each (weights doubled change no ranking
    metric), while the row bootstrap would be too narrow."""
    rng = np.random.default_rng(5)
    k = 400
    y = rng.random(k) < 0.3
    sa, sb = rng.random(k) + 0.4 * y, rng.random(k) + 0.6 * y
    one = paired_bootstrap(y, sa, sb, iterations=300, seed=9)
    two = paired_bootstrap(np.repeat(y, 2), np.repeat(sa, 2), np.repeat(sb, 2), iterations=300, seed=9, clusters=np.repeat(np.arange(k), 2))
    for m in ("auroc", "auprc"):
        np.testing.assert_allclose(two.samples[m], one.samples[m], rtol=0, atol=1e-12)
    rows = paired_bootstrap(np.repeat(y, 2), np.repeat(sa, 2), np.repeat(sb, 2), iterations=300, seed=9)
    width = lambda b: b.deltas["auroc"].ci_high - b.deltas["auroc"].ci_low
    assert width(rows) < 0.85 * width(two)


def test_method_table_matches_scikit_learn_at_the_closest_point():
    from sklearn.metrics import confusion_matrix, roc_curve

    from ehrfast.evaluate.methods import method_table

    rng = np.random.default_rng(11)
    n = 400
    y = rng.random(n) < 0.2
    scores = {"ares": rng.random(n) + 0.8 * y, "news": np.round(rng.random(n) * 6 + 2 * y)}  # NEWS-like integer scores tie a lot
    rows = method_table(y, scores, iterations=300, seed=2)
    for row in rows:
        s = scores[row.method]
        fpr, tpr, thr = roc_curve(y, s)
        k = int(np.argmin(fpr**2 + (1 - tpr) ** 2))
        tn, fp, fn, tp = confusion_matrix(y, s >= thr[k]).ravel()
        assert row.threshold == thr[k]
        assert row.sensitivity.value == pytest.approx(tp / (tp + fn), abs=1e-12)
        assert row.specificity.value == pytest.approx(tn / (tn + fp), abs=1e-12)
        assert row.auroc.value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert row.auprc.value == pytest.approx(average_precision_score(y, s), abs=1e-12)
        for e in (row.auroc, row.auprc, row.sensitivity, row.specificity):
            assert e.ci_low <= e.value <= e.ci_high
    assert rows[0].iterations_used == 300


def test_uniform_calibration_bins_match_scikit_learn():
    from sklearn.calibration import calibration_curve

    from ehrfast.evaluate.calibration import reliability_curve

    rng = np.random.default_rng(12)
    p = rng.random(800) ** 2
    y = rng.random(800) < p
    p[:5] = [0.1, 0.2, 0.5, 0.9, 1.0]  # scores on bin edges
    for strategy in ("uniform", "quantile"):
        ours = reliability_curve(y, p, n_bins=10, iterations=20, strategy=strategy)
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy=strategy)
        np.testing.assert_allclose(ours.observed, observed, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.predicted, predicted, rtol=0, atol=1e-12)


def test_methods_latex_table(tmp_path):
    subject, time, anchor, y, pa_, pb_ = _admissions(n_subjects=60)
    a = _anchored(tmp_path / "a.parquet", subject, time, anchor, y, pa_)
    b = _anchored(tmp_path / "b.parquet", subject, time, anchor, y, pb_)
    res = evaluate([(a, b)], tmp_path / "out", EvaluateOptions(iterations=50, model_names=("ARES_1", "NEWS")), progress=False)
    tex = (tmp_path / "out" / "methods.tex").read_text()
    assert tex.startswith(r"\begin{tabular}") and r"ARES\_1" in tex and tex.count(r"\\") == 3  # header + two methods
    row = res.tasks["task"].methods[0]
    assert f"{row.auroc.value:.3f} [{row.auroc.ci_low:.3f}, {row.auroc.ci_high:.3f}]" in tex
    forest = (tmp_path / "out" / "plots" / "methods_auroc.csv").read_text().splitlines()
    assert forest[0] == "task_method,auroc,ci_low,ci_high" and forest[1].startswith("task: ARES_1,")
    assert (tmp_path / "out" / "plots" / "methods_auroc.png").exists()


def test_uniform_calibration_band_interpolates_each_resampled_curve():
    """The reference's band: per resample, sklearn's curve on the resampled rows, interpolated
    onto the point estimate's mean predictions; percentiles over resamples."""
    from sklearn.calibration import calibration_curve

    from ehrfast.evaluate.bootstrap import resample_counts
    from ehrfast.evaluate.calibration import reliability_curve

    rng = np.random.default_rng(13)
    p = rng.random(300) ** 1.5
    y = rng.random(300) < p
    ours = reliability_curve(y, p, n_bins=10, iterations=40, seed=3, strategy="uniform")
    curves = []
    for chunk in resample_counts(300, 40, 3):
        for w in chunk:
            rows = np.repeat(np.arange(300), w.astype(int))
            true_b, pred_b = calibration_curve(y[rows], p[rows], n_bins=10, strategy="uniform")
            curves.append(np.interp(ours.predicted, pred_b, true_b))
    lo, hi = np.percentile(np.array(curves), [2.5, 97.5], axis=0)
    np.testing.assert_allclose(ours.observed_low, lo, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.observed_high, hi, rtol=0, atol=1e-9)
