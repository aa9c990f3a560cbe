"""Incremental decoding with a ``GPT``: prefill, and decode steps over the caches of
``caches.py``.

* ``prefill`` / ``decode_reference``: one growing cache per row (``DecodeState``) — any batch,
  shapes change every step; the oracle the slot layout is tested against.
* ``slot_state`` / ``fill_slots`` / ``decode_slots``: S subject slots × n samples
  (``SlotState``), fixed shapes and in-place updates, for trajectory sampling; a CUDA graph can
  capture a decode step and replay it while slots are refilled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ehrfast.errors import InvalidInputError
from ehrfast.model.caches import DecodeState, LayerCache, SlotState

if TYPE_CHECKING:
    from ehrfast.model.gpt import GPT


# ---- prefill and decode steps --------------------------------------------------------------


def prefill(model: GPT, idx: torch.Tensor, prs=None, soft_tokens=None, max_new_tokens: int = 0,
            pad: torch.Tensor | None = None) -> tuple[torch.Tensor, DecodeState]:
    """Runs the contexts once and keeps every layer's keys and values, with room for
    ``max_new_tokens`` more positions. Contexts of different lengths are left-padded: ``pad``
    [B] counts each row's leading pad positions, which nothing attends to and which do not
    shift positions. Returns (logits [B, vocab] of the last position, the state); the same
    logits as ``model(idx)`` on each unpadded row, up to float rounding."""
    cfg = model.config
    b, t = idx.shape
    device = idx.device
    pad = torch.zeros(b, dtype=torch.long, device=device) if pad is None else pad.to(device=device, dtype=torch.long)
    memory = model.soft_tokens(prs, soft_tokens, b)
    token_pos = (torch.arange(t, device=device) - pad[:, None]).clamp(min=0)  # [B, T]
    x, memory, n_prefix = model.embed(idx, token_pos, memory)
    valid = torch.cat([torch.ones(b, n_prefix, dtype=torch.bool, device=device), torch.arange(t, device=device) >= pad[:, None]], dim=1)
    length = x.shape[1]
    if int(token_pos[:, -1].max()) + n_prefix + 1 + max_new_tokens > cfg.block_size:
        raise InvalidInputError(f"{length} context positions + {max_new_tokens} new tokens exceed block_size {cfg.block_size}")
    caches = [LayerCache.empty(b, cfg.n_head, length + max_new_tokens, cfg.head_dim, x) for _ in model.transformer.h]
    cross = [blk.crossattention.memory_kv(memory) for blk in model.transformer.h] if memory is not None else None
    key_valid = torch.ones(b, length + max_new_tokens, dtype=torch.bool, device=device)
    key_valid[:, :length] = valid
    # causal over real keys; a pad query reads itself only (its output is never used)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    mask = (causal & key_valid[:, None, :length]) | torch.eye(length, dtype=torch.bool, device=device)
    for i, block in enumerate(model.transformer.h):
        x = block(x, cross[i] if cross else None, self_mask=mask[:, None], cache=caches[i])
    state = DecodeState(caches, cross, length, key_valid, token_pos[:, -1] + n_prefix + 1)
    return model.logits(x[:, -1]), state


def decode_reference(model: GPT, token: torch.Tensor, state: DecodeState) -> torch.Tensor:
    """Appends one token per row (``token`` [B] int64) to a growing cache and returns logits
    [B, vocab]: the plain decode step, the oracle of ``decode_slots``."""
    x, _, _ = model.embed(token[:, None], state.position[:, None])
    mask = state.key_valid[:, None, None, : state.length + 1]
    for i, block in enumerate(model.transformer.h):
        x = block(x, state.cross[i] if state.cross else None, self_mask=mask, cache=state.layers[i])
    state.length += 1
    state.position = state.position + 1
    return model.logits(x[:, -1])


def slot_state(model: GPT, slots: int, n: int, max_context: int, max_new_tokens: int) -> SlotState:
    """Empty decoding state for ``slots`` subjects × ``n`` samples, holding histories of up to
    ``max_context`` tokens and ``max_new_tokens`` new ones per sample (``decode_slots``)."""
    cfg = model.config
    prefix_capacity = max_context + cfg.prefix_positions
    if prefix_capacity + max_new_tokens > cfg.block_size:
        raise InvalidInputError(f"{prefix_capacity} context positions + {max_new_tokens} new tokens exceed block_size {cfg.block_size}")
    return SlotState(slots, n, cfg.n_layer, cfg.n_head, cfg.head_dim, prefix_capacity, max_new_tokens,
                     cfg.n_soft_tokens if cfg.modality == "cross" else 0, model.transformer.wte.weight, cfg.block_size - 1)


def fill_slots(model: GPT, state: SlotState, slot_ids: torch.Tensor, idx: torch.Tensor, prs=None, soft_tokens=None,
               pad: torch.Tensor | None = None) -> torch.Tensor:
    """Prefills g subjects (``idx`` [g, T], left-padded by ``pad`` [g]) into ``slot_ids`` [g]
    and restarts their samples. Returns each subject's next-token logits [g, vocab]."""
    logits, prefilled = prefill(model, idx, prs, soft_tokens, max_new_tokens=0, pad=pad)
    state.fill(slot_ids, prefilled)
    return logits


def decode_slots(model: GPT, token: torch.Tensor, state: SlotState) -> torch.Tensor:
    """Appends one token per row (``token`` [S·n] int64); returns logits [S·n, vocab]. Fixed
    shapes and in-place state updates: capturable in a CUDA graph."""
    x, _, _ = model.embed(token[:, None], state.position[:, None])
    for i, block in enumerate(model.transformer.h):
        x = block(x, state.cross[i] if state.cross else None, cache=state.layers[i])
    state.advance()
    return model.logits(x[:, -1])
