"""A long generation slides the model's window but keeps the static prefix (ARES.md S4)."""

from __future__ import annotations

import numpy as np
import torch

from ehrfast.infer.decoders import RecomputeDecoder
from ehrfast.model import GPT, GPTConfig


def test_logits_after_three_windows_equal_prefix_plus_recent_tokens():
    torch.manual_seed(0)
    window, prefix = 24, 5
    model = GPT(GPTConfig(vocab_size=30, block_size=window, n_layer=2, n_head=2, n_embd=32, modality="none", dropout=0.0)).eval()
    decoder = RecomputeDecoder(lambda idx, prs=None: model(idx), window, "cpu")
    decoder.begin(1, 2, 10)
    context = np.arange(10) % 30
    decoder.fill(np.array([0]), [context], None, prefix_lengths=[prefix])
    rng = np.random.default_rng(1)
    generated = []
    for _ in range(3 * window):
        token = torch.as_tensor(rng.integers(0, 30, 2))
        generated.append(token)
        logits = decoder.step(token)
    whole = torch.cat([torch.as_tensor(context).repeat(2, 1), torch.stack(generated, 1)], 1)
    expected_view = torch.cat([whole[:, :prefix], whole[:, -(window - prefix):]], 1)
    assert torch.equal(decoder.view(), expected_view)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(expected_view)[:, -1], rtol=0, atol=0)
        assert not torch.allclose(logits, model(whole[:, -window:])[:, -1])  # the plain sliding window (prefix lost) differs


def test_short_sequences_are_not_cut():
    model = GPT(GPTConfig(vocab_size=30, block_size=24, n_layer=1, n_head=2, n_embd=16, modality="none", dropout=0.0)).eval()
    decoder = RecomputeDecoder(lambda idx, prs=None: model(idx), 24, "cpu")
    decoder.begin(1, 1, 6)
    decoder.fill(np.array([0]), [np.arange(6)], None, prefix_lengths=[4])
    decoder.step(torch.tensor([7]))
    assert decoder.view().tolist() == [[0, 1, 2, 3, 4, 5, 7]]
