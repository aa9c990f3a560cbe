"""No tracebacks for ordinary mistakes (#26 item 5): each is one line naming the file and the
field — task files that are not what they should be, corrupt or truncated files, a directory
where files go, token ids outside the vocabulary, a null prediction time, a full disk."""

from __future__ import annotations

import errno
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import assert_refused, assert_untouched, ehrfast, leftovers, tree_hash


def _score(world, out, labels=None, tokens=None, task=None, *extra):
    return ehrfast("score", world.model, tokens or world.tokens / "held_out", labels or world.labels, "--task", task or world.task,
                   "--out", out, "--quiet", *extra)


@pytest.mark.parametrize("text, culprits", [
    ('name: t\ntarget_regex: ["E11"]\nhorizon: 5\n', ("unknown key", "horizon")),
    ("name: t\ntarget_regex: 5\n", ("target_regex", "string")),
    ('name: t\ntarget_regex: ["E11"]\nhorizon_years: 1e-3\n', ("horizon_years", "YAML reads 1e-3 as text", "1.0e-3")),
    ('name: t\ntarget_regex: ["E11"]\nn_samples: "10"\n', ("n_samples", "drop the quotes")),
    ('name: t\ntarget_regex: ["E11"\nn_samples: 10\n', ("not valid YAML", "line 3")),
    ("- just\n- a list\n", ("one mapping",)),
])
def test_task_file_mistakes_name_the_file_and_the_field(world, tmp_path, text, culprits):
    task = tmp_path / "task.yaml"
    task.write_text(text)
    before = tree_hash(task, *world.inputs())
    outcome = _score(world, tmp_path / "p.parquet", task=task)
    assert_refused(outcome, str(task), *culprits)
    assert len(outcome.stderr.strip().splitlines()) == 1  # one line
    assert_untouched(before, task, *world.inputs())


@pytest.mark.parametrize("damage, culprit", [
    (lambda b: b[:200], "not a readable label file"),  # truncated: "Parquet magic bytes not found" used to come without the path
    (lambda b: b[:100] + b"\xff" * 40 + b[140:], "not a readable label file"),  # a corrupt page
    (lambda b: b"PAR1" + b"\0" * 64 + b"PAR1", "not a readable label file"),
])
def test_a_damaged_label_file_is_named(world, tmp_path, damage, culprit):
    bad = tmp_path / "labels.parquet"
    bad.write_bytes(damage(world.labels.read_bytes()))
    before = tree_hash(bad, *world.inputs())
    outcome = _score(world, tmp_path / "p.parquet", labels=bad)
    assert_refused(outcome, str(bad), culprit)
    assert len(outcome.stderr.strip().splitlines()) == 1
    assert_untouched(before, bad, *world.inputs())


def test_a_missing_label_file_says_so(world, tmp_path):
    before = tree_hash(*world.inputs())
    assert_refused(_score(world, tmp_path / "p.parquet", labels=tmp_path / "lab" / "nope.parquet"), "nope.parquet", "no such label file")
    assert_untouched(before, *world.inputs())


def test_a_null_prediction_time_names_the_row(world, tmp_path):
    t = pq.read_table(world.labels)
    times = t.column("prediction_time").to_pylist()
    times[2] = None
    bad = tmp_path / "labels.parquet"
    pq.write_table(t.set_column(t.schema.get_field_index("prediction_time"), "prediction_time",
                                pa.array(times, t.schema.field("prediction_time").type)), bad)
    before = tree_hash(bad, *world.inputs())
    assert_refused(_score(world, tmp_path / "p.parquet", labels=bad), str(bad), "row 2", "prediction_time is null")
    assert_untouched(before, bad, *world.inputs())


def test_scores_pointing_at_a_directory_is_refused(world, tmp_path):
    scores = world.cohort / "genomics" / "scores"
    before = tree_hash(world.cohort)
    assert_refused(ehrfast("prs", "--genotypes", world.cohort / "genomics" / "genotypes", "--scores", scores, "--out",
                           tmp_path / "p.parquet", "--quiet"), str(scores), "is a directory", "--scores")
    assert_untouched(before, world.cohort)


@pytest.mark.parametrize("content", [b"garbage\nnot a vcf\n", b"##fileformat=VCFv4.2\n#CHROM\tPOS\n1\tx\n", bytes(range(256)) * 4])
def test_a_garbage_vcf_is_refused_naming_it(world, tmp_path, content):
    vcf = tmp_path / "g.vcf"
    vcf.write_bytes(content)
    scores = sorted((world.cohort / "genomics" / "scores").glob("*.txt"))[:1]
    before = tree_hash(vcf, *scores)
    assert_refused(ehrfast("prs", "--genotypes", vcf, "--scores", *scores, "--out", tmp_path / "p.parquet", "--quiet"), str(vcf))
    assert not (tmp_path / "p.parquet").exists()
    assert_untouched(before, vcf, *scores)


def test_a_binary_score_file_is_refused_naming_it(world, tmp_path):
    bad = tmp_path / "PGS.txt"
    bad.write_bytes(b"#pgs_id=X\n" + bytes(range(128, 256)) * 3)
    before = tree_hash(bad, world.cohort)
    assert_refused(ehrfast("prs", "--genotypes", world.cohort / "genomics" / "genotypes", "--scores", bad, "--out",
                           tmp_path / "p.parquet", "--quiet"), str(bad), "UTF-8")
    assert_untouched(before, bad, world.cohort)


def test_token_ids_outside_the_vocabulary_are_refused(world, tmp_path):
    tokens = tmp_path / "tokens"
    shutil.copytree(world.tokens, tokens)
    arr = np.load(tokens / "held_out" / "tokens.npy", mmap_mode="r+")
    arr[5] = 999_999
    arr.flush()
    del arr
    before = tree_hash(tokens)
    assert_refused(_score(world, tmp_path / "p.parquet", tokens=tokens / "held_out"), "tokens.npy", "token 5", "999999",
                   "outside the vocabulary")
    assert_untouched(before, tokens)


def test_a_truncated_token_array_is_named(world, tmp_path):
    tokens = tmp_path / "tokens"
    shutil.copytree(world.tokens, tokens)
    with open(tokens / "held_out" / "tokens.npy", "r+b") as fh:
        fh.truncate(1000)
    before = tree_hash(tokens)
    assert_refused(_score(world, tmp_path / "p.parquet", tokens=tokens / "held_out"), "tokens.npy", "truncated")
    assert_untouched(before, tokens)


@pytest.mark.parametrize("args, culprits", [
    (("synth", "--out", "{tmp}/c", "--subjects", "20", "--shard-size", "0", "--quiet"), ("shard_size", "positive integer")),
    (("score", "{model}", "{tokens}", "{labels}", "--task", "{task}", "--out", "{tmp}/p.parquet", "--device", "banana", "--quiet"),
     ("device 'banana'", "--device", "not a torch device")),
    (("train", "{tokens_root}", "--out", "{tmp}/run", "--modality", "none", "--device", "banana", "--quiet"), ("device 'banana'",)),
])
def test_options_out_of_range_are_named(world, tmp_path, args, culprits):
    names = {"tmp": tmp_path, "model": world.model, "tokens": world.tokens / "held_out", "tokens_root": world.tokens,
             "labels": world.labels, "task": world.task}
    before = tree_hash(*world.inputs())
    assert_refused(ehrfast(*(a.format(**names) for a in args)), *culprits)
    assert not (tmp_path / "run").exists() and not (tmp_path / "p.parquet").exists()
    assert_untouched(before, *world.inputs())


def test_a_full_disk_is_one_line_and_leaves_nothing(world, tmp_path, monkeypatch, capsys):
    """ENOSPC while the output is written: an OSError printed as one line (exit 2), and the
    half-written temporary removed (in-process: the disk is filled by raising from the writer)."""
    import pyarrow.parquet as parquet

    from ehrfast import cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(parquet, "write_table", full)
    out = tmp_path / "l.parquet"
    before = tree_hash(*world.inputs())
    code = cli.main(["label", str(world.cohort), "--task", str(world.task), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    assert not out.exists() and not leftovers(tmp_path)
    assert_untouched(before, *world.inputs())
