"""The C++ bootstrap engine against the numpy reference: the same resamples (numpy's own
draws, bit for bit) and the same metrics of each resample."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ehrfast.backends import core
from ehrfast.evaluate.bootstrap import paired_bootstrap, resample_counts, resampled_metrics
from ehrfast.evaluate.metrics import BOOTSTRAP_METRICS

pytestmark = pytest.mark.skipif(core is None, reason="C++ core not built")


@pytest.mark.parametrize("k,iterations,seed", [(1, 4, 0), (2, 9, 1), (57, 13, 7), (12_009, 3, 0)])
def test_counts_are_numpys_draws(k, iterations, seed):
    rng = np.random.default_rng(seed)
    with rng.bit_generator.lock:
        first = core.bootstrap_counts(rng.bit_generator.capsule, k, iterations - 1)
        last = core.bootstrap_counts(rng.bit_generator.capsule, k, 1)  # the stream goes on across calls
    ref = np.concatenate(list(resample_counts(k, iterations, seed, memory_bytes=2**30)))
    np.testing.assert_array_equal(np.concatenate([first, last]), ref)


def test_counts_refuse_what_is_not_a_bit_generator():
    import datetime

    with pytest.raises(ValueError, match="BitGenerator"):
        core.bootstrap_counts(datetime.datetime_CAPI, 3, 2)  # a capsule of another name
    with pytest.raises(TypeError):
        core.bootstrap_counts(np.zeros(3), 3, 2)


@st.composite
def cohort(draw):
    n = draw(st.integers(2, 60))
    label = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    assume(0 < label.sum() < n)
    levels = draw(st.integers(1, 8))  # few levels: many ties
    scores = [np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels for _ in range(2)]
    clusters = None
    if draw(st.booleans()):
        clusters = np.array(draw(st.lists(st.integers(0, max(0, n // 3)), min_size=n, max_size=n)))
    return label, scores, clusters


@settings(max_examples=60, deadline=None)
@given(cohort(), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_core_metrics_equal_reference(data, seed, threshold):
    label, scores, clusters = data
    models = [(s, threshold) for s in scores]
    fast = resampled_metrics(label, models, 25, seed, clusters=clusters, backend="fast")
    ref = resampled_metrics(label, models, 25, seed, clusters=clusters, backend="reference")
    for f, r in zip(fast, ref):
        for m in BOOTSTRAP_METRICS:
            np.testing.assert_allclose(f[m], r[m], rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=m)


def test_paired_bootstrap_same_either_way_in_chunks():
    rng = np.random.default_rng(4)
    y = rng.random(3000) < 0.15
    a, b = rng.random(3000) + 0.3 * y, np.round(rng.random(3000) + 0.5 * y, 2)
    fast = paired_bootstrap(y, a, b, 300, seed=9, memory_bytes=4 * 3000 * 7, backend="fast")  # chunks of 7 resamples
    ref = paired_bootstrap(y, a, b, 300, seed=9, backend="reference")
    assert fast.iterations_used == ref.iterations_used == 300
    for m in BOOTSTRAP_METRICS:
        # differences of metrics summed in another order: absolute agreement to rounding
        np.testing.assert_allclose(fast.samples[m], ref.samples[m], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose([fast.deltas[m].ci_low, fast.deltas[m].ci_high], [ref.deltas[m].ci_low, ref.deltas[m].ci_high], atol=1e-13)
