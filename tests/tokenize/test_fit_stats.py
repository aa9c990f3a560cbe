"""The C++ fitting helpers against numpy on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ehrfast._backend import core
from ehrfast.tokenize import reference

pytestmark = pytest.mark.skipif(core is None, reason="C++ core not built")


@given(st.integers(1, 6), st.integers(0, 300), st.integers(0, 10_000), st.integers(1, 5))
@settings(max_examples=200, deadline=None)
def test_grouped_quantiles_match_numpy(n_groups, n, seed, min_count):
    rng = np.random.default_rng(seed)
    group = rng.integers(-1, n_groups, n).astype(np.int32)
    values = np.round(rng.standard_normal(n), rng.integers(0, 3))  # ties
    values[rng.random(n) < 0.1] = np.nan
    probs = [i / 10 for i in range(1, 10)]
    ours = core.grouped_quantiles(group, values, n_groups, probs, min_count)
    ref = reference.grouped_quantiles_reference(group, values, n_groups, probs, min_count)
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)


@given(st.integers(1, 5), arrays(np.float64, st.integers(0, 200), elements=st.floats(0, 1e12)), st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_grouped_mean_median_match_numpy(n_groups, values, seed):
    group = np.random.default_rng(seed).integers(0, n_groups, len(values)).astype(np.int32)
    c, m, med = core.grouped_mean_median(group, values, n_groups)
    rc, rm, rmed = reference.grouped_mean_median_reference(group, values, n_groups)
    np.testing.assert_array_equal(c, rc)
    np.testing.assert_allclose(m, rm, rtol=1e-12)
    np.testing.assert_array_equal(med, rmed)


@given(st.lists(st.integers(0, 12), min_size=1, max_size=30), st.integers(1, 8), st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_counts_match_numpy(sizes, n_entries, seed):
    rng = np.random.default_rng(seed)
    seg = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    entry = rng.integers(-2, n_entries, seg[-1]).astype(np.int32)
    time = np.where(rng.random(seg[-1]) < 0.2, np.iinfo(np.int64).min, rng.integers(0, 10**12, seg[-1]))
    np.testing.assert_array_equal(core.code_subject_counts(entry, seg, n_entries), reference.code_subject_counts_reference(entry, seg, n_entries))
    np.testing.assert_array_equal(core.event_counts(time, entry, seg, -2), reference.event_counts_reference(time, entry, seg, -2))


def _program(**over):
    args = dict(pre_off=np.array([0, 1]), pre=np.array([3], np.int32), post_off=np.array([0, 0]), post=np.zeros(0, np.int32),
                cut_off=np.array([0, 0]), cuts=np.zeros(0), interval_lower=np.array([10]), interval_token=np.array([4], np.int32),
                q_first=5, n_quantiles=10, timeline_end=2, age_tokens=False)
    return core.TimelineProgram(**{**args, **over})


def test_timeline_program_rejects_bad_inputs():
    with pytest.raises(ValueError, match="strictly increasing"):
        _program(interval_lower=np.array([10, 10]), interval_token=np.array([4, 4], np.int32))
    with pytest.raises(ValueError, match="offsets do not cover"):
        _program(pre_off=np.array([0, 2]))
    prog = _program()
    rows = dict(time=np.zeros(2, np.int64), entry=np.array([0, 5], np.int32), value=np.zeros(2, np.float32), seg=np.array([0, 2]), keep=np.ones(1, np.uint8))
    with pytest.raises(ValueError, match="row 1 has entry 5 outside the code table"):
        prog.measure(**rows)
    rows["entry"] = np.zeros(2, np.int32)
    with pytest.raises(ValueError, match="seg"):
        prog.measure(**{**rows, "seg": np.array([0, 3])})
    n_tokens, n_intervals, _, _ = prog.measure(**rows)
    assert n_tokens.tolist() == [3]  # two code tokens and TIMELINE_END
    out_t, out_s = np.empty(3, np.int32), np.empty(3, np.int64)
    empty_i, empty_f = np.empty(0, np.int32), np.empty(0)
    prog.write(**rows, token_offsets=np.array([0, 3]), interval_offsets=np.array([0, 0]), out_tokens=out_t, out_times=out_s, out_bins=empty_i, out_shares=empty_f)
    assert out_t.tolist() == [3, 3, 2]
    # offsets that do not match the rows: refused, nothing written out of bounds
    small_t, small_s = np.empty(2, np.int32), np.empty(2, np.int64)
    with pytest.raises(ValueError, match="do not match"):
        prog.write(**rows, token_offsets=np.array([0, 2]), interval_offsets=np.array([0, 0]), out_tokens=small_t, out_times=small_s, out_bins=empty_i, out_shares=empty_f)
    with pytest.raises(ValueError, match="writable C-contiguous"):
        prog.write(**rows, token_offsets=np.array([0, 3]), interval_offsets=np.array([0, 0]), out_tokens=np.empty(3, np.int64), out_times=out_s, out_bins=empty_i, out_shares=empty_f)
