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
