"""A scripted hospital stay and a Markov-chain model of it, with dynamic programs for the exact
risks (ARES.md S7/S8 test double).

The stay: admission at t0, an ICU admission at t0 + 3 d, discharge at t0 + 12 d; one-day interval
tokens of exactly 1 day, labs in between. The model's next token depends on the last token and
on whether the risky token X is anywhere in the sequence (``XChain``), so X raises the death
risk from every later position; the DP runs over (steps left, last token) with the elapsed days
as a dimension."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from ehrfast.data.reader import STATIC_TIME
from ehrfast.tokenize.vocab import IntervalDuration, Vocabulary
from ehrfast.units import US_PER_DAY

TOKENS = ["[PAD]", "[UNK]", "TIMELINE_END", "GENDER//F", "1d", "HOSPITAL_ADMISSION//EW", "LAB//A", "ICU_ADMISSION//MICU",
          "HOSPITAL_DISCHARGE//HOME", "MEDS_DEATH", "X"]
KINDS = ["special", "special", "special", "static", "interval", "code", "code", "code", "code", "code", "code"]
END, STATIC, DAY, ADM, LAB, ICU, DISCHARGE, DEATH, X = 2, 3, 4, 5, 6, 7, 8, 9, 10
V = len(TOKENS)
T0 = 1_600_000_000_000_000
MAX_DAYS = 60


def transition(x_seen: bool, death_boost: float = 1.0) -> np.ndarray:
    """[V, V] next-token law by last token; the events are rarer than the day ticks."""
    m = np.zeros((V, V))
    base = {DAY: 0.45, LAB: 0.35, ICU: 0.04, DISCHARGE: 0.06, DEATH: 0.012 * (6.0 if x_seen else 1.0) * death_boost, END: 0.004}
    for s in range(V):
        row = dict(base)
        if s == ICU:
            row[DEATH] *= 2.0
        if s == DAY:
            row[DISCHARGE] *= 1.5
        for j, p in row.items():
            m[s, j] = p
    return m / m.sum(1, keepdims=True)


class XChain:
    """logits [B, L, V]: the chain's row of each last token, the X row set if X is in the row."""

    def __init__(self, death_boost: float = 1.0):
        self.log_p = [torch.log(torch.as_tensor(transition(flag, death_boost))) for flag in (False, True)]

    def __call__(self, idx, prs=None):
        seen = (idx == X).any(1)
        return torch.where(seen[:, None, None], self.log_p[1][idx], self.log_p[0][idx])


def scripted_timeline(x_day: int | None = None) -> tuple[list[int], list[int]]:
    """(tokens, times µs) of the stay; with ``x_day`` an X token after the lab of that day."""
    toks, times = [STATIC, ADM, LAB], [T0, T0, T0]
    for day in range(1, 12):
        toks += [DAY, LAB]
        times += [T0 + day * US_PER_DAY] * 2
        if day == 3:
            toks += [ICU, LAB]
            times += [T0 + 3 * US_PER_DAY] * 2
        if x_day == day:
            toks += [X, LAB]
            times += [T0 + day * US_PER_DAY] * 2
    toks += [DAY, DISCHARGE, END]
    times += [T0 + 12 * US_PER_DAY] * 3
    return toks, times


def write_dataset(directory: Path, x_day: int | None = None) -> Path:
    """A one-subject TokenizedDataset holding the scripted stay (subject 7, no age tokens)."""
    toks, times = scripted_timeline(x_day)
    return write_tokens(directory, Vocabulary(TOKENS, KINDS, {"1d": IntervalDuration(US_PER_DAY, float(US_PER_DAY), float(US_PER_DAY), 1)}),
                        {7: (toks, times)})


def write_tokens(directory: Path, vocab: Vocabulary, timelines: dict[int, tuple[list[int], list[int]]], n_static: int = 1) -> Path:
    """A TokenizedDataset of the given timelines (subject -> (token ids, times)), each starting
    with ``n_static`` static tokens, no age tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    lengths = [len(t) for t, _ in timelines.values()]
    arrays = {"tokens": np.concatenate([np.array(t, np.int32) for t, _ in timelines.values()]),
              "offsets": np.r_[0, np.cumsum(lengths)].astype(np.int64), "subject_ids": np.array(list(timelines), np.int64),
              "times": np.concatenate([np.array(s, np.int64) for _, s in timelines.values()]),
              "static_lengths": np.full(len(timelines), n_static, np.int32), "birth_times": np.full(len(timelines), STATIC_TIME, np.int64)}
    for name, a in arrays.items():
        np.save(directory / f"{name}.npy", a)
    vocab.save(directory / "vocab.json")
    (directory / "tokenizer.json").write_text(json.dumps({"config": {"age_tokens": False, "n_quantiles": 10}}))
    return directory


def labels() -> pa.Table:
    return pa.table({"subject_id": pa.array([7], pa.int64()), "prediction_time": pa.array([T0], pa.int64()).cast(pa.timestamp("us")),
                     "boolean_value": [False], "anchor_id": pa.array([0], pa.int64()), "anchor_code": ["HOSPITAL_ADMISSION//EW"],
                     "hadm_id": pa.array([1], pa.int64()), "true_event": ["discharge"], "true_time_us": pa.array([T0 + 12 * US_PER_DAY])})


def first_event_law(m: np.ndarray, classes: dict[int, int], n_classes: int, max_steps: int) -> np.ndarray:
    """[V, C, MAX_DAYS + 1] P(first event class c after d whole days | last token) within
    ``max_steps`` tokens (days past MAX_DAYS pile up in the last bin)."""
    law = np.zeros((V, n_classes, MAX_DAYS + 1))
    for _ in range(max_steps):
        new = np.zeros_like(law)
        for j in range(V):
            if j in classes:
                new[:, classes[j], 0] += m[:, j]
            elif j == DAY:
                shifted = np.concatenate([np.zeros((n_classes, 1)), law[j, :, :-1]], axis=1)
                shifted[:, -1] += law[j, :, -1]
                new += m[:, j, None, None] * shifted[None]
            else:
                new += m[:, j, None, None] * law[j][None]
        law = new
    return law


def mortality_risks(m: np.ndarray, last: int, days_left: float, max_steps: int) -> tuple[float, float]:
    """(P(death), P(stay ≥ days_left more)) given the last token, among valid futures (first event
    death or discharge; timeline end and the cap are invalid)."""
    law = first_event_law(m, {DEATH: 0, DISCHARGE: 1, END: 2}, 3, max_steps)[last]
    valid = law[:2].sum()
    need = max(int(np.ceil(days_left)), 0)
    return float(law[0].sum() / valid), float(law[:2, need:].sum() / valid)


def composite_risk(m: np.ndarray, last: int, days_left: float, max_steps: int, icu_active: bool) -> float:
    """P(ICU or death, or a stay ≥ days_left more) among valid futures: from the ICU run's events
    (ICU, death, discharge) while ICU is active, else from the mortality run's (death, discharge)."""
    need = max(int(np.ceil(days_left)), 0)
    if icu_active:
        law = first_event_law(m, {ICU: 0, DEATH: 1, DISCHARGE: 2, END: 3}, 4, max_steps)[last]
        return float((law[0].sum() + law[1].sum() + law[2, need:].sum()) / law[:3].sum())
    law = first_event_law(m, {DEATH: 0, DISCHARGE: 1, END: 2}, 3, max_steps)[last]
    return float((law[0].sum() + law[1, need:].sum()) / law[:2].sum())
