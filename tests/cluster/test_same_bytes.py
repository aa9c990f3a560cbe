"""``--cluster`` writes the same bytes as one process: tokenize, prs and label on the synthetic
cohort and on the MIMIC-IV demo, through the command line (``local:2``, as users run it) and
through the Python API with a caller's Client."""

from __future__ import annotations

import glob

import pytest

from ehrfast.cli import main
from ehrfast.genomics import PRSOptions, compute_prs
from ehrfast.genomics.match import MatchOptions
from ehrfast.labels import make_labels
from ehrfast.tokenize import tokenize_dataset

from .conftest import assert_same_files


def run(*args) -> None:
    assert main([str(a) for a in args]) == 0


def test_tokenize_command_on_two_workers_writes_the_same_dataset(cohort, tmp_path):
    run("tokenize", cohort, tmp_path / "one", "--quiet")
    run("tokenize", cohort, tmp_path / "two", "--quiet", "--cluster", "local:2")
    assert_same_files(tmp_path / "one", tmp_path / "two")
    assert not list((tmp_path / "two").rglob(".parts")), "the task part files are removed"


@pytest.mark.parametrize("extra", [("--preset", "ethos_mimic"), ()], ids=["ethos_mimic", "default"])
def test_tokenize_mimic_demo_same_dataset(mimic, tmp_path, client, extra):
    kwargs = {"preset": extra[1]} if extra else {}
    tokenize_dataset(mimic, tmp_path / "one", progress=False, **kwargs)
    tokenize_dataset(mimic, tmp_path / "two", progress=False, cluster=client, **kwargs)
    assert_same_files(tmp_path / "one", tmp_path / "two")


def test_tokenize_with_a_fitted_vocabulary(cohort, tmp_path, client):
    tokenize_dataset(cohort, tmp_path / "fit", progress=False)
    tokenize_dataset(cohort, tmp_path / "one", vocab_from=tmp_path / "fit", progress=False)
    tokenize_dataset(cohort, tmp_path / "two", vocab_from=tmp_path / "fit", progress=False, cluster=client)
    assert_same_files(tmp_path / "one", tmp_path / "two")


def test_prs_command_on_two_workers_writes_the_same_scores(cohort, tmp_path):
    scores = sorted(glob.glob(str(cohort / "genomics" / "scores" / "*")))
    common = ["--genotypes", cohort / "genomics" / "genotypes", "--scores", *scores, "--meds", cohort, "--variant-block", "250", "--quiet"]
    run("prs", *common, "--out", tmp_path / "one" / "PRS.parquet")
    run("prs", *common, "--out", tmp_path / "two" / "PRS.parquet", "--cluster", "local:2")
    assert_same_files(tmp_path / "one", tmp_path / "two")


PRS_CASES = {
    # 8 weight columns over one variant set: the dense (matrix) kernel, which a block must keep
    "bed_dense": ("inputs/cineca/cineca_synthetic_subset.bed", ["derived/cineca_wide8_rsid.tsv"], "parquet", {}),
    "bed_sscore": ("inputs/cineca/cineca_synthetic_subset.bed", ["derived/cineca_wide8_rsid.tsv"], "sscore", {}),
    # tasks of variant block x trait group: 3 + 3 + 2 traits of the wide file, and the counts' pass
    "bed_trait_groups": ("inputs/cineca/cineca_synthetic_subset.bed", ["derived/cineca_wide8_rsid.tsv"], "sscore", {"trait_block": 3}),
    "pgen_dosage": ("derived/g1k_dosage.pgen", ["derived/g1k_matched.tsv"], "parquet", {}),
    "vcf_pgsc_calc": ("derived/g1k_dosage.vcf.gz", ["derived/g1k_matched.tsv"], "txt.gz", {}),
    "bgen_missing": ("inputs/1000g/missing.bgen", ["inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"], "sscore",
                     {"bgen_ref_last": True, "min_overlap": 0.0}),  # 885 of 51,209 rows are in this panel
}


@pytest.mark.parametrize("case", sorted(PRS_CASES))
def test_prs_on_real_genotypes_same_output(shared_data, tmp_path, client, case):
    geno, scores, fmt, kwargs = PRS_CASES[case]
    ref = shared_data / "prs-reference"
    kwargs = dict(kwargs)
    options = PRSOptions(variant_block=97, trait_block=kwargs.pop("trait_block", None), raw=True,
                         match=MatchOptions(min_overlap=kwargs.pop("min_overlap", 0.75)))  # many odd blocks
    name = "aggregated_scores.txt.gz" if fmt == "txt.gz" else f"out.{fmt}"
    for out, cluster in (("one", None), ("two", client)):
        compute_prs(ref / geno, [ref / s for s in scores], tmp_path / out / name, options, progress=False, cluster=cluster, **kwargs)
    assert_same_files(tmp_path / "one", tmp_path / "two")


def test_label_command_on_two_workers_writes_the_same_labels(cohort, tmp_path):
    task = tmp_path / "t2d.yaml"
    task.write_text("name: t2d_10y\ntarget_regex: ['type 2 diabetes']\nmatch_descriptions: true\nhorizon_years: 10.0\n")
    run("label", cohort, "--task", task, "--out", tmp_path / "one" / "labels.parquet")
    run("label", cohort, "--task", task, "--out", tmp_path / "two" / "labels.parquet", "--cluster", "local:2")
    assert_same_files(tmp_path / "one", tmp_path / "two")


@pytest.mark.parametrize("task", ["hospital_mortality", "icu_admission", "readmission_30d"])
def test_event_labels_on_mimic_demo_same_labels(mimic, tmp_path, client, task):
    make_labels(mimic, task, tmp_path / "one" / "labels.parquet")
    make_labels(mimic, task, tmp_path / "two" / "labels.parquet", cluster=client)
    assert_same_files(tmp_path / "one", tmp_path / "two")


def test_incidence_labels_on_mimic_demo_same_labels(mimic, tmp_path, client):
    task = tmp_path / "death.yaml"
    task.write_text("name: death_1y\ntarget_regex: ['^MEDS_DEATH$']\nhorizon_years: 1.0\n")
    make_labels(mimic, task, tmp_path / "one" / "labels.parquet")
    make_labels(mimic, task, tmp_path / "two" / "labels.parquet", cluster=client)
    assert_same_files(tmp_path / "one", tmp_path / "two")
