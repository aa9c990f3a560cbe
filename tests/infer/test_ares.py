"""ARES trajectories and explanations (ARES.md S7, S8) on a scripted stay and a Markov-chain
model whose risks a dynamic program gives exactly (``ares_double.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import ares_double as D  # noqa: E402

from ehrfast.errors import InvalidInputError  # noqa: E402
from ehrfast.infer.ares import TrajectorySettings, explain, explain_stay, risk_trajectory, stays_from_labels  # noqa: E402
from ehrfast.infer.ares.groups import token_groups  # noqa: E402
from ehrfast.tokenize.dataset import TokenizedDataset  # noqa: E402
from ehrfast.units import US_PER_DAY  # noqa: E402

MAX_NEW = 400


def _trajectory(tmp_path, x_day=None, **kw):
    ds = TokenizedDataset(D.write_dataset(tmp_path / "tokens", x_day))
    settings = TrajectorySettings(max_new_tokens=MAX_NEW, **kw)
    stays, skipped = stays_from_labels(ds, D.labels(), settings)
    assert skipped == 0 and len(stays) == 1
    return ds, risk_trajectory(D.XChain(), ds, stays, settings)


def test_stay_in_token_coordinates(tmp_path):
    ds = TokenizedDataset(D.write_dataset(tmp_path / "tokens"))
    (stay,), _ = stays_from_labels(ds, D.labels(), TrajectorySettings())
    toks, _ = D.scripted_timeline()
    assert stay.start == 2  # the last token at the admission's time (same_time context)
    assert toks[stay.end] == D.DISCHARGE and toks[stay.icu] == D.ICU
    assert stay.hadm_id == 1 and stay.anchor_time_us == D.T0


def test_components_switch_off_and_over_and_each_risk_equals_the_dynamic_program(tmp_path):
    ds, traj = _trajectory(tmp_path, n_samples=300, seed=3)
    (st,) = traj.stays
    icu_at = st.stay.icu
    before = st.positions < icu_at
    # ICU: active exactly before the ICU token, deactivated (NaN) from it on
    assert np.isfinite(st.risk["icu_admission"][before]).all() and not st.deactivated[before].any()
    assert np.isnan(st.risk["icu_admission"][~before]).all() and st.deactivated[~before].all()
    # θ: 10 days before t0 + 10 d, 15 after
    assert (st.threshold_days == np.where(st.times_us < D.T0 + 10 * US_PER_DAY, 10.0, 15.0)).all()
    assert {10.0, 15.0} == set(st.threshold_days.tolist())
    # composite_ref = min(death + PS + ICU, 1), ICU 0 once deactivated
    icu = np.where(st.deactivated, 0.0, st.risk["icu_admission"])
    np.testing.assert_allclose(st.risk["composite_ref"], np.minimum(st.risk["hospital_mortality"] + st.risk["prolonged_stay"] + icu, 1.0))
    # each position's death and prolonged-stay risks against the DP, within 4 sigma
    m = D.transition(False)
    for row, (pos, tok) in enumerate(zip(st.positions, st.token_ids)):
        days_left = st.threshold_days[row] - st.elapsed_us[row] / US_PER_DAY
        death, ps = D.mortality_risks(m, int(tok), days_left, MAX_NEW)
        composite = D.composite_risk(m, int(tok), days_left, MAX_NEW, icu_active=bool(before[row]))
        for name, p in (("hospital_mortality", death), ("prolonged_stay", ps), ("composite", composite)):
            n = st.n_valid[name][row]
            sd = np.sqrt(max(p * (1 - p), 1e-4) / n)
            assert abs(st.risk[name][row] - p) < 4 * sd + 1e-9, (pos, name, st.risk[name][row], p)
    table = traj.table()
    assert table.num_rows == 5 * len(st.positions)
    assert table.column("risk").null_count == int((~before).sum())  # only the deactivated ICU rows have no risk


def test_position_views(tmp_path):
    ds, _ = _trajectory(tmp_path, n_samples=2)
    toks, times = D.scripted_timeline()
    for view, check in (
        ("per_timestamp", lambda pos: len(pos) == len(set(times[p] for p in pos))),
        ("every_k", lambda pos: pos[0] == 2 and pos[1] == 5 and pos[-1] == len(toks) - 3),
        ("per_group", lambda pos: pos[0] == 2),
    ):
        settings = TrajectorySettings(positions=view, every_k=3, n_samples=2, max_new_tokens=50)
        stays, _ = stays_from_labels(ds, D.labels(), settings)
        (st,) = risk_trajectory(D.XChain(), ds, stays, settings).stays
        assert check(st.positions.tolist()), (view, st.positions)
    # per timestamp: one row per distinct time of the stay, the last token of each
    settings = TrajectorySettings(positions="per_timestamp", n_samples=2, max_new_tokens=50)
    stays, _ = stays_from_labels(ds, D.labels(), settings)
    (st,) = risk_trajectory(D.XChain(), ds, stays, settings).stays
    stay_times = [times[p] for p in range(stays[0].start, stays[0].end)]
    assert len(st.positions) == len(set(stay_times)) and len(set(st.times_us.tolist())) == len(st.positions)


def test_explain_ranks_the_risky_token_first_and_its_delta_matches_the_dp(tmp_path):
    ds, traj = _trajectory(tmp_path, x_day=6, n_samples=400, common_random_numbers=True, seed=11)
    (st,) = traj.stays
    (top, *rest) = explain_stay(traj, st, "hospital_mortality", top_k=5)
    toks, _ = D.scripted_timeline(6)
    assert top.tokens == "X" and toks[top.first] == D.X and top.direction == "up" and top.significant
    before, _ = D.mortality_risks(D.transition(False), D.LAB, 0, MAX_NEW)
    after, _ = D.mortality_risks(D.transition(True), D.X, 0, MAX_NEW)
    assert abs(top.delta - (after - before)) < 4 * top.se, (top.delta, after - before, top.se)
    # common random numbers: a group that leaves the next-token law as it was (the lab after X: the
    # chain's rows for X and LAB are the same) gets the very same futures, so Δ and its SE are 0
    everything = {g.first: g for g in explain_stay(traj, st, "hospital_mortality", top_k=None)}
    lab_after_x = everything[top.first + 1]
    assert lab_after_x.tokens == "LAB//A" and lab_after_x.delta == 0.0 and lab_after_x.se == 0.0 and lab_after_x.z == 0.0
    _, independent = _trajectory(tmp_path / "independent", x_day=6, n_samples=400, seed=11)
    moved = {g.first: g for g in explain_stay(independent, independent.stays[0], "hospital_mortality", top_k=None)}
    assert moved[top.first + 1].delta != 0.0 and moved[top.first + 1].se > 0.01
    assert "[X]" in top.window and len(top.window.split()) >= 5
    table = explain(traj, "hospital_mortality", top_k=3)
    assert table.num_rows == 3 and table.column("rank").to_pylist() == [1, 2, 3]
    with pytest.raises(InvalidInputError, match="component"):
        explain(traj, "nope")


def test_groups_join_values_and_hierarchical_pieces_and_keep_intervals_alone():
    vocab = ["[PAD]", "[UNK]", "TIMELINE_END", "Q1", "Q2", "1h", "LAB//X", "DX//ICD//E11", "DX//ICD//REST//9", "HOSPITAL_ADMISSION", "EW"]
    kinds = ["special", "special", "special", "quantile", "quantile", "interval", "code", "code", "code", "code", "code"]
    timeline = np.array([9, 10, 6, 3, 5, 7, 8, 6, 4])
    times = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    groups, ends = token_groups(vocab, kinds, timeline, np.arange(len(timeline)), times=times)
    assert groups == [(0, 1), (2, 3), (4, 4), (5, 6), (7, 8)]
    assert ends.tolist() == [1, 3, 4, 6, 8]


def test_bad_settings_are_refused():
    with pytest.raises(InvalidInputError, match="positions"):
        TrajectorySettings(positions="sometimes")
    with pytest.raises(InvalidInputError, match="n_samples"):
        TrajectorySettings(n_samples=0)
    with pytest.raises(InvalidInputError, match="thresholds_days"):
        TrajectorySettings(thresholds_days=(15.0, 10.0))
