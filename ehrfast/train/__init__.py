"""Training: the loop, batches, checkpoints, per-subject loss."""

from ehrfast.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ehrfast.train.loop import TrainConfig, per_subject_loss, train

__all__ = ["CheckpointError", "TrainConfig", "load_checkpoint", "per_subject_loss", "save_checkpoint", "train"]
