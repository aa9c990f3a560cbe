"""The Tokenizer: fitted on the training split, applied to every split.

Fitting reads the training shards twice: once for code frequencies, numeric values and event
counts (vocabulary, quantile cut points, filters), once to tokenize them, which also yields
the real gaps behind every interval token (their mean and median durations). The rows →
tokens step runs in the C++ core or in the Python reference (``backend``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast._backend import require_core, resolve_backend
from ehrfast.data.meds import data_files
from ehrfast.tokenize import reference
from ehrfast.tokenize.config import TOKENIZER_FORMAT_VERSION, TokenizerConfig
from ehrfast.tokenize.reader import STATIC_TIME, ShardRows, SubjectRegistry, read_shard
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


@dataclass
class ShardTokens:
    """Tokenized subjects of one shard (see TokenizedDataset for the meaning of each array)."""

    tokens: np.ndarray
    times: np.ndarray
    offsets: np.ndarray
    subject_ids: np.ndarray
    static_lengths: np.ndarray
    births: np.ndarray
    intervals: tuple[np.ndarray, np.ndarray] | None = None  # (bin, gap share µs) per interval token
    n_filtered: dict = field(default_factory=dict)


def code_tokens(config: TokenizerConfig, code: str) -> list[str]:
    """The token strings one source code emits (before any value token). With hierarchical
    prefixes, e.g. DIAGNOSIS//ICD//10//E119 -> DIAGNOSIS//ICD//10//E11, DIAGNOSIS//ICD//10//REST//9."""
    for prefix in config.hierarchical_prefixes:
        cut = len(prefix) + config.hierarchical_category_length
        if code.startswith(prefix) and len(code) > cut:
            return [code[:cut], f"{prefix}REST//{code[cut:]}"]
    return [code]


def _event_counts(shard: ShardRows, entry: np.ndarray, birth_entry: int, backend: str | None) -> np.ndarray:
    """Timed, non-birth rows per subject."""
    if resolve_backend(backend, "tokenizer") == "cpp":
        return require_core().event_counts(shard.time, entry, shard.seg, birth_entry)
    return reference.event_counts_reference(shard.time, entry, shard.seg, birth_entry)


def _keep_mask(config: TokenizerConfig, events: np.ndarray) -> tuple[np.ndarray, dict]:
    few = events < config.min_events
    many = events > config.max_events if config.max_events is not None else np.zeros(len(events), bool)
    return ~(few | many), {"too_few_events": int(few.sum()), "too_many_events": int(many.sum())}


class Tokenizer:
    def __init__(self, config: TokenizerConfig, vocab: Vocabulary, codes: list[str], cuts: dict[str, list[float]], report: dict | None = None):
        self.config = config
        self.vocab = vocab
        self.codes = list(codes)  # kept source codes, entry order
        self.cuts = cuts  # source code -> ascending cut points
        self.report = report or {}
        self.table = self._build_table()
        self._csr = self.table.csr()
        self.rules = self._build_rules()
        self._entry_of = {c: i for i, c in enumerate(self.codes)}
        self._program = None

    # ---- construction -------------------------------------------------------------

    def code_tokens(self, code: str) -> list[str]:
        return code_tokens(self.config, code)

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
        )

    # ---- applying -----------------------------------------------------------------

    def entries(self, shard: ShardRows) -> np.ndarray:
        """[n] int32 entry per row, mapping each distinct code of the shard once."""
        fallback = self.table.unknown_entry if self.table.unknown_entry is not None else DROP
        lut = np.array(
            [BIRTH if c == self.config.birth_code else self._entry_of.get(c, fallback) for c in shard.code_dictionary] or [0],
            np.int32,
        )
        return lut[shard.code_index]

    def keep_subjects(self, shard: ShardRows, entry: np.ndarray, backend: str | None = None) -> tuple[np.ndarray, dict]:
        """[m] bool subjects passing the event-count filters, and how many failed each."""
        return _keep_mask(self.config, _event_counts(shard, entry, BIRTH, backend))

    def program(self):
        """The C++ TimelineProgram for this tokenizer (built once)."""
        if self._program is None:
            c, r = self._csr, self.rules
            self._program = require_core().TimelineProgram(
                c["pre_off"], c["pre"], c["post_off"], c["post"], c["cut_off"], c["cuts"],
                r.interval_lower, r.interval_token, r.q_first, r.n_quantiles, r.timeline_end, r.age_tokens,
            )
        return self._program

    def tokenize_shard(self, shard: ShardRows, backend: str | None = None, want_share: bool = False) -> ShardTokens:
        """Tokenizes one shard into in-memory arrays."""
        entry = self.entries(shard)
        keep, filtered = self.keep_subjects(shard, entry, backend)
        rows = (shard.time, entry, shard.value, shard.seg, keep.astype(np.uint8))
        if resolve_backend(backend, "tokenizer") == "cpp":
            n_tokens, n_intervals, static_lengths, births = self.program().measure(*rows)
            offsets, ioff = np.r_[0, np.cumsum(n_tokens)], np.r_[0, np.cumsum(n_intervals)]
            tokens, times = np.empty(offsets[-1], np.int32), np.empty(offsets[-1], np.int64)
            bins = np.empty(ioff[-1] if want_share else 0, np.int32)
            shares = np.empty(ioff[-1] if want_share else 0, np.float64)
            self.program().write(*rows, offsets, ioff, tokens, times, bins, shares)
            intervals = (bins, shares) if want_share else None
        else:
            tokens, times, offsets, static_lengths, births, intervals = reference.tokenize_rows_reference(*rows, self.table, self.rules, want_share)
        return ShardTokens(tokens, times, offsets, shard.subject_ids[keep], static_lengths, births, intervals, filtered)

    # ---- fitting ------------------------------------------------------------------

    @classmethod
    def fit(cls, meds_dir: str | os.PathLike, config: TokenizerConfig | None = None, backend: str | None = None,
            progress: bool = True) -> Tokenizer:
        """Fits vocabulary, quantile cut points and interval durations on the training split."""
        config = config or TokenizerConfig()
        shards = data_files(meds_dir)
        if config.train_split not in shards:
            raise ValueError(f"{meds_dir}: no '{config.train_split}' split to fit on (splits: {sorted(shards)})")
        tok, cached = fit_statistics(shards[config.train_split], config, backend, SubjectRegistry(), progress)
        train = [tok.tokenize_shard(cached.pop(p, None) or read_shard(p), backend, want_share=True)
                 for p in tqdm(shards[config.train_split], desc="fit: durations", unit="shard", disable=not progress, leave=False)]
        tok.fit_durations([st.intervals[0] for st in train], [st.intervals[1] for st in train], backend)
        return tok

    def fit_durations(self, bins: list[np.ndarray], shares: list[np.ndarray], backend: str | None = None) -> None:
        """Sets each interval token's mean and median duration from the training gaps:
        ``bins`` / ``shares`` hold, per interval token emitted on train, its bin and its share of
        the gap (µs)."""
        n_bins = len(self.rules.interval_token)
        g = bins[0] if len(bins) == 1 else (np.concatenate(bins) if bins else np.zeros(0, np.int32))
        v = shares[0] if len(shares) == 1 else (np.concatenate(shares) if shares else np.zeros(0))
        if resolve_backend(backend, "tokenizer") == "cpp":
            count, mean, median = require_core().grouped_mean_median(g.astype(np.int32, copy=False), v, n_bins)
        else:
            count, mean, median = reference.grouped_mean_median_reference(g, v, n_bins)
        for k, (name, lo) in enumerate(self.config.interval_bins()):
            n = int(count[k])
            # whole µs: summation order differs between backends in the last bits only
            self.vocab.intervals[name] = IntervalDuration(int(lo), round(float(mean[k])) if n else None, round(float(median[k])) if n else None, n)

    # ---- persistence ----------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> None:
        from ehrfast import __version__

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
                raise FileNotFoundError(f"{d}: missing {name}; not a fitted tokenizer directory")
        meta = json.loads((d / "tokenizer.json").read_text())
        if meta.get("format_version") != TOKENIZER_FORMAT_VERSION:
            raise ValueError(f"{d / 'tokenizer.json'}: format version {meta.get('format_version')}, expected {TOKENIZER_FORMAT_VERSION}")
        q = pq.read_table(d / "quantiles.parquet")
        cuts = dict(zip(q.column("code").to_pylist(), q.column("cuts").to_pylist()))
        return cls(TokenizerConfig.from_dict(meta["config"]), Vocabulary.load(d / "vocab.json"), meta["codes"], cuts, meta.get("report", {}))


class _TrainStatistics:
    """Accumulates training-split statistics shard by shard."""

    def __init__(self, config: TokenizerConfig, backend: str | None):
        self.config = config
        self.backend = resolve_backend(backend, "tokenizer")
        self.raw: dict[str, int] = {}  # source code -> raw id
        self.subject_counts = np.zeros(0, np.int64)
        self.static_ids: set[int] = set()
        self.value_ids: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.filtered = {"too_few_events": 0, "too_many_events": 0}
        self.n_subjects = 0

    def add(self, shard: ShardRows) -> None:
        lut = np.array([self.raw.setdefault(c, len(self.raw)) for c in shard.code_dictionary] or [0], np.int32)
        raw = lut[shard.code_index]
        birth_id = self.raw.get(self.config.birth_code, -3)
        keep, filtered = _keep_mask(self.config, _event_counts(shard, raw, birth_id, self.backend))
        for k, v in filtered.items():
            self.filtered[k] += v
        self.n_subjects += int(keep.sum())
        row_keep = np.repeat(keep, np.diff(shard.seg))
        masked = np.where(row_keep & (raw != birth_id), raw, -1).astype(np.int32)
        if self.backend == "cpp":
            counts = require_core().code_subject_counts(masked, shard.seg, len(self.raw))
        else:
            counts = reference.code_subject_counts_reference(masked, shard.seg, len(self.raw))
        self.subject_counts = np.r_[self.subject_counts, np.zeros(len(self.raw) - len(self.subject_counts), np.int64)] + counts
        self.static_ids.update(np.unique(masked[(shard.time == STATIC_TIME) & (masked >= 0)]).tolist())
        has_value = (masked >= 0) & ~np.isnan(shard.value)
        self.value_ids.append(masked[has_value])
        self.values.append(shard.value[has_value].astype(np.float64) + 0.0)  # + 0.0 turns -0.0 into 0.0

    def tokenizer(self) -> Tokenizer:
        cfg = self.config
        if self.n_subjects == 0:
            raise ValueError(f"no training subjects left after the event filters ({self.filtered}); empty cohort")
        names = sorted(self.raw, key=self.raw.get)
        kept = sorted(c for c in names if c != cfg.birth_code and self.subject_counts[self.raw[c]] >= cfg.min_subjects)
        rare = [c for c in names if c != cfg.birth_code and self.subject_counts[self.raw[c]] < cfg.min_subjects]
        group = np.concatenate(self.value_ids) if self.value_ids else np.zeros(0, np.int32)
        values = np.concatenate(self.values) if self.values else np.zeros(0)
        args = (group.astype(np.int32), values, len(self.raw), cfg.quantile_probs(), cfg.min_values_for_quantiles)
        if self.backend == "cpp":
            off, cuts, _ = require_core().grouped_quantiles(*args)
        else:
            off, cuts, _ = reference.grouped_quantiles_reference(*args)
        cut_map = {c: cuts[off[self.raw[c]]: off[self.raw[c] + 1]].tolist() for c in kept if off[self.raw[c] + 1] > off[self.raw[c]]}
        vocab = _build_vocab(cfg, kept, {names[i] for i in self.static_ids})
        report = {
            "train_subjects": self.n_subjects,
            "train_subjects_filtered": self.filtered,
            "codes_kept": len(kept),
            "codes_rare": len(rare),
            "rare_codes_policy": cfg.rare_codes,
            "codes_with_quantiles": len(cut_map),
        }
        return Tokenizer(cfg, vocab, kept, cut_map, report)


def _build_vocab(config: TokenizerConfig, kept: list[str], static: set[str]) -> Vocabulary:
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
        for t in code_tokens(config, c):
            if t not in code_kind or code_kind[t] == "static":
                code_kind[t] = "static" if c in static else "code"
    for t in sorted(code_kind):
        if t in tokens:
            raise ValueError(f"code {t!r} collides with a reserved or generated token name")
        tokens.append(t)
        kinds.append(code_kind[t])
    intervals = {name: IntervalDuration(lo, None, None, 0) for name, lo in bins}
    return Vocabulary(tokens, kinds, intervals)




def fit_statistics(paths: list[Path], config: TokenizerConfig, backend: str | None, registry: SubjectRegistry,
                   progress: bool = True) -> tuple[Tokenizer, dict[Path, ShardRows]]:
    """First fitting pass over the training shards: vocabulary, quantile cut points, filters.
    Returns the tokenizer (interval durations not yet fitted) and the shards kept in memory
    (up to CACHE_ROWS rows) so the second pass need not read them again."""
    stats = _TrainStatistics(config, backend)
    cached: dict[Path, ShardRows] = {}
    cached_rows = 0
    for path in tqdm(paths, desc="fit: statistics", unit="shard", disable=not progress, leave=False):
        shard = read_shard(path)
        registry.add(shard)
        stats.add(shard)
        if cached_rows + shard.n_rows <= CACHE_ROWS:
            cached[path] = shard
            cached_rows += shard.n_rows
    return stats.tokenizer(), cached
