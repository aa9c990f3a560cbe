"""Sampler exactness with a Markov-chain test double whose hitting probability is known."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ehrfast.infer.rng import uniform_pair
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.infer.sampling_step import nucleus, sampling_step


def sample(model, contexts, target_ids, durations_us, **kw):
    """``sample_trajectories`` with the sampling settings given as keywords, as the tests write them."""
    names = {f.name for f in dataclasses.fields(SamplingSettings)}
    settings = SamplingSettings(**{k: v for k, v in kw.items() if k in names})
    return sample_trajectories(model, contexts, target_ids, durations_us, settings, **{k: v for k, v in kw.items() if k not in names})

TICK1, TICK3, EVENT, TARGET, STOP, OTHER = range(6)
DURATIONS = np.array([1.0, 3.0, 0.0, 0.0, 0.0, 0.0])


class MarkovChain:
    """Model interface: logits of the next token depend on the last token only."""

    def __init__(self, transition: np.ndarray):
        self.log_p = torch.log(torch.as_tensor(transition, dtype=torch.float64))

    def __call__(self, idx, prs=None):
        return self.log_p[idx]


def chain(seed=0):
    rng = np.random.default_rng(seed)
    m = rng.dirichlet(np.ones(6), size=6)
    m[:, TARGET] *= 0.15  # a rare target
    m[:, STOP] *= 0.2
    return m / m.sum(1, keepdims=True)


def exact_hit_probability(m, start, horizon, max_steps):
    """P(a target is drawn before the horizon and within max_steps), by dynamic programming."""
    horizon = int(horizon)
    g = np.zeros((max_steps + 1, horizon, 6))  # g[r, e, s]
    for r in range(1, max_steps + 1):
        for e in range(horizon):
            for s in range(6):
                total = m[s, TARGET]
                for j in (TICK1, TICK3, EVENT, OTHER):
                    e2 = e + int(DURATIONS[j])
                    if e2 < horizon:
                        total += m[s, j] * g[r - 1, e2, j]
                g[r, e, s] = total
    return g[max_steps, 0, start]


@pytest.mark.parametrize("seed,horizon", [(0, 10), (1, 25)])
def test_estimators_match_exact_probability(seed, horizon):
    m = chain(seed)
    truth = exact_hit_probability(m, EVENT, horizon, 60)
    contexts = [np.array([EVENT])] * 25
    res = sample(MarkovChain(m), contexts, np.array([TARGET]), DURATIONS, horizon_us=horizon, n_samples=160,
                              max_new_tokens=60, stop_ids=[STOP], seed=seed)
    hits, paths = res.sample_hit.ravel(), res.sample_path_probability.ravel()
    n = hits.size
    assert abs(hits.mean() - truth) < 4 * np.sqrt(truth * (1 - truth) / n)
    assert abs(paths.mean() - truth) < 4 * paths.std() / np.sqrt(n) + 1e-12
    assert paths.var() < hits.var()  # the path estimator has lower variance
    assert 0 < truth < 1


def test_top_p_never_samples_outside_the_nucleus():
    torch.manual_seed(0)
    logits = torch.randn(64, 30, dtype=torch.float64)
    kept = nucleus(torch.softmax(logits, -1), 0.7) > 0
    target = torch.zeros(30, dtype=torch.bool)
    target[[3, 11]] = True
    for step in range(30):
        u1, u2 = (torch.as_tensor(u) for u in uniform_pair(5, np.arange(64), 0, step))
        token, p_target, hit, _ = sampling_step(logits, u1, u2, target, top_p=0.7)
        assert kept[torch.arange(64), token].all() and not target[token].any()
        expected = (nucleus(torch.softmax(logits, -1), 0.7) * target).sum(-1)
        torch.testing.assert_close(p_target, expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.floats(0.05, 0.999))
@example([0, 0, 0, 0, 0, 0, 2], 1 / 3)  # mass above the six small tokens = 1/3 to the last bit: either answer, still a distribution
def test_nucleus_is_the_tie_inclusive_top_p_set(weights, top_p):
    """Token i is kept iff the tokens strictly more likely than it hold < top_p of the mass;
    ties at the boundary are all kept (small integer weights make ties common). Decided in exact
    arithmetic; a mass within float rounding of top_p may go either way."""
    w = torch.tensor([weights], dtype=torch.float64) + 1.0
    probs = w / w.sum()
    kept = nucleus(probs, top_p)[0]
    whole = sum(weights) + len(weights)
    for i, wi in enumerate(weights):
        above = sum(wj + 1 for wj in weights if wj > wi)
        if abs(above - Fraction(top_p) * whole) <= 1e-12 * whole:
            continue
        assert bool(kept[i] > 0) == (above < Fraction(top_p) * whole), (weights, top_p, i)
    torch.testing.assert_close(kept.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert kept[probs[0].argmax()] > 0


def test_same_seed_same_output_regardless_of_batch():
    m = chain(2)
    model = MarkovChain(m)
    kw = dict(horizon_us=15, n_samples=8, max_new_tokens=40, stop_ids=[STOP], seed=9)
    many = sample(model, [np.array([EVENT]), np.array([TICK1]), np.array([OTHER])], np.array([TARGET]), DURATIONS,
                               subject_keys=[10, 11, 12], **kw)
    one = sample(model, [np.array([TICK1])], np.array([TARGET]), DURATIONS, subject_keys=[11], **kw)
    np.testing.assert_array_equal(many.sample_path_probability[1], one.sample_path_probability[0])
    np.testing.assert_array_equal(many.sample_hit[1], one.sample_hit[0])
    again = sample(model, [np.array([TICK1])], np.array([TARGET]), DURATIONS, subject_keys=[11], **kw)
    np.testing.assert_array_equal(again.sample_path_probability, one.sample_path_probability)


def _tiny_gpt(modality, vocab=30, seed=1):
    from ehrfast.model import GPT, GPTConfig

    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, block_size=48, n_layer=2, n_head=2, n_embd=32, modality=modality,
                    n_prs_traits=0 if modality == "none" else 4, n_soft_tokens=2, dropout=0.0)
    return GPT(cfg).eval()


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_kv_cache_engine_samples_what_the_recomputing_engine_samples(modality):
    """Same seed, same model: the KV-cache decoder (any number of slots, refilled as subjects
    finish at different steps) and full recomputation give the same paths."""
    from ehrfast.infer.decoders import CachedDecoder, RecomputeDecoder

    model = _tiny_gpt(modality)
    rng = np.random.default_rng(0)
    contexts = [rng.integers(0, 30, n) for n in (5, 17, 30, 2, 11)]
    prs = None if modality == "none" else rng.standard_normal((5, 4)).astype(np.float32)
    durations = np.full(30, 1.0)
    kw = dict(horizon_us=1e9, n_samples=6, max_new_tokens=12, seed=3, prs=prs, top_p=0.95, stop_ids=[1, 2, 3])

    def forward(idx, prs=None):
        return model(idx, prs=prs) if prs is not None else model(idx)

    recomputed = sample(RecomputeDecoder(forward, model.config.token_window, "cpu"), contexts, np.array([7, 8]), durations, **kw)
    assert len(set(recomputed.tokens_generated.tolist())) > 1  # subjects finish at different steps: slots are refilled mid-run
    for slots in (1, 2, 3, 8):
        cached = sample(CachedDecoder(model, 12, "cpu", slots), contexts, np.array([7, 8]), durations, **kw)
        np.testing.assert_allclose(cached.sample_path_probability, recomputed.sample_path_probability, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(cached.sample_hit, recomputed.sample_hit)
        np.testing.assert_array_equal(cached.tokens_generated, recomputed.tokens_generated)


def _decode_steps(lengths: list[int], slots: int, continuous: bool) -> int:
    """Decode steps the engine needs when subject i keeps its slot for lengths[i] sampling steps:
    each iteration samples, frees finished slots, decodes if any slot is still busy, then starts
    waiting subjects in free slots (every free slot, or with fixed batches only once all are)."""
    waiting, decodes = list(lengths), 0
    remaining = [waiting.pop(0) if waiting else 0 for _ in range(slots)]
    while True:
        remaining = [max(0, r - 1) for r in remaining]
        if any(remaining):
            decodes += 1
        elif not waiting:
            return decodes
        if continuous or not any(remaining):
            for i in range(slots):
                if not remaining[i] and waiting:
                    remaining[i] = waiting.pop(0)


def test_continuous_batching_refills_a_slot_as_soon_as_its_subject_finishes():
    """The engine decodes exactly as many steps as refilling each slot the moment its subject's
    paths have all ended needs (each subject's slot time read from its recorded trajectories),
    fewer than fixed batches that wait for their slowest subject."""
    from ehrfast.infer.decoders import CachedDecoder

    model = _tiny_gpt("none", seed=5)
    rng = np.random.default_rng(1)
    contexts = [rng.integers(10, 30, rng.integers(3, 20)) for _ in range(9)]
    lengths = {}

    def sink(subjects, tokens, elapsed, counts, first_hit):
        lengths.update(zip(subjects.tolist(), counts.max(1).tolist()))

    decoder = CachedDecoder(model, 16, "cpu", subjects_per_batch=3)
    steps = []
    real_step = decoder.step
    decoder.step = lambda token, alive: (steps.append(1), real_step(token, alive))[1]
    sample(decoder, contexts, np.array([7]), np.ones(30), horizon_us=1e9, n_samples=4, max_new_tokens=16,
                        stop_ids=list(range(1, 10)), seed=0, trajectory_sink=sink)
    by_subject = [lengths[s] for s in range(9)]
    assert _decode_steps(by_subject, 3, continuous=True) < _decode_steps(by_subject, 3, continuous=False)  # the data needs refills
    assert len(steps) == _decode_steps(by_subject, 3, continuous=True)
