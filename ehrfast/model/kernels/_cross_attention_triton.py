"""The Triton kernels behind ``ehrfast.model.kernels.cross_attention`` (imported on first use,
because Triton reads ``TRITON_INTERPRET`` when a kernel is defined). Layouts and the algorithm
are described there.

Launch configuration lives here, in ``_configs`` and the two ``grid`` functions: the query block
(BLOCK_M) and warp count are autotuned per (queries, head dim, keys); BLOCK_N and BLOCK_D are
the key count and head dim rounded up to powers of two (≥ 16, what ``tl.dot`` needs). The
backward pass walks ``rows_per_chunk`` queries per program (a multiple of every BLOCK_M), so
its grid does not depend on the tuned block.
"""

import os

import triton
import triton.language as tl

ROWS_PER_CHUNK_UNIT = 128  # every BLOCK_M below divides it


def _configs(backward: bool) -> list:
    if os.environ.get("TRITON_INTERPRET") == "1":  # the interpreter cannot time candidates
        return [triton.Config({"BLOCK_M": 32}, num_warps=4)]
    blocks = (32, 64) if backward else (32, 64, 128)
    return [triton.Config({"BLOCK_M": m}, num_warps=w, num_stages=s) for m in blocks for w in (4, 8) for s in (1, 2)]


def forward_grid(n_queries: int, n_rows_by_heads: int):
    return lambda meta: (triton.cdiv(n_queries, meta["BLOCK_M"]), n_rows_by_heads)


def backward_grid(n_queries: int, n_rows_by_heads: int, n_sm: int, deterministic: bool) -> tuple[tuple[int, int], int]:
    """(grid, rows_per_chunk): a (row, head)'s queries split into chunks so that there are about
    four programs per SM — one chunk when deterministic, so dK/dV are summed in a fixed order."""
    units = triton.cdiv(n_queries, ROWS_PER_CHUNK_UNIT)
    chunks = 1 if deterministic else max(1, min(units, (4 * n_sm) // max(1, n_rows_by_heads)))
    rows_per_chunk = triton.cdiv(units, chunks) * ROWS_PER_CHUNK_UNIT
    return (triton.cdiv(n_queries, rows_per_chunk), n_rows_by_heads), rows_per_chunk


def block_sizes(n_keys: int, head_dim: int) -> dict:
    """BLOCK_N, BLOCK_D: keys and head dim padded to powers of two, at least 16 (tl.dot's minimum)."""
    return dict(BLOCK_N=max(16, triton.next_power_of_2(n_keys)), BLOCK_D=max(16, triton.next_power_of_2(head_dim)))


def query_bucket(n_queries: int) -> int:
    """The autotuning key for the query count: its power of two, so that prefills of many
    different lengths share a tuned configuration."""
    return triton.next_power_of_2(n_queries)


@triton.jit
def _load_block(ptr, rows, row_stride, cols, row_ok, col_ok):
    return tl.load(ptr + rows[:, None] * row_stride + cols[None, :], mask=row_ok[:, None] & col_ok[None, :], other=0.0)


@triton.jit
def _query_segments(seg_ptr, seg_stride_b, b, rows, row_ok, n_segments, HAS_SEGMENTS: tl.constexpr):
    """Each query's segment (-1 past the end) and the range [lo, hi] of valid ones in the block."""
    if HAS_SEGMENTS:
        seg = tl.load(seg_ptr + b * seg_stride_b + rows, mask=row_ok, other=-1)
    else:
        seg = tl.where(row_ok, 0, -1)
    lo = tl.maximum(tl.min(tl.where(seg >= 0, seg, n_segments), axis=0), 0)
    hi = tl.minimum(tl.max(seg, axis=0), n_segments - 1)
    return seg, lo, hi


@triton.jit
def _softmax_rows(q, k, keys_ok, mine, scale, PRECISION: tl.constexpr):
    """P [BLOCK_M, BLOCK_N] fp32: softmax over the segment's keys, zero on rows not in it."""
    scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
    scores = tl.where(keys_ok[None, :], scores, float("-inf"))
    p = tl.exp(scores - tl.max(scores, axis=1)[:, None])
    p = p / tl.sum(p, axis=1)[:, None]
    return tl.where(mine[:, None], p, 0.0)


@triton.autotune(configs=_configs(backward=False), key=["query_bucket", "head_dim", "n_keys"])
@triton.jit
def forward(q_ptr, k_ptr, v_ptr, seg_ptr, o_ptr,
            sq_b, sq_h, sq_m, sk_b, sk_s, sk_h, sk_n, sv_b, sv_s, sv_h, sv_n, sseg_b, so_b, so_h, so_m,
            n_heads, n_queries, query_bucket, n_keys, head_dim, n_segments, scale,
            HAS_SEGMENTS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
            UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr):
    bh = tl.program_id(1)
    b, h = bh // n_heads, bh % n_heads
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    keys = tl.arange(0, BLOCK_N)
    row_ok, col_ok, keys_ok = rows < n_queries, cols < head_dim, keys < n_keys
    q = _load_block(q_ptr + b * sq_b + h * sq_h, rows, sq_m, cols, row_ok, col_ok)
    if UPCAST:
        q = q.to(tl.float32)
    seg, lo, hi = _query_segments(seg_ptr, sseg_b, b, rows, row_ok, n_segments, HAS_SEGMENTS)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for s in range(lo, hi + 1):
        k = _load_block(k_ptr + b * sk_b + s * sk_s + h * sk_h, keys, sk_n, cols, keys_ok, col_ok)
        v = _load_block(v_ptr + b * sv_b + s * sv_s + h * sv_h, keys, sv_n, cols, keys_ok, col_ok)
        if UPCAST:
            k, v = k.to(tl.float32), v.to(tl.float32)
        p = _softmax_rows(q, k, keys_ok, seg == s, scale, PRECISION)
        acc += tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    o = o_ptr + b * so_b + h * so_h + rows[:, None] * so_m + cols[None, :]
    tl.store(o, acc.to(o_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def _flush(dk_ptr, dv_ptr, dk, dv, seg, b, h, sd_b, sd_s, sd_h, sd_n, keys, cols, kv_ok, when):
    """Adds a segment's accumulated dK, dV [BLOCK_N, BLOCK_D] to memory (fp32 atomics) if ``when``."""
    offset = b * sd_b + seg * sd_s + h * sd_h + keys[:, None] * sd_n + cols[None, :]
    mask = tl.where(when, kv_ok, False)
    tl.atomic_add(dk_ptr + offset, dk, mask=mask)
    tl.atomic_add(dv_ptr + offset, dv, mask=mask)


@triton.autotune(configs=_configs(backward=True), key=["query_bucket", "head_dim", "n_keys"], reset_to_zero=["dk_ptr", "dv_ptr"])
@triton.jit
def backward(q_ptr, k_ptr, v_ptr, seg_ptr, do_ptr, dq_ptr, dk_ptr, dv_ptr,
             sq_b, sq_h, sq_m, sk_b, sk_s, sk_h, sk_n, sv_b, sv_s, sv_h, sv_n, sseg_b,
             sdo_b, sdo_h, sdo_m, sdq_b, sdq_h, sdq_m, sd_b, sd_s, sd_h, sd_n,
             n_heads, n_queries, query_bucket, n_keys, head_dim, n_segments, scale, rows_per_chunk,
             HAS_SEGMENTS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
             UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr):
    bh = tl.program_id(1)
    b, h = bh // n_heads, bh % n_heads
    cols = tl.arange(0, BLOCK_D)
    keys = tl.arange(0, BLOCK_N)
    col_ok, keys_ok = cols < head_dim, keys < n_keys
    kv_ok = keys_ok[:, None] & col_ok[None, :]
    # dK, dV of the segment `current` accumulate here and go to memory when it changes
    dk_acc = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv_acc = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    current = bh * 0 - 1
    chunk_start = tl.program_id(0) * rows_per_chunk
    for start in range(chunk_start, chunk_start + rows_per_chunk, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        row_ok = rows < n_queries
        q = _load_block(q_ptr + b * sq_b + h * sq_h, rows, sq_m, cols, row_ok, col_ok)
        do = _load_block(do_ptr + b * sdo_b + h * sdo_h, rows, sdo_m, cols, row_ok, col_ok)
        if UPCAST:
            q, do = q.to(tl.float32), do.to(tl.float32)
        seg, lo, hi = _query_segments(seg_ptr, sseg_b, b, rows, row_ok, n_segments, HAS_SEGMENTS)
        dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        for s in range(lo, hi + 1):
            changed = s != current
            _flush(dk_ptr, dv_ptr, dk_acc, dv_acc, current, b, h, sd_b, sd_s, sd_h, sd_n, keys, cols, kv_ok,
                   changed & (current >= 0))
            dk_acc = tl.where(changed, 0.0, dk_acc)
            dv_acc = tl.where(changed, 0.0, dv_acc)
            current = s
            k = _load_block(k_ptr + b * sk_b + s * sk_s + h * sk_h, keys, sk_n, cols, keys_ok, col_ok)
            v = _load_block(v_ptr + b * sv_b + s * sv_s + h * sv_h, keys, sv_n, cols, keys_ok, col_ok)
            if UPCAST:
                k, v = k.to(tl.float32), v.to(tl.float32)
            p = _softmax_rows(q, k, keys_ok, seg == s, scale, PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            # softmax backward, with the score scale folded in; rowsum(P∘dP) = rowsum(dO∘O)
            ds = p * (dp - tl.sum(p * dp, axis=1)[:, None]) * scale
            dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
            dv_acc += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
            dk_acc += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
        dq_out = dq_ptr + b * sdq_b + h * sdq_h + rows[:, None] * sdq_m + cols[None, :]
        tl.store(dq_out, dq.to(dq_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
    _flush(dk_ptr, dv_ptr, dk_acc, dv_acc, current, b, h, sd_b, sd_s, sd_h, sd_n, keys, cols, kv_ok, current >= 0)
