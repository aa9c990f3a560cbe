"""Token-exact contexts (ARES.md S4): a context ending at a token index, and where an anchor's
context ends for each ``anchor.context`` rule."""

from __future__ import annotations

import numpy as np
import pytest

from ehrfast.errors import EhrfastError
from ehrfast.tokenize import TokenizedDataset, tokenize_dataset


@pytest.fixture(scope="module")
def mimic_tokens(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ctx") / "tok"
    tokenize_dataset(shared_data / "mimic-iv-demo-meds", out, progress=False)
    return TokenizedDataset(out / "train")


def test_context_at_the_last_token_at_a_time_is_the_time_context(mimic_tokens):
    ds = mimic_tokens
    rng = np.random.default_rng(0)
    checked = 0
    for i in rng.choice(len(ds), size=20, replace=False):
        sid = int(ds.subject_ids[i])
        tokens, times = ds.timeline(i)
        n_static = int(ds.static_lengths[i])
        for t in rng.choice(times[n_static:], size=5):
            k = ds.anchor_token_index(sid, int(t), None, "same_time")
            for max_tokens in (None, 40):
                a, at = ds.context(sid, int(t), max_tokens=max_tokens)
                b, bt = ds.context_at(sid, k, max_tokens=max_tokens)
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(at, bt)
            checked += 1
    assert checked == 100


def test_golden_context_at_an_index(mimic_tokens):
    """By hand: static prefix (age recomputed at the token's time), then the timeline through
    the token, nothing after it."""
    ds = mimic_tokens
    i = 0
    sid = int(ds.subject_ids[i])
    tokens, times = ds.timeline(i)
    n_static = int(ds.static_lengths[i])
    k = n_static + 7
    ctx, ctx_t = ds.context_at(sid, k)
    assert len(ctx) == k + 1
    np.testing.assert_array_equal(ctx[n_static:], tokens[n_static:k + 1])
    np.testing.assert_array_equal(ctx[: n_static - 2], tokens[: n_static - 2])  # static tokens; the two age tokens are recomputed
    assert (ctx_t[:n_static] == times[k]).all()
    short, _ = ds.context_at(sid, k, max_tokens=n_static + 3)
    np.testing.assert_array_equal(short[n_static:], tokens[k - 2:k + 1])
    with pytest.raises(EhrfastError, match="outside its timeline"):
        ds.context_at(sid, len(tokens))


def test_anchor_token_index_rules(mimic_tokens):
    ds = mimic_tokens
    vocab_codes = [c for c in ds.vocab.tokens if c.startswith("HOSPITAL_ADMISSION//")]
    ids = np.array([ds.vocab.id(c) for c in vocab_codes])
    for i in range(len(ds)):
        tokens, times = ds.timeline(i)
        hits = np.flatnonzero(np.isin(tokens, ids))
        if len(hits):
            break
    sid, p = int(ds.subject_ids[i]), int(hits[0])
    code, t = ds.vocab.tokens[tokens[p]], int(times[p])
    same_time = ds.anchor_token_index(sid, t, code, "same_time")
    assert times[same_time] == t and (same_time + 1 == len(times) or times[same_time + 1] > t)
    assert ds.anchor_token_index(sid, t, code, "anchor") == p
    assert ds.anchor_token_index(sid, t, code, 2) == min(p + 2, same_time)
    assert ds.anchor_token_index(sid, t, code, 10_000) == same_time  # never past the anchor's time
    assert ds.anchor_token_index(sid, t, "NOT_A_CODE", "anchor") == same_time  # no token of its own: the time rule


def test_age_at_the_window_start(mimic_tokens):
    """age_at="window_start" takes the age tokens at the first timeline token the context keeps
    (the reference), "prediction" at the token the context ends with."""
    ds = mimic_tokens
    i = int(np.argmax(np.diff(ds.offsets)))  # the longest timeline: decades between its first and last tokens
    sid = int(ds.subject_ids[i])
    tokens, times = ds.timeline(i)
    n_static = int(ds.static_lengths[i])
    k = len(tokens) - 2
    at_end, _ = ds.context_at(sid, k)
    at_start, _ = ds.context_at(sid, k, age_at="window_start")
    start_of_window = ds.context(sid, int(times[n_static]))[0]  # a context whose prediction time is the first token's
    np.testing.assert_array_equal(at_start[n_static - 2:n_static], start_of_window[n_static - 2:n_static])
    np.testing.assert_array_equal(at_start[n_static:], at_end[n_static:])
    cut, _ = ds.context_at(sid, k, max_tokens=n_static + 5, age_at="window_start")
    later = ds.context(sid, int(times[k - 4]))[0]
    np.testing.assert_array_equal(cut[n_static - 2:n_static], later[n_static - 2:n_static])  # the kept window starts 4 tokens back
    with pytest.raises(EhrfastError, match="age_at"):
        ds.context_at(sid, k, age_at="birth")
