"""The GPT decoder that reads PRS soft tokens (cross-attention or prefix), its decoding
caches, its kernels, and checkpoints.

Public API (imported on first use)::

    GPT(GPTConfig.preset("demo", vocab_size=V, modality="cross", n_prs_traits=T))
    load_checkpoint(directory) / save_checkpoint(model, directory, ...)
    export_hf(model_dir, out_dir)  # a Hugging Face GPT-2 directory + tokenizer
"""

from typing import TYPE_CHECKING

from ehrfast._lazy import lazy_exports

_EXPORTS = {"CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint", "GPTConfig": "config",
            "GPT": "gpt", "PRSEncoder": "gpt", "export_hf": "hf_export", "HFExportSummary": "hf_export"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "CheckpointError",
    "GPT",
    "GPTConfig",
    "HFExportSummary",
    "PRSEncoder",
    "export_hf",
    "load_checkpoint",
    "save_checkpoint",
]

if TYPE_CHECKING:
    from ehrfast.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from ehrfast.model.config import GPTConfig
    from ehrfast.model.gpt import GPT, PRSEncoder
    from ehrfast.model.hf_export import HFExportSummary, export_hf
