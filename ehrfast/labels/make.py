"""``ehrfast label``: labels in the MEDS label schema for users without ACES — incidence labels
for an incidence task, one row per anchor for an event task (the ETHOS-ARES catalog)."""

from __future__ import annotations

import os

from ehrfast.errors import InvalidInputError
from ehrfast.io import check_outputs
from ehrfast.labels.anchored import AnchoredLabelSummary, anchored_labels
from ehrfast.labels.incidence import LabelSummary, incidence_labels
from ehrfast.task import EventTask, Task, load_task


def make_labels(meds_dir: str | os.PathLike, task: Task | EventTask | str | os.PathLike, out_path: str | os.PathLike, *,
                splits: tuple[str, ...] | None = None, drop_timeline_end: bool = False,
                overwrite: bool = False) -> LabelSummary | AnchoredLabelSummary:
    """Writes the labels of ``task`` (a task, a task file or a catalog name) for ``meds_dir``
    (the given ``splits``, default all) to ``out_path``. ``drop_timeline_end`` (event tasks):
    leave out anchors whose record ends before any event."""
    check_outputs(files=[out_path], inputs=[meds_dir, task if not isinstance(task, Task | EventTask) else None], overwrite=overwrite)
    task = load_task(task)
    if isinstance(task, EventTask):
        return anchored_labels(meds_dir, task, out_path, splits=splits, drop_timeline_end=drop_timeline_end, overwrite=overwrite)
    if drop_timeline_end:
        raise InvalidInputError(f"task {task.name!r}: drop_timeline_end applies to event tasks (with anchor and events), not incidence tasks")
    return incidence_labels(meds_dir, task, out_path, splits=splits, overwrite=overwrite)
