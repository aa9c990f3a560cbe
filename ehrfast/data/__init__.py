"""MEDS reading and validation, and the synthetic cohort generator."""

from ehrfast.data.meds import MedsValidationError, validate_meds_dataset

__all__ = ["MedsValidationError", "validate_meds_dataset"]
