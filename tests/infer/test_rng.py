"""Philox4x32-10 uniforms: Random123's known answers, and the CUDA extension's code agrees bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrfast.backends import cuda_module
from ehrfast.infer.rng import philox4x32, uniform_pair, uniforms

# Random123's kat_vectors for philox4x32_10: (counter, key, output)
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
cuda_ext = cuda_module()


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox4x32(counter, key)) == expected
    if cuda_ext is not None:
        assert cuda_ext.philox4x32_10(*counter, *key) == expected


def test_uniforms_are_uniform_and_independent_of_batching():
    subjects = np.arange(200_000) + 10**17  # 18-digit MEDS subject ids
    u1, u2 = uniform_pair(11, subjects, 3, 7)
    assert 0 <= u1.min() and u1.max() < 1 and 0 <= u2.min() and u2.max() < 1
    assert abs(u1.mean() - 0.5) < 0.005 and abs(u2.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u1, u2)[0, 1]) < 0.01
    one = uniform_pair(11, subjects[12345], 3, 7)
    assert one[0] == u1[12345] and one[1] == u2[12345]
    assert uniforms(11, subjects[:5], 3, 7, 1).tolist() == u2[:5].tolist()
    assert not np.array_equal(uniform_pair(12, subjects[:100], 3, 7)[0], u1[:100])  # the seed matters
    assert not np.array_equal(uniform_pair(11, subjects[:100], 3, 8)[0], u1[:100])  # so does the step
    with pytest.raises(ValueError, match="stream"):
        uniforms(0, 1, 0, 0, 2)


@pytest.mark.skipif(cuda_ext is None, reason="ehrfast._cuda not built")
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), subject=st.integers(-(2**63), 2**63 - 1), sample=st.integers(0, 2**31 - 1),
       step=st.integers(0, 2**31 - 1))
def test_kernel_uniforms_equal_numpy(seed, subject, sample, step):
    expected = uniform_pair(seed, subject, sample, step)
    assert cuda_ext.uniform_pair(seed, subject, sample, step) == (float(expected[0]), float(expected[1]))
