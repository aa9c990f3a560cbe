"""The ``ethos_ares`` preset (ARES.md S14): GPT-2 without biases, its parameter count, Hugging
Face GPT-2 state dicts of a no-bias model both ways, and the cosine schedule."""

from __future__ import annotations

import pytest
import torch

from ehrfast.model import GPT, GPTConfig
from ehrfast.train.config import TrainConfig
from ehrfast.train.loop import learning_rate

transformers = pytest.importorskip("transformers")


def test_parameter_count_of_the_preset():
    cfg = GPTConfig.preset("ethos_ares", vocab_size=4495)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.dropout, cfg.bias) == (6, 12, 768, 2048, 0.3, False)
    model = GPT(cfg)
    v, t, n_layer, d = 4495, 2048, 6, 768
    n = sum(p.numel() for p in model.parameters())  # tied head: counted once
    assert n == v * d + t * d + n_layer * (12 * d * d + 2 * d) + d == 47_502_336
    assert n - model.transformer.wpe.weight.numel() == 45_929_472  # the paper's "45 million"
    assert not [name for name, _ in model.named_parameters() if name.endswith("bias")]


def _no_bias_hf(seed=0):
    """A transformers GPT-2 whose biases are zero: the function of a no-bias GPT-2."""
    torch.manual_seed(seed)
    hf_cfg = transformers.GPT2Config(vocab_size=53, n_positions=40, n_embd=48, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return hf_cfg, hf


def test_no_bias_model_matches_transformers_both_ways():
    hf_cfg, hf = _no_bias_hf()
    cfg = GPTConfig.from_hf(hf_cfg, bias=False)
    ours = GPT.from_hf_state_dict(hf.state_dict(), cfg).eval()  # zero biases are dropped
    assert not [n for n, _ in ours.named_parameters() if n.endswith("bias")]
    idx = torch.randint(0, 53, (3, 17))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(input_ids=idx).logits, rtol=1e-5, atol=1e-5)
    # export: a random no-bias model written in GPT-2's layout loads strictly into transformers
    torch.manual_seed(1)
    fresh = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in fresh.named_parameters():
            if "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    hf2 = transformers.GPT2LMHeadModel(hf_cfg).eval()
    missing, unexpected = hf2.load_state_dict(fresh.to_hf_state_dict(), strict=False)
    assert not unexpected and all(k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing)
    with torch.no_grad():
        torch.testing.assert_close(fresh(idx), hf2(input_ids=idx).logits, rtol=1e-5, atol=1e-5)


def test_a_non_zero_bias_does_not_load_into_a_no_bias_config():
    hf_cfg, hf = _no_bias_hf()
    sd = dict(hf.state_dict())
    sd["transformer.h.0.mlp.c_fc.bias"] = sd["transformer.h.0.mlp.c_fc.bias"] + 0.5
    with pytest.raises(ValueError, match="non-zero bias"):
        GPT.from_hf_state_dict(sd, GPTConfig.from_hf(hf_cfg, bias=False))


def test_hf_directory_without_biases_loads_as_a_no_bias_model(tmp_path):
    from safetensors.torch import save_file

    from ehrfast.model.checkpoint import load_checkpoint

    hf_cfg, hf = _no_bias_hf()
    state = {k: v.contiguous() for k, v in hf.state_dict().items() if not k.endswith("bias") and k != "lm_head.weight"}
    save_file(state, str(tmp_path / "model.safetensors"))
    hf_cfg.save_pretrained(tmp_path)
    model = load_checkpoint(tmp_path)
    assert model.config.bias is False
    idx = torch.randint(0, 53, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf(input_ids=idx).logits, rtol=1e-5, atol=1e-5)


def test_no_bias_model_trains():
    cfg = GPTConfig(vocab_size=30, n_layer=2, n_head=2, n_embd=16, block_size=32, bias=False, dropout=0.3)
    model = GPT(cfg)
    idx = torch.randint(0, 30, (4, 12))
    loss = torch.nn.functional.cross_entropy(model(idx[:, :-1]).reshape(-1, 30), idx[:, 1:].reshape(-1))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cosine_schedule_of_the_reference():
    cfg = TrainConfig(preset="ethos_ares", lr=6e-4, min_lr_ratio=1e-5 / 6e-4, warmup_steps=5000, schedule="cosine",
                      lr_decay_steps=100_000, steps=200_000, beta2=0.95)
    assert learning_rate(0, cfg) == 0.0 and learning_rate(2500, cfg) == pytest.approx(3e-4)
    assert learning_rate(5000, cfg) == pytest.approx(6e-4, rel=1e-12)
    assert learning_rate(52_500, cfg) == pytest.approx(3.05e-4, rel=1e-12)
    assert learning_rate(100_000, cfg) == pytest.approx(1e-5, rel=1e-12)
    assert learning_rate(100_001, cfg) == pytest.approx(1e-5, rel=1e-12) and learning_rate(199_999, cfg) == pytest.approx(1e-5, rel=1e-12)
    lrs = [learning_rate(s, cfg) for s in range(5000, 100_001, 500)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # monotone between warm-up and the floor
    with pytest.raises(ValueError, match="lr_decay_steps"):
        TrainConfig(schedule="cosine", warmup_steps=30, lr_decay_steps=20)
