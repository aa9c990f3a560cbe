"""Declarative code rules (ARES.md S13): how a source code becomes tokens, applied in order.

A rule list turns each distinct source code into its token strings once, when the code table is
built, so both backends (the C++ core and the Python reference) read the same table and stay
identical; only ``reorder`` changes the rows themselves (before either backend sees them).

* ``drop``: codes starting with ``prefix`` emit nothing (like a filtered row: no interval token either).
* ``map``: a code matching ``pattern`` (named group ``code``) is looked up in a CSV map
  (``key`` → ``value`` columns) and rewritten to ``into`` (a template over ``code``); codes
  without an entry are dropped. ``choose`` settles several candidates: ``first`` (in file order),
  ``first_sorted``, ``category_if_several`` (the reference's ICD-9 → 10 CM rule: the 3-character
  category of the sorted first when there are several, else the one code), or ``all`` (each
  candidate in file order, its tokens one after the other: a drug with k ATC codes gives k
  triples). ``lower`` looks the code up stripped and lower-cased. Later rules see the rewritten
  code(s).
* ``rewrite``: a code matching ``pattern`` becomes ``tokens`` (templates over its named groups;
  ``maps`` {group: {value: replacement, "*": default}} translate a group first; ``integers``
  groups lose leading zeros; in ``first_space`` groups the first space becomes "_").
* ``split``: a code matching ``pattern`` (named group ``code``) becomes the hierarchical tokens
  of ``scheme`` under ``out``: ``icd10cm`` → out//<3 chars>, out//3-6//<chars 4–6>,
  out//SFX//<7+>; ``icd10pcs`` → one out//<c> per character (7 for a full code); ``atc`` →
  out//<3 chars>, out//4//<4th>, out//SFX//<rest>.
* ``value_token``: a code matching ``pattern`` takes its value as the quantile index (acuity
  3 → Q3), clamped to 1..n_quantiles, instead of fitted cut points.
* ``reorder``: at one time, rows matching ``first`` move before the first row matching ``before``
  (MEDS_DEATH before a same-time HOSPITAL_DISCHARGE//…).
* ``static_latest``: a code whose one token starts with ``prefix`` (a category such as
  ``MARITAL//``) leaves the timeline and becomes a time-varying static token: a context or a
  training window starts with the category's latest token at its start, or ``MARITAL//UNKNOWN``
  when none came before (the reference's patient context; ``TokenizedDataset.head``).

The first ``drop``/``rewrite``/``split`` that applies decides a code's tokens; a code no rule
decides keeps its own name (and the tokenizer's hierarchical prefixes still apply).
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from ehrfast.errors import InputNotFoundError, InvalidInputError

KINDS = ("drop", "map", "rewrite", "split", "value_token", "reorder", "static_latest")
SCHEMES = ("icd10cm", "icd10pcs", "atc")
CHOICES = ("first", "first_sorted", "category_if_several", "all")
DROPPED: list[str] = []  # the tokens of a dropped code (a shared empty list: compare with `is`)


def _regex(rule: str, pattern: str, group: str | None = None) -> re.Pattern:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidInputError(f"{rule} rule: bad pattern {pattern!r}: {exc}") from None
    if group and group not in compiled.groupindex:
        raise InvalidInputError(f"{rule} rule: pattern {pattern!r} needs a named group (?P<{group}>...)")
    return compiled


@dataclass(frozen=True)
class CodeRule:
    """One rule; which fields matter depends on ``kind`` (see the module docstring)."""

    kind: str
    prefix: str = ""
    pattern: str = ""
    tokens: tuple[str, ...] = ()
    maps: dict = field(default_factory=dict)
    integers: tuple[str, ...] = ()
    first_space: tuple[str, ...] = ()  # rewrite: groups whose first space becomes "_" (the reference's polars str.replace)
    scheme: str = ""
    out: str = ""
    csv: str = ""
    key: str = ""
    value: str = ""
    into: str = ""
    choose: str = "first"
    lower: bool = False  # map: look the code up stripped and lower-cased (drug names)
    first: str = ""
    before: str = ""

    def __post_init__(self):
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "integers", tuple(self.integers))
        object.__setattr__(self, "first_space", tuple(self.first_space))
        if self.kind not in KINDS:
            raise InvalidInputError(f"code rule kind must be one of {KINDS}, got {self.kind!r}")
        k = self.kind
        if k in ("drop", "static_latest") and not self.prefix:
            raise InvalidInputError(f"{k} rule: needs a prefix")
        if k == "static_latest" and not self.prefix.endswith("//"):
            raise InvalidInputError(f"static_latest rule: the prefix {self.prefix!r} must end with '//' (a category: MARITAL//)")
        if k in ("map", "split"):
            _regex(k, self.pattern, "code")
        if k in ("rewrite", "value_token"):
            _regex(k, self.pattern)
        if k == "rewrite":
            if not self.tokens:
                raise InvalidInputError(f"rewrite rule {self.pattern!r}: needs tokens")
            groups = set(re.compile(self.pattern).groupindex)
            for t in self.tokens:
                used = set(re.findall(r"{(\w+)}", t))
                if used - groups:
                    raise InvalidInputError(f"rewrite rule {self.pattern!r}: token {t!r} uses unknown group(s) {sorted(used - groups)}")
        if k == "split" and (self.scheme not in SCHEMES or not self.out):
            raise InvalidInputError(f"split rule {self.pattern!r}: scheme must be one of {SCHEMES} and out a token prefix")
        if k == "map" and (not self.csv or not self.key or not self.value or "{code}" not in self.into or self.choose not in CHOICES):
            raise InvalidInputError(f"map rule {self.pattern!r}: needs csv, key, value, into (with {{code}}) and choose in {CHOICES}")
        if k == "reorder":
            _regex(k, self.first)
            _regex(k, self.before)

    def to_dict(self) -> dict:
        """The kind and every field that differs from its default (lists for tuples)."""
        d: dict = {"kind": self.kind}
        for f in fields(self):
            v = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if f.name != "kind" and v != default and v != tuple(default or ()):
                d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CodeRule:
        known = {f.name for f in fields(cls)}
        if unknown := set(d) - known:
            raise InvalidInputError(f"code rule {d.get('kind')!r}: unknown key(s) {sorted(unknown)}")
        return cls(**d)


PACKAGE_MAPS = "ehrfast:"  # a map shipped with ehrfast: "ehrfast:maps/<file>" (ehrfast/tokenize/maps/)


def map_path(name: str, base_dir: Path | None) -> Path:
    """Where a map rule's CSV is: ``ehrfast:maps/...`` inside the package, an absolute path, or a
    path relative to ``base_dir`` (the config file's folder; else the working directory)."""
    if name.startswith(PACKAGE_MAPS):
        return Path(__file__).resolve().parent / name[len(PACKAGE_MAPS):]
    path = Path(name)
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _read_map(path: Path, key: str, value: str, lower: bool = False) -> dict[str, list[str]]:
    if not path.is_file():
        raise InputNotFoundError(f"map rule: no such CSV {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    out: dict[str, list[str]] = {}
    with opener(path, "rt", newline="") as f:
        reader = csv.DictReader(f)
        if key not in (reader.fieldnames or []) or value not in (reader.fieldnames or []):
            raise InvalidInputError(f"{path}: needs columns {key!r} and {value!r}, has {reader.fieldnames}")
        for row in reader:
            k, v = row[key], row[value]
            if k and v and v not in ("NoDx", "NoPCS"):  # the reference's null markers
                out.setdefault(k.strip().lower() if lower else k, []).append(v.strip())
    return out


class CodeRules:
    """A compiled rule list: ``tokens_of(code)`` (None: no rule decided; ``DROPPED``: emits
    nothing), ``value_token(code)``, and ``reorder(...)`` for the rows of a shard."""

    def __init__(self, rules: tuple[CodeRule, ...], base_dir: str | os.PathLike | None = None):
        self.rules = tuple(rules)
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self._maps: dict[int, dict[str, list[str]]] = {}

    def _map(self, i: int, rule: CodeRule) -> dict[str, list[str]]:
        if i not in self._maps:
            self._maps[i] = _read_map(map_path(rule.csv, self.base_dir), rule.key, rule.value, rule.lower)
        return self._maps[i]

    @cached_property
    def _compiled(self) -> list[tuple[CodeRule, re.Pattern | None]]:
        return [(r, re.compile(r.pattern) if r.pattern else None) for r in self.rules]

    def resolve(self, code: str) -> list[str] | str:
        """What the rules make of ``code``: its token strings when a rule decided them
        (``DROPPED``, an empty list, for a dropped code), else the code itself after the ``map``
        rules — for the tokenizer's default (the code's own name, hierarchical prefixes)."""
        return self._resolve_from(0, code)

    def _resolve_from(self, start: int, code: str) -> list[str] | str:
        for i in range(start, len(self._compiled)):
            rule, pattern = self._compiled[i]
            if rule.kind == "drop" and code.startswith(rule.prefix):
                return DROPPED
            if rule.kind == "map" and (m := pattern.search(code)):
                key = m.group("code").strip().lower() if rule.lower else m.group("code")
                candidates = self._map(i, rule).get(key)
                if not candidates:
                    return DROPPED
                if rule.choose == "all":
                    out: list[str] = []
                    for c in dict.fromkeys(candidates):  # distinct, in file order
                        r = self._resolve_from(i + 1, rule.into.format(code=c))
                        out += r if isinstance(r, list) else [r]
                    return out
                if rule.choose == "first_sorted":
                    chosen = sorted(candidates)[0]
                elif rule.choose == "category_if_several":
                    chosen = sorted(candidates)[0][:3] if len(candidates) > 1 else candidates[0]
                else:
                    chosen = candidates[0]
                code = rule.into.format(code=chosen)
            elif rule.kind == "rewrite" and (m := pattern.search(code)):
                groups = {}
                for name, v in m.groupdict(default="").items():
                    table = rule.maps.get(name)
                    if table is not None:
                        v = table.get(v, table.get("*", v))
                    if name in rule.integers and v.strip().isdigit():
                        v = str(int(v))
                    if name in rule.first_space:
                        v = v.replace(" ", "_", 1)
                    groups[name] = v
                return [t.format(**groups) for t in rule.tokens]
            elif rule.kind == "split" and (m := pattern.search(code)):
                return split_code(m.group("code"), rule.scheme, rule.out)
        return code

    def value_token(self, code: str) -> bool:
        """Whether ``code``'s value is its quantile index (a ``value_token`` rule matches)."""
        return any(r.kind == "value_token" and p.search(code) for r, p in self._compiled)

    @property
    def latest_prefixes(self) -> list[str]:
        """The ``static_latest`` categories' token prefixes, in rule order."""
        return [r.prefix for r in self.rules if r.kind == "static_latest"]

    def latest_category(self, tokens: list[str]) -> int:
        """The ``static_latest`` category of a code's tokens (−1: none): a code with one token
        under a category's prefix."""
        if len(tokens) == 1:
            for k, prefix in enumerate(self.latest_prefixes):
                if tokens[0].startswith(prefix):
                    return k
        return -1

    @property
    def reorders(self) -> list[tuple[re.Pattern, re.Pattern]]:
        return [(re.compile(r.first), re.compile(r.before)) for r in self.rules if r.kind == "reorder"]

    def to_list(self) -> list[dict]:
        return [r.to_dict() for r in self.rules]


def unknown_token(prefix: str) -> str:
    """A ``static_latest`` category's token when no value came before: ``MARITAL//UNKNOWN``."""
    return f"{prefix}UNKNOWN"


def split_code(code: str, scheme: str, out: str) -> list[str]:
    """The hierarchical tokens of one code (dots removed) under ``scheme``."""
    c = code.replace(".", "").strip()
    if not c:
        return DROPPED
    if scheme == "icd10cm":
        parts = [f"{out}//{c[:3]}"]
        if len(c) > 3:
            parts.append(f"{out}//3-6//{c[3:6]}")
        if len(c) > 6:
            parts.append(f"{out}//SFX//{c[6:]}")
        return parts
    if scheme == "icd10pcs":
        return [f"{out}//{ch}" for ch in c]
    parts = [f"{out}//{c[:3]}"]  # atc
    if len(c) > 3:
        parts.append(f"{out}//4//{c[3]}")
    if len(c) > 4:
        parts.append(f"{out}//SFX//{c[4:]}")
    return parts


def reorder_permutation(time: np.ndarray, codes: list[str], code_index: np.ndarray, seg: np.ndarray,
                        reorders: list[tuple[re.Pattern, re.Pattern]]) -> np.ndarray | None:
    """The row order after the ``reorder`` rules (None: unchanged). ``codes`` is the shard's code
    dictionary, ``code_index`` [n] its rows' codes, ``seg`` the subject boundaries; rows of one
    subject at one time matching ``first`` move, in their order, before the first row there
    matching ``before``."""
    if not reorders or not len(time):
        return None
    perm = np.arange(len(time))
    changed = False
    for first, before in reorders:
        is_first = np.array([bool(first.search(c)) for c in codes] or [False])[code_index]
        is_before = np.array([bool(before.search(c)) for c in codes] or [False])[code_index]
        subject = np.repeat(np.arange(len(seg) - 1), np.diff(seg))
        for r in np.flatnonzero(is_first[perm]):
            # the group of rows of this subject at this time, in the current order
            row = perm[r]
            lo = r
            while lo > 0 and subject[perm[lo - 1]] == subject[row] and time[perm[lo - 1]] == time[row]:
                lo -= 1
            targets = [j for j in range(lo, r) if is_before[perm[j]]]
            if targets:
                j = targets[0]
                perm = np.r_[perm[:j], perm[r], perm[j:r], perm[r + 1:]]
                changed = True
    return perm if changed else None

