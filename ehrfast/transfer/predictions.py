"""Probe predictions in the MEDS label schema (what ``ehrfast evaluate`` reads)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrfast.io import atomic_output


def write_predictions(path: str | os.PathLike, labels: pa.Table, probability: np.ndarray, model: str, overwrite: bool = False) -> None:
    """``labels``: subject_id, prediction_time, boolean_value; ``probability`` [n] per row."""
    p = np.asarray(probability, np.float32)
    if len(p) != labels.num_rows:
        raise ValueError(f"{len(p)} probabilities for {labels.num_rows} labels")
    table = pa.table({
        "subject_id": labels.column("subject_id"),
        "prediction_time": labels.column("prediction_time"),
        "boolean_value": labels.column("boolean_value"),
        "predicted_boolean_value": pa.array(p >= 0.5),
        "predicted_boolean_probability": pa.array(p),
        "model": pa.array([model] * len(p)),
    })
    with atomic_output(path, overwrite) as tmp:
        pq.write_table(table, tmp)
