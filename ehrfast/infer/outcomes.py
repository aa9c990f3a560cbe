"""From sampled futures to an event task's outcomes (ARES.md S2, S5): each sample's indicator
f(first event, elapsed time), the Monte-Carlo estimate over the valid samples, the path estimate
from the per-class, per-time-bin probabilities, and times to each event.

All inputs are ``EventSamples`` arrays, [n, N] per sample (n predictions, N samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrfast.infer.sampler import EventSamples
from ehrfast.task import NO_EVENT, EventTask, Outcome
from ehrfast.units import US_PER_DAY, US_PER_HOUR

# time bins every event task keeps, for times to event (ARES.md S1), within its time limit
STANDARD_EDGES_US = (12 * US_PER_HOUR, 24 * US_PER_HOUR, 72 * US_PER_HOUR, 7 * US_PER_DAY, 10 * US_PER_DAY, 15 * US_PER_DAY, 30 * US_PER_DAY)


def time_edges(task: EventTask) -> tuple[float, ...]:
    """The path estimate's time-bin edges for ``task`` (µs): every ``min_time`` of its outcomes
    (an event at exactly it is in the bin that starts there), the float just above every
    ``max_time`` (so the bin that ends there holds it), and the standard edges below the limit.
    Each outcome's indicator is then constant over each bin."""
    edges = {float(e) for e in STANDARD_EDGES_US if e < task.time_limit_us}
    for outcome in task.outcomes.values():
        for clause in outcome.any_of:
            if clause.min_time_us is not None and clause.min_time_us > 0:
                edges.add(float(clause.min_time_us))
            if clause.max_time_us is not None:
                edges.add(float(np.nextafter(float(clause.max_time_us), np.inf)))
    return tuple(sorted(edges))


def event_names(task: EventTask, mc_event: np.ndarray) -> np.ndarray:
    """[...] object: the event name of each class id (−1: ``NO_EVENT``)."""
    names = np.array([*task.events, NO_EVENT], dtype=object)
    return names[np.where(mc_event >= 0, mc_event, len(task.events))]


def sample_outcomes(task: EventTask, ev: EventSamples) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({outcome: [n, N] bool indicator}, [n, N] bool valid): each sample's first event (or
    none, at the end of its path) through each outcome, and the task's validity rule."""
    names = event_names(task, ev.mc_event)
    elapsed = np.where(ev.mc_event >= 0, ev.mc_elapsed_us, ev.end_elapsed_us)
    indicators = {name: o.indicator(names.ravel(), elapsed.ravel()).reshape(names.shape) for name, o in task.outcomes.items()}
    return indicators, task.valid.valid(names.ravel()).reshape(names.shape)


def path_estimate(task: EventTask, outcome: Outcome, ev: EventSamples) -> np.ndarray:
    """[n] the path estimate of ``outcome`` per prediction: over its samples, the probability
    mass of valid first events (and of no event, when that is valid) for which the outcome
    holds, over the mass of valid first events — Σ_e Σ_b cif_time[e, b] f(e, b) + residual ·
    f(none, end), restricted to what the validity rule keeps. NaN where no valid mass."""
    n, n_samples, n_events, n_bins = ev.cif_time.shape
    lower = np.r_[0.0, ev.time_edges_us]  # [B] a bin's lower edge: the indicator is constant over the bin
    names = list(task.events)
    valid_event = task.valid.valid(np.array(names, dtype=object))  # [E]
    f = np.stack([outcome.indicator(np.full(n_bins, name, dtype=object), lower) for name in names])  # [E, B]
    num = (ev.cif_time * (f & valid_event[:, None])).sum((-1, -2))  # [n, N]
    den = (ev.cif * valid_event).sum(-1)
    if bool(task.valid.valid(np.array([NO_EVENT], dtype=object))[0]):
        none = outcome.indicator(np.full(n * n_samples, NO_EVENT, dtype=object), ev.end_elapsed_us.ravel()).reshape(n, n_samples)
        num = num + ev.residual * none
        den = den + ev.residual
    total = den.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, num.sum(1) / np.where(total > 0, total, 1.0), np.nan)


@dataclass
class OutcomeEstimates:
    """One outcome's estimates per prediction, [n]: ``p_mc`` (mean indicator over the valid
    samples; NaN without one), ``n_valid``, ``positive`` (valid samples where it holds) and
    ``p_path`` (see ``path_estimate``)."""

    p_mc: np.ndarray
    n_valid: np.ndarray
    positive: np.ndarray
    p_path: np.ndarray


def estimate_outcomes(task: EventTask, ev: EventSamples) -> dict[str, OutcomeEstimates]:
    """Every outcome of ``task`` from one sampling run."""
    indicators, valid = sample_outcomes(task, ev)
    n_valid = valid.sum(1)
    out = {}
    for name, ind in indicators.items():
        positive = (ind & valid).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_mc = np.where(n_valid > 0, positive / np.maximum(n_valid, 1), np.nan)
        out[name] = OutcomeEstimates(p_mc, n_valid, positive, path_estimate(task, task.outcomes[name], ev))
    return out


def time_to_event(task: EventTask, ev: EventSamples) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{event: ([n] median, [n] interquartile range)} of the elapsed time (µs) before that event
    over the samples whose first event it was; NaN where none was."""
    out = {}
    for e, name in enumerate(task.events):
        t = np.where(ev.mc_event == e, ev.mc_elapsed_us, np.nan)
        has = np.isfinite(t).any(1)
        q = np.full((3, len(t)), np.nan)
        if has.any():
            q[:, has] = np.nanpercentile(t[has], [25, 50, 75], axis=1)
        out[name] = (q[1], q[2] - q[0])
    return out
