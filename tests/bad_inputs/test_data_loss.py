"""Outputs never destroy inputs: an output that equals, contains or lies inside an input is
refused before any work, ``--overwrite`` replaces only what ehrfast wrote, and a failure at the
very end (the final rename) leaves nothing behind."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrfast.io import OUTPUT_MARKER, atomic_directory, atomic_output, check_outputs

from .conftest import assert_refused, ehrfast, leftovers, tree_hash


def _predictions(path, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(40) % 3 == 0
    pq.write_table(pa.table({"subject_id": pa.array(np.arange(40), pa.int64()),
                             "prediction_time": pa.array(np.zeros(40, np.int64)).cast(pa.timestamp("us")),
                             "boolean_value": pa.array(y), "predicted_boolean_probability": pa.array(rng.random(40))}), path)


@pytest.mark.parametrize("where, culprit", [
    ("same", "is the input"),  # tokenize r/meds r/meds --overwrite deleted data/, metadata/, genomics/
    ("parent", "contains the input"),  # tokenize r/meds r --overwrite wiped unrelated files beside the input
    ("inside", "lies inside the input"),
])
def test_tokenize_never_writes_over_its_input(cohort, where, culprit):
    (cohort.parent / "notes.txt").write_text("a user's file beside the data")
    out = {"same": cohort, "parent": cohort.parent, "inside": cohort / "tokens"}[where]
    before = tree_hash(cohort.parent)
    assert_refused(ehrfast("tokenize", cohort, out, "--overwrite", "--quiet", separate_process=True), culprit, str(cohort))
    assert tree_hash(cohort.parent) == before and not leftovers(cohort.parent)


def test_evaluate_out_dir_holding_the_predictions_is_refused(tmp_path):
    d = tmp_path / "D"
    d.mkdir()
    _predictions(d / "A.parquet", 0)
    _predictions(d / "B.parquet", 1)
    before = tree_hash(d)
    assert_refused(ehrfast("evaluate", d / "A.parquet", d / "B.parquet", "--out", d, "--overwrite", "--quiet"),
                   "contains the input", "A.parquet")
    assert tree_hash(d) == before and not leftovers(tmp_path)


def test_overwrite_replaces_only_ehrfast_directories(cohort, tmp_path):
    """A directory ehrfast did not write is never replaced; one it wrote (the marker) is."""
    foreign = tmp_path / "tokens"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    before = tree_hash(foreign, cohort)
    assert_refused(ehrfast("tokenize", cohort, foreign, "--overwrite", "--quiet"), "not written by ehrfast", str(foreign))
    assert tree_hash(foreign, cohort) == before
    mine = tmp_path / "mine"
    assert ehrfast("tokenize", cohort, mine, "--quiet").returncode == 0
    assert (mine / OUTPUT_MARKER).is_file()
    assert_refused(ehrfast("tokenize", cohort, mine, "--quiet"), "already exists", str(mine))
    assert ehrfast("tokenize", cohort, mine, "--overwrite", "--quiet").returncode == 0
    assert tree_hash(cohort) == {k: v for k, v in before.items() if k.startswith(str(cohort))}
    assert not leftovers(tmp_path)


def test_label_and_score_refuse_an_existing_output_without_overwrite(cohort, tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text("name: t2d\ntarget_all_of: [type 2 diabetes]\n")
    out = tmp_path / "labels.parquet"
    assert ehrfast("label", cohort, "--task", task, "--out", out).returncode == 0
    labels = tree_hash(out)
    assert_refused(ehrfast("label", cohort, "--task", task, "--out", out), "already exists", str(out))
    assert tree_hash(out) == labels
    # score checks its outputs before it loads anything: the checkpoint need not even exist
    existing = tmp_path / "pred.parquet"
    _predictions(existing, 0)
    before = tree_hash(existing, out)
    assert_refused(ehrfast("score", tmp_path / "ckpt", tmp_path / "tokens", out, "--task", task, "--out", existing, "--quiet"),
                   "already exists", str(existing))
    assert_refused(ehrfast("score", tmp_path / "ckpt", tmp_path / "tokens", out, "--task", task, "--out", out, "--overwrite",
                           "--quiet"), "is the input", str(out))
    assert tree_hash(existing, out) == before and not leftovers(tmp_path)


def test_train_into_an_existing_run_needs_resume_or_overwrite(cohort, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.csv").write_text("someone else's run")
    before = tree_hash(run)
    args = ("train", tmp_path / "tokens", "--out", run, "--modality", "none", "--quiet")
    assert_refused(ehrfast(*args), "already exists", "--resume", str(run))
    assert_refused(ehrfast(*args, "--overwrite"), "not written by ehrfast", str(run))
    assert_refused(ehrfast(*args, "--resume"), "nothing to resume", str(run))
    assert tree_hash(run) == before
    assert_refused(ehrfast("train", cohort, "--out", cohort / "run", "--modality", "none", "--quiet"), "lies inside the input")


def test_prs_output_over_a_genotype_file_is_refused(cohort):
    genotypes = cohort / "genomics" / "genotypes"
    scores = sorted((cohort / "genomics" / "scores").glob("*.txt"))
    before = tree_hash(cohort)
    assert_refused(ehrfast("prs", "--genotypes", genotypes, "--scores", *scores, "--out", f"{genotypes}.bed", "--overwrite",
                           "--quiet"), "is the input", "genotypes.bed")
    assert_refused(ehrfast("prs", "--genotypes", genotypes, "--scores", *scores, "--out", scores[0], "--overwrite", "--quiet"),
                   "is the input")
    assert tree_hash(cohort) == before and not leftovers(cohort)


def test_symlinked_spelling_of_the_input_is_caught(cohort, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(cohort)
    before = tree_hash(cohort)
    assert_refused(ehrfast("tokenize", cohort, alias, "--overwrite", "--quiet"), "is the input")
    assert tree_hash(cohort) == before


def _failing_replace(real):
    def replace(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real(src, dst)
    return replace


def test_a_failed_final_rename_leaves_nothing(tmp_path, monkeypatch):
    """The last step of an atomic output is a rename; when it fails, the finished temporary
    file or directory is removed, and a replaced directory is put back."""
    monkeypatch.setattr(os, "replace", _failing_replace(os.replace))
    with pytest.raises(OSError, match="No space"), atomic_output(tmp_path / "x.parquet") as tmp:
        open(tmp, "w").write("done")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="No space"), atomic_directory(tmp_path / "d") as d:
        (d / "a").write_text("done")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with atomic_directory(tmp_path / "d") as d:
        (d / "a").write_text("first")
    monkeypatch.setattr(os, "replace", _failing_replace(os.replace))
    with pytest.raises(OSError, match="No space"), atomic_directory(tmp_path / "d", overwrite=True) as d:
        (d / "a").write_text("second")
    assert (tmp_path / "d" / "a").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_check_outputs_rules(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(ValueError, match="overlap"):
        check_outputs(files=[tmp_path / "a"], directories=[tmp_path], overwrite=True)
    check_outputs(files=[tmp_path / "out.parquet"], inputs=[tmp_path / "in", None])  # siblings are fine
    (tmp_path / "empty").mkdir()
    check_outputs(directories=[tmp_path / "empty"])  # an empty directory holds nothing to lose
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        check_outputs(directories=[tmp_path / "f"], overwrite=True)
    with pytest.raises(FileExistsError, match="not a regular file"):
        check_outputs(files=[tmp_path / "in"], overwrite=True)
