"""The evaluation report: an ``EvaluationResult`` rendered as a document (Markdown and
self-contained HTML) with its figures under ``plots/`` — every number read in plain language."""

from __future__ import annotations

from pathlib import Path

from ehrfast.document import Document
from ehrfast.evaluate import plots
from ehrfast.evaluate.calibration import brier_label
from ehrfast.evaluate.metrics import BOOTSTRAP_METRICS, roc_points
from ehrfast.evaluate.result import BootstrapSummary, EvaluationResult, TaskComparison, TaskResult

MIN_CASES = 10  # fewer positives: p-values and intervals are shown with a caveat, not read as findings


def write_report(result: EvaluationResult, comparisons: list[TaskComparison], root: Path, *, threshold_rule: str,
                 fixed_threshold: float, loss_column: str | None, meta_considered: bool, meta_left_out: list[str]) -> Document:
    """The report of ``result`` (figures from the per-subject arrays of ``comparisons`` go to
    ``root/plots/``); ``meta_left_out``: pooled tasks whose Δ did not vary."""
    (root / "plots").mkdir()
    names = result.model_names
    doc = Document(f"Model comparison: {_label('B', names[1])} vs {_label('A', names[0])}")
    doc.paragraph(
        f"Paired bootstrap over predictions with {result.iterations:,} iterations (seed {result.seed}); Δ = metric(B) − metric(A), "
        f"so positive Δ favours B (for the Brier score, lower is better). Thresholded metrics use "
        f"{_threshold_text(threshold_rule, fixed_threshold)}, chosen once per model on the full data (the 'threshold' row)."
    )
    for t in comparisons:
        task = result.tasks[t.name]
        _task_section(doc, root, t, task, names, result.alpha)
        if task.loss_tests is not None:
            _loss_section(doc, task, loss_column)
        if task.spearman is not None:
            _spearman_section(doc, task, result.alpha)
        if task.subgroups is not None:
            _subgroup_section(doc, task, names)
    if plots.matplotlib_available() and any(t.methods for t in comparisons):
        doc.heading("Every task and model")
        doc.figure(plots.methods_forest_plot(root / "plots" / "methods_auroc.png", {t.name: t.methods for t in comparisons}),
                   "AUROC of each model on each task, with 95% bootstrap intervals")
    if meta_considered:
        _meta_section(doc, root, result, meta_left_out)
    return doc


def _label(tag: str, name: str) -> str:
    return tag if name == tag else f"{tag}: {name}"


def _threshold_text(rule: str, fixed: float) -> str:
    return {"fixed": f"a fixed threshold of {fixed}", "youden": "the Youden-optimal threshold (max TPR − FPR)",
            "closest": "the ROC point closest to (0, 1)"}[rule]


def _pct(value: float) -> str:
    """A % change, or "—" where A's value is 0 (no change can be expressed relative to it)."""
    return "—" if value != value or abs(value) == float("inf") else f"{value:+.1f}%"


def _fmt_p(d, boot: BootstrapSummary) -> str:
    return f"< {boot.p_floor:.1e}" if d.p_at_floor else f"{d.p_value:.4f}"


def _task_section(doc: Document, root: Path, t: TaskComparison, task: TaskResult, model_names, alpha: float) -> None:
    ma, mb, boot = task.metrics_a, task.metrics_b, task.bootstrap
    doc.heading(f"Task: {t.name}")
    few = ma.n_positive < MIN_CASES
    caveat = (f" Fewer than {MIN_CASES} cases: the p-values and intervals below are shown for completeness and say little; "
              "the comparison is not read as a finding." if few else "")
    doc.paragraph(f"{ma.n:,} predictions ({len(set(t.subject_id.tolist())):,} subjects), {ma.n_positive:,} positive "
                  f"({ma.n_positive / ma.n:.1%}).{caveat} " + " ".join(task.notes))
    rows = [[m, getattr(ma, m), getattr(mb, m)] for m in (*BOOTSTRAP_METRICS, "threshold", "operating_points")]
    doc.table(["metric", _label("A", model_names[0]), _label("B", model_names[1])], rows)
    doc.paragraph("Paired bootstrap of the differences (the genomics paper's Table 2):")
    doc.table(
        ["metric", "mean Δ (B − A)", "95% CI", "p (two-sided)", "% change"],
        [[m, d.mean, f"[{d.ci_low:.4f}, {d.ci_high:.4f}]", _fmt_p(d, boot), _pct(d.pct_change)] for m, d in boot.deltas.items()],
    )
    d = boot.deltas["auroc"]
    verdict = (f"with {ma.n_positive} cases, too few to test" if few else
               f"the difference is {'significant' if d.p_value < alpha else 'not significant'} at {alpha}")
    doc.paragraph(
        f"Reading: B's AUROC is {mb.auroc:.3f} against {ma.auroc:.3f} for A (Δ {d.mean:+.4f}, 95% CI "
        f"[{d.ci_low:.4f}, {d.ci_high:.4f}], p {_fmt_p(d, boot)}): {verdict}. "
        f"B offers {mb.operating_points:,} distinct operating points, A {ma.operating_points:,}."
    )
    if task.methods:
        doc.paragraph("Each model alone, with 95% bootstrap intervals; sensitivity and specificity at its ROC point closest to (0, 1):")
        briers = (ma.brier, mb.brier) + (None,) * (len(task.methods) - 2)  # other methods' scores need not be probabilities
        doc.table(["model", "AUROC", "AUPRC", "sensitivity", "specificity", "threshold", "Brier"],
                  [[r.method, *(f"{e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]" for e in (r.auroc, r.auprc, r.sensitivity, r.specificity)),
                    f"{r.threshold:.4g}", "—" if b is None else f"{b:.4f} ({brier_label(b)})"] for r, b in zip(task.methods, briers)])
    if task.other_scores:
        doc.paragraph("The same predictions scored by other columns (AUROC; distinct operating points):")
        doc.table(["score", f"AUROC {model_names[0]}", "points", f"AUROC {model_names[1]}", "points"],
                  [[col, a.auroc, a.operating_points, b.auroc, b.operating_points]
                   for col, (a, b) in (("(main score)", (ma, mb)), *((c, (p.metrics_a, p.metrics_b)) for c, p in task.other_scores.items()))])
    if plots.matplotlib_available():
        _task_figures(doc, root, t, model_names)
    else:
        doc.paragraph("(Figures skipped: matplotlib is not installed; `pip install ehrfast[plot]`.)")


def _task_figures(doc: Document, root: Path, t: TaskComparison, model_names) -> None:
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in t.name)
    fa, ta, _ = roc_points(t.label, t.score_a)
    fb, tb, _ = roc_points(t.label, t.score_b)
    curves = {_label("A", model_names[0]): (fa, ta, t.metrics_a.auroc), _label("B", model_names[1]): (fb, tb, t.metrics_b.auroc)}
    doc.figure(plots.roc_plot(root / "plots" / f"{slug}_roc.png", curves, f"ROC — {t.name}"), f"ROC curves, {t.name}")
    doc.figure(plots.pr_difference_plot(root / "plots" / f"{slug}_pr_difference.png", t.pr, f"Precision difference — {t.name}"),
               f"Precision of B minus A on a fixed recall grid with the 95% bootstrap band, {t.name}")
    cal = {_label("A", model_names[0]): t.calibration_a, _label("B", model_names[1]): t.calibration_b}
    doc.figure(plots.calibration_plot(root / "plots" / f"{slug}_calibration.png", cal, f"Calibration — {t.name}"),
               f"Reliability curves (quantile bins, 95% bootstrap bands), {t.name}")
    scores = {_label("A", model_names[0]): t.score_a, _label("B", model_names[1]): t.score_b}
    doc.figure(plots.risk_histogram(root / "plots" / f"{slug}_risk_histogram.png", t.label, scores, t.name), f"Predicted risk by outcome, {t.name}")


def _meta_section(doc: Document, root: Path, result: EvaluationResult, left_out: list[str]) -> None:
    doc.heading("Meta-analysis of Δ AUROC across tasks")
    if left_out:
        doc.paragraph("Left out (Δ AUROC does not vary over the bootstrap resamples): " + ", ".join(left_out) + ".")
    meta = result.meta_analysis
    if meta is None:
        doc.paragraph("Fewer than two tasks left to pool; no meta-analysis.")
        return
    doc.table(
        ["model", "pooled Δ", "SE", "95% CI", "p"],
        [[kind, p.estimate, p.se, f"[{p.ci_low:.4f}, {p.ci_high:.4f}]", p.p_value] for kind, p in (("fixed effect", meta.fixed), ("random effects (DL)", meta.random))],
    )
    doc.paragraph(
        f"Heterogeneity: Cochran's Q = {meta.q:.2f} (df {meta.q_df}, p = {meta.q_p_value:.3f}), I² = {meta.i2:.1%}, τ² = {meta.tau2:.2e}. "
        f"Emphasized: {meta.emphasized} effects — {meta.emphasis_reason}."
    )
    if plots.matplotlib_available():
        doc.figure(plots.forest_plot(root / "plots" / "forest_auroc.png", meta, "AUROC"), "Forest plot of Δ AUROC per task and pooled")


def _loss_section(doc: Document, task: TaskResult, loss_column: str) -> None:
    res = task.loss_tests
    doc.paragraph(
        f"Per-subject test loss ('{loss_column}'): mean difference B − A = {res.mean_difference:+.4g} over {res.n:,} subjects; "
        f"paired t-test p = {res.t_p_value:.3g}; {res.normality_test} normality p = {res.normality_p_value:.3g}; "
        f"Wilcoxon signed-rank p = {res.wilcoxon_p_value:.3g}. Reported test: {res.recommended_test} (p = {res.recommended_p_value:.3g})."
    )


def _spearman_section(doc: Document, task: TaskResult, alpha: float) -> None:
    res = task.spearman
    doc.paragraph(f"Spearman correlation of per-subject probability differences (B − A) with PRS traits ({res.n:,} subjects with PRS), "
                  f"one-sided for positive correlation; * marks traits themselves positively associated with the label (p < {alpha}).")
    doc.table(["trait", "rho", "p (rho > 0)"],
              [[f"{n}{' *' if cp < alpha else ''}", r, p] for n, r, p, cp in zip(res.traits, res.rho, res.p_value, res.label_p_value)])


def _subgroup_section(doc: Document, task: TaskResult, model_names) -> None:
    for col, by_model in task.subgroups.items():
        doc.paragraph(f"AUROC by {col} (95% bootstrap CI):")
        rows = []
        for ga, gb in zip(by_model[model_names[0]], by_model[model_names[1]]):
            rows.append([ga.group, ga.n, ga.n_positive, f"{ga.auroc:.3f} [{ga.ci_low:.3f}, {ga.ci_high:.3f}]",
                         f"{gb.auroc:.3f} [{gb.ci_low:.3f}, {gb.ci_high:.3f}]"])
        doc.table([col, "n", "positives", _label("A", model_names[0]), _label("B", model_names[1])], rows)
        p = (task.subgroup_variability or {}).get(col)
        if p is not None:
            doc.paragraph(f"Bartlett's test of equal variance of the two models' AUROCs across {col} groups: p {p:.3g}.")
