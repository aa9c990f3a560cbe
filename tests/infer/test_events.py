"""Competing-event sampling (ARES.md S1) against a Markov chain whose first-event law is known
exactly: a dynamic program over (steps left, elapsed time, last token) gives P(first event = e,
elapsed time in bin b) under a time limit and a token cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ehrfast.errors import EhrfastError
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.infer.sampling_step import END_EVENT, END_MAX_TOKENS, END_TIME_LIMIT

TICK1, TICK3, OTHER, DEATH, DISCHARGE, ICU = range(6)
DURATIONS = np.array([1.0, 3.0, 0.0, 0.0, 0.0, 0.0])
EVENT_CLASS = np.array([-1, -1, -1, 0, 1, 2])  # death 0, discharge 1, icu 2
EDGES = (5.0, 12.0)  # bins [0, 5), [5, 12), [12, inf)


class MarkovChain:
    """Logits of the next token depend on the last token only."""

    def __init__(self, transition: np.ndarray):
        self.log_p = torch.log(torch.as_tensor(transition, dtype=torch.float64))

    def __call__(self, idx, prs=None):
        return self.log_p[idx]


def chain(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.dirichlet(np.ones(6), size=6)
    m[:, [DEATH, DISCHARGE, ICU]] *= [0.05, 0.25, 0.1]  # events rarer than ticks
    return m / m.sum(1, keepdims=True)


def first_event_law(m, start: int, limit: float, max_steps: int, edges=EDGES, event_class=EVENT_CLASS) -> np.ndarray:
    """[E, B] P(the first event is e, at an elapsed time in bin b) for a path that starts after
    token ``start``, stops once its elapsed time exceeds ``limit`` or after ``max_steps``
    tokens; the elapsed time of an event is the time before its token. Integer durations."""
    n_events = int(event_class.max()) + 1
    n_bins = len(edges) + 1
    top = int(np.floor(limit))
    value = np.zeros((top + 1, 6, n_events, n_bins))  # r = 0: nothing more can happen
    for _ in range(max_steps):
        new = np.zeros_like(value)
        for e in range(top + 1):
            b = int(np.searchsorted(edges, e, side="right"))
            for j in range(6):  # the next token j, from every last token s at once
                if event_class[j] >= 0:
                    new[e, :, event_class[j], b] += m[:, j]
                elif e + DURATIONS[j] <= limit:
                    new[e] += m[:, j, None, None] * value[e + int(DURATIONS[j]), j]
        value = new
    return value[0, start]


def _run(m, n_subjects, n_samples, limit, max_steps, seed, **kw):
    settings = SamplingSettings(horizon_us=limit, n_samples=n_samples, max_new_tokens=max_steps, seed=seed, time_edges_us=EDGES, **kw)
    return sample_trajectories(MarkovChain(m), [np.array([OTHER])] * n_subjects, np.array([], np.int64), DURATIONS, settings,
                               event_class=EVENT_CLASS)


@pytest.mark.parametrize("seed, limit, max_steps", [(0, 14.0, 40), (1, 30.0, 25)])
def test_first_events_match_the_dynamic_program(seed, limit, max_steps):
    m = chain(seed)
    truth = first_event_law(m, OTHER, limit, max_steps)
    res = _run(m, 40, 150, limit, max_steps, seed, survival_epsilon=0.0)
    ev = res.events
    n = ev.mc_event.size
    mc_bin = np.searchsorted(EDGES, np.nan_to_num(ev.mc_elapsed_us.ravel()), side="right")
    for e in range(3):
        for b in range(3):
            p = truth[e, b]
            freq = np.mean((ev.mc_event.ravel() == e) & (mc_bin == b))
            assert abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12, (e, b, freq, p)
            path = ev.cif_time[..., e, b].ravel()
            assert abs(path.mean() - p) <= 4 * path.std() / np.sqrt(n) + 1e-12, (e, b, path.mean(), p)
        assert ev.cif[..., e].var() < (ev.mc_event == e).var()  # the path estimate has lower variance
    np.testing.assert_allclose(ev.cif.sum(-1) + ev.residual, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.cif_time.sum(-1), ev.cif, rtol=0, atol=1e-12)
    # a sample without an event ended at the limit or the cap, and its end reason says which
    none = ev.mc_event < 0
    assert set(np.unique(ev.end_reason[none])) <= {END_TIME_LIMIT, END_MAX_TOKENS}
    assert (ev.end_elapsed_us[ev.end_reason == END_TIME_LIMIT] > limit).all()
    assert (ev.tokens[ev.end_reason == END_MAX_TOKENS] == max_steps).all()
    assert 0.05 < truth.sum() < 0.95


def test_default_survival_cut_off_stops_early_with_a_bias_below_epsilon():
    m = chain(2)
    truth = first_event_law(m, OTHER, 80.0, 200)
    exact = _run(m, 30, 100, 80.0, 200, seed=3, survival_epsilon=0.0).events
    cut = _run(m, 30, 100, 80.0, 200, seed=3).events
    assert cut.tokens.sum() < exact.tokens.sum()
    # same draws until a row stops: the Monte-Carlo records are identical
    np.testing.assert_array_equal(cut.mc_event, exact.mc_event)
    np.testing.assert_array_equal(cut.mc_elapsed_us, exact.mc_elapsed_us)
    assert (cut.end_reason[cut.mc_event >= 0] == END_EVENT).mean() > 0.5
    n = cut.mc_event.size
    for e in range(3):
        p = truth[e].sum()
        path = cut.cif[..., e].ravel()
        assert abs(path.mean() - p) <= 4 * path.std() / np.sqrt(n) + 1e-4


def test_pure_monte_carlo_stops_at_the_first_event():
    m = chain(4)
    res = _run(m, 10, 50, 20.0, 60, seed=5, estimator="mc").events
    hit = res.mc_event >= 0
    assert (res.end_reason[hit] == END_EVENT).all()
    assert (res.tokens[hit] == res.mc_step[hit] + 1).all()  # stopped at the step of the draw


def test_one_class_reproduces_the_target_set_run_bit_for_bit():
    """Events = {DEATH}: the survival path, hits, token counts and the path probability equal a
    plain target-set run (horizon 10.5: both stop once elapsed ≥ 11)."""
    m = chain(6)
    one = np.array([-1, -1, -1, 0, -1, -1])
    contexts = [np.array([OTHER]), np.array([TICK1]), np.array([TICK3])] * 4
    old = sample_trajectories(MarkovChain(m), contexts, np.array([DEATH]), DURATIONS,
                              SamplingSettings(horizon_us=10.5, n_samples=20, max_new_tokens=30, seed=8))
    new = sample_trajectories(MarkovChain(m), contexts, np.array([], np.int64), DURATIONS,
                              SamplingSettings(horizon_us=10.5, n_samples=20, max_new_tokens=30, seed=8, survival_epsilon=0.0),
                              event_class=one)
    np.testing.assert_array_equal(new.events.cif[..., 0], old.sample_path_probability)
    np.testing.assert_array_equal(new.sample_path_probability, old.sample_path_probability)
    np.testing.assert_array_equal(new.sample_hit, old.sample_hit)
    np.testing.assert_array_equal(new.events.mc_event >= 0, old.sample_hit)
    np.testing.assert_array_equal(new.tokens_generated, old.tokens_generated)


def test_bad_event_settings_are_refused():
    m = chain(0)
    kw = dict(horizon_us=10.0, n_samples=2, max_new_tokens=5)
    with pytest.raises(EhrfastError, match="no target_ids"):
        sample_trajectories(MarkovChain(m), [np.array([OTHER])], np.array([DEATH]), DURATIONS, SamplingSettings(**kw), event_class=EVENT_CLASS)
    with pytest.raises(EhrfastError, match="no stop_ids"):
        sample_trajectories(MarkovChain(m), [np.array([OTHER])], np.array([], np.int64), DURATIONS, SamplingSettings(**kw, stop_ids=(1,)),
                            event_class=EVENT_CLASS)
    with pytest.raises(EhrfastError, match="every class present"):
        sample_trajectories(MarkovChain(m), [np.array([OTHER])], np.array([], np.int64), DURATIONS, SamplingSettings(**kw),
                            event_class=np.array([-1, -1, -1, 0, 2, 2]))
    with pytest.raises(EhrfastError, match="increase"):
        SamplingSettings(**kw, time_edges_us=(5.0, 5.0))
