"""The Tokenizer: fitted on the training split, applied to every split.

Fitting (``fit_statistics``, then ``fit_durations`` while ``tokenize_dataset`` writes the
training split) reads the training shards twice: once for code frequencies, numeric values and event
counts (vocabulary, quantile cut points, filters), once to tokenize them, which also yields
the real gaps behind every interval token (their mean and median durations). The rows →
tokens step runs in the C++ core or in the Python reference (``backend``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast.backends import require_core, resolve_backend
from ehrfast.data.reader import ShardRows, SubjectRegistry, read_shard, shards_in_order
from ehrfast.errors import InputNotFoundError, InvalidInputError
from ehrfast.inputs import read_parquet
from ehrfast.io import NpyAppender
from ehrfast.tokenize import reference
from ehrfast.tokenize.config import TOKENIZER_FORMAT_VERSION, TokenizerConfig
from ehrfast.tokenize.rules import CodeRules, reorder_permutation, unknown_token
from ehrfast.tokenize.vocab import RESERVED, TIMELINE_END, UNK, IntervalDuration, Vocabulary

DROP, BIRTH = reference.DROP, reference.BIRTH
CACHE_ROWS = 200_000_000  # training rows kept in memory between the two fitting passes (~3 GB)


@dataclass
class CodeTable:
    """What each entry (a known source code, plus one entry for unknown codes) emits."""

    codes: list[str]
    pre: list[list[int]]
    post: list[list[int]]
    cuts: list[list[float]]
    unknown_entry: int | None  # None when unknown codes are dropped

    def csr(self) -> dict[str, np.ndarray]:
        def pack(lists, dtype):
            off = np.zeros(len(lists) + 1, np.int64)
            off[1:] = np.cumsum([len(x) for x in lists])
            flat = np.fromiter((v for x in lists for v in x), dtype=dtype, count=int(off[-1]))
            return off, flat

        pre_off, pre = pack(self.pre, np.int32)
        post_off, post = pack(self.post, np.int32)
        cut_off, cuts = pack(self.cuts, np.float64)
        return {"pre_off": pre_off, "pre": pre, "post_off": post_off, "post": post, "cut_off": cut_off, "cuts": cuts}


@dataclass(frozen=True)
class TimelineRules:
    interval_lower: np.ndarray  # [n_bins] int64 µs
    interval_token: np.ndarray  # [n_bins] int32
    q_first: int
    n_quantiles: int
    timeline_end: int
    age_tokens: bool
    age_rounding: str = "half_up"

    def age_rounding_code(self) -> int:
        """The C++ core's code of ``age_rounding`` (kAgeHalfUp 0, kAgeEthos 1)."""
        return {"half_up": 0, "ethos": 1}[self.age_rounding]


@dataclass
class ShardTokens:
    """Tokenized subjects of one shard (see TokenizedDataset for the meaning of each array)."""

    tokens: np.ndarray | None  # [n_tokens] int32; None when streamed to files
    times: np.ndarray | None  # [n_tokens] int64 µs; None when streamed to files
    n_tokens: np.ndarray  # [kept subjects] int64
    subject_ids: np.ndarray  # [kept subjects] int64
    static_lengths: np.ndarray  # [kept subjects] int32
    births: np.ndarray  # [kept subjects] int64 µs, STATIC_TIME when unknown
    n_filtered: dict = field(default_factory=dict)
    # static_latest rows of the kept subjects: (count per subject [kept] int64, times [k] int64 µs, token ids [k] int32)
    latest: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def code_tokens(config: TokenizerConfig, code: str, rules: CodeRules | None = None) -> list[str]:
    """The token strings one source code emits (before any value token): what the config's code
    rules make of it (``rules``: the compiled ``config.code_rules``; an empty list for a dropped
    code), else, with hierarchical prefixes, e.g. DIAGNOSIS//ICD//10//E119 ->
    DIAGNOSIS//ICD//10//E11, DIAGNOSIS//ICD//10//REST//9, else the code itself."""
    if config.code_rules:
        resolved = (rules or CodeRules(config.code_rules)).resolve(code)
        if isinstance(resolved, list):
            return list(resolved)
        code = resolved
    for prefix in config.hierarchical_prefixes:
        cut = len(prefix) + config.hierarchical_category_length
        if code.startswith(prefix) and len(code) > cut:
            return [code[:cut], f"{prefix}REST//{code[cut:]}"]
    return [code]


def value_token_cuts(n_quantiles: int) -> list[float]:
    """Cut points that make a value its own quantile index: Q(1 + #cuts < v) = Qv for v = 1..n."""
    return [k + 0.5 for k in range(1, n_quantiles)]


def _event_counts(shard: ShardRows, entry_of_code: np.ndarray, birth_entry: int, backend: str | None) -> np.ndarray:
    """Timed, non-birth rows per subject; ``entry_of_code`` maps the shard's dictionary codes."""
    args = (shard.time, shard.code_index, entry_of_code, shard.seg, birth_entry)
    if resolve_backend(backend, "tokenizer") == "cpp":
        return require_core().event_counts(*args)
    return reference.event_counts_reference(*args)


def _keep_mask(config: TokenizerConfig, events: np.ndarray) -> tuple[np.ndarray, dict]:
    few = events < config.min_events
    many = events > config.max_events if config.max_events is not None else np.zeros(len(events), bool)
    return ~(few | many), {"too_few_events": int(few.sum()), "too_many_events": int(many.sum())}


class Tokenizer:
    def __init__(self, config: TokenizerConfig, vocab: Vocabulary, codes: list[str], cuts: dict[str, list[float]], report: dict | None = None,
                 resolved: dict[str, list[str]] | None = None, latest_codes: dict[str, str] | None = None):
        self.config = config
        self.vocab = vocab
        self.codes = list(codes)  # kept source codes, entry order
        self.cuts = cuts  # source code -> ascending cut points
        self.report = report or {}
        self.code_rules = CodeRules(config.code_rules)
        # with code rules, each kept code's tokens as fitted (saved with the tokenizer, so that
        # loading it needs no map files); codes seen later are resolved on first sight
        self.resolved = dict(resolved or {}) if config.code_rules else {}
        # static_latest codes (out of the timeline): source code -> its token
        self.latest_codes = dict(latest_codes or {})
        self.table = self._build_table()
        self._csr = self.table.csr()
        self.rules = self._build_rules()
        self._entry_of = {c: i for i, c in enumerate(self.codes)}
        self._program = None

    # ---- construction -------------------------------------------------------------

    def code_tokens(self, code: str) -> list[str]:
        if not self.config.code_rules:
            return code_tokens(self.config, code)
        if code not in self.resolved:
            self.resolved[code] = code_tokens(self.config, code, self.code_rules)
        return self.resolved[code]

    def dropped_by_rules(self, code: str) -> bool:
        """A code the rules drop, or one of a static_latest category: its rows emit nothing in the
        timeline, not even an interval token before them."""
        return bool(self.config.code_rules) and (not self.code_tokens(code) or self.latest_token(code) >= 0)

    @property
    def has_latest(self) -> bool:
        return bool(self.code_rules.latest_prefixes)

    def latest_token(self, code: str) -> int:
        """The vocabulary id of a static_latest code's token (its category's UNKNOWN when the value
        was never seen in training), −1 for other codes."""
        if not self.has_latest:
            return -1
        if code in self.latest_codes:
            return self.vocab.id(self.latest_codes[code])
        k = self.code_rules.latest_category(self.code_tokens(code))
        if k < 0:
            return -1
        token = self.code_tokens(code)[0]
        return self.vocab.id(token) if token in self.vocab else self.vocab.id(unknown_token(self.code_rules.latest_prefixes[k]))

    def latest_rows(self, shard: ShardRows, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The static_latest rows of the kept subjects, in row order (by subject, static rows
        first, then time): (count per kept subject, times µs, token ids)."""
        token_of_code = np.array([self.latest_token(c) for c in shard.code_dictionary] or [-1], np.int32)
        row_token = token_of_code[shard.code_index] if len(shard.code_index) else np.zeros(0, np.int32)
        subject = np.repeat(np.arange(len(shard.seg) - 1), np.diff(shard.seg))
        rows = np.flatnonzero((row_token >= 0) & keep[subject])
        kept_index = np.cumsum(keep) - 1
        counts = np.bincount(kept_index[subject[rows]], minlength=int(keep.sum())).astype(np.int64)
        return counts, shard.time[rows].astype(np.int64), row_token[rows].astype(np.int32)

    def _build_table(self) -> CodeTable:
        v = self.vocab
        pre, post, cuts = [], [], []
        rules = [(re.compile(r.start), re.compile(r.end), r) for r in self.config.visit_rules]
        for code in self.codes:
            starts = [v.id(r.start_token()) for s, _, r in rules if s.search(code)]
            ends = [v.id(r.end_token()) for _, e, r in rules if e.search(code)]
            pre.append(starts + [v.id(t) for t in self.code_tokens(code)])
            post.append(ends)
            cuts.append(list(self.cuts.get(code, [])))
        unknown = None
        if self.config.rare_codes == "unk":
            unknown = len(self.codes)
            pre.append([v.id(UNK)])
            post.append([])
            cuts.append([])
        return CodeTable(self.codes + (["<unknown>"] if unknown is not None else []), pre, post, cuts, unknown)

    def _build_rules(self) -> TimelineRules:
        bins = self.config.interval_bins()
        return TimelineRules(
            np.array([lo for _, lo in bins], np.int64),
            np.array([self.vocab.id(name) for name, _ in bins], np.int32),
            self.vocab.id("Q1"),
            self.config.n_quantiles,
            self.vocab.id(TIMELINE_END) if self.config.timeline_end else -1,
            self.config.age_tokens,
            self.config.age_rounding,
        )

    # ---- applying -----------------------------------------------------------------

    def entry_of_code(self, shard: ShardRows) -> np.ndarray:
        """[n dictionary codes] int32: the code-table entry of each distinct code of the shard
        (BIRTH, DROP, or the unknown-code entry for codes not in the vocabulary)."""
        fallback = self.table.unknown_entry if self.table.unknown_entry is not None else DROP

        def entry(c: str) -> int:
            if c == self.config.birth_code:
                return BIRTH
            if c in self._entry_of:
                return self._entry_of[c]
            return DROP if self.dropped_by_rules(c) else fallback

        return np.array([entry(c) for c in shard.code_dictionary] or [0], np.int32)

    def keep_subjects(self, shard: ShardRows, entry_of_code: np.ndarray, backend: str | None = None) -> tuple[np.ndarray, dict]:
        """[m] bool subjects passing the event-count filters, and how many failed each."""
        return _keep_mask(self.config, _event_counts(shard, entry_of_code, BIRTH, backend))

    def program(self):
        """The C++ TimelineProgram for this tokenizer (built once)."""
        if self._program is None:
            c, r = self._csr, self.rules
            core = require_core()
            self._program = core.TimelineProgram(
                core.CodeTableArrays(**c),
                core.TimelineRules(r.interval_lower, r.interval_token, r.q_first, r.n_quantiles, r.timeline_end, r.age_tokens,
                                   r.age_rounding_code()),
            )
        return self._program

    def tokenize_shard(self, shard: ShardRows, backend: str | None = None, gaps=None,
                       files: tuple[NpyAppender, NpyAppender] | None = None) -> ShardTokens:
        """Tokenizes one shard's subjects that pass the event filters. With ``gaps`` (from
        ``new_gaps``), every interval token's gap share is added to it; with ``files``
        (tokens, times), the tokens stream to them instead of being returned."""
        shard = self.reordered(shard)
        entry_of_code = self.entry_of_code(shard)
        keep, filtered = self.keep_subjects(shard, entry_of_code, backend)
        rows = (shard.time, shard.code_index, entry_of_code, shard.value, shard.seg, keep.astype(np.uint8))
        if resolve_backend(backend, "tokenizer") == "cpp":
            fds = (files[0].fileno(), files[1].fileno()) if files else (-1, -1)
            evict = bool(files) and files[0].evict_written
            n_tokens, static_lengths, births, tokens, times = self.program().tokenize(*rows, gaps, *fds, evict)
            if files:
                for f in files:
                    f.wrote(int(n_tokens.sum()))
        else:
            tokens, times, offsets, static_lengths, births, intervals = reference.tokenize_rows_reference(*rows, self.table, self.rules, gaps is not None)
            n_tokens = np.diff(offsets)
            if gaps is not None:
                gaps.add(*intervals)
            if files:
                files[0].append(tokens)
                files[1].append(times)
                tokens = times = None
        latest = self.latest_rows(shard, keep) if self.has_latest else None
        return ShardTokens(tokens, times, n_tokens, shard.subject_ids[keep], static_lengths, births, filtered, latest)

    def reordered(self, shard: ShardRows) -> ShardRows:
        """The shard with the ``reorder`` rules applied to its rows (the same object when none moves)."""
        perm = reorder_permutation(shard.time, list(shard.code_dictionary), shard.code_index, shard.seg, self.code_rules.reorders)
        if perm is None:
            return shard
        return replace(shard, time=shard.time[perm], code_index=shard.code_index[perm], value=shard.value[perm])

    def new_gaps(self, backend: str | None = None):
        """An empty accumulator of interval-token gaps, for ``tokenize_shard`` and ``fit_durations``."""
        n_bins = len(self.rules.interval_token)
        return require_core().IntervalGaps(n_bins) if resolve_backend(backend, "tokenizer") == "cpp" else reference.IntervalGaps(n_bins)

    # ---- fitting ------------------------------------------------------------------

    def fit_durations(self, gaps) -> None:
        """Sets each interval token's mean and median duration from the training gaps
        accumulated in ``gaps`` (see ``new_gaps``)."""
        count, mean, median = gaps.take()
        for k, (name, lo) in enumerate(self.config.interval_bins()):
            n = int(count[k])
            # whole µs: summation order differs between backends in the last bits only
            self.vocab.intervals[name] = IntervalDuration(int(lo), round(float(mean[k])) if n else None, round(float(median[k])) if n else None, n)

    # ---- persistence ----------------------------------------------------------------

    def __getstate__(self) -> dict:
        """Pickled without the compiled TimelineProgram (rebuilt on first use): a tokenizer sent to
        Dask workers."""
        return {**self.__dict__, "_program": None}

    def save(self, directory: str | os.PathLike) -> None:
        from ehrfast._version import __version__

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.vocab.save(d / "vocab.json")
        payload = {
            "format_version": TOKENIZER_FORMAT_VERSION,
            "ehrfast_version": __version__,
            "config": self.config.to_dict(),
            "codes": self.codes,
            "report": self.report,
        }
        if self.config.code_rules:
            payload["code_tokens"] = {c: self.code_tokens(c) for c in self.codes}
            payload["latest_codes"] = self.latest_codes
        (d / "tokenizer.json").write_text(json.dumps(payload, indent=1) + "\n")
        q_codes = [c for c in self.codes if self.cuts.get(c)]
        pq.write_table(
            pa.table({"code": pa.array(q_codes, pa.string()), "cuts": pa.array([self.cuts[c] for c in q_codes], pa.list_(pa.float64()))}),
            d / "quantiles.parquet",
        )

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        d = Path(directory)
        for name in ("tokenizer.json", "vocab.json", "quantiles.parquet"):
            if not (d / name).exists():
                raise InputNotFoundError(f"{d}: missing {name}; not a fitted tokenizer directory")
        meta = json.loads((d / "tokenizer.json").read_text())
        if meta.get("format_version") != TOKENIZER_FORMAT_VERSION:
            raise InvalidInputError(f"{d / 'tokenizer.json'}: format version {meta.get('format_version')}, expected {TOKENIZER_FORMAT_VERSION}")
        q = read_parquet(d / "quantiles.parquet")
        cuts = dict(zip(q.column("code").to_pylist(), q.column("cuts").to_pylist()))
        return cls(TokenizerConfig.from_dict(meta["config"]), Vocabulary.load(d / "vocab.json"), meta["codes"], cuts, meta.get("report", {}),
                   meta.get("code_tokens"), meta.get("latest_codes"))


@dataclass
class ShardStatistics:
    """One training shard's code statistics, by the shard's own code index (a Dask task's
    partial of the fit; merged in shard order by ``TrainingStatistics.merge``)."""

    path: object  # Path | ShardFile
    subject_ids: np.ndarray  # [m] int64 every subject of the shard (kept or not)
    code_dictionary: list[str]
    subject_counts: np.ndarray  # [n codes] int64 kept subjects with the code
    on_static_row: np.ndarray  # [n codes] uint8
    value_offsets: np.ndarray  # [n codes + 1] int64 into values
    values: np.ndarray  # float32, per code in row order
    filtered: dict
    n_kept: int


def shard_statistics(path, config: TokenizerConfig, backend: str | None) -> ShardStatistics:
    """Reads one training shard and accumulates its statistics alone (a task of the fit on a cluster)."""
    shard = read_shard(path, backend)
    stats = TrainingStatistics(config, backend)
    stats.add(shard)  # raw ids = the shard's code indices
    offsets, values = stats._stats.take_values()
    return ShardStatistics(shard.path, shard.subject_ids, list(shard.code_dictionary), stats._stats.subject_counts(), stats._stats.on_static_row(),
                           np.asarray(offsets, np.int64), np.asarray(values, np.float32), stats.filtered, stats.n_subjects)


class TrainingStatistics:
    """Accumulates training-split statistics shard by shard: per source code, the kept
    subjects it occurs in, whether it occurs on a static row, and its numeric values."""

    def __init__(self, config: TokenizerConfig, backend: str | None):
        self.config = config
        self.backend = resolve_backend(backend, "tokenizer")
        self.raw: dict[str, int] = {}  # source code -> raw id
        self.filtered = {"too_few_events": 0, "too_many_events": 0}
        self.n_subjects = 0
        # same interface: ehrfast._core.TrainStatistics or its reference
        self._stats = require_core().TrainStatistics() if self.backend == "cpp" else reference.CodeStatistics()

    def add(self, shard: ShardRows) -> None:
        raw_of_code = np.array([self.raw.setdefault(c, len(self.raw)) for c in shard.code_dictionary] or [0], np.int32)
        birth_id = self.raw.get(self.config.birth_code, -3)
        keep, filtered = _keep_mask(self.config, _event_counts(shard, raw_of_code, birth_id, self.backend))
        for k, v in filtered.items():
            self.filtered[k] += v
        self.n_subjects += int(keep.sum())
        self._stats.add(shard.time, shard.code_index, raw_of_code, shard.value, shard.seg, keep.astype(np.uint8), len(self.raw), birth_id)

    def merge(self, part: ShardStatistics) -> None:
        """Adds one shard's statistics computed elsewhere (``shard_statistics``): the same
        accumulation as ``add`` of that shard here, shards merged in the order added."""
        raw_of_code = np.array([self.raw.setdefault(c, len(self.raw)) for c in part.code_dictionary], np.int32)
        for k, v in part.filtered.items():
            self.filtered[k] += v
        self.n_subjects += part.n_kept
        self._stats.merge(raw_of_code, part.subject_counts, part.on_static_row, part.value_offsets, part.values, len(self.raw))

    def _code_statistics(self) -> tuple[np.ndarray, set[int], np.ndarray, np.ndarray]:
        """(subject count per raw id, raw ids seen on static rows, quantile offsets, cut points)."""
        cfg = self.config
        off, cuts, _ = self._stats.take_quantiles(cfg.quantile_probs(), cfg.min_values_for_quantiles)
        return self._stats.subject_counts(), set(np.flatnonzero(self._stats.on_static_row()).tolist()), off, cuts

    def tokenizer(self) -> Tokenizer:
        cfg = self.config
        if self.n_subjects == 0:
            raise InvalidInputError(f"no training subjects left after the event filters ({self.filtered}); empty cohort")
        subject_counts, static_ids, off, cuts = self._code_statistics()
        names = sorted(self.raw, key=self.raw.get)
        rules = CodeRules(cfg.code_rules)
        resolved = {c: code_tokens(cfg, c, rules) for c in names if c != cfg.birth_code} if cfg.code_rules else {}
        dropped = {c for c, t in resolved.items() if not t}
        latest = {c: t[0] for c, t in resolved.items() if rules.latest_category(t) >= 0}
        out = dropped | set(latest)  # neither kind is a timeline entry
        kept = sorted(c for c in names if c != cfg.birth_code and c not in out and subject_counts[self.raw[c]] >= cfg.min_subjects)
        rare = [c for c in names if c != cfg.birth_code and c not in out and subject_counts[self.raw[c]] < cfg.min_subjects]
        cut_map = {c: cuts[off[self.raw[c]]: off[self.raw[c] + 1]].tolist() for c in kept if off[self.raw[c] + 1] > off[self.raw[c]]}
        for c in kept:
            if cfg.code_rules and rules.value_token(c):
                cut_map[c] = value_token_cuts(cfg.n_quantiles)
        latest_tokens = sorted(set(latest.values()) | {unknown_token(p) for p in rules.latest_prefixes})
        vocab = _build_vocab(cfg, kept, {names[i] for i in static_ids}, resolved, latest_tokens)
        report = {
            "train_subjects": self.n_subjects,
            "train_subjects_filtered": self.filtered,
            "codes_kept": len(kept),
            "codes_rare": len(rare),
            "rare_codes_policy": cfg.rare_codes,
            "codes_with_quantiles": len(cut_map),
            "codes_dropped_by_rules": len(dropped),
            "static_latest_codes": len(latest),
        }
        return Tokenizer(cfg, vocab, kept, cut_map, report, {c: resolved[c] for c in kept} if cfg.code_rules else None, latest)


def _build_vocab(config: TokenizerConfig, kept: list[str], static: set[str], resolved: dict[str, list[str]],
                 latest_tokens: list[str] = ()) -> Vocabulary:
    tokens, kinds = list(RESERVED), ["special"] * len(RESERVED)
    tokens += [f"Q{i}" for i in range(1, config.n_quantiles + 1)]
    kinds += ["quantile"] * config.n_quantiles
    bins = config.interval_bins()
    tokens += [name for name, _ in bins]
    kinds += ["interval"] * len(bins)
    for rule in sorted(config.visit_rules, key=lambda r: r.name):
        tokens += [rule.start_token(), rule.end_token()]
        kinds += ["visit", "visit"]
    code_kind: dict[str, str] = {}
    for c in kept:
        for t in resolved[c] if c in resolved else code_tokens(config, c):
            if t not in code_kind or code_kind[t] == "static":
                code_kind[t] = "static" if c in static else "code"
    for t in latest_tokens:  # time-varying static tokens (static_latest)
        code_kind[t] = "static"
    for t in sorted(code_kind):
        if t in tokens:
            raise InvalidInputError(f"code {t!r} collides with a reserved or generated token name")
        tokens.append(t)
        kinds.append(code_kind[t])
    intervals = {name: IntervalDuration(lo, None, None, 0) for name, lo in bins}
    return Vocabulary(tokens, kinds, intervals)




def fit_statistics(paths: list[Path], config: TokenizerConfig, backend: str | None, registry: SubjectRegistry,
                   progress: bool = True) -> tuple[Tokenizer, dict[Path, ShardRows]]:
    """First fitting pass over the training shards: vocabulary, quantile cut points, filters.
    Returns the tokenizer (interval durations not yet fitted) and the shards kept in memory
    (up to CACHE_ROWS rows) so the second pass need not read them again."""
    stats = TrainingStatistics(config, backend)
    cached: dict[Path, ShardRows] = {}
    cached_rows = 0
    for path, shard, _ in tqdm(shards_in_order(paths, backend), total=len(paths), desc="fit: statistics", unit="shard",
                               disable=not progress, leave=False):
        registry.add(shard)
        stats.add(shard)
        if cached_rows + shard.n_rows <= CACHE_ROWS:
            cached[path] = shard
            cached_rows += shard.n_rows
    return stats.tokenizer(), cached
