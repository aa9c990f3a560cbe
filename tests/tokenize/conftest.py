"""Helpers: write tiny MEDS datasets from row tuples."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

T0 = datetime(2020, 1, 1, 8, 0)
SCHEMA = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.string()), ("numeric_value", pa.float32())])


def write_meds(root, splits: dict[str, list[tuple]], shards_per_split: int = 1, sort: bool = True):
    """``splits``: split -> rows (subject_id, time or None, code, value or None); rows are
    stably sorted into MEDS order (subject, static first, time) unless ``sort`` is False."""
    for split, rows in splits.items():
        if sort:
            rows = sorted(rows, key=lambda r: (r[0], r[1] is not None, r[1] or datetime.min))
        d = root / "data" / split
        d.mkdir(parents=True, exist_ok=True)
        subjects = sorted({r[0] for r in rows})
        for k in range(shards_per_split):
            mine = set(subjects[k::shards_per_split])
            part = [r for r in rows if r[0] in mine]
            table = pa.Table.from_pylist([{"subject_id": s, "time": t, "code": c, "numeric_value": v} for s, t, c, v in part], schema=SCHEMA)
            pq.write_table(table, d / f"{k}.parquet")
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "dataset.json").write_text(json.dumps({"dataset_name": "golden", "meds_version": "0.3.3"}))
    return root


@pytest.fixture
def meds_factory(tmp_path):
    counter = iter(range(1000))

    def make(splits, shards_per_split=1, sort=True):
        return write_meds(tmp_path / f"meds{next(counter)}", splits, shards_per_split, sort)

    return make


def at(**kw) -> datetime:
    return T0 + timedelta(**kw)
