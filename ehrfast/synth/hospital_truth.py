"""The hospital world's ground truth: at every anchor (ED registration, ED departure home,
admission, ICU admission, first ICU discharge, discharge alive) the exact probability of each
catalog outcome given the latent state there; and, for a documented subset of stays, the true
risk after every hour of the stay — the ceiling of an ARES trajectory, with its deactivated ICU
component and its 10 → 15-day switch.

``ground_truth/hospital_anchors.parquet``: subject_id, hadm_id (null without admission),
anchor (code name), time, state (chain state index), severity, and ``p_<outcome>`` columns
(null where the outcome does not apply at that anchor).
``ground_truth/stay_trajectories.parquet``: the stays whose hadm_id is a multiple of
``TRAJECTORY_EVERY``, one row per hour of the stay from the admission: elapsed_hours, state,
p_hospital_mortality, p_icu_admission (null, and icu_deactivated true, from the hour the patient
is in the ICU), threshold_days (10, then 15 from day 10 on), p_prolonged_stay (of that
threshold, from now), p_composite (ICU or death or a stay to the threshold; without ICU once
deactivated) and p_composite_ref (min(death + PS + ICU, 1), as ARES's reference composite).
The latent state changes only on the hour, so the true risk after any event of the stay is the
row of the hour the event falls in.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ehrfast.synth.hospital import FOLLOW_DEATH, FOLLOW_ED_RETURN, FOLLOW_READMISSION, FOLLOW_UP_DAYS, HospitalWorld, _episode_end_us, _hours
from ehrfast.synth.hospital_chain import AT_ICU, AT_WARD, DEAD, HOME, HOURS_PER_DAY, ICU, N_LEVELS, N_STATES, HospitalChain, location, severity
from ehrfast.units import US_PER_DAY, US_PER_HOUR

TRAJECTORY_EVERY = 50
ED_RETURN_HOURS = 72
OUTCOME_COLUMNS = ("p_ed_hospitalization", "p_ed_critical_outcome", "p_ed_representation", "p_hospital_mortality", "p_icu_admission",
                   "p_prolonged_stay", "p_composite", "p_icu_mortality", "p_icu_readmission", "p_readmission_30d")


def survival_curves(chain: HospitalChain, max_hours: int, absorbing: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """([N_STATES, max_hours + 1] P(still transient after k steps), [same] P(absorbed in HOME by
    step k)) for the chain with ``absorbing`` (plus HOME and DEAD) made absorbing."""
    p = chain.p.copy()
    for s in absorbing:
        p[s] = 0.0
        p[s, s] = 1.0
    stop = sorted(set(absorbing) | {HOME, DEAD})
    dist = np.eye(N_STATES)
    alive, home = np.empty((N_STATES, max_hours + 1)), np.empty((N_STATES, max_hours + 1))
    for k in range(max_hours + 1):
        alive[:, k] = 1.0 - dist[:, stop].sum(1)
        home[:, k] = dist[:, HOME]
        dist = dist @ p
    return alive, home


def anchor_table(world: HospitalWorld, chain: HospitalChain, subject_ids: np.ndarray) -> pa.Table:
    """One row per anchor with the true outcome probabilities (see the module docstring)."""
    o = chain.outcomes()
    ep, paths = world.episodes, world.paths
    end = _episode_end_us(ep)
    rows: dict[str, list] = {k: [] for k in ("episode", "anchor", "time", "state", *OUTCOME_COLUMNS)}

    def add(episode, anchor, time, state, **p):
        m = len(episode)
        rows["episode"].append(episode)
        rows["anchor"].append(np.full(m, anchor, dtype=object))
        rows["time"].append(time)
        rows["state"].append(state)
        for col in OUTCOME_COLUMNS:
            rows[col].append(p.get(col, np.full(m, np.nan)))

    ed = np.flatnonzero(ep.via_ed)
    add(ed, "ED_REGISTRATION", ep.start[ed], ep.entry[ed], p_ed_hospitalization=o.ed_admission_within_72h[ep.entry[ed]],
        p_ed_critical_outcome=o.ed_critical_within_12h[ep.entry[ed]])
    home = np.flatnonzero(ep.via_ed & (ep.admit_step < 0))
    add(home, "ED_OUT", end[home], ep.last_state[home],
        p_ed_representation=world.rates.probability_within(world.follow_hazard[home], ED_RETURN_HOURS))
    adm = np.flatnonzero(ep.admit_step >= 0)
    state = paths.state_at(adm, ep.admit_step[adm])
    add(adm, "HOSPITAL_ADMISSION", _hours(ep.start[adm], ep.admit_step[adm]), state, p_hospital_mortality=o.death_before_discharge[state],
        p_icu_admission=o.icu_before_discharge[state], p_prolonged_stay=o.stay_at_least[10][state], p_composite=o.composite[state])
    loc = location(paths.state)
    first_change = np.r_[True, paths.episode[1:] != paths.episode[:-1]]
    prev = np.r_[-1, loc[:-1]]
    prev[first_change] = -1
    into = np.flatnonzero((loc == AT_ICU) & (prev != AT_ICU))
    add(paths.episode[into], "ICU_ADMISSION", _hours(ep.start[paths.episode[into]], paths.step[into]), paths.state[into],
        p_icu_mortality=o.icu_death_before_icu_discharge[paths.state[into]])
    out_of = np.flatnonzero((prev == AT_ICU) & (loc == AT_WARD))  # ICU -> ward (not deaths in the ICU)
    first_out = out_of[np.r_[True, paths.episode[out_of][1:] != paths.episode[out_of][:-1]]] if len(out_of) else out_of
    add(paths.episode[first_out], "ICU_DISCHARGE", _hours(ep.start[paths.episode[first_out]], paths.step[first_out]),
        paths.state[first_out], p_icu_readmission=o.icu_before_discharge[paths.state[first_out]])
    discharged = adm[ep.end_state[adm] == HOME]
    add(discharged, "HOSPITAL_DISCHARGE", end[discharged], ep.last_state[discharged],
        p_readmission_30d=world.rates.probability_within(world.follow_hazard[discharged], FOLLOW_UP_DAYS * HOURS_PER_DAY))
    cols = {k: np.concatenate(v) for k, v in rows.items()}
    e = cols["episode"].astype(np.int64)
    hadm = world.hadm_id[e]
    order = np.lexsort((cols["time"], ep.subj[e]))
    table = {
        "subject_id": pa.array(subject_ids[ep.subj[e]][order], pa.int64()),
        "hadm_id": pa.array(hadm[order], pa.int64(), mask=hadm[order] < 0),
        "anchor": pa.array(cols["anchor"][order].tolist(), pa.string()),
        "time": pa.array(cols["time"][order].astype(np.int64), pa.int64()).cast(pa.timestamp("us")),
        "state": pa.array(cols["state"][order].astype(np.int8)),
        "severity": pa.array(severity(cols["state"][order]).astype(np.int8)),
    }
    for col in OUTCOME_COLUMNS:
        v = cols[col][order].astype(np.float64)
        table[col] = pa.array(v, pa.float64(), mask=np.isnan(v))
    return pa.table(table)


def trajectory_table(world: HospitalWorld, chain: HospitalChain, subject_ids: np.ndarray) -> pa.Table:
    """Hour-by-hour true risks of the stays whose hadm_id is a multiple of TRAJECTORY_EVERY."""
    o = chain.outcomes()
    ep, paths = world.episodes, world.paths
    chosen = np.flatnonzero((world.hadm_id >= 0) & (world.hadm_id % TRAJECTORY_EVERY == 0))
    first = ep.admit_step[chosen]
    hours = np.maximum(ep.end_step[chosen] - first, 0)
    e = np.repeat(chosen, hours)
    elapsed = np.arange(int(hours.sum())) - np.repeat(np.cumsum(hours) - hours, hours)
    step = np.repeat(first, hours) + elapsed
    state = paths.state_at(e, step)
    in_icu = location(state) == AT_ICU
    # "has been in the ICU at or before this hour": a running or within each stay
    starts = np.r_[0, np.cumsum(hours)[:-1]]
    running = np.maximum.accumulate(np.where(in_icu, np.arange(len(e)), -1))
    icu_so_far = running >= np.repeat(starts, hours)
    max_h = 15 * HOURS_PER_DAY
    alive, home = survival_curves(chain, max_h, [])
    _, home_before_icu = survival_curves(chain, max_h, list(range(ICU, ICU + N_LEVELS)))
    # ARES: the PS threshold θ is 10 days while the stay is younger than 10 days, then 15; a
    # sample is positive when the stay lasts at least θ − elapsed more, i.e. the patient is
    # still in hospital after θ·24 − elapsed − 1 more steps
    threshold = np.where(elapsed < 10 * HOURS_PER_DAY, 10, 15)
    left = np.clip(threshold * HOURS_PER_DAY - elapsed - 1, -1, max_h)
    reached = left < 0
    at = np.clip(left, 0, max_h)
    p_ps = np.where(reached, 1.0, alive[state, at])
    # the joint composite: ICU or death, or a stay of θ − elapsed more; once the ICU component
    # is deactivated (the patient has been there), ICU leaves the event set
    p_comp = np.where(reached, 1.0, np.where(icu_so_far, 1.0 - home[state, at], 1.0 - home_before_icu[state, at]))
    p_icu = np.where(icu_so_far, np.nan, o.icu_before_discharge[state])
    p_death = o.death_before_discharge[state]
    p_comp_ref = np.minimum(p_death + p_ps + np.nan_to_num(p_icu), 1.0)  # ARES composite_ref, a deactivated ICU counting 0
    hadm = world.hadm_id[e]
    return pa.table({
        "subject_id": pa.array(subject_ids[ep.subj[e]], pa.int64()),
        "hadm_id": pa.array(hadm, pa.int64()),
        "time": pa.array(_hours(ep.start[e], step), pa.int64()).cast(pa.timestamp("us")),
        "elapsed_hours": pa.array(elapsed.astype(np.int32)),
        "state": pa.array(state.astype(np.int8)),
        "p_hospital_mortality": pa.array(p_death),
        "p_icu_admission": pa.array(p_icu, pa.float64(), mask=np.isnan(p_icu)),
        "icu_deactivated": pa.array(icu_so_far),
        "threshold_days": pa.array(threshold.astype(np.int8)),
        "p_prolonged_stay": pa.array(p_ps),
        "p_composite": pa.array(p_comp),
        "p_composite_ref": pa.array(p_comp_ref),
    })


def realized_rates(world: HospitalWorld) -> dict[str, float]:
    """The outcomes as they happened, by counting events (what the catalog tasks label)."""
    ep, paths = world.episodes, world.paths
    end = _episode_end_us(ep)
    adm = ep.admit_step >= 0
    loc = location(paths.state)
    icu_ever = np.zeros(ep.n, bool)
    icu_ever[paths.episode[loc == AT_ICU]] = True
    los = (ep.end_step - np.maximum(ep.admit_step, 0)).astype(np.int64)
    died = ep.end_state == DEAD
    ed = ep.via_ed
    icu_step = np.full(ep.n, np.iinfo(np.int32).max, np.int64)
    np.minimum.at(icu_step, paths.episode[loc == AT_ICU], paths.step[loc == AT_ICU].astype(np.int64))
    critical = ed & ((icu_step <= 12) | (died & (ep.end_step <= 12)))
    ed_home = ed & ~adm
    returned = ed_home & (world.follow_kind == FOLLOW_ED_RETURN) & (world.follow_time - end <= ED_RETURN_HOURS * US_PER_HOUR)
    discharged = adm & ~died
    back = discharged & np.isin(world.follow_kind, [FOLLOW_READMISSION, FOLLOW_DEATH]) & (world.follow_time - end <= FOLLOW_UP_DAYS * US_PER_DAY)
    composite = adm & (icu_ever | died | (los >= 10 * HOURS_PER_DAY))

    def share(hit, of):
        return round(float(hit.sum() / max(of.sum(), 1)), 4)

    return {
        "admissions": int(adm.sum()), "ed_visits": int(ed.sum()),
        "hospital_mortality": share(died & adm, adm), "icu_admission": share(icu_ever & adm, adm),
        "prolonged_stay_10d": share(adm & (los >= 10 * HOURS_PER_DAY), adm), "composite": share(composite, adm),
        "ed_hospitalization": share(ed & adm, ed), "ed_critical_outcome_12h": share(critical, ed),
        "ed_return_72h": share(returned, ed_home), "readmission_or_death_30d": share(back, discharged),
        "median_length_of_stay_days": round(float(np.median(los[adm]) / 24), 2) if adm.any() else 0.0,
        "p90_length_of_stay_days": round(float(np.percentile(los[adm], 90) / 24), 2) if adm.any() else 0.0,
    }


__all__ = ["OUTCOME_COLUMNS", "TRAJECTORY_EVERY", "anchor_table", "realized_rates", "survival_curves", "trajectory_table"]
