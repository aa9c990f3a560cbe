"""Incidence tasks (the genomics paper's): a target code set chosen by patterns, a time horizon,
where the prediction time sits, and the sampling settings."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Protocol

import numpy as np

from ehrfast.errors import InvalidInputError
from ehrfast.task.files import number_as_text_hint, read_task_mapping
from ehrfast.units import US_PER_DAY, US_PER_YEAR


class TokenVocabulary(Protocol):
    """What a task reads of a vocabulary: the token strings and their kinds, in id order."""

    tokens: Sequence[str]
    kinds: Sequence[str]

AGGREGATIONS = ("mean", "median", "max")


@dataclass(frozen=True)
class Task:
    name: str
    # Any of these regexes, searched in the code alone and case-sensitive, as ACES matches a
    # predicate's code ("^MEDS_DEATH$" matches MEDS_DEATH); with match_descriptions also in the
    # code's description, case-insensitive ("myocardial infarction").
    target_regex: tuple[str, ...] = ()
    target_all_of: tuple[str, ...] = ()  # or all of these substrings of "code description" (case-insensitive)
    match_descriptions: bool = False
    horizon_years: float = 10.0
    max_new_tokens: int = 512
    n_samples: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    stop_tokens: tuple[str, ...] = ("TIMELINE_END", "MEDS_DEATH")
    aggregation: str = "mean"
    index_offset_days: float = 0.0  # for `ehrfast label`: prediction time = first event + offset
    prevalence_window_days: float = 1.0  # targets recorded this soon after the prediction time count as prevalent
    history_days: float | None = None  # EHR history the context shows before the prediction time (None: all; 0: demographics only)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        where = f"task {self.name!r}"
        if not self.target_regex and not self.target_all_of:
            raise InvalidInputError(f"{where}: give target_regex or target_all_of")
        if self.aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"{where}: aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        # written as "not (x in range)" so that NaN, which compares false, is refused too
        if not 0 < self.top_p <= 1:
            raise InvalidInputError(f"{where}: top_p must be in (0, 1], got {self.top_p}")
        if not 0 < self.temperature < float("inf"):
            raise InvalidInputError(f"{where}: temperature must be a positive finite number, got {self.temperature}")
        if not 0 < self.horizon_years < float("inf"):
            raise InvalidInputError(f"{where}: horizon_years must be a positive finite number, got {self.horizon_years}")
        for name in ("n_samples", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise InvalidInputError(f"{where}: {name} must be a positive integer, got {value!r}")
        for name in ("index_offset_days", "prevalence_window_days"):
            if not -float("inf") < getattr(self, name) < float("inf"):
                raise InvalidInputError(f"{where}: {name} must be a finite number, got {getattr(self, name)}")
        if self.history_days is not None and not 0 <= self.history_days < float("inf"):
            raise InvalidInputError(f"{where}: history_days must be >= 0 or None, got {self.history_days}")
        for pattern in self.target_regex:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidInputError(f"task {self.name!r}: bad regex {pattern!r}: {exc}") from None

    @property
    def horizon_us(self) -> float:
        return self.horizon_years * US_PER_YEAR

    @property
    def history_us(self) -> float | None:
        return None if self.history_days is None else self.history_days * US_PER_DAY

    def matches(self, code: str, description: str = "") -> bool:
        if any(re.search(p, code) for p in self.target_regex):
            return True
        if self.match_descriptions and description and any(re.search(p, description, flags=re.IGNORECASE) for p in self.target_regex):
            return True
        text = f"{code} {description}".lower()
        return bool(self.target_all_of) and all(s.lower() in text for s in self.target_all_of)

    def target_codes(self, descriptions: dict[str, str]) -> list[str]:
        return sorted(c for c, d in descriptions.items() if self.matches(c, d or ""))

    def target_token_ids(self, vocab: TokenVocabulary, descriptions: dict[str, str] | None = None) -> np.ndarray:
        """Vocabulary ids of code tokens whose code (or its description) matches."""
        descriptions = descriptions or {}
        ids = [i for i, (t, k) in enumerate(zip(vocab.tokens, vocab.kinds)) if k in ("code", "static") and self.matches(t, descriptions.get(t, ""))]
        return np.array(ids, np.int64)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "task") -> Task:
        """A task from a mapping of its settings; ``source`` (a file name) prefixes errors. Keys
        and value types are checked: an unknown key names the allowed ones."""
        d = dict(d)
        allowed = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise InvalidInputError(f"{source}: unknown key(s) {unknown}; a task takes {sorted(allowed)}")
        for key in ("target_regex", "target_all_of", "stop_tokens"):
            if key in d and isinstance(d[key], str):
                d[key] = (d[key],)
            if key in d:
                if not isinstance(d[key], list | tuple) or not all(isinstance(x, str) for x in d[key]):
                    raise InvalidInputError(f"{source}: '{key}' must be a string or a list of strings, got {d[key]!r}")
                d[key] = tuple(d[key])
        for key, kind in (("horizon_years", float), ("temperature", float), ("top_p", float), ("index_offset_days", float),
                          ("prevalence_window_days", float), ("history_days", float), ("n_samples", int), ("max_new_tokens", int)):
            value = d.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not float(value).is_integer()):
                raise InvalidInputError(f"{source}: '{key}' must be {'an integer' if kind is int else 'a number'}, got {value!r}"
                                        f"{number_as_text_hint(value)}")
            d[key] = kind(value)
        for key in ("name", "aggregation"):
            if key in d and not isinstance(d[key], str):
                raise InvalidInputError(f"{source}: '{key}' must be a string, got {d[key]!r}")
        if "match_descriptions" in d and not isinstance(d["match_descriptions"], bool):
            raise InvalidInputError(f"{source}: 'match_descriptions' must be true or false, got {d['match_descriptions']!r}")
        if "extra" in d and not isinstance(d["extra"], dict):
            raise InvalidInputError(f"{source}: 'extra' must be a mapping, got {d['extra']!r}")
        try:
            return cls(**d)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Task:
        """Reads an incidence task file (``.yaml``/``.yml`` or JSON); its name defaults to the file stem."""
        return cls.from_dict(read_task_mapping(path), source=str(path))
