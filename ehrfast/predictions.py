"""Labels and predictions on disk: the MEDS label schema, ehrfast's predictions schema, and the
one writer every stage that predicts uses (scoring, transfer probes, baselines).

A predictions file is the MEDS label schema (``subject_id``, ``prediction_time``,
``boolean_value``) plus the two columns meds-evaluation requires
(``predicted_boolean_value``, ``predicted_boolean_probability``), ehrfast's own columns where a
stage has them (``PREDICTION_SCHEMA``), and ``model`` last. meds-evaluation's CLI rejects
extra columns and null labels, so every writer also writes, by default, a conformant copy beside
the rich file (``strict_path``: ``<stem>_strict.parquet``) that ``meds-evaluation-cli`` reads as is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrfast.errors import InputNotFoundError, InvalidInputError, NonFiniteResultError
from ehrfast.inputs import read_parquet, read_parquet_schema
from ehrfast.io import atomic_output

LABEL_COLUMNS = ("subject_id", "prediction_time", "boolean_value")
LABEL_SCHEMA = pa.schema([("subject_id", pa.int64()), ("prediction_time", pa.timestamp("us")), ("boolean_value", pa.bool_())])
MEDS_EVALUATION_SCHEMA = pa.schema([*LABEL_SCHEMA, ("predicted_boolean_value", pa.bool_()), ("predicted_boolean_probability", pa.float32())])
MEDS_EVALUATION_COLUMNS = tuple(MEDS_EVALUATION_SCHEMA.names)
# Every column a predictions file may have, in the order it is written; absent ones are skipped.
PREDICTION_SCHEMA = pa.schema([
    *LABEL_SCHEMA,
    ("predicted_boolean_value", pa.bool_()),
    ("predicted_boolean_probability", pa.float32()),
    ("path_probability", pa.float32()),  # the path-computed probability (zero-shot scoring)
    ("mc_frequency", pa.float32()),  # share of sampled futures that reached the target
    ("n_samples", pa.int32()),
    ("ci_low", pa.float32()),  # 95% interval of mc_frequency
    ("ci_high", pa.float32()),
    ("risk_level", pa.int8()),
    ("tokens_generated", pa.int64()),
    ("model", pa.string()),
])
DECISION_THRESHOLD = 0.5  # predicted_boolean_value = probability >= this


def label_table(subject_id, prediction_time_us, boolean_value) -> pa.Table:
    """A table in the MEDS label schema from [n] arrays (times int64 µs); an Arrow
    ``boolean_value`` keeps its nulls."""
    if isinstance(boolean_value, pa.Array | pa.ChunkedArray):
        labels = boolean_value.cast(pa.bool_())
    else:
        labels = pa.array(np.asarray(boolean_value, bool), pa.bool_())
    return pa.table({"subject_id": pa.array(np.asarray(subject_id, np.int64), pa.int64()),
                     "prediction_time": pa.array(np.asarray(prediction_time_us, np.int64), pa.int64()).cast(pa.timestamp("us")),
                     "boolean_value": labels}, schema=LABEL_SCHEMA)


def prediction_table(labels: pa.Table, probability: np.ndarray, model: str, columns: dict[str, np.ndarray] | None = None) -> pa.Table:
    """Predictions for the rows of ``labels`` (MEDS label schema): ``probability`` [n] in [0, 1]
    becomes ``predicted_boolean_probability``; ``columns`` adds ehrfast's columns by name (see
    ``PREDICTION_SCHEMA``). Refuses a non-finite or out-of-range probability, naming the row."""
    probability = np.asarray(probability).astype(np.float32)  # as stored: the decision is taken on what is written
    if probability.shape != (labels.num_rows,):
        raise InvalidInputError(f"{len(probability)} probabilities for {labels.num_rows} labels")
    _check_probability("predicted_boolean_probability", probability, labels)
    values = {"predicted_boolean_value": probability >= DECISION_THRESHOLD, "predicted_boolean_probability": probability,
              **(columns or {}), "model": np.array([model] * labels.num_rows, dtype=object)}
    unknown = sorted(set(values) - set(PREDICTION_SCHEMA.names))
    if unknown:
        raise InvalidInputError(f"unknown prediction column(s) {unknown}; see ehrfast.predictions.PREDICTION_SCHEMA")
    for name in ("path_probability", "mc_frequency", "ci_low", "ci_high"):
        if name in values:
            _check_probability(name, np.asarray(values[name], np.float64), labels)
    out = {c: labels.column(c) for c in LABEL_COLUMNS}
    for f in PREDICTION_SCHEMA:
        if f.name in values:
            out[f.name] = pa.array(np.asarray(values[f.name]), f.type) if f.name != "model" else pa.array(values[f.name].tolist(), f.type)
    return pa.table(out)


def _check_probability(name: str, values: np.ndarray, labels: pa.Table) -> None:
    bad = ~((values >= 0) & (values <= 1))  # NaN fails both
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        subject = labels.column("subject_id")[row].as_py()
        raise NonFiniteResultError(f"{name} of row {row} (subject {subject}) is {values[row]}, not a probability in [0, 1]; "
                                   "nothing was written")


def strict_path(path: str | os.PathLike) -> Path:
    """Where the meds-evaluation copy goes: ``<stem>_strict.parquet``."""
    return Path(path).with_name(Path(path).stem + "_strict.parquet")


def meds_evaluation_table(table: pa.Table) -> pa.Table:
    """``table`` as meds-evaluation's ``PredictionSchema`` takes it: only its columns, in its
    types, and only the rows with a label (its ``boolean_value`` is not nullable)."""
    missing = [c for c in MEDS_EVALUATION_COLUMNS if c not in table.column_names]
    if missing:
        raise InvalidInputError(f"a predictions table needs the column(s) {missing}")
    out = table.select(list(MEDS_EVALUATION_COLUMNS)).cast(MEDS_EVALUATION_SCHEMA)
    if out.column("boolean_value").null_count:
        out = out.filter(out.column("boolean_value").is_valid())
    return out.replace_schema_metadata(None)


def write_predictions(path: str | os.PathLike, table: pa.Table, *, strict_copy: bool = True, overwrite: bool = False) -> None:
    """Writes ``table`` (a predictions table: ``prediction_table`` or an event task's) atomically
    and, unless ``strict_copy`` is False, its meds-evaluation copy at ``strict_path(path)``."""
    strict = meds_evaluation_table(table) if strict_copy else None
    with atomic_output(path, overwrite) as tmp:
        pq.write_table(table, tmp)
    if strict is not None:
        with atomic_output(strict_path(path), overwrite) as tmp:
            pq.write_table(strict, tmp)


def read_labels(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """A label file (MEDS label schema, extra columns kept unless ``columns`` picks some): the
    label columns present, ``subject_id`` and ``prediction_time`` without nulls (the first null
    row is named) and ``prediction_time`` a timestamp. Null ``boolean_value`` stays (unlabelled rows)."""
    path = Path(path)
    names = read_parquet_schema(path, what="label file").names
    missing = [c for c in LABEL_COLUMNS if c not in names]
    if missing:
        raise InvalidInputError(f"{path}: missing label column(s) {missing} (a MEDS label file has {list(LABEL_COLUMNS)})")
    table = read_parquet(path, what="label file", columns=columns)
    for name in ("subject_id", "prediction_time"):
        column = table.column(name)
        if column.null_count:
            row = int(np.flatnonzero(~np.asarray(column.is_valid()))[0])
            raise InvalidInputError(f"{path}: row {row}: {name} is null ({column.null_count:,} null rows); every label needs a subject and a time")
    if not pa.types.is_timestamp(table.schema.field("prediction_time").type):
        raise InvalidInputError(f"{path}: prediction_time must be a timestamp, got {table.schema.field('prediction_time').type}")
    if not pa.types.is_integer(table.schema.field("subject_id").type):
        raise InvalidInputError(f"{path}: subject_id must be an integer column, got {table.schema.field('subject_id').type}")
    return table


ANCHORED_LABEL_COLUMNS = (*LABEL_COLUMNS, "anchor_id", "anchor_code", "hadm_id", "true_event", "true_time_us")


def read_anchored_labels(path: str | os.PathLike, *, plain: bool = False) -> pa.Table:
    """An event task's label file (``ehrfast label --task <event task>``): the MEDS label schema
    plus ``anchor_id`` and the anchor's columns. A file without them — incidence labels, or an
    ACES file — cannot key per-anchor predictions and is refused, naming the missing columns;
    with ``plain`` such a file is taken as it is: each row its own anchor (``anchor_id`` = row
    number) whose context ends at its prediction time (``anchor_token_offset`` = −1), the data
    up to and including it — ACES's meaning of a prediction time."""
    path = Path(path)
    names = read_parquet_schema(path, what="label file").names
    missing = [c for c in ANCHORED_LABEL_COLUMNS if c not in names]
    if missing and plain and "anchor_id" not in names and all(c in names for c in LABEL_COLUMNS):
        table = read_labels(path, columns=list(LABEL_COLUMNS))
        if table.column("boolean_value").null_count:
            table = table.filter(table.column("boolean_value").is_valid())  # ACES writes no null labels; a null one is not a label
        return table.append_column("anchor_id", pa.array(np.arange(table.num_rows, dtype=np.int64))) \
                    .append_column("anchor_token_offset", pa.array(np.full(table.num_rows, -1, np.int64)))
    if missing:
        raise InvalidInputError(f"{path}: an event task's labels need the column(s) {missing} (anchor_id keys each prediction); "
                                "write them with 'ehrfast label --task <event task>'")
    table = read_labels(path)
    if table.column("anchor_id").null_count:
        raise InvalidInputError(f"{path}: anchor_id has nulls")
    return table


def write_labels(path: str | os.PathLike, table: pa.Table, *, overwrite: bool = False) -> None:
    """Writes a MEDS label table atomically."""
    with atomic_output(path, overwrite) as tmp:
        pq.write_table(table, tmp)


# A method-scores file: the MEDS label schema, ``anchor_id`` when the labels have it, then one
# float64 column per method (higher = riskier; not necessarily a probability: NEWS, CART, −acuity).
# The method columns are named in the file's schema metadata under this key.
METHODS_METADATA_KEY = b"ehrfast.methods"


def method_scores_table(labels: pa.Table, scores: dict[str, np.ndarray]) -> pa.Table:
    """A method-scores table for the rows of ``labels``: ``scores`` {method: [n] float64}.
    Refuses a non-finite score, naming the method and row."""
    if not scores:
        raise InvalidInputError("a method-scores file needs at least one method")
    out = {c: labels.column(c) for c in LABEL_COLUMNS}
    if "anchor_id" in labels.column_names:
        out["anchor_id"] = labels.column("anchor_id")
    for name, values in scores.items():
        v = np.asarray(values, np.float64)
        if v.shape != (labels.num_rows,):
            raise InvalidInputError(f"method {name!r}: {len(v)} scores for {labels.num_rows} labels")
        if not np.isfinite(v).all():
            row = int(np.flatnonzero(~np.isfinite(v))[0])
            raise NonFiniteResultError(f"method {name!r}: row {row} (subject {labels.column('subject_id')[row].as_py()}) scored {v[row]}; "
                                       "nothing was written")
        if name in out:
            raise InvalidInputError(f"method name {name!r} collides with a label column")
        out[name] = pa.array(v, pa.float64())
    table = pa.table(out)
    return table.replace_schema_metadata({METHODS_METADATA_KEY: json.dumps(list(scores)).encode()})


def read_method_names(path: str | os.PathLike) -> list[str]:
    """The method columns of a method-scores file (``ehrfast baselines``)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such method-scores file")
    meta = read_parquet_schema(path).metadata or {}
    if METHODS_METADATA_KEY not in meta:
        raise InvalidInputError(f"{path}: not a method-scores file (no {METHODS_METADATA_KEY.decode()} metadata); "
                                "write one with 'ehrfast baselines'")
    return list(json.loads(meta[METHODS_METADATA_KEY]))


__all__ = ["ANCHORED_LABEL_COLUMNS", "DECISION_THRESHOLD", "LABEL_COLUMNS", "LABEL_SCHEMA", "MEDS_EVALUATION_COLUMNS", "MEDS_EVALUATION_SCHEMA",
           "METHODS_METADATA_KEY", "PREDICTION_SCHEMA", "label_table", "meds_evaluation_table", "method_scores_table", "prediction_table",
           "read_anchored_labels", "read_labels", "read_method_names", "strict_path", "write_labels", "write_predictions"]
