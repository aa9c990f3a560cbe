"""Trajectory sampling with path-computed probabilities — the torch reference engine.

For each subject, N futures are sampled from the model, one token per step. At every step
the model's probability mass on the target set T (after temperature and top-p) is p_i; the
path probability accumulates P = 1 − Π(1 − p_i) in log space until the horizon, a stop token
or K tokens. Two estimates come out of the same N paths:

* Monte-Carlo frequency: the share of paths whose sampled token fell in T before the horizon.
* Path probability: paths continue with a non-target token (drawn from the distribution
  renormalized off T, with a second uniform) so that P along the path is the exact
  probability of reaching T on it; averaging P over paths is unbiased and has lower variance.

Uniforms come from Philox4x32-10 keyed by the seed with (subject, sample, step) as the counter,
so results do not depend on batching. The decoders (``decoders.py``: KV cache in subject slots,
refilled as subjects finish, CUDA graphs) produce the logits; one step is ``sampling_step.py``'s
``reference_step`` or the CUDA kernel that computes the same (``cuda_sampling.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ehrfast import backends
from ehrfast.errors import BackendUnavailableError, InvalidInputError
from ehrfast.infer import cuda_sampling
from ehrfast.infer.decoders import CachedDecoder, RecomputeDecoder
from ehrfast.infer.sampling_step import (
    EventRecord,
    EventSettings,
    SamplerState,
    StepSettings,
    event_step,
    normalized,
    reference_step,
)

AGGREGATIONS = ("mean", "median", "max")
ESTIMATORS = ("path", "mc")


@dataclass(frozen=True)
class SamplingSettings:
    """How futures are sampled for one task: ``horizon_us`` (a path stops once its elapsed model
    time reaches it), ``n_samples`` paths per subject, at most ``max_new_tokens`` tokens per
    path, ``temperature`` and ``top_p`` of the next-token distribution, ``stop_ids`` (tokens
    that end a path), ``aggregation`` of the path probabilities over the samples, and the
    ``seed`` of the random stream.

    With competing events (``sample_trajectories(..., event_class=...)``, ARES.md S1):
    ``horizon_us`` is the time limit (a path stops once its elapsed time exceeds it),
    ``time_edges_us`` the edges of the path estimate's time bins, ``survival_epsilon`` the
    survival below which a path that has met an event stops, and ``estimator`` "path" (run on
    for the path estimate) or "mc" (stop at the first drawn event, as the reference)."""

    horizon_us: float
    n_samples: int = 10
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    stop_ids: tuple[int, ...] = ()
    aggregation: str = "mean"
    seed: int = 0
    time_edges_us: tuple[float, ...] = ()
    survival_epsilon: float = 1e-4
    estimator: str = "path"

    def __post_init__(self):
        edges = tuple(float(e) for e in self.time_edges_us)
        object.__setattr__(self, "time_edges_us", edges)
        if any(not b > a for a, b in zip(edges, edges[1:])) or not all(np.isfinite(edges)):
            raise InvalidInputError(f"time_edges_us must increase strictly, got {list(edges)}")
        if self.estimator not in ESTIMATORS:
            raise InvalidInputError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if not 0 <= self.survival_epsilon < 1:
            raise InvalidInputError(f"survival_epsilon must be in [0, 1), got {self.survival_epsilon}")
        if self.aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if not self.n_samples >= 1 or not self.max_new_tokens >= 1:
            raise InvalidInputError(f"n_samples and max_new_tokens must be >= 1, got {self.n_samples} and {self.max_new_tokens}")
        if not self.temperature > 0 or not 0 < self.top_p <= 1 or not self.horizon_us > 0:
            raise InvalidInputError(f"need temperature > 0, 0 < top_p <= 1 and horizon_us > 0, got {self.temperature}, "
                                    f"{self.top_p} and {self.horizon_us}")
        object.__setattr__(self, "stop_ids", tuple(int(t) for t in self.stop_ids))


@dataclass
class EventSamples:
    """Per sample, with competing events (all [n_subjects, N] unless noted): the first event the
    Monte-Carlo draw met — ``mc_event`` int16 (class, −1: none), ``mc_token`` int64,
    ``mc_step`` int32, ``mc_elapsed_us`` float64 (elapsed time before the event token; NaN
    without one) —, ``end_reason`` int8 (``sampling_step.END_*``), ``end_elapsed_us``,
    ``tokens`` int32 generated; and the path estimate: ``cif`` [n, N, E] (probability that event
    e comes first), ``cif_time`` [n, N, E, B] (and within time bin b of ``time_edges_us``),
    ``residual`` (probability of no event before the path ended). Σ_e cif + residual = 1."""

    mc_event: np.ndarray
    mc_token: np.ndarray
    mc_step: np.ndarray
    mc_elapsed_us: np.ndarray
    end_reason: np.ndarray
    end_elapsed_us: np.ndarray
    tokens: np.ndarray
    cif: np.ndarray
    cif_time: np.ndarray
    residual: np.ndarray
    time_edges_us: np.ndarray


@dataclass
class SamplingResult:
    path_probability: np.ndarray  # [n_subjects] aggregated over samples
    mc_frequency: np.ndarray  # [n_subjects] share of samples that hit T before the horizon
    sample_path_probability: np.ndarray  # [n_subjects, N]
    sample_hit: np.ndarray  # [n_subjects, N] bool
    tokens_generated: np.ndarray  # [n_subjects] total over the N samples
    events: EventSamples | None = None  # with competing events only


def sample_trajectories(
    model: Callable | CachedDecoder | RecomputeDecoder,
    contexts: Sequence[np.ndarray],
    target_ids: np.ndarray,
    durations_us: np.ndarray,
    settings: SamplingSettings,
    *,
    subject_keys: Sequence[int] | None = None,
    prs: np.ndarray | None = None,
    window: int | None = None,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    step_backend: str | Callable | None = None,
    trajectory_sink: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    event_class: np.ndarray | None = None,
    prefix_lengths: Sequence[int] | None = None,
) -> SamplingResult:
    """Samples ``settings.n_samples`` futures per context. ``model`` is a decoder (``CachedDecoder``,
    ``RecomputeDecoder``) or a callable ``model(idx [B, L], prs=[B, n_traits] | None)`` returning
    logits [B, L, V] (run through ``RecomputeDecoder``); ``durations_us`` [V] is the time each
    token adds (interval tokens); ``subject_keys`` name each subject in the random stream
    (default: its position); ``step_backend`` picks the CUDA kernel or the torch reference for
    the sampling step (``choose_step``; default: the ``sampling_step`` setting of
    ``ehrfast.backends``).

    The decoder holds a few subjects at a time, each in a slot with its n samples; a slot whose
    samples have all finished is refilled with the next subject while the others run on
    (continuous batching). Each row's random stream is keyed by (seed, subject, sample, its own
    step), so results do not depend on which subjects share a batch.

    ``trajectory_sink``, if given, receives the sampled paths of subjects as they finish:
    (subject positions [g] int64, tokens [g, N, steps] int64, elapsed time after each token
    [g, N, steps] float64 µs, tokens per path [g, N] int32 — a path's tokens are its first that
    many entries —, and the step at which the path's Monte-Carlo draw first landed in the
    target set [g, N] int32, -1 if never). The tokens are the survival path the path
    probability follows: never a target token; a Monte-Carlo trajectory is that path up to its
    hit step, then a target token.

    ``event_class`` [V] int (−1: not an event, else its class 0 … E−1) switches to competing
    events (ARES.md S1): the events are the target set (``target_ids`` must be empty), there are
    no stop tokens, and ``SamplingResult.events`` holds each sample's first event and the path
    estimate per class (``EventSamples``), from the torch reference step or the CUDA kernel.

    ``prefix_lengths`` [n_subjects]: each context's static prefix, which a decoder whose window
    slides keeps (``RecomputeDecoder``)."""
    decoder = model if isinstance(model, (CachedDecoder, RecomputeDecoder)) else RecomputeDecoder(model, window, device)
    vocab = len(durations_us)
    n_samples, max_new_tokens = settings.n_samples, settings.max_new_tokens
    events = None
    if event_class is not None:
        events = _event_settings(vocab, event_class, target_ids, settings, device)
        target_ids = np.flatnonzero(np.asarray(event_class) >= 0)
    step = _step_settings(vocab, target_ids, durations_us, settings, device)
    advance = choose_step(step_backend, device, vocab, events)
    keys = np.arange(len(contexts)) if subject_keys is None else np.asarray(subject_keys)
    prs = None if prs is None else np.asarray(prs)
    n = len(contexts)
    run = _SlotRun(contexts, keys, prs, n_samples, device, trajectory_sink, max_new_tokens, progress, events)
    run.prefix_lengths = None if prefix_lengths is None else np.asarray(prefix_lengths, np.int64)
    if n:
        slots = decoder.begin(n, n_samples, max(len(c) for c in contexts))
        run.start(decoder, slots)
        logits = run.fill(np.arange(slots), None)
        check_every = 1 if str(device) == "cpu" else 8  # "which slots finished?" costs a device sync
        for count in itertools.count(1):
            run.sample(advance, logits, step)
            if count % check_every == 0:
                run.harvest()
            if run.busy():
                logits = decoder.step(run.state.next_token, run.state.alive)  # finished rows too: the batch keeps its shape
            elif not run.waiting:
                break
            logits = run.fill(run.free_slots(), logits)
    agg = {"mean": np.mean, "median": np.median, "max": np.max}[settings.aggregation]
    return SamplingResult(agg(run.paths, axis=1), run.hits.mean(axis=1), run.paths, run.hits, run.generated, run.event_samples())


class _SlotRun:
    """The bookkeeping of one ``sample_trajectories`` call: which subject each decoder slot
    holds, the sampler state of the slots' rows (slot-major, n_samples per slot), the subjects
    still waiting, and the results of those that finished."""

    def __init__(self, contexts, keys, prs, n_samples, device, trajectory_sink, max_new_tokens, progress, events=None):
        n = len(contexts)
        self.events = events
        if events is not None:
            e, b = events.n_events, events.n_bins
            self.ev = {"mc_event": np.full((n, n_samples), -1, np.int16), "mc_token": np.full((n, n_samples), -1, np.int64),
                       "mc_step": np.full((n, n_samples), -1, np.int32), "mc_elapsed_us": np.full((n, n_samples), np.nan),
                       "end_reason": np.zeros((n, n_samples), np.int8), "end_elapsed_us": np.zeros((n, n_samples)),
                       "tokens": np.zeros((n, n_samples), np.int32), "cif": np.zeros((n, n_samples, e)),
                       "cif_time": np.zeros((n, n_samples, e, b)), "residual": np.ones((n, n_samples))}
        self.contexts, self.keys, self.prs, self.n_samples, self.device = contexts, keys, prs, n_samples, device
        self.sink, self.max_new_tokens, self.progress = trajectory_sink, max_new_tokens, progress
        self.paths = np.zeros((n, n_samples))
        self.hits = np.zeros((n, n_samples), bool)
        self.generated = np.zeros(n, np.int64)
        self.waiting = list(range(n - 1, -1, -1))  # subjects not started yet, the next one last
        self.prefix_lengths: np.ndarray | None = None

    def start(self, decoder, slots: int) -> None:
        self.decoder = decoder
        self.occupant = np.full(slots, -1)  # the subject each slot holds, -1 when empty
        self.state = SamplerState.empty(slots * self.n_samples, self.device)
        self.record = None if self.events is None else EventRecord.empty(slots * self.n_samples, self.events.n_events, self.events.n_bins,
                                                                         self.device)
        self.recorder = _TrajectoryRecorder(slots * self.n_samples, self.max_new_tokens, self.device) if self.sink else None

    def busy(self) -> bool:
        return bool((self.occupant >= 0).any())

    def free_slots(self) -> np.ndarray:
        return np.flatnonzero(self.occupant < 0)

    def rows(self, slot_ids: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((slot_ids[:, None] * self.n_samples + np.arange(self.n_samples)).ravel(), device=self.device)

    def fill(self, free: np.ndarray, logits: torch.Tensor | None) -> torch.Tensor:
        """Starts the next waiting subjects in the ``free`` slots; their rows' logits [g·N, V]
        come from the decoder's prefill, the other rows' from ``logits`` (None: every slot is free)."""
        take = free[: len(self.waiting)]
        if not len(take):
            return logits
        subjects = np.array([self.waiting.pop() for _ in take], np.int64)
        fresh = self.decoder.fill(take, [self.contexts[s] for s in subjects], None if self.prs is None else self.prs[subjects],
                                  None if self.prefix_lengths is None else self.prefix_lengths[subjects])
        rows = self.rows(take)
        self.state.restart(rows, np.repeat(self.keys[subjects], self.n_samples), np.tile(np.arange(self.n_samples), len(take)))
        if self.record is not None:
            self.record.restart(rows)
        if self.recorder is not None:
            self.recorder.restart(rows)
        self.occupant[take] = subjects
        if logits is None:
            return fresh
        logits[rows] = fresh
        return logits

    def sample(self, advance: Callable, logits: torch.Tensor, settings: StepSettings) -> None:
        """One sampling step for every row (finished rows stay as they are)."""
        was_alive = self.state.alive.clone() if self.recorder is not None else None
        if self.record is not None:
            advance(logits, self.state, settings, self.events, self.record)
        else:
            advance(logits, self.state, settings)
        if self.recorder is not None:
            self.recorder.record(self.state, was_alive)

    def harvest(self) -> None:
        """Collects the subjects whose samples have all finished and frees their slots."""
        running = self.state.alive.view(len(self.occupant), self.n_samples).any(1).cpu().numpy()
        done = np.flatnonzero((self.occupant >= 0) & ~running)
        if not len(done):
            return
        subjects, rows, g, n = self.occupant[done], self.rows(done), len(done), self.n_samples
        self.paths[subjects] = (1.0 - torch.exp(self.state.log_survival[rows])).view(g, n).cpu().numpy()
        self.hits[subjects] = self.state.hit[rows].view(g, n).cpu().numpy()
        counts = self.state.generated[rows].view(g, n).cpu().numpy()
        self.generated[subjects] = counts.sum(1)
        if self.record is not None:
            self._harvest_events(subjects, rows, g, n, counts)
        if self.recorder is not None:
            self.sink(subjects, *self.recorder.paths(rows, counts))
        self.occupant[done] = -1
        if self.progress:
            self.progress(g)


    def _harvest_events(self, subjects, rows, g: int, n: int, counts: np.ndarray) -> None:
        r = self.record
        cif, cif_time, residual = normalized(r.cif[rows], r.cif_time[rows], self.state.log_survival[rows])
        e, b = self.events.n_events, self.events.n_bins
        for name, t in (("mc_event", r.mc_event), ("mc_token", r.mc_token), ("mc_step", r.mc_step), ("mc_elapsed_us", r.mc_elapsed_us),
                        ("end_reason", r.end_reason), ("end_elapsed_us", r.end_elapsed_us)):
            self.ev[name][subjects] = t[rows].view(g, n).cpu().numpy()
        self.ev["tokens"][subjects] = counts
        self.ev["cif"][subjects] = cif.view(g, n, e).cpu().numpy()
        self.ev["cif_time"][subjects] = cif_time.view(g, n, e, b).cpu().numpy()
        self.ev["residual"][subjects] = residual.view(g, n).cpu().numpy()

    def event_samples(self) -> EventSamples | None:
        if self.events is None:
            return None
        return EventSamples(**self.ev, time_edges_us=self.events.time_edges_us.cpu().numpy())


class _TrajectoryRecorder:
    """Every row's sampled tokens and elapsed times by its own step, [rows, K] on the device,
    and the step of its first Monte-Carlo hit [rows] (-1: none yet)."""

    def __init__(self, rows: int, max_new_tokens: int, device):
        self.tokens = torch.zeros(rows, max_new_tokens, dtype=torch.int64, device=device)
        self.elapsed = torch.zeros(rows, max_new_tokens, dtype=torch.float64, device=device)
        self.first_hit = torch.full((rows,), -1, dtype=torch.int32, device=device)
        self.row = torch.arange(rows, device=device)

    def restart(self, rows: torch.Tensor) -> None:
        self.first_hit[rows] = -1  # tokens and times are read only up to each row's count

    def record(self, state: SamplerState, was_alive: torch.Tensor) -> None:
        """After a step: rows that were alive wrote their token at step ``generated − 1``."""
        col = (state.generated.long() - 1).clamp(min=0)
        self.tokens[self.row, col] = torch.where(was_alive, state.next_token, self.tokens[self.row, col])
        self.elapsed[self.row, col] = torch.where(was_alive, state.elapsed_us, self.elapsed[self.row, col])
        first = was_alive & state.hit & (self.first_hit < 0)
        self.first_hit = torch.where(first, col.to(torch.int32), self.first_hit)

    def paths(self, rows: torch.Tensor, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tokens, elapsed [g, N, steps], counts [g, N], first hit [g, N]) of ``rows`` [g·N]."""
        g, n = counts.shape
        steps = max(1, int(counts.max()))
        return (self.tokens[rows, :steps].view(g, n, steps).cpu().numpy(), self.elapsed[rows, :steps].view(g, n, steps).cpu().numpy(),
                counts.astype(np.int32), self.first_hit[rows].view(g, n).cpu().numpy())


def _step_settings(vocab: int, target_ids, durations_us, settings: SamplingSettings, device) -> StepSettings:
    target_mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    target_mask[torch.as_tensor(np.asarray(target_ids, np.int64), device=device)] = True
    stop_mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    if settings.stop_ids:
        stop_mask[torch.as_tensor(list(settings.stop_ids), dtype=torch.long, device=device)] = True
    durations = torch.as_tensor(np.asarray(durations_us, np.float64), device=device)
    return StepSettings(target_mask, stop_mask, durations, float(settings.horizon_us), int(settings.max_new_tokens),
                        float(settings.temperature), float(settings.top_p), int(settings.seed))


def _event_settings(vocab: int, event_class, target_ids, settings: SamplingSettings, device) -> EventSettings:
    classes = np.asarray(event_class)
    if classes.shape != (vocab,) or not np.issubdtype(classes.dtype, np.integer) or (classes < -1).any():
        raise InvalidInputError(f"event_class must be [{vocab}] integers >= -1 (one per token), got shape {classes.shape} {classes.dtype}")
    if target_ids is not None and len(target_ids):
        raise InvalidInputError("with event_class the events are the targets: pass no target_ids")
    if settings.stop_ids:
        raise InvalidInputError("with event_class a path ends at an event, the time limit or the token cap: pass no stop_ids")
    n_events = int(classes.max()) + 1 if len(classes) else 0
    if n_events == 0 or set(np.unique(classes[classes >= 0]).tolist()) != set(range(n_events)):
        raise InvalidInputError(f"event_class must number its classes 0 … E-1 with every class present, got {sorted(set(classes.tolist()))}")
    return EventSettings(torch.as_tensor(classes.astype(np.int16), device=device), n_events,
                         torch.as_tensor(np.asarray(settings.time_edges_us, np.float64), device=device), float(settings.survival_epsilon),
                         settings.estimator == "mc")


def choose_step(backend: str | Callable | None, device, vocab: int, events: EventSettings | None = None) -> Callable:
    """The step function: "reference" (or "torch"), "fast" (or "cuda": the kernel; an error when
    it cannot run) or "auto" (the kernel on a CUDA device when ehrfast._cuda is built and holds
    the vocabulary — and, with competing ``events``, their classes —, else the reference, with one
    warning on a CUDA device). None: the process setting (``ehrfast.backends``,
    ``EHRFAST_SAMPLING_STEP``). With ``events`` the reference is ``event_step``."""
    if callable(backend):  # a step function itself (the tests pass the host build of the kernel)
        return backend
    reference = reference_step if events is None else event_step
    choice = backends.choose("sampling_step", backend)
    if choice == "reference":
        return reference
    why_not = cuda_sampling.unavailable_reason(device, vocab)
    if why_not is None and events is not None and events.n_events > cuda_sampling.MAX_EVENTS:
        why_not = f"{events.n_events} event classes exceed the kernel's {cuda_sampling.MAX_EVENTS}"
    if why_not is None:
        return cuda_sampling.kernel_step
    if choice == "fast":
        raise BackendUnavailableError(f"the CUDA sampling kernel cannot run: {why_not}")
    if str(device).startswith("cuda"):
        backends.warn_once(f"CUDA sampling kernel unavailable ({why_not}); using the torch reference step")
    return reference
