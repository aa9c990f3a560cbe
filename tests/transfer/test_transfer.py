"""Transfer learning: frozen features equal the model's own hidden states, probes learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ehrfast.evaluate.metrics import auroc
from ehrfast.model import GPT, GPTConfig
from ehrfast.tokenize import tokenize_dataset
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.transfer import context_features, demographic_features, prs_embeddings, train_probe


@pytest.fixture(scope="module")
def held_out(small_cohort, tmp_path_factory):
    root, _, _ = small_cohort
    out = tmp_path_factory.mktemp("transfer") / "tokens"
    tokenize_dataset(root, out, progress=False)
    return TokenizedDataset(out / "held_out")


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_context_features_are_the_hidden_state_at_the_last_context_token(held_out, modality):
    ds = held_out
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=len(ds.vocab), block_size=64, n_layer=2, n_head=2, n_embd=16, modality=modality,
                    n_prs_traits=0 if modality == "none" else 3, n_soft_tokens=2, dropout=0.0)
    model = GPT(cfg).eval()
    sids = np.asarray(ds.subject_ids[:7])
    times = np.array([int(ds.timeline(ds.row(int(s)))[1][-1]) - k * 10**13 for k, s in enumerate(sids)])  # various cut points
    prs = None if modality == "none" else np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    feats = context_features(model, ds, sids, times, prs, batch_size=3)
    window = cfg.block_size - (cfg.n_soft_tokens if modality == "prefix" else 0)
    for k, (s, t) in enumerate(zip(sids, times)):
        ctx = torch.as_tensor(ds.context(int(s), int(t), max_tokens=window)[0].astype(np.int64))[None]
        with torch.no_grad():
            alone = model.hidden_states(ctx, None if prs is None else torch.as_tensor(prs[k: k + 1]))[0, -1]
        torch.testing.assert_close(torch.as_tensor(feats[k]), alone, rtol=1e-5, atol=1e-5)
    if modality != "none":
        emb = prs_embeddings(model, prs)
        with torch.no_grad():
            torch.testing.assert_close(torch.as_tensor(emb), model.prs_encoder(torch.as_tensor(prs)).mean(1), rtol=1e-6, atol=1e-6)
    else:
        with pytest.raises(ValueError, match="no PRS encoder"):
            prs_embeddings(model, np.zeros((1, 3)))


def test_demographic_features_hold_age_and_static_tokens(held_out):
    ds = held_out
    sids = np.asarray(ds.subject_ids[:5])
    t = np.asarray([int(ds.birth_times[ds.row(int(s))]) for s in sids]) + int(40 * 365.25 * 86400e6)
    x = demographic_features(ds, sids, t)
    np.testing.assert_allclose(x[:, 0], 40.0)
    assert x.shape[1] == 1 + sum(k == "static" for k in ds.vocab.kinds)
    assert (x[:, 1:].sum(1) >= 2).all()  # at least sex and race


@pytest.mark.parametrize("hidden", [None, 16])
def test_probe_learns_and_is_reproducible(hidden):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 5)) * [1, 10, 100, 1, 1] + [0, 5, -50, 0, 0]  # scales the probe must standardize
    y = rng.random(2000) < 1 / (1 + np.exp(-(x[:, 0] + x[:, 1] / 10 - 1)))
    probe = train_probe(x[:1500], y[:1500], hidden=hidden, epochs=30, seed=1)
    assert auroc(y[1500:], probe.predict_proba(x[1500:])) > 0.75
    again = train_probe(x[:1500], y[:1500], hidden=hidden, epochs=30, seed=1)
    np.testing.assert_array_equal(probe.predict_proba(x[1500:]), again.predict_proba(x[1500:]))
    with pytest.raises(ValueError, match="one class"):
        train_probe(x[:10], np.zeros(10, bool))
    with pytest.raises(ValueError, match=r"\[n, 5\]"):
        probe.predict_proba(x[:, :4])
