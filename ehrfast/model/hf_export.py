"""Export a checkpoint as a Hugging Face GPT-2 directory: ``GPT2LMHeadModel.from_pretrained(OUT)``
gives the same logits, and ``AutoTokenizer.from_pretrained(OUT)`` reads the vocabulary.

What is written (all float32):

* ``config.json`` — a ``GPT2Config`` (``add_cross_attention=True`` for cross-attention models),
  plus an ``ehrfast`` section: the full ehrfast config, the PRS trait order and the export format;
* ``model.safetensors`` — GPT-2's names and layouts (``GPT.to_hf_state_dict``; a model without
  biases gets zero biases, the same function);
* ``generation_config.json`` — TIMELINE_END ends a sequence, [PAD] pads;
* ``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json`` — a real
  ``tokenizers`` WordLevel tokenizer over ehrfast's token strings, split on whitespace (a
  whitespace character inside a token string is written as U+2581 "▁"), so HF tooling never
  meets ehrfast's own files under HF's reserved names;
* ``ehrfast_tokenizer.json``, ``ehrfast_vocab.json``, ``quantiles.parquet`` — ehrfast's own
  tokenizer files, renamed where HF reserves the name;
* ``prs_encoder.safetensors`` — models that read PRS: the encoder that turns a trait vector into
  the soft tokens (not part of GPT-2; ``README.md`` in the export gives the three lines that
  apply it), passed as ``encoder_hidden_states`` (cross) or prepended to ``inputs_embeds``
  (prefix);
* ``README.md`` — a model card saying all of this with code.

``load_checkpoint`` reads an export back into the same ehrfast model, PRS encoder included.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ehrfast.errors import InvalidInputError
from ehrfast.io import atomic_directory, check_outputs
from ehrfast.model.checkpoint import CheckpointError, load_checkpoint
from ehrfast.model.gpt import GPT

HF_EXPORT_FORMAT = "ehrfast-hf-export/1"
PRS_ENCODER_FILE = "prs_encoder.safetensors"
# ehrfast's tokenizer files under names HF tooling does not reserve
RENAMED = {"tokenizer.json": "ehrfast_tokenizer.json", "vocab.json": "ehrfast_vocab.json", "quantiles.parquet": "quantiles.parquet"}
PAD, UNK, EOS = "[PAD]", "[UNK]", "TIMELINE_END"  # ehrfast's reserved ids 0, 1, 2
WHITESPACE_STAND_IN = "\u2581"


@dataclass(frozen=True)
class HFExportSummary:
    out_dir: Path
    vocab_size: int
    n_parameters: int
    modality: str
    with_tokenizer: bool
    with_prs_encoder: bool

    def describe(self) -> str:
        how = {"none": "", "cross": "; PRS soft tokens go in as encoder_hidden_states (see README.md)",
               "prefix": "; PRS soft tokens go first in inputs_embeds (see README.md)"}[self.modality]
        lines = [f"wrote {self.out_dir}: GPT2LMHeadModel, {self.n_parameters:,} parameters, vocabulary {self.vocab_size}{how}",
                 f"  load: transformers.GPT2LMHeadModel.from_pretrained({str(self.out_dir)!r})"]
        if self.with_tokenizer:
            lines.append(f"  tokenizer: transformers.AutoTokenizer.from_pretrained({str(self.out_dir)!r})")
        else:
            lines.append("  no tokenizer: the checkpoint holds no vocab.json")
        return "\n".join(lines)


def gpt2_config(model: GPT, traits: list[str] | None = None) -> dict:
    """The ``config.json`` of the export: GPT-2's keys, plus ehrfast's config under ``ehrfast``."""
    cfg = model.config
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": 4 * cfg.n_embd,
        "activation_function": "gelu_new",
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": cfg.modality == "cross",
        "tie_word_embeddings": True,
        "use_cache": True,
        "pad_token_id": 0,
        "bos_token_id": 2,  # GPT-2 style: the end-of-text token doubles as bos; timelines start with their own tokens
        "eos_token_id": 2,
        "dtype": "float32",
        "ehrfast": {"format": HF_EXPORT_FORMAT, "config": cfg.to_dict(), "traits": traits,
                    "prs_encoder": PRS_ENCODER_FILE if model.prs_encoder is not None else None},
    }


def hf_tokenizer_files(tokens: list[str], block_size: int) -> dict[str, dict]:
    """``tokenizer.json`` (the ``tokenizers`` library's format), ``tokenizer_config.json`` and
    ``special_tokens_map.json`` for ehrfast's token strings ``tokens`` (id order)."""
    if tokens[:3] != [PAD, UNK, EOS]:
        raise InvalidInputError(f"vocabulary must start with {PAD}, {UNK}, {EOS}; got {tokens[:3]}")
    hf_tokens = ["".join(WHITESPACE_STAND_IN if ch.isspace() else ch for ch in t) for t in tokens]
    vocab: dict[str, int] = {}
    for i, t in enumerate(hf_tokens):
        if not t:
            raise InvalidInputError(f"token id {i} is the empty string; a tokenizer cannot name it")
        if t in vocab:
            raise InvalidInputError(f"token ids {vocab[t]} and {i} ({tokens[vocab[t]]!r}, {tokens[i]!r}) become the same string "
                                    f"{t!r} once whitespace is written as {WHITESPACE_STAND_IN!r}")
        vocab[t] = i
    special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
               for i, t in enumerate((PAD, UNK, EOS))]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
    }
    special_map = {"pad_token": PAD, "unk_token": UNK, "eos_token": EOS, "bos_token": EOS}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": block_size, "clean_up_tokenization_spaces": False,
              **special_map}
    return {"tokenizer.json": tokenizer, "tokenizer_config.json": config, "special_tokens_map.json": special_map}


def export_hf(model_dir: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False) -> HFExportSummary:
    """Writes checkpoint ``model_dir`` (``RUN/model`` of ``ehrfast train``) as a Hugging Face
    GPT-2 directory ``out_dir`` (see the module docstring for its files). The weights written
    are checked before the directory appears: the exported state dict, read back into a GPT-2
    layout model, gives the checkpoint's logits."""
    from safetensors.torch import save_file

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_outputs(directories=[out_dir], inputs=[model_dir], overwrite=overwrite)
    model = load_checkpoint(model_dir).float()
    meta = json.loads((model_dir / "config.json").read_text())
    if meta.get("model_type") == "gpt2":
        raise CheckpointError(f"{model_dir}: already a Hugging Face GPT-2 directory; nothing to export")
    traits = meta.get("traits")
    state = model.to_hf_state_dict()
    state.pop("lm_head.weight")  # tied to transformer.wte.weight; from_pretrained ties it again
    state = {k: v.detach().float().contiguous().cpu() for k, v in state.items()}
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{model_dir / 'model.safetensors'}: {name} holds non-finite values; not exported")
    _check_round_trip(model, state)
    vocab_path = model_dir / "vocab.json"
    tokens = json.loads(vocab_path.read_text())["tokens"] if vocab_path.exists() else None
    if tokens is not None and len(tokens) != model.config.vocab_size:
        raise CheckpointError(f"{vocab_path}: {len(tokens)} tokens, but the model's vocabulary has {model.config.vocab_size}")
    with atomic_directory(out_dir, overwrite=overwrite, kind="hf-export") as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / "config.json", gpt2_config(model, traits))
        _write_json(tmp / "generation_config.json", {"bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 0})
        if model.prs_encoder is not None:
            save_file({k: v.detach().float().contiguous().cpu() for k, v in model.prs_encoder.state_dict().items()},
                      str(tmp / PRS_ENCODER_FILE), metadata={"format": "pt"})
        if tokens is not None:
            for name, payload in hf_tokenizer_files(tokens, model.config.token_window).items():
                _write_json(tmp / name, payload)
        for name, renamed in RENAMED.items():
            if (model_dir / name).exists():
                shutil.copy(model_dir / name, tmp / renamed)
        (tmp / "README.md").write_text(_model_card(model, traits, tokens is not None))
    n_parameters = sum(v.numel() for v in state.values())
    return HFExportSummary(out_dir, model.config.vocab_size, n_parameters, model.config.modality, tokens is not None,
                           model.prs_encoder is not None)


def _check_round_trip(model: GPT, state: dict[str, torch.Tensor]) -> None:
    """The exported tensors, read back, give the model's logits: a wrong name or layout never
    reaches a user."""
    back = GPT.from_hf_state_dict({**state, "lm_head.weight": state["transformer.wte.weight"]}, model.config)
    if model.prs_encoder is not None:
        back.prs_encoder.load_state_dict(model.prs_encoder.state_dict())
    back.eval()
    generator = torch.Generator().manual_seed(0)
    t = min(8, model.config.token_window)
    idx = torch.randint(0, model.config.vocab_size, (2, t), generator=generator)
    soft = None
    if model.config.modality != "none":
        soft = torch.rand(2, model.config.n_soft_tokens, model.config.n_embd, generator=generator) * 2 - 1
    with torch.no_grad():
        expected, got = model.eval()(idx, soft_tokens=soft), back(idx, soft_tokens=soft)
    if not torch.allclose(got, expected, rtol=1e-5, atol=1e-5):
        raise CheckpointError("exported weights do not reproduce the checkpoint's logits (an ehrfast bug; please report it)")


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _model_card(model: GPT, traits: list[str] | None, with_tokenizer: bool) -> str:
    cfg = model.config
    lines = [
        "# ehrfast GPT-2 export",
        "",
        f"A generative EHR model exported by ehrfast ({HF_EXPORT_FORMAT}): {cfg.n_layer} layers, {cfg.n_head} heads, "
        f"{cfg.n_embd} wide, a window of {cfg.block_size} positions, a vocabulary of {cfg.vocab_size} tokens "
        f"(ids 0, 1, 2 are {PAD}, {UNK}, {EOS}).",
        "",
        "```python",
        "import transformers",
        "model = transformers.GPT2LMHeadModel.from_pretrained(OUT).eval()",
    ]
    if with_tokenizer:
        lines += ["tokenizer = transformers.AutoTokenizer.from_pretrained(OUT)",
                  "ids = tokenizer(\"MEDS_BIRTH SEX//F\", return_tensors=\"pt\").input_ids  # token strings, space separated"]
    lines.append("```")
    if cfg.modality != "none":
        lines += [
            "",
            f"The model reads polygenic risk scores as {cfg.n_soft_tokens} soft tokens of width {cfg.n_embd}. "
            + (f"`{PRS_ENCODER_FILE}` holds the encoder that makes them from a trait vector [B, {cfg.n_prs_traits}] float32 "
               f"(traits in this order: {', '.join(traits) if traits else 'see config.json'}; a row of NaN = no genotypes):"
               if model.prs_encoder is not None else "This checkpoint has no PRS encoder: pass soft tokens yourself."),
        ]
        if model.prs_encoder is not None:
            lines += [
                "",
                "```python",
                "import torch, torch.nn.functional as F, safetensors.torch",
                f"w = safetensors.torch.load_file(OUT + '/{PRS_ENCODER_FILE}')",
                "prs = torch.where(torch.isnan(prs).all(-1, keepdim=True), w['missing'].expand_as(prs), torch.nan_to_num(prs))",
                "z = F.linear(F.gelu(F.linear(prs, w['hidden.weight'], w['hidden.bias'])), w['out.weight'], w['out.bias'])",
                f"soft = (2 * torch.sigmoid(z) - 1).view(prs.shape[0], {cfg.n_soft_tokens}, {cfg.n_embd})",
                "```",
            ]
        if cfg.modality == "cross":
            lines += ["", "Cross-attention model: `model(input_ids=ids, encoder_hidden_states=soft).logits`."]
        else:
            lines += ["", "Prefix model: the soft tokens come first, at positions 0 … n_soft − 1; the logits of the tokens are",
                      "", "```python",
                      "x = torch.cat([soft, model.transformer.wte(ids)], dim=1)",
                      f"logits = model(inputs_embeds=x).logits[:, {cfg.n_soft_tokens}:]", "```"]
    lines += ["", "ehrfast reads this directory back with `ehrfast.model.load_checkpoint(OUT)` (PRS encoder included).", ""]
    return "\n".join(lines)


__all__ = ["HF_EXPORT_FORMAT", "HFExportSummary", "export_hf", "gpt2_config", "hf_tokenizer_files"]
