"""The token vocabulary: strings in id order, each with a kind, plus interval durations."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ehrfast.errors import InvalidInputError
from ehrfast.inputs import read_json

PAD, UNK, TIMELINE_END = "[PAD]", "[UNK]", "TIMELINE_END"
RESERVED = (PAD, UNK, TIMELINE_END)  # fixed ids 0, 1, 2
KINDS = ("special", "quantile", "interval", "visit", "static", "code")


@dataclass(frozen=True)
class IntervalDuration:
    """Durations behind one interval token, fitted on the training split (µs)."""

    lower_us: int
    mean_us: float | None
    median_us: float | None
    n: int


@dataclass
class Vocabulary:
    tokens: list[str]
    kinds: list[str]
    intervals: dict[str, IntervalDuration] = field(default_factory=dict)

    def __post_init__(self):
        if len(self.tokens) != len(self.kinds):
            raise InvalidInputError("tokens and kinds must have equal length")
        self._index = {t: i for i, t in enumerate(self.tokens)}
        if len(self._index) != len(self.tokens):
            raise InvalidInputError("duplicate token strings in the vocabulary")
        for i, t in enumerate(RESERVED):
            if self.tokens[i] != t:
                raise InvalidInputError(f"reserved token {t!r} must have id {i}")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def id(self, token: str) -> int:
        return self._index[token]

    def get(self, token: str, default: int | None = None) -> int | None:
        return self._index.get(token, default)

    def decode(self, ids) -> list[str]:
        """Token ids -> token strings."""
        ids = np.asarray(ids)
        bad = (ids < 0) | (ids >= len(self.tokens))
        if bad.any():
            raise InvalidInputError(f"token id {ids[bad][0]} is outside the vocabulary (size {len(self.tokens)})")
        return [self.tokens[i] for i in ids.tolist()]

    def ids_of_kind(self, kind: str) -> np.ndarray:
        return np.array([i for i, k in enumerate(self.kinds) if k == kind], np.int64)

    def interval_duration_us(self, statistic: str = "mean") -> np.ndarray:
        """[vocab] float64 µs each token adds to elapsed time (0 for non-interval tokens);
        the sampler uses this. ``statistic``: "mean", "median" or "lower"."""
        out = np.zeros(len(self.tokens))
        for tok, d in self.intervals.items():
            value = {"mean": d.mean_us, "median": d.median_us, "lower": d.lower_us}[statistic]
            out[self._index[tok]] = d.lower_us if value is None else value
        return out

    def to_json(self) -> dict:
        return {
            "tokens": self.tokens,
            "kinds": self.kinds,
            "intervals": {t: vars(d) for t, d in self.intervals.items()},
        }

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        d = read_json(path, what="vocabulary")
        return cls(d["tokens"], d["kinds"], {t: IntervalDuration(**v) for t, v in d.get("intervals", {}).items()})
