"""Cross-attention of token queries to a short set of soft tokens: a fused Triton kernel
(forward and backward) and the torch reference it must agree with.

Shapes: ``q`` [B, H, Lq, D]; ``k``, ``v`` [B, H, Lk, D], or [B, S, H, Lk, D] for packed rows
(S subjects per row, each with its own Lk soft tokens); ``q_segment`` [B, Lq] integer: which
of the S key sets each query reads. A query whose segment is outside [0, S) reads nothing and
gets a zero output (and zero gradient). Output [B, H, Lq, D], softmax scale 1/sqrt(D).

Why a kernel: with Lk ≤ 64 the whole key/value set of a (row, head) fits in registers, so one
pass over the queries does everything — no score matrix in memory, no [B, H, Lq, S·Lk] mask,
and packed rows cost what unpacked ones do. Each block of queries loops over the segments it
spans (one, rarely two, since segments are sorted along a row) and takes the exact softmax
over that segment's keys; no online rescaling is needed because a query reads one segment.

The backward pass recomputes the softmax (cheap at this Lk), uses rowsum(P ∘ dP) for the
softmax correction (so the forward output need not be read back), writes dQ per query block
and sums dK/dV per (row, segment, head) with fp32 atomics. Atomic order varies between runs
unless ``torch.use_deterministic_algorithms(True)``, in which case one program walks all of a
(row, head)'s queries in order.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ehrfast import backends
from ehrfast.errors import BackendUnavailableError, InvalidInputError
from ehrfast.model.kernels import _dispatch
from ehrfast.model.self_test import mismatch_with_reference

MAX_KEYS = 64  # soft tokens per segment the kernel holds in registers


def cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_segment: torch.Tensor | None = None, *,
                    dropout_p: float = 0.0, backend: str = "auto") -> torch.Tensor:
    """softmax(q kᵀ / √D) v per query over its segment's keys; [B, H, Lq, D].

    ``backend``: "auto" (the Triton kernel on CUDA when it applies, else the reference),
    "fast" (or "triton"), or "reference"; with "auto" the process setting decides
    (``ehrfast.backends``: ``EHRFAST_CROSS_ATTENTION``, ``configure``, ``use``) — that is how
    to pin a model's choice. Dropout on the attention weights runs on the reference only."""
    backend = backends.choose("cross_attention", backend)
    k5, v5 = _validate(q, k, v, q_segment)
    if backend == "fast":
        if dropout_p:
            raise InvalidInputError("the Triton cross-attention kernel has no dropout; use backend='reference'")
        reason = triton_unavailable_reason(q, k5)
        if reason:
            raise BackendUnavailableError(f"Triton cross-attention unavailable: {reason}")
    elif backend == "reference" or not _auto_uses_triton(q, k5, dropout_p):
        return _reference(q, k5, v5, q_segment, dropout_p)
    return _TritonCrossAttention.apply(q, k5, v5, q_segment)


def cross_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_segment: torch.Tensor | None = None,
                              dropout_p: float = 0.0) -> torch.Tensor:
    """The torch math the kernel must reproduce (SDPA over all S·Lk keys behind a segment mask)."""
    k5, v5 = _validate(q, k, v, q_segment)
    return _reference(q, k5, v5, q_segment, dropout_p)


def triton_unavailable_reason(q: torch.Tensor, k5: torch.Tensor | None = None) -> str | None:
    """Why the kernel cannot run on these inputs (None when it can). CPU tensors run only
    under Triton's interpreter (``TRITON_INTERPRET=1``), which the tests use."""
    if reason := _dispatch.triton_unavailable_reason(_triton(), q):
        return reason
    if k5 is not None and k5.shape[3] > MAX_KEYS:
        return f"{k5.shape[3]} keys per segment exceed {MAX_KEYS}"
    return None


# ---- validation and reference ----------------------------------------------------------


def _validate(q, k, v, q_segment) -> tuple[torch.Tensor, torch.Tensor]:
    """Checks shapes and returns k, v as [B, S, H, Lk, D]."""
    if q.dim() != 4:
        raise InvalidInputError(f"q must be [B, H, Lq, D], got {tuple(q.shape)}")
    if k.shape != v.shape:
        raise InvalidInputError(f"k and v must have one shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if k.dim() == 4:
        k, v = k[:, None], v[:, None]
    if k.dim() != 5:
        raise InvalidInputError(f"k, v must be [B, H, Lk, D] or [B, S, H, Lk, D], got {tuple(k.shape)}")
    b, h, lq, d = q.shape
    if (k.shape[0], k.shape[2], k.shape[4]) != (b, h, d) or k.shape[3] < 1:
        raise InvalidInputError(f"k, v {tuple(k.shape)} do not fit q {tuple(q.shape)} (need B={b}, H={h}, D={d}, Lk >= 1)")
    if q.dtype != k.dtype or q.dtype != v.dtype or q.device != k.device or q.device != v.device:
        raise InvalidInputError("q, k and v must share dtype and device")
    if q_segment is None:
        if k.shape[1] != 1:
            raise InvalidInputError(f"{k.shape[1]} key sets per row need q_segment [B, Lq] to say which each query reads")
    elif q_segment.shape != (b, lq) or q_segment.dtype.is_floating_point or q_segment.device != q.device:
        raise InvalidInputError(f"q_segment must be an integer tensor [B={b}, Lq={lq}] on {q.device}, got "
                         f"{q_segment.dtype} {tuple(q_segment.shape)} on {q_segment.device}")
    return k, v


def _reference(q, k5, v5, q_segment, dropout_p) -> torch.Tensor:
    b, s, h, lk, d = k5.shape
    if q_segment is None:
        return F.scaled_dot_product_attention(q, k5[:, 0], v5[:, 0], dropout_p=dropout_p)
    keys = k5.permute(0, 2, 1, 3, 4).reshape(b, h, s * lk, d)
    values = v5.permute(0, 2, 1, 3, 4).reshape(b, h, s * lk, d)
    key_segment = torch.arange(s, device=q.device).repeat_interleave(lk)
    valid = (q_segment >= 0) & (q_segment < s)  # [B, Lq]
    # a query without a segment attends everywhere (no all-masked row, no NaN) and is zeroed
    mask = (q_segment[:, :, None] == key_segment) | ~valid[:, :, None]
    y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask[:, None], dropout_p=dropout_p)
    return y * valid[:, None, :, None].to(y.dtype)


def _auto_uses_triton(q, k5, dropout_p) -> bool:
    if not q.is_cuda or dropout_p:
        return False
    reason = triton_unavailable_reason(q, k5)
    if reason is None:
        reason = _self_test_failure(q.device, q.dtype, q.shape[-1], k5.shape[3])
    if reason:
        backends.warn_once(f"cross-attention falls back to the torch reference: {reason}")
    return reason is None


@functools.cache
def _self_test_failure(device: torch.device, dtype: torch.dtype, head_dim: int, n_keys: int) -> str | None:
    """Why the kernel cannot be trusted on this (device, dtype, head dim, keys), or None: one
    small packed case, forward and backward, against the reference. Uses its own generator,
    so the caller's random stream is untouched."""
    gen = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(2, 2, 70, head_dim, device=device, generator=gen).to(dtype)
    k, v = (torch.randn(2, 2, 2, n_keys, head_dim, device=device, generator=gen).to(dtype) for _ in range(2))
    segment = (torch.arange(70, device=device) >= 33).long().expand(2, 70)
    return mismatch_with_reference("the Triton kernel", lambda *qkv: _TritonCrossAttention.apply(*qkv, segment),
                                   lambda *qkv: _reference(*qkv, segment, 0.0), q, k, v)


# ---- Triton --------------------------------------------------------------------------


@functools.cache
def _triton():
    try:
        from ehrfast.model.kernels import _cross_attention_triton
    except ImportError:
        return None
    return _cross_attention_triton


def _segments(q: torch.Tensor, q_segment: torch.Tensor | None) -> tuple[torch.Tensor, int, bool]:
    if q_segment is None:
        return q.new_zeros(1, dtype=torch.int32), 0, False
    seg = q_segment.to(torch.int32)
    return seg, seg.stride(0), True


def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4


class _TritonCrossAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k5, v5, q_segment):
        kernels = _triton()
        b, h, lq, d = q.shape
        q, k5, v5 = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k5, v5))
        seg, seg_stride, has_segments = _segments(q, q_segment)
        out = q.new_empty(b, lq, h, d).transpose(1, 2)  # [B, H, Lq, D] over a [B, Lq, H, D] buffer: heads merge for free
        kernels.forward[kernels.forward_grid(lq, b * h)](
            q, k5, v5, seg, out, *q.stride()[:3], *k5.stride()[:4], *v5.stride()[:4], seg_stride, *out.stride()[:3],
            h, lq, kernels.query_bucket(lq), k5.shape[3], d, k5.shape[1], 1.0 / math.sqrt(d),
            HAS_SEGMENTS=has_segments, **kernels.block_sizes(k5.shape[3], d), **_dispatch.dot_options(q.dtype, q.is_cuda))
        ctx.save_for_backward(q, k5, v5, seg)
        ctx.has_segments, ctx.seg_stride = has_segments, seg_stride
        return out

    @staticmethod
    def backward(ctx, grad_out):
        kernels = _triton()
        q, k5, v5, seg = ctx.saved_tensors
        b, h, lq, d = q.shape
        grad_out = grad_out if grad_out.stride(-1) == 1 else grad_out.contiguous()
        grid, rows_per_chunk = kernels.backward_grid(lq, b * h, _sm_count(q.device), torch.are_deterministic_algorithms_enabled())
        dq = q.new_empty(b, lq, h, d).transpose(1, 2)
        dk = torch.zeros(k5.shape, dtype=torch.float32, device=q.device)
        dv = torch.zeros(v5.shape, dtype=torch.float32, device=q.device)
        kernels.backward[grid](
            q, k5, v5, seg, grad_out, dq, dk, dv,
            *q.stride()[:3], *k5.stride()[:4], *v5.stride()[:4], ctx.seg_stride,
            *grad_out.stride()[:3], *dq.stride()[:3], *dk.stride()[:4],
            h, lq, kernels.query_bucket(lq), k5.shape[3], d, k5.shape[1], 1.0 / math.sqrt(d), rows_per_chunk,
            HAS_SEGMENTS=ctx.has_segments, **kernels.block_sizes(k5.shape[3], d), **_dispatch.dot_options(q.dtype, q.is_cuda))
        return dq, dk.to(k5.dtype), dv.to(v5.dtype), None
