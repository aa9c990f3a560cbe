"""Trajectory sampling with path-computed probabilities — the torch reference engine.

For each subject, N futures are sampled from the model, one token per step. At every step
the model's probability mass on the target set T (after temperature and top-p) is p_i; the
path probability accumulates P = 1 − Π(1 − p_i) in log space until the horizon, a stop token
or K tokens. Two estimates come out of the same N paths:

* Monte-Carlo frequency: the share of paths whose sampled token fell in T before the horizon.
* Path probability: paths continue with a non-target token (drawn from the distribution
  renormalized off T, with a second uniform) so that P along the path is the exact
  probability of reaching T on it; averaging P over paths is unbiased and has lower variance.

Uniforms come from a counter-based hash of (seed, subject, sample, step), so results do not
depend on batching. The on-device engine (static KV cache, CUDA graph, CUDA sampling kernel)
computes the same step; this module is its reference and the CPU path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ehrfast.infer.rng import uniforms


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keeps the smallest set of most likely tokens whose mass reaches ``top_p`` (the token that
    crosses the threshold included), renormalized. probs [B, V] -> [B, V]."""
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p  # mass strictly before each token
    keep_sorted = before < top_p
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
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
    model's window (``fits``)."""

    def __init__(self, model, max_new_tokens: int, device: str, subjects_per_batch: int = 32):
        self.model, self.max_new_tokens, self.device = model, max_new_tokens, device
        self.subjects_per_batch = subjects_per_batch

    def fits(self, context_len: int) -> bool:
        cfg = self.model.config
        prefix = cfg.n_soft_tokens if cfg.modality == "prefix" else 0
        return prefix + context_len + self.max_new_tokens <= cfg.block_size

    def start(self, contexts: Sequence[np.ndarray], prs: np.ndarray | None, n: int) -> torch.Tensor:
        """Logits [len(contexts) · n, V], rows subject-major (subject 0's n samples first)."""
        longest = max(len(ctx) for ctx in contexts)
        idx = np.zeros((len(contexts), longest), np.int64)
        for row, ctx in enumerate(contexts):
            idx[row, longest - len(ctx):] = ctx
        pad = torch.as_tensor([longest - len(ctx) for ctx in contexts], device=self.device)
        rows_prs = None if prs is None else torch.as_tensor(np.asarray(prs), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            logits, state = self.model.prefill(torch.as_tensor(idx, device=self.device), rows_prs, max_new_tokens=self.max_new_tokens,
                                               pad=pad)
        self.state = state.repeat(n)
        return logits.repeat_interleave(n, 0)

    def step(self, token: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.decode(token, self.state)


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
) -> SamplingResult:
    """Samples ``n_samples`` futures per context. ``model`` is a decoder (``CachedDecoder``,
    ``RecomputeDecoder``) or a callable ``model(idx [B, L], prs=[B, n_traits] | None)`` returning
    logits [B, L, V] (run through ``RecomputeDecoder``); ``durations_us`` [V] is the time each
    token adds (interval tokens); ``subject_keys`` name each subject in the random stream
    (default: its position)."""
    decoder = model if isinstance(model, (CachedDecoder, RecomputeDecoder)) else RecomputeDecoder(model, window, device)
    vocab = len(durations_us)
    target_mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    target_mask[torch.as_tensor(target_ids, dtype=torch.long, device=device)] = True
    stop_mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    if len(stop_ids):
        stop_mask[torch.as_tensor(list(stop_ids), dtype=torch.long, device=device)] = True
    durations = torch.as_tensor(durations_us, dtype=torch.float64, device=device)
    keys = np.arange(len(contexts)) if subject_keys is None else np.asarray(subject_keys)
    if prs is not None:
        prs = np.asarray(prs)
    n = len(contexts)
    paths = np.zeros((n, n_samples))
    hits = np.zeros((n, n_samples), bool)
    generated = np.zeros(n, np.int64)
    for first in range(0, n, decoder.subjects_per_batch):
        group = np.arange(first, min(n, first + decoder.subjects_per_batch))
        g = len(group)
        logits = decoder.start([contexts[s] for s in group], None if prs is None else prs[group], n_samples)
        row_key, row_sample = np.repeat(keys[group], n_samples), np.tile(np.arange(n_samples), g)  # rows subject-major
        alive = torch.ones(g * n_samples, dtype=torch.bool, device=device)
        elapsed = torch.zeros(g * n_samples, dtype=torch.float64, device=device)
        log_surv = torch.zeros(g * n_samples, dtype=torch.float64, device=device)
        hit = torch.zeros(g * n_samples, dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            u1 = torch.as_tensor(uniforms(seed, row_key, row_sample, step, 0), device=device)
            u2 = torch.as_tensor(uniforms(seed, row_key, row_sample, step, 1), device=device)
            token, p_target, step_hit, target_only = sampling_step(logits, u1, u2, target_mask, temperature, top_p)
            log_surv = torch.where(alive, log_surv + torch.log1p(-p_target.clamp(max=1.0)), log_surv)
            hit |= alive & step_hit
            generated[group] += alive.view(g, n_samples).sum(1).cpu().numpy()
            elapsed = torch.where(alive, elapsed + durations[token], elapsed)
            alive &= ~target_only & ~stop_mask[token] & (elapsed < horizon_us)
            if not bool(alive.any()) or step + 1 == max_new_tokens:
                break
            logits = decoder.step(token)
        paths[group] = (1.0 - torch.exp(log_surv)).view(g, n_samples).cpu().numpy()
        hits[group] = hit.view(g, n_samples).cpu().numpy()
        if progress:
            progress(g)
    agg = {"mean": np.mean, "median": np.median, "max": np.max}[aggregation]
    return SamplingResult(agg(paths, axis=1), hits.mean(axis=1), paths, hits, generated)


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
