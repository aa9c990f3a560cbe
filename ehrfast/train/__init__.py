"""Training: the loop (single process or torchrun/DDP), batches, per-subject loss.

Public API (imported on first use: the package's options load without torch)::

    train(data_dir, out_dir, TrainConfig(...), *, prs_path=None, resume=False, overwrite=False) -> TrainSummary
"""

from typing import TYPE_CHECKING

from ehrfast._lazy import lazy_exports

_EXPORTS = {"TrainConfig": "config", "TrainOptions": "config", "TrainSummary": "loop", "per_subject_loss": "loop", "train": "loop"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "TrainConfig",
    "TrainOptions",
    "TrainSummary",
    "per_subject_loss",
    "train",
]

if TYPE_CHECKING:
    from ehrfast.train.config import TrainConfig, TrainOptions
    from ehrfast.train.loop import TrainSummary, per_subject_loss, train
