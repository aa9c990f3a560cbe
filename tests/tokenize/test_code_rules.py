"""Golden input → output per code rule (ARES.md S13), through both backends, and the rules'
validation."""

from __future__ import annotations

import gzip

import pytest

from ehrfast.backends import core
from ehrfast.errors import InvalidInputError
from ehrfast.tokenize import TokenizedDataset, TokenizerConfig, tokenize_dataset
from ehrfast.tokenize.rules import CodeRule, CodeRules, split_code

from .conftest import at, write_meds

BACKENDS = ["python"] + (["cpp"] if core is not None else [])


def _timeline(tmp_path, rows, rules, backend, **cfg):
    meds = write_meds(tmp_path / f"meds_{backend}", {"train": rows})
    config = TokenizerConfig(age_tokens=False, timeline_end=False, code_rules=tuple(rules), **cfg)
    tokenize_dataset(meds, tmp_path / f"out_{backend}", config, backend=backend, progress=False)
    ds = TokenizedDataset(tmp_path / f"out_{backend}" / "train")
    return {int(s): ds.decode(ds.timeline(i)[0]) for i, s in enumerate(ds.subject_ids)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop(tmp_path, backend):
    rows = [(1, at(), "A", None), (1, at(hours=1), "INFUSION_START//1", None), (1, at(hours=9), "B", None)]
    got = _timeline(tmp_path, rows, [CodeRule("drop", prefix="INFUSION_")], backend)
    # the dropped row emits nothing — not the 1h15m-2h interval before it either: one 8h-12h gap A → B
    assert got[1] == ["A", "8h-12h", "B"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rewrite_with_maps_and_integers(tmp_path, backend):
    rules = [CodeRule("rewrite", pattern=r"^HOSPITAL_ADMISSION//(?P<type>[^/]+)//.*$",
                      tokens=("HOSPITAL_ADMISSION", "ADMISSION_TYPE//{type}"),
                      maps={"type": {"EW EMER.": "EMERGENCY", "ELECTIVE": "SCHEDULED", "*": "OBSERVATION"}}),
             CodeRule("rewrite", pattern=r"^DRG//HCFA//(?P<code>\d+)", tokens=("DRG//{code}",), integers=("code",)),
             CodeRule("drop", prefix="DRG//APR//")]
    rows = [(1, at(), "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", None), (2, at(), "HOSPITAL_ADMISSION//ELECTIVE//REFERRAL", None),
            (3, at(), "HOSPITAL_ADMISSION//EU OBSERVATION//ER", None), (3, at(days=3), "DRG//HCFA//071", None),
            (3, at(days=3), "DRG//APR//71", None)]
    got = _timeline(tmp_path, rows, rules, backend)
    assert got[1] == ["HOSPITAL_ADMISSION", "ADMISSION_TYPE//EMERGENCY"]
    assert got[2] == ["HOSPITAL_ADMISSION", "ADMISSION_TYPE//SCHEDULED"]
    assert got[3] == ["HOSPITAL_ADMISSION", "ADMISSION_TYPE//OBSERVATION", "2d-4d", "DRG//71"]


def test_split_schemes():
    assert split_code("E1122", "icd10cm", "ICD//CM") == ["ICD//CM//E11", "ICD//CM//3-6//22"]
    assert split_code("S72001A", "icd10cm", "ICD//CM") == ["ICD//CM//S72", "ICD//CM//3-6//001", "ICD//CM//SFX//A"]
    assert split_code("I10", "icd10cm", "ICD//CM") == ["ICD//CM//I10"]
    assert split_code("0DTJ4ZZ", "icd10pcs", "ICD//PCS") == [f"ICD//PCS//{c}" for c in "0DTJ4ZZ"]
    assert split_code("C07AB02", "atc", "ATC") == ["ATC//C07", "ATC//4//A", "ATC//SFX//B02"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_and_map(tmp_path, backend):
    icd9 = tmp_path / "cm9to10.csv.gz"
    with gzip.open(icd9, "wt") as f:
        f.write("icd_9,icd_10\n4019,I10\n25000,E119\n25000,E1165\n7919,NoDx\n")
    rules = [CodeRule("map", pattern=r"^DIAGNOSIS//ICD//9//(?P<code>.+)$", csv=str(icd9), key="icd_9", value="icd_10",
                      into="DIAGNOSIS//ICD//10//{code}", choose="category_if_several"),
             CodeRule("split", pattern=r"^DIAGNOSIS//ICD//10//(?P<code>.+)$", scheme="icd10cm", out="ICD//CM")]
    rows = [(1, at(), "DIAGNOSIS//ICD//9//4019", None), (1, at(), "DIAGNOSIS//ICD//9//25000", None),
            (1, at(), "DIAGNOSIS//ICD//9//7919", None), (1, at(), "DIAGNOSIS//ICD//10//S72001A", None)]
    got = _timeline(tmp_path, rows, rules, backend)
    # 4019 -> I10; 25000 has two candidates -> their category E11; 7919 maps to nothing -> dropped
    assert got[1] == ["ICD//CM//I10", "ICD//CM//E11", "ICD//CM//S72", "ICD//CM//3-6//001", "ICD//CM//SFX//A"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_value_token(tmp_path, backend):
    rows = [(1, at(), "ACUITY", 3.0), (2, at(), "ACUITY", 1.0), (3, at(), "ACUITY", 5.0), (4, at(), "ACUITY", 7.0), (5, at(), "ACUITY", None)]
    got = _timeline(tmp_path, rows, [CodeRule("value_token", pattern="^ACUITY$")], backend, n_quantiles=5)
    assert [got[s] for s in range(1, 6)] == [["ACUITY", "Q3"], ["ACUITY", "Q1"], ["ACUITY", "Q5"], ["ACUITY", "Q5"], ["ACUITY"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_reorder_death_before_a_same_time_discharge(tmp_path, backend):
    rule = CodeRule("reorder", first="^MEDS_DEATH$", before="^HOSPITAL_DISCHARGE//")
    rows = [(1, at(), "HOSPITAL_ADMISSION//X", None), (1, at(days=2), "LAB//1", None), (1, at(days=2), "HOSPITAL_DISCHARGE//DIED", None),
            (1, at(days=2), "MEDS_DEATH", None),
            (2, at(), "HOSPITAL_DISCHARGE//HOME", None), (2, at(days=1), "MEDS_DEATH", None)]  # not the same time: unchanged
    got = _timeline(tmp_path, rows, [rule], backend)
    assert got[1] == ["HOSPITAL_ADMISSION//X", "2d-4d", "LAB//1", "MEDS_DEATH", "HOSPITAL_DISCHARGE//DIED"]
    assert got[2] == ["HOSPITAL_DISCHARGE//HOME", "1d-2d", "MEDS_DEATH"]
    assert _timeline(tmp_path / "none", rows, [], backend)[1][-2:] == ["HOSPITAL_DISCHARGE//DIED", "MEDS_DEATH"]


def test_rules_survive_a_save_and_load(tmp_path):
    icd9 = tmp_path / "m.csv"
    icd9.write_text("icd_9,icd_10\n4019,I10\n")
    rules = (CodeRule("map", pattern=r"^D9//(?P<code>.+)$", csv=str(icd9), key="icd_9", value="icd_10", into="D10//{code}"),)
    meds = write_meds(tmp_path / "meds", {"train": [(1, at(), "D9//4019", None)], "held_out": [(2, at(), "D9//4019", None)]})
    tokenize_dataset(meds, tmp_path / "out", TokenizerConfig(age_tokens=False, code_rules=rules), progress=False)
    icd9.unlink()  # the fitted tokenizer holds each kept code's tokens: the map is not needed any more
    from ehrfast.tokenize.tokenizer import Tokenizer

    tok = Tokenizer.load(tmp_path / "out")
    assert tok.code_tokens("D9//4019") == ["D10//I10"] and tok.config.code_rules == rules
    ds = TokenizedDataset(tmp_path / "out" / "held_out")
    assert ds.decode(ds.timeline(0)[0])[:1] == ["D10//I10"]


def test_bad_rules_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        CodeRule("shuffle")
    with pytest.raises(InvalidInputError, match="named group"):
        CodeRule("split", pattern="^ICD//(.+)$", scheme="icd10cm", out="X")
    with pytest.raises(InvalidInputError, match="unknown group"):
        CodeRule("rewrite", pattern="^A//(?P<x>.+)$", tokens=("A//{y}",))
    with pytest.raises(InvalidInputError, match="bad pattern"):
        CodeRule("value_token", pattern="(")
    with pytest.raises(InvalidInputError, match="unknown key"):
        CodeRule.from_dict({"kind": "drop", "prefix": "A", "colour": 1})
    with pytest.raises(Exception, match="no such CSV"):
        CodeRules((CodeRule("map", pattern="^(?P<code>.+)$", csv=str(tmp_path / "missing.csv"), key="a", value="b", into="{code}"),)).resolve("x")
    assert TokenizerConfig.from_dict(TokenizerConfig(code_rules=(CodeRule("drop", prefix="A"),)).to_dict()).code_rules == (CodeRule("drop", prefix="A"),)


@pytest.mark.parametrize("backend", BACKENDS)
def test_static_latest(tmp_path, backend):
    rules = [CodeRule("rewrite", pattern=r"^MARITAL_STATUS//(?P<s>.+)$", tokens=("MARITAL//{s}",)), CodeRule("static_latest", prefix="MARITAL//")]
    rows = [(1, None, "GENDER//F", None), (1, at(), "A", None), (1, at(days=1), "MARITAL_STATUS//SINGLE", None), (1, at(days=2), "B", None),
            (1, at(days=30), "MARITAL_STATUS//MARRIED", None), (1, at(days=31), "C", None),
            *[(1, at(days=32 + k), f"D{k}", None) for k in range(5)],
            (2, at(), "A", None), (2, at(days=3), "B", None)]  # never recorded: UNKNOWN
    meds = write_meds(tmp_path / "meds", {"train": rows})
    config = TokenizerConfig(age_tokens=False, timeline_end=False, code_rules=tuple(rules))
    tokenize_dataset(meds, tmp_path / "out", config, backend=backend, progress=False)
    ds = TokenizedDataset(tmp_path / "out" / "train")
    r1, r2 = ds.row(1), ds.row(2)
    # out of the timeline, with no interval token of its own: A (1d gap to SINGLE is not emitted) 2d-4d B ...
    later = [t for k in range(5) for t in ("1d-2d", f"D{k}")]
    assert ds.decode(ds.timeline(r1)[0]) == ["GENDER//F", "A", "2d-4d", "B", "20d-30d", "C", *later]
    assert ds.head_length(r1) == 2 and ds.has_window_head

    def us(days):
        return int((at(days=days) - at()).total_seconds() * 1e6) + ds.timeline(r1)[1][1]

    assert ds.decode(ds.head(r1, us(0))) == ["GENDER//F", "MARITAL//UNKNOWN"]
    assert ds.decode(ds.head(r1, us(1))) == ["GENDER//F", "MARITAL//SINGLE"]
    assert ds.decode(ds.head(r1, us(29))) == ["GENDER//F", "MARITAL//SINGLE"]
    assert ds.decode(ds.head(r1, us(30))) == ["GENDER//F", "MARITAL//MARRIED"]
    assert ds.decode(ds.head(r2, us(5))) == ["MARITAL//UNKNOWN"]
    # a context reads the category at its window's first timeline token
    full, _ = ds.context(1, us(31))
    assert ds.decode(full) == ["GENDER//F", "MARITAL//UNKNOWN", "A", "2d-4d", "B", "20d-30d", "C"]
    tail, _ = ds.context(1, us(31), max_tokens=5)  # the window starts at B (day 2): SINGLE by then
    assert ds.decode(tail) == ["GENDER//F", "MARITAL//SINGLE", "B", "20d-30d", "C"]
    # training windows carry the head at their start
    import numpy as np

    from ehrfast.train.batches import subject_window

    seen = set()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        w = subject_window(ds, r1, 8, rng)  # a 2-token head and a 6-token chunk
        first = int(np.flatnonzero(ds.timeline(r1)[0] == w[2])[0]) if w[2] != ds.vocab.id("1d-2d") else None
        names = ds.decode(w)
        assert len(w) == 8 and names[0] == "GENDER//F" and names[1].startswith("MARITAL//")
        if first is not None:  # the head is the one at the chunk's first token
            assert names[1] == ds.decode(ds.head(r1, int(ds.timeline(r1)[1][first])))[1]
        seen.add(names[1])
    assert {"MARITAL//SINGLE", "MARITAL//MARRIED"} <= seen
    assert "MARITAL//SINGLE" in ds.vocab and ds.vocab.kinds[ds.vocab.id("MARITAL//UNKNOWN")] == "static"
