"""MEDS both ways, against the official ``meds`` schemas: ehrfast's own datasets conform;
datasets ehrfast reads but MEDS rejects are called so; flat ``data/*.parquet`` shards with
splits from ``subject_splits.parquet`` read like split directories; ns / time-zone-aware
times read with ``cast_timestamps``."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ehrfast.baselines.rows import read_matching_rows
from ehrfast.data.meds import MedsValidationError, data_files, strict_deviations, validate_meds_dataset
from ehrfast.labels import make_labels
from ehrfast.task import Task
from ehrfast.tokenize import TokenizedDataset, tokenize_dataset

meds = pytest.importorskip("meds")


def test_synthetic_cohort_is_meds_by_the_official_schemas(small_cohort):
    root, _, _ = small_cohort
    for files in data_files(root).values():
        for f in files:
            meds.DataSchema.validate(pq.read_table(f.path))  # the table, not just the schema: nulls and types
    meds.CodeMetadataSchema.validate(pq.read_table(root / "metadata" / "codes.parquet"))
    meds.SubjectSplitSchema.validate(pq.read_table(root / "metadata" / "subject_splits.parquet"))
    ds = json.loads((root / "metadata" / "dataset.json").read_text())
    meds.DatasetMetadataSchema.validate(ds)
    created = datetime.datetime.fromisoformat(ds["created_at"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(days=1)  # a real time, not 1970
    s = validate_meds_dataset(root)
    assert s.conformant and "valid MEDS (checked with meds" in s.describe()


@pytest.fixture
def synthea(shared_data, tmp_path):
    root = tmp_path / "synthea"
    shutil.copytree(shared_data / "synthea27-meds", root)
    return root


def _rewrite(root, change):
    for f in sorted((root / "data").rglob("*.parquet")):
        pq.write_table(change(pq.read_table(f)), f)


def _set(table, name, column):
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, column) if i >= 0 else table.append_column(name, column)


DEVIATIONS = {
    "float64 values": (lambda t: _set(t, "numeric_value", t.column("numeric_value").cast(pa.float64())), "numeric_value"),
    "large_string codes": (lambda t: _set(t, "code", t.column("code").cast(pa.large_string())), "code"),
    "dictionary codes": (lambda t: _set(t, "code", pc.dictionary_encode(t.column("code"))), "code"),
    "string text": (lambda t: _set(t, "text_value", pa.nulls(t.num_rows, pa.string())), "text_value"),
}


@pytest.mark.parametrize("case", list(DEVIATIONS))
def test_readable_but_not_meds(synthea, case):
    change, column = DEVIATIONS[case]
    _rewrite(synthea, change)
    schema = pq.read_schema(next((synthea / "data").rglob("*.parquet")))
    with pytest.raises(Exception, match=column):
        meds.DataSchema.validate(schema)  # the official verdict...
    assert any(column in d for d in strict_deviations("data", schema))  # ...and ehrfast's copy agrees
    s = validate_meds_dataset(synthea)
    assert not s.conformant and len(s.deviations) == 3  # one per shard
    text = s.describe()
    assert "readable by ehrfast, not MEDS-conformant" in text and "valid MEDS" not in text and column in text


def test_strict_copy_agrees_with_meds_on_conformant_schemas(synthea):
    schema = pq.read_schema(synthea / "data" / "train" / "0.parquet")
    meds.DataSchema.validate(schema)
    assert strict_deviations("data", schema) == []
    extra = schema.remove(schema.get_field_index("text_value")).append(pa.field("unit", pa.string()))  # optional column absent, extra present
    meds.DataSchema.validate(extra)
    assert strict_deviations("data", extra) == []


def _flat(source, root):
    """``source``'s shards as two flat files (subjects of all splits mixed), same metadata."""
    shutil.copytree(source / "metadata", root / "metadata")
    (root / "data").mkdir(parents=True)
    table = pa.concat_tables([pq.read_table(f) for f in sorted((source / "data").rglob("*.parquet"))])
    order = pc.sort_indices(table, [("subject_id", "ascending")])  # stable: keeps each subject's row order
    table = table.take(order)
    half = table.num_rows // 2
    cut = half + int(np.argmax(table.column("subject_id").to_numpy()[half:] != table.column("subject_id")[half].as_py()))
    pq.write_table(table.slice(0, cut), root / "data" / "0.parquet")
    pq.write_table(table.slice(cut), root / "data" / "1.parquet")
    return root


def test_flat_shards_read_like_split_directories(synthea, tmp_path):
    flat = _flat(synthea, tmp_path / "flat")
    a, b = validate_meds_dataset(synthea), validate_meds_dataset(flat)
    assert b.conformant and (b.n_subjects, b.n_rows, b.rows_per_split, b.subjects_per_split) == \
        (a.n_subjects, a.n_rows, a.rows_per_split, a.subjects_per_split)
    shards = data_files(flat)
    assert sorted(shards) == ["held_out", "train", "tuning"] and len(shards["train"]) == 2  # each file under every split it holds
    assert all(f.subjects is not None for files in shards.values() for f in files)
    tokenize_dataset(synthea, tmp_path / "tok_dirs", progress=False)
    tokenize_dataset(flat, tmp_path / "tok_flat", progress=False)
    for split in ("train", "tuning", "held_out"):
        x, y = TokenizedDataset(tmp_path / "tok_dirs" / split), TokenizedDataset(tmp_path / "tok_flat" / split)
        assert sorted(x.subject_ids.tolist()) == sorted(y.subject_ids.tolist())
        for s in x.subject_ids.tolist():
            for u, v in zip(x.timeline(x.row(s)), y.timeline(y.row(s))):
                np.testing.assert_array_equal(u, v)
    task = Task(name="death", target_regex="^MEDS_DEATH$", horizon_years=5)
    make_labels(synthea, task, tmp_path / "a.parquet")
    make_labels(flat, task, tmp_path / "b.parquet")
    la, lb = (pq.read_table(tmp_path / p).sort_by([("subject_id", "ascending")]) for p in ("a.parquet", "b.parquet"))
    assert la.equals(lb)


def test_flat_shards_need_a_split_for_every_subject(synthea, tmp_path):
    flat = _flat(synthea, tmp_path / "flat")
    splits = pq.read_table(flat / "metadata" / "subject_splits.parquet")
    pq.write_table(splits.slice(1), flat / "metadata" / "subject_splits.parquet")
    with pytest.raises(MedsValidationError, match=rf"subject {splits.column('subject_id')[0].as_py()} of .*0.parquet has no split"):
        validate_meds_dataset(flat)
    (flat / "metadata" / "subject_splits.parquet").unlink()
    with pytest.raises(MedsValidationError, match="flat data/\\*.parquet shards need .*subject_splits.parquet"):
        data_files(flat)


@pytest.mark.parametrize("unit,tz", [("ns", None), ("us", "UTC"), ("ns", "Europe/Berlin")])
def test_cast_timestamps(synthea, tmp_path, unit, tz):
    original = tmp_path / "original"
    shutil.copytree(synthea, original)
    _rewrite(synthea, lambda t: _set(t, "time", t.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp(unit, tz=tz))))
    with pytest.raises(MedsValidationError, match="--cast-timestamps"):
        validate_meds_dataset(synthea)
    with pytest.raises(MedsValidationError, match="MEDS requires timestamp"):  # baselines read no cast: an error, not shifted times
        read_matching_rows(synthea, {"birth": "^MEDS_BIRTH$"})
    s = validate_meds_dataset(synthea, cast_timestamps=True)
    assert not s.conformant and "time" in s.deviations[0]
    tokenize_dataset(original, tmp_path / "a", progress=False)
    tokenize_dataset(synthea, tmp_path / "b", cast_timestamps=True, progress=False)
    for split in ("train", "held_out"):
        x, y = TokenizedDataset(tmp_path / "a" / split), TokenizedDataset(tmp_path / "b" / split)
        for s_id in x.subject_ids.tolist():
            for u, v in zip(x.timeline(x.row(s_id)), y.timeline(y.row(s_id))):
                np.testing.assert_array_equal(u, v)  # instants read as UTC µs: the same timelines


def test_validate_cli_says_which(synthea):
    _rewrite(synthea, DEVIATIONS["float64 values"][0])
    run = subprocess.run([sys.executable, "-m", "ehrfast.cli", "validate", str(synthea)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "readable by ehrfast, not MEDS-conformant" in run.stdout and "numeric_value" in run.stdout
