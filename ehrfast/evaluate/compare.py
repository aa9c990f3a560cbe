"""``ehrfast evaluate``: compare model A with model B on one or more tasks — every number as an
``EvaluationResult`` — and write the report folder (report.md, report.html, results.json,
plots/ with a CSV beside every PNG; rendered by ``evaluate/report.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.bootstrap import paired_bootstrap, pr_difference
from ehrfast.evaluate.calibration import reliability_curve, subgroup_auroc
from ehrfast.evaluate.demographics import demographics, subgroup_variability_p
from ehrfast.evaluate.meta import MetaAnalysis, meta_analysis
from ehrfast.evaluate.methods import method_table, methods_latex
from ehrfast.evaluate.metrics import ModelMetrics, model_metrics
from ehrfast.evaluate.options import DEFAULT_SCORE, EvaluateOptions
from ehrfast.evaluate.paired_tests import LossComparison, compare_losses, spearman_vs_traits
from ehrfast.evaluate.predictions import PredictionError, align_pair, load_prediction_scores, prediction_scores, read_predictions, scores_on_units
from ehrfast.evaluate.report import write_report
from ehrfast.evaluate.result import EvaluationResult, TaskComparison, TraitSpearman
from ehrfast.genomics.matrix import read_prs_matrix
from ehrfast.inputs import read_parquet
from ehrfast.io import atomic_directory, check_outputs
from ehrfast.predictions import read_method_names

ALPHA = 0.05


def compare_pair(
    pred_a: str | os.PathLike,
    pred_b: str | os.PathLike,
    name: str,
    score_column: str = DEFAULT_SCORE,
    iterations: int = 2000,
    seed: int = 0,
    threshold_rule: str = "closest",
    fixed_threshold: float = 0.5,
    other_score_columns: tuple[str, ...] = (),
    cluster_by_subject: bool = False,
    calibration_bins: str = "quantile",
    model_names: tuple[str, str] = ("A", "B"),
    method_files: tuple[Path, ...] = (),
) -> TaskComparison:
    """One task: model A against model B, and in the methods table also every method of
    ``method_files`` (method-scores files) on the same predictions."""
    a = load_prediction_scores(pred_a, score_column)
    b = load_prediction_scores(pred_b, score_column)
    label, sa, sb = align_pair(a, b)
    notes = []
    for tag, s in (("A", a), ("B", b)):
        if s.n_averaged:
            notes.append(f"model {tag}: {s.n_averaged} predictions (subject, time, anchor) had several rows ({s.n_predictions} rows); "
                         "their scores were averaged")
    clusters = a.subject_clusters() if cluster_by_subject else None
    if clusters is not None:
        notes.append(f"bootstrap resamples subjects ({clusters.max() + 1 if len(clusters) else 0}), each with all of its predictions")
    boot = paired_bootstrap(label, sa, sb, iterations, seed, threshold_rule, fixed_threshold, clusters=clusters)
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
        pr=pr_difference(label, sa, sb, iterations, seed, clusters=clusters),
        calibration_a=reliability_curve(label, sa, seed=seed, strategy=calibration_bins, clusters=clusters),
        calibration_b=reliability_curve(label, sb, seed=seed, strategy=calibration_bins, clusters=clusters),
        methods=method_table(label, {**dict(zip(model_names, (sa, sb))), **_method_scores(a, method_files, model_names)}, iterations, seed,
                             clusters),
        notes=notes,
        other_scores={c: _other_score_metrics(pred_a, pred_b, c, threshold_rule, fixed_threshold) for c in other_score_columns},
    )


def _method_scores(a, method_files: tuple[Path, ...], model_names) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for path in method_files:
        for method in read_method_names(path):
            if method in out or method in model_names:
                raise InvalidInputError(f"{path}: method {method!r} appears twice in one task's methods table")
            out[method] = scores_on_units(a, load_prediction_scores(path, method))
    return out


def parse_methods(entries: tuple[str, ...], names: list[str]) -> dict[str, tuple[Path, ...]]:
    """``TASK=FILE`` entries -> {task: files}. The task is the longest task name the entry starts
    with followed by "=" (task names may hold "=" themselves: "Prolonged stay (>= 10 d)"); an
    entry that names no task is an error."""
    out: dict[str, list[Path]] = {}
    for entry in entries:
        matches = [n for n in names if entry.startswith(n + "=") and len(entry) > len(n) + 1]
        if not matches:
            task = entry.partition("=")[0]
            raise InvalidInputError(f"--methods {entry!r}: expected TASK=FILE with TASK one of {names}"
                                    + (f"; no task {task!r}" if "=" in entry else ""))
        task = max(matches, key=len)
        out.setdefault(task, []).append(Path(entry[len(task) + 1:]))
    return {k: tuple(v) for k, v in out.items()}


def _other_score_metrics(pred_a, pred_b, column: str, threshold_rule: str, fixed_threshold: float) -> tuple[ModelMetrics, ModelMetrics]:
    label, sa, sb = align_pair(load_prediction_scores(pred_a, column), load_prediction_scores(pred_b, column))
    return model_metrics(label, sa, threshold_rule, fixed_threshold), model_metrics(label, sb, threshold_rule, fixed_threshold)


def evaluate(
    pairs: list[tuple[str | os.PathLike, str | os.PathLike]],
    out_dir: str | os.PathLike,
    options: EvaluateOptions | None = None,
    *,
    prs_path: str | os.PathLike | None = None,
    subgroups_path: str | os.PathLike | None = None,
    demographics_from: str | os.PathLike | None = None,
    methods: tuple[str, ...] = (),
    overwrite: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Compares model A (first file of each pair) with model B on every task and writes the
    report folder ``out_dir``; returns what its ``results.json`` holds. The meta-analysis pools
    ``options.meta_tasks`` (names; default every task) when there are at least two.
    ``options.other_score_columns`` (e.g. ``("mc_frequency",)``) are reported beside the main
    score: AUROC and number of operating points of each model under each. ``demographics_from``
    (a MEDS dataset) adds AUROC by gender and race (the reference's race groups), with
    Bartlett's test of the two models' subgroup AUROCs. ``methods`` (``TASK=FILE`` entries) adds
    every method of a method-scores file (``ehrfast baselines``) to that task's methods table."""
    opt = options or EvaluateOptions()
    if not pairs:
        raise InvalidInputError("no prediction files to evaluate")
    names = list(opt.names) if opt.names else [Path(b).stem if len(pairs) > 1 else "task" for _, b in pairs]
    if len(names) != len(pairs) or len(set(names)) != len(names):
        raise InvalidInputError(f"need one distinct name per task, got {names}")
    if opt.meta_tasks is not None and (unknown := sorted(set(opt.meta_tasks) - set(names))):
        raise InvalidInputError(f"meta_tasks {unknown} are not among the tasks {names}")
    method_files = parse_methods(tuple(methods), names)
    check_outputs(directories=[out_dir], inputs=[*(p for pair in pairs for p in pair), prs_path, subgroups_path, demographics_from,
                                                 *(f for files in method_files.values() for f in files)], overwrite=overwrite)
    demographic_table = demographics(demographics_from) if demographics_from is not None else None
    comparisons = [
        compare_pair(a, b, n, opt.score_column, opt.iterations, opt.seed, opt.threshold_rule, opt.fixed_threshold, opt.other_score_columns,
                     opt.cluster_by_subject, opt.calibration_bins, tuple(opt.model_names), method_files.get(n, ()))
        for (a, b), n in tqdm(list(zip(pairs, names)), desc="evaluate", unit="task", disable=not progress)
    ]
    tasks = {}
    for pair, t in zip(pairs, comparisons):
        result = t.result()
        if opt.loss_column:
            result.loss_tests = loss_tests(pair, opt.loss_column)
        if prs_path and opt.traits:
            result.spearman = trait_spearman(t, prs_path, list(opt.traits))
        if subgroups_path and opt.subgroup_columns:
            result.subgroups = subgroups(t, read_parquet(subgroups_path), opt.subgroup_columns, opt.model_names, opt.seed, str(subgroups_path))
        if demographic_table is not None:
            result.subgroups = {**(result.subgroups or {}),
                                **subgroups(t, demographic_table, ("gender", "race"), opt.model_names, opt.seed, str(demographics_from))}
        if result.subgroups:
            result.subgroup_variability = subgroup_variability(result.subgroups, opt.model_names)
        tasks[t.name] = result
    pooled = [t for t in comparisons if opt.meta_tasks is None or t.name in opt.meta_tasks]
    meta, left_out = pooled_delta_auroc(pooled) if len(pooled) >= 2 else (None, [])
    result = EvaluationResult(str(out_dir), list(opt.model_names), opt.iterations, opt.seed, opt.score_column, ALPHA, tasks, meta)
    with atomic_directory(out_dir, overwrite=overwrite, kind="evaluation") as root:
        doc = write_report(result, comparisons, root, threshold_rule=opt.threshold_rule, fixed_threshold=opt.fixed_threshold,
                           loss_column=opt.loss_column, meta_considered=len(pooled) >= 2, meta_left_out=left_out)
        (root / "report.md").write_text(doc.to_markdown(root) + "\n")
        (root / "report.html").write_text(doc.to_html())
        (root / "results.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
        (root / "methods.tex").write_text(methods_latex({t.name: t.methods for t in comparisons}))
    return result


def pooled_delta_auroc(tasks: list[TaskComparison]) -> tuple[MetaAnalysis | None, list[str]]:
    """Meta-analysis of Δ AUROC over ``tasks``, each weighted by its bootstrap variance; tasks
    whose Δ does not vary over the resamples (tiny data) carry no weight and are left out.
    Returns (the meta-analysis or None when fewer than two tasks are left, the names left out)."""
    variances = {t.name: float(np.var(t.bootstrap.samples["auroc"], ddof=1)) for t in tasks}
    usable = [t for t in tasks if np.isfinite(variances[t.name]) and variances[t.name] > 0]
    left_out = [t.name for t in tasks if t not in usable]
    if len(usable) < 2:
        return None, left_out
    effects = [t.bootstrap.deltas["auroc"].mean for t in usable]
    return meta_analysis(effects, [variances[t.name] for t in usable], [t.name for t in usable]), left_out


def loss_tests(pair: tuple, loss_column: str) -> LossComparison:
    """Paired t / Wilcoxon tests of per-subject test loss (``loss_column``) between A and B."""
    a = prediction_scores(read_predictions(pair[0], loss_column), loss_column, pair[0])
    b = prediction_scores(read_predictions(pair[1], loss_column), loss_column, pair[1])
    if not (np.array_equal(a.subject_id, b.subject_id) and np.array_equal(a.prediction_time, b.prediction_time)
            and np.array_equal(a.anchor_id, b.anchor_id)):
        raise PredictionError(f"per-prediction losses ('{loss_column}') cover different predictions in A and B")
    return compare_losses(a.score, b.score)


def trait_spearman(t: TaskComparison, prs_path, traits: list[str]) -> TraitSpearman:
    """Spearman of P(B) − P(A) with each PRS trait over the subjects that have PRS."""
    prs = read_prs_matrix(prs_path)
    missing = [c for c in traits if c not in prs.traits]
    if missing:
        raise PredictionError(f"{prs_path}: missing trait(s) {missing}; it has {prs.traits[:10]}{' ...' if len(prs.traits) > 10 else ''}")
    pos = {s: i for i, s in enumerate(prs.subject_ids.tolist())}
    rows = np.array([pos.get(s, -1) for s in t.subject_id.tolist()])
    have = rows >= 0
    x = prs.values[rows[have]][:, [prs.traits.index(c) for c in traits]].astype(float)
    finite = np.isfinite(x).all(1)
    diff = (t.score_b - t.score_a)[have][finite]
    res = spearman_vs_traits(diff, x[finite], traits)
    control = spearman_vs_traits(t.label[have][finite].astype(float), x[finite], traits)
    return TraitSpearman(res.n, list(res.traits), np.asarray(res.rho).tolist(), np.asarray(res.p_value).tolist(),
                         np.asarray(control.p_value).tolist())


def subgroups(t: TaskComparison, table: pa.Table, columns, model_names, seed, source: str = "subgroups") -> dict:
    """AUROC of each model within each value of each subgroup column of ``table`` (subject_id +
    the columns), with bootstrap CIs."""
    out = {}
    for col in columns:
        if col not in table.column_names or "subject_id" not in table.column_names:
            raise PredictionError(f"{source}: needs columns 'subject_id' and '{col}'")
        lookup = dict(zip(table.column("subject_id").to_pylist(), table.column(col).to_pylist()))
        groups = np.array([str(lookup.get(s, "(unknown)")) for s in t.subject_id.tolist()])
        out[col] = {m: subgroup_auroc(t.label, s, groups, seed=seed) for m, s in ((model_names[0], t.score_a), (model_names[1], t.score_b))}
    return out


def subgroup_variability(by_column: dict, model_names) -> dict[str, float | None]:
    """Per subgroup column, Bartlett's p for the two models' AUROCs across its groups."""
    return {col: subgroup_variability_p([g.auroc for g in by_model[model_names[0]] if g.group != "(all)"],
                                        [g.auroc for g in by_model[model_names[1]] if g.group != "(all)"])
            for col, by_model in by_column.items()}
