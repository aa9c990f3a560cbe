"""Self-attention for packed rows: block-diagonal causal — a position attends to the earlier
positions of its own subject only.

Two ways to compute it. SDPA with a dense boolean mask [B, 1, L, L] works everywhere, but on
CUDA a mask rules out the flash backend and every cross-subject block is still computed. On
CUDA, FlexAttention (compiled) reads a ``BlockMask`` built from the segment ids and skips the
blocks that lie across subjects altogether. "auto" uses FlexAttention on CUDA once a one-time
self-test per (device, dtype, head dim) has matched SDPA forward and backward — else SDPA,
with a warning. The ``packed_attention`` setting of ``ehrfast.backends`` pins the choice
(``EHRFAST_PACKED_ATTENTION=fast|reference``, or ``flex|sdpa``; fast on a CPU runs
FlexAttention eagerly: slow, for tests). Attention dropout always uses SDPA.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ehrfast import backends
from ehrfast.model.self_test import mismatch_with_reference


@dataclass
class PackedMask:
    """The mask of one packed batch, shared by every layer: ``segment_ids`` [B, L] (each
    position's subject; padding -1 attends to earlier padding, harmlessly), and the
    FlexAttention block mask when that backend was chosen."""

    segment_ids: torch.Tensor
    block_mask: object | None = None
    _dense: torch.Tensor | None = None

    def dense(self) -> torch.Tensor:
        """[B, 1, L, L] bool, True = may attend."""
        if self._dense is None:
            seg = self.segment_ids
            causal = torch.ones(seg.shape[1], seg.shape[1], dtype=torch.bool, device=seg.device).tril()
            self._dense = ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]
        return self._dense


def packed_mask(segment_ids: torch.Tensor, dropout_active: bool) -> PackedMask:
    """The mask for ``segment_ids`` [B, L], with a FlexAttention block mask when FlexAttention
    may be used for this batch."""
    mask = PackedMask(segment_ids)
    if not dropout_active and _wants_flex(segment_ids.device):
        mask.block_mask = _block_mask(segment_ids)
    return mask


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q kᵀ/√D) v: q, k, v [B, H, L, D]; ``mask`` None (causal), a boolean
    [B, 1, L, S] tensor, or a ``PackedMask``."""
    if isinstance(mask, PackedMask):
        if mask.block_mask is not None and not dropout_p and (backends.choose("packed_attention") == "fast" or _flex_works(q.device, q.dtype, q.shape[-1])):
            return _flex(q.device)(q, k, v, block_mask=mask.block_mask)
        mask = mask.dense()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, dropout_p=dropout_p)


def _wants_flex(device: torch.device) -> bool:
    backend = backends.choose("packed_attention")
    return backend == "fast" or (backend == "auto" and device.type == "cuda" and _flex_module() is not None)


@functools.cache
def _flex_module():
    try:
        from torch.nn.attention import flex_attention
    except ImportError:
        return None
    return flex_attention


def _block_mask(segment_ids: torch.Tensor):
    b, length = segment_ids.shape

    def same_subject_causal(batch, head, q_index, kv_index):
        return (segment_ids[batch, q_index] == segment_ids[batch, kv_index]) & (q_index >= kv_index)

    return _flex_module().create_block_mask(same_subject_causal, b, None, length, length, device=segment_ids.device)


@functools.cache
def _flex(device: torch.device):
    """flex_attention, compiled on CUDA (its eager form materializes the scores: for tests)."""
    function = _flex_module().flex_attention
    return torch.compile(function, dynamic=False) if device.type == "cuda" else function


@functools.cache
def _flex_works(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Whether compiled FlexAttention matches SDPA here, forward and backward (checked once)."""
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(2, 2, 256, head_dim, device=device, generator=gen).to(dtype) for _ in range(3))
    mask = PackedMask((torch.arange(256, device=device) >= 97).long().expand(2, 256).contiguous())
    mask.block_mask = _block_mask(mask.segment_ids)
    failure = mismatch_with_reference("FlexAttention", lambda *qkv: _flex(device)(*qkv, block_mask=mask.block_mask),
                                      lambda *qkv: F.scaled_dot_product_attention(*qkv, attn_mask=mask.dense()), q, k, v)
    if failure:
        backends.warn_once(f"packed self-attention falls back to SDPA with a dense mask: {failure}")
    return failure is None
