"""The chronic world of the synthetic cohort: who the subjects are, their latent physiology and
its genetic part, yearly disease and death hazards, the visits they make, and what a lab or
vital measures at a given time. ``generator.py`` turns it into MEDS rows; ``hospital.py`` runs
the acute episodes inside it. All functions are vectorized over subjects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrfast.synth import codes as vocab
from ehrfast.synth.config import SyntheticConfig
from ehrfast.units import US_PER_DAY, US_PER_MINUTE, US_PER_YEAR

EPOCH = np.datetime64("1970-01-01T00:00:00", "us")
AGE_MIN, AGE_MAX = 18, 100
N_DIS = len(vocab.DISEASES)
T2D, CAD, DEP, SCZ, COPD, STROKE = range(N_DIS)


# ----------------------------------------------------------------------------- subjects


@dataclass
class Subjects:
    """Per-subject draws; arrays of length n."""

    ids: np.ndarray  # int64, sorted
    male: np.ndarray  # bool
    race: np.ndarray  # int, index into vocab.RACES
    birth: np.ndarray  # int64 µs since epoch
    start: np.ndarray  # int64 µs: first EHR event
    smoker: np.ndarray  # bool
    frailty: np.ndarray  # float: visit-rate multiplier, heavy-tailed
    noise: np.ndarray  # [n, 4] float: idiosyncratic parts of BMI, glycaemia, LDL, SBP
    type1: np.ndarray  # bool: the decoy condition

    @property
    def n(self) -> int:
        return len(self.ids)


def to_us(date: str) -> int:
    return int((np.datetime64(date, "us") - EPOCH).astype(np.int64))


def draw_subjects(rng: np.random.Generator, cfg: SyntheticConfig) -> Subjects:
    n = cfg.n_subjects
    ids = 100_000_000 + np.cumsum(rng.integers(1, 60, n)).astype(np.int64)
    birth_day = rng.integers(to_us("1935-01-01") // US_PER_DAY, to_us("1996-01-01") // US_PER_DAY, n)
    birth = birth_day.astype(np.int64) * US_PER_DAY
    calendar_start = rng.integers(to_us("1999-01-01"), to_us("2013-01-01"), n)
    start = np.maximum(calendar_start, birth + AGE_MIN * US_PER_YEAR + rng.integers(0, 5 * US_PER_YEAR, n))
    start = start // US_PER_MINUTE * US_PER_MINUTE
    return Subjects(
        ids=ids,
        male=rng.random(n) < 0.49,
        race=rng.choice(len(vocab.RACES), size=n, p=vocab.RACE_SHARES),
        birth=birth,
        start=start,
        smoker=rng.random(n) < 0.22,
        frailty=np.minimum(rng.lognormal(-0.35, 0.85, n), 6.0),
        noise=rng.standard_normal((n, 4)),
        type1=rng.random(n) < 0.004,
    )


# ----------------------------------------------------------------------------- physiology


@dataclass
class Physiology:
    """Latent physiology of each subject as a function of age; all methods take subject
    indices ``s`` and ages ``a`` (years) of equal shape and return values of that shape."""

    subj: Subjects
    G: np.ndarray  # [n, N_DIS] liabilities

    def z_bmi(self, s):
        return 0.3 * self.G[s, T2D] + 0.95 * self.subj.noise[s, 0]

    def bmi(self, s, a):
        return 27.5 + 4.5 * self.z_bmi(s) + 0.06 * (np.minimum(a, 65) - 45)

    def glycaemia(self, s, a):
        """Standardized glycaemic state; carries most of the T2D genetic signal."""
        return 0.65 * self.G[s, T2D] + 0.3 * self.z_bmi(s) + 0.03 * (a - 50) + 0.55 * self.subj.noise[s, 1]

    def z_ldl(self, s):
        return 0.45 * self.G[s, CAD] + 0.9 * self.subj.noise[s, 2]

    def ldl(self, s, a):
        return 118 + 32 * self.z_ldl(s) + 0.4 * (a - 50)

    def z_sbp(self, s, a):
        return 0.3 * self.G[s, STROKE] + 0.95 * self.subj.noise[s, 3] + 0.035 * (a - 45) + 0.2 * self.z_bmi(s)

    def sbp(self, s, a):
        return 122 + 13 * self.z_sbp(s, a)

    def comorbid(self, s, a) -> np.ndarray:
        """[..., 4] bool: prediabetes, hypertension, hyperlipidemia, obesity (by latent state)."""
        return np.stack(
            [
                5.45 + 0.32 * self.glycaemia(s, a) >= 5.7,
                self.sbp(s, a) >= 140,
                self.ldl(s, a) >= 160,
                self.bmi(s, a) >= 30,
            ],
            axis=-1,
        )

    def log_odds(self, s, a, prior: np.ndarray) -> np.ndarray:
        """[len(s), N_DIS] yearly onset log-odds; ``prior`` [len(s), N_DIS] bool diseases present."""
        G, male, smoker = self.G[s], self.subj.male[s], self.subj.smoker[s]
        lo = np.empty((len(s), N_DIS))
        lo[:, T2D] = -4.75 + 1.5 * self.glycaemia(s, a) + 0.2 * G[:, T2D] + 0.15 * male
        lo[:, CAD] = -5.9 + 0.065 * (a - 55) + 0.6 * G[:, CAD] + 0.55 * male + 0.35 * self.z_ldl(s) + 0.6 * prior[:, T2D] + 0.4 * smoker
        lo[:, DEP] = -5.0 + 0.6 * G[:, DEP] + 0.45 * ~male - 0.01 * (a - 40) + 0.4 * (prior[:, CAD] | prior[:, STROKE])
        lo[:, SCZ] = -6.6 + 0.9 * G[:, SCZ] - 0.07 * np.maximum(a - 25, 0) + 0.3 * male
        lo[:, COPD] = -6.1 + 0.06 * (a - 55) + 1.4 * smoker + 0.45 * G[:, COPD]
        lo[:, STROKE] = -6.6 + 0.075 * (a - 60) + 0.5 * G[:, STROKE] + 0.4 * self.z_sbp(s, a) + 0.45 * prior[:, T2D] + 0.35 * prior[:, CAD] + 0.3 * smoker
        return lo

    def death_log_odds(self, s, a, prior):
        major = prior[:, [T2D, CAD, COPD, STROKE]].sum(1)
        return -10.4 + 0.09 * a + 0.35 * major + 0.3 * self.subj.smoker[s]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def simulate_onsets(rng, phys: Physiology, censor_us: int):
    """Yearly discrete-time simulation from age 18. Returns onset ages [n, N_DIS] (inf = none)
    and death age [n] (inf = alive at censoring).

    Diseases may start before the record does (they are then history at intake), but a subject
    with a record was alive when it started: the death hazard runs from the record start on,
    prorated over the year it falls in."""
    subj = phys.subj
    n = subj.n
    s = np.arange(n)
    age_at_censor = (censor_us - subj.birth) / US_PER_YEAR
    age_at_start = (subj.start - subj.birth) / US_PER_YEAR
    onset = np.full((n, N_DIS), np.inf)
    death = np.full(n, np.inf)
    for y in range(AGE_MIN, AGE_MAX):
        alive = (death == np.inf) & (age_at_censor > y)
        if not alive.any():
            break
        a = np.full(n, float(y))
        prior = onset < y
        p = sigmoid(phys.log_odds(s, a, prior))
        new = (rng.random((n, N_DIS)) < p) & ~prior & alive[:, None]
        onset[new] = y + rng.random(new.sum())
        from_age = np.maximum(float(y), age_at_start)
        exposure = np.clip(y + 1 - from_age, 0.0, 1.0)
        p_death = -np.expm1(exposure * np.log1p(-sigmoid(phys.death_log_odds(s, a, prior))))
        dies = (rng.random(n) < p_death) & alive
        death[dies] = from_age[dies] + exposure[dies] * rng.random(dies.sum())
    onset[onset > np.minimum(death, age_at_censor)[:, None]] = np.inf
    death[death > age_at_censor] = np.inf
    return onset, death


def true_risk(phys: Physiology, s: np.ndarray, age0: np.ndarray, prior: np.ndarray, horizon: float) -> np.ndarray:
    """[len(s), N_DIS] probability of onset within ``horizon`` years after ``age0`` under the
    generating hazards, with the other diseases held at their state ``prior`` at ``age0``.
    Uses the same yearly hazards as the simulation, prorated over partial years."""
    log_surv = np.zeros((len(s), N_DIS))
    first = np.floor(age0)
    for k in range(int(np.ceil(horizon)) + 1):
        y = first + k
        exposure = np.clip(np.minimum(y + 1, age0 + horizon) - np.maximum(y, age0), 0, 1)
        p = sigmoid(phys.log_odds(s, np.maximum(y, AGE_MIN), prior))
        log_surv += exposure[:, None] * np.log1p(-p)
    return 1 - np.exp(log_surv)


# ----------------------------------------------------------------------------- visits

INTAKE, ROUTINE, DIAGNOSIS = 0, 1, 2  # why a visit happened
OUTPATIENT, EMERGENCY, INPATIENT = range(3)


@dataclass
class Visits:
    """Flat visit table, one entry per visit."""

    subj: np.ndarray  # int64 subject index
    start: np.ndarray  # int64 µs
    end: np.ndarray  # int64 µs
    kind: np.ndarray  # int8 visit type (OUTPATIENT/EMERGENCY/INPATIENT)
    reason: np.ndarray  # int8 INTAKE/ROUTINE/DIAGNOSIS
    dx: np.ndarray  # int8 disease diagnosed at this visit, -1 if none
    hadm: np.ndarray | None = None  # int64 admission id of a hospital episode's visit (-1: none)
    admitted_at: np.ndarray | None = None  # int64 µs: rows from then on belong to the admission

    @property
    def n(self) -> int:
        return len(self.subj)

    def hadm_at(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray | None:
        """The hadm_id of rows recorded at times ``t`` [len(rows)] during visits ``rows``, as
        MIMIC-IV links in-stay rows to their admission; None for visits without admissions."""
        if self.hadm is None:
            return None
        return np.where(t >= self.admitted_at[rows], self.hadm[rows], -1)


def age_at(subj: Subjects, s: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    return (t_us - subj.birth[s]) / US_PER_YEAR


def draw_visits(rng, phys: Physiology, onset, record_end, visit_rate: float) -> Visits:
    subj = phys.subj
    n = subj.n
    # Routine visits: Poisson per subject-year slot, the rate growing with burden and frailty.
    n_slots = np.ceil((record_end - subj.start) / US_PER_YEAR).astype(np.int64).clip(min=1)
    slot_s = np.repeat(np.arange(n), n_slots)
    slot_k = np.arange(len(slot_s)) - np.repeat(np.cumsum(n_slots) - n_slots, n_slots)
    slot_t0 = subj.start[slot_s] + slot_k * US_PER_YEAR
    slot_len = np.minimum(slot_t0 + US_PER_YEAR, record_end[slot_s]) - slot_t0
    mid_age = age_at(subj, slot_s, slot_t0 + slot_len // 2)
    burden = (onset[slot_s] < mid_age[:, None]).sum(1) + phys.comorbid(slot_s, mid_age).sum(1)
    rate = visit_rate * subj.frailty[slot_s] * (1 + 0.35 * burden) * np.clip(0.7 + 0.015 * (mid_age - 40), 0.5, None)
    counts = rng.poisson(rate * slot_len / US_PER_YEAR)
    r_s = np.repeat(slot_s, counts)
    r_t = np.repeat(slot_t0, counts) + (rng.random(len(r_s)) * np.repeat(slot_len, counts)).astype(np.int64)
    r_burden = np.repeat(burden, counts)

    # Diagnosis visits: each onset inside the record is seen within weeks.
    onset_us = subj.birth[:, None] + (np.where(np.isfinite(onset), onset, 0) * US_PER_YEAR).astype(np.int64)
    seen = np.isfinite(onset) & (onset_us > subj.start[:, None])
    d_s, d_d = np.nonzero(seen)
    d_t = onset_us[d_s, d_d] + (rng.exponential(20, len(d_s)) * US_PER_DAY).astype(np.int64)
    keep = d_t < record_end[d_s]
    d_s, d_d, d_t = d_s[keep], d_d[keep], d_t[keep]

    s = np.concatenate([np.arange(n), r_s, d_s])
    t = np.concatenate([subj.start, r_t, d_t])
    reason = np.concatenate([np.full(n, INTAKE), np.full(len(r_s), ROUTINE), np.full(len(d_s), DIAGNOSIS)]).astype(np.int8)
    dx = np.concatenate([np.full(n + len(r_s), -1), d_d]).astype(np.int8)
    burden_all = np.concatenate([np.zeros(n), r_burden, np.full(len(d_s), 2)])

    u = rng.random(len(s))
    p_inpatient = np.clip(0.03 + 0.02 * burden_all, 0, 0.2)
    kind = np.where(u < p_inpatient, INPATIENT, np.where(u < p_inpatient + 0.08, EMERGENCY, OUTPATIENT))
    acute_dx = (reason == DIAGNOSIS) & np.isin(dx, [CAD, STROKE])
    kind = np.where(acute_dx & (rng.random(len(s)) < 0.6), INPATIENT, kind)
    kind = np.where(reason == INTAKE, OUTPATIENT, kind).astype(np.int8)

    # Clock times: outpatient visits in office hours, others at any time of day.
    day = t // US_PER_DAY * US_PER_DAY
    office = day + (8 * 60 + rng.integers(0, 9 * 60, len(s))) * US_PER_MINUTE
    t = np.where((kind == OUTPATIENT) & (reason != INTAKE), office, t // US_PER_MINUTE * US_PER_MINUTE)
    t = np.maximum(t, subj.start[s])
    minutes = np.select(
        [kind == OUTPATIENT, kind == EMERGENCY],
        [rng.integers(45, 91, len(s)), rng.integers(120, 600, len(s))],
        (24 * 60 * (1 + rng.gamma(1.3, 2.0, len(s)))).astype(np.int64),
    )
    end = t + minutes * US_PER_MINUTE
    return Visits(s.astype(np.int64), t, end, kind, reason, dx)



# ----------------------------------------------------------------------------- conditions and measured values


def conditions_at(phys: Physiology, onset, s, t_us) -> np.ndarray:
    """[len(s), N_DIS + 4] bool: diseases then comorbidities present at times ``t_us``."""
    a = age_at(phys.subj, s, t_us)
    return np.concatenate([onset[s] <= a[:, None], phys.comorbid(s, a)], axis=1)


CONDITIONS = list(vocab.DISEASES) + list(vocab.COMORBIDITIES)


def measure(rng, phys: Physiology, onset, key: str, s, t_us, acute) -> np.ndarray:
    """Measured values of lab/vital ``key`` for subjects ``s`` at times ``t_us``."""
    a = age_at(phys.subj, s, t_us)
    n = len(s)
    years_t2d = a - onset[s, T2D]
    has_t2d = years_t2d >= 0
    treated_gap = np.where(has_t2d, 0.6 + 0.8 * np.exp(-np.clip(years_t2d, 0, None) / 4), 0)
    noise = rng.standard_normal(n)
    if key == "HBA1C":
        return 5.45 + 0.32 * phys.glycaemia(s, a) + treated_gap + 0.12 * noise
    if key == "GLUCOSE":
        return 96 + 11 * phys.glycaemia(s, a) + 30 * treated_gap + 8 * noise + 25 * acute * rng.random(n)
    if key == "LDL":
        statin = onset[s, CAD] <= a
        return np.clip(phys.ldl(s, a) - 35 * statin + 12 * noise, 30, None)
    if key == "BMI":
        return phys.bmi(s, a) + 0.6 * noise
    if key == "SBP":
        return phys.sbp(s, a) + 8 * noise + 10 * acute
    if key == "CREATININE":
        return np.clip(0.85 + 0.12 * phys.subj.male[s] + 0.006 * (a - 50) + 0.3 * has_t2d + 0.12 * noise + 0.4 * acute * rng.random(n), 0.3, None)
    if key == "HEMOGLOBIN":
        return 13.2 + 1.3 * phys.subj.male[s] - 0.8 * acute + 0.9 * noise
    if key == "SODIUM":
        return 139.5 + 2.2 * noise - 1.5 * acute
    if key == "POTASSIUM":
        return 4.2 + 0.35 * noise + 0.1 * has_t2d
    if key == "WBC":
        return np.exp(np.log(7.0) + 0.25 * noise + 0.35 * acute)
    raise KeyError(key)
