"""Paired bootstrap speed: ehrfast's vectorized engine vs the straightforward loop over
scikit-learn, same data, same run. The genomics paper's T2D cohort size: 12,009 subjects,
1,720 positives, 2,000 iterations, all metrics.

    pytest benchmarks/test_evaluate_bench.py --benchmark-only --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import numpy as np
import pytest
from machine import cpu_line  # benchmarks/machine.py

from ehrfast.evaluate.bootstrap import paired_bootstrap

skm = pytest.importorskip("sklearn.metrics")

N, N_POS, ITERATIONS = 12_009, 1_720, 2_000


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(0)
    y = np.zeros(N, bool)
    y[rng.choice(N, N_POS, replace=False)] = True
    z = rng.standard_normal(N)
    a = 1 / (1 + np.exp(-(z + 0.8 * y - 2)))
    b = 1 / (1 + np.exp(-(z + 1.0 * y - 2 + 0.3 * rng.standard_normal(N))))
    return y, a, b


def sklearn_loop(y, a, b, iterations, seed=0, threshold=0.5):
    """What people write today: resample, call scikit-learn for every metric and model."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(iterations):
        idx = rng.integers(0, len(y), len(y))
        yy = y[idx]
        if yy.all() or not yy.any():
            continue
        row = []
        for s in (a[idx], b[idx]):
            pred = s >= threshold
            row.append([
                skm.roc_auc_score(yy, s),
                skm.average_precision_score(yy, s),
                skm.accuracy_score(yy, pred),
                skm.precision_score(yy, pred, zero_division=0),
                skm.recall_score(yy, pred, zero_division=0),
                skm.f1_score(yy, pred, zero_division=0),
                skm.recall_score(~yy, ~pred, zero_division=0),
                skm.brier_score_loss(yy, s),
            ])
        deltas.append(np.subtract(row[1], row[0]))
    return np.array(deltas)


def test_bootstrap_ehrfast(benchmark, cohort):
    benchmark.group = "paired bootstrap, 12,009 subjects x 2,000 iterations"
    benchmark.extra_info["machine"] = cpu_line()
    print(cpu_line())
    y, a, b = cohort
    res = benchmark.pedantic(paired_bootstrap, args=(y, a, b), kwargs={"iterations": ITERATIONS, "seed": 0}, rounds=3, iterations=1)
    assert res.iterations_used == ITERATIONS


def test_bootstrap_numpy_reference(benchmark, cohort):
    """The chunked numpy engine (the reference the C++ core is tested against)."""
    benchmark.group = "paired bootstrap, 12,009 subjects x 2,000 iterations"
    y, a, b = cohort
    res = benchmark.pedantic(paired_bootstrap, args=(y, a, b), kwargs={"iterations": ITERATIONS, "seed": 0, "backend": "reference"},
                             rounds=3, iterations=1)
    assert res.iterations_used == ITERATIONS


def test_bootstrap_sklearn_loop(benchmark, cohort):
    benchmark.group = "paired bootstrap, 12,009 subjects x 2,000 iterations"
    y, a, b = cohort
    out = benchmark.pedantic(sklearn_loop, args=(y, a, b, ITERATIONS), rounds=1, iterations=1)
    assert out.shape == (ITERATIONS, 8)
