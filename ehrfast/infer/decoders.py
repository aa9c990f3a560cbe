"""Next-token logits for trajectory sampling, behind one small interface (``sample_trajectories``
drives it):

* ``begin(n_subjects, n_samples, longest_context) -> slots``: get ready; a batch decodes
  ``slots`` subjects × ``n_samples`` rows, slot-major (slot s owns rows s·n … s·n + n − 1);
* ``fill(slot_ids, contexts, prs, prefix_lengths=None) -> logits [g·n, V]``: start subjects in
  the given slots (``prefix_lengths``: each context's static prefix, kept when a window slides);
* ``step(token [slots·n], alive [slots·n] bool) -> logits [slots·n, V]``: append one token to
  every row; rows not alive (finished) may get any logits.

A slot is refilled as soon as its subject's samples have all finished (continuous batching),
so rows do not sit idle while other subjects' timelines run on.

What is reproducible: the random stream is keyed by (seed, subject, sample, step), never by the
batch. In the default mode the logits come from batched matmuls whose shapes depend on which
subjects share a batch (slot count, left padding to the longest context of a prefill group), and
floating-point rounding depends on the shapes: a row's logits can differ in the last bits between
two batchings, and a draw that falls within that distance of a boundary goes the other way —
after which the two trajectories diverge. Estimates agree in distribution, not bit for bit. For
bit-identical results across slot counts and batch sizes, use the deterministic mode
(``IsolatedDecoder``; ``ehrfast score --deterministic``), which computes every subject's logits
on shapes set by that subject alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from ehrfast.errors import InvalidInputError
from ehrfast.model import decoding


class RecomputeDecoder:
    """Runs the whole (windowed) sequence every step — works for any
    ``model(idx [B, L], prs=[B, n_traits] | None) -> logits [B, L, V]``. One slot: one subject
    at a time. When the sequence outgrows ``window`` the model sees the subject's static prefix
    (``prefix_lengths`` given to ``fill``; none: 0) and the most recent tokens after it, at
    positions 0 … window − 1, as the reference recomputes (ARES.md S4)."""

    def __init__(self, model: Callable, window: int | None, device: str):
        self.model, self.window, self.device = model, window, device

    def begin(self, n_subjects: int, n_samples: int, longest_context: int) -> int:
        self.n = n_samples
        return 1

    def fill(self, slot_ids: np.ndarray, contexts: Sequence[np.ndarray], prs: np.ndarray | None,
             prefix_lengths: Sequence[int] | None = None) -> torch.Tensor:
        (context,) = contexts
        self.prefix = 0 if prefix_lengths is None else int(prefix_lengths[0])
        if self.window is not None and self.prefix >= self.window:
            raise InvalidInputError(f"a static prefix of {self.prefix} tokens leaves no room in a window of {self.window}")
        self.idx = torch.as_tensor(np.asarray(context, np.int64), device=self.device).repeat(self.n, 1)
        self.prs = None if prs is None else torch.as_tensor(prs, dtype=torch.float32, device=self.device).repeat(self.n, 1)
        return self._last_logits()

    def step(self, token: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
        self.idx = torch.cat([self.idx, token.unsqueeze(-1)], dim=1)
        return self._last_logits()

    def view(self) -> torch.Tensor:
        """[n, ≤ window] the tokens the model reads now: all of them, or the prefix + the tail."""
        if self.window is None or self.idx.shape[1] <= self.window:
            return self.idx
        tail = self.window - self.prefix
        return torch.cat([self.idx[:, : self.prefix], self.idx[:, -tail:]], dim=1)

    def _last_logits(self) -> torch.Tensor:
        with torch.no_grad():
            return self.model(self.view(), prs=self.prs)[:, -1]


class CachedDecoder:
    """A ``GPT`` with a KV cache (``decoding.slot_state``): ``subjects_per_batch`` subject slots, each
    history prefilled once and read in place by the subject's samples (no n× copy of it, and a
    step reads it once per subject); soft-token keys/values computed once per subject. Fixed
    shapes: with ``cuda_graphs`` (default: on CUDA devices) every decode step after the first
    is a replay of one captured CUDA graph, so the GPU does not wait on Python for each kernel
    launch; refilling a slot writes into the same buffers, so the graph stays valid. Needs
    context + max_new_tokens to fit the model's window (``fits``)."""

    def __init__(self, model, max_new_tokens: int, device: str, subjects_per_batch: int = 32, cuda_graphs: bool | None = None):
        self.model, self.max_new_tokens, self.device = model, max_new_tokens, device
        self.subjects_per_batch = subjects_per_batch
        is_cuda = str(device).startswith("cuda")
        self.cuda_graphs = is_cuda if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and not is_cuda:
            raise InvalidInputError(f"cuda_graphs needs a CUDA device, got {device!r}")

    def fits(self, context_len: int) -> bool:
        return context_len + self.max_new_tokens <= self.model.config.token_window

    def begin(self, n_subjects: int, n_samples: int, longest_context: int) -> int:
        """Allocates the slots (``decoding.slot_state`` raises when the contexts do not fit)."""
        self.n = n_samples
        slots = max(1, min(self.subjects_per_batch, n_subjects))
        self.state = decoding.slot_state(self.model, slots, n_samples, longest_context, self.max_new_tokens)
        self.graph, self.steps = None, 0
        return slots

    def fill(self, slot_ids: np.ndarray, contexts: Sequence[np.ndarray], prs: np.ndarray | None,
             prefix_lengths: Sequence[int] | None = None) -> torch.Tensor:
        """``prefix_lengths`` is not needed: every context and its new tokens fit the window."""
        longest = max(len(ctx) for ctx in contexts)
        idx = np.zeros((len(contexts), longest), np.int64)
        for row, ctx in enumerate(contexts):
            idx[row, longest - len(ctx):] = ctx
        pad = torch.as_tensor([longest - len(ctx) for ctx in contexts], device=self.device)
        rows_prs = None if prs is None else torch.as_tensor(np.asarray(prs), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            logits = decoding.fill_slots(self.model, self.state, torch.as_tensor(slot_ids, dtype=torch.long, device=self.device),
                                           torch.as_tensor(idx, device=self.device), rows_prs, pad=pad)
        return logits.repeat_interleave(self.n, 0)

    def step(self, token: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
        """Finished rows (``alive`` False) skip their attention: they read no cache."""
        if alive is not None:
            self.state.active.copy_(alive)
        with torch.no_grad():
            if not self.cuda_graphs:
                return decoding.decode_slots(self.model, token, self.state)
            return self._graph_step(token)

    def _graph_step(self, token: torch.Tensor) -> torch.Tensor:
        """The first step runs eagerly on a side stream (warm-up: lazy library initialization
        must not happen during capture); the second is captured, and every step replays it."""
        self.steps += 1
        if self.steps == 1:
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                logits = decoding.decode_slots(self.model, token, self.state)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return logits
        if self.graph is None:
            self.static_token = token.clone()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):  # records, does not run
                self.static_logits = decoding.decode_slots(self.model, self.static_token, self.state)
        self.static_token.copy_(token)
        self.graph.replay()
        return self.static_logits


class IsolatedDecoder(CachedDecoder):
    """The deterministic mode's KV-cache decoder: every subject is decoded as if it were the only
    one — its own cache sized to its own context (no left padding), its prefill and every step
    a forward pass over its n rows alone — so a row's logits come from the same shapes, hence
    the same reduction order in every matmul and softmax, whatever else is being scored: bit
    for bit the same across slot counts, batch sizes, ranks and label files. The slots still
    refill as subjects finish; what is lost is the batching of subjects into one matmul
    (``benchmarks/RESULTS.md`` states the cost). No CUDA graphs."""

    def __init__(self, model, max_new_tokens: int, device: str, subjects_per_batch: int = 32):
        super().__init__(model, max_new_tokens, device, subjects_per_batch, cuda_graphs=False)

    def begin(self, n_subjects: int, n_samples: int, longest_context: int) -> int:
        self.n = n_samples
        self.states: list = [None] * max(1, min(self.subjects_per_batch, n_subjects))
        self.vocab = self.model.config.vocab_size
        return len(self.states)

    def fill(self, slot_ids: np.ndarray, contexts: Sequence[np.ndarray], prs: np.ndarray | None,
             prefix_lengths: Sequence[int] | None = None) -> torch.Tensor:
        out = []
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        with torch.no_grad():
            for k, (slot, ctx) in enumerate(zip(np.asarray(slot_ids).tolist(), contexts)):
                state = decoding.slot_state(self.model, 1, self.n, len(ctx), self.max_new_tokens)
                idx = torch.as_tensor(np.asarray(ctx, np.int64)[None], device=self.device)
                rows_prs = None if prs is None else torch.as_tensor(np.asarray(prs)[k: k + 1], dtype=torch.float32, device=self.device)
                logits = decoding.fill_slots(self.model, state, zero, idx, rows_prs, pad=zero)
                self.states[slot] = state
                out.append(logits.repeat_interleave(self.n, 0))
        return torch.cat(out)

    def step(self, token: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
        """Each occupied slot's n rows through the model on their own; empty slots get zeros."""
        logits = torch.zeros(len(self.states) * self.n, self.vocab, device=self.device)
        with torch.no_grad():
            for slot, state in enumerate(self.states):
                if state is None:
                    continue
                rows = slice(slot * self.n, (slot + 1) * self.n)
                if alive is not None:
                    if not bool(alive[rows].any()):
                        continue  # all its samples finished: nothing reads these logits
                    state.active.copy_(alive[rows])
                logits[rows] = decoding.decode_slots(self.model, token[rows], state)
        return logits


@contextlib.contextmanager
def reproducible_threads(deterministic: bool, device: str) -> Iterator[None]:
    """With ``deterministic`` on the CPU, torch's intra-op threads pinned to one while inside:
    MKL splits a small matmul's reduction by thread count on some CPUs (AMD EPYC: 1 vs 2 threads
    differ in the last bits), so the same shapes alone do not give the same bits in a 2-thread
    process and in a one-thread Dask worker or torchrun rank."""
    if not deterministic or torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def decoder_for(model, contexts: Sequence[np.ndarray], max_new_tokens: int, device: str,
                deterministic: bool = False) -> CachedDecoder | RecomputeDecoder:
    """The KV-cache decoder when every context leaves room for ``max_new_tokens`` in the model's
    window; else full recomputation, whose window slides (keeping each static prefix).
    ``deterministic``: the KV-cache decoder is ``IsolatedDecoder`` (the recomputing one already
    decodes one subject at a time, on shapes set by that subject alone)."""
    cached = (IsolatedDecoder if deterministic else CachedDecoder)(model, max_new_tokens, device)
    if all(cached.fits(len(c)) for c in contexts):
        return cached

    def forward(idx, prs=None):
        return model(idx, prs=prs) if prs is not None else model(idx)

    return RecomputeDecoder(forward, model.config.token_window, device)
