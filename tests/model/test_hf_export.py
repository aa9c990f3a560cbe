"""``export_hf`` / ``ehrfast export-hf``: the real transformers reads the export — the same logits
(plain, cross-attention and prefix models, with and without biases), a working ``AutoTokenizer``
— and ehrfast reads it back unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ehrfast.model import GPT, GPTConfig, export_hf, load_checkpoint, save_checkpoint
from ehrfast.tokenize.vocab import Vocabulary

transformers = pytest.importorskip("transformers")

TOKENS = ["[PAD]", "[UNK]", "TIMELINE_END", "MEDS_BIRTH", "SEX//F", "LAB//50912//mg/dL", "MEDICATION//Sodium Chloride 0.9%", "Q3",
          "5m-15m", "HOSPITAL_ADMISSION//EW EMER.", "MEDS_DEATH"]


def _checkpoint(tmp_path, modality: str, bias: bool = True, seed: int = 0):
    """A tiny checkpoint with non-trivial LayerNorms and biases, ehrfast's tokenizer files beside it."""
    torch.manual_seed(seed)
    n_traits = 3 if modality != "none" else 0
    model = GPT(GPTConfig.preset("tiny", vocab_size=len(TOKENS), modality=modality, n_prs_traits=n_traits, bias=bias)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name or "prs_encoder" in name:
                p.add_(0.1 * torch.randn_like(p))
    tok = tmp_path / "tok"
    tok.mkdir(exist_ok=True)
    Vocabulary(TOKENS, ["special"] * 3 + ["code"] * (len(TOKENS) - 3)).save(tok / "vocab.json")
    (tok / "tokenizer.json").write_text(json.dumps({"format_version": 0, "config": {}}))
    traits = [f"trait_{i}" for i in range(n_traits)] or None
    save_checkpoint(model, tmp_path / "model", tokenizer_dir=tok, extra={"step": 3, "traits": traits})
    return model


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_from_pretrained_gives_the_same_logits(tmp_path, modality, bias):
    model = _checkpoint(tmp_path, modality, bias)
    summary = export_hf(tmp_path / "model", tmp_path / "hf")
    assert summary.modality == modality and summary.with_prs_encoder == (modality != "none")
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    hf.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert hf.config.add_cross_attention == (modality == "cross")
    idx = torch.randint(0, len(TOKENS), (3, 12), generator=torch.Generator().manual_seed(1))
    prs = torch.randn(3, 3) if modality != "none" else None
    if prs is not None:
        prs[1] = float("nan")  # no genotypes: the encoder's learned "missing" row
    with torch.no_grad():
        expected = model(idx, prs=prs)
        soft = model.soft_tokens(prs, None, 3)
        if modality == "prefix":
            x = torch.cat([soft, hf.transformer.wte(idx)], dim=1)
            got = hf(inputs_embeds=x).logits[:, soft.shape[1]:]
        else:
            got = hf(input_ids=idx, encoder_hidden_states=soft).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    back = load_checkpoint(tmp_path / "hf")  # ehrfast reads the export back, PRS encoder included
    assert back.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(back(idx, prs=prs), expected, rtol=0, atol=0)


def test_model_card_code_computes_the_soft_tokens(tmp_path):
    """The README.md's PRS-encoder lines, run as written, give the soft tokens ehrfast computes."""
    model = _checkpoint(tmp_path, "cross")
    export_hf(tmp_path / "model", tmp_path / "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    code = card.split("```python")[2].split("```")[0]
    prs = torch.randn(4, 3)
    prs[2] = float("nan")
    scope = {"OUT": str(tmp_path / "hf"), "prs": prs}
    exec(code, scope)
    with torch.no_grad():
        torch.testing.assert_close(scope["soft"], model.soft_tokens(prs, None, 4), rtol=1e-6, atol=1e-6)
    assert "trait_0, trait_1, trait_2" in card


def test_auto_tokenizer_reads_the_vocabulary(tmp_path):
    """AutoTokenizer crashed on ehrfast's own tokenizer.json (a name HF reserves): the export holds a
    real HF tokenizer there and ehrfast's file as ehrfast_tokenizer.json."""
    _checkpoint(tmp_path, "none")
    export_hf(tmp_path / "model", tmp_path / "hf")
    files = {p.name for p in (tmp_path / "hf").iterdir()}
    assert {"ehrfast_tokenizer.json", "ehrfast_vocab.json", "tokenizer.json", "tokenizer_config.json"} <= files
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert len(tokenizer) == len(TOKENS)
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    hf_strings = [t.replace(" ", "\u2581") for t in TOKENS]
    ids = tokenizer(" ".join(hf_strings[3:]), add_special_tokens=False).input_ids
    assert ids == list(range(3, len(TOKENS)))
    assert tokenizer(f"MEDS_BIRTH NOT_A_TOKEN {hf_strings[2]}", add_special_tokens=False).input_ids == [3, 1, 2]
    assert tokenizer.convert_ids_to_tokens(list(range(len(TOKENS)))) == hf_strings
    assert tokenizer.decode([3, 4, 0], skip_special_tokens=True) == "MEDS_BIRTH SEX//F"
    assert tokenizer.model_max_length == 64


def test_real_timeline_through_the_cli(shared_data, tmp_path):
    """The MIMIC-IV demo tokenized and trained for two steps, exported with the command: the HF
    tokenizer turns a real timeline's token strings into its ids, and HF's logits on it are ours."""
    from ehrfast.cli import main
    from ehrfast.tokenize import tokenize_dataset
    from ehrfast.tokenize.dataset import TokenizedDataset
    from ehrfast.train import TrainConfig, train

    tokenize_dataset(shared_data / "mimic-iv-demo-meds", tmp_path / "tok", progress=False)
    train(tmp_path / "tok", tmp_path / "run", TrainConfig(preset="tiny", modality="none", steps=2, batch_size=2, seq_len=32, eval_every=2,
                                                          eval_batches=1), progress=False)
    assert main(["export-hf", str(tmp_path / "run" / "model"), str(tmp_path / "hf")]) == 0
    data = TokenizedDataset(tmp_path / "tok" / "train")
    vocab = Vocabulary.load(tmp_path / "tok" / "train" / "vocab.json")
    ids = np.asarray(data.tokens[data.offsets[0]:data.offsets[1]])[:60]
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = " ".join(t.replace(" ", "\u2581") for t in vocab.decode(ids))
    assert tokenizer(text, add_special_tokens=False).input_ids == ids.tolist()
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ours = load_checkpoint(tmp_path / "run" / "model")
    idx = torch.tensor(ids[None], dtype=torch.long)
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=idx).logits, ours(idx), rtol=1e-5, atol=1e-5)


def test_bad_exports_fail_clearly(tmp_path, capsys):
    from ehrfast.cli import main

    _checkpoint(tmp_path, "none")
    assert main(["export-hf", str(tmp_path / "model"), str(tmp_path / "model" / "hf")]) == 2
    assert "lies inside the input" in capsys.readouterr().err
    assert main(["export-hf", str(tmp_path / "nowhere"), str(tmp_path / "hf")]) == 2
    assert "missing config.json" in capsys.readouterr().err and not (tmp_path / "hf").exists()
    export_hf(tmp_path / "model", tmp_path / "hf")
    assert main(["export-hf", str(tmp_path / "hf"), str(tmp_path / "hf2")]) == 2
    assert "already a Hugging Face GPT-2 directory" in capsys.readouterr().err
    assert main(["export-hf", str(tmp_path / "model"), str(tmp_path / "hf")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export-hf", str(tmp_path / "model"), str(tmp_path / "hf"), "--overwrite"]) == 0
