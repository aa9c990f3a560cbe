"""The PRS matrix on disk (``ehrfast prs``'s output), read by training, scoring and transfer.

``PRS.parquet``: ``sample_id`` string, ``subject_id`` int64 (null for samples that reach no
subject), one float32 column per trait; ``prs_meta.json`` beside it (``meta_path``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ehrfast.errors import InputNotFoundError, InvalidInputError

ID_COLUMNS = ("sample_id", "subject_id")


def meta_path(out_path: str | os.PathLike) -> Path:
    """``prs_meta.json`` beside ``PRS.parquet``, ``<stem>_meta.json`` beside any other name."""
    out_path = Path(out_path)
    return out_path.with_name("prs_meta.json") if out_path.stem == "PRS" else out_path.with_name(out_path.stem + "_meta.json")


@dataclass(frozen=True)
class PRSMatrix:
    """The scores of the samples that reach a subject: ``subject_ids`` [n] int64, ``values``
    [n, n_traits] float32, ``traits`` (column names)."""

    path: Path
    subject_ids: np.ndarray
    values: np.ndarray
    traits: list[str]

    def rows_for(self, subject_ids) -> np.ndarray:
        """[len(subject_ids), n_traits] float32 aligned with ``subject_ids``; a row of NaN for a
        subject without scores."""
        row_of = {int(s): k for k, s in enumerate(self.subject_ids.tolist())}
        out = np.full((len(subject_ids), len(self.traits)), np.nan, np.float32)
        for i, s in enumerate(np.asarray(subject_ids).tolist()):
            k = row_of.get(int(s))
            if k is not None:
                out[i] = self.values[k]
        return out


def read_prs_matrix(path: str | os.PathLike) -> PRSMatrix:
    """Reads a PRS matrix (``ehrfast prs`` output, or any parquet with ``subject_id`` and trait
    columns); rows without a subject id are left out."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such PRS file")
    table = pq.read_table(path)
    traits = [c for c in table.column_names if c not in ID_COLUMNS]
    if "subject_id" not in table.column_names or not traits:
        raise InvalidInputError(f"{path}: needs a subject_id column and at least one trait column")
    ids = table.column("subject_id").to_pylist()
    keep = np.array([s is not None for s in ids], bool)
    values = np.column_stack([table.column(t).to_numpy(zero_copy_only=False).astype(np.float32) for t in traits])
    subject_ids = np.array([s for s in ids if s is not None], np.int64)
    return PRSMatrix(path, subject_ids, values[keep], traits)


__all__ = ["PRSMatrix", "meta_path", "read_prs_matrix"]


def model_prs_rows(modality: str, prs_path: str | os.PathLike | None, subject_ids) -> np.ndarray | None:
    """[n, n_traits] PRS rows of ``subject_ids`` for a model of ``modality`` (None for a model
    that reads no PRS, or no subjects); a PRS-reading model without ``prs_path`` is an error."""
    if modality == "none":
        return None
    if prs_path is None:
        raise InvalidInputError(f"the model reads PRS ({modality}); pass prs_path / --prs")
    return read_prs_matrix(prs_path).rows_for(subject_ids) if len(subject_ids) else None
