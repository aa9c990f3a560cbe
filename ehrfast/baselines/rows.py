"""The MEDS rows a baseline needs, read straight from the shards: only the rows whose code matches
one of a few named regexes (triage vitals, visits, diagnoses), with their split."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrfast.data.meds import STATIC_TIME, data_files, validate_shard_schema
from ehrfast.errors import InvalidInputError


@dataclass(frozen=True)
class MatchedRows:
    """Rows whose code matched, in shard order (MEDS: by subject, then time). ``subject_id``,
    ``time`` (µs, STATIC_TIME for static rows) [n] int64; ``key`` [n] int16: the index of the first
    pattern the code matched; ``code``, ``text`` [n] object (text None when absent);
    ``numeric`` [n] float64 (NaN when absent); ``split`` [n] object."""

    subject_id: np.ndarray
    time: np.ndarray
    key: np.ndarray
    code: np.ndarray
    numeric: np.ndarray
    text: np.ndarray
    split: np.ndarray


def _compile(patterns: dict[str, str]) -> list[re.Pattern]:
    out = []
    for name, pattern in patterns.items():
        try:
            out.append(re.compile(pattern))
        except re.error as exc:
            raise InvalidInputError(f"code pattern {name!r} = {pattern!r} is not a regex: {exc}") from None
    return out


def read_matching_rows(meds_dir: str | os.PathLike, patterns: dict[str, str], splits: tuple[str, ...] | None = None) -> MatchedRows:
    """Every row of ``meds_dir`` (the given ``splits``, default all) whose code matches a pattern
    of ``patterns`` ({name: regex}, searched); ``key`` is the position of the first match."""
    compiled = _compile(patterns)
    parts: dict[str, list] = {k: [] for k in ("subject_id", "time", "key", "code", "numeric", "text", "split")}
    for split, files in data_files(meds_dir).items():
        if splits is not None and split not in splits:
            continue
        for path in files:
            schema = path.schema()
            validate_shard_schema(path.path, schema)  # e.g. ns times: an error, not times 1000x off
            names = schema.names
            table = path.read([c for c in ("subject_id", "time", "code", "numeric_value", "text_value") if c in names])
            codes = table.column("code")
            encoded = codes.combine_chunks().dictionary_encode() if not pa.types.is_dictionary(codes.type) else codes.combine_chunks()
            dictionary = encoded.dictionary.to_pylist()
            lookup = np.array([next((k for k, p in enumerate(compiled) if c is not None and p.search(c)), -1) for c in dictionary] or [-1],
                              np.int16)
            index = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
            key = lookup[index] if len(dictionary) else np.full(len(index), -1, np.int16)
            rows = np.flatnonzero(key >= 0)
            if not len(rows):
                continue
            sub = table.take(pa.array(rows))
            parts["subject_id"].append(sub.column("subject_id").to_numpy().astype(np.int64))
            parts["time"].append(pc.fill_null(pc.cast(sub.column("time"), pa.int64()), STATIC_TIME).to_numpy())
            parts["key"].append(key[rows])
            parts["code"].append(np.asarray(sub.column("code").cast(pa.string()).to_pylist(), dtype=object))
            numeric = sub.column("numeric_value") if "numeric_value" in names else pa.nulls(len(rows), pa.float64())
            parts["numeric"].append(pc.fill_null(pc.cast(numeric, pa.float64()), np.nan).to_numpy(zero_copy_only=False))
            text = sub.column("text_value").cast(pa.string()).to_pylist() if "text_value" in names else [None] * len(rows)
            parts["text"].append(np.asarray(text, dtype=object))
            parts["split"].append(np.full(len(rows), split, dtype=object))
    empty = {"subject_id": np.int64, "time": np.int64, "key": np.int16, "code": object, "numeric": np.float64, "text": object, "split": object}
    return MatchedRows(**{k: np.concatenate(v) if v else np.zeros(0, empty[k]) for k, v in parts.items()})


def subject_splits(meds_dir: str | os.PathLike) -> dict[int, str]:
    """{subject_id: split} over every shard of ``meds_dir``."""
    out: dict[int, str] = {}
    for split, files in data_files(meds_dir).items():
        for path in files:
            for s in np.unique(path.read(["subject_id"]).column("subject_id").to_numpy()).tolist():
                out[int(s)] = split
    return out


def number(text) -> float:
    """A text value as a number (NaN when it is not one)."""
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        return float("nan")
