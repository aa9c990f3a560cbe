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
so results do not depend on batching. The on-device engine (static KV cache, CUDA graph, CUDA sampling kernel)
computes the same step; this module is its reference and the CPU path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
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
    ascending = probs.sort(dim=-1).values
    cumulative = ascending.cumsum(-1)
    total = cumulative[:, -1:]
    at_most = torch.searchsorted(ascending, probs, right=True)  # how many tokens are not more likely
    above = total - cumulative.gather(-1, at_most - 1)  # mass strictly more likely than each token
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
    def start(cls, subject_keys: np.ndarray, sample_index: np.ndarray, device) -> SamplerState:
        n = len(subject_keys)

        def zeros(dtype):
            return torch.zeros(n, dtype=dtype, device=device)

        return cls(torch.as_tensor(np.asarray(subject_keys, np.int64), device=device),
                   torch.as_tensor(np.asarray(sample_index, np.int64), device=device),
                   torch.ones(n, dtype=torch.bool, device=device), zeros(torch.float64), zeros(torch.float64), zeros(torch.bool),
                   zeros(torch.int32), zeros(torch.int64))


def reference_step(logits: torch.Tensor, state: SamplerState, step: int, settings: StepSettings) -> torch.Tensor:
    """The torch reference of one step (the CUDA kernel computes the same): draws for every
    row, updates the rows still alive, returns p_target [n_rows] float64 (0 for finished rows)."""
    keys, samples = state.subject_keys.cpu().numpy(), state.sample_index.cpu().numpy()
    u1, u2 = (torch.as_tensor(u, device=logits.device) for u in uniform_pair(settings.seed, keys, samples, step))
    token, p_target, step_hit, target_only = sampling_step(logits, u1, u2, settings.target_mask, settings.temperature, settings.top_p)
    alive = state.alive
    p_target = torch.where(alive, p_target, torch.zeros_like(p_target))
    state.log_survival += torch.log1p(-p_target.clamp(max=1.0))
    state.hit |= alive & step_hit
    state.generated += alive.to(torch.int32)
    state.elapsed_us += torch.where(alive, settings.durations_us[token], torch.zeros_like(state.elapsed_us))
    state.next_token = torch.where(alive, token, torch.zeros_like(token))
    state.alive = alive & ~target_only & ~settings.stop_mask[token] & (state.elapsed_us < settings.horizon_us) & \
        (step + 1 < settings.max_new_tokens)
    return p_target


class RecomputeDecoder:
    """Next-token logits by running the whole (windowed) sequence each step — works for any
    ``model(idx [B, L], prs=[B, n_traits] | None) -> logits [B, L, V]``. One subject at a time."""

    subjects_per_batch = 1

    def __init__(self, model: Callable, window: int | None, device: str):
        self.model, self.window, self.device = model, window, device

    def start(self, contexts: Sequence[np.ndarray], prs: np.ndarray | None, n: int) -> torch.Tensor:
        """The n samples' logits [n, V] after the one context in ``contexts``."""
        (context,) = contexts
        self.idx = torch.as_tensor(np.asarray(context, np.int64), device=self.device).repeat(n, 1)
        self.prs = None if prs is None else torch.as_tensor(prs, dtype=torch.float32, device=self.device).repeat(n, 1)
        return self._last_logits()

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Appends ``token`` [n]; returns the next logits [n, V]."""
        self.idx = torch.cat([self.idx, token.unsqueeze(-1)], dim=1)
        return self._last_logits()

    def _last_logits(self) -> torch.Tensor:
        view = self.idx if self.window is None else self.idx[:, -self.window:]
        with torch.no_grad():
            return self.model(view, prs=self.prs)[:, -1]


class CachedDecoder:
    """Next-token logits from a ``GPT`` with a KV cache, for ``subjects_per_batch`` subjects at a
    time: their histories are left-padded and run once (prefill), each shared by its samples;
    every step then runs one position per sample. Needs context + max_new_tokens to fit the
    model's window (``fits``). ``static_shapes`` (default: on CUDA devices) decodes with fixed
    shapes (``GPT.decode_static``); on CUDA each step after the first is then a replay of one
    captured CUDA graph, so the GPU is not left waiting on Python for every kernel launch.
    ``shared_prefix`` (default: on CUDA devices; implies static shapes) lets a subject's samples
    read its prefilled history in place instead of n copies (``DecodeState.share``): n× less
    cache memory for the context and n× less of it read per step."""

    def __init__(self, model, max_new_tokens: int, device: str, subjects_per_batch: int = 32, static_shapes: bool | None = None,
                 shared_prefix: bool | None = None):
        self.model, self.max_new_tokens, self.device = model, max_new_tokens, device
        self.subjects_per_batch = subjects_per_batch
        self.is_cuda = str(device).startswith("cuda")
        self.shared_prefix = self.is_cuda if shared_prefix is None else shared_prefix
        self.static_shapes = self.shared_prefix or (self.is_cuda if static_shapes is None else static_shapes)

    def fits(self, context_len: int) -> bool:
        cfg = self.model.config
        prefix = cfg.n_soft_tokens if cfg.modality == "prefix" else 0
        return prefix + context_len + self.max_new_tokens <= cfg.block_size

    def start(self, contexts: Sequence[np.ndarray], prs: np.ndarray | None, n: int) -> torch.Tensor:
        """Logits [len(contexts) · n, V], rows subject-major (subject 0's n samples first)."""
        longest = max(len(ctx) for ctx in contexts)
        if not self.fits(longest):
            raise ValueError(f"a context of {longest} tokens + {self.max_new_tokens} new tokens exceeds the model's window "
                             f"of {self.model.config.block_size}")
        idx = np.zeros((len(contexts), longest), np.int64)
        for row, ctx in enumerate(contexts):
            idx[row, longest - len(ctx):] = ctx
        pad = torch.as_tensor([longest - len(ctx) for ctx in contexts], device=self.device)
        rows_prs = None if prs is None else torch.as_tensor(np.asarray(prs), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            logits, state = self.model.prefill(torch.as_tensor(idx, device=self.device), rows_prs,
                                               max_new_tokens=0 if self.shared_prefix else self.max_new_tokens, pad=pad)
        if self.shared_prefix:
            self.state = state.share(n, self.max_new_tokens)
        else:
            self.state = state.repeat(n)
            if self.static_shapes:
                self.state.use_static_shapes()
        self.graph = None
        self.steps = 0
        return logits.repeat_interleave(n, 0)

    def step(self, token: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if not self.static_shapes:
                return self.model.decode(token, self.state)
            if not self.is_cuda:
                return self.model.decode_static(token, self.state)
            return self._graph_step(token)

    def _graph_step(self, token: torch.Tensor) -> torch.Tensor:
        """The first step runs eagerly on a side stream (warm-up: lazy library initialization
        must not happen during capture); the second is captured, and every step replays it."""
        self.steps += 1
        if self.steps == 1:
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                logits = self.model.decode_static(token, self.state)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return logits
        if self.graph is None:
            self.static_token = token.clone()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):  # records, does not run
                self.static_logits = self.model.decode_static(self.static_token, self.state)
        self.static_token.copy_(token)
        self.graph.replay()
        return self.static_logits


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
    the sampling step (``choose_step``). ``trajectory_sink``, if given, receives the sampled paths
    of every batch of subjects as they finish: (subject positions [g] int64, tokens [g, N, steps]
    int64, elapsed time after each token [g, N, steps] float64 µs, tokens per path [g, N] int32 —
    a path's tokens are its first that many entries —, and the step at which the path's
    Monte-Carlo draw first landed in the target set [g, N] int32, -1 if never). The tokens are
    the survival path the path probability follows: never a target token; a Monte-Carlo
    trajectory is that path up to its hit step, then a target token."""
    decoder = model if isinstance(model, (CachedDecoder, RecomputeDecoder)) else RecomputeDecoder(model, window, device)
    vocab = len(durations_us)
    settings = _step_settings(vocab, target_ids, stop_ids, durations_us, horizon_us, max_new_tokens, temperature, top_p, seed, device)
    advance = choose_step(step_backend, device, vocab)
    keys = np.arange(len(contexts)) if subject_keys is None else np.asarray(subject_keys)
    if prs is not None:
        prs = np.asarray(prs)
    n = len(contexts)
    paths = np.zeros((n, n_samples))
    hits = np.zeros((n, n_samples), bool)
    generated = np.zeros(n, np.int64)
    check_every = 1 if str(device) == "cpu" else 8  # "all finished?" costs a device sync
    for first in range(0, n, decoder.subjects_per_batch):
        group = np.arange(first, min(n, first + decoder.subjects_per_batch))
        g = len(group)
        logits = decoder.start([contexts[s] for s in group], None if prs is None else prs[group], n_samples)
        # rows subject-major: subject 0's n samples first
        state = SamplerState.start(np.repeat(keys[group], n_samples), np.tile(np.arange(n_samples), g), device)
        steps_tokens, steps_elapsed, steps_hit = [], [], []
        for step in range(max_new_tokens):
            advance(logits, state, step, settings)
            if trajectory_sink is not None:
                steps_tokens.append(state.next_token.clone())
                steps_elapsed.append(state.elapsed_us.clone())
                steps_hit.append(state.hit.clone())
            if step + 1 == max_new_tokens or ((step + 1) % check_every == 0 and not bool(state.alive.any())):
                break
            logits = decoder.step(state.next_token)
        paths[group] = (1.0 - torch.exp(state.log_survival)).view(g, n_samples).cpu().numpy()
        hits[group] = state.hit.view(g, n_samples).cpu().numpy()
        generated[group] = state.generated.view(g, n_samples).sum(1).cpu().numpy()
        if trajectory_sink is not None:
            hit_by_step = torch.stack(steps_hit, 1)  # [rows, steps], True from the first hit on
            first_hit = torch.where(state.hit, hit_by_step.int().argmax(1), -1).int()
            trajectory_sink(group, torch.stack(steps_tokens, 1).view(g, n_samples, -1).cpu().numpy(),
                            torch.stack(steps_elapsed, 1).view(g, n_samples, -1).cpu().numpy(),
                            state.generated.view(g, n_samples).cpu().numpy(), first_hit.view(g, n_samples).cpu().numpy())
        if progress:
            progress(g)
    agg = {"mean": np.mean, "median": np.median, "max": np.max}[aggregation]
    return SamplingResult(agg(paths, axis=1), hits.mean(axis=1), paths, hits, generated)


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
