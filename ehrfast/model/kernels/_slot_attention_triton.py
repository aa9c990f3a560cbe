"""The Triton kernel behind ``ehrfast.model.kernels.slot_attention`` (imported on first use,
because Triton reads ``TRITON_INTERPRET`` when a kernel is defined). Layouts and the algorithm
are described there.

Launch configuration lives here, in ``launch_config``: one program per (slot, head); the slot's
n query rows padded to a power of two ≥ 16 (``tl.dot``'s minimum), the head dim likewise;
fixed block sizes and warps, no autotuning, so the first call is not a timing sweep and the
kernel can be captured in a CUDA graph.
"""

import triton
import triton.language as tl

BLOCK_PREFIX = 64  # history positions per tile (read once per slot, shared by its n rows)
BLOCK_OWN = 32  # own positions per tile (per row)
NEG_BIG = -1.0e30  # a finite "minus infinity" for running maxima: exp(m − m) stays 1, not NaN


def launch_config(n_slots: int, n_head: int, rows_per_slot: int, head_dim: int) -> dict:
    """Grid and compile-time sizes for one launch."""
    return dict(grid=(n_slots, n_head), BLOCK_N=max(16, triton.next_power_of_2(rows_per_slot)),
                BLOCK_P=BLOCK_PREFIX, BLOCK_K=BLOCK_OWN, BLOCK_D=max(16, triton.next_power_of_2(head_dim)), num_warps=4)


@triton.jit
def slot_decode(q_ptr, pk_ptr, pv_ptr, valid_ptr, ok_ptr, ov_ptr, wpos_ptr, active_ptr, o_ptr,
                sq_r, sq_h, spk_s, spk_h, spk_p, spv_s, spv_h, spv_p, svalid_s,
                sok_r, sok_h, sok_k, sov_r, sov_h, sov_k, so_r, so_h,
                n, n_prefix, head_dim, scale,
                BLOCK_N: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
                UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    s = tl.program_id(0)
    h = tl.program_id(1)
    j = tl.arange(0, BLOCK_N)
    rows = s * n + j
    d = tl.arange(0, BLOCK_D)
    d_ok = d < head_dim
    active = (tl.load(active_ptr + rows, mask=j < n, other=0) != 0) & (j < n)
    q = tl.load(q_ptr + rows[:, None] * sq_r + h * sq_h + d[None, :], mask=active[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)

    # 1. the slot's history, once for all its rows: online softmax over tiles of positions
    m = tl.full([BLOCK_N], NEG_BIG, tl.float32)
    l = tl.zeros([BLOCK_N], tl.float32)
    acc = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    if tl.max(active.to(tl.int32), axis=0) > 0:
        for p0 in range(0, n_prefix, BLOCK_P):
            pos = p0 + tl.arange(0, BLOCK_P)
            valid = tl.load(valid_ptr + s * svalid_s + pos, mask=pos < n_prefix, other=0) != 0
            tile_ok = valid[:, None] & d_ok[None, :]  # masked-off positions are not read at all
            k = tl.load(pk_ptr + s * spk_s + h * spk_h + pos[:, None] * spk_p + d[None, :], mask=tile_ok, other=0.0)
            v = tl.load(pv_ptr + s * spv_s + h * spv_h + pos[:, None] * spv_p + d[None, :], mask=tile_ok, other=0.0)
            if UPCAST:
                k = k.to(tl.float32)
                v = v.to(tl.float32)
            scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
            scores = tl.where(valid[None, :], scores, float("-inf"))
            m_new = tl.maximum(m, tl.max(scores, axis=1))
            alpha = tl.exp(m - m_new)
            p = tl.exp(scores - m_new[:, None])
            l = l * alpha + tl.sum(p, axis=1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
            m = m_new

    # 2. each row's own new positions, up to its write position; finished rows read nothing
    for jj in range(0, n):
        r = s * n + jj
        out = tl.zeros([BLOCK_D], tl.float32)
        if tl.load(active_ptr + r) != 0:
            mine = j == jj
            m_r = tl.max(tl.where(mine, m, NEG_BIG), axis=0)
            l_r = tl.sum(tl.where(mine, l, 0.0), axis=0)
            acc_r = tl.sum(tl.where(mine[:, None], acc, 0.0), axis=0)
            q_r = tl.load(q_ptr + r * sq_r + h * sq_h + d, mask=d_ok, other=0.0).to(tl.float32)
            last = tl.load(wpos_ptr + r)
            for k0 in range(0, last + 1, BLOCK_K):
                pos = k0 + tl.arange(0, BLOCK_K)
                pos_ok = pos <= last
                tile_ok = pos_ok[:, None] & d_ok[None, :]
                k = tl.load(ok_ptr + r * sok_r + h * sok_h + pos[:, None] * sok_k + d[None, :], mask=tile_ok, other=0.0).to(tl.float32)
                v = tl.load(ov_ptr + r * sov_r + h * sov_h + pos[:, None] * sov_k + d[None, :], mask=tile_ok, other=0.0).to(tl.float32)
                scores = tl.where(pos_ok, tl.sum(k * q_r[None, :], axis=1) * scale, float("-inf"))
                m_new = tl.maximum(m_r, tl.max(scores, axis=0))
                alpha = tl.exp(m_r - m_new)
                p = tl.exp(scores - m_new)
                l_r = l_r * alpha + tl.sum(p, axis=0)
                acc_r = acc_r * alpha + tl.sum(p[:, None] * v, axis=0)
                m_r = m_new
            out = acc_r / l_r
        tl.store(o_ptr + r * so_r + h * so_h + d, out.to(o_ptr.dtype.element_ty), mask=d_ok)
