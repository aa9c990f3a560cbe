"""Tokenizer configuration: a dataclass saved as ``tokenizer.json`` beside every output."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ehrfast.errors import InvalidInputError
from ehrfast.tokenize.rules import PACKAGE_MAPS, CodeRule
from ehrfast.units import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE

MINUTE, HOUR, DAY = US_PER_MINUTE, US_PER_HOUR, US_PER_DAY

# ETHOS's 19 interval bins: (token, lower edge µs). The last bin repeats for long gaps.
ETHOS_INTERVALS = [
    ("5m-15m", 5 * MINUTE), ("15m-45m", 15 * MINUTE), ("45m-1h15m", 45 * MINUTE), ("1h15m-2h", 75 * MINUTE),
    ("2h-3h", 2 * HOUR), ("3h-5h", 3 * HOUR), ("5h-8h", 5 * HOUR), ("8h-12h", 8 * HOUR), ("12h-18h", 12 * HOUR),
    ("18h-1d", 18 * HOUR), ("1d-2d", DAY), ("2d-4d", 2 * DAY), ("4d-7d", 4 * DAY), ("7d-12d", 7 * DAY),
    ("12d-20d", 12 * DAY), ("20d-30d", 20 * DAY), ("30d-2mt", 30 * DAY), ("2mt-6mt", 60 * DAY), ("=6mt", 180 * DAY),
]
# Long-horizon primary-care data (the genomics paper: 1 day up to 10 years).
PRIMARY_CARE_INTERVALS = [
    ("1d-7d", DAY), ("7d-1mt", 7 * DAY), ("1mt-3mt", 30 * DAY), ("3mt-6mt", 91 * DAY), ("6mt-1y", 182 * DAY),
    ("1y-2y", 365 * DAY), ("2y-5y", 730 * DAY), ("5y-10y", 1826 * DAY), ("=10y", 3652 * DAY),
]
INTERVAL_PRESETS = {"ethos": ETHOS_INTERVALS, "primary_care": PRIMARY_CARE_INTERVALS}
TOKENIZER_FORMAT_VERSION = 1
AGE_ROUNDINGS = ("half_up", "ethos")
PRESETS_DIR = Path(__file__).resolve().parent / "presets"
TOKENIZER_PRESETS = ("ethos_mimic",)


@dataclass(frozen=True)
class VisitRule:
    """Codes matching ``start`` (a regex, searched) open a visit: ``VISIT_START//<name>`` is
    emitted before them; codes matching ``end`` close it: ``VISIT_END//<name>`` after them."""

    name: str
    start: str
    end: str

    def start_token(self) -> str:
        return f"VISIT_START//{self.name}"

    def end_token(self) -> str:
        return f"VISIT_END//{self.name}"


@dataclass(frozen=True)
class TokenizerConfig:
    intervals: str = "ethos"  # preset name: "ethos" or "primary_care"
    n_quantiles: int = 10  # Q1..Qk for numeric values (also the age digits)
    min_values_for_quantiles: int = 10  # codes with fewer training values emit only the code
    age_tokens: bool = True  # two Q tokens (tens, units of age) after the static tokens
    age_rounding: str = "half_up"  # "half_up" (years of 365.25 days, units half up) or "ethos" (the reference: whole days, half to even, carry)
    birth_code: str = "MEDS_BIRTH"
    min_events: int = 1  # subjects with fewer timed events are dropped
    max_events: int | None = None  # ... or with more
    min_subjects: int = 1  # codes seen in fewer training subjects are rare
    rare_codes: str = "unk"  # rare and unseen codes: "unk" -> [UNK], "drop" -> nothing
    timeline_end: bool = True
    visit_rules: tuple[VisitRule, ...] = ()
    hierarchical_prefixes: tuple[str, ...] = ()  # e.g. ("DIAGNOSIS//ICD//10//",)
    hierarchical_category_length: int = 3
    code_rules: tuple[CodeRule, ...] = ()  # ehrfast/tokenize/rules.py: drop, map, rewrite, split, value_token, reorder
    train_split: str = "train"
    extra: dict = field(default_factory=dict)  # free-form notes kept with the output

    def __post_init__(self):
        if self.intervals not in INTERVAL_PRESETS:
            raise InvalidInputError(f"intervals must be one of {sorted(INTERVAL_PRESETS)}, got {self.intervals!r}")
        if not 1 <= self.n_quantiles <= 100:
            raise InvalidInputError(f"n_quantiles must be in 1..100, got {self.n_quantiles}")
        if self.age_rounding not in AGE_ROUNDINGS:
            raise InvalidInputError(f"age_rounding must be one of {AGE_ROUNDINGS}, got {self.age_rounding!r}")
        if self.rare_codes not in ("unk", "drop"):
            raise InvalidInputError(f"rare_codes must be 'unk' or 'drop', got {self.rare_codes!r}")
        if self.min_events < 0 or (self.max_events is not None and self.max_events < self.min_events):
            raise InvalidInputError("need 0 <= min_events <= max_events")
        object.__setattr__(self, "code_rules", tuple(self.code_rules))
        for rule in self.visit_rules:
            for pattern in (rule.start, rule.end):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise InvalidInputError(f"visit rule {rule.name!r}: bad pattern {pattern!r}: {exc}") from None

    def interval_bins(self) -> list[tuple[str, int]]:
        return list(INTERVAL_PRESETS[self.intervals])

    def quantile_probs(self) -> list[float]:
        return [i / self.n_quantiles for i in range(1, self.n_quantiles)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["visit_rules"] = [asdict(r) for r in self.visit_rules]
        d["hierarchical_prefixes"] = list(self.hierarchical_prefixes)
        d["code_rules"] = [r.to_dict() for r in self.code_rules]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TokenizerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InvalidInputError(f"unknown tokenizer config keys: {sorted(unknown)}")
        d = dict(d)
        d["visit_rules"] = tuple(VisitRule(**r) for r in d.get("visit_rules", ()))
        d["hierarchical_prefixes"] = tuple(d.get("hierarchical_prefixes", ()))
        d["code_rules"] = tuple(r if isinstance(r, CodeRule) else CodeRule.from_dict(r) for r in d.get("code_rules", ()))
        return cls(**d)

    @classmethod
    def preset(cls, name: str) -> TokenizerConfig:
        """A shipped configuration (``ehrfast/tokenize/presets/<name>.json``): ``ethos_mimic``,
        the ETHOS-ARES reference's MIMIC-IV tokenization (ARES.md S13)."""
        path = PRESETS_DIR / f"{name}.json"
        if name not in TOKENIZER_PRESETS or not path.is_file():
            raise InvalidInputError(f"unknown tokenizer preset {name!r}; choose from {list(TOKENIZER_PRESETS)}")
        return cls.load(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenizerConfig:
        """Reads a config file: either a bare config or a saved ``tokenizer.json``."""
        d = json.loads(Path(path).read_text())
        d = {k: v for k, v in d.get("config", d).items() if not k.startswith("_")}  # "_about": a comment
        rules = []
        for r in d.get("code_rules", ()):  # a map's CSV path is relative to the config file
            r = dict(r)
            if r.get("csv") and not r["csv"].startswith(PACKAGE_MAPS) and not Path(r["csv"]).is_absolute():
                r["csv"] = str(Path(path).resolve().parent / r["csv"])
            rules.append(r)
        d["code_rules"] = rules
        return cls.from_dict(d)
