"""Zero-shot tasks: a target token set chosen by code patterns, a time horizon and sampling
settings. Loaded from a small YAML or JSON file."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ehrfast.tokenize.reference import US_PER_DAY, US_PER_YEAR
from ehrfast.tokenize.vocab import Vocabulary

AGGREGATIONS = ("mean", "median", "max")


@dataclass(frozen=True)
class Task:
    name: str
    target_regex: tuple[str, ...] = ()  # any of these regexes (searched in code or description)
    target_all_of: tuple[str, ...] = ()  # or all of these substrings (case-insensitive)
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
        if not self.target_regex and not self.target_all_of:
            raise ValueError(f"task {self.name!r}: give target_regex or target_all_of")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError("need 0 < top_p <= 1 and temperature > 0")
        if self.n_samples < 1 or self.max_new_tokens < 1 or self.horizon_years <= 0:
            raise ValueError("n_samples, max_new_tokens and horizon_years must be positive")
        if self.history_days is not None and self.history_days < 0:
            raise ValueError(f"task {self.name!r}: history_days must be >= 0 or None, got {self.history_days}")
        for pattern in self.target_regex:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"task {self.name!r}: bad regex {pattern!r}: {exc}") from None

    @property
    def horizon_us(self) -> float:
        return self.horizon_years * US_PER_YEAR

    @property
    def history_us(self) -> float | None:
        return None if self.history_days is None else self.history_days * US_PER_DAY

    def matches(self, code: str, description: str = "") -> bool:
        text = f"{code} {description}"
        if any(re.search(p, text, flags=re.IGNORECASE) for p in self.target_regex):
            return True
        return bool(self.target_all_of) and all(s.lower() in text.lower() for s in self.target_all_of)

    def target_codes(self, descriptions: dict[str, str]) -> list[str]:
        return sorted(c for c, d in descriptions.items() if self.matches(c, d or ""))

    def target_token_ids(self, vocab: Vocabulary, descriptions: dict[str, str] | None = None) -> np.ndarray:
        """Vocabulary ids of code tokens whose code (or its description) matches."""
        descriptions = descriptions or {}
        ids = [i for i, (t, k) in enumerate(zip(vocab.tokens, vocab.kinds)) if k in ("code", "static") and self.matches(t, descriptions.get(t, ""))]
        return np.array(ids, np.int64)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        d = dict(d)
        for key in ("target_regex", "target_all_of", "stop_tokens"):
            if key in d and isinstance(d[key], str):
                d[key] = (d[key],)
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Task:
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a task file holds one mapping of task settings")
        data.setdefault("name", Path(path).stem)
        return cls.from_dict(data)


def code_descriptions(meds_dir: str | os.PathLike) -> dict[str, str]:
    """code -> description from ``metadata/codes.parquet`` (empty when absent)."""
    path = Path(meds_dir) / "metadata" / "codes.parquet"
    if not path.exists():
        return {}
    t = pq.read_table(path, columns=[c for c in ("code", "description") if c in pq.read_schema(path).names])
    if "description" not in t.column_names:
        return {}
    return {c: d or "" for c, d in zip(t.column("code").to_pylist(), t.column("description").to_pylist())}
