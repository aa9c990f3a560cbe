"""Every plink2 run of ../shared/data/prs-reference reproduced from the raw inputs (matching
included), with both backends, and the pgsc_calc match counts."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ehrfast.backends import core
from ehrfast.genomics.genotypes import open_genotypes
from ehrfast.genomics.match import MatchOptions, match_score_file
from ehrfast.genomics.score import ScoreModel, score_traits
from ehrfast.genomics.scorefile import read_score_file

BACKENDS = ["python", pytest.param("cpp", marks=pytest.mark.skipif(core is None, reason="C++ core not built"))]


@pytest.fixture(scope="module")
def ref(shared_data):
    return shared_data / "prs-reference"


def sscore(path):
    rows = list(csv.reader(open(path), delimiter="\t"))
    head = [h.lstrip("#") for h in rows[0]]
    body = rows[1:]
    col = {h: j for j, h in enumerate(head)}
    return head, col, {h: np.array([r[j] for r in body]) for h, j in col.items()}


def check_run(result, path, traits):
    head, col, data = sscore(path)
    np.testing.assert_array_equal(result.sample_ids, data["IID"])
    np.testing.assert_array_equal(result.allele_ct[:, 0], data["ALLELE_CT"].astype(float))
    if "DENOM" in col:
        np.testing.assert_array_equal(result.denom[:, 0], data["DENOM"].astype(float))
    np.testing.assert_allclose(result.named_sum[:, 0], data["NAMED_ALLELE_DOSAGE_SUM"].astype(float), rtol=1e-5)
    for j, trait in enumerate(traits):
        if f"{trait}_SUM" in col:  # plink2 prints 6 significant digits
            np.testing.assert_allclose(result.sums[:, j], data[f"{trait}_SUM"].astype(float), rtol=1e-5, atol=0)
        np.testing.assert_allclose(result.averages[:, j], data[f"{trait}_AVG"].astype(float), rtol=1e-5, atol=0)


CINECA_RUNS = [
    ("cineca_default", ScoreModel()),
    ("cineca_pgsccalc", ScoreModel()),
    ("cineca_nomeanimp", ScoreModel(mean_impute=False)),
    ("cineca_center", ScoreModel(center=True, plink2_center_quirk=True)),
    ("cineca_varstd", ScoreModel(variance_standardize=True, plink2_center_quirk=True)),
    ("cineca_dominant", ScoreModel(model="dominant")),
    ("cineca_recessive", ScoreModel(model="recessive")),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("genotypes", ["derived/cineca", "inputs/cineca/cineca_synthetic_subset"])
@pytest.mark.parametrize("run,model", CINECA_RUNS)
def test_cineca_runs_from_raw_score_file(ref, backend, genotypes, run, model):
    if genotypes.startswith("derived"):
        pytest.importorskip("pgenlib")
    src = open_genotypes(ref / genotypes)
    matches = match_score_file(read_score_file(ref / "inputs/cineca/PGS001229_22.txt"), src.variants)
    result = score_traits(src, matches, model, backend=backend, plink2_columns=True)
    check_run(result, ref / "plink2" / f"{run}.sscore", ["PGS001229"])


@pytest.mark.parametrize("score_file", ["inputs/cineca/PGS001229_22.txt", "derived/PGS001229_22_strandflip.txt"])
def test_pgsc_calc_match_counts(ref, score_file):
    src = open_genotypes(ref / "inputs/cineca/cineca_synthetic_subset")
    (m,) = match_score_file(read_score_file(ref / score_file), src.variants)
    r = m.report
    assert (r["matched"], r["ambiguous_excluded"], r["unmatched"]) == (782, 47, 6)
    flipped = score_file.endswith("strandflip.txt")
    assert r["flipped"] == (251 if flipped else 0)
    if not flipped:
        assert r["match_types"] == {"refalt": 216, "altref": 566}


@pytest.mark.parametrize("backend", BACKENDS)
def test_strandflip_file_gives_identical_scores(ref, backend):
    src = open_genotypes(ref / "inputs/cineca/cineca_synthetic_subset")
    a = score_traits(src, match_score_file(read_score_file(ref / "inputs/cineca/PGS001229_22.txt"), src.variants), backend=backend)
    b = score_traits(src, match_score_file(read_score_file(ref / "derived/PGS001229_22_strandflip.txt"), src.variants), backend=backend)
    np.testing.assert_array_equal(a.sums, b.sums)
    check_run(score_traits(src, match_score_file(read_score_file(ref / "derived/PGS001229_22_strandflip.txt"), src.variants),
                           backend=backend, plink2_columns=True), ref / "plink2/cineca_flip.sscore", ["PGS001229"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("genotypes,score_file,run", [
    ("derived/cineca", "derived/cineca_wide8.tsv", "cineca_wide8"),
    ("inputs/cineca/cineca_synthetic_subset", "derived/cineca_wide8_rsid.tsv", "cineca_bed_wide8"),
])
def test_eight_scores_at_once(ref, backend, genotypes, score_file, run):
    if genotypes.startswith("derived"):
        pytest.importorskip("pgenlib")
    src = open_genotypes(ref / genotypes)
    sf = read_score_file(ref / score_file)
    assert sf.traits == ["PGS001229", "top50", "top200", "top500", "rand1", "rand2", "rand3", "rand4"]
    matches = match_score_file(sf, src.variants)
    assert all(m.report["matched"] == 782 and m.report["matched_by"] == "id" for m in matches)
    check_run(score_traits(src, matches, backend=backend, plink2_columns=True), ref / "plink2" / f"{run}.sscore", sf.traits)


G1K_RUNS = [
    ("derived/g1k", "g1k_full", ScoreModel()),
    ("derived/g1k_missing", "g1k_missing_meanimp", ScoreModel()),
    ("derived/g1k_missing", "g1k_missing_nomeanimp", ScoreModel(mean_impute=False)),
    ("derived/g1k_dosage", "g1k_dosage", ScoreModel()),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("genotypes,run,model", G1K_RUNS)
def test_g1k_runs_from_harmonized_score_file(ref, backend, genotypes, run, model):
    pytest.importorskip("pgenlib")
    src = open_genotypes(ref / genotypes)
    (m,) = match_score_file(read_score_file(ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"), src.variants, MatchOptions(min_overlap=0))
    assert (m.report["matched"], m.report["ambiguous_excluded"], m.report["flipped"]) == (885, 65, 3)
    check_run(score_traits(src, [m], model, backend=backend, plink2_columns=True), ref / "plink2" / f"{run}.sscore", ["PGS001229"])


def test_vcf_dosages_agree_with_pgen(ref):
    pytest.importorskip("cyvcf2")
    pytest.importorskip("pgenlib")
    sf = read_score_file(ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz")
    vcf = open_genotypes(ref / "derived/g1k_dosage.vcf.gz")
    assert vcf.field == "DS"
    (m,) = match_score_file(sf, vcf.variants, MatchOptions(min_overlap=0))
    assert m.report["matched"] == 885
    result = score_traits(vcf, [m], plink2_columns=True)
    # plink2 stored the VCF's 3-decimal dosages in 1/16384 steps: agreement to that resolution
    _, _, data = sscore(ref / "plink2/g1k_dosage.sscore")
    np.testing.assert_allclose(result.sums[:, 0], data["PGS001229_SUM"].astype(float), rtol=0, atol=2e-3)
    np.testing.assert_array_equal(result.allele_ct[:, 0], data["ALLELE_CT"].astype(float))


def test_vcf_hard_calls_match_bed(ref):
    pytest.importorskip("cyvcf2")
    vcf = open_genotypes(ref / "inputs/1000g/tiny1000G.vcf.gz")
    sf = read_score_file(ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz")
    (m,) = match_score_file(sf, vcf.variants, MatchOptions(min_overlap=0))
    assert m.report["matched"] >= 880
    result = score_traits(vcf, [m], plink2_columns=True)
    assert np.isfinite(result.sums).all() and result.sums.std() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("run,model", [("g1k_missing_meanimp", ScoreModel()), ("g1k_missing_nomeanimp", ScoreModel(mean_impute=False))])
def test_bgen_with_30_percent_missing(ref, backend, run, model):
    pytest.importorskip("cbgen")
    # the BGEN stores ALT first; plink2 imported it with 'ref-last'
    src = open_genotypes(ref / "inputs/1000g/missing.bgen", ref_first=False)
    (m,) = match_score_file(read_score_file(ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"), src.variants, MatchOptions(min_overlap=0))
    assert m.report["matched"] == 885
    check_run(score_traits(src, [m], model, backend=backend, plink2_columns=True), ref / "plink2" / f"{run}.sscore", ["PGS001229"])
