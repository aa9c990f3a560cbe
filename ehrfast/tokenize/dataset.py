"""TokenizedDataset: the on-disk token arrays of one split, memory-mapped.

Files (all ``.npy`` memory-mappable):
``tokens`` int32 [T] flat; ``offsets`` int64 [n + 1]; ``subject_ids`` int64 [n];
``times`` int64 [T] µs (time of the event that emitted each token; static and age tokens
carry the timeline start); ``static_lengths`` int32 [n] (static + age tokens at the start of
each timeline); ``birth_times`` int64 [n] µs (int64 min when unknown); plus ``vocab.json``,
``quantiles.parquet`` and ``tokenizer.json``. A tokenizer with ``static_latest`` rules also
writes ``latest_offsets`` int64 [n + 1], ``latest_times`` int64 [K] µs (int64 min: a static row)
and ``latest_tokens`` int32 [K]: each subject's time-varying static tokens (marital status, race)
in time order, read by ``head`` at a window's start.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ehrfast.data.reader import STATIC_TIME
from ehrfast.errors import InputNotFoundError, InvalidInputError
from ehrfast.inputs import JoinReport, read_json
from ehrfast.tokenize.reference import age_digits_at
from ehrfast.tokenize.vocab import Vocabulary
from ehrfast.units import US_PER_YEAR

MAX_AGE_YEARS = 125  # a prediction time later than this after birth is a wrong date, not a patient
EARLIEST_TIME_US = int(np.datetime64("1900-01-01", "us").astype(np.int64))  # for subjects without a birth date
LATEST_TIME_US = int(np.datetime64("2100-01-01", "us").astype(np.int64))
ARRAYS = ("tokens", "offsets", "subject_ids", "times", "static_lengths", "birth_times")
AGE_AT = ("prediction", "window_start")  # when a context's age tokens are taken
LATEST_ARRAYS = ("latest_offsets", "latest_times", "latest_tokens")  # with static_latest rules only


def _load_array(path: Path, mode: str | None) -> np.ndarray:
    """One ``.npy`` array, memory-mapped; a truncated or foreign file is an error naming it (numpy
    says "mmap length is greater than file size")."""
    try:
        return np.load(path, mmap_mode=mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        size = path.stat().st_size if path.exists() else 0
        raise InvalidInputError(f"{path}: not a complete .npy array ({size:,} bytes: truncated or not written by ehrfast; {exc})") from None


class TokenizedDataset:
    def __init__(self, directory: str | os.PathLike, mmap: bool = True):
        d = Path(directory)
        missing = [f"{n}.npy" for n in ARRAYS if not (d / f"{n}.npy").exists()] + [n for n in ("vocab.json", "tokenizer.json") if not (d / n).exists()]
        if missing:
            raise InputNotFoundError(f"{d}: not a TokenizedDataset (missing {missing})")
        mode = "r" if mmap else None
        for name in ARRAYS:
            setattr(self, name, _load_array(d / f"{name}.npy", mode))
        self.directory = d
        self.vocab = Vocabulary.load(d / "vocab.json")
        meta = read_json(d / "tokenizer.json", what="tokenizer description")
        self.config = meta["config"]
        n = len(self.subject_ids)
        if len(self.offsets) != n + 1 or self.offsets[-1] != len(self.tokens) or len(self.times) != len(self.tokens):
            raise InvalidInputError(f"{d}: arrays are inconsistent (offsets/tokens/times lengths differ)")
        if len(self.tokens) and not 0 <= int(self.tokens.min()) <= int(self.tokens.max()) < len(self.vocab):
            bad = int(np.flatnonzero((np.asarray(self.tokens) < 0) | (np.asarray(self.tokens) >= len(self.vocab)))[0])
            raise InvalidInputError(f"{d / 'tokens.npy'}: token {bad} has id {int(self.tokens[bad])}, outside the vocabulary of "
                                    f"{len(self.vocab)} tokens ({d / 'vocab.json'}); the arrays do not belong to this vocabulary")
        self._row_of = None
        # static_latest categories (ehrfast/tokenize/rules.py): each token's category, each category's UNKNOWN
        self.latest_prefixes = [r["prefix"] for r in self.config.get("code_rules", ()) if r.get("kind") == "static_latest"]
        if self.latest_prefixes:
            for name in LATEST_ARRAYS:
                if not (d / f"{name}.npy").exists():
                    raise InputNotFoundError(f"{d}: a tokenizer with static_latest rules needs {name}.npy")
                setattr(self, name, _load_array(d / f"{name}.npy", mode))
            if len(self.latest_offsets) != n + 1 or self.latest_offsets[-1] != len(self.latest_tokens):
                raise InvalidInputError(f"{d}: latest_* arrays are inconsistent")
            self._category_of = np.full(len(self.vocab), -1, np.int32)
            for t, name in enumerate(self.vocab.tokens):
                for k, prefix in enumerate(self.latest_prefixes):
                    if name.startswith(prefix):
                        self._category_of[t] = k
            self._unknown = [self.vocab.id(f"{p}UNKNOWN") for p in self.latest_prefixes]

    def __len__(self) -> int:
        return len(self.subject_ids)

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def row(self, subject_id: int) -> int:
        """Index of ``subject_id`` in this split (KeyError if absent)."""
        if self._row_of is None:
            self._row_of = {int(s): i for i, s in enumerate(np.asarray(self.subject_ids))}
        return self._row_of[int(subject_id)]

    def labelled_rows(self, subject_ids: np.ndarray, times_us: np.ndarray, where: str, min_overlap: float,
                      option: str = "--min-overlap") -> np.ndarray:
        """bool [n]: the label rows (``subject_ids`` [n] int64, ``times_us`` [n] int64 µs) whose
        subject has a timeline here. The join is reported and refused when empty or below
        ``min_overlap`` of the label rows (``JoinReport``); a prediction time before the
        subject's birth, or at an age over ``MAX_AGE_YEARS``, is refused naming the row."""
        subject_ids = np.asarray(subject_ids, np.int64)
        order = np.argsort(np.asarray(self.subject_ids), kind="stable")
        known = np.asarray(self.subject_ids)[order]
        at = np.clip(np.searchsorted(known, subject_ids), 0, max(len(known) - 1, 0))
        keep = (known[at] == subject_ids) if len(known) else np.zeros(len(subject_ids), bool)
        elsewhere = self._in_sibling_splits(subject_ids[~keep])  # label rows of TOKENS/train when scoring TOKENS/held_out
        JoinReport("label rows" + (f" (besides {elsewhere:,} of other splits)" if elsewhere else ""), len(subject_ids) - elsewhere,
                   f"subjects of {self.directory}", len(self), int(keep.sum()), denominator="left").check(min_overlap, option=option,
                                                                                                        where=where)
        rows = order[at[keep]]
        times = np.asarray(times_us, np.int64)[keep]
        birth = np.asarray(self.birth_times)[rows]
        known_birth = birth != np.iinfo(np.int64).min
        age_years = (times - birth) / US_PER_YEAR
        for bad, what in ((known_birth & (times < birth), "before the subject's birth"),
                          (known_birth & (age_years > MAX_AGE_YEARS), f"at an age over {MAX_AGE_YEARS} years"),
                          (~known_birth & ((times < EARLIEST_TIME_US) | (times > LATEST_TIME_US)), "outside the years 1900–2100")):
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                row = int(np.flatnonzero(keep)[k])
                stamp = np.datetime64(int(times[k]), "us")
                raise InvalidInputError(f"{where}: row {row}: prediction time {stamp} of subject {int(subject_ids[row])} is {what} "
                                        f"({int(bad.sum()):,} such rows); check the label file's times")
        return keep

    def _in_sibling_splits(self, subject_ids: np.ndarray) -> int:
        """How many of ``subject_ids`` are subjects of the other splits of the same tokenize
        output (the directories beside this one): skipped by design, not lost."""
        if not len(subject_ids):
            return 0
        found = np.zeros(len(subject_ids), bool)
        for sibling in sorted(p for p in self.directory.parent.iterdir() if p.is_dir() and p != self.directory):
            if (sibling / "subject_ids.npy").is_file() and (sibling / "tokens.npy").is_file():
                try:
                    found |= np.isin(subject_ids, np.load(sibling / "subject_ids.npy", mmap_mode="r"))
                except (ValueError, OSError):
                    continue  # not readable: those rows count as unmatched
        return int(found.sum())

    def timeline(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int32 [L], times int64 [L]) of the i-th subject."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(self.tokens[a:b]), np.asarray(self.times[a:b])

    def decode(self, ids) -> list[str]:
        return self.vocab.decode(ids)

    def context(self, subject_id: int, prediction_time_us: int, max_tokens: int | None = None,
                history_us: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Tokens a model may see at ``prediction_time_us``: the static tokens, the age tokens
        recomputed at the prediction time (ETHOS), then the timeline's tokens with time ≤ the
        prediction time (TIMELINE_END excluded) — only those at or after prediction time −
        ``history_us`` when given (0: demographics only) — left-truncated so the whole fits ``max_tokens``.
        Returns (tokens int32, times int64)."""
        i = self.row(subject_id)
        tokens, times = self.timeline(i)
        n_static = int(self.static_lengths[i])
        body_t, body_s = tokens[n_static:], times[n_static:]
        end_id = self.vocab.get("TIMELINE_END", -1)
        keep = (body_s <= prediction_time_us) & (body_t != end_id)
        if history_us is not None:  # the window [prediction time − history, prediction time]; 0: none
            keep &= (body_s >= prediction_time_us - history_us) if history_us > 0 else np.zeros_like(keep)
        return self._assemble(i, prediction_time_us, body_t[keep], body_s[keep], max_tokens)

    def context_at(self, subject_id: int, token_index: int, max_tokens: int | None = None,
                   age_at: str = "prediction") -> tuple[np.ndarray, np.ndarray]:
        """The context that ends at the subject's token ``token_index`` (an index into its
        timeline, after the static prefix; ARES.md S4): the static tokens, the age tokens, then
        the timeline's tokens up to and including it, left-truncated to ``max_tokens``. The age
        is taken at that token's time (``age_at="prediction"``) or at the first timeline token the
        context keeps (``"window_start"``, as the reference). Returns (tokens int32, times int64)."""
        if age_at not in AGE_AT:
            raise InvalidInputError(f"age_at must be one of {AGE_AT}, got {age_at!r}")
        i = self.row(subject_id)
        tokens, times = self.timeline(i)
        n_static = int(self.static_lengths[i])
        if not n_static <= token_index < len(tokens):
            raise InvalidInputError(f"subject {subject_id}: token index {token_index} is outside its timeline "
                                    f"(tokens {n_static} … {len(tokens) - 1} after the static prefix)")
        body_t, body_s = tokens[n_static:token_index + 1], times[n_static:token_index + 1]
        return self._assemble(i, int(times[token_index]), body_t, body_s, max_tokens, age_at == "window_start")

    def anchor_token_index(self, subject_id: int, time_us: int, code: str | None, context: str | int = "same_time") -> int:
        """Where an anchor's context ends in the subject's timeline (ARES.md S4): ``same_time``
        — the last token at or before ``time_us``; ``anchor`` — the anchor's own code token (the
        first token at ``time_us`` that is ``code``), or k tokens after it for an int ``k``
        (never past the last token at that time). −1 when no token qualifies. A code without a
        token of its own (dropped or split by the tokenizer) falls back to ``same_time``."""
        i = self.row(subject_id)
        tokens, times = self.timeline(i)
        n_static = int(self.static_lengths[i])
        end_id = self.vocab.get("TIMELINE_END", -1)
        body = np.flatnonzero((times[n_static:] <= time_us) & (tokens[n_static:] != end_id)) + n_static
        last = int(body[-1]) if len(body) else -1
        if context == "same_time" or code is None or code not in self.vocab:
            return last
        at = np.flatnonzero((times == time_us) & (tokens == self.vocab.id(code)))
        at = at[at >= n_static]
        if not len(at):
            return last
        return min(int(at[0]) + (0 if context == "anchor" else int(context)), last)

    def _assemble(self, i: int, prediction_time_us: int, body_t: np.ndarray, body_s: np.ndarray,
                  max_tokens: int | None, age_at_window_start: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Static tokens + age tokens (at ``prediction_time_us``, or at the first body token
        kept) + the body, left-truncated."""
        n_head = self.head_length(i)
        if max_tokens is not None:
            room = max_tokens - n_head
            if room < 0:
                raise InvalidInputError(f"max_tokens={max_tokens} cannot hold the {n_head} static tokens")
            body_t, body_s = body_t[len(body_t) - room:] if room else body_t[:0], body_s[len(body_s) - room:] if room else body_s[:0]
        start = int(body_s[0]) if len(body_s) else prediction_time_us  # the window's first timeline token
        age_time = start if age_at_window_start else prediction_time_us
        head = self.head(i, start if self.has_window_head else prediction_time_us, age_time)
        head_t = np.full(len(head), prediction_time_us, np.int64)
        return np.r_[head, body_t].astype(np.int32), np.r_[head_t, body_s].astype(np.int64)

    @property
    def has_window_head(self) -> bool:
        """Whether a window's head depends on when it starts (static_latest categories): then
        contexts and training windows read ``head`` at their first timeline token."""
        return bool(self.latest_prefixes)

    def head_length(self, i: int) -> int:
        """Tokens before the timeline in a context of the i-th subject: its static prefix (static
        and age tokens) plus one token per static_latest category."""
        return int(self.static_lengths[i]) + len(self.latest_prefixes)

    def latest_tokens_at(self, i: int, t_us: int) -> list[int]:
        """Per static_latest category, the i-th subject's latest token with time ≤ ``t_us``
        (static rows count as always), else the category's UNKNOWN."""
        out = list(self._unknown)
        a, b = int(self.latest_offsets[i]), int(self.latest_offsets[i + 1])
        times, tokens = np.asarray(self.latest_times[a:b]), np.asarray(self.latest_tokens[a:b])
        for tok in tokens[times <= t_us].tolist():  # in time order: the last of a category wins
            out[int(self._category_of[tok])] = int(tok)
        return out

    def head(self, i: int, start_us: int, age_us: int | None = None) -> np.ndarray:
        """[head_length(i)] int32: the static tokens, the static_latest tokens at ``start_us`` and
        the age tokens at ``age_us`` (default ``start_us``) — what precedes a window that starts at
        ``start_us`` (the reference's patient context)."""
        tokens, _ = self.timeline(i)
        n_static = int(self.static_lengths[i])
        birth = int(self.birth_times[i])
        age_on = bool(self.config.get("age_tokens", True)) and birth != STATIC_TIME
        head = list(tokens[: n_static - 2 if age_on else n_static])
        if self.latest_prefixes:
            head += self.latest_tokens_at(i, start_us)
        if age_on:
            head += self._age_tokens(start_us if age_us is None else age_us, birth)
        return np.array(head, np.int32)

    def _age_tokens(self, t_us: int, birth_us: int) -> list[int]:
        q1 = self.vocab.id("Q1")
        return [q1 + d for d in age_digits_at(t_us, birth_us, int(self.config.get("n_quantiles", 10)), self.config.get("age_rounding", "half_up"))]


def write_subject_index(directory: Path, parts: list, n_tokens: int, has_latest: bool) -> dict:
    """Writes a split's per-subject arrays (offsets, subject ids, static lengths, births, the
    static_latest rows) from its shards' results in shard order (``ShardTokens``, tokens already
    written), beside its ``tokens.npy`` and ``times.npy`` of ``n_tokens``. Returns the split's summary."""
    filtered = {"too_few_events": 0, "too_many_events": 0}
    for part in parts:
        for k in filtered:
            filtered[k] += part.n_filtered[k]

    def joined(name: str, dtype) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts]).astype(dtype) if parts else np.zeros(0, dtype)

    n_per_subject = joined("n_tokens", np.int64)
    np.save(directory / "offsets.npy", np.r_[0, np.cumsum(n_per_subject)].astype(np.int64))
    np.save(directory / "subject_ids.npy", joined("subject_ids", np.int64))
    np.save(directory / "static_lengths.npy", joined("static_lengths", np.int32))
    np.save(directory / "birth_times.npy", joined("births", np.int64))
    if has_latest:  # static_latest rows per subject (TokenizedDataset.head)
        latest = [p.latest for p in parts if p.latest is not None]
        counts = np.concatenate([c for c, _, _ in latest]) if latest else np.zeros(0, np.int64)
        np.save(directory / "latest_offsets.npy", np.r_[0, np.cumsum(counts)].astype(np.int64))
        np.save(directory / "latest_times.npy", np.concatenate([t for _, t, _ in latest]) if latest else np.zeros(0, np.int64))
        np.save(directory / "latest_tokens.npy", np.concatenate([k for _, _, k in latest]) if latest else np.zeros(0, np.int32))
    return {"subjects": len(n_per_subject), "tokens": int(n_tokens), "filtered": filtered}
