"""The C++ PRS kernels against a numpy reference, on random packed bytes (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrfast.backends import core

pytestmark = pytest.mark.skipif(core is None, reason="C++ core not built")


def reference_values(packed: np.ndarray, n_samples: int, packed_row: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """[n_rows, n_samples] lut[r][code of sample s in packed row packed_row[r]]."""
    s = np.arange(n_samples)
    codes = (packed[packed_row][:, s // 4] >> (2 * (s % 4))) & 3
    return np.take_along_axis(lut, codes.astype(np.int64), 1)


@st.composite
def blocks(draw):
    n_samples, n_rows, n_traits = draw(st.integers(1, 70)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    packed = rng.integers(0, 256, (n_rows + 3, (n_samples + 3) // 4), dtype=np.uint8)
    packed_row = rng.integers(0, n_rows + 3, n_rows).astype(np.int32)
    lut = rng.standard_normal((n_rows, 4))
    weight = rng.standard_normal((n_rows, n_traits)) * (rng.random((n_rows, n_traits)) < draw(st.sampled_from([0.2, 1.0])))
    return packed, n_samples, packed_row, lut, weight


@given(blocks())
@settings(max_examples=200, deadline=None)
def test_dense_kernel_matches_reference(block):
    packed, n, packed_row, lut, weight = block
    out = np.full((n, weight.shape[1]), 0.5)  # accumulates into what is there
    core.score_dense(packed, n, packed_row, lut, weight, out)
    expected = 0.5 + reference_values(packed, n, packed_row, lut).T @ weight
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@given(blocks())
@settings(max_examples=200, deadline=None)
def test_sparse_kernel_matches_reference(block):
    packed, n, packed_row, lut, weight = block
    trait, row = np.nonzero(weight.T)  # pairs ordered by trait
    trait_off = np.r_[0, np.cumsum(np.bincount(trait, minlength=weight.shape[1]))].astype(np.int64)
    out = np.full((weight.shape[1], n), -1.0)
    core.score_sparse(packed, n, packed_row, lut, trait_off, row.astype(np.int32), weight[row, trait], out)
    expected = -1.0 + (reference_values(packed, n, packed_row, lut).T @ weight).T
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def reference_counts(packed, n, packed_row, named_lut, trait_off, row):
    """(named, called) [n_traits, n_samples]: the count kernel's sums, pair by pair."""
    named_values = reference_values(packed, n, packed_row, named_lut.astype(np.float64))
    called_values = reference_values(packed, n, packed_row, np.broadcast_to([1.0, 0.0, 1.0, 1.0], (len(packed_row), 4)))
    trait = np.repeat(np.arange(len(trait_off) - 1), np.diff(trait_off))
    named, called = np.zeros((len(trait_off) - 1, n)), np.zeros((len(trait_off) - 1, n))
    np.add.at(named, trait, named_values[row])
    np.add.at(called, trait, called_values[row])
    return named, called


@given(blocks())
@settings(max_examples=200, deadline=None)
def test_count_kernel_matches_reference(block):
    packed, n, packed_row, _, weight = block
    named_lut = np.random.default_rng(n).integers(0, 3, (len(packed_row), 4)).astype(np.uint8)
    trait, row = np.nonzero(weight.T)
    trait_off = np.r_[0, np.cumsum(np.bincount(trait, minlength=weight.shape[1]))].astype(np.int64)
    named, called = np.full((weight.shape[1], n), 3.0), np.full((weight.shape[1], n), 1.0)  # accumulates into what is there
    core.score_counts(packed, n, packed_row, named_lut, trait_off, row.astype(np.int32), named, called)
    expected_named, expected_called = reference_counts(packed, n, packed_row, named_lut, trait_off, row)
    np.testing.assert_array_equal(named, 3.0 + expected_named)  # integers: exact
    np.testing.assert_array_equal(called, 1.0 + expected_called)


def test_count_kernel_flushes_before_its_16_bit_lanes_wrap():
    # 40,000 pairs of one trait, each counting 2 for every sample: past 2^16 in a lane unless flushed
    n = 7
    packed = np.zeros((3, 2), np.uint8)  # code 00 everywhere (padding too)
    named_lut = np.array([[2, 0, 1, 0]] * 3, np.uint8)
    row = np.zeros(40_000, np.int32)
    named, called = np.zeros((1, n)), np.zeros((1, n))
    core.score_counts(packed, n, np.arange(3, dtype=np.int32), named_lut, np.array([0, len(row)], np.int64), row, named, called)
    np.testing.assert_array_equal(named, np.full((1, n), 80_000.0))
    np.testing.assert_array_equal(called, np.full((1, n), 40_000.0))


def test_count_kernel_rejects_what_is_not_a_count():
    packed = np.zeros((1, 1), np.uint8)
    with pytest.raises(ValueError, match="0, 1 or 2"):
        core.score_counts(packed, 4, np.zeros(1, np.int32), np.array([[3, 0, 1, 0]], np.uint8), np.array([0, 1], np.int64),
                          np.zeros(1, np.int32), np.zeros((1, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="row"):
        core.score_counts(packed, 4, np.zeros(1, np.int32), np.array([[2, 0, 1, 0]], np.uint8), np.array([0, 1], np.int64),
                          np.array([5], np.int32), np.zeros((1, 4)), np.zeros((1, 4)))


def test_kernels_reject_bad_shapes():
    packed = np.zeros((2, 1), np.uint8)
    lut = np.zeros((2, 4))
    with pytest.raises(ValueError, match="packed_row"):
        core.score_dense(packed, 4, np.array([0, 5], np.int32), lut, np.zeros((2, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="n_samples, n_traits"):
        core.score_dense(packed, 4, np.array([0, 1], np.int32), lut, np.zeros((2, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="trait_off"):
        core.score_sparse(packed, 4, np.array([0, 1], np.int32), lut, np.array([0, 3], np.int64), np.array([0, 1], np.int32),
                          np.zeros(2), np.zeros((1, 4)))
