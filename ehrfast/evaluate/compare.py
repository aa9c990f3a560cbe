"""``ehrfast evaluate``: compare model A with model B on one or more tasks and write a report
folder (report.md, report.html, results.json, plots/ with a CSV beside every PNG)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast.evaluate import plots
from ehrfast.evaluate.bootstrap import PairedBootstrap, PRDifference, paired_bootstrap, pr_difference
from ehrfast.evaluate.calibration import Reliability, reliability_curve, subgroup_auroc
from ehrfast.evaluate.document import Document
from ehrfast.evaluate.meta import MetaAnalysis, meta_analysis
from ehrfast.evaluate.metrics import BOOTSTRAP_METRICS, ModelMetrics, model_metrics, roc_points
from ehrfast.evaluate.paired_tests import compare_losses, spearman_vs_traits
from ehrfast.evaluate.predictions import DEFAULT_SCORE, PredictionError, align_pair, load_subject_scores, read_predictions, subject_scores
from ehrfast.io import atomic_directory, check_outputs

ALPHA = 0.05


@dataclass
class TaskComparison:
    """Everything computed for one task (one pair of prediction files)."""

    name: str
    subject_id: np.ndarray
    label: np.ndarray
    score_a: np.ndarray
    score_b: np.ndarray
    metrics_a: ModelMetrics
    metrics_b: ModelMetrics
    bootstrap: PairedBootstrap
    pr: PRDifference
    calibration_a: Reliability
    calibration_b: Reliability
    notes: list[str] = field(default_factory=list)
    # other score columns of the same predictions (e.g. mc_frequency): column -> (metrics A, metrics B)
    other_scores: dict[str, tuple[ModelMetrics, ModelMetrics]] = field(default_factory=dict)


def compare_pair(
    pred_a: str | os.PathLike,
    pred_b: str | os.PathLike,
    name: str,
    score_column: str = DEFAULT_SCORE,
    iterations: int = 2000,
    seed: int = 0,
    threshold_rule: str = "fixed",
    fixed_threshold: float = 0.5,
    other_score_columns: tuple[str, ...] = (),
) -> TaskComparison:
    a = load_subject_scores(pred_a, score_column)
    b = load_subject_scores(pred_b, score_column)
    label, sa, sb = align_pair(a, b)
    notes = []
    for tag, s in (("A", a), ("B", b)):
        if s.n_averaged:
            notes.append(f"model {tag}: {s.n_averaged} subjects had several predictions ({s.n_predictions} rows); their scores were averaged")
    boot = paired_bootstrap(label, sa, sb, iterations, seed, threshold_rule, fixed_threshold)
    if boot.skipped_one_class:
        notes.append(f"{boot.skipped_one_class} of {iterations} bootstrap resamples held one class only and were skipped")
    return TaskComparison(
        name=name,
        subject_id=a.subject_id,
        label=label,
        score_a=sa,
        score_b=sb,
        metrics_a=model_metrics(label, sa, threshold_rule, fixed_threshold),
        metrics_b=model_metrics(label, sb, threshold_rule, fixed_threshold),
        bootstrap=boot,
        pr=pr_difference(label, sa, sb, iterations, seed),
        calibration_a=reliability_curve(label, sa, seed=seed),
        calibration_b=reliability_curve(label, sb, seed=seed),
        notes=notes,
        other_scores={c: _other_score_metrics(pred_a, pred_b, c, threshold_rule, fixed_threshold) for c in other_score_columns},
    )


def _other_score_metrics(pred_a, pred_b, column: str, threshold_rule: str, fixed_threshold: float) -> tuple[ModelMetrics, ModelMetrics]:
    label, sa, sb = align_pair(load_subject_scores(pred_a, column), load_subject_scores(pred_b, column))
    return model_metrics(label, sa, threshold_rule, fixed_threshold), model_metrics(label, sb, threshold_rule, fixed_threshold)


def evaluate(
    pairs: list[tuple[str, str]],
    out_dir: str | os.PathLike,
    names: list[str] | None = None,
    *,
    model_names: tuple[str, str] = ("A", "B"),
    score_column: str = DEFAULT_SCORE,
    iterations: int = 2000,
    seed: int = 0,
    threshold_rule: str = "fixed",
    fixed_threshold: float = 0.5,
    prs_path: str | os.PathLike | None = None,
    traits: list[str] | None = None,
    subgroups_path: str | os.PathLike | None = None,
    subgroup_columns: tuple[str, ...] = (),
    loss_column: str | None = None,
    other_score_columns: tuple[str, ...] = (),
    meta_tasks: list[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Compares model A (first file of each pair) with model B on every task and writes the
    report folder ``out_dir``; returns the contents of its ``results.json``. The meta-analysis
    pools ``meta_tasks`` (names; default every task) when there are at least two.
    ``other_score_columns`` (e.g. ``("mc_frequency",)``) are reported beside ``score_column``:
    AUROC and number of operating points of each model under each."""
    if not pairs:
        raise ValueError("no prediction files to evaluate")
    names = list(names) if names else [Path(b).stem if len(pairs) > 1 else "task" for _, b in pairs]
    if len(names) != len(pairs) or len(set(names)) != len(names):
        raise ValueError(f"need one distinct name per task, got {names}")
    if meta_tasks is not None and (unknown := sorted(set(meta_tasks) - set(names))):
        raise ValueError(f"meta_tasks {unknown} are not among the tasks {names}")
    check_outputs(directories=[out_dir], inputs=[*(p for pair in pairs for p in pair), prs_path, subgroups_path], overwrite=overwrite)
    tasks = [
        compare_pair(a, b, n, score_column, iterations, seed, threshold_rule, fixed_threshold, other_score_columns)
        for (a, b), n in tqdm(list(zip(pairs, names)), desc="evaluate", unit="task", disable=not progress)
    ]
    results: dict = {"model_names": list(model_names), "iterations": iterations, "seed": seed, "score_column": score_column, "alpha": ALPHA, "tasks": {}}
    with atomic_directory(out_dir, overwrite=overwrite, kind="evaluation") as root:
        (root / "plots").mkdir()
        doc = Document(f"Model comparison: {_label('B', model_names[1])} vs {_label('A', model_names[0])}")
        doc.paragraph(
            f"Paired bootstrap over subjects with {iterations:,} iterations (seed {seed}); Δ = metric(B) − metric(A), "
            f"so positive Δ favours B (for the Brier score, lower is better). Thresholded metrics use "
            f"{_threshold_text(threshold_rule, fixed_threshold)}, chosen once per model on the full data."
        )
        for t in tasks:
            results["tasks"][t.name] = _task_section(doc, root, t, model_names)
            if loss_column:
                results["tasks"][t.name]["loss_tests"] = _loss_section(doc, pairs[names.index(t.name)], loss_column)
            if prs_path and traits:
                results["tasks"][t.name]["spearman"] = _spearman_section(doc, t, prs_path, traits)
            if subgroups_path and subgroup_columns:
                results["tasks"][t.name]["subgroups"] = _subgroup_section(doc, t, subgroups_path, subgroup_columns, model_names, seed)
        pooled = [t for t in tasks if meta_tasks is None or t.name in meta_tasks]
        if len(pooled) >= 2 and (meta := _meta_section(doc, root, pooled)) is not None:
            results["meta_analysis"] = meta
        (root / "report.md").write_text(doc.to_markdown(root) + "\n")
        (root / "report.html").write_text(doc.to_html())
        (root / "results.json").write_text(json.dumps(_jsonable(results), indent=2) + "\n")
    return results


def _label(tag: str, name: str) -> str:
    return tag if name == tag else f"{tag}: {name}"


def _threshold_text(rule: str, fixed: float) -> str:
    return {"fixed": f"a fixed threshold of {fixed}", "youden": "the Youden-optimal threshold (max TPR − FPR)", "closest": "the ROC point closest to (0, 1)"}[rule]


def _fmt_p(d, boot: PairedBootstrap) -> str:
    return f"< {boot.p_floor:.1e}" if d.p_at_floor else f"{d.p_value:.4f}"


def _task_section(doc: Document, root: Path, t: TaskComparison, model_names) -> dict:
    ma, mb, boot = t.metrics_a, t.metrics_b, t.bootstrap
    doc.heading(f"Task: {t.name}")
    doc.paragraph(f"{ma.n:,} subjects, {ma.n_positive:,} positive ({ma.n_positive / ma.n:.1%}). " + " ".join(t.notes))
    rows = [[m, getattr(ma, m), getattr(mb, m)] for m in (*BOOTSTRAP_METRICS, "threshold", "operating_points")]
    doc.table(["metric", _label("A", model_names[0]), _label("B", model_names[1])], rows)
    doc.paragraph("Paired bootstrap of the differences (the genomics paper's Table 2):")
    doc.table(
        ["metric", "mean Δ (B − A)", "95% CI", "p (two-sided)", "% change"],
        [[m, d.mean, f"[{d.ci_low:.4f}, {d.ci_high:.4f}]", _fmt_p(d, boot), f"{d.pct_change:+.1f}%"] for m, d in boot.deltas.items()],
    )
    d = boot.deltas["auroc"]
    verdict = "significant" if d.p_value < ALPHA else "not significant"
    doc.paragraph(
        f"Reading: B's AUROC is {mb.auroc:.3f} against {ma.auroc:.3f} for A (Δ {d.mean:+.4f}, 95% CI "
        f"[{d.ci_low:.4f}, {d.ci_high:.4f}], p {_fmt_p(d, boot)}): the difference is {verdict} at {ALPHA}. "
        f"B offers {mb.operating_points:,} distinct operating points, A {ma.operating_points:,}."
    )
    if t.other_scores:
        doc.paragraph("The same predictions scored by other columns (AUROC; distinct operating points):")
        doc.table(["score", f"AUROC {model_names[0]}", "points", f"AUROC {model_names[1]}", "points"],
                  [[col, a.auroc, a.operating_points, b.auroc, b.operating_points]
                   for col, (a, b) in (("(main score)", (ma, mb)), *t.other_scores.items())])
    out = {
        "n": ma.n,
        "n_positive": ma.n_positive,
        "notes": t.notes,
        "metrics_a": dataclasses.asdict(ma),
        "metrics_b": dataclasses.asdict(mb),
        "bootstrap": {"iterations_used": boot.iterations_used, "skipped_one_class": boot.skipped_one_class, "p_floor": boot.p_floor,
                      "threshold_a": boot.threshold_a, "threshold_b": boot.threshold_b,
                      "deltas": {m: dataclasses.asdict(v) for m, v in boot.deltas.items()}},
        "pr_difference": dataclasses.asdict(t.pr),
        "calibration_a": dataclasses.asdict(t.calibration_a),
        "calibration_b": dataclasses.asdict(t.calibration_b),
        "other_scores": {c: {"metrics_a": dataclasses.asdict(a), "metrics_b": dataclasses.asdict(b)} for c, (a, b) in t.other_scores.items()},
    }
    if plots.matplotlib_available():
        _task_figures(doc, root, t, model_names)
    else:
        doc.paragraph("(Figures skipped: matplotlib is not installed; `pip install ehrfast[plot]`.)")
    return out


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


def _meta_section(doc: Document, root: Path, tasks: list[TaskComparison]) -> dict | None:
    variances = {t.name: float(np.var(t.bootstrap.samples["auroc"], ddof=1)) for t in tasks}
    # a task whose Δ does not vary over resamples (tiny data) carries no weight to pool
    usable = [t for t in tasks if np.isfinite(variances[t.name]) and variances[t.name] > 0]
    doc.heading("Meta-analysis of Δ AUROC across tasks")
    if len(usable) < len(tasks):
        doc.paragraph("Left out (Δ AUROC does not vary over the bootstrap resamples): "
                      + ", ".join(t.name for t in tasks if t not in usable) + ".")
    if len(usable) < 2:
        doc.paragraph("Fewer than two tasks left to pool; no meta-analysis.")
        return None
    tasks = usable
    effects = [t.bootstrap.deltas["auroc"].mean for t in tasks]
    meta: MetaAnalysis = meta_analysis(effects, [variances[t.name] for t in tasks], [t.name for t in tasks])
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
    return dataclasses.asdict(meta)


def _loss_section(doc: Document, pair: tuple[str, str], loss_column: str) -> dict:
    a = subject_scores(read_predictions(pair[0], loss_column), loss_column, pair[0])
    b = subject_scores(read_predictions(pair[1], loss_column), loss_column, pair[1])
    if not np.array_equal(a.subject_id, b.subject_id):
        raise PredictionError(f"per-subject losses ('{loss_column}') cover different subjects in A and B")
    res = compare_losses(a.score, b.score)
    doc.paragraph(
        f"Per-subject test loss ('{loss_column}'): mean difference B − A = {res.mean_difference:+.4g} over {res.n:,} subjects; "
        f"paired t-test p = {res.t_p_value:.3g}; {res.normality_test} normality p = {res.normality_p_value:.3g}; "
        f"Wilcoxon signed-rank p = {res.wilcoxon_p_value:.3g}. Reported test: {res.recommended_test} (p = {res.recommended_p_value:.3g})."
    )
    return dataclasses.asdict(res)


def _spearman_section(doc: Document, t: TaskComparison, prs_path, traits: list[str]) -> dict:
    prs = pq.read_table(prs_path)
    missing = [c for c in ("subject_id", *traits) if c not in prs.column_names]
    if missing:
        raise PredictionError(f"{prs_path}: missing column(s) {missing}")
    ids = prs.column("subject_id").to_numpy()
    pos = {s: i for i, s in enumerate(ids.tolist())}
    rows = np.array([pos.get(s, -1) for s in t.subject_id.tolist()])
    have = rows >= 0
    x = np.column_stack([prs.column(c).to_numpy(zero_copy_only=False).astype(float)[rows[have]] for c in traits])
    finite = np.isfinite(x).all(1)
    diff = (t.score_b - t.score_a)[have][finite]
    res = spearman_vs_traits(diff, x[finite], traits)
    control = spearman_vs_traits(t.label[have][finite].astype(float), x[finite], traits)
    doc.paragraph(f"Spearman correlation of per-subject probability differences (B − A) with PRS traits ({res.n:,} subjects with PRS), one-sided for positive correlation; * marks traits themselves positively associated with the label (p < {ALPHA}).")
    doc.table(["trait", "rho", "p (rho > 0)"], [[f"{n}{' *' if cp < ALPHA else ''}", r, p] for n, r, p, cp in zip(res.traits, res.rho, res.p_value, control.p_value)])
    return {"n": res.n, "traits": res.traits, "rho": res.rho, "p_value": res.p_value, "label_p_value": control.p_value}


def _subgroup_section(doc: Document, t: TaskComparison, path, columns, model_names, seed) -> dict:
    table = pq.read_table(path)
    out = {}
    for col in columns:
        if col not in table.column_names or "subject_id" not in table.column_names:
            raise PredictionError(f"{path}: needs columns 'subject_id' and '{col}'")
        lookup = dict(zip(table.column("subject_id").to_pylist(), table.column(col).to_pylist()))
        groups = np.array([str(lookup.get(s, "(unknown)")) for s in t.subject_id.tolist()])
        res = {m: subgroup_auroc(t.label, s, groups, seed=seed) for m, s in ((model_names[0], t.score_a), (model_names[1], t.score_b))}
        doc.paragraph(f"AUROC by {col} (95% bootstrap CI):")
        rows = []
        for ga, gb in zip(*res.values()):
            rows.append([ga.group, ga.n, ga.n_positive, f"{ga.auroc:.3f} [{ga.ci_low:.3f}, {ga.ci_high:.3f}]", f"{gb.auroc:.3f} [{gb.ci_low:.3f}, {gb.ci_high:.3f}]"])
        doc.table([col, "n", "positives", _label("A", model_names[0]), _label("B", model_names[1])], rows)
        out[col] = {m: [dataclasses.asdict(r) for r in v] for m, v in res.items()}
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and x != x:
        return None  # NaN -> null
    return x
