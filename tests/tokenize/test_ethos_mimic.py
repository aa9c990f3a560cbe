"""The ``ethos_mimic`` preset on the real MIMIC-IV demo (ARES.md S13): both backends identical,
7 tokens per ICD-10-PCS procedure, death before a same-time discharge, ICD-9 → 10 and drug → ATC
maps, the reference's age rule."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ehrfast.backends import core
from ehrfast.tokenize import TokenizedDataset, TokenizerConfig, tokenize_dataset
from ehrfast.tokenize.tokenizer import Tokenizer

from .test_backends import _same_outputs


@pytest.fixture(scope="module")
def ethos_mimic(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ethos_mimic")
    backends = ["cpp", "python"] if core is not None else ["python"]
    for b in backends:
        tokenize_dataset(shared_data / "mimic-iv-demo-meds", root / b, preset="ethos_mimic", backend=b, progress=False)
    return shared_data / "mimic-iv-demo-meds", root, backends


def test_both_backends_write_identical_arrays(ethos_mimic):
    _, root, backends = ethos_mimic
    if len(backends) < 2:
        pytest.skip("C++ core not built")
    _same_outputs(root / "cpp", root / "python")


def test_every_pcs_procedure_is_seven_tokens(ethos_mimic):
    _, root, backends = ethos_mimic
    tok = Tokenizer.load(root / backends[0])
    procedures = [c for c in tok.codes if c.startswith("PROCEDURE//ICD//")]
    assert len(procedures) > 200  # ICD-9 procedures mapped to ICD-10-PCS, and ICD-10-PCS ones
    for c in procedures:
        tokens = tok.code_tokens(c)
        assert len(tokens) == 7 and all(t.startswith("ICD//PCS//") and len(t) == len("ICD//PCS//") + 1 for t in tokens), (c, tokens)
    # and in the timelines: the ICD//PCS tokens come in runs of exactly 7
    ds = TokenizedDataset(root / backends[0] / "train")
    is_pcs = np.array([t.startswith("ICD//PCS//") for t in ds.vocab.tokens])
    for i in range(len(ds)):
        flags = is_pcs[ds.timeline(i)[0]]
        edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(int), 0]))
        assert np.all((edges[1::2] - edges[0::2]) % 7 == 0)


def test_death_comes_before_a_same_time_discharge(ethos_mimic):
    meds, root, backends = ethos_mimic
    checked = 0
    for split in ("train", "tuning", "held_out"):
        table = pq.read_table(meds / "data" / split, columns=["subject_id", "time", "code"])
        deaths = table.filter(pc.equal(table.column("code"), "MEDS_DEATH"))
        died = table.filter(pc.equal(table.column("code"), "HOSPITAL_DISCHARGE//DIED"))
        same = set(zip(deaths.column("subject_id").to_pylist(), deaths.column("time").to_pylist())) & \
            set(zip(died.column("subject_id").to_pylist(), died.column("time").to_pylist()))
        ds = TokenizedDataset(root / backends[0] / split)
        for sid, when in same:
            tokens, times = ds.timeline(ds.row(sid))
            t_us = int(np.datetime64(when, "us").astype(np.int64))
            names = ds.decode(tokens[times == t_us])
            assert names.index("MEDS_DEATH") < names.index("HOSPITAL_DISCHARGE"), names
            assert names[names.index("HOSPITAL_DISCHARGE") + 1] == "DISCHARGE_LOCATION//DIED"
            checked += 1
            example = (split, sid, t_us)
    assert checked >= 5  # the demo has in-hospital deaths recorded beside their discharge
    # without the rule the recorded order (discharge first) stays: the reorder rule is what moves it
    from dataclasses import replace

    cfg = TokenizerConfig.preset("ethos_mimic")
    tokenize_dataset(meds, root / "no_reorder", replace(cfg, code_rules=tuple(r for r in cfg.code_rules if r.kind != "reorder")),
                     progress=False)
    split, sid, t_us = example
    ds = TokenizedDataset(root / "no_reorder" / split)
    tokens, times = ds.timeline(ds.row(sid))
    names = ds.decode(tokens[times == t_us])
    assert names.index("MEDS_DEATH") > names.index("HOSPITAL_DISCHARGE"), names


def test_maps_and_rewrites(ethos_mimic):
    _, root, backends = ethos_mimic
    tok = Tokenizer.load(root / backends[0])
    assert tok.code_tokens("DIAGNOSIS//ICD//9//4019") == ["ICD//CM//I10"]
    assert tok.code_tokens("HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM") == ["HOSPITAL_ADMISSION", "ADMISSION_TYPE//EMERGENCY"]
    assert tok.code_tokens("HOSPITAL_DISCHARGE//SKILLED NURSING FACILITY") == ["HOSPITAL_DISCHARGE", "DISCHARGE_LOCATION//HEALTHCARE_FACILITY"]
    assert tok.code_tokens("HOSPITAL_DISCHARGE//HOME HEALTH CARE") == ["HOSPITAL_DISCHARGE", "DISCHARGE_LOCATION//HOME_HEALTH CARE"]
    assert tok.code_tokens("DRG//HCFA//071") == ["DRG//71"] and tok.code_tokens("DRG//APR//71") == []
    assert tok.code_tokens("RACE//BLACK/AFRICAN AMERICAN") == ["RACE//BLACK"]
    assert tok.code_tokens("RACE//UNABLE TO OBTAIN") == ["RACE//UNKNOWN"]
    assert tok.code_tokens("MEDICATION//Acetaminophen//Administered") == ["ATC//N02", "ATC//4//B", "ATC//SFX//E01"]
    assert tok.code_tokens("MEDICATION//Acetaminophen//Not Given") == []
    assert tok.code_tokens("INFUSION_START//225158//mL") == [] and tok.code_tokens("Weight (Lbs)") == []
    assert tok.config.age_rounding == "ethos"


def test_marital_status_and_race_are_time_varying_static_tokens(ethos_mimic):
    _, root, backends = ethos_mimic
    ds = TokenizedDataset(root / backends[0] / "train")
    names = ds.vocab.tokens
    assert "MARITAL//UNKNOWN" in names and "RACE//UNKNOWN" in names
    is_category = np.array([t.startswith(("MARITAL//", "RACE//")) for t in names])
    recorded = 0
    for i in range(len(ds)):
        tokens, times = ds.timeline(i)
        assert not is_category[tokens].any()  # out of the timeline
        head_start = ds.decode(ds.head(i, int(times[0]) - 1))  # before the first event nothing is known
        head_end = ds.decode(ds.head(i, int(times[-1])))
        assert len(head_start) == ds.head_length(i) and "MARITAL//UNKNOWN" in head_start
        recorded += any(t.startswith("MARITAL//") and t != "MARITAL//UNKNOWN" for t in head_end)
    assert recorded > len(ds) // 2  # by the end of the record most patients' status is known


def test_triage_rows_of_the_synthetic_hospital_world(small_cohort, tmp_path):
    """The ED triage codes (absent from the MIMIC demo, present in the synthetic world, which uses
    the same MEDS names): VITAL//… with fitted quantiles, ED_ACUITY with the acuity as its Q."""
    cohort = small_cohort[0]
    tokenize_dataset(cohort, tmp_path / "tok", preset="ethos_mimic", progress=False)
    tok = Tokenizer.load(tmp_path / "tok")
    assert tok.code_tokens("HEART_RATE") == ["VITAL//HEART_RATE"] and tok.cuts.get("HEART_RATE")
    assert tok.code_tokens("ACUITY") == ["ED_ACUITY"] and tok.cuts["ACUITY"] == [k + 0.5 for k in range(1, 10)]
    table = pq.read_table(cohort / "data" / "train", columns=["subject_id", "time", "code", "numeric_value"])
    acuity = table.filter(pc.equal(table.column("code"), "ACUITY")).slice(0, 50)
    ds = TokenizedDataset(tmp_path / "tok" / "train")
    for sid, when, value in zip(acuity.column("subject_id").to_pylist(), acuity.column("time").to_pylist(),
                                acuity.column("numeric_value").to_pylist()):
        tokens, times = ds.timeline(ds.row(sid))
        names = ds.decode(tokens[times == int(np.datetime64(when, "us").astype(np.int64))])
        assert names[names.index("ED_ACUITY") + 1] == f"Q{int(value)}"
