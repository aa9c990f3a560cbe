"""Checkpoints: ``model.safetensors`` + ``config.json`` (+ the tokenizer files), loadable with
no training code. A Hugging Face GPT-2 directory (``config.json`` with ``model_type: gpt2``)
loads too."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ehrfast.backends import torch_device
from ehrfast.errors import InvalidInputError, NonFiniteResultError
from ehrfast.io import atomic_directory
from ehrfast.model.config import GPTConfig
from ehrfast.model.gpt import GPT

CHECKPOINT_FORMAT = "ehrfast-gpt/1"


class CheckpointError(InvalidInputError):
    """A checkpoint directory that cannot be loaded; the message says which file and why."""


def save_checkpoint(model: GPT, directory: str | os.PathLike, *, tokenizer_dir: str | os.PathLike | None = None,
                    extra: dict | None = None, overwrite: bool = False) -> Path:
    """Writes the checkpoint atomically; ``extra`` (e.g. training step, metrics) goes into config.json."""
    from safetensors.torch import save_file

    with atomic_directory(directory, overwrite=overwrite, kind="checkpoint") as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to wte
        _check_finite_weights(state, Path(directory), writing=True)
        save_file(state, str(tmp / "model.safetensors"))
        meta = {"format": CHECKPOINT_FORMAT, "config": model.config.to_dict(), **(extra or {})}
        (tmp / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
        if tokenizer_dir is not None:
            for name in ("tokenizer.json", "vocab.json", "quantiles.parquet"):
                if (Path(tokenizer_dir) / name).exists():
                    shutil.copy(Path(tokenizer_dir) / name, tmp / name)
    return Path(directory)


def load_checkpoint(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> GPT:
    """The model of an ehrfast checkpoint or of a Hugging Face GPT-2 directory, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(directory)
    config_path, weights = d / "config.json", d / "model.safetensors"
    for path in (config_path, weights):
        if not path.exists():
            raise CheckpointError(f"{d}: missing {path.name}; not a checkpoint directory")
    try:
        meta = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from None
    device = torch_device(map_location)  # a bad --device is the user's option, not a corrupt checkpoint
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable or corrupt ({exc})") from None
    _check_finite_weights(state, weights)
    if meta.get("model_type") == "gpt2" and isinstance(meta.get("ehrfast"), dict):
        return _load_hf_export(d, meta, state)
    if meta.get("model_type") == "gpt2":
        from types import SimpleNamespace

        hf = SimpleNamespace(**{"activation_function": "gelu_new", "add_cross_attention": False, "layer_norm_epsilon": 1e-5, **meta})
        state = {k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}": v for k, v in state.items()}
        state.setdefault("lm_head.weight", state["transformer.wte.weight"])
        has_bias = "transformer.ln_f.bias" in state
        return GPT.from_hf_state_dict(state, GPTConfig.from_hf(hf, bias=has_bias)).eval()
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{config_path}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r} or a GPT-2 config")
    try:
        config = GPTConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_path}: bad model config ({exc})") from None
    model = GPT(config)
    state["lm_head.weight"] = state["transformer.wte.weight"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights}: does not fit {config_path} ({str(exc).splitlines()[0]})") from None
    return model.eval()


def _check_finite_weights(state: dict[str, torch.Tensor], path: Path, writing: bool = False) -> None:
    """Refuses a checkpoint with a NaN or infinite weight, naming the tensor: such a model
    scores every subject as NaN (or as zero after a softmax of NaN), not as an error. On
    ``writing``, nothing is saved (the model diverged)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            if writing:
                raise NonFiniteResultError(f"{path}: not saved — tensor {name} has {bad:,} non-finite value(s) (NaN or inf); "
                                           "training diverged (lower --lr, or keep --grad-clip)")
            raise CheckpointError(f"{path}: tensor {name} has {bad:,} non-finite value(s) (NaN or inf) of {tensor.numel():,}; "
                                  "a diverged or corrupted checkpoint — use an earlier one")


def _load_hf_export(d: Path, meta: dict, state: dict[str, torch.Tensor]) -> GPT:
    """A directory ``export_hf`` wrote: its ehrfast config (modality, PRS encoder) restores the
    model exactly, not just its GPT-2 part."""
    from safetensors.torch import load_file

    section = meta["ehrfast"]
    try:
        config = GPTConfig.from_dict(section["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{d / 'config.json'}: bad ehrfast section ({exc})") from None
    state = {k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}": v for k, v in state.items()}
    state.setdefault("lm_head.weight", state["transformer.wte.weight"])
    model = GPT.from_hf_state_dict(state, config)
    if model.prs_encoder is not None:
        path = d / str(section.get("prs_encoder") or "prs_encoder.safetensors")
        if not path.exists():
            raise CheckpointError(f"{d}: the config names a PRS encoder but {path.name} is missing")
        try:
            model.prs_encoder.load_state_dict(load_file(str(path)), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: does not fit {d / 'config.json'} ({str(exc).splitlines()[0]})") from None
    return model.eval()
