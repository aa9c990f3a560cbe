"""The MEDS validator: accepts real datasets, rejects broken ones with errors that say where."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrfast.data.meds import MedsValidationError, validate_meds_dataset


@pytest.mark.parametrize("name,subjects,rows", [("mimic-iv-demo-meds", 100, 241_571), ("synthea27-meds", 27, 4_469)])
def test_real_datasets_validate(shared_data, name, subjects, rows):
    s = validate_meds_dataset(shared_data / name)
    assert (s.n_subjects, s.n_rows) == (subjects, rows)


def _dataset(tmp_path, rows, schema=None, meds_version="0.4.1"):
    root = tmp_path / "meds"
    (root / "data" / "train").mkdir(parents=True)
    (root / "metadata").mkdir()
    schema = schema or pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.string()), ("numeric_value", pa.float32())])
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, root / "data" / "train" / "0.parquet")
    (root / "metadata" / "dataset.json").write_text(json.dumps({"dataset_name": "t", "meds_version": meds_version}))
    codes = sorted({r["code"] for r in rows if r.get("code")})
    pq.write_table(pa.table({"code": pa.array(codes, pa.string())}), root / "metadata" / "codes.parquet")
    return root


def _row(s, t, code="A", v=None):
    return {"subject_id": s, "time": None if t is None else datetime(2020, 1, t), "code": code, "numeric_value": v}


def test_valid_small(tmp_path):
    root = _dataset(tmp_path, [_row(1, None, "GENDER//F"), _row(1, 1), _row(1, 1, "B"), _row(1, 2), _row(2, None), _row(2, 3)])
    assert validate_meds_dataset(root).n_subjects == 2


def test_unsorted_time_names_row(tmp_path):
    root = _dataset(tmp_path, [_row(1, 2), _row(1, 1)])
    with pytest.raises(MedsValidationError, match=r"0\.parquet: row 1 is out of order in column 'time'"):
        validate_meds_dataset(root)


def test_unsorted_subjects(tmp_path):
    root = _dataset(tmp_path, [_row(2, 1), _row(1, 1)])
    with pytest.raises(MedsValidationError, match="column 'subject_id'"):
        validate_meds_dataset(root)


def test_static_row_after_timed_row(tmp_path):
    root = _dataset(tmp_path, [_row(1, 1), _row(1, None)])
    with pytest.raises(MedsValidationError, match="row 1 is out of order"):
        validate_meds_dataset(root)


def test_wrong_type(tmp_path):
    schema = pa.schema([("subject_id", pa.int32()), ("time", pa.timestamp("us")), ("code", pa.string())])
    root = _dataset(tmp_path, [_row(1, 1)], schema=schema)
    with pytest.raises(MedsValidationError, match="'subject_id' has type int32"):
        validate_meds_dataset(root)


def test_missing_column(tmp_path):
    schema = pa.schema([("subject_id", pa.int64()), ("code", pa.string())])
    root = _dataset(tmp_path, [{"subject_id": 1, "code": "A"}], schema=schema)
    with pytest.raises(MedsValidationError, match="missing required column 'time'"):
        validate_meds_dataset(root)


def test_null_code(tmp_path):
    root = _dataset(tmp_path, [_row(1, 1), _row(1, 2, code=None)])
    with pytest.raises(MedsValidationError, match="row 1: column 'code' is null"):
        validate_meds_dataset(root)


def test_subject_in_two_shards(tmp_path):
    root = _dataset(tmp_path, [_row(1, 1)])
    shutil.copy(root / "data" / "train" / "0.parquet", root / "data" / "train" / "1.parquet")
    with pytest.raises(MedsValidationError, match="subject 1 also appears in"):
        validate_meds_dataset(root)


def test_code_missing_from_metadata(tmp_path):
    root = _dataset(tmp_path, [_row(1, 1)])
    pq.write_table(pa.table({"code": pa.array(["Z"])}), root / "metadata" / "codes.parquet")
    with pytest.raises(MedsValidationError, match="not listed"):
        validate_meds_dataset(root)


def test_dictionary_code_and_extra_columns_accepted(tmp_path):
    schema = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.dictionary(pa.int32(), pa.string())), ("hadm_id", pa.int64())])
    root = _dataset(tmp_path, [{"subject_id": 1, "time": datetime(2020, 1, 1), "code": "A", "hadm_id": 5}], schema=schema)
    assert validate_meds_dataset(root).n_rows == 1


def test_not_a_dataset(tmp_path):
    with pytest.raises(MedsValidationError, match="no data/ directory"):
        validate_meds_dataset(tmp_path)


def test_validate_warns_about_events_after_death(shared_data, small_cohort, tmp_path):
    """#22 item 7: the synthetic cohort has no event after a death; the MIMIC demo does (deaths
    known only as a date sit at 00:00), and validate says so, naming a subject."""
    import pyarrow as pa

    from ehrfast.data.meds import subjects_with_events_after_death, validate_meds_dataset

    root, _, _ = small_cohort
    assert validate_meds_dataset(root).events_after_death == 0
    mimic = validate_meds_dataset(shared_data / "mimic-iv-demo-meds")
    assert mimic.events_after_death > 0 and f"subject {mimic.example_after_death}" in mimic.describe()
    t = pa.table({"subject_id": pa.array([1, 1, 1, 2, 2, 3], pa.int64()),
                  "time": pa.array([None, 10, 20, 5, 5, 7], pa.int64()).cast(pa.timestamp("us")),
                  "code": ["GENDER//F", "MEDS_DEATH", "LAB//x", "LAB//y", "MEDS_DEATH", "LAB//z"]})
    assert subjects_with_events_after_death(t).tolist() == [1]  # subject 2's same-time row is not after
