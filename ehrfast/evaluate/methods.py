"""One outcome, many methods (ARES.md S10; the ETHOS-ARES paper's comparison tables): per method,
AUROC, AUPRC (as average precision), and the sensitivity and specificity at the ROC point
closest to (0, 1), each with a 95 % percentile bootstrap interval. All methods are resampled
with the same draws (predictions, or whole subjects with ``clusters``); each method's threshold
is chosen once on the full data and held fixed across resamples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.bootstrap import DEFAULT_MEMORY_BYTES, resampled_metrics
from ehrfast.evaluate.metrics import check_binary, choose_threshold, model_metrics

TABLE_METRICS = {"auroc": "auroc", "auprc": "auprc", "sensitivity": "recall", "specificity": "specificity"}


@dataclass(frozen=True)
class Estimate:
    value: float  # on the full data
    ci_low: float  # 2.5th percentile of the resamples
    ci_high: float  # 97.5th


@dataclass(frozen=True)
class MethodRow:
    """One method's row: its estimates with intervals, and the threshold of its operating point."""

    method: str
    n: int
    n_positive: int
    threshold: float
    auroc: Estimate
    auprc: Estimate
    sensitivity: Estimate
    specificity: Estimate
    iterations_used: int


def method_table(label, scores: dict[str, np.ndarray], iterations: int = 1000, seed: int = 0, clusters: np.ndarray | None = None,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES) -> list[MethodRow]:
    """A row per method of ``scores`` ({name: [n] score}) against ``label`` [n]. Resamples with
    one class only are skipped (counted out of ``iterations_used``)."""
    if not scores:
        raise InvalidInputError("method_table needs at least one method")
    if iterations < 1:
        raise InvalidInputError(f"iterations must be positive, got {iterations}")
    checked = {name: check_binary(label, s) for name, s in scores.items()}
    y = next(iter(checked.values()))[0]
    thresholds = {name: choose_threshold(y, s, "closest") for name, (_, s) in checked.items()}
    resampled = resampled_metrics(y, [(s, thresholds[name]) for name, (_, s) in checked.items()], iterations, seed, memory_bytes, clusters)
    valid = ~np.isnan(resampled[0]["auroc"])  # both classes drawn (the labels are shared)
    used = int(valid.sum())
    draws = {name: {key: r[source][valid] for key, source in TABLE_METRICS.items()} for name, r in zip(checked, resampled)}
    rows = []
    for name, (_, s) in checked.items():
        full = model_metrics(y, s, "fixed", thresholds[name])
        values = {"auroc": full.auroc, "auprc": full.auprc, "sensitivity": full.recall, "specificity": full.specificity}
        estimates = {}
        for key in TABLE_METRICS:
            d = draws[name][key]
            lo, hi = np.percentile(d, [2.5, 97.5]) if len(d) else (np.nan, np.nan)
            estimates[key] = Estimate(float(values[key]), float(lo), float(hi))
        rows.append(MethodRow(name, len(y), int(y.sum()), thresholds[name], iterations_used=used, **estimates))
    return rows


def methods_latex(tables: dict[str, list[MethodRow]]) -> str:
    """A LaTeX table (booktabs) of every task's method rows, in the layout of the ETHOS-ARES
    paper's Tables S3–S5: task, method, then each metric with its 95 % interval."""
    def cell(e: Estimate) -> str:
        return f"{e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]"

    def escape(text: str) -> str:
        return "".join("\\" + c if c in "&%$#_{}" else c for c in text)

    lines = ["\\begin{tabular}{llllll}", "\\toprule", "Task & Method & AUROC & AUPRC & Sensitivity & Specificity \\\\", "\\midrule"]
    for task, rows in tables.items():
        for i, r in enumerate(rows):
            lines.append(f"{escape(task) if i == 0 else ''} & {escape(r.method)} & {cell(r.auroc)} & {cell(r.auprc)} & "
                         f"{cell(r.sensitivity)} & {cell(r.specificity)} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
