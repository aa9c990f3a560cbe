"""C++ and Python backends give identical outputs on random valid MEDS data and on the real
datasets; invalid inputs fail with a clear error before any output is written."""

from __future__ import annotations

import filecmp
import json
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrfast.backends import core
from ehrfast.data.meds import MedsValidationError
from ehrfast.tokenize import TokenizedDataset, TokenizerConfig, VisitRule, tokenize_dataset

from .conftest import SCHEMA, T0, write_meds

pytestmark = pytest.mark.skipif(core is None, reason="C++ core not built")

CODES = ["A", "B", "LAB//1", "LAB//2", "MEDS_BIRTH", "MEDS_DEATH", "ADM//X", "DIS//X", "DIAGNOSIS//ICD//10//E119"]
GAPS_MIN = [0, 0, 1, 5, 14, 15, 60, 61, 300, 1440, 2880, 20_000, 43_200, 86_400, 259_200, 260_000, 500_000]


@st.composite
def meds_rows(draw):
    rows = []
    for s in range(draw(st.integers(1, 8))):
        sid = 10**17 + s * 7919  # large ids: no float64 round trips
        for code in draw(st.lists(st.sampled_from(["GENDER//F", "GENDER//M", "RACE//X"]), max_size=2)):
            rows.append((sid, None, code, None))
        t = T0 - timedelta(days=draw(st.integers(0, 30_000)))
        for _ in range(draw(st.integers(0, 25))):
            t = t + timedelta(minutes=draw(st.sampled_from(GAPS_MIN)), microseconds=draw(st.integers(0, 3)))
            code = draw(st.sampled_from(CODES))
            value = draw(st.one_of(st.none(), st.just(float("nan")), st.floats(-5, 5, width=32), st.sampled_from([0.0, 1.0, 2.0])))
            rows.append((sid, t, code, value if code.startswith("LAB") else None))
    return rows


@st.composite
def configs(draw):
    return TokenizerConfig(
        intervals=draw(st.sampled_from(["ethos", "primary_care"])),
        n_quantiles=draw(st.sampled_from([2, 5, 10])),
        min_values_for_quantiles=draw(st.integers(1, 4)),
        age_tokens=draw(st.booleans()),
        age_rounding=draw(st.sampled_from(["half_up", "ethos"])),
        min_events=draw(st.integers(0, 3)),
        max_events=draw(st.sampled_from([None, 15])),
        min_subjects=draw(st.integers(1, 2)),
        rare_codes=draw(st.sampled_from(["unk", "drop"])),
        timeline_end=draw(st.booleans()),
        visit_rules=draw(st.sampled_from([(), (VisitRule("V", "^ADM", "^DIS"),)])),
        hierarchical_prefixes=draw(st.sampled_from([(), ("DIAGNOSIS//ICD//10//",)])),
    )


def _same_outputs(a, b):
    for split_dir in sorted(p for p in a.iterdir() if p.is_dir()):
        for f in sorted(split_dir.iterdir()):
            other = b / split_dir.name / f.name
            if f.name == "vocab.json":  # interval means may differ in summation order: compare values
                va, vb = json.loads(f.read_text()), json.loads(other.read_text())
                assert va["tokens"] == vb["tokens"] and va["kinds"] == vb["kinds"]
                for k, d in va["intervals"].items():
                    for key, x in d.items():
                        y = vb["intervals"][k][key]
                        assert (x is None and y is None) or x == pytest.approx(y, rel=1e-12), (k, key)
            else:
                assert filecmp.cmp(f, other, shallow=False), f"{split_dir.name}/{f.name} differs"


@given(train=meds_rows(), held=meds_rows(), cfg=configs())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_cpp_equals_python_on_random_meds(tmp_path_factory, train, held, cfg):
    root = tmp_path_factory.mktemp("rand")
    held = [(s + 1, t, c, v) for s, t, c, v in held]
    meds = write_meds(root / "meds", {"train": train, "held_out": held})
    outs = {}
    for backend in ("cpp", "python"):
        try:
            tokenize_dataset(meds, root / backend, cfg, backend=backend, progress=False)
            outs[backend] = None
        except ValueError as exc:  # e.g. every training subject filtered out: both must agree
            outs[backend] = str(exc).replace(str(root / backend), "OUT")
    assert outs["cpp"] == outs["python"]
    if outs["cpp"] is None:
        _same_outputs(root / "cpp", root / "python")


@pytest.mark.parametrize("name", ["mimic-iv-demo-meds", "synthea27-meds"])
def test_cpp_equals_python_on_real_data(shared_data, tmp_path, name):
    for backend in ("cpp", "python"):
        tokenize_dataset(shared_data / name, tmp_path / backend, backend=backend, progress=False)
    _same_outputs(tmp_path / "cpp", tmp_path / "python")
    ds = TokenizedDataset(tmp_path / "cpp" / "train")
    assert len(ds) > 0 and ds.n_tokens > len(ds) * 10
    # the 18-digit Synthea ids survive exactly
    ids = set(pq.read_table(shared_data / name / "data" / "train").column("subject_id").to_pylist())
    assert set(ds.subject_ids.tolist()) == ids


def test_cpp_equals_python_on_synthetic_cohort(small_cohort, tmp_path):
    root, _, _ = small_cohort
    for backend in ("cpp", "python"):
        tokenize_dataset(root, tmp_path / backend, backend=backend, progress=False)
    _same_outputs(tmp_path / "cpp", tmp_path / "python")


# ------------------------------------------------------------------------ invalid input


def _write_table(root, rows, schema=SCHEMA, name="0.parquet", split="train"):
    d = root / "data" / split
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), d / name)
    (root / "metadata").mkdir(exist_ok=True)
    (root / "metadata" / "dataset.json").write_text("{}")
    return root


def _row(s, minutes, code="A"):
    return {"subject_id": s, "time": T0 + timedelta(minutes=minutes), "code": code, "numeric_value": None}


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize(
    "case,match",
    [
        ("unsorted_time", r"row 1 is out of order in column 'time'"),
        ("unsorted_subject", r"row 1 is out of order in column 'subject_id'"),
        ("missing_column", r"missing required column 'time'"),
        ("wrong_type", r"'subject_id' has type string"),
        ("split_subject", r"subject 1 also appears in"),
        ("null_code", r"row 1: column 'code' is null"),
    ],
)
def test_invalid_inputs_fail_before_output(tmp_path, backend, case, match):
    root = tmp_path / "meds"
    if case == "unsorted_time":
        _write_table(root, [_row(1, 5), _row(1, 0)])
    elif case == "unsorted_subject":
        _write_table(root, [_row(2, 0), _row(1, 0)])
    elif case == "missing_column":
        _write_table(root, [{"subject_id": 1, "code": "A"}], pa.schema([("subject_id", pa.int64()), ("code", pa.string())]))
    elif case == "wrong_type":
        schema = pa.schema([("subject_id", pa.string()), ("time", pa.timestamp("us")), ("code", pa.string())])
        _write_table(root, [{"subject_id": "1", "time": T0, "code": "A"}], schema)
    elif case == "split_subject":
        _write_table(root, [_row(1, 0), _row(2, 0)])
        _write_table(root, [_row(1, 9)], name="1.parquet")
    elif case == "null_code":
        _write_table(root, [_row(1, 0), _row(1, 1, None)])
    out = tmp_path / "out"
    with pytest.raises(MedsValidationError, match=match):
        tokenize_dataset(root, out, backend=backend, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == [root]


def test_split_subject_across_splits_is_an_error(tmp_path):
    root = tmp_path / "meds"
    _write_table(root, [_row(1, 0)])
    _write_table(root, [_row(1, 5)], split="held_out")
    with pytest.raises(MedsValidationError, match="subject 1 also appears"):
        tokenize_dataset(root, tmp_path / "out", progress=False)


def test_large_string_and_dictionary_codes_and_extra_columns(tmp_path):
    schema = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.large_string()), ("numeric_value", pa.float64()), ("text_value", pa.large_string()), ("hadm_id", pa.int64())])
    rows = [{"subject_id": 1, "time": T0, "code": "A", "numeric_value": 1.0, "text_value": "x", "hadm_id": 3}]
    root = _write_table(tmp_path / "m", rows, schema)
    tokenize_dataset(root, tmp_path / "o1", progress=False)
    assert TokenizedDataset(tmp_path / "o1" / "train").decode(TokenizedDataset(tmp_path / "o1" / "train").timeline(0)[0]) == ["A", "TIMELINE_END"]
    schema2 = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.dictionary(pa.int8(), pa.string()))])
    root2 = _write_table(tmp_path / "m2", [{"subject_id": 1, "time": T0, "code": "B"}], schema2)
    tokenize_dataset(root2, tmp_path / "o2", progress=False)


def test_no_training_split(tmp_path):
    root = _write_table(tmp_path / "m", [_row(1, 0)], split="tuning")
    with pytest.raises(ValueError, match="no 'train' split"):
        tokenize_dataset(root, tmp_path / "o", progress=False)


def test_several_shards_per_split(tmp_path):
    rows = [(s, T0 + timedelta(hours=h), "A", None) for s in range(1, 7) for h in range(3)]
    one = write_meds(tmp_path / "one", {"train": rows}, shards_per_split=1)
    three = write_meds(tmp_path / "three", {"train": rows}, shards_per_split=3)
    tokenize_dataset(one, tmp_path / "o1", progress=False)
    tokenize_dataset(three, tmp_path / "o3", progress=False)
    a, b = TokenizedDataset(tmp_path / "o1" / "train"), TokenizedDataset(tmp_path / "o3" / "train")
    order = np.argsort(b.subject_ids)
    assert sorted(b.subject_ids.tolist()) == a.subject_ids.tolist()
    for i, j in enumerate(order):
        np.testing.assert_array_equal(a.timeline(i)[0], b.timeline(j)[0])
