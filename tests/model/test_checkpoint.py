"""Checkpoints: save -> load gives the same logits; HF GPT-2 directories load; corrupt ones fail clearly."""

from __future__ import annotations

import json

import pytest
import torch

from ehrfast.model import GPT, CheckpointError, GPTConfig, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_save_load_same_logits(tmp_path, modality):
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("tiny", vocab_size=20, modality=modality, n_prs_traits=3 if modality != "none" else 0)).eval()
    idx = torch.randint(0, 20, (2, 9))
    prs = torch.randn(2, 3) if modality != "none" else None
    save_checkpoint(model, tmp_path / "ckpt", extra={"step": 7})
    loaded = load_checkpoint(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(idx, prs=prs), model(idx, prs=prs), rtol=0, atol=0)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["step"] == 7
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_hf_gpt2_directory_loads(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=33, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                                              bos_token_id=0, eos_token_id=0)).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = load_checkpoint(tmp_path / "hf")
    idx = torch.randint(0, 33, (1, 10))
    torch.testing.assert_close(ours(idx), hf(input_ids=idx).logits, rtol=1e-5, atol=1e-5)


def test_corrupt_and_missing(tmp_path):
    model = GPT(GPTConfig.preset("tiny", vocab_size=10))
    save_checkpoint(model, tmp_path / "c")
    with pytest.raises(FileExistsError):
        save_checkpoint(model, tmp_path / "c")
    weights = tmp_path / "c" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "c")
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_checkpoint(tmp_path)
    save_checkpoint(model, tmp_path / "d")
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    cfg["config"]["n_layer"] = 3
    (tmp_path / "d" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(tmp_path / "d")
