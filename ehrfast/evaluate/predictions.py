"""Reading predictions in the MEDS label schema and aligning two models prediction by prediction
(the unit of evaluation: a subject, a prediction time and, for event tasks, an anchor)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.options import DEFAULT_SCORE
from ehrfast.inputs import read_parquet
from ehrfast.predictions import LABEL_COLUMNS, strict_path

ACES_NULL_COLUMNS = ("integer_value", "float_value", "categorical_value")


class PredictionError(InvalidInputError):
    """Predictions that cannot be evaluated; the message names the file and what is wrong."""


@dataclass(frozen=True)
class PredictionScores:
    """One score and label per unit of evaluation: a (subject, prediction time, anchor)
    (ARES.md S10). Files without ``anchor_id`` (incidence tasks) key on (subject, prediction
    time); rows of one unit (repeated predictions) are averaged.

    ``subject_id``, ``prediction_time`` (µs), ``anchor_id`` (−1: none) [n] int64 sorted by that
    key; ``label`` [n] bool; ``score`` [n] float64; ``n_averaged`` units with several rows.
    """

    subject_id: np.ndarray
    prediction_time: np.ndarray
    anchor_id: np.ndarray
    label: np.ndarray
    score: np.ndarray
    n_predictions: int
    n_averaged: int
    source: str

    def unit(self, i: int) -> str:
        anchor = f", anchor {self.anchor_id[i]}" if self.anchor_id[i] >= 0 else ""
        return f"subject {self.subject_id[i]} at {np.datetime64(int(self.prediction_time[i]), 'us')}{anchor}"

    def subject_clusters(self) -> np.ndarray:
        """[n] int64: the index of each unit's subject among the distinct subjects."""
        return np.unique(self.subject_id, return_inverse=True)[1].reshape(-1)


def read_predictions(path: str | os.PathLike, score_column: str = DEFAULT_SCORE) -> pa.Table:
    """Reads a predictions parquet file (or a directory of them), checking the label schema.

    In a directory, a file's meds-evaluation copy (``<stem>_strict.parquet``) is skipped when
    the file itself is there. All-null ``integer_value``/``float_value``/``categorical_value``
    columns written by ACES are dropped; any other extra column is kept.
    """
    path = Path(path)
    if not path.exists():
        raise PredictionError(f"{path}: no such file or directory")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    copies = {strict_path(f) for f in files}  # a file's meds-evaluation copy holds the same rows
    files = [f for f in files if f not in copies]
    if not files:
        raise PredictionError(f"{path}: no parquet files")
    table = pa.concat_tables([read_parquet(f) for f in files], promote_options="default")
    for col in ACES_NULL_COLUMNS:
        if col in table.column_names and table.column(col).null_count == table.num_rows:
            table = table.drop_columns([col])
    missing = [c for c in (*LABEL_COLUMNS, score_column) if c not in table.column_names]
    if missing:
        raise PredictionError(f"{path}: missing column(s) {missing}; columns are {table.column_names}")
    if table.num_rows == 0:
        raise PredictionError(f"{path}: no predictions (empty file)")
    return table


def prediction_scores(table: pa.Table, score_column: str = DEFAULT_SCORE, source: str = "") -> PredictionScores:
    """Groups the rows by unit (see ``PredictionScores``) and averages each unit's scores; a unit
    whose labels disagree is an error."""
    for col in ("subject_id", "prediction_time", "boolean_value", score_column):
        if table.column(col).null_count:
            row = int(np.argmax(table.column(col).is_null().to_numpy(zero_copy_only=False)))
            raise PredictionError(f"{source}: row {row}: column '{col}' is null")
    sid = table.column("subject_id").to_numpy()
    time = pc.cast(table.column("prediction_time"), pa.int64()).to_numpy()
    if "anchor_id" in table.column_names:
        anchor = pc.fill_null(pc.cast(table.column("anchor_id"), pa.int64()), -1).to_numpy()
    else:
        anchor = np.full(len(sid), -1, np.int64)
    label = table.column("boolean_value").cast(pa.bool_()).to_numpy(zero_copy_only=False)
    score = pc.cast(table.column(score_column), pa.float64()).to_numpy()
    if not np.isfinite(score).all():
        row = int(np.flatnonzero(~np.isfinite(score))[0])
        raise PredictionError(f"{source}: row {row}: column '{score_column}' is {score[row]} (NaN/inf scores cannot be ranked)")
    order = np.lexsort((anchor, time, sid))
    sid, time, anchor, label, score = sid[order], time[order], anchor[order], label[order], score[order]
    new = np.r_[True, (sid[1:] != sid[:-1]) | (time[1:] != time[:-1]) | (anchor[1:] != anchor[:-1])] if len(sid) else np.zeros(0, bool)
    first = np.flatnonzero(new)
    unit = np.cumsum(new) - 1
    counts = np.bincount(unit)
    mean_score = np.bincount(unit, weights=score) / counts
    pos = np.bincount(unit, weights=label.astype(float))
    out = PredictionScores(sid[first], time[first], anchor[first], pos > 0, mean_score, len(sid), int((counts > 1).sum()), source)
    mixed = (pos > 0) & (pos < counts)
    if mixed.any():
        raise PredictionError(f"{source}: {out.unit(int(np.argmax(mixed)))} has both true and false labels; "
                              "one unit (subject, prediction time, anchor) has one label — evaluate one task at a time")
    return out


def load_prediction_scores(path: str | os.PathLike, score_column: str = DEFAULT_SCORE) -> PredictionScores:
    return prediction_scores(read_predictions(path, score_column), score_column, source=str(path))


def align_pair(a: PredictionScores, b: PredictionScores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (label [n], score_a [n], score_b [n]) over the same units in the same order.

    Mismatched units or disagreeing labels are errors: a paired comparison needs both models to
    have scored exactly the same predictions on the same task.
    """
    same = (len(a.subject_id) == len(b.subject_id) and np.array_equal(a.subject_id, b.subject_id)
            and np.array_equal(a.prediction_time, b.prediction_time) and np.array_equal(a.anchor_id, b.anchor_id))
    if not same:
        key_a = set(zip(a.subject_id.tolist(), a.prediction_time.tolist(), a.anchor_id.tolist()))
        key_b = set(zip(b.subject_id.tolist(), b.prediction_time.tolist(), b.anchor_id.tolist()))
        only_a, only_b = sorted(key_a - key_b), sorted(key_b - key_a)
        raise PredictionError(
            f"model A ({a.source}) and model B ({b.source}) scored different predictions (subject, time, anchor): "
            f"{len(only_a)} only in A (e.g. {only_a[:2]}), {len(only_b)} only in B (e.g. {only_b[:2]})"
        )
    if not np.array_equal(a.label, b.label):
        i = int(np.flatnonzero(a.label != b.label)[0])
        raise PredictionError(f"{a.unit(i)} has label {a.label[i]} in A but {b.label[i]} in B")
    return a.label, a.score, b.score


def scores_on_units(a: PredictionScores, other: PredictionScores) -> np.ndarray:
    """[n] float64: ``other``'s score on each unit of ``a`` (in ``a``'s order), for a method file
    that may cover more predictions than the models scored; a unit of ``a`` missing from
    ``other``, or with another label there, is an error."""
    index = {k: i for i, k in enumerate(zip(other.subject_id.tolist(), other.prediction_time.tolist(), other.anchor_id.tolist()))}
    pos = np.array([index.get(k, -1) for k in zip(a.subject_id.tolist(), a.prediction_time.tolist(), a.anchor_id.tolist())], np.int64)
    if (pos < 0).any():
        i = int(np.flatnonzero(pos < 0)[0])
        raise PredictionError(f"{other.source}: no score for {int((pos < 0).sum())} of the {len(pos)} predictions of {a.source} "
                              f"(e.g. {a.unit(i)})")
    if not np.array_equal(other.label[pos], a.label):
        i = int(np.flatnonzero(other.label[pos] != a.label)[0])
        raise PredictionError(f"{a.unit(i)} has label {a.label[i]} in {a.source} but {other.label[pos[i]]} in {other.source}")
    return other.score[pos]
