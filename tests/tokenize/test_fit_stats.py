"""The C++ reading and fitting helpers against their numpy references on random inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ehrfast.backends import core
from ehrfast.data.meds import STATIC_TIME, MedsValidationError, numeric_values, subject_segments, time_values
from ehrfast.tokenize import reference

pytestmark = pytest.mark.skipif(core is None, reason="C++ core not built")


def _random_shard(rng, sizes, n_codes):
    """(time, code, raw_of_code, value, seg, keep) with a dictionary of up to 8 codes."""
    seg = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    n = int(seg[-1])
    raw_of_code = rng.integers(-1, n_codes + 1, 8).astype(np.int32)  # includes ids outside [0, n_codes)
    code = rng.integers(0, 8, n).astype(np.int32)
    time = np.where(rng.random(n) < 0.2, STATIC_TIME, rng.integers(0, 10**12, n))
    value = np.round(rng.standard_normal(n), rng.integers(0, 3)).astype(np.float32)  # ties
    value[rng.random(n) < 0.3] = np.nan
    value[rng.random(n) < 0.05] = -0.0
    keep = (rng.random(len(sizes)) < 0.8).astype(np.uint8)
    return time, code, raw_of_code, value, seg, keep


@given(st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=20), min_size=1, max_size=3), st.integers(1, 6),
       st.integers(0, 10_000), st.integers(1, 5))
@settings(max_examples=200, deadline=None)
def test_train_statistics_match_reference(shards, n_codes, seed, min_count):
    rng = np.random.default_rng(seed)
    ours, ref = core.TrainStatistics(), reference.CodeStatistics()
    for k, sizes in enumerate(shards):
        rows = _random_shard(rng, sizes, n_codes + k)  # later shards bring new codes
        birth = int(rng.integers(-3, n_codes))
        ours.add(*rows, n_codes + k, birth)
        ref.add(*rows, n_codes + k, birth)
    np.testing.assert_array_equal(ours.subject_counts(), ref.subject_counts())
    np.testing.assert_array_equal(ours.on_static_row(), ref.on_static_row())
    probs = [i / 10 for i in range(1, 10)]
    for a, b in zip(ours.take_quantiles(probs, min_count), ref.take_quantiles(probs, min_count)):
        np.testing.assert_array_equal(a, b)


@given(st.integers(0, 300), st.integers(0, 40), st.floats(0, 1), st.booleans(), st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_null_filling_matches_reference(n, cut, null_rate, double, seed):
    """Arrow chunks that start mid-bitmap (sliced) and with or without nulls."""
    rng = np.random.default_rng(seed)
    nulls = rng.random(n) < null_rate
    times = pa.array(np.where(nulls, None, rng.integers(-10**15, 10**15, n)).tolist(), pa.timestamp("us"))
    values = pa.array(np.where(nulls, None, rng.standard_normal(n)).tolist(), pa.float64() if double else pa.float32())
    for column in (times, values):
        chunked = pa.chunked_array([column[:cut], column[cut:]] if cut < n else [column], column.type)
        read = time_values if column is times else numeric_values
        np.testing.assert_array_equal(read(chunked, "cpp"), read(chunked, "python"))


@given(st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 5))), max_size=30))
@settings(max_examples=300, deadline=None)
def test_subject_segments_match_reference(rows):
    sid = np.array([s for s, _ in rows], np.int64)
    time = np.array([STATIC_TIME if t is None else t for _, t in rows], np.int64)
    results = []
    for backend in ("cpp", "python"):
        try:
            chunks = [sid[:len(sid) // 3], sid[len(sid) // 3:]]
            seg, ids = subject_segments("f.parquet", chunks, time, backend)
            assert ids.tolist() == sid[seg[:-1]].tolist()
            results.append(seg.tolist())
        except MedsValidationError as exc:
            results.append(str(exc))
    assert results[0] == results[1]
    order_ok = all((sid[i], time[i]) >= (sid[i - 1], time[i - 1]) for i in range(1, len(rows)))
    assert isinstance(results[0], list) == order_ok


@given(st.integers(1, 5), st.lists(arrays(np.float64, st.integers(0, 100), elements=st.floats(0, 1e12)), max_size=3), st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_interval_gaps_match_numpy(n_bins, chunks, seed):
    rng = np.random.default_rng(seed)
    ours, ref = core.IntervalGaps(n_bins), reference.IntervalGaps(n_bins)
    for shares in chunks:
        bins = rng.integers(0, n_bins, len(shares)).astype(np.int32)
        ours.add(bins, shares)
        ref.add(bins, shares)
    c, m, med = ours.take()
    rc, rm, rmed = ref.take()
    np.testing.assert_array_equal(c, rc)
    np.testing.assert_allclose(m, rm, rtol=1e-12)
    np.testing.assert_array_equal(med, rmed)
    with pytest.raises(ValueError, match="out of range"):
        ours.add(np.array([n_bins], np.int32), np.zeros(1))


@given(st.lists(st.integers(0, 12), min_size=1, max_size=30), st.integers(1, 8), st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_event_counts_match_numpy(sizes, n_entries, seed):
    rng = np.random.default_rng(seed)
    seg = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    entry_of_code = rng.integers(-2, n_entries, 6).astype(np.int32)
    code = rng.integers(0, 6, seg[-1]).astype(np.int32)
    time = np.where(rng.random(seg[-1]) < 0.2, STATIC_TIME, rng.integers(0, 10**12, seg[-1]))
    args = (time, code, entry_of_code, seg, -2)
    np.testing.assert_array_equal(core.event_counts(*args), reference.event_counts_reference(*args))
    if len(code):
        with pytest.raises(ValueError, match="code index 6 outside the dictionary of 6 codes"):
            core.event_counts(time, np.full(len(code), 6, np.int32), entry_of_code, seg, -2)


def _program(**over):
    args = dict(pre_off=np.array([0, 1]), pre=np.array([3], np.int32), post_off=np.array([0, 0]), post=np.zeros(0, np.int32),
                cut_off=np.array([0, 0]), cuts=np.zeros(0), interval_lower=np.array([10]), interval_token=np.array([4], np.int32),
                q_first=5, n_quantiles=10, timeline_end=2, age_tokens=False)
    args = {**args, **over}
    table = core.CodeTableArrays(**{k: args[k] for k in ("pre_off", "pre", "post_off", "post", "cut_off", "cuts")})
    rules = core.TimelineRules(**{k: args[k] for k in ("interval_lower", "interval_token", "q_first", "n_quantiles", "timeline_end",
                                                       "age_tokens")})
    return core.TimelineProgram(table, rules)


def test_timeline_program_rejects_bad_inputs():
    with pytest.raises(ValueError, match="strictly increasing"):
        _program(interval_lower=np.array([10, 10]), interval_token=np.array([4, 4], np.int32))
    with pytest.raises(ValueError, match="offsets do not cover"):
        _program(pre_off=np.array([0, 2]))
    prog = _program()
    rows = dict(time=np.zeros(2, np.int64), code=np.array([0, 1], np.int32), entry_of_code=np.array([0, 5], np.int32),
                value=np.zeros(2, np.float32), seg=np.array([0, 2]), keep=np.ones(1, np.uint8))
    with pytest.raises(ValueError, match="code 1 maps to entry 5 outside the code table"):
        prog.tokenize(**rows)
    with pytest.raises(ValueError, match="row 1 has code index 2"):
        prog.tokenize(**{**rows, "code": np.array([0, 2], np.int32)})
    rows["entry_of_code"] = np.zeros(2, np.int32)
    with pytest.raises(ValueError, match="seg"):
        prog.tokenize(**{**rows, "seg": np.array([0, 3])})
    with pytest.raises(ValueError, match="keep"):
        prog.tokenize(**{**rows, "keep": np.ones(2, np.uint8)})
    n_tokens, static_lengths, births, tokens, times = prog.tokenize(**rows)
    assert n_tokens.tolist() == [3] and static_lengths.tolist() == [0] and births.tolist() == [STATIC_TIME]
    assert tokens.tolist() == [3, 3, 2] and times.tolist() == [0, 0, 0]  # two code tokens and TIMELINE_END
    with pytest.raises(ValueError, match="both file descriptors"):
        prog.tokenize(**rows, token_fd=1)
    with pytest.raises(ValueError, match="gaps has 3 bins"):
        prog.tokenize(**rows, gaps=core.IntervalGaps(3))


def test_timeline_program_blocks_in_order_to_memory_and_files(tmp_path):
    """Many subjects: several blocks, passed on in subject order, intervals included."""
    prog = _program()
    n_subjects = 50_000
    seg = np.arange(0, 3 * n_subjects + 1, 3, dtype=np.int64)
    time = np.tile(np.array([0, 5, 15], np.int64), n_subjects) + np.repeat(np.arange(n_subjects) * 100, 3)
    rows = dict(time=time, code=np.zeros(len(time), np.int32), entry_of_code=np.zeros(1, np.int32), value=np.zeros(len(time), np.float32), seg=seg,
                keep=(np.arange(n_subjects) % 7 != 0).astype(np.uint8))
    kept = np.flatnonzero(rows["keep"])
    gaps = core.IntervalGaps(1)
    n_tokens, _, _, tokens, times = prog.tokenize(**rows, gaps=gaps)
    assert n_tokens.tolist() == [5] * len(kept)
    assert tokens.tolist() == [3, 3, 4, 3, 2] * len(kept)  # 5 -> 15: one interval token of the single 10-µs bin
    np.testing.assert_array_equal(times, (np.array([0, 5, 15, 15, 15]) + kept[:, None] * 100).ravel())
    count, mean, median = gaps.take()
    assert count.tolist() == [len(kept)] and mean.tolist() == [10.0] and median.tolist() == [10.0]
    with open(tmp_path / "t", "wb") as ft, open(tmp_path / "s", "wb") as fs:
        assert prog.tokenize(**rows, token_fd=ft.fileno(), time_fd=fs.fileno())[3:] == (None, None)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "t", np.int32), tokens)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "s", np.int64), times)
    with open(tmp_path / "t", "rb") as ro, pytest.raises(OSError):  # a file open for reading only
        prog.tokenize(**rows, token_fd=ro.fileno(), time_fd=ro.fileno())


@given(st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=20), min_size=1, max_size=4), st.integers(1, 6),
       st.integers(0, 10_000), st.integers(1, 5))
@settings(max_examples=150, deadline=None)
def test_merged_partials_equal_one_accumulation(shards, n_codes, seed, min_count):
    """The cluster fit: each shard accumulated alone (its own code ids), its values taken, then
    merged into one accumulator under a shuffled id map, gives the statistics of adding the
    shards to one accumulator — in the C++ core and in the reference, which agree."""
    rng = np.random.default_rng(seed)
    probs = [i / 10 for i in range(1, 10)]
    n_all = n_codes + len(shards)
    results = []
    global_of_local = rng.permutation(n_all).astype(np.int32)  # the reducer's ids of the shards' ids
    for make in (core.TrainStatistics, reference.CodeStatistics):
        rng_k = np.random.default_rng(seed)
        whole, merged = make(), make()
        for k, sizes in enumerate(shards):
            time, code, raw_local, value, seg, keep = _random_shard(rng_k, sizes, n_codes + k)
            birth = int(rng_k.integers(-3, n_codes))
            valid = (raw_local >= 0) & (raw_local < n_codes + k)
            raw_global = np.where(valid, global_of_local[np.clip(raw_local, 0, n_all - 1)], -1).astype(np.int32)
            whole.add(time, code, raw_global, value, seg, keep, n_all, int(global_of_local[birth]) if birth >= 0 else birth)
            part = make()
            part.add(time, code, raw_local, value, seg, keep, n_codes + k, birth)
            offsets, values = part.take_values()
            merged.merge(global_of_local[: n_codes + k], part.subject_counts(), part.on_static_row(), offsets, values, n_all)
        for a, b in ((whole.subject_counts(), merged.subject_counts()), (whole.on_static_row(), merged.on_static_row())):
            np.testing.assert_array_equal(a, b)
        q_whole, q_merged = whole.take_quantiles(probs, min_count), merged.take_quantiles(probs, min_count)
        for a, b in zip(q_whole, q_merged):
            np.testing.assert_array_equal(a, b)
        results.append(q_merged)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_merge_refuses_an_id_outside_the_codes():
    stats = core.TrainStatistics()
    with pytest.raises(ValueError, match="outside"):
        stats.merge(np.array([3], np.int32), np.array([1], np.int64), np.array([0], np.uint8), np.array([0, 0], np.int64),
                    np.zeros(0, np.float32), 2)
    with pytest.raises(ValueError, match="value_offsets"):
        stats.merge(np.array([0], np.int32), np.array([1], np.int64), np.array([0], np.uint8), np.array([0, 2], np.int64),
                    np.zeros(1, np.float32), 2)


@given(st.lists(st.lists(st.integers(0, 5), max_size=30), min_size=1, max_size=4), st.integers(0, 1000))
@settings(max_examples=100, deadline=None)
def test_gap_shares_taken_and_added_give_the_same_moments(parts, seed):
    rng = np.random.default_rng(seed)
    n_bins = 6
    for make in (core.IntervalGaps, reference.IntervalGaps):
        whole, reduced = make(n_bins), make(n_bins)
        for bins in parts:
            bins = np.asarray(bins, np.int32)
            shares = np.round(rng.random(len(bins)) * 1e9)  # whole µs: sums exact in any order
            whole.add(bins, shares)
            part = make(n_bins)
            part.add(bins, shares)
            taken = part.take_shares()
            np.testing.assert_array_equal(np.sort(taken[0]), np.sort(bins))
            reduced.add(*taken)
        for a, b in zip(whole.take(), reduced.take()):
            np.testing.assert_array_equal(a, b)
