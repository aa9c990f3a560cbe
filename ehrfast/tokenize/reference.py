"""The Python reference tokenizer: the timeline rules written plainly, one subject at a time.

The C++ core (csrc/tokenizer/timeline.cpp) must produce identical arrays; tests compare the
two on random and real MEDS data. Keep the two in step when a rule changes.

Rules for one subject (rows sorted, static rows first):
1. t0 = time of the first timed row that emits tokens (else the last timed row, else birth, else 0).
2. Static rows emit their tokens at t0; then, if the subject has a birth row and age tokens
   are on, two quantile tokens for the age at t0 (tens digit, then units digit rounded half
   up, each capped at 9; age clamped to [0, 99] years of 365.25 days — or, with
   ``age_rounding="ethos"``, the reference's rule: ``ethos_age_digits``).
3. Each timed row that emits (not birth, not dropped) is preceded, when the gap from the
   previous emitting row is at least the smallest interval edge, by the token of the largest
   edge not above the gap — the top bin repeated round(gap / edge) times, halves up.
4. A row emits its entry's ``pre`` tokens, then Q(1 + #cuts < value) if it has a value and the
   entry has cut points, then its ``post`` tokens — all at the row's time.
5. TIMELINE_END closes the timeline at the time of the last emitting row (or t0).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from ehrfast.data.reader import STATIC_TIME
from ehrfast.units import US_PER_DAY, US_PER_YEAR

DROP, BIRTH = -1, -2


def age_digits(age_years: float, n_quantiles: int) -> tuple[int, int]:
    """ETHOS age tokens as Q-offsets: (tens digit, units digit rounded half up), each capped at
    9 (and at n_quantiles - 1); age clamped to [0, 99]."""
    age = min(max(age_years, 0.0), 99.0)
    tens = min(9, math.floor(age / 10), n_quantiles - 1)
    units = min(9, math.floor(math.fmod(age, 10.0) + 0.5), n_quantiles - 1)
    return tens, units


def ethos_age_digits(days: int, n_quantiles: int) -> tuple[int, int]:
    """The reference's age tokens (ethos-ares ``datasets/base.py::_age_to_tokens``) as Q-offsets:
    age = whole days / 365.25 capped at 99; tens = floor(age / 10); units = Python's round (half
    to even) of age mod 10, carried into the tens at 10; each capped at n_quantiles - 1."""
    return ethos_digits_of_age(days / 365.25, n_quantiles)


def ethos_digits_of_age(age_years: float, n_quantiles: int) -> tuple[int, int]:
    """``ethos_age_digits`` for an age in years (ARES.md S13's table: 46.0 → Q5 Q7, 46.5 → Q5 Q7,
    49.7 → Q6 Q1, 89.5 → Q10 Q1, 99.9 → Q10 Q10)."""
    age = min(max(age_years, 0.0), 99.0)
    tens = math.floor(age / 10)
    units = round(math.fmod(age, 10.0))
    if units == 10:
        tens, units = tens + 1, 0
    return min(tens, n_quantiles - 1), min(units, n_quantiles - 1)


def age_digits_at(t_us: int, birth_us: int, n_quantiles: int, rounding: str = "half_up") -> tuple[int, int]:
    """The age tokens' Q-offsets at ``t_us`` for a birth at ``birth_us`` under ``rounding``
    (TokenizerConfig.age_rounding); the C++ core's emit_age has the same two rules."""
    if rounding == "ethos":
        return ethos_age_digits((int(t_us) - int(birth_us)) // US_PER_DAY, n_quantiles)
    return age_digits((t_us - birth_us) / US_PER_YEAR, n_quantiles)


def tokenize_subject(time, entry, value, table, rules, want_share=False):
    """One subject's (tokens, times, static_length, birth, intervals).

    ``table``: CodeTable-like with ``pre[e]``, ``post[e]`` (lists of token ids) and ``cuts[e]``
    (ascending list); ``rules``: TimelineRules.
    """
    tokens: list[int] = []
    times: list[int] = []
    intervals: list[tuple[int, float]] = []  # (bin, share of the gap) per interval token

    def put(tok, t):
        tokens.append(int(tok))
        times.append(int(t))

    timed = [r for r in range(len(time)) if time[r] != STATIC_TIME]
    birth = next((int(time[r]) for r in timed if entry[r] == BIRTH), STATIC_TIME)
    emitting = [r for r in timed if entry[r] >= 0]
    if emitting:
        t0 = int(time[emitting[0]])
    elif timed:
        t0 = int(time[timed[-1]])
    else:
        t0 = birth if birth != STATIC_TIME else 0

    def emit_entry(r, t):
        e = entry[r]
        for tok in table.pre[e]:
            put(tok, t)
        cuts = table.cuts[e]
        if cuts and not math.isnan(value[r]):
            put(rules.q_first + bisect.bisect_left(cuts, float(value[r])), t)
        for tok in table.post[e]:
            put(tok, t)

    for r in range(len(time)):
        if time[r] == STATIC_TIME and entry[r] >= 0:
            emit_entry(r, t0)
    if rules.age_tokens and birth != STATIC_TIME:
        for digit in age_digits_at(t0, birth, rules.n_quantiles, rules.age_rounding):
            put(rules.q_first + digit, t0)
    static_length = len(tokens)

    prev = None
    lower = rules.interval_lower
    for r in emitting:
        t = int(time[r])
        if prev is not None and len(lower) and t - prev >= lower[0]:
            gap = t - prev
            b = bisect.bisect_right(lower, gap) - 1
            count = (2 * gap + lower[b]) // (2 * lower[b]) if b == len(lower) - 1 else 1
            for _ in range(count):
                put(rules.interval_token[b], t)
                intervals.append((b, gap / count))
        emit_entry(r, t)
        prev = t
    if rules.timeline_end >= 0:
        put(rules.timeline_end, prev if prev is not None else t0)
    return tokens, times, static_length, birth, (intervals if want_share else None)


def tokenize_rows_reference(time, code, entry_of_code, value, seg, keep, table, rules, want_share=False):
    """The same results as ``ehrfast._core.TimelineProgram`` (``tokenize``): (tokens, times, offsets,
    static_lengths, births, (interval_bin, interval_share) or None)."""
    entry = entry_of_code[code]
    all_tokens, all_times, all_intervals = [], [], []
    offsets, static_lengths, births = [0], [], []
    for s in range(len(seg) - 1):
        if not keep[s]:
            continue
        a, b = seg[s], seg[s + 1]
        tok, tim, static_len, birth, intervals = tokenize_subject(time[a:b], entry[a:b], value[a:b], table, rules, want_share)
        all_tokens += tok
        all_times += tim
        if want_share:
            all_intervals += intervals
        offsets.append(offsets[-1] + len(tok))
        static_lengths.append(static_len)
        births.append(birth)
    return (
        np.array(all_tokens, np.int32),
        np.array(all_times, np.int64),
        np.array(offsets, np.int64),
        np.array(static_lengths, np.int32),
        np.array(births, np.int64),
        (np.array([b for b, _ in all_intervals], np.int32), np.array([v for _, v in all_intervals], np.float64)) if want_share else None,
    )


def event_counts_reference(time, code, entry_of_code, seg, birth_entry) -> np.ndarray:
    timed = (time != STATIC_TIME) & (entry_of_code[code] != birth_entry)
    csum = np.r_[0, np.cumsum(timed)]
    return (csum[seg[1:]] - csum[seg[:-1]]).astype(np.int64)


class CodeStatistics:
    """The reference of ``ehrfast._core.TrainStatistics``: per raw code id, the kept subjects it
    occurs in, whether it occurs on a static row, and its numeric values; birth rows skipped."""

    def __init__(self):
        self._counts = np.zeros(0, np.int64)
        self._static = np.zeros(0, np.uint8)
        self._codes: list[np.ndarray] = []
        self._values: list[np.ndarray] = []

    def add(self, time, code, raw_of_code, value, seg, keep, n_codes, birth_code) -> None:
        raw = raw_of_code[code]
        grow = max(0, n_codes - len(self._counts))
        self._counts, self._static = np.r_[self._counts, np.zeros(grow, np.int64)], np.r_[self._static, np.zeros(grow, np.uint8)]
        row_keep = np.repeat(keep.astype(bool), np.diff(seg))
        ok = row_keep & (raw >= 0) & (raw < len(self._counts)) & (raw != birth_code)
        subject = np.repeat(np.arange(len(seg) - 1), np.diff(seg))[ok]
        pairs = np.unique(subject.astype(np.int64) * len(self._counts) + raw[ok])
        self._counts += np.bincount(pairs % len(self._counts), minlength=len(self._counts))
        self._static[raw[ok & (time == STATIC_TIME)]] = 1
        has_value = ok & ~np.isnan(value)
        self._codes.append(raw[has_value])
        self._values.append(value[has_value].astype(np.float64) + 0.0)  # + 0.0 turns -0.0 into 0.0

    def subject_counts(self) -> np.ndarray:
        return self._counts.copy()

    def on_static_row(self) -> np.ndarray:
        return self._static.copy()

    def take_quantiles(self, probs, min_count):
        codes = np.concatenate(self._codes) if self._codes else np.zeros(0, np.int32)
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        self._codes, self._values = [], []
        return grouped_quantiles_reference(codes, values, len(self._counts), probs, min_count)

    def take_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets [n_codes + 1] int64, values float32): each code's values in the order added; consumes them."""
        codes = np.concatenate(self._codes) if self._codes else np.zeros(0, np.int32)
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        self._codes, self._values = [], []
        order = np.argsort(codes, kind="stable")
        offsets = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(self._counts)))].astype(np.int64)
        return offsets, values[order].astype(np.float32)

    def merge(self, raw_of_other, subject_counts, on_static_row, value_offsets, values, n_codes) -> None:
        """Adds another accumulation's partial: its code l is raw id ``raw_of_other[l]`` here."""
        raw_of_other = np.asarray(raw_of_other, np.int64)
        if len(raw_of_other) and (raw_of_other.min() < 0 or raw_of_other.max() >= n_codes):
            raise ValueError("raw_of_other is outside [0, n_codes)")
        grow = max(0, n_codes - len(self._counts))
        self._counts, self._static = np.r_[self._counts, np.zeros(grow, np.int64)], np.r_[self._static, np.zeros(grow, np.uint8)]
        np.add.at(self._counts, raw_of_other, np.asarray(subject_counts, np.int64))
        np.bitwise_or.at(self._static, raw_of_other, np.asarray(on_static_row, np.uint8))
        self._codes.append(np.repeat(raw_of_other, np.diff(value_offsets)).astype(np.int32))
        self._values.append(np.asarray(values, np.float32).astype(np.float64))


def grouped_quantiles_reference(group, values, n_groups, probs, min_count):
    offsets, cuts, counts = [0], [], []
    for g in range(n_groups):
        v = values[(group == g) & ~np.isnan(values)]
        counts.append(len(v))
        if len(v) >= max(min_count, 1):
            q = np.unique(np.quantile(v, probs, method="nearest"))
            cuts += q.tolist()
        offsets.append(len(cuts))
    return np.array(offsets, np.int64), np.array(cuts, np.float64), np.array(counts, np.int64)


class IntervalGaps:
    """The reference of ``ehrfast._core.IntervalGaps``: interval-token gap shares by bin."""

    def __init__(self, n_bins: int):
        self.n_bins = n_bins
        self._bins: list[np.ndarray] = []
        self._shares: list[np.ndarray] = []

    def add(self, bins, shares) -> None:
        self._bins.append(np.asarray(bins, np.int32))
        self._shares.append(np.asarray(shares, np.float64))

    def take_shares(self) -> tuple[np.ndarray, np.ndarray]:
        """(bins, shares): every share so far, in the order added; consumes them."""
        bins = np.concatenate(self._bins) if self._bins else np.zeros(0, np.int32)
        shares = np.concatenate(self._shares) if self._shares else np.zeros(0)
        self._bins, self._shares = [], []
        return bins, shares

    def take(self):
        """(count, mean, median) per bin."""
        bins = np.concatenate(self._bins) if self._bins else np.zeros(0, np.int32)
        shares = np.concatenate(self._shares) if self._shares else np.zeros(0)
        self._bins, self._shares = [], []
        return grouped_mean_median_reference(bins, shares, self.n_bins)


def grouped_mean_median_reference(group, values, n_groups):
    count, mean, median = [], [], []
    for g in range(n_groups):
        v = values[(group == g) & ~np.isnan(values)]
        count.append(len(v))
        mean.append(v.mean() if len(v) else np.nan)
        median.append(np.median(v) if len(v) else np.nan)
    return np.array(count, np.int64), np.array(mean), np.array(median)
