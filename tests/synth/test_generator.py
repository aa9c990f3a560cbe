"""The synthetic cohort: valid MEDS, readable genotypes, parseable score files, determinism,
and a planted effect that is measurable."""

from __future__ import annotations

import filecmp
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ehrfast.data.meds import validate_meds_dataset
from ehrfast.genomics.bed import BedFile
from ehrfast.io import OUTPUT_MARKER
from ehrfast.synth import codes as vocab
from ehrfast.synth.generator import SyntheticConfig, generate_cohort


def _all_rows(root):
    return pa.concat_tables(pq.read_table(f) for f in sorted((root / "data").rglob("*.parquet")))


def test_meds_valid_by_our_validator(small_cohort):
    root, cfg, summary = small_cohort
    s = validate_meds_dataset(root)
    assert s.n_subjects == cfg.n_subjects and s.n_rows == summary.n_rows
    assert s.subjects_per_split == {"train": 1200, "tuning": 150, "held_out": 150}
    assert len(list((root / "data" / "train").glob("*.parquet"))) == 2  # shard_size 600


def test_meds_valid_by_meds_package(small_cohort):
    meds = pytest.importorskip("meds")
    root, _, _ = small_cohort
    for f in sorted((root / "data").rglob("*.parquet")):
        meds.DataSchema.validate(pq.read_table(f))
    meds.CodeMetadataSchema.validate(pq.read_table(root / "metadata" / "codes.parquet"))
    meds.SubjectSplitSchema.validate(pq.read_table(root / "metadata" / "subject_splits.parquet"))
    meds.DatasetMetadataSchema.validate(json.loads((root / "metadata" / "dataset.json").read_text()))


def test_independent_sort_and_content_checks(small_cohort):
    root, cfg, _ = small_cohort
    for f in sorted((root / "data").rglob("*.parquet")):
        t = pq.read_table(f)
        assert t.schema.field("time").type == pa.timestamp("us")
        sid = t.column("subject_id").to_numpy()
        tm = t.column("time").cast(pa.int64()).to_numpy(zero_copy_only=False)
        key = np.where(np.isnan(tm.astype(float)), -np.inf, tm.astype(float))
        order = np.lexsort((key, sid))
        assert (order == np.arange(len(order))).all(), f"{f} not sorted by subject, time"
    rows = _all_rows(root)
    codes = rows.column("code")
    static = rows.filter(pc.is_null(rows.column("time")))
    assert set(pc.unique(static.column("code")).to_pylist()) <= {"GENDER//F", "GENDER//M"} | {f"RACE//{r}" for r in vocab.RACES}
    assert static.num_rows == 2 * cfg.n_subjects
    assert pc.sum(pc.equal(codes, "MEDS_BIRTH")).as_py() == cfg.n_subjects
    assert pc.sum(pc.equal(codes, "MEDS_DEATH")).as_py() > 0
    present = set(pc.unique(codes).to_pylist())
    for disease in vocab.DISEASES:
        assert any(c in present for c, _, _ in vocab.DIAGNOSIS_CODES[disease]), disease
    # the chronic world's office visits keep their visit codes; acute care is the hospital
    # world's (ED registration, admission, discharge — MIMIC-IV's codes, tested in test_hospital)
    assert vocab.VISIT_START["OUTPATIENT"][0] in present and vocab.VISIT_END["OUTPATIENT"][0] in present
    assert {vocab.ED_REGISTRATION, vocab.ED_OUT, vocab.DISCHARGE_DIED} <= present
    assert not any(vocab.VISIT_START[v][0] in present for v in ("EMERGENCY", "INPATIENT"))
    listed = set(pq.read_table(root / "metadata" / "codes.parquet").column("code").to_pylist())
    assert present <= listed


def test_labs_move_with_disease_state(small_cohort):
    root, _, _ = small_cohort
    rows = _all_rows(root)
    truth = pq.read_table(root / "ground_truth" / "subjects.parquet")
    onset = dict(zip(truth.column("subject_id").to_pylist(), truth.column("onset_T2D").cast(pa.int64()).to_pylist()))
    hba1c = rows.filter(pc.equal(rows.column("code"), vocab.MEASUREMENTS["HBA1C"].code))
    sid = hba1c.column("subject_id").to_pylist()
    t = hba1c.column("time").cast(pa.int64()).to_numpy()
    v = hba1c.column("numeric_value").to_numpy()
    after = np.array([onset[s] is not None and ti >= onset[s] for s, ti in zip(sid, t)])
    assert v[after].mean() > v[~after].mean() + 0.8  # diabetics' HbA1c is clearly higher
    assert 5.0 < np.median(v[~after]) < 6.0


def test_event_counts_heavy_tailed(small_cohort):
    _, _, summary = small_cohort
    r = summary.rows_per_subject
    assert r["median"] >= 30 and r["max"] >= 1_000 and r["p99"] > 4 * r["median"]


def test_genotypes_readable_with_intended_frequencies(small_cohort):
    bed_reader = pytest.importorskip("bed_reader")
    root, cfg, summary = small_cohort
    prefix = root / "genomics" / "genotypes"
    with bed_reader.open_bed(str(prefix) + ".bed") as bed:
        g = bed.read(dtype="float32")  # [samples, variants], NaN = missing
        a1 = np.asarray(bed.allele_1)
        ids = np.asarray(bed.sid)
    assert g.shape == (summary.n_genotyped, cfg.n_variants)
    missing = np.isnan(g).mean()
    assert 0.005 < missing < 0.02
    observed = np.nanmean(g, axis=0) / 2  # A1 frequency
    # intended frequencies are published in the score files' allelefrequency_effect column
    intended = {}
    for f in (root / "genomics" / "scores").glob("*.txt"):
        for line in f.read_text().splitlines():
            if line.startswith("#") or line.startswith("rsID"):
                continue
            rs, _, _, eff, oth, _, freq = line.split("\t")
            intended[rs] = (eff, oth, float(freq))
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    diffs = []
    for j, rs in enumerate(ids):
        if rs not in intended:
            continue
        eff, oth, freq = intended[rs]
        if {eff, oth} == {comp[eff], comp[oth]}:
            continue  # strand-ambiguous: orientation unknowable from alleles alone
        if eff != a1[j] and comp[eff] != a1[j]:
            freq = 1 - freq
        diffs.append(observed[j] - freq)
    diffs = np.abs(diffs)
    assert len(diffs) > 500 and np.percentile(diffs, 99) < 0.06  # binomial error at n≈1,470
    # our own reader agrees with bed-reader
    ours = BedFile(prefix).read().astype(np.float32)
    np.testing.assert_array_equal(np.where(ours < 0, np.nan, ours), g.T)


def test_score_files_parse(small_cohort):
    root, cfg, _ = small_cohort
    files = sorted((root / "genomics" / "scores").glob("*.txt"))
    assert len(files) == len(vocab.DISEASES) + cfg.n_null_traits
    bim = {line.split("\t")[1]: line.split("\t") for line in (root / "genomics" / "genotypes.bim").read_text().splitlines()}
    swapped = flipped = 0
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    for f in files:
        lines = f.read_text().splitlines()
        header = dict(line[1:].split("=", 1) for line in lines if line.startswith("#") and not line.startswith("##") and "=" in line)
        assert header["pgs_id"] == f.stem and header["weight_type"] == "beta"
        cols = next(line for line in lines if not line.startswith("#")).split("\t")
        assert cols[:6] == ["rsID", "chr_name", "chr_position", "effect_allele", "other_allele", "effect_weight"]
        body = [line.split("\t") for line in lines if not line.startswith("#")][1:]
        assert int(header["variants_number"]) == len(body)
        for rs, chrom, pos, eff, oth, w, _ in body:
            float(w)
            b = bim[rs]
            assert (b[0], b[3]) == (chrom, pos)
            swapped += eff == b[5]
            flipped += eff not in (b[4], b[5])
            assert {eff, oth} in ({b[4], b[5]}, {comp[b[4]], comp[b[5]]})
    assert swapped > 0 and flipped > 0


def test_deterministic_by_seed(tmp_path):
    cfg = SyntheticConfig(n_subjects=200, seed=3, n_variants=300, n_null_traits=2, causal_variants=20, score_variants=60)
    generate_cohort(tmp_path / "a", cfg, progress=False)
    generate_cohort(tmp_path / "b", cfg, progress=False)
    generate_cohort(tmp_path / "c", SyntheticConfig(**{**cfg.__dict__, "seed": 4}), progress=False)
    # the output marker records when it was written (to the second): not part of the cohort
    files = [p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file() and p.name not in ("cohort.json", OUTPUT_MARKER)]
    assert len(files) > 10
    for rel in files:
        if rel.name == "dataset.json":  # MEDS's created_at is the wall clock (to the second): the rest must agree
            a, b = (json.loads((tmp_path / w / rel).read_text()) for w in ("a", "b"))
            assert {k: v for k, v in a.items() if k != "created_at"} == {k: v for k, v in b.items() if k != "created_at"}
            continue
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    assert not filecmp.cmp(tmp_path / "a" / "genomics" / "genotypes.bed", tmp_path / "c" / "genomics" / "genotypes.bed", shallow=False)


def test_refuses_to_overwrite_and_leaves_nothing_on_error(tmp_path):
    cfg = SyntheticConfig(n_subjects=50, n_variants=200, n_null_traits=1, causal_variants=10, score_variants=40)
    generate_cohort(tmp_path / "x", cfg, progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        generate_cohort(tmp_path / "x", cfg, progress=False)
    with pytest.raises(ValueError, match="causal_variants"):
        generate_cohort(tmp_path / "y", SyntheticConfig(n_subjects=50, causal_variants=500, score_variants=100), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def _auroc(score, label):
    from scipy.stats import rankdata

    r = rankdata(score)
    pos = label.astype(bool)
    return (r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())


def test_planted_effect_liability_predicts_incidence(small_cohort):
    root, _, _ = small_cohort
    truth = pq.read_table(root / "ground_truth" / "subjects.parquet").to_pandas()
    for disease, floor in [("T2D", 0.68), ("CAD", 0.6), ("DEPRESSION", 0.6)]:
        ever = truth[f"onset_{disease}"].notna().to_numpy()
        assert _auroc(truth[f"liability_{disease}"].to_numpy(), ever) > floor, disease
    risk = pq.read_table(root / "ground_truth" / "risk.parquet").to_pandas()
    assert set(risk.index_offset_days) == {0, 182, 365, 1095}
    r0 = risk[(risk.disease == "T2D") & (risk.index_offset_days == 0)].dropna()
    merged = r0.merge(truth[["subject_id", "onset_T2D"]], on="subject_id")
    horizon = merged.index_time + np.timedelta64(3652, "D")
    y = (merged.onset_T2D > merged.index_time) & (merged.onset_T2D <= horizon)
    assert abs(merged.true_risk.mean() - y.mean()) < 0.04  # calibrated up to censoring/death
    assert _auroc(merged.true_risk.to_numpy(), y.to_numpy()) > 0.7


@pytest.mark.slow
def test_prs_advantage_shrinks_with_history(tmp_path):
    """With true liability as a stand-in for PRS, a logistic model gains much more from it
    with no EHR history than with 3 years of labs — the pattern the demo must reproduce."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    root = tmp_path / "c"
    generate_cohort(root, SyntheticConfig(n_subjects=6_000, seed=1, n_variants=600, n_null_traits=0, causal_variants=100, score_variants=200), progress=False)
    truth = pq.read_table(root / "ground_truth" / "subjects.parquet").to_pandas().set_index("subject_id")
    rows = _all_rows(root).to_pandas()
    labs = [vocab.MEASUREMENTS[k].code for k in ("HBA1C", "GLUCOSE", "BMI")]
    rows = rows[rows.code.isin(labs)]
    index_time = truth.record_start + np.timedelta64(3 * 365, "D")
    onset = truth.onset_T2D
    at_risk = (onset.isna() | (onset > index_time)) & (truth.record_end > index_time)
    y = ((onset > index_time) & (onset <= index_time + np.timedelta64(3652, "D"))).astype(int)[at_risk]
    age = ((index_time - truth.birth_time).dt.days / 365.25)[at_risk]
    base = np.column_stack([age, truth.male[at_risk]])
    g = truth.liability_T2D[at_risk].to_numpy()[:, None]

    def features(years):
        if years == 0:
            return base
        r = rows[(rows.time < rows.subject_id.map(index_time)) & (rows.time >= rows.subject_id.map(index_time - np.timedelta64(int(years * 365), "D")))]
        means = r.groupby(["subject_id", "code"]).numeric_value.mean().unstack().reindex(y.index)
        filled = means.fillna(means.mean()).to_numpy()
        return np.column_stack([base, filled, means.isna().to_numpy()])

    half = np.arange(len(y)) % 2 == 0

    def auroc(x):
        m = sklearn.LogisticRegression(max_iter=3000).fit(x[half], y[half])
        return _auroc(m.predict_proba(x[~half])[:, 1], y.to_numpy()[~half])

    gain = {}
    for years in (0, 3):
        x = features(years)
        gain[years] = auroc(np.column_stack([x, g])) - auroc(x)
    assert gain[0] > 0.08
    assert gain[3] < gain[0] / 2
