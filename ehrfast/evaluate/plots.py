"""Figures of the evaluation report. Each plot writes ``<name>.png`` and the numbers behind
it as ``<name>.csv``; matplotlib is a dependency; without it (a trimmed install) the plots are skipped."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLORS = {"A": "#7f7f7f", "B": "#d95f02"}


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_csv(path: Path, header: list[str], columns: list) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in zip(*columns):
            w.writerow([f"{v:.6g}" if isinstance(v, float | np.floating) else v for v in row])


def _title(ax, text: str, width_inches: float) -> None:
    """An axes title wrapped to the axes' width (about 9 characters per inch at 10 pt): long task
    names would otherwise run off the figure and be cut."""
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(text, max(20, int(width_inches * 9)))), fontsize=10)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def roc_plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> Path:
    """``curves``: label -> (fpr, tpr, auroc)."""
    write_csv(path.with_suffix(".csv"), ["model", "fpr", "tpr"], [
        [m for m, (f, _, _) in curves.items() for _ in f],
        np.concatenate([f for f, _, _ in curves.values()]),
        np.concatenate([t for _, t, _ in curves.values()]),
    ])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for (name, (fpr, tpr, auc)), color in zip(curves.items(), COLORS.values()):
        ax.plot(fpr, tpr, color=color, lw=1.6, label=f"{name} (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="black", lw=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1))
    _title(ax, title, 4.6)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_difference_plot(path: Path, pr, title: str) -> Path:
    write_csv(path.with_suffix(".csv"), ["recall", "precision_a", "precision_b", "delta", "boot_mean", "ci_low", "ci_high"],
              [pr.recall, pr.precision_a, pr.precision_b, pr.delta, pr.mean, pr.ci_low, pr.ci_high])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.fill_between(pr.recall, pr.ci_low, pr.ci_high, color=COLORS["B"], alpha=0.25, label="95% bootstrap band")
    ax.plot(pr.recall, pr.mean, color=COLORS["B"], lw=1.6, label="mean Δ precision (B − A)")
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="Recall", ylabel="Precision B − A", xlim=(0, 1))
    _title(ax, title, 5.2)
    ax.legend(fontsize=8)
    return _save(fig, path)


def calibration_plot(path: Path, curves: dict[str, object], title: str) -> Path:
    """``curves``: label -> calibration.Reliability."""
    rows = [(m, r.predicted[i], r.observed[i], r.observed_low[i], r.observed_high[i], int(r.count[i])) for m, r in curves.items() for i in range(len(r.predicted))]
    write_csv(path.with_suffix(".csv"), ["model", "predicted", "observed", "observed_low", "observed_high", "count"], list(zip(*rows)) if rows else [[]] * 6)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    top = 0.0
    for (name, r), color in zip(curves.items(), COLORS.values()):
        ax.errorbar(r.predicted, r.observed, yerr=[r.observed - r.observed_low, r.observed_high - r.observed], fmt="o-", ms=3, color=color, lw=1.2,
                    capsize=2, label=f"{name} (Brier {r.brier:.4f})")
        if len(r.predicted):
            top = max(top, float(np.nanmax(r.predicted)), float(np.nanmax(r.observed)))
    # the axes follow the points (predicted and observed means), not the widest bootstrap band:
    # a sparse top bin's interval reaching 1 would squeeze every point into a corner
    top = min(1.0, top * 1.15 + 1e-3)
    ax.plot([0, top], [0, top], ls=":", color="black", lw=0.8)
    ax.set(xlabel="Mean predicted probability", ylabel="Observed frequency", xlim=(0, top), ylim=(0, top))
    _title(ax, title, 4.6)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    return _save(fig, path)


def risk_histogram(path: Path, label: np.ndarray, scores: dict[str, np.ndarray], title: str) -> Path:
    bins = np.linspace(0, max(float(np.max(s)) for s in scores.values()) or 1.0, 31)
    hist_cols, header = [bins[:-1], bins[1:]], ["bin_low", "bin_high"]
    for name, s in scores.items():
        for cls, mask in (("pos", label), ("neg", ~label)):
            hist_cols.append(np.histogram(s[mask], bins)[0])
            header.append(f"{name}_{cls}")
    write_csv(path.with_suffix(".csv"), header, hist_cols)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(scores), figsize=(4.2 * len(scores), 3.2), squeeze=False)
    for ax, (name, s) in zip(axes[0], scores.items()):
        ax.hist(s[~label], bins, density=True, alpha=0.6, color="#1b9e77", label="negative")
        ax.hist(s[label], bins, density=True, alpha=0.6, color="#d95f02", label="positive")
        ax.set(xlabel="Predicted risk", ylabel="Density")
        _title(ax, f"{title}: {name}", 4.2)
        ax.legend(fontsize=8)
    return _save(fig, path)


def forest_plot(path: Path, meta, metric: str) -> Path:
    names = [*meta.names, "Fixed effect", "Random effects"]
    est = np.r_[meta.effects, meta.fixed.estimate, meta.random.estimate]
    half = 1.959963984540054 * np.sqrt(meta.variances)
    lo = np.r_[meta.effects - half, meta.fixed.ci_low, meta.random.ci_low]
    hi = np.r_[meta.effects + half, meta.fixed.ci_high, meta.random.ci_high]
    write_csv(path.with_suffix(".csv"), ["task", f"delta_{metric}", "ci_low", "ci_high"], [names, est, lo, hi])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 0.45 * len(names) + 1.2))
    ypos = np.arange(len(names))[::-1]
    for i, (y, e, a, b) in enumerate(zip(ypos, est, lo, hi)):
        pooled = i >= len(meta.names)
        ax.errorbar(e, y, xerr=[[e - a], [b - e]], fmt="D" if pooled else "s", color=COLORS["B"] if pooled else "black", capsize=3, ms=6 if pooled else 4)
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.set_yticks(ypos, names)
    ax.set(xlabel=f"Δ {metric} (B − A), 95% CI")
    # a figure title, not an axes title: long task names push the axes right and would clip it
    fig.suptitle(f"Meta-analysis of Δ {metric} ({meta.emphasized} effects emphasized)", fontsize=10)
    return _save(fig, path)


def methods_forest_plot(path: Path, tables: dict[str, list], metric: str = "auroc") -> Path:
    """Each task's methods (``methods.MethodRow``) with ``metric`` and its 95 % bootstrap interval,
    one row per (task, method) — the ETHOS-ARES paper's comparison figures."""
    labels, est, lo, hi = [], [], [], []
    for task, rows in tables.items():
        for r in rows:
            e = getattr(r, metric)
            labels.append(f"{task}: {r.method}")
            est.append(e.value)
            lo.append(e.ci_low)
            hi.append(e.ci_high)
    write_csv(path.with_suffix(".csv"), ["task_method", metric, "ci_low", "ci_high"], [labels, est, lo, hi])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 0.35 * len(labels) + 1.2))
    ypos = np.arange(len(labels))[::-1]
    est, lo, hi = np.asarray(est), np.asarray(lo), np.asarray(hi)
    ax.errorbar(est, ypos, xerr=[est - lo, hi - est], fmt="s", color="black", capsize=3, ms=4)
    ax.axvline(0.5, color="black", lw=0.8, ls=":")
    ax.set_yticks(ypos, labels)
    ax.set(xlabel=f"{metric.upper()} (95% bootstrap CI)")
    fig.suptitle(f"{metric.upper()} per task and model", fontsize=10)
    return _save(fig, path)
