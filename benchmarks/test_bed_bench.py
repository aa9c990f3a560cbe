"""PLINK .bed codec speed: C++ core vs the numpy reference, same run.

    pytest benchmarks/test_bed_bench.py --benchmark-only --benchmark-group-by=param:op
"""

from __future__ import annotations

import numpy as np
import pytest

from ehrfast.genomics.bed import pack_bed, unpack_bed

N_VARIANTS, N_SAMPLES = 2_000, 20_000  # 40 M genotypes, 10 MB packed


@pytest.fixture(scope="module")
def genotypes():
    rng = np.random.default_rng(0)
    return rng.integers(-1, 3, size=(N_VARIANTS, N_SAMPLES)).astype(np.int8)


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize("op", ["pack", "unpack"])
def test_bed_codec(benchmark, genotypes, backend, op):
    benchmark.group = op
    if op == "pack":
        out = benchmark(pack_bed, genotypes, backend=backend)
        assert out.shape == (N_VARIANTS, N_SAMPLES // 4)
    else:
        packed = pack_bed(genotypes, backend="cpp")
        out = benchmark(unpack_bed, packed, N_SAMPLES, backend=backend)
        np.testing.assert_array_equal(out[:5], genotypes[:5])
    benchmark.extra_info["genotypes_per_call"] = N_VARIANTS * N_SAMPLES
