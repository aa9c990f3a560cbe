"""Reading predictions in the MEDS label schema and aligning two models subject by subject."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.options import DEFAULT_SCORE
from ehrfast.predictions import LABEL_COLUMNS

ACES_NULL_COLUMNS = ("integer_value", "float_value", "categorical_value")


class PredictionError(InvalidInputError):
    """Predictions that cannot be evaluated; the message names the file and what is wrong."""


@dataclass(frozen=True)
class SubjectScores:
    """One score and label per subject (multiple predictions per subject averaged).

    ``subject_id`` [n] int64 sorted, ``label`` [n] bool, ``score`` [n] float64,
    ``n_averaged`` how many subjects had more than one prediction.
    """

    subject_id: np.ndarray
    label: np.ndarray
    score: np.ndarray
    n_predictions: int
    n_averaged: int
    source: str


def read_predictions(path: str | os.PathLike, score_column: str = DEFAULT_SCORE) -> pa.Table:
    """Reads a predictions parquet file (or a directory of them), checking the label schema.

    All-null ``integer_value``/``float_value``/``categorical_value`` columns written by ACES are
    dropped; any other extra column is kept.
    """
    path = Path(path)
    if not path.exists():
        raise PredictionError(f"{path}: no such file or directory")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise PredictionError(f"{path}: no parquet files")
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    for col in ACES_NULL_COLUMNS:
        if col in table.column_names and table.column(col).null_count == table.num_rows:
            table = table.drop_columns([col])
    missing = [c for c in (*LABEL_COLUMNS, score_column) if c not in table.column_names]
    if missing:
        raise PredictionError(f"{path}: missing column(s) {missing}; columns are {table.column_names}")
    if table.num_rows == 0:
        raise PredictionError(f"{path}: no predictions (empty file)")
    return table


def subject_scores(table: pa.Table, score_column: str = DEFAULT_SCORE, source: str = "") -> SubjectScores:
    """Averages each subject's predictions; a subject whose labels disagree is an error."""
    for col in ("subject_id", "boolean_value", score_column):
        if table.column(col).null_count:
            row = int(np.argmax(table.column(col).is_null().to_numpy(zero_copy_only=False)))
            raise PredictionError(f"{source}: row {row}: column '{col}' is null")
    sid = table.column("subject_id").to_numpy()
    label = table.column("boolean_value").cast(pa.bool_()).to_numpy(zero_copy_only=False)
    score = pc.cast(table.column(score_column), pa.float64()).to_numpy()
    if not np.isfinite(score).all():
        row = int(np.flatnonzero(~np.isfinite(score))[0])
        raise PredictionError(f"{source}: row {row}: column '{score_column}' is {score[row]} (NaN/inf scores cannot be ranked)")
    uniq, inverse, counts = np.unique(sid, return_inverse=True, return_counts=True)
    mean_score = np.bincount(inverse, weights=score) / counts
    pos = np.bincount(inverse, weights=label.astype(float))
    mixed = (pos > 0) & (pos < counts)
    if mixed.any():
        raise PredictionError(
            f"{source}: subject {uniq[np.argmax(mixed)]} has both true and false labels; "
            "evaluate one task (one label per subject) at a time"
        )
    return SubjectScores(uniq, pos > 0, mean_score, len(sid), int((counts > 1).sum()), source)


def load_subject_scores(path: str | os.PathLike, score_column: str = DEFAULT_SCORE) -> SubjectScores:
    return subject_scores(read_predictions(path, score_column), score_column, source=str(path))


def align_pair(a: SubjectScores, b: SubjectScores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (label [n], score_a [n], score_b [n]) over the same subjects in the same order.

    Mismatched subject sets or disagreeing labels are errors: a paired comparison needs both
    models to have scored exactly the same subjects on the same task.
    """
    if not np.array_equal(a.subject_id, b.subject_id):
        only_a = np.setdiff1d(a.subject_id, b.subject_id)
        only_b = np.setdiff1d(b.subject_id, a.subject_id)
        raise PredictionError(
            f"model A ({a.source}) and model B ({b.source}) scored different subjects: "
            f"{len(only_a)} only in A (e.g. {only_a[:3].tolist()}), {len(only_b)} only in B (e.g. {only_b[:3].tolist()})"
        )
    if not np.array_equal(a.label, b.label):
        i = int(np.flatnonzero(a.label != b.label)[0])
        raise PredictionError(f"subject {a.subject_id[i]} has label {a.label[i]} in A but {b.label[i]} in B")
    return a.label, a.score, b.score
