"""The latent law of the hospital world: an hourly Markov chain over where a patient is (ED,
ward, ICU) and how sick (severity 0 … 4), with two absorbing states (left alive, dead), and the
exact probabilities of every hospital outcome from any state by dynamic programming.

States (``N_STATES`` = 17): ``ED + s``, ``WARD + s``, ``ICU + s`` for severity s = 0 … 4, then
``HOME`` (left the ED or the hospital alive) and ``DEAD``. One step is one hour. From the ED a
patient is sent home or admitted (to the ward, or straight to the ICU); in hospital severity
drifts, the sickest go to the ICU and come back when better, and a patient leaves alive only
from the ward at low severity. Everything a hospital task asks — death before discharge, ICU
before discharge, a stay of 10 days or more, ICU or death within 12 hours of triage — is a
function of the state at the anchor and is computed here exactly; the generator samples the
same chain, so the ground truth is the generator's own law (a test re-simulates it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_LEVELS = 5
ED, WARD, ICU = 0, 5, 10
HOME, DEAD = 15, 16
N_STATES = 17
LOCATIONS = ("ED", "WARD", "ICU")
HOURS_PER_DAY = 24


AT_ED, AT_WARD, AT_ICU, AT_HOME, AT_DEAD = range(5)  # what ``location`` returns


def location(state: np.ndarray) -> np.ndarray:
    """Where each state is: AT_ED, AT_WARD, AT_ICU, AT_HOME or AT_DEAD."""
    state = np.asarray(state)
    return np.where(state < HOME, state // N_LEVELS, state - HOME + 3)


def severity(state: np.ndarray) -> np.ndarray:
    """Severity 0 … 4 of transient states (-1 for home / dead)."""
    state = np.asarray(state)
    return np.where(state < HOME, state % N_LEVELS, -1)


@dataclass(frozen=True)
class ChainParameters:
    """Hourly probabilities by severity 0 … 4 (each row of the chain sums to 1; the remainder
    is "stay as is")."""

    ed_leave: tuple[float, ...] = (0.30, 0.25, 0.24, 0.35, 0.60)  # the ED visit ends this hour
    ed_admit: tuple[float, ...] = (0.02, 0.43, 0.80, 0.97, 1.00)  # ... with an admission
    ed_direct_icu: tuple[float, ...] = (0.0, 0.0, 0.11, 0.26, 0.30)  # ... straight to the ICU
    ed_worsen: tuple[float, ...] = (0.004, 0.006, 0.008, 0.01, 0.0)
    ward_worsen: tuple[float, ...] = (0.0015, 0.0020, 0.0025, 0.0025, 0.0)
    ward_improve: tuple[float, ...] = (0.0, 0.0349, 0.0315, 0.0210, 0.0174)
    ward_to_icu: tuple[float, ...] = (0.0, 0.000085, 0.00212, 0.0255, 0.0593)
    ward_death: tuple[float, ...] = (0.0, 0.0000099, 0.0000298, 0.000298, 0.00248)
    ward_discharge: tuple[float, ...] = (0.0160, 0.00361, 0.0, 0.0, 0.0)
    icu_worsen: tuple[float, ...] = (0.0, 0.0040, 0.0060, 0.0060, 0.0)
    icu_improve: tuple[float, ...] = (0.0, 0.0200, 0.0250, 0.0200, 0.0150)
    icu_to_ward: tuple[float, ...] = (0.0500, 0.0300, 0.0050, 0.0, 0.0)
    icu_death: tuple[float, ...] = (0.0, 0.0, 0.0000782, 0.000625, 0.00391)

    def transition_matrix(self) -> np.ndarray:
        """[N_STATES, N_STATES] float64, row = from, column = to."""
        p = np.zeros((N_STATES, N_STATES))
        for s in range(N_LEVELS):
            leave, admit, icu = self.ed_leave[s], self.ed_admit[s], self.ed_direct_icu[s]
            p[ED + s, HOME] = leave * (1 - admit)
            p[ED + s, WARD + s] = leave * admit * (1 - icu)
            p[ED + s, ICU + s] = leave * admit * icu
            if s + 1 < N_LEVELS:
                p[ED + s, ED + s + 1] = (1 - leave) * self.ed_worsen[s]
            for base, worsen, improve in ((WARD, self.ward_worsen, self.ward_improve), (ICU, self.icu_worsen, self.icu_improve)):
                if s + 1 < N_LEVELS:
                    p[base + s, base + s + 1] = worsen[s]
                if s > 0:
                    p[base + s, base + s - 1] = improve[s]
            p[WARD + s, ICU + s] = self.ward_to_icu[s]
            p[WARD + s, DEAD] = self.ward_death[s]
            p[WARD + s, HOME] = self.ward_discharge[s]
            p[ICU + s, WARD + s] = self.icu_to_ward[s]
            p[ICU + s, DEAD] = self.icu_death[s]
        p[HOME, HOME] = p[DEAD, DEAD] = 1.0
        stay = 1.0 - p.sum(1)
        if (stay < -1e-12).any():
            raise ValueError(f"hourly probabilities of state {int(np.argmin(stay))} sum to more than 1")
        p[np.arange(N_STATES), np.arange(N_STATES)] += np.clip(stay, 0, None)
        return p


@dataclass(frozen=True)
class Outcomes:
    """The exact probability of each hospital outcome from every state, [N_STATES] float64 each
    (states where an outcome does not apply hold NaN). Times are measured from the anchor."""

    death_before_discharge: np.ndarray  # hospital_mortality: absorbed in DEAD
    icu_before_discharge: np.ndarray  # icu_admission: reaches an ICU state before home / dead
    stay_at_least: dict[int, np.ndarray] = field(default_factory=dict)  # days -> P(still in hospital after that many days)
    composite: np.ndarray | None = None  # ICU or death before discharge, or a stay of >= 10 days
    ed_admission_within_72h: np.ndarray | None = None  # from ED states
    ed_critical_within_12h: np.ndarray | None = None  # from ED states: ICU or death within 12 h
    icu_death_before_icu_discharge: np.ndarray | None = None  # from ICU states


class HospitalChain:
    """The chain and its dynamic programs."""

    def __init__(self, parameters: ChainParameters | None = None):
        self.parameters = parameters or ChainParameters()
        self.p = self.parameters.transition_matrix()
        self.cumulative = np.cumsum(self.p, axis=1)
        self.cumulative[:, -1] = 1.0  # rounding: the last state takes what is left

    # ---- sampling ------------------------------------------------------------------------

    def step(self, state: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The next states of ``state`` [m] for uniforms ``u`` [m] (inverse CDF of each row)."""
        return (self.cumulative[state] <= u[:, None]).sum(1).astype(state.dtype)

    # ---- exact probabilities ---------------------------------------------------------------

    def absorption(self, absorbing: list[int]) -> np.ndarray:
        """[N_STATES, len(absorbing)]: from each state, the probability of being absorbed first
        in each of ``absorbing`` (the chain with those states made absorbing; HOME and DEAD are
        absorbing anyway). Solved as a linear system over the other states."""
        absorbing = sorted(set(absorbing) | {HOME, DEAD})
        transient = [s for s in range(N_STATES) if s not in absorbing]
        q = self.p[np.ix_(transient, transient)]
        r = self.p[np.ix_(transient, absorbing)]
        b = np.linalg.solve(np.eye(len(transient)) - q, r)
        out = np.zeros((N_STATES, len(absorbing)))
        out[transient] = b
        out[absorbing, np.arange(len(absorbing))] = 1.0
        return out, absorbing

    def absorbed_within(self, absorbing: list[int], hours: int) -> np.ndarray:
        """[N_STATES, N_STATES]: P(in state j after ``hours`` steps | start in i) for the chain
        with ``absorbing`` made absorbing (so an absorbing j means "absorbed there by then")."""
        p = self.p.copy()
        for s in absorbing:
            p[s] = 0.0
            p[s, s] = 1.0
        return np.linalg.matrix_power(p, hours)

    def outcomes(self, stay_days: tuple[int, ...] = (10, 15)) -> Outcomes:
        """Every outcome from every state (see ``Outcomes``)."""
        icu_states = list(range(ICU, ICU + N_LEVELS))
        ward_states = list(range(WARD, WARD + N_LEVELS))
        hospital = ward_states + icu_states
        nan = np.full(N_STATES, np.nan)

        b, order = self.absorption([])
        death = b[:, order.index(DEAD)]
        first, order = self.absorption(icu_states)
        icu_first = sum(first[:, order.index(s)] for s in icu_states)
        # a stay of at least d days: the discharge or death comes at step 24·d or later, i.e. the
        # patient is still in hospital after 24·d − 1 steps
        stay = {}
        for days in stay_days:
            reached = self.absorbed_within([], days * HOURS_PER_DAY - 1)
            stay[days] = 1.0 - reached[:, HOME] - reached[:, DEAD]
        # composite: the first of {discharge, ICU, death} is ICU or death, or comes at >= 10 days;
        # with the ICU made absorbing, that is "not discharged home within 10 days - 1 hour"
        no_icu = self.absorbed_within(icu_states, 10 * HOURS_PER_DAY - 1)
        composite = 1.0 - no_icu[:, HOME]
        # ED outcomes
        admit = self.absorbed_within(hospital, 72)
        ed_admission = admit[:, hospital].sum(1)
        critical = self.absorbed_within(icu_states + [DEAD], 12)
        ed_critical = critical[:, icu_states].sum(1) + critical[:, DEAD]
        # ICU death before leaving the ICU
        icu_exit, order2 = self.absorption(ward_states)
        icu_death = icu_exit[:, order2.index(DEAD)]

        def only(values, states):
            out = nan.copy()
            out[states] = values[states]
            return out

        ed_states = list(range(ED, ED + N_LEVELS))
        return Outcomes(
            death_before_discharge=only(death, hospital),
            icu_before_discharge=only(icu_first, hospital),
            stay_at_least={d: only(v, hospital) for d, v in stay.items()},
            composite=only(composite, hospital),
            ed_admission_within_72h=only(ed_admission, ed_states),
            ed_critical_within_12h=only(ed_critical, ed_states),
            icu_death_before_icu_discharge=only(icu_death, icu_states),
        )


__all__ = ["AT_DEAD", "AT_ED", "AT_HOME", "AT_ICU", "AT_WARD", "DEAD", "ED", "HOME", "HOURS_PER_DAY", "ICU", "N_LEVELS", "N_STATES", "WARD", "ChainParameters", "HospitalChain", "Outcomes",
           "location", "severity"]
