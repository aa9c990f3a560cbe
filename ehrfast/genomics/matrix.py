"""The PRS matrix on disk (``ehrfast prs``'s output), read by training, scoring and transfer.

``PRS.parquet``: ``family_id`` string or null, ``sample_id`` string (the IID), ``subject_id``
int64 (null for samples that reach no subject), one column per trait (listed in the schema
metadata ``ehrfast.traits``; raw outputs add plink2's per-trait columns beside them);
``prs_meta.json`` beside it (``meta_path``). pgsc_calc's ``aggregated_scores.txt.gz`` (and its
ancestry-adjusted ``*_pgs.txt.gz``) are read as well.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ehrfast.errors import InputNotFoundError, InvalidInputError
from ehrfast.genomics.scorefile import open_text
from ehrfast.inputs import read_parquet

ID_COLUMNS = ("family_id", "sample_id", "subject_id")
TRAITS_KEY = b"ehrfast.traits"  # parquet schema metadata: JSON list of the trait columns
RAW_SUFFIXES = ("_SUM", "_AVG", "_ALLELE_CT", "_DENOM", "_NAMED_ALLELE_DOSAGE_SUM")
# pgsc_calc value columns, best first: ancestry-normalized z-scores, then the plain sum
PGSC_VALUE_COLUMNS = ("Z_norm2", "Z_norm1", "Z_MostSimilarPop", "SUM")
PGSC_CLIP_SD = 4.0


def meta_path(out_path: str | os.PathLike) -> Path:
    """``prs_meta.json`` beside ``PRS.parquet``, ``<name>_meta.json`` beside any other output
    (``scores.sscore`` -> ``scores_meta.json``, ``aggregated_scores.txt.gz`` -> ``aggregated_scores_meta.json``)."""
    out_path = Path(out_path)
    name = out_path.name
    for suffix in (".txt.gz", ".tsv.gz", ".parquet", ".sscore", ".txt", ".tsv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out_path.with_name("prs_meta.json" if name == "PRS" else name + "_meta.json")


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
    """Reads a PRS matrix: ``ehrfast prs``'s parquet (or any parquet with ``subject_id`` and
    trait columns; rows without a subject id are left out), or pgsc_calc's aggregated scores
    (``.txt``/``.txt.gz`` with ``IID``, ``PGS`` and ``SUM`` columns; see ``read_pgsc_calc``)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such PRS file")
    if path.name.endswith((".txt", ".txt.gz", ".tsv", ".tsv.gz")):
        return read_pgsc_calc(path)
    table = read_parquet(path)
    traits = _trait_columns(table)
    if "subject_id" not in table.column_names or not traits:
        raise InvalidInputError(f"{path}: needs a subject_id column and at least one trait column")
    ids = table.column("subject_id").to_pylist()
    keep = np.array([s is not None for s in ids], bool)
    values = np.column_stack([table.column(t).to_numpy(zero_copy_only=False).astype(np.float32) for t in traits])
    subject_ids = np.array([s for s in ids if s is not None], np.int64)
    _check_unique(path, subject_ids)
    return PRSMatrix(path, subject_ids, values[keep], traits)


def _trait_columns(table) -> list[str]:
    """The schema's ``ehrfast.traits`` list, else every non-id column except plink2's per-trait
    columns of a trait that is present."""
    listed = (table.schema.metadata or {}).get(TRAITS_KEY)
    if listed is not None:
        return json.loads(listed)
    names = [c for c in table.column_names if c not in ID_COLUMNS]
    return [c for c in names if not any(c.endswith(sfx) and c[: -len(sfx)] in names for sfx in RAW_SUFFIXES)]


def _check_unique(path: Path, subject_ids: np.ndarray) -> None:
    values, counts = np.unique(subject_ids, return_counts=True)
    if (counts > 1).any():
        raise InvalidInputError(f"{path}: subject {int(values[counts > 1][0])} has {int(counts[counts > 1][0])} rows; "
                                "one row per subject (two genotype samples of one subject?)")


def read_pgsc_calc(path: str | os.PathLike) -> PRSMatrix:
    """pgsc_calc's scores as a matrix: ``aggregated_scores.txt.gz`` (``sampleset IID PGS SUM
    DENOM AVG``) or the ancestry step's ``<sampleset>_pgs.txt.gz`` (reference-panel rows,
    ``sampleset == "reference"``, are left out). Per trait the first value column present of
    Z_norm2, Z_norm1, Z_MostSimilarPop — already standardized — else SUM, standardized here
    over the file's samples and clipped at ±4 sd as ``ehrfast prs`` does. IIDs must be MEDS
    subject ids (integers)."""
    path = Path(path)
    with open_text(path) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or not {"IID", "PGS"} <= set(rows[0]):
        raise InvalidInputError(f"{path}: not pgsc_calc scores: needs tab-separated IID and PGS columns (and SUM or Z_norm*)")
    value = next((c for c in PGSC_VALUE_COLUMNS if c in rows[0]), None)
    if value is None:
        raise InvalidInputError(f"{path}: no score column; expected one of {', '.join(PGSC_VALUE_COLUMNS)}")
    rows = [(line, r) for line, r in enumerate(rows, start=2) if r.get("sampleset") != "reference"]
    traits = list(dict.fromkeys(r["PGS"] for _, r in rows))
    subjects: dict[int, int] = {}
    cells: dict[tuple[int, int], float] = {}
    column = {t: j for j, t in enumerate(traits)}
    for line, r in rows:
        iid = r["IID"]
        if not iid.lstrip("-").isdigit():
            raise InvalidInputError(f"{path}: line {line}: IID {iid!r} is not a MEDS subject id (an integer); "
                                    "rename the samples to subject ids before scoring, or score with ehrfast prs --sample-map")
        row = subjects.setdefault(int(iid), len(subjects))
        key = (row, column[r["PGS"]])
        if key in cells:
            raise InvalidInputError(f"{path}: line {line}: IID {iid} has two {r['PGS']} rows (several samplesets with the same IIDs?)")
        try:
            cells[key] = float(r[value])
        except (TypeError, ValueError):
            raise InvalidInputError(f"{path}: line {line}: IID {iid}, {r['PGS']}: {value} {r[value]!r} is not a number") from None
    values = np.full((len(subjects), len(traits)), np.nan)
    for (i, j), v in cells.items():
        values[i, j] = v
    if value == "SUM":
        with np.errstate(invalid="ignore"):
            mean, sd = np.nanmean(values, 0), np.nanstd(values, 0)
        values = np.clip((values - mean) / np.where(sd > 0, sd, 1.0), -PGSC_CLIP_SD, PGSC_CLIP_SD)
    return PRSMatrix(path, np.array(list(subjects), np.int64), values.astype(np.float32), traits)


__all__ = ["PRSMatrix", "meta_path", "read_pgsc_calc", "read_prs_matrix"]


def model_prs_rows(modality: str, prs_path: str | os.PathLike | None, subject_ids) -> np.ndarray | None:
    """[n, n_traits] PRS rows of ``subject_ids`` for a model of ``modality`` (None for a model
    that reads no PRS, or no subjects); a PRS-reading model without ``prs_path`` is an error."""
    if modality == "none":
        return None
    if prs_path is None:
        raise InvalidInputError(f"the model reads PRS ({modality}); pass prs_path / --prs")
    return read_prs_matrix(prs_path).rows_for(subject_ids) if len(subject_ids) else None
