"""Training support: checkpoints (the training loop lands with the rest of the model issue)."""

from ehrfast.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]
