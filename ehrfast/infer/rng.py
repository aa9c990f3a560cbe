"""Counter-based uniforms: u(seed, subject, sample, step, stream) in [0, 1), the same whatever
the batch composition (the CUDA kernel computes the same function)."""

from __future__ import annotations

import numpy as np

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer (uint64 -> uint64)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def uniforms(seed: int, subject, sample, step, stream: int = 0) -> np.ndarray:
    """float64 uniforms in [0, 1); arguments broadcast (subject/sample/step int arrays)."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15))
        for part in (subject, sample, step, stream):
            h = _mix(h ^ (np.asarray(part).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
