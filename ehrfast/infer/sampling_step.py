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


# ---- competing events (ARES.md S1) -------------------------------------------------------------
# A row's end reason; 0 while it runs.
END_RUNNING, END_EVENT, END_TIME_LIMIT, END_MAX_TOKENS, END_TARGET_ONLY = 0, 1, 2, 3, 4
END_REASONS = {END_EVENT: "event", END_TIME_LIMIT: "time_limit", END_MAX_TOKENS: "max_tokens", END_TARGET_ONLY: "target_only"}


@dataclass(frozen=True)
class EventSettings:
    """The competing events of a task: ``event_class`` [V] int64 (−1: not an event, else the
    class 0 … n_events−1), ``time_edges_us`` [B−1] float64 increasing (the time bins of the
    per-class path estimate: bin b holds elapsed times in [edge[b−1], edge[b])),
    ``survival_epsilon`` (a row whose Monte-Carlo draw has met an event stops once its survival
    falls below it) and ``stop_at_event`` (pure Monte Carlo: stop at the first drawn event)."""

    event_class: torch.Tensor
    n_events: int
    time_edges_us: torch.Tensor
    survival_epsilon: float = 1e-4
    stop_at_event: bool = False

    @property
    def n_bins(self) -> int:
        return len(self.time_edges_us) + 1

    def class_matrix(self, dtype: torch.dtype) -> torch.Tensor:
        """[V, E] one-hot of each token's event class (zero rows for non-events), built once."""
        cached = self.__dict__.get("_class_matrix")
        if cached is None or cached.dtype != dtype:
            cached = torch.nn.functional.one_hot((self.event_class.long() + 1), self.n_events + 1)[:, 1:].to(dtype)
            object.__setattr__(self, "_class_matrix", cached)
        return cached


@dataclass
class EventRecord:
    """Per-row event outputs of a decode batch, updated in place by ``event_step``. [n_rows]:
    mc_event int16 (the class of the first event the Monte-Carlo draw met, −1: none yet),
    mc_token int64, mc_step int32 (the step of that draw), mc_elapsed_us float64 (elapsed time
    before the event token), end_reason int8 (``END_*``), end_elapsed_us float64; and the path
    estimate's accumulators cif [n_rows, E], cif_time [n_rows, E, B] float64 (Σ S_prev · p_e,
    not yet normalized: see ``normalized``)."""

    mc_event: torch.Tensor
    mc_token: torch.Tensor
    mc_step: torch.Tensor
    mc_elapsed_us: torch.Tensor
    end_reason: torch.Tensor
    end_elapsed_us: torch.Tensor
    cif: torch.Tensor
    cif_time: torch.Tensor

    @classmethod
    def empty(cls, n_rows: int, n_events: int, n_bins: int, device) -> EventRecord:
        def full(value, dtype, *shape):
            return torch.full((n_rows, *shape), value, dtype=dtype, device=device)

        return cls(full(-1, torch.int16), full(-1, torch.int64), full(-1, torch.int32), full(float("nan"), torch.float64),
                   full(END_RUNNING, torch.int8), full(0.0, torch.float64), full(0.0, torch.float64, n_events),
                   full(0.0, torch.float64, n_events, n_bins))

    def restart(self, rows: torch.Tensor) -> None:
        for t, value in ((self.mc_event, -1), (self.mc_token, -1), (self.mc_step, -1), (self.mc_elapsed_us, float("nan")),
                         (self.end_reason, END_RUNNING), (self.end_elapsed_us, 0.0), (self.cif, 0.0), (self.cif_time, 0.0)):
            t[rows] = value


def normalized(cif: torch.Tensor, cif_time: torch.Tensor, log_survival: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cif [r, E], cif_time [r, E, B], residual [r]) of finished rows: the accumulators scaled so
    that Σ_e cif[e] = 1 − S_end exactly, S_end = exp(log_survival) being the residual — with one
    class, cif[0] is bit for bit the path probability 1 − S_end of a target-set run."""
    residual = torch.exp(log_survival)
    total = cif.sum(-1, keepdim=True)
    share = torch.where(total > 0, cif / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(cif))
    scale = torch.where(total > 0, (1.0 - residual).unsqueeze(-1) / torch.where(total > 0, total, torch.ones_like(total)),
                        torch.zeros_like(total))
    return (1.0 - residual).unsqueeze(-1) * share, cif_time * scale.unsqueeze(-1), residual


def event_step(logits: torch.Tensor, state: SamplerState, settings: StepSettings, events: EventSettings, record: EventRecord) -> torch.Tensor:
    """One step with competing events (the torch reference): the same draws and survival path
    as ``reference_step`` with the events as the target set, plus per row the first event the
    Monte-Carlo draw meets (class, token, step, elapsed time before it), the path estimate per
    class and time bin, and the end reason. A row stops when its elapsed time exceeds
    ``settings.horizon_us`` (the time limit, ``>`` as the reference), at the token cap, when all
    mass is on events, or once it has met an event and its survival is below
    ``events.survival_epsilon`` (at once with ``events.stop_at_event``). Returns p_event
    [n_rows] float64 (0 for finished rows)."""
    keys, samples, steps = (t.cpu().numpy() for t in (state.subject_keys, state.sample_index, state.generated))
    u1, u2 = (torch.as_tensor(u, device=logits.device) for u in uniform_pair(settings.seed, keys, samples, steps))
    probs = nucleus(torch.softmax(logits.double() / settings.temperature, dim=-1), settings.top_p)
    is_event = settings.target_mask
    on_event = probs * is_event
    p_event = on_event.sum(-1)
    drawn = _inverse_cdf(probs, u1)
    off_event = probs - on_event
    target_only = off_event.sum(-1) <= 0
    token = _inverse_cdf(torch.where(target_only.unsqueeze(-1), torch.ones_like(off_event), off_event), u2)

    alive = state.alive
    p_event = torch.where(alive, p_event, torch.zeros_like(p_event))
    survival = torch.exp(state.log_survival)
    classes = events.event_class
    p_class = probs @ events.class_matrix(probs.dtype)  # [B, E]: one pass over the vocabulary, not one per class
    gain = torch.where(alive.unsqueeze(-1), survival.unsqueeze(-1) * p_class, torch.zeros_like(p_class))
    record.cif += gain
    time_bin = torch.searchsorted(events.time_edges_us, state.elapsed_us.contiguous(), right=True)
    record.cif_time[torch.arange(len(time_bin), device=logits.device), :, time_bin] += gain

    first = alive & is_event[drawn] & (record.mc_event < 0)
    record.mc_event = torch.where(first, classes[drawn].to(torch.int16), record.mc_event)
    record.mc_token = torch.where(first, drawn, record.mc_token)
    record.mc_step = torch.where(first, state.generated, record.mc_step)
    record.mc_elapsed_us = torch.where(first, state.elapsed_us, record.mc_elapsed_us)

    state.log_survival += torch.log1p(-p_event.clamp(max=1.0))
    state.hit |= alive & is_event[drawn]
    state.generated += alive.to(torch.int32)
    state.elapsed_us += torch.where(alive, settings.durations_us[token], torch.zeros_like(state.elapsed_us))
    state.next_token = torch.where(alive, token, torch.zeros_like(token))

    met = record.mc_event >= 0
    event_done = met & (torch.exp(state.log_survival) < events.survival_epsilon) if not events.stop_at_event else met
    reason = torch.full_like(record.end_reason, END_RUNNING)
    for condition, code in ((state.generated >= settings.max_new_tokens, END_MAX_TOKENS), (state.elapsed_us > settings.horizon_us, END_TIME_LIMIT),
                            (target_only, END_TARGET_ONLY), (event_done, END_EVENT)):  # the last that holds wins
        reason = torch.where(condition, torch.full_like(reason, code), reason)
    stopping = alive & (reason != END_RUNNING)
    record.end_reason = torch.where(stopping, reason, record.end_reason)
    record.end_elapsed_us = torch.where(stopping, state.elapsed_us, record.end_elapsed_us)
    state.alive = alive & ~stopping
    return p_event
