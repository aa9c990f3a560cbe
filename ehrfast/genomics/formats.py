"""The files ``ehrfast prs`` writes: the model-ready parquet, plink2's ``.sscore`` and
pgsc_calc's long ``aggregated_scores.txt.gz``.

* ``parquet``: ``family_id`` string (null without families), ``sample_id`` (the IID),
  ``subject_id`` int64 or null, one column per trait — float32 standardized scores, or with
  ``raw`` the float64 sum plus plink2's per-trait columns ``<t>_SUM``, ``<t>_AVG``,
  ``<t>_ALLELE_CT``, ``<t>_DENOM``, ``<t>_NAMED_ALLELE_DOSAGE_SUM``. The schema metadata
  ``ehrfast.traits`` lists the trait columns (what the model reads).
* ``sscore``: plink2 ``--score ... cols=+scoresums,+denom``: ``#FID`` (when the genotypes have
  families) ``IID ALLELE_CT DENOM NAMED_ALLELE_DOSAGE_SUM <t>_AVG... <t>_SUM...``, tab-separated;
  the three counts are over all scored variants, as plink2 counts them for one score file.
* ``pgsc_calc``: ``sampleset IID PGS SUM DENOM AVG``, one row per sample and trait, gzip.

Undefined averages (a sample with no non-missing call and no mean imputation) are written as
``NA`` (null in parquet), never as NaN.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrfast.errors import InvalidInputError
from ehrfast.genomics.matrix import TRAITS_KEY

FORMATS = ("auto", "parquet", "sscore", "pgsc_calc")


def output_format(fmt: str, out_path: str | os.PathLike) -> str:
    """``fmt``, or for "auto" the format the output's name implies (``.sscore``; ``.txt``/``.txt.gz``: pgsc_calc; else parquet)."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    name = Path(out_path).name
    if name.endswith(".sscore"):
        return "sscore"
    if name.endswith((".txt", ".txt.gz", ".tsv.gz")):
        return "pgsc_calc"
    return "parquet"


@dataclass
class PRSTable:
    """Per-sample scores of every trait, ready to write: ids [n]; ``values`` [n, t] what the
    model reads (standardized, or the raw sums); ``sums``/``allele_ct``/``denom``/``named`` [n, t]
    plink2's per-trait columns (None for the standardized parquet, which holds none); ``shared``
    [3, n] ALLELE_CT, DENOM, NAMED over all scored variants (sscore only, else None)."""

    family_ids: np.ndarray | None
    sample_ids: np.ndarray
    subject_ids: np.ndarray  # object: int or None
    traits: list[str]
    values: np.ndarray
    raw: bool
    sums: np.ndarray
    allele_ct: np.ndarray | None
    denom: np.ndarray | None
    named: np.ndarray | None
    shared: np.ndarray | None

    @property
    def averages(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.denom > 0, self.sums / np.where(self.denom > 0, self.denom, 1), np.nan)


def write_parquet(table: PRSTable, path: str | os.PathLike) -> None:
    families = table.family_ids
    columns = {
        "family_id": pa.nulls(len(table.sample_ids), pa.string()) if families is None else pa.array([str(f) for f in families], pa.string()),
        "sample_id": pa.array([str(s) for s in table.sample_ids], pa.string()),
        "subject_id": pa.array(list(table.subject_ids), pa.int64()),
    }
    # [n_samples, n_traits] transposed once: each trait's column is then a contiguous row that
    # Arrow wraps without a strided copy (thousands of traits write in a fraction of the time)
    if not table.raw:
        for trait, values in zip(table.traits, np.ascontiguousarray(table.values.T, np.float32)):
            columns[trait] = pa.array(values)
    else:
        averages = np.ascontiguousarray(table.averages.T)
        allele_ct, denom = (np.ascontiguousarray(np.rint(x.T).astype(np.int64)) for x in (table.allele_ct, table.denom))
        named = np.ascontiguousarray(table.named.T)
        for j, (trait, sums) in enumerate(zip(table.traits, np.ascontiguousarray(table.sums.T))):
            columns[trait] = columns[f"{trait}_SUM"] = pa.array(sums)
            columns[f"{trait}_AVG"] = pa.array(averages[j], mask=np.isnan(averages[j]))
            columns[f"{trait}_ALLELE_CT"] = pa.array(allele_ct[j])
            columns[f"{trait}_DENOM"] = pa.array(denom[j])
            columns[f"{trait}_NAMED_ALLELE_DOSAGE_SUM"] = pa.array(named[j])
    t = pa.table(columns).replace_schema_metadata({TRAITS_KEY: json.dumps(table.traits).encode()})
    pq.write_table(t, path, use_dictionary=False, write_statistics=False)  # continuous values: no dictionary pages


def _number(x: float) -> str:
    return "NA" if np.isnan(x) else f"{x:.10g}"


def write_sscore(table: PRSTable, path: str | os.PathLike) -> None:
    head = (["#FID", "IID"] if table.family_ids is not None else ["#IID"]) + ["ALLELE_CT", "DENOM", "NAMED_ALLELE_DOSAGE_SUM"]
    head += [f"{t}_AVG" for t in table.traits] + [f"{t}_SUM" for t in table.traits]
    averages = table.averages
    with open(path, "w", newline="\n") as fh:
        fh.write("\t".join(head) + "\n")
        for k in range(len(table.sample_ids)):
            ids = ([str(table.family_ids[k])] if table.family_ids is not None else []) + [str(table.sample_ids[k])]
            numbers = [*table.shared[:, k], *averages[k], *table.sums[k]]
            fh.write("\t".join(ids + [_number(x) for x in numbers]) + "\n")


def write_aggregated(table: PRSTable, path: str | os.PathLike, sampleset: str) -> None:
    averages = table.averages
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:  # no name, no time: same bytes for same scores
        gz.write(b"sampleset\tIID\tPGS\tSUM\tDENOM\tAVG\n")
        for k, iid in enumerate(table.sample_ids):
            for j, trait in enumerate(table.traits):
                row = [sampleset, str(iid), trait, _number(table.sums[k, j]), _number(table.denom[k, j]), _number(averages[k, j])]
                gz.write(("\t".join(row) + "\n").encode())


def write_prs_table(table: PRSTable, path: str | os.PathLike, fmt: str, sampleset: str) -> None:
    """Writes ``table`` to ``path`` in ``fmt`` (parquet, sscore or pgsc_calc)."""
    if fmt == "parquet":
        write_parquet(table, path)
    elif fmt == "sscore":
        write_sscore(table, path)
    elif fmt == "pgsc_calc":
        write_aggregated(table, path, sampleset)
    else:
        raise InvalidInputError(f"format must be one of {FORMATS[1:]}, got {fmt!r}")


__all__ = ["FORMATS", "PRSTable", "output_format", "write_prs_table"]
