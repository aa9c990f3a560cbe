"""The hospital world inside the synthetic lifetimes: ED visits with triage vitals, stays driven
by a latent severity (``hospital_chain.py``), ICU transfers, in-hospital deaths, discharges,
ED returns and readmissions, in MIMIC-IV's MEDS code conventions — and its exact ground truth.

The chronic world's emergency and inpatient visits become acute episodes here: an emergency
visit is an ED arrival (so is most of a planned inpatient visit; the rest are direct, elective
admissions). Each episode runs the hourly chain from an entry state whose severity depends on
age, sex, chronic disease and comorbidity burden, frailty, the genetic liabilities and why the
visit happened; it ends at home or dead. After an ED visit that ends at home the patient may
come back to the ED; after a discharge, be readmitted (a direct emergency admission) or die —
by clocks with decaying hazards (``FollowUpRates``) that depend on the state at the end. While
an episode and the FOLLOW_UP_DAYS after it run, the chronic world pauses: its acute visits are
dropped, its other visits move to after the stay, and a chronic death falling in that window
moves past it, so every hospital outcome is the chain's (or the clocks') own law and its
probability at each anchor is exact.

Known approximation: an ED visit's 12-hour critical outcome is the chain's, but an ED return
that itself reaches the ICU within 12 hours of the first triage (possible, rare: both must
happen within hours) would also be counted positive by a first-event label on the MEDS rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrfast.synth import codes as vocab
from ehrfast.synth.chronic import CAD, COPD, DIAGNOSIS, EMERGENCY, INPATIENT, STROKE, age_at, conditions_at, measure
from ehrfast.synth.hospital_chain import AT_ICU, DEAD, ED, HOME, WARD, HospitalChain, location, severity
from ehrfast.units import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_YEAR

FOLLOW_UP_DAYS = 30  # the chronic world pauses this long after an episode; follow-ups fall inside it
NO_TIME = np.iinfo(np.int64).max
FOLLOW_UP_KINDS = ("ed_return", "readmission", "death")  # follow_kind 1, 2, 3
NO_FOLLOW_UP, FOLLOW_ED_RETURN, FOLLOW_READMISSION, FOLLOW_DEATH = range(4)
# why an episode happened (Episodes.reason)
ROUTINE_ARRIVAL, DIAGNOSIS_ARRIVAL, ED_RETURN, READMISSION = range(4)


@dataclass(frozen=True)
class FollowUpRates:
    """What happens after an episode ends alive: an ED return after an ED visit that ended at
    home; a readmission or a death after a hospital discharge. Each is a clock with a hazard
    that starts at rate r (per hour) and decays with time constant τ, r·exp(−t/τ), so that
    returns cluster in the first days; r is log-linear in the severity at the end and the
    patient's burden and age. The cumulative hazard is closed-form, so the probability of each
    outcome within any window is exact: 1 − exp(−Σ_k r_k·τ_k·(1 − exp(−T/τ_k)))."""

    ed_return: float = 0.00030
    readmission: float = 0.00045
    death_after_discharge: float = 0.00004
    hospice_death: float = 0.004  # discharged to hospice
    tau_hours: tuple[float, float, float] = (14 * 24.0, 14 * 24.0, 21 * 24.0)  # per kind

    def rates(self, sev: np.ndarray, burden: np.ndarray, age: np.ndarray, ed_home: np.ndarray, discharged: np.ndarray,
              hospice: np.ndarray) -> np.ndarray:
        """[m, 3] initial hazards per hour of (ED return, readmission, death); 0 where a clock
        does not run."""
        ed_return = self.ed_return * np.exp(0.45 * sev + 0.15 * burden)
        readmission = self.readmission * np.exp(0.5 * sev + 0.15 * burden + 0.01 * (age - 65))
        death = np.where(hospice, self.hospice_death, self.death_after_discharge * np.exp(0.8 * sev + 0.04 * (age - 65)))
        return np.stack([np.where(ed_home, ed_return, 0.0), np.where(discharged, readmission, 0.0), np.where(discharged, death, 0.0)],
                        axis=1)

    def cumulative(self, rates: np.ndarray, hours: float) -> np.ndarray:
        """[m, 3] cumulative hazards of ``rates`` [m, 3] over the first ``hours``."""
        tau = np.asarray(self.tau_hours)
        return rates * tau * -np.expm1(-hours / tau)

    def probability_within(self, rates: np.ndarray, hours: float, kinds: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
        """[m]: the probability that one of the clocks ``kinds`` (0-based) rings within ``hours``."""
        return -np.expm1(-self.cumulative(rates, hours)[:, list(kinds)].sum(1))

    def draw(self, rng, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first clock to ring and when: (kind 0 … 2, or -1 for none ever; hours [m]).
        Each clock's time inverts its cumulative hazard at an exponential draw."""
        tau = np.asarray(self.tau_hours)
        total = rates * tau  # the cumulative hazard at infinity
        e = rng.exponential(1.0, rates.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            hours = np.where(e < total, -tau * np.log1p(-e / np.where(total > 0, total, 1.0)), np.inf)
        first = np.argmin(hours, axis=1)
        when = hours[np.arange(len(rates)), first]
        return np.where(np.isfinite(when), first, -1), when


@dataclass
class Episodes:
    """Acute episodes, one row each; times µs, ``*_step`` hours after ``start``."""

    subj: np.ndarray  # int64 subject index
    start: np.ndarray  # int64: ED registration, or the admission of a direct admission
    via_ed: np.ndarray  # bool
    entry: np.ndarray  # int8 entry state of the chain
    reason: np.ndarray  # int8: ROUTINE_ARRIVAL, DIAGNOSIS_ARRIVAL (a chronic diagnosis visit), ED_RETURN, READMISSION
    dx: np.ndarray  # int8 disease index of a diagnosis visit (-1: none)
    visit: np.ndarray  # int64 index of the chronic visit it came from (-1: a follow-up)
    # filled by the simulation
    end_step: np.ndarray | None = None  # the step the chain is absorbed
    end_state: np.ndarray | None = None  # HOME or DEAD
    last_state: np.ndarray | None = None  # the transient state before it
    admit_step: np.ndarray | None = None  # first step in the ward or ICU (-1: never admitted)

    @property
    def n(self) -> int:
        return len(self.subj)

    def take(self, rows: np.ndarray) -> Episodes:
        return Episodes(**{k: (v[rows] if v is not None else None) for k, v in vars(self).items()})

    @staticmethod
    def concat(parts: list[Episodes]) -> Episodes:
        return Episodes(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])})


@dataclass
class Paths:
    """Every state change of every episode: (episode, step, state), sorted by episode then step;
    the entry is the change at step 0."""

    episode: np.ndarray
    step: np.ndarray
    state: np.ndarray

    def state_at(self, episode: np.ndarray, step: np.ndarray) -> np.ndarray:
        """The state of ``episode`` at ``step`` (the last change at or before it)."""
        key = self.episode.astype(np.int64) << 32 | self.step.astype(np.int64)
        at = np.searchsorted(key, episode.astype(np.int64) << 32 | step.astype(np.int64), side="right") - 1
        return self.state[at]


def simulate_chain(rng: np.random.Generator, chain: HospitalChain, entry: np.ndarray) -> tuple[Paths, np.ndarray, np.ndarray]:
    """Runs the chain from ``entry`` [m] until every episode is absorbed. Returns the paths,
    the absorption step [m] and the absorbing state [m]."""
    m = len(entry)
    state = entry.astype(np.int8)
    episodes, steps, states = [np.arange(m)], [np.zeros(m, np.int32)], [state.copy()]
    end_step = np.zeros(m, np.int32)
    active = np.flatnonzero(state < HOME)
    h = 0
    while len(active):
        h += 1
        new = chain.step(state[active], rng.random(len(active)))
        moved = new != state[active]
        episodes.append(active[moved])
        steps.append(np.full(int(moved.sum()), h, np.int32))
        states.append(new[moved])
        state[active] = new
        done = new >= HOME
        end_step[active[done]] = h
        active = active[~done]
    ep, st, sa = np.concatenate(episodes), np.concatenate(steps), np.concatenate(states)
    order = np.lexsort((st, ep))
    return Paths(ep[order], st[order], sa[order]), end_step, state


# ---- entry severity --------------------------------------------------------------------------

SEVERITY_CUTS = np.array([-0.45, 2.37, 4.08, 5.46])  # ordinal-logit cut points: severity = #cuts below z


def entry_score(rng, phys, onset, s, t_us, reason, dx, shift) -> np.ndarray:
    """The latent score of an arrival, [len(s)] float: age, sex, the diseases and comorbidities
    present, frailty, the CAD / stroke / COPD liabilities and why the visit happened, plus a
    standard logistic draw. Its cut points give the entry severity."""
    subj = phys.subj
    age = age_at(subj, s, t_us)
    present = conditions_at(phys, onset, s, t_us)
    n_dx = present[:, : len(vocab.DISEASES)].sum(1)
    n_comorbid = present[:, len(vocab.DISEASES):].sum(1)
    acute_dx = (reason == DIAGNOSIS_ARRIVAL) & np.isin(dx, [CAD, STROKE])
    return (0.035 * (age - 60) + 0.12 * subj.male[s] + 0.45 * n_dx + 0.15 * n_comorbid + 0.35 * np.log(subj.frailty[s])
            + 0.15 * phys.G[s, CAD] + 0.1 * phys.G[s, STROKE] + 0.1 * phys.G[s, COPD] + 1.4 * acute_dx + shift
            + rng.logistic(size=len(s)))


def entry_severity(rng, phys, onset, s, t_us, reason, dx, shift) -> np.ndarray:
    """Severity 0 … 4 at arrival, [len(s)] int8: an ordinal logit (``entry_score`` against
    ``SEVERITY_CUTS``)."""
    z = entry_score(rng, phys, onset, s, t_us, reason, dx, shift)
    return (z[:, None] > SEVERITY_CUTS).sum(1).astype(np.int8)


# ---- the episodes of the cohort ----------------------------------------------------------------


@dataclass
class HospitalWorld:
    """What the hospital world adds to the cohort: the accepted episodes, their paths, the
    hadm_id of each admission, follow-up draws, and how the chronic world changed."""

    episodes: Episodes
    paths: Paths
    hadm_id: np.ndarray  # int64 per episode (-1: never admitted)
    follow_kind: np.ndarray  # per episode: 0 none, 1 ED return, 2 readmission, 3 death after discharge
    follow_time: np.ndarray  # µs of the follow-up event (NO_TIME: none within FOLLOW_UP_DAYS)
    follow_hazard: np.ndarray  # [m, 3] initial hazards per hour of the follow-up clocks (FollowUpRates)
    death_us: np.ndarray  # per subject, the death time (NO_TIME: alive at the end)
    visit_keep: np.ndarray  # per chronic visit: kept (not an acute visit, not paused away)
    visit_start: np.ndarray  # per chronic visit: its start, moved past a stay when it fell inside one
    visit_end: np.ndarray
    discharge_location: np.ndarray  # per episode: index into DISCHARGE_LOCATIONS (-1: not discharged alive from hospital)
    chain: HospitalChain  # the law the episodes followed
    rates: FollowUpRates


def _episode_end_us(ep: Episodes) -> np.ndarray:
    return ep.start + ep.end_step.astype(np.int64) * US_PER_HOUR


def build_hospital_world(rng, chain: HospitalChain, phys, onset, visits, chronic_death_us: np.ndarray, data_end_us: int,
                         rates: FollowUpRates | None = None, via_ed_share: float = 0.6) -> HospitalWorld:
    """Turns the chronic world's acute visits into episodes, simulates them with their ED
    returns and readmissions, and applies the pause rule (see the module docstring).
    ``chronic_death_us`` [n subjects] (NO_TIME: none); no episode starts after ``data_end_us``."""
    rates = rates or FollowUpRates()
    acute = np.flatnonzero((visits.kind == EMERGENCY) | (visits.kind == INPATIENT))
    via_ed = (visits.kind[acute] == EMERGENCY) | (rng.random(len(acute)) < via_ed_share)
    reason = np.where(visits.reason[acute] == DIAGNOSIS, DIAGNOSIS_ARRIVAL, ROUTINE_ARRIVAL).astype(np.int8)
    shift = np.where(visits.kind[acute] == INPATIENT, np.where(via_ed, 1.2, -0.4), 0.0)
    sev = entry_severity(rng, phys, onset, visits.subj[acute], visits.start[acute], reason, visits.dx[acute], shift)
    entry = np.where(via_ed, ED + sev, WARD + np.minimum(sev, 2)).astype(np.int8)
    pending = Episodes(visits.subj[acute].astype(np.int64), visits.start[acute].astype(np.int64), via_ed, entry, reason,
                       visits.dx[acute].astype(np.int8), acute.astype(np.int64))
    simulated: list[Episodes] = []
    paths_parts: list[Paths] = []
    follow_parts: list[tuple] = []
    offset = 0
    while pending.n:  # every episode's ED return or readmission is simulated; _accept keeps those that happen
        paths = _simulate(rng, chain, pending)
        kinds, times, hazard, loc = _follow_ups(rng, rates, phys, onset, pending)
        follow_parts.append((kinds, times, hazard, loc))
        paths_parts.append(Paths(paths.episode + offset, paths.step, paths.state))
        simulated.append(pending)
        wants = np.flatnonzero(np.isin(kinds, [FOLLOW_ED_RETURN, FOLLOW_READMISSION]) & (times < data_end_us))
        pending = _follow_up_episodes(rng, phys, onset, pending.take(wants), kinds[wants], times[wants], offset + wants)
        offset += simulated[-1].n
    episodes = Episodes.concat(simulated)
    kinds, times, hazard, loc = (np.concatenate([f[k] for f in follow_parts]) for k in range(4))
    accepted, death_us = _accept(episodes, kinds, times, chronic_death_us, data_end_us)
    keep = np.flatnonzero(accepted)
    paths = Paths(*(np.concatenate([getattr(p, f) for p in paths_parts]) for f in ("episode", "step", "state")))
    on = accepted[paths.episode]
    remap = np.full(episodes.n, -1, np.int64)
    remap[keep] = np.arange(len(keep))
    paths = Paths(remap[paths.episode[on]], paths.step[on], paths.state[on])
    episodes = episodes.take(keep)
    visit_keep, visit_start, visit_end = _pause_chronic_visits(visits, episodes, acute, death_us)
    hadm = np.where(episodes.admit_step >= 0, 20_000_000 + np.arange(episodes.n), -1).astype(np.int64)
    return HospitalWorld(episodes, paths, hadm, kinds[keep], times[keep], hazard[keep], death_us, visit_keep, visit_start, visit_end,
                         loc[keep], chain, rates)


def _simulate(rng, chain: HospitalChain, ep: Episodes) -> Paths:
    """Runs the chain for ``ep`` and fills its end, last transient state and admission step."""
    paths, end_step, end_state = simulate_chain(rng, chain, ep.entry)
    ep.end_step, ep.end_state = end_step, end_state.astype(np.int8)
    ep.last_state = paths.state_at(np.arange(ep.n), np.maximum(end_step - 1, 0)).astype(np.int8)
    in_hospital = (paths.state >= WARD) & (paths.state < HOME)
    big = np.iinfo(np.int32).max
    admit = np.full(ep.n, big, np.int64)
    np.minimum.at(admit, paths.episode[in_hospital], paths.step[in_hospital].astype(np.int64))
    ep.admit_step = np.where(admit < big, admit, -1).astype(np.int32)
    return paths


def _follow_ups(rng, rates: FollowUpRates, phys, onset, ep: Episodes):
    """For each episode: the first follow-up event within FOLLOW_UP_DAYS (kind: 0 none, 1 ED
    return, 2 readmission, 3 death; its time µs), the clocks' initial hazards [m, 3], and the
    discharge location (-1: not discharged alive)."""
    end = _episode_end_us(ep)
    burden = conditions_at(phys, onset, ep.subj, end).sum(1)
    age = age_at(phys.subj, ep.subj, end)
    sev = np.clip(severity(ep.last_state), 0, None).astype(np.float64)
    discharged = (ep.end_state == HOME) & (ep.admit_step >= 0)
    p_loc = np.stack([np.full(ep.n, 0.55), 0.25 + 0.004 * np.clip(age - 60, 0, None), 0.08 + 0.006 * np.clip(age - 65, 0, None),
                      np.full(ep.n, 0.06), 0.01 + 0.01 * sev + 0.002 * np.clip(age - 75, 0, None)], axis=1)
    p_loc /= p_loc.sum(1, keepdims=True)
    draw = np.minimum((rng.random(ep.n)[:, None] > np.cumsum(p_loc, axis=1)).sum(1), len(vocab.DISCHARGE_LOCATIONS) - 1)
    loc = np.where(discharged, draw, -1).astype(np.int8)
    hospice = loc == vocab.DISCHARGE_LOCATIONS.index("HOSPICE")
    ed_home = (ep.end_state == HOME) & (ep.admit_step < 0)
    hazard = rates.rates(sev, burden, age, ed_home, discharged, hospice)
    first, hours = rates.draw(rng, hazard)
    kind = np.where((first >= 0) & (hours <= FOLLOW_UP_DAYS * 24), first + 1, 0).astype(np.int8)
    time = np.where(kind > 0, end + np.round(np.where(kind > 0, hours, 0) * US_PER_HOUR).astype(np.int64), NO_TIME)
    return kind, time, hazard, loc


def _follow_up_episodes(rng, phys, onset, parents: Episodes, kinds, times, parent_index) -> Episodes:
    """New episodes for ED returns (kind 1: an ED arrival) and readmissions (kind 2: an
    emergency admission straight to the ward, so that the readmission is the admission itself);
    ``visit`` holds -2 - parent so that each parent spawns once."""
    m = len(kinds)
    readmitted = kinds == FOLLOW_READMISSION
    reason = np.where(readmitted, READMISSION, ED_RETURN).astype(np.int8)
    shift = np.where(readmitted, 0.8, 0.3)
    sev = entry_severity(rng, phys, onset, parents.subj, times, np.zeros(m, np.int8), np.full(m, -1, np.int8), shift)
    entry = np.where(readmitted, WARD + np.minimum(sev, 3), ED + sev).astype(np.int8)
    return Episodes(parents.subj.copy(), times.astype(np.int64), ~readmitted, entry, reason, np.full(m, -1, np.int8),
                    (-2 - parent_index).astype(np.int64))


def _accept(ep: Episodes, kinds, times, chronic_death_us, data_end_us: int) -> tuple[np.ndarray, np.ndarray]:
    """Which episodes happen, in time order per subject, and each subject's death time.

    An episode is dropped when it starts inside an accepted episode or the FOLLOW_UP_DAYS after
    it (unless it is that episode's own follow-up), after the data end, or after the subject's
    death. While an accepted episode and its follow-up window run, a chronic death falling in
    them moves past them by their length. The death is the first of an in-hospital death, a
    death after discharge, and the (moved) chronic death."""
    n_subjects = len(chronic_death_us)
    death = chronic_death_us.astype(np.int64).tolist()
    order = np.lexsort((ep.start, ep.subj)).tolist()
    end = _episode_end_us(ep).tolist()
    subj, start = ep.subj.tolist(), ep.start.tolist()
    parent = np.where(ep.visit <= -2, -2 - ep.visit, -1).tolist()
    died_inside = (ep.end_state == DEAD).tolist()
    kinds_list, times_list = kinds.tolist(), times.tolist()
    window = FOLLOW_UP_DAYS * US_PER_DAY
    accepted = np.zeros(ep.n, bool)
    final = [None] * n_subjects
    current, busy_until, last_id, hospital_death = -1, -1, -1, NO_TIME
    for i in order:
        s = subj[i]
        if s != current:
            if current >= 0:
                final[current] = min(death[current], hospital_death)
            current, busy_until, last_id, hospital_death = s, -1, -1, NO_TIME
        t = start[i]
        if t >= data_end_us or t >= hospital_death or t >= death[s]:
            continue
        if parent[i] >= 0:
            if parent[i] != last_id:  # a follow-up happens only right after its own parent, if that happened
                continue
        elif t < busy_until:
            continue
        accepted[i] = True
        last_id = i
        busy_until = end[i] + window
        if t <= death[s] < busy_until and death[s] != NO_TIME:
            death[s] = death[s] + (busy_until - t)  # the chronic world pauses through the episode and its follow-up window
        if died_inside[i]:
            hospital_death = end[i]
        elif kinds_list[i] == FOLLOW_DEATH:
            hospital_death = times_list[i]
    if current >= 0:
        final[current] = min(death[current], hospital_death)
    out = np.array([death[k] if final[k] is None else final[k] for k in range(n_subjects)], np.int64)
    return accepted, out


def last_at_or_before(ref_subj, ref_time, subj, time) -> np.ndarray:
    """For each query (``subj``, ``time``), the index of the reference row of the same subject
    with the latest ``ref_time`` at or before ``time`` (-1: none). Sorts both together and
    carries the latest reference forward; O((m + q) log(m + q))."""
    n_ref = len(ref_subj)
    s = np.concatenate([np.asarray(ref_subj, np.int64), np.asarray(subj, np.int64)])
    t = np.concatenate([np.asarray(ref_time, np.int64), np.asarray(time, np.int64)])
    is_ref = np.r_[np.ones(n_ref, bool), np.zeros(len(subj), bool)]
    order = np.lexsort((~is_ref, t, s))  # a reference row before a query at the same time
    latest = np.maximum.accumulate(np.where(is_ref[order], np.arange(len(order)), -1))
    candidate = np.where(latest >= 0, order[np.maximum(latest, 0)], -1)
    candidate = np.where((candidate >= 0) & (s[np.maximum(candidate, 0)] == s[order]), candidate, -1)
    out = np.empty(len(subj), np.int64)
    queries = ~is_ref[order]
    out[order[queries] - n_ref] = candidate[queries]
    return out


def _pause_chronic_visits(visits, ep: Episodes, acute: np.ndarray, death_us: np.ndarray):
    """The chronic visits that remain and their times: acute visits are replaced by episodes
    (and gone when not accepted); another visit starting inside an episode moves to after it,
    by the episode's length; visits after the death are gone."""
    keep = np.ones(visits.n, bool)
    keep[acute] = False
    start, end = visits.start.astype(np.int64).copy(), visits.end.astype(np.int64).copy()
    e_end = _episode_end_us(ep)
    e = last_at_or_before(ep.subj, ep.start, visits.subj, start)
    inside = (e >= 0) & keep
    inside[inside] = start[inside] < e_end[e[inside]]
    delta = e_end[e[inside]] - ep.start[e[inside]]
    start[inside] += delta
    end[inside] += delta
    keep &= start < death_us[visits.subj]
    return keep, start, end


# ---- events ----------------------------------------------------------------------------------

# MEDS row order at one time, as the MIMIC-IV ETL writes it: admissions and registrations,
# then other events, then discharges, then death
RANK_OPEN, RANK_DEMOGRAPHICS, RANK_EVENT, RANK_CLOSE, RANK_DEATH = 0, 1, 5, 8, 10
PROBLEM_INDEX = {p[0]: i for i, p in enumerate(vocab.ACUTE_PROBLEMS)}


def _hours(ep_start: np.ndarray, step: np.ndarray) -> np.ndarray:
    return ep_start + step.astype(np.int64) * US_PER_HOUR


def _triage_vitals(rng, sev: np.ndarray) -> dict[str, np.ndarray]:
    """Triage vitals as MIMIC-IV-ED records them (°F, integers but temperature), by severity."""
    n = len(sev)
    sev = sev.astype(np.float64)
    infection = rng.random(n) < 0.15 + 0.1 * sev
    return {
        "TEMPERATURE": np.round(98.1 + 1.3 * infection * (0.5 + 0.4 * sev) + 0.6 * rng.standard_normal(n), 1),
        "HEART_RATE": np.round(np.clip(76 + 10 * sev + 5 * infection + 11 * rng.standard_normal(n), 30, 220)),
        "RESPIRATORY_RATE": np.round(np.clip(16 + 2.6 * sev + 1.8 * rng.standard_normal(n), 6, 50)),
        "O2_SATURATION": np.round(np.clip(98.2 - 1.8 * sev + 1.2 * rng.standard_normal(n), 60, 100)),
        "SBP": np.round(np.clip(134 - 10 * sev + 17 * rng.standard_normal(n), 50, 240)),
        "DBP": np.round(np.clip(79 - 6 * sev + 11 * rng.standard_normal(n), 20, 140)),
        "PAIN": np.clip(np.round(3 + 0.8 * sev + 2.6 * rng.standard_normal(n)), 0, 10),
        "ACUITY": np.clip(np.round(4.2 - 0.85 * sev + 0.55 * rng.standard_normal(n)), 1, 5),
    }


def _stay_value(rng, key: str, sev: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """A lab or vital measured during a stay: it follows the latent severity, with noise."""
    n = len(sev)
    sev = sev.astype(np.float64)
    z = rng.standard_normal(n)
    if key == "LACTATE":
        return np.exp(np.log(1.0) + 0.33 * sev + 0.25 * z)
    if key == "BILIRUBIN":
        return np.exp(np.log(0.6) + 0.22 * sev + 0.35 * z)
    if key == "PLATELETS":
        return np.clip(245 - 28 * sev + 55 * z, 8, None)
    if key == "CREATININE":
        return np.clip(base + 0.28 * sev * np.exp(0.3 * z), 0.3, None)
    if key == "WBC":
        return np.exp(np.log(7.2) + 0.2 * sev + 0.28 * z)
    if key == "HR":
        return np.clip(75 + 9 * sev + 9 * z, 30, 220)
    if key == "RR":
        return np.clip(16 + 2.4 * sev + 1.7 * z, 6, 50)
    if key == "SPO2":
        return np.clip(97.8 - 1.6 * sev + 1.1 * z, 60, 100)
    if key == "TEMP":
        return 98.2 + 0.35 * sev + 0.5 * z
    raise KeyError(key)


def emit_hospital_events(rng, buf, world: HospitalWorld, phys, onset) -> None:
    """Writes every episode's rows into ``buf`` (an ``EventBuffer``): ED registration with triage,
    ED departure, admission with its demographics, ICU admissions and discharges, labs and
    vitals that follow the latent severity, diagnoses, DRG and procedures at discharge, the
    discharge or the death; and deaths after discharge."""
    ep, paths, hadm, ci = world.episodes, world.paths, world.hadm_id, buf.code_index
    subj = phys.subj
    n = ep.n
    end = _episode_end_us(ep)
    hadm_of = hadm  # per episode
    admitted = ep.admit_step >= 0
    admit_t = np.where(admitted, _hours(ep.start, np.maximum(ep.admit_step, 0)), NO_TIME)
    entry_sev = severity(ep.entry)
    ed = np.flatnonzero(ep.via_ed)
    # ED registration and triage at the start; departure when the ED phase ends
    buf.add(ep.subj[ed], ep.start[ed], vocab.ED_REGISTRATION, rank=RANK_OPEN, hadm=hadm_of[ed])
    vitals = _triage_vitals(rng, entry_sev[ed])
    for key in ("TEMPERATURE", "HEART_RATE", "RESPIRATORY_RATE", "O2_SATURATION", "ACUITY"):
        buf.add(ep.subj[ed], ep.start[ed], vocab.TRIAGE[key][0], vitals[key], rank=RANK_DEMOGRAPHICS, hadm=hadm_of[ed])
    buf.add(ep.subj[ed], ep.start[ed], vocab.TRIAGE["BLOOD_PRESSURE"][0], vitals["SBP"], rank=RANK_DEMOGRAPHICS, hadm=hadm_of[ed],
            text=vitals["DBP"].astype(int).astype(str))
    buf.add(ep.subj[ed], ep.start[ed], vocab.TRIAGE["PAIN"][0], rank=RANK_DEMOGRAPHICS, hadm=hadm_of[ed],
            text=vitals["PAIN"].astype(int).astype(str))
    ed_out = np.where(admitted[ed], admit_t[ed], end[ed])
    buf.add(ep.subj[ed], ed_out, vocab.ED_OUT, rank=RANK_CLOSE, hadm=hadm_of[ed],
            text=np.where(admitted[ed], "ADMITTED", "HOME"))
    # ED labs 45 minutes in, for the sicker arrivals
    labs = ed[(entry_sev[ed] >= 1) & (rng.random(len(ed)) < 0.7)]
    t_lab = np.minimum(ep.start[labs] + 45 * US_PER_MINUTE, np.where(admitted[labs], admit_t[labs], end[labs]))
    for key in ("CREATININE", "WBC", "LACTATE"):
        sev = entry_sev[labs]
        base = measure(rng, phys, onset, "CREATININE", ep.subj[labs], t_lab, np.zeros(len(labs))) if key == "CREATININE" else None
        m = vocab.MEASUREMENTS.get(key) or vocab.STAY_LABS[key]
        buf.add(ep.subj[labs], t_lab, m.code, np.round(_stay_value(rng, key, sev, base), m.decimals), rank=RANK_EVENT)  # ED labs: no hadm_id

    # admissions
    adm = np.flatnonzero(admitted)
    via, readmitted = ep.via_ed[adm], ep.reason[adm] == READMISSION
    options = [vocab.ADMISSIONS_VIA_ED, vocab.ADMISSIONS_DIRECT, vocab.ADMISSIONS_READMISSION]
    codes = np.empty(len(adm), np.int32)
    for k, rows in enumerate((np.flatnonzero(via), np.flatnonzero(~via & ~readmitted), np.flatnonzero(readmitted))):
        ids = np.array([ci[c] for c, _, _ in options[k]], np.int32)
        shares = np.array([w for _, _, w in options[k]])
        codes[rows] = ids[rng.choice(len(ids), size=len(rows), p=shares / shares.sum())]
    buf.add(ep.subj[adm], admit_t[adm], codes, rank=RANK_OPEN, hadm=hadm_of[adm])
    s_adm = ep.subj[adm]
    age = (admit_t[adm] - subj.birth[s_adm]) / US_PER_YEAR
    insurance = np.where(age >= 65, 0, np.where(rng.random(len(adm)) < 0.3, 1, 2))
    marital = (subj.ids[s_adm] * 2654435761 % 97) % 4  # a fixed status per subject
    for prefix, values, index in (("INSURANCE", vocab.INSURANCE, insurance), ("MARITAL_STATUS", vocab.MARITAL_STATUS, marital),
                                  ("LANGUAGE", vocab.LANGUAGES, (rng.random(len(adm)) < 0.06).astype(int))):
        ids = np.array([ci[f"{prefix}//{v}"] for v in values], np.int32)
        buf.add(s_adm, admit_t[adm], ids[index], rank=RANK_DEMOGRAPHICS, hadm=hadm_of[adm])
    race_ids = np.array([ci[f"RACE//{r}"] for r in vocab.RACES], np.int32)
    buf.add(s_adm, admit_t[adm], race_ids[subj.race[s_adm]], rank=RANK_DEMOGRAPHICS, hadm=hadm_of[adm])

    # ICU stays: every entry into and exit from an ICU state
    loc = location(paths.state)
    prev_loc = np.r_[-1, loc[:-1]]
    prev_loc[np.r_[True, paths.episode[1:] != paths.episode[:-1]]] = -1
    icu_in = np.flatnonzero((loc == AT_ICU) & (prev_loc != AT_ICU))
    icu_out = np.flatnonzero((prev_loc == AT_ICU) & (loc != AT_ICU))
    unit = _icu_unit(ep, rng)
    for rows, prefix in ((icu_in, "ICU_ADMISSION"), (icu_out, "ICU_DISCHARGE")):
        e = paths.episode[rows]
        ids = np.array([ci[f"{prefix}//{u}"] for u in vocab.ICU_UNITS], np.int32)
        # a death in the ICU: as in MIMIC-IV, the unit is left after the death is recorded
        rank = np.full(len(rows), RANK_OPEN + 1) if prefix == "ICU_ADMISSION" else np.where(paths.state[rows] == DEAD, RANK_DEATH + 1, RANK_CLOSE)
        for r in np.unique(rank):
            at = rank == r
            buf.add(ep.subj[e[at]], _hours(ep.start[e[at]], paths.step[rows[at]]), ids[unit[e[at]]], rank=int(r), hadm=hadm_of[e[at]])

    # labs every morning (every 12 h in the ICU) and vitals every 8 h (every 2 h in the ICU)
    for every_ward, every_icu, keys, share in ((24, 12, ("LACTATE", "CREATININE", "WBC", "BILIRUBIN", "PLATELETS"), 0.85),
                                               (8, 2, ("HR", "RR", "SPO2", "TEMP"), 0.9)):
        e, step = _sample_steps(ep, min(every_ward, every_icu))
        state = paths.state_at(e, step)
        in_stay = (state >= WARD) & (state < HOME)
        since = step - ep.admit_step[e]
        due = in_stay & np.where(location(state) == AT_ICU, since % every_icu == 0, since % every_ward == 0)
        e, step, state = e[due], step[due], state[due]
        sev = severity(state)
        t = _hours(ep.start[e], step) + 20 * US_PER_MINUTE
        inside = t < end[e]
        e, t, sev = e[inside], t[inside], sev[inside]
        for key in keys:
            take = rng.random(len(e)) < share
            m = vocab.MEASUREMENTS.get(key) or vocab.STAY_LABS.get(key) or vocab.STAY_VITALS[key]
            base = measure(rng, phys, onset, "CREATININE", ep.subj[e[take]], t[take], np.zeros(int(take.sum()))) if key == "CREATININE" else None
            buf.add(ep.subj[e[take]], t[take], m.code, np.round(_stay_value(rng, key, sev[take], base), m.decimals), rank=RANK_EVENT,
                    hadm=hadm_of[e[take]])

    # at the end of a stay: diagnoses, DRG and procedures (MIMIC records them at discharge), then
    # the discharge, or death; an ED visit that ends at home has nothing more
    peak = np.full(n, -1, np.int8)
    np.maximum.at(peak, paths.episode, np.where(paths.state < HOME, severity(paths.state), -1).astype(np.int8))
    had_icu = np.zeros(n, bool)
    had_icu[paths.episode[loc == AT_ICU]] = True
    problem = _acute_problem(ep, peak, rng)
    adm_end = end[adm] - US_PER_MINUTE * (ep.end_state[adm] == HOME)
    dx_ids = np.array([ci[p[1]] for p in vocab.ACUTE_PROBLEMS], np.int32)
    drg_ids = np.array([ci[p[3]] for p in vocab.ACUTE_PROBLEMS], np.int32)
    buf.add(ep.subj[adm], adm_end, dx_ids[problem[adm]], rank=RANK_EVENT, hadm=hadm_of[adm])
    buf.add(ep.subj[adm], adm_end, drg_ids[problem[adm]], rank=RANK_EVENT, hadm=hadm_of[adm])
    for name, rule in (("INTUBATION", had_icu & (peak >= 4) & (rng.random(n) < 0.7)),
                       ("CENTRAL_LINE", had_icu & (peak >= 3) & (rng.random(n) < 0.5)),
                       ("DIALYSIS", (problem == PROBLEM_INDEX["AKI"]) & (peak >= 3) & (rng.random(n) < 0.4))):
        rows = np.flatnonzero(rule & admitted)
        buf.add(ep.subj[rows], end[rows] - US_PER_MINUTE * (ep.end_state[rows] == HOME), vocab.PROCEDURES[name][0], rank=RANK_EVENT,
                hadm=hadm_of[rows])
    alive = adm[ep.end_state[adm] == HOME]
    loc_ids = np.array([ci[f"HOSPITAL_DISCHARGE//{x}"] for x in vocab.DISCHARGE_LOCATIONS], np.int32)
    buf.add(ep.subj[alive], end[alive], loc_ids[np.maximum(world.discharge_location[alive], 0)], rank=RANK_CLOSE, hadm=hadm_of[alive])
    dead = adm[ep.end_state[adm] == DEAD]
    buf.add(ep.subj[dead], end[dead], vocab.DISCHARGE_DIED, rank=RANK_CLOSE, hadm=hadm_of[dead])


def _sample_steps(ep: Episodes, every: int) -> tuple[np.ndarray, np.ndarray]:
    """(episode, step) for steps 0, every, 2·every, … < end_step of each admitted episode."""
    adm = np.flatnonzero(ep.admit_step >= 0)
    first = ep.admit_step[adm]
    count = np.maximum((ep.end_step[adm] - first + every - 1) // every, 0)
    e = np.repeat(adm, count)
    k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return e, np.repeat(first, count) + k * every


def _icu_unit(ep: Episodes, rng) -> np.ndarray:
    """The ICU unit of each episode: by the reason of the visit (cardiac, stroke) or at random."""
    unit = rng.choice([0, 1, 3], size=ep.n, p=[0.55, 0.3, 0.15])
    unit = np.where(ep.dx == CAD, np.where(rng.random(ep.n) < 0.6, 2, 3), unit)
    return np.where(ep.dx == STROKE, 4, unit).astype(np.int8)


def _acute_problem(ep: Episodes, peak: np.ndarray, rng) -> np.ndarray:
    """Index into ACUTE_PROBLEMS: the visit's reason when it was a CAD or stroke diagnosis, else
    drawn, sicker stays being septic more often."""
    p = np.stack([0.08 + 0.08 * peak.clip(0), np.full(ep.n, 0.2), np.full(ep.n, 0.15), 0.06 + 0.03 * peak.clip(0),
                  np.zeros(ep.n), np.zeros(ep.n), np.full(ep.n, 0.4)], axis=1)
    p /= p.sum(1, keepdims=True)
    drawn = (rng.random(ep.n)[:, None] > np.cumsum(p, axis=1)).sum(1)
    problem = np.where(ep.dx == CAD, PROBLEM_INDEX["AMI"], np.where(ep.dx == STROKE, PROBLEM_INDEX["STROKE"], np.minimum(drawn, len(vocab.ACUTE_PROBLEMS) - 1)))
    return problem.astype(np.int8)


__all__ = ["FOLLOW_DEATH", "FOLLOW_ED_RETURN", "FOLLOW_READMISSION", "FOLLOW_UP_DAYS", "FOLLOW_UP_KINDS", "NO_FOLLOW_UP", "Episodes", "FollowUpRates", "HospitalWorld", "Paths", "build_hospital_world", "emit_hospital_events", "last_at_or_before",
           "entry_severity", "location", "simulate_chain"]
