"""MEDS datasets: reading shards into flat arrays, validation with errors that say where, and
the metadata files.

Public API::

    validate_meds_dataset(meds_dir) -> MedsSummary
    read_shard(path) -> ShardRows; data_files(meds_dir) -> {split: [shard paths]}
"""

from ehrfast.data.meds import MedsSummary, MedsValidationError, data_files, validate_meds_dataset
from ehrfast.data.reader import ShardRows, read_shard

__all__ = ["MedsSummary", "MedsValidationError", "ShardRows", "data_files", "read_shard", "validate_meds_dataset"]
