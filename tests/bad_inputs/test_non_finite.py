"""Non-finite results are errors, not answers (#26 item 2): a weight that overflows every score,
a checkpoint with NaN weights, a config or task with an impossible number, a clip of -1, 0 or
NaN — each refused with exit 2, naming the weight, tensor, field or option; no input changed, no
output written."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import assert_refused, assert_untouched, ehrfast, tree_hash


def _score(world, out, *extra, model=None, task=None):
    return ehrfast("score", model or world.model, world.tokens / "held_out", world.labels, "--task", task or world.task, "--out", out,
                   "--quiet", *extra)


def test_a_weight_that_overflows_every_score_is_refused_naming_trait_and_weight(world, tmp_path):
    src = sorted((world.cohort / "genomics" / "scores").glob("*.txt"))[0]
    lines = src.read_text().splitlines()
    body = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 1
    fields = lines[body].split("\t")
    fields[5] = "1e308"  # effect_weight: finite, but the first sum it enters overflows
    lines[body] = "\t".join(fields)
    huge = tmp_path / "HUGE.txt"
    huge.write_text("\n".join(lines).replace(f"#pgs_id={src.stem}", "#pgs_id=HUGE") + "\n")
    before = tree_hash(world.cohort, huge)
    out = tmp_path / "out" / "PRS.parquet"
    out.parent.mkdir()
    for raw in ((), ("--raw",)):
        assert_refused(ehrfast("prs", "--genotypes", world.cohort / "genomics" / "genotypes", "--scores", huge, "--out", out, *raw,
                               "--quiet"), "trait HUGE", "1e+308", fields[0], "nothing written")
        assert list(out.parent.iterdir()) == []
    assert_untouched(before, world.cohort, huge)


@pytest.mark.parametrize("clip", ["-1", "0", "nan", "inf"])
def test_clip_must_be_a_positive_finite_number(world, tmp_path, clip):
    scores = sorted((world.cohort / "genomics" / "scores").glob("*.txt"))[:1]
    before = tree_hash(world.cohort)
    assert_refused(ehrfast("prs", "--genotypes", world.cohort / "genomics" / "genotypes", "--scores", *scores, "--out",
                           tmp_path / "p.parquet", "--clip", clip, "--quiet"), "--clip", "positive finite")
    assert_untouched(before, world.cohort)
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(world, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "nan_model"
    shutil.copytree(world.model, bad)
    state = load_file(str(bad / "model.safetensors"))
    name = sorted(k for k in state if k.endswith("attn.c_proj.weight"))[0]
    state[name] = state[name].clone().fill_(float("nan"))
    save_file(state, str(bad / "model.safetensors"))
    before = tree_hash(bad, *world.inputs())
    out = tmp_path / "pred.parquet"
    assert_refused(_score(world, out, model=bad), name, "non-finite", str(bad / "model.safetensors"))
    assert not out.exists()
    assert_untouched(before, bad, *world.inputs())


@pytest.mark.parametrize("field, value, culprit", [
    ("layer_norm_epsilon", -1, "layer_norm_epsilon"),
    ("layer_norm_epsilon", "NaN", "layer_norm_epsilon"),
    ("dropout", 1.5, "dropout"),
    ("n_head", 0, "n_head"),
    ("bogus", 1, "unknown key"),
])
def test_an_impossible_model_config_is_refused_naming_the_field(world, tmp_path, field, value, culprit):
    bad = tmp_path / "model"
    shutil.copytree(world.model, bad)
    meta = json.loads((bad / "config.json").read_text())
    meta["config"][field] = float(value) if value == "NaN" else value
    (bad / "config.json").write_text(json.dumps(meta))
    before = tree_hash(bad, *world.inputs())
    assert_refused(_score(world, tmp_path / "pred.parquet", model=bad), culprit, str(bad / "config.json"))
    assert_untouched(before, bad, *world.inputs())


@pytest.mark.parametrize("line, culprit", [
    ("temperature: .nan", "temperature"),
    ("horizon_years: .nan", "horizon_years"),
    ("horizon_years: .inf", "horizon_years"),
    ("top_p: 0", "top_p"),
    ("n_samples: -3", "n_samples"),
    ("index_offset_days: .nan", "index_offset_days"),
])
def test_a_task_with_an_impossible_number_is_refused_naming_the_field(world, tmp_path, line, culprit):
    task = tmp_path / "task.yaml"
    task.write_text(f"name: t2d\ntarget_all_of: [type 2 diabetes]\n{line}\n")
    before = tree_hash(task, *world.inputs())
    assert_refused(_score(world, tmp_path / "pred.parquet", task=task), culprit, str(task))
    assert_refused(ehrfast("label", world.cohort, "--task", task, "--out", tmp_path / "l.parquet"), culprit)
    assert not (tmp_path / "pred.parquet").exists() and not (tmp_path / "l.parquet").exists()
    assert_untouched(before, task, *world.inputs())


def test_a_diverging_run_is_stopped_and_writes_no_nan_checkpoint(world, tmp_path):
    before = tree_hash(world.tokens)
    run = tmp_path / "run"
    outcome = ehrfast("train", world.tokens, "--out", run, "--preset", "tiny", "--modality", "none", "--steps", "6", "--seq-len", "64",
                      "--lr", "1e30", "--grad-clip", "1e30", "--quiet")
    assert_refused(outcome, "diverged")
    assert not (run / "model").exists()
    assert_untouched(before, world.tokens)
