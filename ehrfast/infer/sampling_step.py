"""One sampling step for a batch of rows — the torch reference the CUDA kernel must reproduce
(``csrc/sampler/sampling_step.cu``; ``cuda_sampling.kernel_step`` runs it), and the state both
update in place.

For each row: softmax of the logits at a temperature, the tie-inclusive nucleus (top-p), then
two Philox draws keyed by (seed, subject, sample, the row's own step): the first decides
whether the path hit the target set T; the second draws the next token from the nucleus with T
removed, so the path goes on and its probability of reaching T stays exact. The row's
log-survival Σ log(1 − p_T), elapsed time and stop rules are updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ehrfast.infer.rng import uniform_pair


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keeps every token whose strictly more likely tokens hold less than ``top_p`` of the mass
    — the smallest set of most likely tokens reaching ``top_p``, with ties at the boundary all
    kept (so the set does not depend on a sort order) — renormalized. probs [B, V] -> [B, V]."""
    if top_p >= 1.0:
        return probs
    descending = probs.sort(dim=-1, descending=True).values
    # mass of the k most likely tokens, k = 0 … V: summed directly (as the CUDA kernel does),
    # not as total minus the rest, whose cancellation could move a boundary tie
    cumulative = torch.nn.functional.pad(descending.cumsum(-1), (1, 0))
    total = cumulative[:, -1:]
    n_above = torch.searchsorted(-descending, -probs)  # tokens strictly more likely than each token
    above = cumulative.gather(-1, n_above)
    kept = torch.where(above < top_p * total, probs, torch.zeros_like(probs))
    return kept / kept.sum(-1, keepdim=True)


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index of the first token whose cumulative mass exceeds u · total. probs [B, V], u [B]."""
    cdf = probs.cumsum(-1)
    threshold = (u * cdf[:, -1]).unsqueeze(-1)
    return torch.clamp((cdf <= threshold).sum(-1), max=probs.shape[-1] - 1)


def sampling_step(logits: torch.Tensor, u_first: torch.Tensor, u_continue: torch.Tensor, target_mask: torch.Tensor,
                  temperature: float = 1.0, top_p: float = 1.0):
    """One step for B sequences: logits [B, V] float, u_* [B] in [0, 1), target_mask [V] bool.
    Returns (next token [B] — never a target, p_target [B], hit [B] bool, target_only [B] bool
    where all the mass is on T and no continuation exists)."""
    probs = nucleus(torch.softmax(logits.double() / temperature, dim=-1), top_p)
    on_target = probs * target_mask
    p_target = on_target.sum(-1)
    hit = target_mask[_inverse_cdf(probs, u_first)]
    off_target = probs - on_target
    target_only = off_target.sum(-1) <= 0
    safe = torch.where(target_only.unsqueeze(-1), torch.ones_like(off_target), off_target)
    return _inverse_cdf(safe, u_continue), p_target, hit, target_only


@dataclass(frozen=True)
class StepSettings:
    """What every sampling step of one task reads: target_mask / stop_mask [V] bool,
    durations_us [V] float64 (time each token adds), and the task's scalars."""

    target_mask: torch.Tensor
    stop_mask: torch.Tensor
    durations_us: torch.Tensor
    horizon_us: float
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class SamplerState:
    """Per-row state of a decode batch, updated in place by each step. All [n_rows]:
    subject_keys / sample_index int64 (the RNG counter), alive bool, elapsed_us float64,
    log_survival float64 (Σ log(1 − p_target)), hit bool (the first draw landed in T),
    generated int32, next_token int64 (0 for rows that have finished)."""

    subject_keys: torch.Tensor
    sample_index: torch.Tensor
    alive: torch.Tensor
    elapsed_us: torch.Tensor
    log_survival: torch.Tensor
    hit: torch.Tensor
    generated: torch.Tensor
    next_token: torch.Tensor

    @classmethod
    def empty(cls, n_rows: int, device) -> SamplerState:
        """``n_rows`` finished rows, to be started with ``restart``."""
        def zeros(dtype):
            return torch.zeros(n_rows, dtype=dtype, device=device)

        return cls(zeros(torch.int64), zeros(torch.int64), zeros(torch.bool), zeros(torch.float64), zeros(torch.float64),
                   zeros(torch.bool), zeros(torch.int32), zeros(torch.int64))

    @classmethod
    def start(cls, subject_keys: np.ndarray, sample_index: np.ndarray, device) -> SamplerState:
        """Fresh rows for (subject, sample) pairs."""
        state = cls.empty(len(subject_keys), device)
        state.restart(torch.arange(len(subject_keys), device=device), subject_keys, sample_index)
        return state

    def restart(self, rows: torch.Tensor, subject_keys: np.ndarray, sample_index: np.ndarray) -> None:
        """Starts ``rows`` [r] afresh for new (subject, sample) pairs, in place (the other rows
        are untouched: continuous batching refills a batch while it runs)."""
        device = self.alive.device
        self.subject_keys[rows] = torch.as_tensor(np.asarray(subject_keys, np.int64), device=device)
        self.sample_index[rows] = torch.as_tensor(np.asarray(sample_index, np.int64), device=device)
        self.alive[rows] = True
        for t in (self.elapsed_us, self.log_survival, self.hit, self.generated, self.next_token):
            t[rows] = 0


def reference_step(logits: torch.Tensor, state: SamplerState, settings: StepSettings) -> torch.Tensor:
    """The torch reference of one step (the CUDA kernel computes the same): draws for every
    row — a row's step number, the last counter of its random stream, is the number of tokens it
    has generated — updates the rows still alive, returns p_target [n_rows] float64 (0 for
    finished rows)."""
    keys, samples, steps = (t.cpu().numpy() for t in (state.subject_keys, state.sample_index, state.generated))
    u1, u2 = (torch.as_tensor(u, device=logits.device) for u in uniform_pair(settings.seed, keys, samples, steps))
    token, p_target, step_hit, target_only = sampling_step(logits, u1, u2, settings.target_mask, settings.temperature, settings.top_p)
    alive = state.alive
    p_target = torch.where(alive, p_target, torch.zeros_like(p_target))
    state.log_survival += torch.log1p(-p_target.clamp(max=1.0))
    state.hit |= alive & step_hit
    state.generated += alive.to(torch.int32)
    state.elapsed_us += torch.where(alive, settings.durations_us[token], torch.zeros_like(state.elapsed_us))
    state.next_token = torch.where(alive, token, torch.zeros_like(token))
    state.alive = alive & ~target_only & ~settings.stop_mask[token] & (state.elapsed_us < settings.horizon_us) & \
        (state.generated < settings.max_new_tokens)
    return p_target
