"""Decode-step self-attention over subject slots: a Triton kernel and the torch reference it
must agree with (``GPT.decode_slots`` through ``SlotCache``).

S slots, each continued by n sample rows (R = S·n rows, slot-major). Per layer and step:

* ``q`` [R, H, 1, D]: this step's query of every row;
* ``prefix_k``, ``prefix_v`` [S, H, P, D] and ``prefix_valid`` [S, P] bool: each slot's history,
  read by all n of its rows;
* ``own_k``, ``own_v`` [R, H, K, D] and ``write_position`` [R] int64: each row's own new
  positions, valid up to and including its write position (this step's key is already there);
* ``active`` [R] bool: rows whose output is needed (finished rows get zeros).

Output [R, H, 1, D]: softmax(q kᵀ/√D) v over the slot's valid history and the row's own
positions, in one softmax.

Why a kernel: the torch math reads every row's whole own cache (K positions, however few are
filled), materializes the scores and reads each slot's history through a batched matmul. The
kernel runs one program per (slot, head): it reads the slot's valid history once, as tiles
multiplied against all n queries of the slot (tensor cores), then each active row's own keys
only up to its write position, all in one online softmax. Rows that have finished read
nothing, so a slot waiting for its last samples costs little bandwidth.
"""

from __future__ import annotations

import functools
import math

import torch

from ehrfast import backends
from ehrfast.errors import BackendUnavailableError, InvalidInputError
from ehrfast.model.kernels import _dispatch
from ehrfast.model.self_test import output_mismatch


def slot_attention(q: torch.Tensor, prefix_k: torch.Tensor, prefix_v: torch.Tensor, prefix_valid: torch.Tensor,
                   own_k: torch.Tensor, own_v: torch.Tensor, write_position: torch.Tensor, active: torch.Tensor, *,
                   backend: str = "auto") -> torch.Tensor:
    """[R, H, 1, D]; see the module docstring. ``backend``: "auto" (the kernel on CUDA once its
    self-test passed, else the reference), "fast" (or "triton") or "reference"; with "auto" the
    process setting decides (``ehrfast.backends``: ``EHRFAST_SLOT_ATTENTION``, ``configure``,
    ``use``). Shapes are checked on every call: it costs host time only,
    and none at all when the step is replayed from a CUDA graph."""
    backend = backends.choose("slot_attention", backend)
    args = (q, prefix_k, prefix_v, prefix_valid, own_k, own_v, write_position, active)
    _validate(*args)
    if backend == "fast":
        reason = triton_unavailable_reason(q)
        if reason:
            raise BackendUnavailableError(f"Triton slot attention unavailable: {reason}")
        return _triton_slot_attention(*args)
    if backend == "auto" and q.is_cuda and _auto_uses_triton(q):
        return _triton_slot_attention(*args)
    return slot_attention_reference(*args)


def slot_attention_reference(q, prefix_k, prefix_v, prefix_valid, own_k, own_v, write_position, active) -> torch.Tensor:
    """The torch math: scores over [history; own positions], one softmax, weighted sums."""
    rows, h, _, d = q.shape
    s, _, length, _ = prefix_k.shape
    n, new = rows // s, own_k.shape[2]
    q = q.to(own_k.dtype)
    scale = 1.0 / math.sqrt(d)
    q_by_slot = q.view(s, n, h, d).transpose(1, 2)  # [S, H, n, D]: a slot's rows are its query rows
    prefix_scores = (q_by_slot @ prefix_k.transpose(-1, -2)).float() * scale  # [S, H, n, P]
    prefix_scores = prefix_scores.masked_fill(~prefix_valid[:, None, None, :], float("-inf"))
    own_scores = (q @ own_k.transpose(-1, -2)).float() * scale  # [R, H, 1, K]
    unwritten = torch.arange(new, device=q.device) > write_position.view(rows, 1, 1, 1)
    own_scores = own_scores.masked_fill(unwritten, float("-inf")).view(s, n, h, new).transpose(1, 2)  # [S, H, n, K]
    weights = torch.softmax(torch.cat([prefix_scores, own_scores], dim=-1), dim=-1).to(q.dtype)
    prefix_weights, own_weights = weights.split([length, new], dim=-1)
    y = (prefix_weights @ prefix_v).transpose(1, 2).reshape(rows, h, 1, d)
    y = y + own_weights.transpose(1, 2).reshape(rows, h, 1, new) @ own_v
    return y * active.view(rows, 1, 1, 1).to(y.dtype)


def _validate(q, prefix_k, prefix_v, prefix_valid, own_k, own_v, write_position, active) -> None:
    """Raises ValueError naming the first tensor that does not fit."""
    if q.dim() != 4 or q.shape[2] != 1 or prefix_k.dim() != 4:
        raise InvalidInputError(f"slot attention: q must be [R, H, 1, D] and prefix_k [S, H, P, D], got {tuple(q.shape)}, {tuple(prefix_k.shape)}")
    rows, h, _, d = q.shape
    s, _, p, _ = prefix_k.shape
    expected = {"prefix_k": (s, h, p, d), "prefix_v": (s, h, p, d), "prefix_valid": (s, p), "own_k": (rows, h, own_k.shape[2], d),
                "own_v": (rows, h, own_k.shape[2], d), "write_position": (rows,), "active": (rows,)}
    for name, t in zip(expected, (prefix_k, prefix_v, prefix_valid, own_k, own_v, write_position, active)):
        if tuple(t.shape) != expected[name]:
            raise InvalidInputError(f"slot attention: {name} must be {expected[name]}, got {tuple(t.shape)}")
    if rows % s:
        raise InvalidInputError(f"slot attention: {rows} rows are not a whole number of rows per slot for {s} slots")
    if prefix_valid.dtype != torch.bool or active.dtype != torch.bool or write_position.dtype != torch.int64:
        raise InvalidInputError("slot attention: prefix_valid and active must be bool, write_position int64")
    if len({t.device for t in (q, prefix_k, prefix_v, prefix_valid, own_k, own_v, write_position, active)}) != 1:
        raise InvalidInputError("slot attention: all tensors must be on one device")
    if prefix_k.dtype != prefix_v.dtype or own_k.dtype != own_v.dtype or prefix_k.dtype != own_k.dtype:
        raise InvalidInputError("slot attention: the history and own caches must share one dtype")


def triton_unavailable_reason(q: torch.Tensor) -> str | None:
    """Why the kernel cannot run on these inputs (None when it can); ``_dispatch`` says how."""
    return _dispatch.triton_unavailable_reason(_triton(), q)


def _auto_uses_triton(q: torch.Tensor) -> bool:
    reason = triton_unavailable_reason(q) or _self_test_failure(q.device, q.dtype, q.shape[-1])
    if reason:
        backends.warn_once(f"slot attention falls back to the torch reference: {reason}")
    return reason is None


def random_slot_inputs(slots: int, n: int, heads: int, history: int, new: int, head_dim: int, dtype, device, seed: int = 0):
    """Random inputs of the given sizes (ragged valid histories, a non-contiguous valid range,
    write positions anywhere in [0, new), one finished row) for tests and the self-test."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows = slots * n

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    q = randn(rows, 1, heads, head_dim).transpose(1, 2)  # [R, H, 1, D] over [R, 1, H, D], as the model's heads are
    valid = torch.arange(history)[None, :] >= torch.randint(0, history, (slots, 1), generator=gen)
    valid[:, :2] |= torch.rand(slots, min(2, history), generator=gen) < 0.5  # prefix models: soft tokens before the left padding
    write_position = torch.randint(0, new, (rows,), generator=gen)
    active = torch.ones(rows, dtype=torch.bool)
    active[rows // 2] = False
    return (q, randn(slots, heads, history, head_dim), randn(slots, heads, history, head_dim), valid.to(device),
            randn(rows, heads, new, head_dim), randn(rows, heads, new, head_dim), write_position.to(device), active.to(device))


@functools.cache
def _self_test_failure(device: torch.device, dtype: torch.dtype, head_dim: int) -> str | None:
    """Why the kernel cannot be trusted on this (device, dtype, head dim), or None."""
    inputs = random_slot_inputs(3, 5, 2, 70, 40, head_dim, dtype, device)
    return output_mismatch("the Triton slot-attention kernel", lambda: _triton_slot_attention(*inputs),
                           lambda: slot_attention_reference(*(t.float() if t.is_floating_point() else t for t in inputs)), dtype,
                           torch.device(device))


@functools.cache
def _triton():
    try:
        from ehrfast.model.kernels import _slot_attention_triton
    except ImportError:
        return None
    return _slot_attention_triton


def _triton_slot_attention(q, prefix_k, prefix_v, prefix_valid, own_k, own_v, write_position, active) -> torch.Tensor:
    kernels = _triton()
    rows, h, _, d = q.shape
    s, _, length, _ = prefix_k.shape
    q2 = q[:, :, 0].to(own_k.dtype)  # [R, H, D], in the cache's dtype as in the reference
    tensors = [q2, prefix_k, prefix_v, own_k, own_v]
    if any(t.stride(-1) != 1 for t in tensors):
        q2, prefix_k, prefix_v, own_k, own_v = (t.contiguous() for t in tensors)
    out = own_k.new_empty(rows, 1, h, d)  # heads merge for free afterwards
    config = kernels.launch_config(s, h, rows // s, d)
    kernels.slot_decode[config.pop("grid")](
        q2, prefix_k, prefix_v, prefix_valid.view(torch.uint8), own_k, own_v, write_position, active.view(torch.uint8), out,
        *q2.stride()[:2], *prefix_k.stride()[:3], *prefix_v.stride()[:3], prefix_valid.stride(0),
        *own_k.stride()[:3], *own_v.stride()[:3], out.stride(0), out.stride(2),
        rows // s, length, d, 1.0 / math.sqrt(d),
        **_dispatch.dot_options(own_k.dtype, q.is_cuda), **config)
    return out.transpose(1, 2)
