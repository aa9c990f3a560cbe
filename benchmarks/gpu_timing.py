"""What the GPU benchmark scripts share: one way to time a CUDA call."""

from __future__ import annotations


def timed_ms(fn) -> float:
    """Median of CUDA-event timings of ``fn()`` in ms (``triton.testing.do_bench``: warm-up,
    L2 flushed between runs)."""
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=200, return_mode="median"))
