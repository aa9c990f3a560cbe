"""The validate stage's options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.stages import option


@dataclass
class ValidateOptions:
    """``ehrfast validate``: the argument of ``ehrfast.data.validate_meds_dataset``."""

    meds_dir: Path = option("MEDS dataset directory", role="input", positional=True)
    cast_timestamps: bool = option("read nanosecond or time-zone-aware 'time' columns as timestamp[us] (UTC)", False)
