"""Every statistic against an independent implementation (scikit-learn, scipy, statsmodels)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ehrfast.evaluate.bootstrap import paired_bootstrap, pr_difference, resample_counts, two_sided_p
from ehrfast.evaluate.calibration import reliability_curve, subgroup_auroc
from ehrfast.evaluate.meta import emphasis_rule, meta_analysis
from ehrfast.evaluate.metrics import (
    MetricError,
    auroc,
    average_precision,
    choose_threshold,
    confusion_metrics,
    model_metrics,
    n_operating_points,
)
from ehrfast.evaluate.paired_tests import compare_losses, paired_t_test, spearman_vs_traits
from ehrfast.evaluate.ranking import RankedScores

skm = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")


@st.composite
def labelled_scores(draw, min_n=2, max_n=80):
    n = draw(st.integers(min_n, max_n))
    label = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    assume(0 < label.sum() < n)
    # few distinct values -> many ties, the hard case for rank metrics
    levels = draw(st.integers(1, 12))
    score = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels
    return label, score


@given(labelled_scores())
@settings(max_examples=300, deadline=None)
def test_auroc_auprc_match_sklearn(data):
    y, s = data
    assert auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)


@given(labelled_scores(), st.floats(0, 1))
@settings(max_examples=200, deadline=None)
def test_confusion_metrics_match_sklearn(data, thr):
    y, s = data
    pred = s >= thr
    m = confusion_metrics(y, s, thr)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-12)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[False, True]).ravel()
    assert m["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-12)


@given(labelled_scores(min_n=4))
@settings(max_examples=200, deadline=None)
def test_thresholds_match_roc_curve(data):
    y, s = data
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    youden = choose_threshold(y, s, "youden")
    assert youden == thr[1:][np.argmax((tpr - fpr)[1:])]
    closest = choose_threshold(y, s, "closest")
    assert closest == thr[1:][np.argmin((fpr**2 + (1 - tpr) ** 2)[1:])]


def test_weighted_resample_equals_explicit_resample():
    rng = np.random.default_rng(1)
    y = rng.random(300) < 0.2
    s = np.round(rng.random(300) + 0.4 * y, 2)  # ties included
    ranked = RankedScores(y, s)
    for w in resample_counts(300, 5, seed=3):
        auc, ap = ranked.auroc_auprc(w)
        for i in range(len(w)):
            idx = np.repeat(np.arange(300), w[i].astype(int))
            assert auc[i] == pytest.approx(skm.roc_auc_score(y[idx], s[idx]), abs=1e-12)
            assert ap[i] == pytest.approx(skm.average_precision_score(y[idx], s[idx]), abs=1e-12)


def test_paired_bootstrap_matches_explicit_loop():
    rng = np.random.default_rng(2)
    n = 400
    y = rng.random(n) < 0.25
    a = rng.random(n) + 0.3 * y
    b = rng.random(n) + 0.6 * y
    res = paired_bootstrap(y, a, b, iterations=50, seed=9, threshold_rule="youden", memory_bytes=8 * 8 * n * 7)
    ta, tb = choose_threshold(y, a, "youden"), choose_threshold(y, b, "youden")
    ref = {k: [] for k in res.samples}
    for w in resample_counts(n, 50, seed=9, memory_bytes=8 * 8 * n * 7):
        for row in w:
            idx = np.repeat(np.arange(n), row.astype(int))
            yy = y[idx]
            ref["auroc"].append(skm.roc_auc_score(yy, b[idx]) - skm.roc_auc_score(yy, a[idx]))
            ref["auprc"].append(skm.average_precision_score(yy, b[idx]) - skm.average_precision_score(yy, a[idx]))
            ref["f1"].append(skm.f1_score(yy, b[idx] >= tb) - skm.f1_score(yy, a[idx] >= ta))
            ref["brier"].append(np.mean((b[idx] - yy) ** 2) - np.mean((a[idx] - yy) ** 2))
            ref["specificity"].append(
                skm.recall_score(~yy, b[idx] < tb) - skm.recall_score(~yy, a[idx] < ta)
            )
    for k in ("auroc", "auprc", "f1", "brier", "specificity"):
        np.testing.assert_allclose(res.samples[k], ref[k], atol=1e-12, err_msg=k)
    assert res.iterations_used == 50 and res.skipped_one_class == 0


def test_bootstrap_ci_of_known_case_within_monte_carlo_error():
    # Large n: the bootstrap SE of ΔAUROC must match the analytic DeLong-free check via a
    # direct simulation of new samples from the same population (Monte-Carlo SE of SE ≈ 5%).
    rng = np.random.default_rng(0)

    def draw(n):
        y = rng.random(n) < 0.3
        z = rng.standard_normal(n)
        a = z + 0.8 * y + rng.standard_normal(n)
        b = z + 1.2 * y + rng.standard_normal(n)
        return y, a, b

    pop = [skm.roc_auc_score(y, b) - skm.roc_auc_score(y, a) for y, a, b in (draw(2000) for _ in range(300))]
    y, a, b = draw(2000)
    res = paired_bootstrap(y, a, b, iterations=1000, seed=1)
    d = res.deltas["auroc"]
    boot_sd = res.samples["auroc"].std()
    assert boot_sd == pytest.approx(np.std(pop), rel=0.15)
    assert d.ci_low < np.mean(pop) < d.ci_high
    assert d.p_value == res.p_floor and d.p_at_floor


def test_two_sided_p():
    assert two_sided_p(np.array([1.0, 2, 3, -1])) == (0.5, False)
    assert two_sided_p(np.array([1.0, 2, 3, 4])) == (0.25, True)
    assert two_sided_p(np.array([0.0, 0, 0, 0])) == (1.0, False)


def test_bootstrap_skips_single_class_resamples():
    y = np.zeros(30, bool)
    y[0] = True  # one positive: ~37% of resamples miss it
    s = np.linspace(0, 1, 30)
    res = paired_bootstrap(y, s, s[::-1], iterations=300, seed=0)
    assert 60 < res.skipped_one_class < 160
    assert res.iterations_used + res.skipped_one_class == 300


@given(labelled_scores(min_n=6, max_n=60), st.integers(0, 10_000))
@settings(max_examples=100, deadline=None)
def test_pr_difference_full_data_matches_sklearn(data, seed):
    y, a = data
    b = np.random.default_rng(seed).permutation(a)
    res = pr_difference(y, a, b, iterations=5, seed=0)
    for score, mine in ((a, res.precision_a), (b, res.precision_b)):
        p, r, _ = skm.precision_recall_curve(y, score)
        expected = [p[r >= g].max() for g in res.recall]
        np.testing.assert_allclose(mine, expected, atol=1e-12)


def test_meta_analysis_matches_statsmodels():
    ma_mod = pytest.importorskip("statsmodels.stats.meta_analysis")
    rng = np.random.default_rng(0)
    checked_heterogeneous = checked_homogeneous = 0
    for k in (2, 3, 4, 7, 12, 30):
        for spread in (0.0005, 0.01):
            eff = rng.normal(0.02, spread, k)
            var = rng.uniform(1e-5, 1e-4, k)
            ours = meta_analysis(eff, var)
            ref = ma_mod.combine_effects(eff, var, method_re="dl")
            frame = ref.summary_frame(alpha=0.05)
            assert ours.fixed.estimate == pytest.approx(ref.mean_effect_fe, abs=1e-12)
            assert ours.fixed.se == pytest.approx(ref.sd_eff_w_fe, rel=1e-10)
            assert ours.fixed.ci_low == pytest.approx(frame.loc["fixed effect", "ci_low"], abs=1e-12)
            assert ours.q == pytest.approx(ref.q, rel=1e-10)
            assert ours.i2 == pytest.approx(max(ref.i2, 0.0), abs=1e-10)
            if ref.tau2 > 0:
                checked_heterogeneous += 1
                assert ours.tau2 == pytest.approx(ref.tau2, rel=1e-10)
                assert ours.random.estimate == pytest.approx(ref.mean_effect_re, abs=1e-12)
                assert ours.random.se == pytest.approx(ref.sd_eff_w_re, rel=1e-10)
                assert ours.random.ci_high == pytest.approx(frame.loc["random effect", "ci_upp"], abs=1e-12)
            else:
                # statsmodels leaves a negative DL moment estimate unclipped; DerSimonian and
                # Laird (and metafor) truncate at 0, which makes random = fixed.
                checked_homogeneous += 1
                assert ours.tau2 == 0.0
                assert ours.random.estimate == pytest.approx(ours.fixed.estimate, abs=1e-15)
    assert checked_heterogeneous >= 3 and checked_homogeneous >= 3


def test_meta_paper_example_and_rule():
    # The genomics paper: 4 tasks, Q = 7.63, I² = 60.7% -> random effects (k ≤ 5)
    assert emphasis_rule(4, 0.607, 0.054)[0] == "random"
    assert emphasis_rule(8, 0.1, 0.5)[0] == "fixed"
    assert emphasis_rule(8, 0.6, 0.01)[0] == "random"
    with pytest.raises(ValueError, match="positive"):
        meta_analysis([0.1, 0.2], [0.01, 0.0])
    with pytest.raises(ValueError, match="at least two"):
        meta_analysis([0.1], [0.01])


@given(st.integers(3, 200), st.integers(0, 10_000))
@settings(max_examples=100, deadline=None)
def test_paired_t_matches_scipy(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.random(n)
    b = a + rng.normal(0.01, 0.05, n)
    t, p = paired_t_test(a, b)
    ref = scipy_stats.ttest_rel(b, a)
    assert t == pytest.approx(ref.statistic, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_compare_losses_uses_scipy_tests_and_the_papers_rule():
    rng = np.random.default_rng(0)
    a = rng.gamma(2, 1, 800)
    b = a - 0.05 + rng.standard_t(2, 800) * 0.1  # heavy-tailed differences: not normal
    res = compare_losses(a, b)
    d = b - a
    assert res.normality_p_value == pytest.approx(scipy_stats.shapiro(d).pvalue, rel=1e-12)
    assert res.wilcoxon_p_value == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue, rel=1e-12)
    assert not res.differences_normal and res.recommended_test == "Wilcoxon signed-rank"
    normal = compare_losses(a, a + rng.normal(-0.01, 0.05, 800))
    assert normal.recommended_test == "paired t-test"


@given(st.integers(5, 120), st.integers(1, 6), st.integers(0, 10_000))
@settings(max_examples=100, deadline=None)
def test_spearman_matches_scipy(n, n_traits, seed):
    rng = np.random.default_rng(seed)
    diff = np.round(rng.standard_normal(n), 1)  # ties
    traits = rng.standard_normal((n, n_traits)) + 0.3 * diff[:, None]
    res = spearman_vs_traits(diff, traits)
    for j in range(n_traits):
        ref = scipy_stats.spearmanr(diff, traits[:, j], alternative="greater")
        assert res.rho[j] == pytest.approx(ref.statistic, abs=1e-10)
        assert res.p_value[j] == pytest.approx(ref.pvalue, abs=1e-10)


@given(labelled_scores(min_n=20, max_n=200), st.integers(2, 10))
@settings(max_examples=100, deadline=None)
def test_reliability_matches_sklearn_calibration_curve(data, n_bins):
    calib = pytest.importorskip("sklearn.calibration")
    y, s = data
    res = reliability_curve(y, s, n_bins=n_bins, iterations=5)
    prob_true, prob_pred = calib.calibration_curve(y, s, n_bins=n_bins, strategy="quantile")
    np.testing.assert_allclose(res.observed, prob_true, atol=1e-12)
    np.testing.assert_allclose(res.predicted, prob_pred, atol=1e-12)
    assert res.brier == pytest.approx(skm.brier_score_loss(y, s), abs=1e-12)


def test_subgroups():
    rng = np.random.default_rng(0)
    y = rng.random(600) < 0.3
    s = rng.random(600) + 0.5 * y
    g = np.where(rng.random(600) < 0.5, "F", "M")
    g[:5] = "X"
    y[:5] = False
    rows = {r.group: r for r in subgroup_auroc(y, s, g, iterations=200)}
    assert rows["F"].auroc == pytest.approx(skm.roc_auc_score(y[g == "F"], s[g == "F"]), abs=1e-12)
    assert rows["F"].ci_low < rows["F"].auroc < rows["F"].ci_high
    assert np.isnan(rows["X"].auroc) and rows["X"].note == "one class only"
    assert rows["(all)"].n == 600


def test_degenerate_inputs_raise_clear_errors():
    with pytest.raises(MetricError, match="only one class"):
        auroc(np.zeros(5, bool), np.arange(5))
    with pytest.raises(MetricError, match="NaN"):
        auroc(np.array([0, 1, 0], bool), np.array([0.1, np.nan, 0.3]))
    with pytest.raises(MetricError, match="empty"):
        model_metrics(np.array([], bool), np.array([]))
    assert n_operating_points(np.array([0.1, 0.1, 0.2])) == 2
