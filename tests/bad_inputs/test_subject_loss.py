"""Silent subject loss (#26 item 3): every join reports matched / unmatched counts, an empty or
nearly empty join is refused (``--min-overlap``, ``--min-subject-overlap``, ``--min-prs-overlap``),
and no standardization is fitted on fewer samples than ``MIN_STANDARDIZATION_SAMPLES``."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrfast.genomics.prs import MIN_STANDARDIZATION_SAMPLES

from .conftest import assert_refused, assert_untouched, ehrfast, tree_hash


def _genotypes_with_iids(world, tmp_path, keep_real: int):
    """A copy of the cohort's PLINK fileset whose .fam keeps ``keep_real`` real subject ids and
    gives every other sample an id no MEDS subject has."""
    src = world.cohort / "genomics" / "genotypes"
    dst = tmp_path / "geno" / "g"
    dst.parent.mkdir()
    for ext in (".bed", ".bim"):
        shutil.copy(f"{src}{ext}", f"{dst}{ext}")
    rows = [line.split() for line in open(f"{src}.fam")]
    for k, r in enumerate(rows):
        if k >= keep_real:
            r[0] = r[1] = str(900_000_000 + k)
    open(f"{dst}.fam", "w").write("".join(" ".join(r) + "\n" for r in rows))
    return dst, len(rows)


def _scores(world):
    return sorted((world.cohort / "genomics" / "scores").glob("*.txt"))[:2]


def test_score_refuses_labels_whose_subjects_are_mostly_not_in_the_tokens(world, tmp_path):
    t = pq.read_table(world.labels)
    sid = t.column("subject_id").to_numpy().copy()
    sid[: int(len(sid) * 0.6)] += 10**9  # 60 % of the rows name subjects that do not exist anywhere
    labels = tmp_path / "labels.parquet"
    pq.write_table(t.set_column(0, "subject_id", pa.array(sid)), labels)
    before = tree_hash(labels, *world.inputs())
    out = tmp_path / "pred.parquet"
    args = ("score", world.model, world.tokens / "held_out", labels, "--task", world.task, "--out", out, "--quiet")
    assert_refused(ehrfast(*args), "label rows matched", "unmatched", "--min-overlap")
    assert not out.exists()
    done = ehrfast(*args, "--min-overlap", "0.3")  # lowered on purpose: scored, and the loss is said
    assert done.returncode == 0, done.stderr
    assert f"{int(len(sid) * 0.6):,} unmatched" in done.stderr and "label rows without a subject here" in done.stdout
    assert_untouched(before, labels, *world.inputs())


def test_label_rows_of_other_splits_are_not_counted_as_lost(world, tmp_path):
    """Labels of every split scored against TOKENS/held_out: the train/tuning rows belong to the
    sibling splits (skipped by design), not to nobody."""
    labels = tmp_path / "all.parquet"
    assert ehrfast("label", world.cohort, "--task", world.task, "--out", labels).returncode == 0
    done = ehrfast("score", world.model, world.tokens / "held_out", labels, "--task", world.task, "--out", tmp_path / "p.parquet",
                   "--quiet")
    assert done.returncode == 0, done.stderr
    assert "unmatched" not in done.stderr


def test_label_with_an_unknown_split_is_refused(world, tmp_path):
    before = tree_hash(*world.inputs())
    assert_refused(ehrfast("label", world.cohort, "--task", world.task, "--out", tmp_path / "l.parquet", "--splits", "nope"),
                   "nope", "held_out")
    assert not (tmp_path / "l.parquet").exists()
    assert_untouched(before, *world.inputs())


def test_a_duplicate_sample_id_in_the_fam_is_refused(world, tmp_path):
    geno, n = _genotypes_with_iids(world, tmp_path, keep_real=10**9)
    rows = [line.split() for line in open(f"{geno}.fam")]
    rows[1][:2] = rows[0][:2]  # sample 2 repeats sample 1's (FID, IID)
    open(f"{geno}.fam", "w").write("".join(" ".join(r) + "\n" for r in rows))
    before = tree_hash(geno.parent)
    assert_refused(ehrfast("prs", "--genotypes", geno, "--scores", *_scores(world), "--out", tmp_path / "p.parquet", "--quiet"),
                   f"{rows[0][1]}", "g.fam")
    assert_untouched(before, geno.parent)
    assert not (tmp_path / "p.parquet").exists()


def test_a_sample_map_that_matches_nothing_is_refused(world, tmp_path):
    mapping = tmp_path / "map.tsv"
    mapping.write_text("IID\tsubject_id\nNOT_A_SAMPLE\t7\nALSO_NOT\t8\n")
    before = tree_hash(mapping, world.cohort)
    assert_refused(ehrfast("prs", "--genotypes", world.cohort / "genomics" / "genotypes", "--scores", *_scores(world), "--out",
                           tmp_path / "p.parquet", "--sample-map", mapping, "--quiet"), "none of the", "genotype samples", "map.tsv")
    assert not (tmp_path / "p.parquet").exists()
    assert_untouched(before, mapping, world.cohort)


def test_prs_with_meds_where_one_sample_is_a_subject_is_refused(world, tmp_path):
    """1 of ~150 genotype samples in the MEDS data: before, "150 mapped" and a standardization
    fitted on n = 1."""
    geno, n = _genotypes_with_iids(world, tmp_path, keep_real=1)
    before = tree_hash(geno.parent, world.cohort)
    out = tmp_path / "p.parquet"
    assert_refused(ehrfast("prs", "--genotypes", geno, "--scores", *_scores(world), "--out", out, "--meds", world.cohort, "--quiet"),
                   f"only 1 of {n}", "--min-subject-overlap")
    assert not out.exists()
    # lowered on purpose: the standardization still needs its minimum of samples in the train split
    assert_refused(ehrfast("prs", "--genotypes", geno, "--scores", *_scores(world), "--out", out, "--meds", world.cohort,
                           "--min-subject-overlap", "0", "--quiet"), "standardization", str(MIN_STANDARDIZATION_SAMPLES), "--raw")
    assert not out.exists()
    assert_untouched(before, geno.parent, world.cohort)


def test_train_with_prs_for_almost_no_subject_is_refused(world, tmp_path):
    geno, n = _genotypes_with_iids(world, tmp_path, keep_real=1)
    prs = tmp_path / "PRS.parquet"
    done = ehrfast("prs", "--genotypes", geno, "--scores", *_scores(world), "--out", prs, "--raw", "--quiet")
    assert done.returncode == 0, done.stderr
    before = tree_hash(prs, world.tokens)
    run = tmp_path / "run"
    assert_refused(ehrfast("train", world.tokens, "--out", run, "--preset", "tiny", "--modality", "cross", "--prs", prs, "--steps", "2",
                           "--seq-len", "64", "--quiet"), "training subjects matched", "--min-prs-overlap")
    assert not run.exists()  # a refused run leaves no directory behind
    assert_untouched(before, prs, world.tokens)


def test_the_prs_summary_reports_the_meds_join(world, tmp_path):
    done = ehrfast("prs", "--genotypes", world.cohort / "genomics" / "genotypes", "--scores", *_scores(world), "--out",
                   tmp_path / "p.parquet", "--meds", world.cohort, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "genotype samples matched subjects of" in done.stdout
    assert np.isfinite(pq.read_table(tmp_path / "p.parquet").select([2]).column(0).to_numpy(zero_copy_only=False).astype(float)).all()
