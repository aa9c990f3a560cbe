"""Paired bootstrap of model differences, PR-difference bands, and single-model CIs.

Each resample draws n predictions with replacement (or, with ``clusters``, whole subjects with
all of their predictions); the same draw is applied to models A and B (paired). Resamples are
count vectors: how often each prediction (or cluster) was drawn.

Every metric of every resample (``resampled_metrics``) comes from the C++ core: each model's
scores sorted once, then per resample one O(n) pass over that order (csrc/evaluate/). The
counts are drawn through the numpy Generator's own bit stream exactly as ``resample_counts``
draws them, so the reference — count matrices in memory-bounded chunks, every metric for a
whole chunk at once by ``ranking.RankedScores`` — sees the same resamples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ehrfast.backends import require_core, resolve_backend
from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.metrics import BOOTSTRAP_METRICS, _confusion_to_metrics, check_binary, choose_threshold, model_metrics
from ehrfast.evaluate.ranking import RankedScores

DEFAULT_MEMORY_BYTES = 256 * 2**20
RECALL_GRID = np.linspace(0.0, 1.0, 101)


def resample_counts(n: int, iterations: int, seed: int, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                    clusters: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yields [chunk, n] float64 count matrices, ``iterations`` rows in all: how often each of the
    n rows is drawn. Without ``clusters`` the n rows are drawn with replacement (rows sum to n);
    with ``clusters`` ([n] int, 0 … k−1: e.g. each prediction's subject) k clusters are drawn and
    a row counts as often as its cluster. The chunk size keeps about eight [chunk, n] float64
    temporaries within ``memory_bytes``."""
    rng = np.random.default_rng(seed)
    chunk = int(max(1, min(iterations, memory_bytes // (8 * 8 * max(n, 1)))))
    k = n if clusters is None else (int(clusters.max()) + 1 if len(clusters) else 0)
    done = 0
    while done < iterations:
        c = min(chunk, iterations - done)
        draws = rng.integers(0, k, size=(c, k)) + (np.arange(c) * k)[:, None]
        counts = np.bincount(draws.ravel(), minlength=c * k).reshape(c, k).astype(np.float64)
        yield counts if clusters is None else counts[:, clusters]
        done += c


def metrics_for_weights(ranked: RankedScores, label, score, threshold, weights) -> dict[str, np.ndarray]:
    """Every bootstrap metric for each row of ``weights`` [b, n]."""
    auc, ap = ranked.auroc_auprc(weights)
    pred = score >= threshold
    cells = np.stack([label & pred, ~label & pred, label & ~pred, ~label & ~pred], axis=1).astype(np.float64)
    tp, fp, fn, tn = (weights @ cells).T
    out = {"auroc": auc, "auprc": ap, **_confusion_to_metrics(tp, fp, fn, tn)}
    out["brier"] = weights @ (score - label) ** 2 / weights.sum(axis=1)
    return out


def resampled_metrics(label: np.ndarray, models: list[tuple[np.ndarray, float]], iterations: int, seed: int,
                      memory_bytes: int = DEFAULT_MEMORY_BYTES, clusters: np.ndarray | None = None,
                      backend: str | None = None) -> list[dict[str, np.ndarray]]:
    """Every bootstrap metric of each model ((score [n], threshold) in ``models``) on the same
    ``iterations`` resamples: per model {metric: [iterations] float64}, AUROC and AUPRC NaN for
    a resample holding one class. ``label`` [n] bool and scores as check_binary returns them."""
    if resolve_backend(backend, "bootstrap") == "python":
        ranked = [RankedScores(label, s) for s, _ in models]
        parts: list[list[dict[str, np.ndarray]]] = [[] for _ in models]
        for w in resample_counts(len(label), iterations, seed, memory_bytes, clusters):
            for part, r, (s, t) in zip(parts, ranked, models):
                part.append(metrics_for_weights(r, label, s, t, w))
        return [{m: np.concatenate([p[m] for p in part]) for m in BOOTSTRAP_METRICS} for part in parts]
    return _core_resampled_metrics(require_core(), label, models, iterations, seed, memory_bytes, clusters)


def _core_resampled_metrics(core, label, models, iterations, seed, memory_bytes, clusters) -> list[dict[str, np.ndarray]]:
    n = len(label)
    cluster = np.arange(n) if clusters is None else np.asarray(clusters, np.int64)
    k = int(cluster.max()) + 1 if n else 0
    arrays = []
    for s, t in models:  # each model in descending score order, built once
        order = np.argsort(-s, kind="stable")
        ranked = s[order]
        arrays.append((cluster[order].astype(np.int32), label[order].astype(np.uint8), (ranked >= t).astype(np.uint8),
                       (ranked - label[order]) ** 2, np.r_[ranked[1:] != ranked[:-1], True].astype(np.uint8)))
    stacked = [np.ascontiguousarray(np.stack(a)) for a in zip(*arrays)]
    rng = np.random.default_rng(seed)
    chunk = int(max(1, min(iterations, memory_bytes // (4 * max(k, 1)))))  # the [chunk, k] int32 counts
    parts = []
    with rng.bit_generator.lock:  # numpy's own draws take it too; the core reads the stream through the capsule
        for done in range(0, iterations, chunk):
            counts = core.bootstrap_counts(rng.bit_generator.capsule, k, min(chunk, iterations - done))
            parts.append(core.bootstrap_metrics(counts, *stacked))
    stats = np.concatenate(parts)  # [iterations, n_models, 7]
    out = []
    for m in range(len(models)):
        auc, ap, tp, fp, fn, tn, brier = stats[:, m].T
        out.append({"auroc": auc, "auprc": ap, **_confusion_to_metrics(tp, fp, fn, tn), "brier": brier})
    return out


@dataclass(frozen=True)
class Delta:
    """Bootstrap summary of Δ = metric(B) − metric(A)."""

    metric: str
    value_a: float  # on the full data
    value_b: float
    mean: float  # mean Δ over valid resamples
    ci_low: float  # 2.5th percentile
    ci_high: float  # 97.5th percentile
    p_value: float  # two-sided, floored at 1 / iterations_used
    p_at_floor: bool  # True when no resample crossed zero: p < 1/I, reported as 1/I
    pct_change: float  # 100 · mean Δ / value_a


@dataclass
class PairedBootstrap:
    """Paired bootstrap of A vs B over every metric."""

    iterations: int
    iterations_used: int
    skipped_one_class: int
    seed: int
    threshold_rule: str
    threshold_a: float
    threshold_b: float
    deltas: dict[str, Delta]
    samples: dict[str, np.ndarray] = field(repr=False)  # metric -> [iterations_used] Δ

    @property
    def p_floor(self) -> float:
        return 1.0 / max(self.iterations_used, 1)


def two_sided_p(delta: np.ndarray) -> tuple[float, bool]:
    """2 × min(share Δ ≤ 0, share Δ ≥ 0), capped at 1 and floored at 1/len(delta)."""
    p = min(1.0, 2.0 * min(np.mean(delta <= 0), np.mean(delta >= 0)))
    floor = 1.0 / len(delta)
    return (floor, True) if p < floor else (float(p), False)


def paired_bootstrap(
    label,
    score_a,
    score_b,
    iterations: int = 2000,
    seed: int = 0,
    threshold_rule: str = "fixed",
    fixed_threshold: float = 0.5,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    clusters: np.ndarray | None = None,
    backend: str | None = None,
) -> PairedBootstrap:
    """Paired bootstrap of Δ = metric(B) − metric(A) for AUROC, AUPRC, accuracy, precision,
    recall, F1, specificity and Brier score.

    Thresholds are chosen once per model on the full data by ``threshold_rule`` and held
    fixed across resamples. Resamples containing a single class are skipped and counted.
    ``clusters`` ([n] int): resample clusters (subjects) instead of rows. ``backend``: the C++
    core or the numpy reference (ehrfast.backends), the same resamples either way.
    """
    y, sa = check_binary(label, score_a)
    _, sb = check_binary(label, score_b)
    if iterations < 1:
        raise InvalidInputError(f"iterations must be positive, got {iterations}")
    ta = choose_threshold(y, sa, threshold_rule, fixed_threshold)
    tb = choose_threshold(y, sb, threshold_rule, fixed_threshold)
    ma, mb = resampled_metrics(y, [(sa, ta), (sb, tb)], iterations, seed, memory_bytes, clusters, backend)
    valid = ~np.isnan(ma["auroc"])  # the labels are shared: a one-class resample is one for both models
    skipped = int((~valid).sum())
    samples = {m: (mb[m] - ma[m])[valid] for m in BOOTSTRAP_METRICS}
    used = len(samples["auroc"])
    if used == 0:
        raise InvalidInputError("every bootstrap resample held a single class; too few positives or negatives")
    full_a = model_metrics(y, sa, threshold_rule, fixed_threshold)
    full_b = model_metrics(y, sb, threshold_rule, fixed_threshold)
    deltas = {}
    for m, d in samples.items():
        va, vb = getattr(full_a, m), getattr(full_b, m)
        p, at_floor = two_sided_p(d)
        lo, hi = np.percentile(d, [2.5, 97.5])
        mean = float(d.mean())
        deltas[m] = Delta(m, va, vb, mean, float(lo), float(hi), p, at_floor, 100 * mean / va if va else float("nan"))
    return PairedBootstrap(iterations, used, skipped, seed, threshold_rule, ta, tb, deltas, samples)


@dataclass(frozen=True)
class PRDifference:
    """Precision(B) − precision(A) on a fixed recall grid: full data, bootstrap mean and band."""

    recall: np.ndarray  # [g]
    precision_a: np.ndarray  # [g] full data, interpolated
    precision_b: np.ndarray
    delta: np.ndarray  # [g] full data
    mean: np.ndarray  # [g] bootstrap mean
    ci_low: np.ndarray
    ci_high: np.ndarray
    iterations_used: int


def pr_difference(label, score_a, score_b, iterations: int = 2000, seed: int = 0, recall_grid=RECALL_GRID, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                  clusters: np.ndarray | None = None) -> PRDifference:
    y, sa = check_binary(label, score_a)
    _, sb = check_binary(label, score_b)
    grid = np.asarray(recall_grid, np.float64)
    ra, rb = RankedScores(y, sa), RankedScores(y, sb)
    ones = np.ones((1, len(y)))
    pa, pb = ra.interpolated_precision(ones, grid)[0], rb.interpolated_precision(ones, grid)[0]
    deltas = []
    for w in resample_counts(len(y), iterations, seed, memory_bytes, clusters):
        neg = w @ (~y).astype(float)
        keep = (neg > 0) & (neg < w.sum(1))
        d = rb.interpolated_precision(w[keep], grid) - ra.interpolated_precision(w[keep], grid)
        deltas.append(d)
    d = np.concatenate(deltas)
    lo, hi = np.percentile(d, [2.5, 97.5], axis=0)
    return PRDifference(grid, pa, pb, pb - pa, d.mean(0), lo, hi, len(d))


def auroc_ci(label, score, iterations: int = 1000, seed: int = 0, memory_bytes: int = DEFAULT_MEMORY_BYTES,
             clusters: np.ndarray | None = None) -> tuple[float, float, float]:
    """AUROC with a 95% percentile bootstrap interval: (auroc, low, high)."""
    y, s = check_binary(label, score)
    ranked = RankedScores(y, s)
    aucs = np.concatenate([ranked.auroc_auprc(w)[0] for w in resample_counts(len(y), iterations, seed, memory_bytes, clusters)])
    aucs = aucs[~np.isnan(aucs)]
    full = float(ranked.auroc_auprc(np.ones((1, len(y))))[0][0])
    if len(aucs) == 0:
        return full, float("nan"), float("nan")
    lo, hi = np.percentile(aucs, [2.5, 97.5])
    return full, float(lo), float(hi)
