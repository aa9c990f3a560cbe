"""Training batches from a TokenizedDataset: random windows of subjects' timelines, packed into
rows (several subjects per row, with segment ids) or one subject per row, right-padded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ehrfast.errors import InvalidInputError
from ehrfast.tokenize.dataset import TokenizedDataset

PAD_ID = 0


@dataclass
class Batch:
    idx: torch.Tensor  # [B, L + 1] int64 (inputs are [:, :-1], targets [:, 1:])
    segment_ids: torch.Tensor | None  # [B, L + 1] int64 (packed rows) or None
    prs: torch.Tensor | None  # [B, S, n_traits] (packed) or [B, n_traits], NaN rows = missing
    n_real_tokens: int


def subject_window(ds: TokenizedDataset, i: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Static prefix + a random contiguous chunk of the rest, at most ``length`` tokens. With
    static_latest categories (``ds.has_window_head``) the prefix is the head at the chunk's start
    — its latest category tokens and the age then, as the reference's patient context."""
    tokens, times = ds.timeline(i)
    n_static = int(ds.static_lengths[i])
    if not ds.has_window_head and len(tokens) <= length:
        return tokens
    n_head = ds.head_length(i)
    head_len = min(n_head, max(1, length // 4)) if len(tokens) - n_static + n_head > length else n_head
    room = length - head_len
    last_start = len(tokens) - room  # a chunk starting here ends at the timeline's end
    # the static part was cut to fit: the body may be shorter than the room left
    start = n_static if last_start <= n_static else int(rng.integers(n_static, last_start + 1))
    if ds.has_window_head:
        start_us = int(times[start]) if start < len(times) else int(times[-1])
        head = ds.head(i, start_us)[:head_len]
    else:
        head = tokens[:n_static][:head_len]
    return np.concatenate([head, tokens[start : start + room]]).astype(tokens.dtype)


class BatchSampler:
    """Seeded, reproducible batches. ``prs_rows`` [n_subjects, n_traits] float32 aligned with
    the dataset (NaN rows = no genotypes) or None."""

    def __init__(self, ds: TokenizedDataset, seq_len: int, batch_size: int, seed: int, prs_rows: np.ndarray | None = None,
                 pack: bool = True, subjects: np.ndarray | None = None):
        self.ds, self.seq_len, self.batch_size, self.pack = ds, seq_len, batch_size, pack
        self.prs_rows = prs_rows
        self.subjects = np.arange(len(ds)) if subjects is None else np.asarray(subjects)
        if len(self.subjects) == 0:
            raise InvalidInputError("no subjects to train on")
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def next(self) -> Batch:
        return self._packed() if self.pack else self._padded()

    def _packed(self) -> Batch:
        width = self.seq_len + 1
        idx = np.full((self.batch_size, width), PAD_ID, np.int64)
        seg = np.zeros((self.batch_size, width), np.int64)
        rows_prs, real = [], 0
        for r in range(self.batch_size):
            used, s, prs = 0, 0, []
            while used < width:
                i = int(self.subjects[self.rng.integers(len(self.subjects))])
                w = subject_window(self.ds, i, width - used, self.rng)
                idx[r, used : used + len(w)] = w
                seg[r, used : used + len(w)] = s
                prs.append(self.prs_rows[i] if self.prs_rows is not None else None)
                used, s, real = used + len(w), s + 1, real + len(w)
            rows_prs.append(prs)
        prs_t = None
        if self.prs_rows is not None:
            n_seg = max(len(p) for p in rows_prs)
            arr = np.full((self.batch_size, n_seg, self.prs_rows.shape[1]), np.nan, np.float32)
            for r, p in enumerate(rows_prs):
                arr[r, : len(p)] = np.stack(p)
            prs_t = torch.from_numpy(arr)
        return Batch(torch.from_numpy(idx), torch.from_numpy(seg), prs_t, real)

    def _padded(self) -> Batch:
        width = self.seq_len + 1
        idx = np.full((self.batch_size, width), PAD_ID, np.int64)
        picks = self.rng.integers(len(self.subjects), size=self.batch_size)
        real = 0
        for r, k in enumerate(picks):
            w = subject_window(self.ds, int(self.subjects[k]), width, self.rng)
            idx[r, : len(w)] = w  # right padding: causal attention never lets a real token see a pad
            real += len(w)
        prs_t = torch.from_numpy(self.prs_rows[self.subjects[picks]]) if self.prs_rows is not None else None
        return Batch(torch.from_numpy(idx), None, prs_t, real)
