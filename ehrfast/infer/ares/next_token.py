"""Next-token categorical tasks (ARES.md S9): DRG at discharge and SOFA at ICU admission as exact
softmax readouts instead of sampling.

The reference generates one token (DRG: every ``DRG//*`` token stops) or three (SOFA: the ICU
type, then ``SOFA`` forced, then the quantile) and compares the sampled token with the real one.
Here the model's next-token distribution is read directly: the context (ending just before the
DRG token, or at the ICU admission), the forced tokens appended, then the softmax over the
candidate tokens (the distribution given that the next token is one of them). A forced token
``{real}`` is the real timeline's token there (SOFA: the real ICU type); in parity mode
(``marginal_next_token_probabilities``) it is marginalised instead: Σ_type p(type | context) ·
p(Q | context, type, SOFA).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ehrfast.errors import InvalidInputError

REAL = "{real}"


@dataclass(frozen=True)
class NextTokenTask:
    """A read at every real token matching ``at``: the context ends just before it (``context``
    "before") or at it ("at"); ``forced`` tokens (vocabulary tokens, or ``{real}``) follow; the
    answer is one of the tokens matching ``candidates``; the real answer is the timeline's token
    at the read position (reads whose real answer matches ``exclude``, or whose timeline does not
    hold the forced tokens there, are skipped). ``branch``: the tokens ``{real}`` ranges over in
    parity mode."""

    name: str
    at: str
    candidates: str
    context: str = "before"
    forced: tuple[str, ...] = ()
    exclude: str | None = None
    branch: str | None = None

    def __post_init__(self):
        if self.context not in ("before", "at"):
            raise InvalidInputError(f"next-token task {self.name!r}: context must be 'before' or 'at', got {self.context!r}")
        if self.context == "before" and self.forced:
            raise InvalidInputError(f"next-token task {self.name!r}: forced tokens need context 'at'")


DRG = NextTokenTask("drg", at=r"^DRG//HCFA//", candidates=r"^DRG//HCFA//", exclude=r"UNKNOWN")
# the reference's ETHOS tokenization: ICU_ADMISSION, its type, SOFA, the quantile
SOFA = NextTokenTask("sofa", at=r"^ICU_ADMISSION$", candidates=r"^Q\d+$", context="at", forced=(REAL, "SOFA"), branch=r"^ICU_TYPE//")
# ehrfast's own tokenization, where the ICU type is part of the ICU_ADMISSION//<unit> token
SOFA_AT_UNIT = NextTokenTask("sofa_at_unit", at=r"^ICU_ADMISSION//", candidates=r"^Q\d+$", context="at", forced=("SOFA",))
NEXT_TOKEN_TASKS = {t.name: t for t in (DRG, SOFA, SOFA_AT_UNIT)}


def matching_ids(tokens: Sequence[str], pattern: str, what: str) -> np.ndarray:
    """[C] ids of the vocabulary tokens matching ``pattern`` (code alone, case-sensitive); none is an error."""
    rx = re.compile(pattern)
    ids = np.array([i for i, t in enumerate(tokens) if rx.search(t)], np.int64)
    if not len(ids):
        raise InvalidInputError(f"no vocabulary token matches {what} {pattern!r}")
    return ids


def _forward(model, idx: torch.Tensor, prs: torch.Tensor | None) -> torch.Tensor:
    return model(idx, prs=prs) if prs is not None else model(idx)


@torch.no_grad()
def next_token_probabilities(model, contexts: Sequence[np.ndarray], candidate_ids: np.ndarray, *, prs: np.ndarray | None = None,
                             device: str = "cpu", batch_size: int = 32) -> np.ndarray:
    """[n, C] float64: p(next token = candidate c | context), renormalized over the candidates,
    for each context (its forced tokens already appended). ``model(idx [B, L], prs) -> logits
    [B, L, V]`` (a ``GPT`` or a callable); contexts are right-padded, and each row is read at its
    own last token (causal attention: padding after it changes nothing)."""
    candidate_ids = torch.as_tensor(np.asarray(candidate_ids, np.int64), device=device)
    out = np.zeros((len(contexts), len(candidate_ids)))
    if hasattr(model, "eval"):
        model.eval()
    for a in range(0, len(contexts), batch_size):
        batch = contexts[a:a + batch_size]
        lengths = np.array([len(c) for c in batch])
        if (lengths < 1).any():
            raise InvalidInputError("a next-token context is empty")
        idx = np.zeros((len(batch), int(lengths.max())), np.int64)
        for r, c in enumerate(batch):
            idx[r, :len(c)] = c
        p = None if prs is None else torch.as_tensor(np.asarray(prs)[a:a + batch_size], dtype=torch.float32, device=device)
        logits = _forward(model, torch.as_tensor(idx, device=device), p)
        last = logits[torch.arange(len(batch), device=device), torch.as_tensor(lengths - 1, device=device)].double()
        out[a:a + len(batch)] = torch.softmax(last[:, candidate_ids], dim=-1).cpu().numpy()
    if not np.isfinite(out).all():
        raise InvalidInputError("the model's next-token logits are not finite (a NaN or inf weight in the checkpoint?)")
    return out


def marginal_next_token_probabilities(model, contexts: Sequence[np.ndarray], branch_ids: np.ndarray, after: Sequence[int],
                                      candidate_ids: np.ndarray, **kw) -> np.ndarray:
    """[n, C] Σ_b p(b | context) · p(candidate | context, b, *after), b over ``branch_ids`` (renormalized)."""
    p_branch = next_token_probabilities(model, contexts, branch_ids, **kw)  # [n, Bn]
    out = np.zeros((len(contexts), len(candidate_ids)))
    for j, b in enumerate(np.asarray(branch_ids).tolist()):
        extended = [np.r_[np.asarray(c, np.int64), b, np.asarray(after, np.int64)] for c in contexts]
        out += p_branch[:, j, None] * next_token_probabilities(model, extended, candidate_ids, **kw)
    return out


@dataclass
class NextTokenReads:
    """The reads of one task: per read ``subject_id``, ``token_index`` (of the ``at`` token),
    ``time_us``, ``truth`` (candidate column of the real answer), and ``probabilities`` [n, C]
    over ``candidates`` (token strings)."""

    task: NextTokenTask
    candidates: list[str]
    subject_id: np.ndarray
    token_index: np.ndarray
    time_us: np.ndarray
    truth: np.ndarray
    probabilities: np.ndarray

    def top_k_accuracy(self, k: int) -> float:
        """Share of reads whose real answer is among the k most probable candidates."""
        if not len(self.truth):
            return float("nan")
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        return float(np.mean((order == self.truth[:, None]).any(1)))

    def expected_quantile(self) -> np.ndarray:
        """[n] Σ_q q · p(Q_q) for quantile candidates (``Q1`` … ``Q10``; SOFA's expected quantile)."""
        q = np.array([int(c[1:]) for c in self.candidates], np.float64)
        return self.probabilities @ q


def read_positions(task: NextTokenTask, tokens: Sequence[str], timeline: np.ndarray, start: int) -> list[tuple[int, int, list[int]]]:
    """[(at index, real answer token id, forced token ids)] of one timeline (tokens from ``start``)."""
    at_rx, cand_rx = re.compile(task.at), re.compile(task.candidates)
    exclude = re.compile(task.exclude) if task.exclude else None
    out = []
    for i in range(start, len(timeline)):
        if not at_rx.search(tokens[timeline[i]]):
            continue
        read = i if task.context == "before" else i + 1 + len(task.forced)
        if read >= len(timeline):
            continue
        forced = []
        for k, f in enumerate(task.forced):
            real = int(timeline[i + 1 + k])
            if f != REAL and tokens[real] != f:
                break  # the timeline does not hold this forced token here: no real answer to compare with
            forced.append(real)
        else:
            answer = tokens[timeline[read]]
            if cand_rx.search(answer) and not (exclude and exclude.search(answer)):
                out.append((i, int(timeline[read]), forced))
    return out


def read_next_tokens(model, ds, task: NextTokenTask, *, parity: bool = False, prs: np.ndarray | None = None, device: str = "cpu",
                     window: int | None = None) -> NextTokenReads:
    """Every read of ``task`` in the TokenizedDataset ``ds``: contexts token-exact (static prefix
    kept, left-truncated to the model's window less the forced tokens), forced tokens appended,
    the softmax over the candidates (``parity``: ``{real}`` marginalised over ``task.branch``).
    ``prs`` [n_subjects of ds, n_traits] for models that read PRS."""
    tokens = ds.vocab.decode(range(len(ds.vocab)))
    candidates = matching_ids(tokens, task.candidates, f"task {task.name!r}'s candidates")
    for f in task.forced:
        if f != REAL and f not in ds.vocab:
            raise InvalidInputError(f"task {task.name!r} forces the token {f!r}, which {ds.directory} does not have "
                                    f"(MEDS MIMIC-IV holds no SOFA; use a tokenization that writes it)")
    window = model.config.token_window if hasattr(model, "config") else window
    room = None if window is None else window - len(task.forced)
    rows, contexts, truth, sids, at_index, times = [], [], [], [], [], []
    for r, sid in enumerate(np.asarray(ds.subject_ids).tolist()):
        timeline, t = ds.timeline(r)
        for i, answer, forced in read_positions(task, tokens, timeline, int(ds.static_lengths[r])):
            end = i - 1 if task.context == "before" else i
            if end < int(ds.static_lengths[r]):
                continue
            ctx = ds.context_at(sid, end, max_tokens=room)[0].astype(np.int64)
            contexts.append(ctx if parity and REAL in task.forced else np.r_[ctx, np.array(forced, np.int64)])
            truth.append(int(np.flatnonzero(candidates == answer)[0]))
            rows.append(r)
            sids.append(sid)
            at_index.append(i)
            times.append(int(t[i]))
    row_prs = None if prs is None else np.asarray(prs)[rows]
    if not contexts:
        probabilities = np.zeros((0, len(candidates)))
    elif parity and REAL in task.forced:
        if task.forced[0] != REAL or not task.branch:
            raise InvalidInputError(f"task {task.name!r}: parity mode marginalises a leading {REAL} over its branch tokens")
        branch = matching_ids(tokens, task.branch, f"task {task.name!r}'s branch")
        after = [ds.vocab.id(f) for f in task.forced[1:]]
        probabilities = marginal_next_token_probabilities(model, contexts, branch, after, candidates, prs=row_prs, device=device)
    else:
        probabilities = next_token_probabilities(model, contexts, candidates, prs=row_prs, device=device)
    return NextTokenReads(task, [tokens[c] for c in candidates], np.array(sids, np.int64), np.array(at_index, np.int64),
                          np.array(times, np.int64), np.array(truth, np.int64), probabilities)
