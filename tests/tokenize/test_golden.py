"""Golden tests: small hand-written MEDS inputs and the exact token sequences they must give,
for every timeline rule, in both backends."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from ehrfast.backends import core
from ehrfast.tokenize import TokenizedDataset, TokenizerConfig, VisitRule, tokenize_dataset

from .conftest import T0, at

BACKENDS = ["python", pytest.param("cpp", marks=pytest.mark.skipif(core is None, reason="C++ core not built"))]


def run(meds, tmp_path, backend, config=None, vocab_from=None, name="out"):
    out = tmp_path / f"{name}_{backend}"
    tokenize_dataset(meds, out, config, backend=backend, vocab_from=vocab_from, progress=False)
    return out


def timelines(out, split="train"):
    ds = TokenizedDataset(out / split)
    return {int(s): ds.decode(ds.timeline(i)[0]) for i, s in enumerate(ds.subject_ids)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_interval_bins_at_every_edge(meds_factory, tmp_path, backend):
    gaps = [  # (gap after previous event, expected interval tokens)
        (timedelta(minutes=4, seconds=59), []),
        (timedelta(minutes=5), ["5m-15m"]),
        (timedelta(minutes=15), ["15m-45m"]),
        (timedelta(minutes=45), ["45m-1h15m"]),
        (timedelta(minutes=75), ["1h15m-2h"]),
        (timedelta(hours=2), ["2h-3h"]),
        (timedelta(hours=3), ["3h-5h"]),
        (timedelta(hours=5), ["5h-8h"]),
        (timedelta(hours=8), ["8h-12h"]),
        (timedelta(hours=12), ["12h-18h"]),
        (timedelta(hours=18), ["18h-1d"]),
        (timedelta(days=1) - timedelta(microseconds=1), ["18h-1d"]),
        (timedelta(days=1), ["1d-2d"]),
        (timedelta(days=2), ["2d-4d"]),
        (timedelta(days=4), ["4d-7d"]),
        (timedelta(days=7), ["7d-12d"]),
        (timedelta(days=12), ["12d-20d"]),
        (timedelta(days=20), ["20d-30d"]),
        (timedelta(days=30), ["30d-2mt"]),
        (timedelta(days=60), ["2mt-6mt"]),
        (timedelta(days=180) - timedelta(microseconds=1), ["2mt-6mt"]),
        (timedelta(days=180), ["=6mt"]),
        (timedelta(days=269), ["=6mt"]),  # 1.49 -> 1
        (timedelta(days=270), ["=6mt", "=6mt"]),  # 1.5 -> 2 (halves round up)
        (timedelta(days=400), ["=6mt", "=6mt"]),  # 2.22 -> 2
        (timedelta(0), []),  # same time: no token
    ]
    rows = [(1, None, "GENDER//F", None), (1, datetime(1980, 1, 1), "MEDS_BIRTH", None), (1, T0, "E", None)]
    expected = ["GENDER//F", "Q5", "Q1", "E"]  # age 40.0 at T0 -> tens 4 -> Q5, units 0 -> Q1
    t = T0
    for gap, toks in gaps:
        t = t + gap
        rows.append((1, t, "E", None))
        expected += toks + ["E"]
    expected.append("TIMELINE_END")
    meds = meds_factory({"train": rows})
    assert timelines(run(meds, tmp_path, backend))[1] == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_times_carried_by_tokens(meds_factory, tmp_path, backend):
    rows = [(1, None, "GENDER//M", None), (1, at(), "A", None), (1, at(hours=3), "B", None)]
    out = run(meds_factory({"train": rows}), tmp_path, backend, TokenizerConfig(age_tokens=False))
    ds = TokenizedDataset(out / "train")
    tokens, times = ds.timeline(0)
    assert ds.decode(tokens) == ["GENDER//M", "A", "3h-5h", "B", "TIMELINE_END"]
    us = lambda d: int((d - datetime(1970, 1, 1)).total_seconds() * 1e6)  # noqa: E731
    assert times.tolist() == [us(at()), us(at()), us(at(hours=3)), us(at(hours=3)), us(at(hours=3))]
    assert ds.static_lengths.tolist() == [1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantile_edges(meds_factory, tmp_path, backend):
    # train values 1..100 for LAB: numpy's "nearest" quantiles at 0.1..0.9 (index 99·q rounded
    # half to even) -> 11, 21, 31, 41, 51, 60, 70, 80, 90
    train = [(s, at(days=s), "LAB", float(s)) for s in range(1, 101)]
    train += [(1, at(days=1, hours=1), "RARELAB", 5.0)]  # one value: too few for cut points
    held = [
        (500, at(), "LAB", 11.0),  # on a cut point -> the lower bin: 1 + #(cuts < 11) = Q1
        (500, at(minutes=1), "LAB", 11.5),  # above the first cut -> Q2
        (500, at(minutes=2), "LAB", 90.0),  # on the last cut -> Q9
        (500, at(minutes=3), "LAB", 1000.0),  # above all -> Q10
        (500, at(minutes=4), "LAB", -5.0),  # below all -> Q1
        (500, at(minutes=4), "LAB", None),  # no value -> code only
        (500, at(minutes=4), "LAB", float("nan")),  # NaN -> code only
        (500, at(minutes=4), "RARELAB", 3.0),  # no cut points -> code only
    ]
    out = run(meds_factory({"train": train, "held_out": held}), tmp_path, backend, TokenizerConfig(age_tokens=False))
    assert timelines(out, "held_out")[500] == [
        "LAB", "Q1", "LAB", "Q2", "LAB", "Q9", "LAB", "Q10", "LAB", "Q1", "LAB", "LAB", "RARELAB", "TIMELINE_END",
    ]
    import pyarrow.parquet as pq

    q = pq.read_table(out / "quantiles.parquet").to_pylist()
    assert q == [{"code": "LAB", "cuts": [11.0, 21.0, 31.0, 41.0, 51.0, 60.0, 70.0, 80.0, 90.0]}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_static_rows_age_and_birth(meds_factory, tmp_path, backend):
    rows = [
        (7, None, "GENDER//F", None),
        (7, None, "RACE//ASIAN", None),
        (7, datetime(1950, 3, 1), "MEDS_BIRTH", None),
        (7, datetime(2020, 2, 20), "X", None),  # age 69.97 -> tens 6 (Q7), units round(9.97) = 10 -> capped 9 (Q10)
        (7, datetime(2020, 2, 20), "MEDS_DEATH", None),
    ]
    out = run(meds_factory({"train": rows}), tmp_path, backend)
    assert timelines(out)[7] == ["GENDER//F", "RACE//ASIAN", "Q7", "Q10", "X", "MEDS_DEATH", "TIMELINE_END"]
    ds = TokenizedDataset(out / "train")
    assert ds.static_lengths.tolist() == [4]
    assert ds.birth_times[0] == int((datetime(1950, 3, 1) - datetime(1970, 1, 1)).total_seconds() * 1e6)
    kinds = dict(zip(ds.vocab.tokens, ds.vocab.kinds))
    assert kinds["GENDER//F"] == "static" and kinds["X"] == "code" and kinds["Q3"] == "quantile"
    assert "MEDS_BIRTH" not in ds.vocab


@pytest.mark.parametrize("backend", BACKENDS)
def test_visit_rules(meds_factory, tmp_path, backend):
    rows = [
        (1, at(), "HOSPITAL_ADMISSION//EW EMER.", None),
        (1, at(), "LAB//A", None),
        (1, at(days=3), "HOSPITAL_DISCHARGE//HOME", None),
        (1, at(days=3), "LAB//B", None),
    ]
    cfg = TokenizerConfig(age_tokens=False, visit_rules=(VisitRule("INPATIENT", "^HOSPITAL_ADMISSION", "^HOSPITAL_DISCHARGE"),))
    out = run(meds_factory({"train": rows}), tmp_path, backend, cfg)
    assert timelines(out)[1] == [
        "VISIT_START//INPATIENT", "HOSPITAL_ADMISSION//EW EMER.", "LAB//A", "2d-4d",
        "HOSPITAL_DISCHARGE//HOME", "VISIT_END//INPATIENT", "LAB//B", "TIMELINE_END",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_hierarchical_codes(meds_factory, tmp_path, backend):
    rows = [(1, at(), "DIAGNOSIS//ICD//10//E119", None), (1, at(), "DIAGNOSIS//ICD//10//I10", None), (1, at(), "LAB//X", None)]
    cfg = TokenizerConfig(age_tokens=False, hierarchical_prefixes=("DIAGNOSIS//ICD//10//",))
    out = run(meds_factory({"train": rows}), tmp_path, backend, cfg)
    assert timelines(out)[1] == ["DIAGNOSIS//ICD//10//E11", "DIAGNOSIS//ICD//10//REST//9", "DIAGNOSIS//ICD//10//I10", "LAB//X", "TIMELINE_END"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("policy", ["unk", "drop"])
def test_filters_rare_and_unknown_codes(meds_factory, tmp_path, backend, policy):
    train = []
    for s in (1, 2, 3):
        train += [(s, at(days=s), "COMMON", None), (s, at(days=s, hours=1), "COMMON", None)]
    train += [(1, at(days=1, hours=2), "RARE", None)]  # 1 subject < min_subjects 2
    train += [(9, at(), "COMMON", None)]  # 1 event < min_events 2 -> subject dropped
    held = [(20, at(), "COMMON", None), (20, at(minutes=1), "NEVER_SEEN", None), (20, at(minutes=2), "RARE", None)]
    cfg = TokenizerConfig(age_tokens=False, min_events=2, min_subjects=2, rare_codes=policy)
    out = run(meds_factory({"train": train, "held_out": held}), tmp_path, backend, cfg)
    tl = timelines(out)
    assert sorted(tl) == [1, 2, 3]
    expected_rare = ["[UNK]"] if policy == "unk" else []
    rare_part = ["45m-1h15m", "[UNK]"] if policy == "unk" else []  # a dropped row emits no interval either
    assert tl[1] == ["COMMON", "45m-1h15m", "COMMON", *rare_part, "TIMELINE_END"]
    assert timelines(out, "held_out")[20] == ["COMMON"] + expected_rare * 2 + ["TIMELINE_END"]
    ds = TokenizedDataset(out / "train")
    import json

    report = json.loads((out / "tokenizer.json").read_text())["report"]
    assert report["train_subjects_filtered"]["too_few_events"] == 1 and report["codes_rare"] == 1
    assert "RARE" not in ds.vocab and ds.vocab.tokens[:3] == ["[PAD]", "[UNK]", "TIMELINE_END"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_interval_durations_fitted_on_train(meds_factory, tmp_path, backend):
    rows = [(1, at(), "A", None), (1, at(minutes=10), "A", None), (1, at(minutes=22), "A", None), (1, at(minutes=22, days=400), "A", None)]
    out = run(meds_factory({"train": rows}), tmp_path, backend, TokenizerConfig(age_tokens=False))
    ds = TokenizedDataset(out / "train")
    d = ds.vocab.intervals
    assert d["5m-15m"].n == 2 and d["5m-15m"].mean_us == 11 * 60e6 and d["5m-15m"].median_us == 11 * 60e6
    assert d["=6mt"].n == 2 and d["=6mt"].mean_us == 200 * 86400e6  # 400 days split over 2 tokens
    assert d["2h-3h"].n == 0 and d["2h-3h"].mean_us is None and d["2h-3h"].lower_us == 2 * 3600e6
    assert ds.vocab.interval_duration_us("mean")[ds.vocab.id("2h-3h")] == 2 * 3600e6  # falls back to the edge


@pytest.mark.parametrize("backend", BACKENDS)
def test_reapply_fitted_vocab(meds_factory, tmp_path, backend):
    first = meds_factory({"train": [(1, at(), "A", 1.0), (1, at(hours=1), "B", None)]})
    out1 = run(first, tmp_path, backend, TokenizerConfig(age_tokens=False, min_values_for_quantiles=1))
    second = meds_factory({"train": [(5, at(), "B", None), (5, at(hours=1), "C", None)], "held_out": [(6, at(), "A", 2.0)]})
    out2 = run(second, tmp_path, backend, vocab_from=out1, name="again")
    assert TokenizedDataset(out2 / "train").vocab.tokens == TokenizedDataset(out1 / "train").vocab.tokens
    assert timelines(out2)[5] == ["B", "45m-1h15m", "[UNK]", "TIMELINE_END"]
    assert timelines(out2, "held_out")[6] == ["A", "Q2", "TIMELINE_END"]


def test_context_recomputes_age_and_cuts_at_prediction_time(meds_factory, tmp_path):
    rows = [
        (1, None, "GENDER//F", None),
        (1, datetime(1980, 1, 1), "MEDS_BIRTH", None),
        (1, datetime(2000, 1, 1), "A", None),
        (1, datetime(2000, 1, 2), "B", None),
        (1, datetime(2015, 7, 1), "C", None),
    ]
    out = run(meds_factory({"train": rows}), tmp_path, "python")
    ds = TokenizedDataset(out / "train")
    us = lambda d: int((d - datetime(1970, 1, 1)).total_seconds() * 1e6)  # noqa: E731
    tokens, times = ds.context(1, us(datetime(2010, 6, 1)))
    # age 30.4 at prediction time -> Q4 Q1; C (2015) is in the future; no TIMELINE_END
    assert ds.decode(tokens) == ["GENDER//F", "Q4", "Q1", "A", "1d-2d", "B"]
    assert times[0] == us(datetime(2010, 6, 1))
    short, _ = ds.context(1, us(datetime(2010, 6, 1)), max_tokens=4)
    assert ds.decode(short) == ["GENDER//F", "Q4", "Q1", "B"]
    with pytest.raises(ValueError, match="static"):
        ds.context(1, us(datetime(2010, 6, 1)), max_tokens=2)
    assert isinstance(ds.tokens, np.memmap)
