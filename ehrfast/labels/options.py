"""The label stage's options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.stages import cluster_option, option, overwrite_option
from ehrfast.task import EventTask, Task


@dataclass
class LabelOptions:
    """``ehrfast label``: the arguments of ``ehrfast.labels.make_labels``."""

    meds_dir: Path = option("MEDS dataset directory", role="input", positional=True)
    task: Task | EventTask | Path = option("task file (YAML or JSON) or an ETHOS-ARES catalog name (hospital_mortality, icu_admission, ...)",
                                           role="input", flag="--task", parse=Path)
    out_path: Path = option("label parquet (MEDS label schema)", role="output_file", flag="--out")
    splits: tuple[str, ...] | None = option("only these splits (default: all)", None)
    drop_timeline_end: bool = option("event tasks: leave out anchors whose record ends before any event", False)
    cast_timestamps: bool = option("read nanosecond or time-zone-aware 'time' columns as timestamp[us] (UTC)", False)
    overwrite: bool = overwrite_option("the label file")
    cluster: str | None = cluster_option()
