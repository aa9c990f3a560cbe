"""Implausible inputs (#26 item 4): infinite (or beyond-float32) lab values, prediction times
before birth or at an age no patient reaches, an offset that puts a prediction before birth, a
negative step count — each refused, naming the row, code or option."""

from __future__ import annotations

import datetime
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import assert_refused, assert_untouched, ehrfast, tree_hash


def _meds_with_value(world, tmp_path, value: float, as_float64: bool) -> tuple:
    meds = tmp_path / "meds"
    shutil.copytree(world.cohort, meds, ignore=shutil.ignore_patterns("genomics", "ground_truth"))
    shard = sorted((meds / "data" / "train").glob("*.parquet"))[0]
    t = pq.read_table(shard)
    values = t.column("numeric_value").to_numpy(zero_copy_only=False).astype(np.float64)
    row = int(np.flatnonzero(np.isfinite(values))[3])
    values[row] = value
    kind = pa.float64() if as_float64 else pa.float32()
    column = pa.array(values, kind, mask=np.isnan(values))
    pq.write_table(t.set_column(t.schema.get_field_index("numeric_value"), pa.field("numeric_value", kind), column), shard)
    return meds, shard, row, t.column("code")[row].as_py()


@pytest.mark.parametrize("value, as_float64", [(np.inf, False), (-np.inf, False), (1e308, True)])
def test_validate_and_tokenize_refuse_infinite_lab_values(world, tmp_path, value, as_float64):
    meds, shard, row, code = _meds_with_value(world, tmp_path, value, as_float64)
    before = tree_hash(meds)
    for args in (("validate", meds), ("tokenize", meds, tmp_path / "tokens", "--quiet")):
        assert_refused(ehrfast(*args), str(shard), f"row {row}", code, "inf")
    assert not (tmp_path / "tokens").exists()
    assert_untouched(before, meds)


@pytest.mark.parametrize("year, culprit", [(1800, "before the subject's birth"), (2200, "at an age over 125 years")])
def test_prediction_times_no_patient_can_have_are_refused(world, tmp_path, year, culprit):
    t = pq.read_table(world.labels)
    times = pa.array([datetime.datetime(year, 1, 1)] * t.num_rows, t.schema.field("prediction_time").type)
    labels = tmp_path / f"labels_{year}.parquet"
    pq.write_table(t.set_column(t.schema.get_field_index("prediction_time"), "prediction_time", times), labels)
    before = tree_hash(labels, *world.inputs())
    assert_refused(ehrfast("score", world.model, world.tokens / "held_out", labels, "--task", world.task, "--out",
                           tmp_path / "p.parquet", "--quiet"), str(labels), "row 0", culprit)
    assert not (tmp_path / "p.parquet").exists()
    assert_untouched(before, labels, *world.inputs())


def test_an_offset_that_puts_the_prediction_before_birth_is_refused(world, tmp_path):
    task = tmp_path / "early.yaml"
    task.write_text('name: early\ntarget_regex: ["E11"]\nindex_offset_days: -36500\n')
    before = tree_hash(task, world.cohort)
    assert_refused(ehrfast("label", world.cohort, "--task", task, "--out", tmp_path / "l.parquet"), "index_offset_days -36500",
                   "before their birth")
    assert not (tmp_path / "l.parquet").exists()
    assert_untouched(before, task, world.cohort)


@pytest.mark.parametrize("option, value", [("--steps", "-3"), ("--batch-size", "0"), ("--lr", "nan"), ("--beta2", "1")])
def test_train_refuses_impossible_settings(world, tmp_path, option, value):
    before = tree_hash(world.tokens)
    assert_refused(ehrfast("train", world.tokens, "--out", tmp_path / "run", "--modality", "none", option, value, "--quiet"),
                   option.lstrip("-").replace("-", "_"))
    assert not (tmp_path / "run").exists()
    assert_untouched(before, world.tokens)
