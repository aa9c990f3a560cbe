"""Token groups: the pieces of information an explanation ranks (ARES.md S8).

A group is a run of consecutive tokens of one timeline that carry one piece of information:

* a code token with its value (quantile) tokens and the further pieces of the same hierarchical
  code (``<prefix>REST//…`` tokens), all at the code's time;
* an interval token, a visit token or a special token alone;
* the reference's rule table for its ETHOS tokenization (``trajectories.ipynb``
  ``group_tokens_by_piece_of_info``): a bare ED_REGISTRATION, ED_ACUITY (or ACUITY),
  HOSPITAL_ADMISSION, ICU_ADMISSION or SOFA token spans 2 tokens, an ICD//PCS code 7, ICD//CM 3,
  VITAL 2, LAB 2 and ATC 3 — never past a change of time or an interval token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupRule:
    """A group that starts at a token matching ``pattern`` and spans ``span`` tokens."""

    pattern: str
    span: int


REFERENCE_RULES: tuple[GroupRule, ...] = (
    GroupRule(r"^(ED_REGISTRATION|ED_ACUITY|ACUITY|HOSPITAL_ADMISSION|ICU_ADMISSION|SOFA)$", 2),
    GroupRule(r"^ICD//PCS(//|$)", 7),
    GroupRule(r"^ICD//CM(//|$)", 3),
    GroupRule(r"^(VITAL|LAB)$", 2),
    GroupRule(r"^ATC(//|$)", 3),
)
ALONE_KINDS = ("interval", "visit", "special")


def token_groups(vocab_tokens: list[str], kinds: list[str], timeline: np.ndarray, indices: np.ndarray,
                 rules: tuple[GroupRule, ...] = REFERENCE_RULES, times: np.ndarray | None = None) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Groups of the consecutive timeline token indices ``indices``: ([(first, last)], [G] int64 the
    last index of each). ``timeline`` [L] int32 token ids; ``times`` [L] µs (a group never spans two)."""
    idx = np.asarray(indices, np.int64)
    compiled = [(re.compile(r.pattern), r.span) for r in rules]
    groups: list[tuple[int, int]] = []
    i, stop = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)

    def same_time(a: int, b: int) -> bool:
        return times is None or times[a] == times[b]

    while i < stop:
        tid = int(timeline[i])
        name, kind = vocab_tokens[tid], kinds[tid]
        span = next((n for pattern, n in compiled if pattern.search(name)), None)
        j = i
        if span is not None:
            while j + 1 < min(i + span, stop) and kinds[int(timeline[j + 1])] != "interval" and same_time(i, j + 1):
                j += 1
        elif kind not in ALONE_KINDS and kind != "quantile":
            while j + 1 < stop and same_time(i, j + 1):
                nxt = vocab_tokens[int(timeline[j + 1])]
                nkind = kinds[int(timeline[j + 1])]
                if nkind == "quantile" or ("//REST//" in nxt and name.startswith(nxt.split("//REST//")[0])):
                    j += 1
                else:
                    break
        groups.append((i, j))
        i = j + 1
    return groups, np.array([b for _, b in groups], np.int64)
