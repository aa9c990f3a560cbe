"""Explanations of a risk trajectory (ARES.md S8): which groups of tokens moved the risk.

For each token group g of the stay (``groups.token_groups``) whose last token and the token
before it were both evaluated, Δ_g = risk(after g) − risk(before g). Its standard error is
√(p_a(1−p_a)/n_a + p_b(1−p_b)/n_b) for independent streams; with common random numbers the two
positions' futures are paired sample by sample, and the SE is that of the mean paired difference
over the samples valid at both (much smaller where the contexts hardly differ). z = Δ / SE;
groups are ranked by |Δ| and ``significant`` means |z| > 1.96. Where the evaluated positions are
coarser than the groups (``every_k``, ``per_timestamp``), a step between two evaluated positions
is explained as a whole, its tokens' groups together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ehrfast.errors import InvalidInputError
from ehrfast.infer.ares.groups import REFERENCE_RULES, GroupRule, token_groups
from ehrfast.infer.ares.trajectory import COMPONENTS, INVALID, RiskTrajectory, StayTrajectory
from ehrfast.infer.risk import Z_95

WINDOW = 5  # tokens shown around a group: the group and its neighbours, 5 in all at least
SHOWN_TOKENS = 12  # a longer span (coarse positions) is shown by its first and last tokens


def _abbreviated(names: list[str]) -> str:
    if len(names) <= SHOWN_TOKENS:
        return " ".join(names)
    return " ".join(names[:4]) + f" … ({len(names) - 6} more) … " + " ".join(names[-2:])


@dataclass(frozen=True)
class ExplainedGroup:
    """One ranked group: its token indices ``first`` … ``last``, its tokens (space-separated; a span
    of more than 12 tokens, from coarse positions, by its first and last), ``n_tokens``, time and
    elapsed time of its last token (µs), Δ, SE, z (None where SE is 0 and Δ is not), direction
    ("up", "down", "none"), ``significant`` and a ``window`` of the tokens around it (the group
    in brackets)."""

    rank: int
    first: int
    last: int
    tokens: str
    n_tokens: int
    time_us: int
    elapsed_us: int
    risk_before: float
    risk_after: float
    delta: float
    se: float
    z: float | None
    significant: bool
    direction: str
    window: str


def _paired_se(a: np.ndarray, b: np.ndarray) -> float | None:
    """SE of the mean paired difference over samples valid at both positions (None: < 2 pairs)."""
    both = (a != INVALID) & (b != INVALID)
    if both.sum() < 2:
        return None
    d = a[both].astype(np.float64) - b[both].astype(np.float64)
    return float(np.sqrt(d.var(ddof=1) / both.sum()))


def explain_stay(traj: RiskTrajectory, st: StayTrajectory, component: str = "hospital_mortality", top_k: int | None = 5,
                 rules: tuple[GroupRule, ...] = REFERENCE_RULES) -> list[ExplainedGroup]:
    """The ``top_k`` groups (None: all) of one stay's trajectory that moved ``component`` most."""
    if component not in COMPONENTS:
        raise InvalidInputError(f"component must be one of {COMPONENTS}, got {component!r}")
    if top_k is not None and (isinstance(top_k, bool) or top_k < 1):
        raise InvalidInputError(f"top_k must be a positive integer or None, got {top_k!r}")
    tok, times = traj.timelines[st.stay.subject_id]
    stay_idx = np.arange(st.stay.start + 1, st.stay.end)
    if not len(stay_idx) or len(st.positions) < 2:
        return []
    _, ends = token_groups(traj.tokens, _kinds(traj), tok, stay_idx, rules, times)
    evaluated = set(st.positions.tolist())
    bounds = [int(st.positions[0])] + [int(e) for e in ends if int(e) in evaluated and e > st.positions[0]]
    risk, n = st.risk[component], st.n_valid[component]
    samples = st.samples.get(component)
    crn = traj.settings.common_random_numbers
    rows = []
    for before, after in zip(bounds, bounds[1:]):
        b, a = st.at(before), st.at(after)
        pb, pa_ = risk[b], risk[a]
        if not (np.isfinite(pb) and np.isfinite(pa_)):
            continue  # a deactivated component, or no valid future at one end
        delta = float(pa_ - pb)
        se = _paired_se(samples[a], samples[b]) if crn and samples is not None else None
        if se is None:
            se = float(np.sqrt(pb * (1 - pb) / max(n[b], 1) + pa_ * (1 - pa_) / max(n[a], 1)))
        z = delta / se if se > 0 else (0.0 if delta == 0 else None)
        rows.append((before + 1, after, delta, se, z))
    rows.sort(key=lambda r: (-abs(r[2]), r[0]))
    out = []
    for rank, (first, last, delta, se, z) in enumerate(rows[:top_k] if top_k else rows, 1):
        lo, hi = max(first - 2, 0), min(last + 2, len(tok) - 1)
        while hi - lo + 1 < WINDOW and (lo > 0 or hi < len(tok) - 1):
            lo, hi = max(lo - 1, 0), min(hi + 1, len(tok) - 1)
        names = [traj.tokens[int(t)] for t in tok[lo:hi + 1]]
        group = names[first - lo:last - lo + 1]
        shown = " ".join(names[:first - lo] + ["[" + _abbreviated(group) + "]"] + names[last - lo + 1:])
        row_after = st.at(last)
        out.append(ExplainedGroup(rank, first, last, _abbreviated(group), last - first + 1, int(times[last]),
                                  int(st.elapsed_us[row_after]), float(risk[st.at(first - 1)]), float(risk[row_after]), delta, se, z,
                                  z is None or abs(z) > Z_95, "up" if delta > 0 else "down" if delta < 0 else "none", shown))
    return out


def explain(traj: RiskTrajectory, component: str = "hospital_mortality", top_k: int | None = 5,
            rules: tuple[GroupRule, ...] = REFERENCE_RULES) -> pa.Table:
    """The explanation table of every stay of ``traj`` for ``component``: one row per ranked
    group (subject_id, anchor_id, component and the fields of ``ExplainedGroup``)."""
    records = []
    for st in traj.stays:
        for g in explain_stay(traj, st, component, top_k, rules):
            records.append({"subject_id": st.stay.subject_id, "anchor_id": st.stay.anchor_id, "component": component, **g.__dict__})
    schema = pa.schema([("subject_id", pa.int64()), ("anchor_id", pa.int64()), ("component", pa.string()), ("rank", pa.int32()),
                        ("first", pa.int64()), ("last", pa.int64()), ("tokens", pa.string()), ("n_tokens", pa.int32()), ("time_us", pa.int64()),
                        ("elapsed_us", pa.int64()), ("risk_before", pa.float64()), ("risk_after", pa.float64()), ("delta", pa.float64()),
                        ("se", pa.float64()), ("z", pa.float64()), ("significant", pa.bool_()), ("direction", pa.string()),
                        ("window", pa.string())])
    return pa.Table.from_pylist(records, schema=schema)


def _kinds(traj: RiskTrajectory) -> list[str]:
    if traj.kinds is None:
        raise InvalidInputError("the trajectory carries no token kinds (build it with risk_trajectory)")
    return traj.kinds
