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
refilled as subjects finish, CUDA graphs) produce the logits; the CUDA sampling kernel computes
the same step as ``reference_step`` here, which is also the CPU path.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ehrfast.infer.decoders import CachedDecoder, RecomputeDecoder
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


@dataclass
class SamplingResult:
    path_probability: np.ndarray  # [n_subjects] aggregated over samples
    mc_frequency: np.ndarray  # [n_subjects] share of samples that hit T before the horizon
    sample_path_probability: np.ndarray  # [n_subjects, N]
    sample_hit: np.ndarray  # [n_subjects, N] bool
    tokens_generated: np.ndarray  # [n_subjects] total over the N samples


def sample_trajectories(
    model: Callable | CachedDecoder | RecomputeDecoder,
    contexts: Sequence[np.ndarray],
    target_ids: np.ndarray,
    durations_us: np.ndarray,
    *,
    horizon_us: float,
    n_samples: int = 10,
    max_new_tokens: int = 512,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_ids: Sequence[int] = (),
    aggregation: str = "mean",
    seed: int = 0,
    subject_keys: Sequence[int] | None = None,
    prs: np.ndarray | None = None,
    window: int | None = None,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    step_backend: str = "auto",
    trajectory_sink: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> SamplingResult:
    """Samples ``n_samples`` futures per context. ``model`` is a decoder (``CachedDecoder``,
    ``RecomputeDecoder``) or a callable ``model(idx [B, L], prs=[B, n_traits] | None)`` returning
    logits [B, L, V] (run through ``RecomputeDecoder``); ``durations_us`` [V] is the time each
    token adds (interval tokens); ``subject_keys`` name each subject in the random stream
    (default: its position); ``step_backend`` picks the CUDA kernel or the torch reference for
    the sampling step (``choose_step``).

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
    hit step, then a target token."""
    decoder = model if isinstance(model, (CachedDecoder, RecomputeDecoder)) else RecomputeDecoder(model, window, device)
    vocab = len(durations_us)
    settings = _step_settings(vocab, target_ids, stop_ids, durations_us, horizon_us, max_new_tokens, temperature, top_p, seed, device)
    advance = choose_step(step_backend, device, vocab)
    keys = np.arange(len(contexts)) if subject_keys is None else np.asarray(subject_keys)
    prs = None if prs is None else np.asarray(prs)
    n = len(contexts)
    run = _SlotRun(contexts, keys, prs, n_samples, device, trajectory_sink, max_new_tokens, progress)
    if n:
        slots = decoder.begin(n, n_samples, max(len(c) for c in contexts))
        run.start(decoder, slots)
        logits = run.fill(np.arange(slots), None)
        check_every = 1 if str(device) == "cpu" else 8  # "which slots finished?" costs a device sync
        for step in itertools.count(1):
            run.sample(advance, logits, settings)
            if step % check_every == 0:
                run.harvest()
            if run.busy():
                logits = decoder.step(run.state.next_token, run.state.alive)  # finished rows too: the batch keeps its shape
            elif not run.waiting:
                break
            logits = run.fill(run.free_slots(), logits)
    agg = {"mean": np.mean, "median": np.median, "max": np.max}[aggregation]
    return SamplingResult(agg(run.paths, axis=1), run.hits.mean(axis=1), run.paths, run.hits, run.generated)


class _SlotRun:
    """The bookkeeping of one ``sample_trajectories`` call: which subject each decoder slot
    holds, the sampler state of the slots' rows (slot-major, n_samples per slot), the subjects
    still waiting, and the results of those that finished."""

    def __init__(self, contexts, keys, prs, n_samples, device, trajectory_sink, max_new_tokens, progress):
        n = len(contexts)
        self.contexts, self.keys, self.prs, self.n_samples, self.device = contexts, keys, prs, n_samples, device
        self.sink, self.max_new_tokens, self.progress = trajectory_sink, max_new_tokens, progress
        self.paths = np.zeros((n, n_samples))
        self.hits = np.zeros((n, n_samples), bool)
        self.generated = np.zeros(n, np.int64)
        self.waiting = list(range(n - 1, -1, -1))  # subjects not started yet, the next one last

    def start(self, decoder, slots: int) -> None:
        self.decoder = decoder
        self.occupant = np.full(slots, -1)  # the subject each slot holds, -1 when empty
        self.state = SamplerState.empty(slots * self.n_samples, self.device)
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
        fresh = self.decoder.fill(take, [self.contexts[s] for s in subjects], None if self.prs is None else self.prs[subjects])
        rows = self.rows(take)
        self.state.restart(rows, np.repeat(self.keys[subjects], self.n_samples), np.tile(np.arange(self.n_samples), len(take)))
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
        if self.recorder is not None:
            self.sink(subjects, *self.recorder.paths(rows, counts))
        self.occupant[done] = -1
        if self.progress:
            self.progress(g)


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


def _step_settings(vocab, target_ids, stop_ids, durations_us, horizon_us, max_new_tokens, temperature, top_p, seed, device) -> StepSettings:
    target_mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    target_mask[torch.as_tensor(np.asarray(target_ids, np.int64), device=device)] = True
    stop_mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    if len(stop_ids):
        stop_mask[torch.as_tensor(list(stop_ids), dtype=torch.long, device=device)] = True
    durations = torch.as_tensor(np.asarray(durations_us, np.float64), device=device)
    return StepSettings(target_mask, stop_mask, durations, float(horizon_us), int(max_new_tokens), float(temperature), float(top_p), int(seed))


def choose_step(backend: str, device, vocab: int) -> Callable:
    """The step function: "torch" (the reference), "cuda" (the kernel; an error when it cannot
    run) or "auto" (the kernel on a CUDA device when ehrfast._cuda is built and holds the
    vocabulary, else the reference)."""
    if backend not in ("auto", "torch", "cuda"):
        raise ValueError(f"step_backend must be 'auto', 'torch' or 'cuda', got {backend!r}")
    if backend == "torch":
        return reference_step
    from ehrfast.infer import cuda_sampling

    why_not = cuda_sampling.unavailable_reason(device, vocab)
    if why_not is None:
        return cuda_sampling.kernel_step
    if backend == "cuda":
        raise RuntimeError(f"the CUDA sampling kernel cannot run: {why_not}")
    if str(device).startswith("cuda") and why_not not in _warned_fallbacks:
        _warned_fallbacks.add(why_not)
        warnings.warn(f"CUDA sampling kernel unavailable ({why_not}); using the torch reference step", RuntimeWarning, stacklevel=3)
    return reference_step


_warned_fallbacks: set[str] = set()


def wilson_interval(successes: np.ndarray, n: int, z: float = 1.959963984540054) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval for a binomial proportion, elementwise."""
    p = np.asarray(successes, np.float64) / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def risk_level(probability: np.ndarray, cuts: Sequence[float] = (0.05, 0.1, 0.2, 0.4)) -> np.ndarray:
    """ETHOS-style risk levels 1–5 from probability cut points (the default cuts are ours)."""
    return 1 + np.searchsorted(np.asarray(cuts), np.asarray(probability), side="right")
