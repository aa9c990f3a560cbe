"""Counter-based uniforms from Philox4x32-10 (Salmon et al., SC'11; Random123's constants).

One Philox block per (seed, subject, sample, step): counter = (subject low 32 bits, subject high
32 bits, sample, step), key = (seed low, seed high). Its four 32-bit words make two float64
uniforms in [0, 1) with 53 random bits each — stream 0 from words 0–1, stream 1 from words
2–3. The values depend only on those four numbers, never on batch composition, and the CUDA
sampling kernel (``csrc/sampler/philox.cuh``) computes the same bits.
"""

from __future__ import annotations

import numpy as np

from ehrfast.errors import InvalidInputError

_MASK32 = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
ROUNDS = 10


def philox4x32(counter: tuple, key: tuple) -> tuple[np.ndarray, ...]:
    """Philox4x32-10 of broadcastable uint32-valued arrays: counter (c0, c1, c2, c3), key (k0, k1).
    Returns the four output words as uint64 arrays holding 32-bit values."""
    c0, c1, c2, c3 = (np.asarray(c, np.uint64) & _MASK32 for c in counter)
    k0, k1 = (np.asarray(k, np.uint64) & _MASK32 for k in key)
    for r in range(ROUNDS):
        if r:
            k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
        p0, p1 = _M0 * c0, _M1 * c2  # 32 x 32 -> 64 bits: exact in uint64
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK32, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK32)
    return c0, c1, c2, c3


def _unit(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """53-bit float64 in [0, 1) from two 32-bit words."""
    return (((hi << np.uint64(32)) | lo) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniform_pair(seed: int, subject, sample, step) -> tuple[np.ndarray, np.ndarray]:
    """(u_first, u_continue) float64 in [0, 1); subject / sample / step broadcast (int arrays;
    subject may be any int64, e.g. an 18-digit MEDS subject id)."""
    subject = np.asarray(subject).astype(np.int64).view(np.uint64)
    seed64 = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    words = philox4x32((subject & _MASK32, subject >> np.uint64(32), sample, step), (seed64 & _MASK32, seed64 >> np.uint64(32)))
    return _unit(words[0], words[1]), _unit(words[2], words[3])


def uniforms(seed: int, subject, sample, step, stream: int = 0) -> np.ndarray:
    """One stream of ``uniform_pair`` (0: the first draw of a step, 1: the continuation draw)."""
    if stream not in (0, 1):
        raise InvalidInputError(f"stream must be 0 or 1, got {stream}")
    return uniform_pair(seed, subject, sample, step)[stream]
