"""``ehrfast label``: labels in the MEDS label schema for users without ACES — incidence labels
for an incidence task, one row per anchor for an event task (the ETHOS-ARES catalog)."""

from __future__ import annotations

import os

from ehrfast.cluster import check_cluster
from ehrfast.errors import InvalidInputError
from ehrfast.io import check_outputs
from ehrfast.labels.anchored import AnchoredLabelSummary, anchored_labels
from ehrfast.labels.incidence import LabelSummary, incidence_labels
from ehrfast.task import EventTask, Task, load_task
from ehrfast.units import format_duration


def make_labels(meds_dir: str | os.PathLike, task: Task | EventTask | str | os.PathLike, out_path: str | os.PathLike, *,
                splits: tuple[str, ...] | None = None, drop_timeline_end: bool = False, cast_timestamps: bool = False,
                overwrite: bool = False, cluster=None) -> LabelSummary | AnchoredLabelSummary:
    """Writes the labels of ``task`` (a task, a task file or a catalog name) for ``meds_dir``
    (the given ``splits``, default all) to ``out_path``. ``drop_timeline_end`` (event tasks):
    leave out anchors whose record ends before any event. ``cast_timestamps``: read ns /
    time-zone-aware times as µs UTC. ``cluster``: one Dask task per shard (``ehrfast.cluster``),
    the same file as one process writes."""
    check_outputs(files=[out_path], inputs=[meds_dir, task if not isinstance(task, Task | EventTask) else None], overwrite=overwrite)
    check_cluster(cluster)
    task = load_task(task)
    if isinstance(task, EventTask):
        _check_labelable(task)
        return anchored_labels(meds_dir, task, out_path, splits=splits, drop_timeline_end=drop_timeline_end,
                               cast_timestamps=cast_timestamps, overwrite=overwrite, cluster=cluster)
    if drop_timeline_end:
        raise InvalidInputError(f"task {task.name!r}: drop_timeline_end applies to event tasks (with anchor and events), not incidence tasks")
    return incidence_labels(meds_dir, task, out_path, splits=splits, cast_timestamps=cast_timestamps, overwrite=overwrite, cluster=cluster)


def _check_labelable(task: EventTask) -> None:
    """An event task read from an ACES config labels the same cohort as ACES only when the config
    predicts at the trigger and selects no cohort; otherwise ACES must write the labels."""
    aces = task.extra.get("aces") if isinstance(task.extra, dict) else None
    if not aces:
        return
    why = []
    if aces["index_offset_us"]:
        why.append(f"it predicts {format_duration(aces['index_offset_us'])} after the trigger")
    if aces["cohort_criteria"]:
        why.append("its cohort criteria (" + "; ".join(aces["cohort_criteria"]) + ") are not applied by ehrfast")
    if why:
        raise InvalidInputError(f"{aces['source']}: this ACES config cannot be labelled by ehrfast: {', and '.join(why)}. Write its labels "
                                "with ACES (aces-cli ... config_path=<it>) and score them with 'ehrfast score ... --task <it>'")
