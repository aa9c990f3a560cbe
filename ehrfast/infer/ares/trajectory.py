"""Dynamic risk trajectories: ARES proper (ARES.md S7).

For a patient in hospital the risk of death, ICU admission, a prolonged stay and the composite
is re-estimated after every new event of the stay: at each position i of the stay (a token index
of the subject's timeline, from the anchor's context end up to the token before the real
discharge or death), the context is the timeline up to and including token i (static prefix
pinned), and N futures are sampled with the base tasks' competing events:

* the **mortality run** (catalog ``hospital_mortality``: death, discharge, timeline end) gives
  death = P(first event = death) and the prolonged stay: a sample is positive when its first
  event is a death or discharge at least θ_i − elapsed_i after position i, θ_i = 10 d while the
  stay is younger than 10 days, then 15 d (the reference's 10 → 15-day switch);
* the **ICU run** (catalog ``icu_admission``: ICU admission, discharge, death, timeline end) gives
  ICU = P(first event = ICU admission) and the joint composite (ICU or death, or a stay to θ_i) —
  only while the patient has not been in the ICU: from the real ICU admission token on, the ICU
  component is deactivated (risk null, ``deactivated`` true) and the joint composite, whose
  event set then loses ICU, comes from the mortality run (its events are exactly the rest);
* ``composite_ref`` = min(death + PS + ICU, 1), ICU counted 0 once deactivated (the reference's
  sum of marginals), with the mortality run's valid count.

Each run keeps only the valid samples (not timeline end, not stopped by the time limit or token
cap). Risk levels are ARES's five; intervals exact (Clopper–Pearson; ``composite_ref``: Wald on
the mortality run's n, as the reference). Every position of every stay is one independent
sampling job of the cohort scorer's slot engine, so a trajectory costs what its generated tokens
cost. Each (stay, position) has its own random stream — or, with ``common_random_numbers``, all
positions of a stay share one, so that two positions' futures differ only where their contexts
make them differ (low-variance differences for the explanations, ``explanations.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ehrfast.errors import InvalidInputError
from ehrfast.infer.ares.groups import token_groups
from ehrfast.infer.ares.options import TrajectorySettings
from ehrfast.infer.decoders import RecomputeDecoder, decoder_for, reproducible_threads
from ehrfast.infer.risk import binomial_interval, risk_level
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.infer.score_events import DEFAULT_MAX_NEW_TOKENS, anchor_token_offsets, event_token_classes, prediction_keys
from ehrfast.task import EventTask
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.units import US_PER_DAY

COMPONENTS = ("hospital_mortality", "icu_admission", "prolonged_stay", "composite", "composite_ref")
INVALID = -1  # a per-sample indicator of an invalid sample


@dataclass(frozen=True)
class Stay:
    """One anchored stay in token coordinates of its subject's timeline: ``start`` (the anchor's
    context end: the first position), ``end`` (the real discharge or death token, exclusive: the
    last position is end − 1), ``icu`` (the real ICU admission token, −1: none before the end),
    the anchor's time (µs) and the label file's ids."""

    subject_id: int
    anchor_id: int
    hadm_id: int | None
    start: int
    end: int
    icu: int
    anchor_time_us: int
    true_event: str | None = None


@dataclass
class StayTrajectory:
    """One stay's trajectory over P positions: ``positions`` [P] int64 token indices,
    ``token_ids`` [P] int32, ``times_us`` [P] int64, ``elapsed_us`` [P] int64 (since the anchor),
    ``threshold_days`` [P] float64, ``deactivated`` [P] bool (the ICU component), and per
    component: ``risk`` [P] float64 (NaN where deactivated), ``n_valid`` [P] int64, ``ci`` ([P], [P])
    and ``samples`` [P, N] int8 (1 positive, 0 negative, −1 invalid; none for composite_ref)."""

    stay: Stay
    positions: np.ndarray
    token_ids: np.ndarray
    times_us: np.ndarray
    elapsed_us: np.ndarray
    threshold_days: np.ndarray
    deactivated: np.ndarray
    risk: dict[str, np.ndarray] = field(default_factory=dict)
    n_valid: dict[str, np.ndarray] = field(default_factory=dict)
    ci: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)

    def at(self, position: int) -> int:
        """Row of token index ``position`` (KeyError if it was not evaluated)."""
        rows = np.flatnonzero(self.positions == position)
        if not len(rows):
            raise KeyError(position)
        return int(rows[0])


@dataclass
class RiskTrajectory:
    """Trajectories of several stays, with the vocabulary's tokens and the settings used;
    ``tokens_generated`` over both runs."""

    stays: list[StayTrajectory]
    tokens: list[str]
    settings: TrajectorySettings
    tokens_generated: int = 0
    timelines: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # subject -> (tokens, times): for windows
    kinds: list[str] | None = None  # the vocabulary's token kinds: for the explanation's groups

    def table(self) -> pa.Table:
        """One row per (position, component) — the trajectory parquet (README, *ARES*)."""
        cols: dict[str, list] = {k: [] for k in ("subject_id", "anchor_id", "position", "token", "time", "elapsed_us", "component", "risk",
                                                 "n_valid", "ci_low", "ci_high", "risk_level", "deactivated", "threshold_days")}
        names = np.array(self.tokens, dtype=object)
        for st in self.stays:
            p = len(st.positions)
            token_names = names[st.token_ids]  # once per stay, shared by its components
            for component in COMPONENTS:
                risk = st.risk[component]
                off = (st.deactivated if component == "icu_admission" else np.zeros(p, bool)) | ~np.isfinite(risk)
                lo, hi = st.ci[component]
                levels = np.zeros(p, np.int64)
                if (~off).any():
                    levels[~off] = risk_level(np.clip(risk[~off], 0, 1))
                cols["subject_id"].append(np.full(p, st.stay.subject_id, np.int64))
                cols["anchor_id"].append(np.full(p, st.stay.anchor_id, np.int64))
                cols["position"].append(st.positions)
                cols["token"].append(token_names)
                cols["time"].append(st.times_us)
                cols["elapsed_us"].append(st.elapsed_us)
                cols["component"].append(np.full(p, component, dtype=object))
                cols["risk"].append(np.ma.masked_array(risk, off))
                cols["n_valid"].append(st.n_valid[component])
                cols["ci_low"].append(np.ma.masked_array(lo, off))
                cols["ci_high"].append(np.ma.masked_array(hi, off))
                cols["risk_level"].append(np.ma.masked_array(levels, off))
                cols["deactivated"].append(st.deactivated if component == "icu_admission" else np.zeros(p, bool))
                cols["threshold_days"].append(st.threshold_days)
        types = {"subject_id": pa.int64(), "anchor_id": pa.int64(), "position": pa.int64(), "token": pa.string(), "time": pa.int64(),
                 "elapsed_us": pa.int64(), "component": pa.string(), "risk": pa.float32(), "n_valid": pa.int32(), "ci_low": pa.float32(),
                 "ci_high": pa.float32(), "risk_level": pa.int8(), "deactivated": pa.bool_(), "threshold_days": pa.float32()}
        arrays = {}
        for name, parts in cols.items():
            if not parts:
                arrays[name] = pa.array([], types[name])
                continue
            if isinstance(parts[0], np.ma.MaskedArray):
                data = np.ma.concatenate(parts)
                arrays[name] = pa.array(np.ma.getdata(data), mask=np.ma.getmaskarray(data)).cast(types[name])
            else:
                arrays[name] = pa.array(np.concatenate(parts).tolist() if types[name] == pa.string() else np.concatenate(parts)).cast(types[name])
        arrays["time"] = arrays["time"].cast(pa.timestamp("us"))
        s = self.settings
        return pa.table(arrays).replace_schema_metadata({
            "ehrfast_trajectory_version": "1", "positions": s.positions, "n_samples": str(s.n_samples),
            "common_random_numbers": str(s.common_random_numbers).lower(), "thresholds_days": ",".join(map(str, s.thresholds_days))})


def stays_from_labels(ds: TokenizedDataset, labels: pa.Table, settings: TrajectorySettings) -> tuple[list[Stay], int]:
    """The stays of an anchored label file (``ehrfast label --task hospital_mortality``) that are in
    ``ds``, in token coordinates, and how many were skipped (not in the split, or no position
    between the anchor's context and the outcome)."""
    for col in ("subject_id", "prediction_time", "anchor_id"):
        if col not in labels.column_names:
            raise InvalidInputError(f"the anchors need a column {col!r} (an anchored label file: ehrfast label --task hospital_mortality)")
    mortality, icu = settings.task("mortality"), settings.task("icu")
    tokens = ds.vocab.decode(range(len(ds.vocab)))
    m_classes = event_token_classes(mortality, tokens, str(ds.directory))
    i_classes = event_token_classes(icu, tokens, str(ds.directory))
    outcome_ids = np.isin(m_classes, [list(mortality.events).index(e) for e in ("death", "discharge")])
    icu_ids = i_classes == list(icu.events).index("icu")
    in_split = set(np.asarray(ds.subject_ids).tolist())
    keep = np.array([s in in_split for s in labels.column("subject_id").to_pylist()], bool)
    labels = labels.filter(pa.array(keep))
    starts = anchor_token_offsets(ds, labels, mortality) if labels.num_rows else np.zeros(0, np.int64)
    hadm = labels.column("hadm_id").to_pylist() if "hadm_id" in labels.column_names else [None] * labels.num_rows
    true_event = labels.column("true_event").to_pylist() if "true_event" in labels.column_names else [None] * labels.num_rows
    stays, skipped = [], int((~keep).sum())
    for r, (sid, t, aid) in enumerate(zip(labels.column("subject_id").to_pylist(), labels.column("prediction_time").cast(pa.int64()).to_pylist(),
                                          labels.column("anchor_id").to_pylist())):
        start = int(starts[r])
        tok, times = ds.timeline(ds.row(sid))
        after = np.arange(start + 1, len(tok))
        outcome = after[outcome_ids[tok[after]]] if start >= 0 else after[:0]
        end = int(outcome[0]) if len(outcome) else len(tok) - int(tok[-1] == ds.vocab.get("TIMELINE_END", -1))
        if start < 0 or end <= start:
            skipped += 1
            continue
        n_static = int(ds.static_lengths[ds.row(sid)])
        first = n_static + int(np.searchsorted(times[n_static:], t, side="left"))  # the stay's first token: at the anchor's time
        stay_tokens = np.arange(min(first, start), end)
        icu_at = stay_tokens[icu_ids[tok[stay_tokens]]]
        stays.append(Stay(int(sid), int(aid), None if hadm[r] is None else int(hadm[r]), start, end, int(icu_at[0]) if len(icu_at) else -1,
                          int(t), true_event[r]))
    return stays, skipped


def stay_positions(stay: Stay, token_ids: np.ndarray, times: np.ndarray, settings: TrajectorySettings,
                   group_ends: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """[P] the token indices evaluated for ``stay`` under ``settings.positions`` (always its first
    position, the anchor's context end; ``per_group`` needs ``group_ends``: the last token index
    of each group of the stay's tokens)."""
    every = np.arange(stay.start, stay.end)
    view = settings.positions
    if view == "every_token":
        return every
    if view == "every_k":
        return np.unique(np.r_[every[:: settings.every_k], every[-1]])
    if view == "per_timestamp":
        t = times[every]
        last = np.r_[t[1:] != t[:-1], True]
        return np.unique(np.r_[every[0], every[last]])
    if group_ends is None:
        raise InvalidInputError("positions='per_group' needs the token groups")
    ends = group_ends(every)
    return np.unique(np.r_[every[0], ends[(ends >= stay.start) & (ends < stay.end)]])


def risk_trajectory(model, ds: TokenizedDataset, stays: Sequence[Stay], settings: TrajectorySettings | None = None, *,
                    prs: np.ndarray | None = None, device: str = "cpu", window: int | None = None,
                    progress: Callable[[int], None] | None = None, step_backend: str | Callable | None = None,
                    on_plan: Callable[[int], None] | None = None) -> RiskTrajectory:
    """ARES trajectories of ``stays`` (``stays_from_labels``). ``model``: a ``GPT`` (its window and
    KV cache are used) or a callable ``model(idx [B, L], prs) -> logits [B, L, V]`` (a test double;
    ``window`` then bounds what it reads). ``prs`` [n_stays, n_traits] for models that read PRS.
    ``progress`` is called with the number of sampling jobs (positions) finished, ``on_plan``
    once with the number of jobs of both runs."""
    settings = settings or TrajectorySettings()
    mortality, icu = settings.task("mortality"), settings.task("icu")
    tokens = ds.vocab.decode(range(len(ds.vocab)))
    jobs = []  # (stay, position) per sampling job
    built: list[StayTrajectory] = []
    timelines = {}
    for s, stay in enumerate(stays):
        tok, times = ds.timeline(ds.row(stay.subject_id))
        timelines[stay.subject_id] = (tok, times)
        positions = stay_positions(stay, tok, times, settings, lambda idx, tok=tok, times=times: token_groups(tokens, ds.vocab.kinds, tok, idx, times=times)[1])
        elapsed = times[positions].astype(np.int64) - stay.anchor_time_us
        first, second = settings.thresholds_days
        threshold = np.where(elapsed < first * US_PER_DAY, first, second).astype(np.float64)
        deactivated = (positions >= stay.icu) if stay.icu >= 0 else np.zeros(len(positions), bool)
        built.append(StayTrajectory(stay, positions, tok[positions].astype(np.int32), times[positions].astype(np.int64), elapsed, threshold,
                                    deactivated))
        jobs += [(s, int(p)) for p in positions]
    traj = RiskTrajectory(built, tokens, settings, timelines=timelines, kinds=list(ds.vocab.kinds))
    if not jobs:
        return traj

    window = model.config.token_window if hasattr(model, "config") else window
    context_tokens = settings.context_tokens if window is None else min(window, settings.context_tokens or window)
    contexts, prefix, keys = [], [], []
    for s, p in jobs:
        stay = stays[s]
        contexts.append(ds.context_at(stay.subject_id, p, max_tokens=context_tokens, age_at=mortality.age_at)[0])
        prefix.append(ds.head_length(ds.row(stay.subject_id)))
        keys.append(p)
    sids = np.array([stays[s].subject_id for s, _ in jobs], np.int64)
    aids = np.array([stays[s].anchor_id for s, _ in jobs], np.int64)
    stay_keys = prediction_keys(sids, aids)
    keys = stay_keys if settings.common_random_numbers else prediction_keys(stay_keys, np.array(keys, np.int64))
    job_prs = None if prs is None else np.asarray(prs)[[s for s, _ in jobs]]
    max_new = settings.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    durations = ds.vocab.interval_duration_us("mean")

    def run(task: EventTask, rows: np.ndarray):
        classes = event_token_classes(task, tokens, str(ds.directory))
        ctx = [contexts[i] for i in rows]
        decoder = decoder_for(model, ctx, max_new, device, settings.deterministic) if hasattr(model, "config") else RecomputeDecoder(model, window, device)
        sampling = SamplingSettings(horizon_us=float(task.time_limit_us), n_samples=settings.n_samples, max_new_tokens=max_new,
                                    temperature=task.temperature, top_p=task.top_p, seed=settings.seed, estimator="mc")
        with reproducible_threads(settings.deterministic, device):
            res = sample_trajectories(decoder, ctx, np.zeros(0, np.int64), durations, sampling, subject_keys=keys[rows],
                                      prs=None if job_prs is None else job_prs[rows], window=window, device=device, progress=progress,
                                      event_class=classes, prefix_lengths=[prefix[i] for i in rows], step_backend=step_backend)
        return res.events

    all_rows = np.arange(len(jobs))
    job_deactivated = np.concatenate([st.deactivated for st in built])
    if on_plan is not None:
        on_plan(int(len(jobs) + (~job_deactivated).sum()))
    m_ev = run(mortality, all_rows)
    active = all_rows[~job_deactivated]
    i_ev = run(icu, active) if len(active) else None
    traj.tokens_generated = int(m_ev.tokens.sum()) + (0 if i_ev is None else int(i_ev.tokens.sum()))
    _fill_components(traj, mortality, icu, m_ev, i_ev, active)
    return traj


def _fill_components(traj: RiskTrajectory, mortality: EventTask, icu: EventTask, m_ev, i_ev, active: np.ndarray) -> None:
    """Per-sample indicators → each stay's component risks, counts and intervals."""
    m_names = np.array([*mortality.events, "none"], dtype=object)[np.where(m_ev.mc_event >= 0, m_ev.mc_event, len(mortality.events))]
    m_valid = mortality.valid.valid(m_names.ravel()).reshape(m_names.shape)
    n_jobs = len(m_names)
    left = np.concatenate([st.threshold_days * US_PER_DAY - st.elapsed_us for st in traj.stays])[:, None]  # [J, 1] µs to θ
    m_stay = np.isin(m_names, ["death", "discharge"]) & (m_ev.mc_elapsed_us >= left)
    death = m_names == "death"
    indicators = {"hospital_mortality": (death, m_valid), "prolonged_stay": (m_stay, m_valid),
                  "composite": (death | m_stay, m_valid)}  # the joint composite once ICU is deactivated; replaced below where active
    icu_ind = np.zeros_like(death)
    icu_valid = np.zeros_like(m_valid)
    if i_ev is not None:
        i_names = np.array([*icu.events, "none"], dtype=object)[np.where(i_ev.mc_event >= 0, i_ev.mc_event, len(icu.events))]
        i_valid = icu.valid.valid(i_names.ravel()).reshape(i_names.shape)
        i_stay = np.isin(i_names, ["icu", "death", "discharge"]) & (i_ev.mc_elapsed_us >= left[active])
        icu_ind[active], icu_valid[active] = i_names == "icu", i_valid
        comp, comp_valid = indicators["composite"][0].copy(), m_valid.copy()
        comp[active] = np.isin(i_names, ["icu", "death"]) | i_stay
        comp_valid[active] = i_valid
        indicators["composite"] = (comp, comp_valid)
    indicators["icu_admission"] = (icu_ind, icu_valid)
    is_active = np.zeros(n_jobs, bool)
    is_active[active] = True
    offset = 0
    for st in traj.stays:
        rows = slice(offset, offset + len(st.positions))
        offset += len(st.positions)
        for name, (ind, valid) in indicators.items():
            samples = np.where(valid[rows], ind[rows].astype(np.int8), np.int8(INVALID))
            n = valid[rows].sum(1).astype(np.int64)
            k = (ind[rows] & valid[rows]).sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                risk = np.where(n > 0, k / np.maximum(n, 1), np.nan)
            if name == "icu_admission":
                risk = np.where(is_active[rows], risk, np.nan)
            lo, hi = np.full(len(n), np.nan), np.full(len(n), np.nan)
            ok = (n > 0) & np.isfinite(risk)
            if ok.any():
                lo[ok], hi[ok] = binomial_interval(k[ok], n[ok])
            st.samples[name], st.n_valid[name], st.risk[name], st.ci[name] = samples, n, risk, (lo, hi)
        death_r, ps_r = st.risk["hospital_mortality"], st.risk["prolonged_stay"]
        icu_r = np.where(st.deactivated, 0.0, np.nan_to_num(st.risk["icu_admission"], nan=0.0))
        ref = np.minimum(death_r + ps_r + icu_r, 1.0)  # NaN where the mortality run had no valid sample
        n = st.n_valid["hospital_mortality"]
        lo, hi = np.full(len(n), np.nan), np.full(len(n), np.nan)
        ok = (n > 0) & np.isfinite(ref)
        if ok.any():
            lo[ok], hi[ok] = binomial_interval(ref[ok] * n[ok], n[ok], "wald")
        st.risk["composite_ref"], st.n_valid["composite_ref"], st.ci["composite_ref"] = ref, n.copy(), (lo, hi)
