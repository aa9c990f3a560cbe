"""The hospital world: its chain and dynamic programs; the ground truth as the generator's own
law (Monte-Carlo re-simulation from the recorded anchor states, and the MEDS rows' own first-event
labels against the true probabilities); MIMIC-IV-shaped rows; triage vitals and the early-warning
scores of ARES.md; calibrated rates; ``--no-hospital``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrfast.synth import codes as vocab
from ehrfast.synth.generator import SyntheticConfig, generate_cohort
from ehrfast.synth.hospital import FollowUpRates, last_at_or_before
from ehrfast.synth.hospital_chain import DEAD, ED, HOME, ICU, N_LEVELS, N_STATES, WARD, HospitalChain

ICU_STATES = list(range(ICU, ICU + N_LEVELS))
HOSPITAL_STATES = list(range(WARD, ICU + N_LEVELS))

# the stated ranges (MIMIC-IV, the ETHOS-ARES paper's Table S1, and the MIMIC-IV-ED benchmark)
RATE_RANGES = {
    "hospital_mortality": (0.013, 0.027),  # Table S1: 1.95 %
    "icu_admission": (0.12, 0.19),  # 15.44 %
    "prolonged_stay_10d": (0.07, 0.115),  # 9.01 %
    "composite": (0.16, 0.25),  # 20.41 %
    "ed_hospitalization": (0.38, 0.53),  # ED benchmark: about 46 %
    "ed_critical_outcome_12h": (0.035, 0.085),  # about 6 %
    "ed_return_72h": (0.02, 0.055),  # about 3.5 %
    "readmission_or_death_30d": (0.14, 0.28),
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("hospital") / "c"
    cfg = SyntheticConfig(n_subjects=6_000, seed=11, n_variants=300, n_null_traits=1, causal_variants=20, score_variants=60)
    summary = generate_cohort(root, cfg, progress=False)
    rows = pa.concat_tables(pq.read_table(f) for f in sorted((root / "data").rglob("*.parquet"))).to_pandas()
    anchors = pq.read_table(root / "ground_truth" / "hospital_anchors.parquet").to_pandas()
    return root, cfg, summary, rows, anchors


# ---- the chain ---------------------------------------------------------------------------------


def test_chain_rows_are_distributions_with_absorbing_home_and_death():
    p = HospitalChain().p
    assert p.shape == (N_STATES, N_STATES) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=0, atol=1e-12)
    assert p[HOME, HOME] == 1.0 and p[DEAD, DEAD] == 1.0
    # everyone leaves: far ahead, all mass is at home or dead
    far = np.linalg.matrix_power(p, 200_000)
    np.testing.assert_allclose(far[:, HOME] + far[:, DEAD], 1.0, atol=1e-9)


def test_dynamic_programs_match_power_iteration():
    chain = HospitalChain()
    o = chain.outcomes()
    far = np.linalg.matrix_power(chain.p, 200_000)
    np.testing.assert_allclose(o.death_before_discharge[HOSPITAL_STATES], far[HOSPITAL_STATES, DEAD], atol=1e-9)
    q = chain.p.copy()
    q[ICU_STATES] = 0.0
    q[ICU_STATES, ICU_STATES] = 1.0
    icu_far = np.linalg.matrix_power(q, 200_000)
    np.testing.assert_allclose(o.icu_before_discharge[HOSPITAL_STATES], icu_far[HOSPITAL_STATES][:, ICU_STATES].sum(1), atol=1e-9)
    # a stay of >= 10 days from the anchor: not absorbed after 239 steps
    dist = np.eye(N_STATES)
    for _ in range(10 * 24 - 1):
        dist = dist @ chain.p
    np.testing.assert_allclose(o.stay_at_least[10][HOSPITAL_STATES], 1 - dist[HOSPITAL_STATES][:, [HOME, DEAD]].sum(1), atol=1e-12)
    assert np.isnan(o.death_before_discharge[ED]) and np.isnan(o.ed_admission_within_72h[WARD])


def _simulate(chain: HospitalChain, start: int, n: int, rng, elapsed: int = 0) -> dict[str, np.ndarray]:
    """n independent paths from ``start`` (step 0 is the anchor), run to absorption with a
    sampler written apart from the generator's, reduced on the fly to what the outcomes need:
    the absorption step, the absorbing state, and the first step in the ICU, the ward and the
    hospital (int64 max when never)."""
    never = np.iinfo(np.int64).max
    cum = np.cumsum(chain.p, axis=1)
    state = np.full(n, start)
    out = {k: np.full(n, never) for k in ("absorbed", "first_icu", "first_ward", "first_hospital")}
    out["end_state"] = np.full(n, -1)
    h = 0
    while True:
        for key, states in (("first_icu", ICU_STATES), ("first_ward", list(range(WARD, WARD + N_LEVELS))), ("first_hospital", HOSPITAL_STATES)):
            hit = (out[key] == never) & np.isin(state, states)
            out[key][hit] = h
        done = (out["absorbed"] == never) & (state >= HOME)
        out["absorbed"][done], out["end_state"][done] = h, state[done]
        live = np.flatnonzero(state < HOME)
        if not len(live):
            return out
        u = rng.random(len(live))
        state[live] = np.minimum((u[:, None] >= cum[state[live]]).sum(1), N_STATES - 1)
        h += 1


def _outcomes(sim: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The catalog outcomes of simulated paths (ARES.md S2), step 0 being the anchor."""
    absorbed, first_icu = sim["absorbed"], sim["first_icu"]
    died = sim["end_state"] == DEAD
    return {
        "p_hospital_mortality": died,
        "p_icu_admission": first_icu < absorbed,
        "p_prolonged_stay": absorbed >= 240,
        "p_composite": (first_icu < absorbed) | died | (absorbed >= 240),
        "p_ed_hospitalization": sim["first_hospital"] <= 72,
        "p_ed_critical_outcome": (first_icu <= 12) | (died & (absorbed <= 12)),
        "p_icu_mortality": died & (absorbed < sim["first_ward"]),
        "p_icu_readmission": first_icu < absorbed,
    }


CHAIN_OUTCOMES = {
    "HOSPITAL_ADMISSION": ("p_hospital_mortality", "p_icu_admission", "p_prolonged_stay", "p_composite"),
    "ED_REGISTRATION": ("p_ed_hospitalization", "p_ed_critical_outcome"),
    "ICU_ADMISSION": ("p_icu_mortality",),
    "ICU_DISCHARGE": ("p_icu_readmission",),
}


def test_anchor_truth_is_the_generators_law_by_monte_carlo(cohort):
    """For every anchor and every state recorded at it, re-simulating the latent chain from that
    state reproduces the recorded true probability of each outcome within 4σ."""
    _, _, _, _, anchors = cohort
    chain = HospitalChain()
    rng = np.random.default_rng(2024)
    n = 50_000
    checked = 0
    for anchor, columns in CHAIN_OUTCOMES.items():
        at = anchors[anchors.anchor == anchor]
        assert len(at), anchor
        for state in sorted(at.state.unique()):
            outcomes = _outcomes(_simulate(chain, int(state), n, rng))
            for col in columns:
                p = at.loc[at.state == state, col].to_numpy()
                assert np.isfinite(p).all() and np.ptp(p) == 0, (anchor, state, col)  # a function of the state
                empirical = outcomes[col].mean()
                sigma = np.sqrt(max(p[0] * (1 - p[0]), 1e-6) / n)
                assert abs(empirical - p[0]) <= 4 * sigma, (anchor, state, col, empirical, p[0])
                checked += 1
    assert checked >= 30


def test_follow_up_clocks_follow_their_closed_form():
    rates = FollowUpRates()
    rng = np.random.default_rng(5)
    m = 200_000
    hazard = np.stack([rng.uniform(0, 2e-3, m), rng.uniform(0, 1e-3, m) * (rng.random(m) < 0.5), rng.uniform(0, 3e-4, m)], axis=1)
    kind, hours = rates.draw(rng, hazard)
    for window in (72, 720):
        p = rates.probability_within(hazard, window)
        hit = (kind >= 0) & (hours <= window)
        assert abs(hit.sum() - p.sum()) <= 4 * np.sqrt((p * (1 - p)).sum())
        for k in range(3):  # each clock alone, by its own closed form
            pk = rates.probability_within(hazard, window, kinds=(k,))
            alone = np.zeros_like(hazard)
            alone[:, k] = hazard[:, k]
            kk, hh = rates.draw(rng, alone)
            assert abs(((kk == k) & (hh <= window)).sum() - pk.sum()) <= 4 * np.sqrt((pk * (1 - pk)).sum())
    assert (kind[hazard.sum(1) == 0] == -1).all()


def test_last_at_or_before_matches_a_loop():
    rng = np.random.default_rng(0)
    ref_s, ref_t = rng.integers(0, 5, 40), rng.integers(0, 100, 40)
    q_s, q_t = rng.integers(0, 6, 200), rng.integers(0, 100, 200)
    got = last_at_or_before(ref_s, ref_t, q_s, q_t)
    for i in range(200):
        candidates = [j for j in range(40) if ref_s[j] == q_s[i] and ref_t[j] <= q_t[i]]
        if not candidates:
            assert got[i] == -1
        else:
            assert ref_t[got[i]] == max(ref_t[j] for j in candidates) and ref_s[got[i]] == q_s[i]


# ---- the MEDS rows against the truth --------------------------------------------------------


def _first_after(anchor_times: pd.DataFrame, events: pd.DataFrame, name: str, strict: bool) -> pd.Series:
    """For each anchor (subject_id, time), the time of the first event of ``events`` at or after
    it (``strict``: after it); NaT when none."""
    left = anchor_times[["subject_id", "time"]].reset_index().sort_values("time")
    right = events[["subject_id", "time"]].rename(columns={"time": name}).sort_values(name)
    right["time"] = right[name] - pd.Timedelta(microseconds=1) if strict else right[name]
    right = right.sort_values("time")
    merged = pd.merge_asof(left, right, on="time", by="subject_id", direction="forward")
    return merged.set_index("index")[name].reindex(anchor_times.index)


def _labels(rows: pd.DataFrame, anchors: pd.DataFrame, censor: pd.Timestamp) -> pd.DataFrame:
    """The catalog labels on the MEDS rows, by an independent first-event count (ARES.md S2/S3),
    for the truth's anchors; a label whose window passes the end of data is NaN."""
    code = rows.code
    ev = {
        "admission": rows[code.str.startswith("HOSPITAL_ADMISSION//")],
        "discharge": rows[code.str.startswith("HOSPITAL_DISCHARGE//")],
        "death": rows[code == "MEDS_DEATH"],
        "icu": rows[code.str.startswith("ICU_ADMISSION//")],
        "icu_out": rows[code.str.startswith("ICU_DISCHARGE//")],
        "ed": rows[code == vocab.ED_REGISTRATION],
    }
    out = pd.DataFrame(index=anchors.index)
    t = anchors.time
    nxt = {k: _first_after(anchors, v, k, strict=k in ("discharge", "admission", "ed", "icu_out")) for k, v in ev.items()}
    stop = pd.concat([nxt["discharge"], nxt["death"]], axis=1).min(axis=1)
    hosp = anchors.anchor == "HOSPITAL_ADMISSION"
    out["p_hospital_mortality"] = np.where(hosp & stop.notna(), (nxt["death"] <= nxt["discharge"]) | nxt["discharge"].isna(), np.nan)
    out["p_icu_admission"] = np.where(hosp & stop.notna(), nxt["icu"] < stop, np.nan)
    out["p_prolonged_stay"] = np.where(hosp & stop.notna(), (stop - t) >= pd.Timedelta(days=10), np.nan)
    out["p_composite"] = np.where(hosp & stop.notna(), (nxt["icu"] < stop) | (nxt["death"] <= stop) | ((stop - t) >= pd.Timedelta(days=10)),
                                  np.nan)
    ed = anchors.anchor == "ED_REGISTRATION"
    critical_time = pd.concat([nxt["icu"], nxt["death"]], axis=1).min(axis=1)
    out["p_ed_critical_outcome"] = np.where(ed & (t + pd.Timedelta(hours=12) < censor),
                                            (critical_time - t <= pd.Timedelta(hours=12)) & ~(nxt["discharge"] < critical_time), np.nan)
    out["p_ed_hospitalization"] = np.where(ed, anchors.hadm_id.notna(), np.nan)
    ed_home = anchors.anchor == "ED_OUT"
    out["p_ed_representation"] = np.where(ed_home & (t + pd.Timedelta(hours=72) < censor), nxt["ed"] - t <= pd.Timedelta(hours=72), np.nan)
    dc = anchors.anchor == "HOSPITAL_DISCHARGE"
    back = pd.concat([nxt["admission"], nxt["death"]], axis=1).min(axis=1)
    out["p_readmission_30d"] = np.where(dc & (t + pd.Timedelta(days=30) < censor), back - t <= pd.Timedelta(days=30), np.nan)
    icu = anchors.anchor == "ICU_ADMISSION"
    died_first = nxt["death"].notna() & (nxt["icu_out"].isna() | (nxt["death"] <= nxt["icu_out"]))
    out["p_icu_mortality"] = np.where(icu & (nxt["death"].notna() | nxt["icu_out"].notna()), died_first, np.nan)
    return out


def test_meds_first_event_labels_agree_with_the_truth(cohort):
    """The labels a task would read off the MEDS rows average to the true probabilities at the
    same anchors, for every catalog outcome (sum of labels within 4σ of the sum of truths)."""
    _, cfg, _, rows, anchors = cohort
    labels = _labels(rows, anchors, pd.Timestamp(cfg.censor_date))
    for col in labels.columns:
        y, p = labels[col].to_numpy(float), anchors[col].to_numpy(float)
        ok = np.isfinite(y) & np.isfinite(p)
        assert ok.sum() > 50, col
        sd = np.sqrt((p[ok] * (1 - p[ok])).sum())
        assert abs(y[ok].sum() - p[ok].sum()) <= 4 * sd + 1, (col, y[ok].sum(), p[ok].sum(), sd)
    # and the truth is informative, not just calibrated on average
    from scipy.stats import mannwhitneyu

    ok = labels.p_hospital_mortality.notna()
    y, p = labels.p_hospital_mortality[ok].astype(bool), anchors.p_hospital_mortality[ok]
    auroc = mannwhitneyu(p[y], p[~y]).statistic / (y.sum() * (~y).sum())
    assert auroc > 0.75


def test_rates_in_the_stated_ranges_and_reported(cohort):
    root, cfg, summary, rows, anchors = cohort
    rates = summary.hospital
    for name, (low, high) in RATE_RANGES.items():
        assert low <= rates[name] <= high, (name, rates[name])
    assert rates["p90_length_of_stay_days"] > 2 * rates["median_length_of_stay_days"]  # long-tailed
    assert json.loads((root / "cohort.json").read_text())["hospital"] == rates
    assert "in-hospital mortality" in summary.describe()
    # the reported rates are the event counts a task would make on the MEDS rows
    labels = _labels(rows, anchors, pd.Timestamp("2262-01-01"))
    assert labels.p_hospital_mortality.mean() == pytest.approx(rates["hospital_mortality"], abs=0.002)
    assert labels.p_icu_admission.mean() == pytest.approx(rates["icu_admission"], abs=0.002)
    assert labels.p_prolonged_stay.mean() == pytest.approx(rates["prolonged_stay_10d"], abs=0.002)
    assert labels.p_ed_hospitalization.mean() == pytest.approx(rates["ed_hospitalization"], abs=0.002)


def test_trajectory_truth_follows_the_ares_rules(cohort):
    root, _, _, _, _ = cohort
    traj = pq.read_table(root / "ground_truth" / "stay_trajectories.parquet").to_pandas()
    assert traj.hadm_id.nunique() > 20 and (traj.hadm_id % 50 == 0).all()
    for _, stay in traj.groupby("hadm_id"):
        assert (np.diff(stay.elapsed_hours) == 1).all() and stay.elapsed_hours.iloc[0] == 0
        icu = np.isin(stay.state, ICU_STATES)
        first = icu.argmax() if icu.any() else len(stay)
        assert not stay.icu_deactivated.iloc[:first].any() and stay.icu_deactivated.iloc[first:].all()
        assert stay.p_icu_admission.iloc[first:].isna().all() and stay.p_icu_admission.iloc[:first].notna().all()
    assert (traj.threshold_days == np.where(traj.elapsed_hours < 240, 10, 15)).all()
    ref = np.minimum(traj.p_hospital_mortality + traj.p_prolonged_stay + traj.p_icu_admission.fillna(0), 1)
    np.testing.assert_allclose(traj.p_composite_ref, ref)
    # Monte Carlo at a few (state, elapsed) rows: PS of the current threshold and the joint composite
    chain = HospitalChain()
    rng = np.random.default_rng(9)
    n = 20_000
    picks = traj.drop_duplicates(["state", "icu_deactivated", "threshold_days"]).head(8)
    for _, row in picks.iterrows():
        sim = _simulate(chain, int(row.state), n, rng)
        died = sim["end_state"] == DEAD
        ps = sim["absorbed"] >= row.threshold_days * 24 - row.elapsed_hours
        comp = died | ps | (~row.icu_deactivated & (sim["first_icu"] < sim["absorbed"]))
        for got, p in ((ps.mean(), row.p_prolonged_stay), (comp.mean(), row.p_composite)):
            assert abs(got - p) <= 4 * np.sqrt(max(p * (1 - p), 1e-6) / n), (row.to_dict(), got, p)


# ---- the rows themselves ---------------------------------------------------------------------


def test_rows_follow_mimic_iv_conventions(cohort):
    _, _, _, rows, _ = cohort
    code = rows.code
    # an in-hospital death: the DIED discharge, then MEDS_DEATH at the same time (null hadm_id)
    died = rows.index[code == vocab.DISCHARGE_DIED]
    assert len(died) > 10
    after = rows.loc[died + 1]
    assert (after.code.to_numpy() == "MEDS_DEATH").all() and (after.time.to_numpy() == rows.loc[died].time.to_numpy()).all()
    assert rows.loc[code == "MEDS_DEATH", "hadm_id"].isna().all()
    # admission rows carry the admission's demographics at its time, with its hadm_id
    adm = rows[code.str.startswith("HOSPITAL_ADMISSION//")]
    assert adm.hadm_id.notna().all() and adm.hadm_id.is_unique
    for prefix in ("INSURANCE//", "MARITAL_STATUS//", "LANGUAGE//"):
        demo = rows[code.str.startswith(prefix)]
        assert set(zip(demo.hadm_id, demo.time)) == set(zip(adm.hadm_id, adm.time)), prefix
    # everything between admission and discharge is linked to the stay; the ICU stays inside it
    for prefix in ("ICU_ADMISSION//", "ICU_DISCHARGE//", "DRG//", "PROCEDURE//ICD//10//", "HOSPITAL_DISCHARGE//"):
        assert rows.loc[code.str.startswith(prefix), "hadm_id"].notna().all(), prefix
    assert rows.loc[code.str.startswith("VITAL//") & rows.hadm_id.notna()].shape[0] > 1000
    # no row after a subject's death (the ICU discharge of a death in the ICU is at the death's time)
    death = rows[code == "MEDS_DEATH"].groupby("subject_id").time.first()
    assert (rows.time > rows.subject_id.map(death)).sum() == 0
    present = set(code.unique())
    assert {f"ICU_ADMISSION//{u}" for u in vocab.ICU_UNITS} & present
    assert {p[0] for p in vocab.PROCEDURES.values()} <= present


def test_deaths_never_before_the_record_starts(cohort):
    root, _, _, rows, _ = cohort
    truth = pq.read_table(root / "ground_truth" / "subjects.parquet").to_pandas()
    dead = truth.death_time.notna()
    assert dead.sum() > 100
    assert (truth.death_time[dead] >= truth.record_start[dead]).all()
    first_event = rows[rows.time.notna() & (rows.code != "MEDS_BIRTH")].groupby("subject_id").time.min()
    deaths = rows[rows.code == "MEDS_DEATH"].set_index("subject_id").time
    assert (deaths >= first_event.reindex(deaths.index)).all()


# ---- triage and the early-warning scores ------------------------------------------------------

_NEWS = {  # ARES.md, "Early-warning score tables": first matching band, no match scores 0
    "rr": [(lambda x: x <= 8, 3), (lambda x: (9 <= x) & (x <= 11), 1), (lambda x: (12 <= x) & (x <= 20), 0), (lambda x: (21 <= x) & (x <= 24), 2),
           (lambda x: x >= 25, 3)],
    "spo2": [(lambda x: x <= 91, 3), (lambda x: (92 <= x) & (x <= 93), 2), (lambda x: (94 <= x) & (x <= 95), 1), (lambda x: x >= 96, 0)],
    "temp": [(lambda x: x <= 35, 3), (lambda x: (35 < x) & (x <= 36), 1), (lambda x: (36 < x) & (x <= 38), 0), (lambda x: (38 < x) & (x <= 39), 1),
             (lambda x: x > 39, 2)],
    "sbp": [(lambda x: x <= 90, 3), (lambda x: (91 <= x) & (x <= 100), 2), (lambda x: (101 <= x) & (x <= 110), 1), (lambda x: (111 <= x) & (x <= 219), 0),
            (lambda x: x > 219, 3)],
    "hr": [(lambda x: x <= 40, 3), (lambda x: (41 <= x) & (x <= 50), 1), (lambda x: (51 <= x) & (x <= 90), 0), (lambda x: (91 <= x) & (x <= 110), 1),
           (lambda x: (111 <= x) & (x <= 130), 2), (lambda x: x > 130, 3)],
}


def _news(**vitals) -> np.ndarray:
    total = 0
    for name, bands in _NEWS.items():
        x = np.asarray(vitals[name], float)
        total = total + np.select([rule(x) for rule, _ in bands], [points for _, points in bands], 0)
    return total


def _news_by_hand(rr, spo2, temp_c, sbp, hr) -> int:
    """One row's NEWS (ED-benchmark version), the bands as if/elif chains."""
    points = 0
    if rr <= 8:
        points += 3
    elif 9 <= rr <= 11:
        points += 1
    elif 21 <= rr <= 24:
        points += 2
    elif rr >= 25:
        points += 3
    if spo2 <= 91:
        points += 3
    elif 92 <= spo2 <= 93:
        points += 2
    elif 94 <= spo2 <= 95:
        points += 1
    if temp_c <= 35:
        points += 3
    elif temp_c <= 36:
        points += 1
    elif 38 < temp_c <= 39:
        points += 1
    elif temp_c > 39:
        points += 2
    if sbp <= 90:
        points += 3
    elif 91 <= sbp <= 100:
        points += 2
    elif 101 <= sbp <= 110:
        points += 1
    elif sbp > 219:
        points += 3
    if hr <= 40:
        points += 3
    elif 41 <= hr <= 50 or 91 <= hr <= 110:
        points += 1
    elif 111 <= hr <= 130:
        points += 2
    elif hr > 130:
        points += 3
    return points


def test_news_table_reproduces_the_worked_examples():
    # ARES.md worked examples (NEWS column): rows 1-4
    got = _news(rr=[22, 16, 8, 8.5], spo2=[93, 98, 88, 91.5], temp=[38.5, 37.0, 34.9, 36.0], sbp=[95, 120, 70, 90.5], hr=[115, 72, 140, 50.5])
    assert got.tolist() == [9, 0, 15, 1]
    assert [_news_by_hand(22, 93, 38.5, 95, 115), _news_by_hand(16, 98, 37.0, 120, 72), _news_by_hand(8, 88, 34.9, 70, 140)] == [9, 0, 15]


def test_every_ed_registration_has_its_triage_and_news_tracks_severity(cohort):
    _, _, _, rows, anchors = cohort
    reg = rows[rows.code == vocab.ED_REGISTRATION]
    same_time = rows[rows.code.isin([c for c, _ in vocab.TRIAGE.values()])]
    triage = same_time.set_index(["subject_id", "time", "code"])
    assert not triage.index.duplicated().any()
    key = pd.MultiIndex.from_frame(reg[["subject_id", "time"]])
    table = {}
    for name, (code, _) in vocab.TRIAGE.items():
        part = triage.xs(code, level="code")
        assert key.isin(part.index).all(), name  # present for every registration
        table[name] = part.reindex(key)
    v = {k: t.numeric_value.to_numpy(float) for k, t in table.items()}
    dbp = table["BLOOD_PRESSURE"].text_value.astype(int).to_numpy()
    pain = table["PAIN"].text_value.astype(int).to_numpy()
    assert ((1 <= v["ACUITY"]) & (v["ACUITY"] <= 5)).all() and (v["ACUITY"] == np.round(v["ACUITY"])).all()
    assert ((0 <= pain) & (pain <= 10)).all() and (dbp < v["BLOOD_PRESSURE"]).mean() > 0.99
    assert (90 < np.median(v["TEMPERATURE"]) < 100)  # °F, as MIMIC-IV-ED stores it
    # by hand on a few rows: °F -> °C, then the NEWS bands
    temp_c = (v["TEMPERATURE"] - 32) * 5 / 9
    news = _news(rr=v["RESPIRATORY_RATE"], spo2=v["O2_SATURATION"], temp=temp_c, sbp=v["BLOOD_PRESSURE"], hr=v["HEART_RATE"])
    for i in range(25):  # by hand, row by row, with the table's bands written out
        rr, spo2, t, sbp, hr = (v["RESPIRATORY_RATE"][i], v["O2_SATURATION"][i], temp_c[i], v["BLOOD_PRESSURE"][i], v["HEART_RATE"][i])
        assert news[i] == _news_by_hand(rr, spo2, t, sbp, hr), (i, rr, spo2, t, sbp, hr)
    # the sicker the entry, the higher the NEWS
    state = anchors[anchors.anchor == "ED_REGISTRATION"].set_index(["subject_id", "time"]).state.reindex(key).to_numpy()
    means = [news[state == ED + s].mean() for s in range(N_LEVELS) if (state == ED + s).sum() > 30]
    assert len(means) >= 4 and all(b > a for a, b in zip(means, means[1:])), means


def test_pause_rule_of_accept():
    """Episodes inside another's stay or follow-up window do not happen, nor do follow-ups of
    episodes that did not; a chronic death inside a window moves past it; a death ends it all."""
    from ehrfast.synth.hospital import Episodes, _accept
    from ehrfast.units import US_PER_DAY, US_PER_HOUR

    d = US_PER_DAY
    ep = Episodes(subj=np.array([0, 0, 0, 1, 1, 0]), start=np.array([0, 5 * d, 6 * d, 0, 100 * d, 50 * d]),
                  via_ed=np.ones(6, bool), entry=np.full(6, ED, np.int8), reason=np.zeros(6, np.int8), dx=np.full(6, -1, np.int8),
                  visit=np.array([0, 1, -2 - 1, 2, 3, -2 - 0]))
    ep.end_step = np.array([10, 10, 10, 5, 10, 3], np.int32)
    ep.end_state = np.array([HOME, HOME, HOME, DEAD, HOME, HOME], np.int8)
    kinds = np.array([1, 1, 0, 0, 0, 0])
    times = np.array([50 * d, 6 * d, -1, -1, -1, -1])
    chronic_death = np.array([20 * d, 300 * d])
    accepted, death = _accept(ep, kinds, times, chronic_death, data_end_us=1000 * d)
    # 0 happens; 1 is inside 0's window; 2 is 1's follow-up; 3 dies inside; 4 is after that
    # death; 5 is 0's own follow-up (its ED return at day 50), which happens inside 0's window
    assert accepted.tolist() == [True, False, False, True, False, True]
    assert death[1] == 5 * US_PER_HOUR
    # subject 0's chronic death at day 20 falls inside episode 0's window (10 h + 30 d) and moves
    # by that length, to inside episode 5's window (3 h + 30 d), and moves again
    first_move = 20 * d + 10 * US_PER_HOUR + 30 * d
    assert 50 * d < first_move < 50 * d + 3 * US_PER_HOUR + 30 * d
    assert death[0] == first_move + 3 * US_PER_HOUR + 30 * d


def test_without_the_hospital_world_acute_care_is_the_chronic_worlds_visits(tmp_path):
    cfg = SyntheticConfig(n_subjects=300, seed=2, n_variants=200, n_null_traits=1, causal_variants=10, score_variants=40, hospital=False)
    summary = generate_cohort(tmp_path / "c", cfg, progress=False)
    rows = pa.concat_tables(pq.read_table(f) for f in sorted((tmp_path / "c" / "data").rglob("*.parquet")))
    present = set(rows.column("code").unique().to_pylist())
    assert vocab.VISIT_START["INPATIENT"][0] in present and vocab.VISIT_START["EMERGENCY"][0] in present
    assert not {c for c in present if c.startswith(("ED_", "HOSPITAL_", "ICU_", "DRG//", "INSURANCE//"))}
    assert not present & {c for c, _ in vocab.TRIAGE.values()}
    assert rows.column("hadm_id").null_count == rows.num_rows and rows.column("text_value").null_count == rows.num_rows
    assert summary.hospital == {} and not (tmp_path / "c" / "ground_truth" / "hospital_anchors.parquet").exists()
