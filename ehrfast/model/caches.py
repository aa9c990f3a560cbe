"""Key/value caches for incremental decoding (``decoding.py`` drives them).

* ``LayerCache`` / ``DecodeState``: one growing cache per row — any batch, shapes change every
  step (``decoding.prefill`` / ``decoding.decode_reference``).
* ``SlotCache`` / ``SlotState``: S subject slots, each continued by n samples. A slot's history
  is prefilled once and read in place by its n samples (no n× copy, and a decode step reads it
  once per subject, not once per sample); each sample writes its own new positions at its own
  write position. A slot is refilled as soon as its samples finish (continuous batching), and
  every shape is fixed, so a decode step can be captured in a CUDA graph and replayed: all
  state changes are in place.
"""

from __future__ import annotations

import torch

from ehrfast.errors import InvalidInputError
from ehrfast.model.kernels.slot_attention import slot_attention


class LayerCache:
    """One layer's keys and values [B, H, L_max, C/H], preallocated; the first ``length``
    positions are filled."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, length: int):
        self.k, self.v, self.length = k, v, length

    @classmethod
    def empty(cls, batch: int, n_head: int, max_len: int, head_dim: int, like: torch.Tensor) -> LayerCache:
        shape = (batch, n_head, max_len, head_dim)
        return cls(like.new_zeros(shape), like.new_zeros(shape), 0)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stores k, v [B, H, T, C/H] after the filled positions; returns all filled keys, values."""
        end = self.length + k.shape[2]
        if end > self.k.shape[2]:
            raise InvalidInputError(f"the KV cache holds {self.k.shape[2]} positions; {end} needed")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def repeat_reference(self, n: int) -> LayerCache:
        """The cache with each batch row repeated n times (a subject's history copied for its
        samples: what ``SlotState`` avoids; tests compare the two)."""
        return LayerCache(self.k.repeat_interleave(n, 0), self.v.repeat_interleave(n, 0), self.length)


class DecodeState:
    """What ``decode_reference`` needs between steps: per layer the self-attention KV cache and the
    soft tokens' cross-attention keys/values (None without cross-attention); the number of
    cache positions filled; which cache positions are real (not left padding) [B, L_max]; and
    each row's next position [B]."""

    def __init__(self, layers: list[LayerCache], cross: list[tuple[torch.Tensor, torch.Tensor]] | None, length: int,
                 key_valid: torch.Tensor, position: torch.Tensor):
        self.layers, self.cross, self.length = layers, cross, length
        self.key_valid, self.position = key_valid, position

    def repeat_reference(self, n: int) -> DecodeState:
        """Each row repeated n times: one subject's prefilled history copied for its n samples
        (the copy ``SlotState`` avoids; tests compare the two)."""
        cross = [(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in self.cross] if self.cross else None
        return DecodeState([c.repeat_reference(n) for c in self.layers], cross, self.length,
                           self.key_valid.repeat_interleave(n, 0), self.position.repeat_interleave(n, 0))


class SlotCache:
    """One layer's keys and values for S slots × n samples (rows slot-major: slot s owns rows
    s·n … s·n + n − 1). The slot's history sits right-aligned in ``prefix_k``/``prefix_v``
    [S, H, P, C/H] (``prefix_valid`` [S, P] marks the real positions); each row's new keys and
    values go to ``k``/``v`` [S·n, H, K, C/H] at ``write_position`` [S·n]; ``active`` [S·n] says
    which rows' outputs are needed. The position and row tensors belong to the ``SlotState``
    and are shared by every layer."""

    def __init__(self, slots: int, n: int, n_head: int, prefix_capacity: int, max_new_tokens: int, head_dim: int,
                 like: torch.Tensor, prefix_valid: torch.Tensor, write_position: torch.Tensor, active: torch.Tensor):
        # zeros, not empty: attention reads unfilled positions behind a mask, and a masked-out
        # NaN would still poison the weighted sum (0 · NaN)
        self.prefix_k = like.new_zeros(slots, n_head, prefix_capacity, head_dim)
        self.prefix_v = like.new_zeros(slots, n_head, prefix_capacity, head_dim)
        self.k = like.new_zeros(slots * n, n_head, max_new_tokens, head_dim)
        self.v = like.new_zeros(slots * n, n_head, max_new_tokens, head_dim)
        self.prefix_valid, self.write_position, self.active = prefix_valid, write_position, active

    def fill(self, slot_ids: torch.Tensor, prefilled: LayerCache) -> None:
        """Copies the g prefilled histories [g, H, L, C/H] into ``slot_ids`` [g], right-aligned."""
        length = prefilled.length
        start = self.prefix_k.shape[2] - length
        self.prefix_k[slot_ids, :, start:] = prefilled.k[:, :, :length].to(self.prefix_k.dtype)
        self.prefix_v[slot_ids, :, start:] = prefilled.v[:, :, :length].to(self.prefix_v.dtype)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Stores this step's k, v [S·n, H, 1, C/H] at each row's write position; returns
        attention over the row's slot history and its own new positions, [S·n, H, 1, C/H]
        (``kernels.slot_attention``: the Triton kernel on CUDA; zeros for inactive rows)."""
        rows, h, _, d = k.shape
        at = self.write_position.view(rows, 1, 1, 1).expand(rows, h, 1, d)
        self.k.scatter_(2, at, k.to(self.k.dtype))
        self.v.scatter_(2, at, v.to(self.v.dtype))
        return slot_attention(q, self.prefix_k, self.prefix_v, self.prefix_valid, self.k, self.v, self.write_position, self.active)


class SlotState:
    """Decoding state of S slots × n samples (``slot_state``): per layer a ``SlotCache``;
    the soft tokens' cross-attention keys/values per row [S·n, H, M, C/H] (None without
    cross-attention); ``write_position`` [S·n] (the next own-cache position of each row),
    ``position`` [S·n] (each row's next token position), ``prefix_valid`` [S, P] and ``active``
    [S·n] (rows still sampling: the others' attention is skipped — set it before each step).
    Everything is preallocated and updated in place."""

    def __init__(self, slots: int, n: int, layers: int, n_head: int, head_dim: int, prefix_capacity: int, max_new_tokens: int,
                 n_soft_cross: int, like: torch.Tensor, max_position: int):
        device = like.device
        self.slots, self.n, self.prefix_capacity, self.max_new_tokens, self.max_position = slots, n, prefix_capacity, max_new_tokens, max_position
        self.write_position = torch.zeros(slots * n, dtype=torch.long, device=device)
        self.position = torch.zeros(slots * n, dtype=torch.long, device=device)
        self.prefix_valid = torch.zeros(slots, prefix_capacity, dtype=torch.bool, device=device)
        self.active = torch.ones(slots * n, dtype=torch.bool, device=device)
        self.layers = [SlotCache(slots, n, n_head, prefix_capacity, max_new_tokens, head_dim, like, self.prefix_valid, self.write_position,
                                 self.active) for _ in range(layers)]
        shape = (slots * n, n_head, n_soft_cross, head_dim)
        self.cross = [(like.new_zeros(shape), like.new_zeros(shape)) for _ in range(layers)] if n_soft_cross else None

    def rows(self, slot_ids: torch.Tensor) -> torch.Tensor:
        """The rows [g·n] of ``slot_ids`` [g], slot-major."""
        return (slot_ids[:, None] * self.n + torch.arange(self.n, device=slot_ids.device)).reshape(-1)

    def fill(self, slot_ids: torch.Tensor, prefilled: DecodeState) -> None:
        """Puts g prefilled histories (``prefill`` with no room for new tokens) into
        ``slot_ids`` [g] and restarts their n samples each."""
        length = prefilled.length
        if length > self.prefix_capacity:
            raise InvalidInputError(f"a history of {length} positions does not fit the slots' {self.prefix_capacity}")
        for cache, layer in zip(self.layers, prefilled.layers, strict=True):
            cache.fill(slot_ids, layer)
        start = self.prefix_capacity - length
        self.prefix_valid[slot_ids] = False
        self.prefix_valid[slot_ids, start:] = prefilled.key_valid[:, :length]
        rows = self.rows(slot_ids)
        if self.cross:
            for (k, v), (k_new, v_new) in zip(self.cross, prefilled.cross, strict=True):
                k[rows] = k_new.repeat_interleave(self.n, 0).to(k.dtype)
                v[rows] = v_new.repeat_interleave(self.n, 0).to(v.dtype)
        self.write_position[rows] = 0
        self.position[rows] = prefilled.position.repeat_interleave(self.n, 0)
        self.active[rows] = True

    def advance(self) -> None:
        """After a decode step: every row moves one position on. Rows that have finished keep
        being decoded until their slot is refilled; clamping keeps their indices in range."""
        self.write_position.add_(1).clamp_(max=self.max_new_tokens - 1)
        self.position.add_(1).clamp_(max=self.max_position)
