"""Incidence labels in the MEDS label schema (the genomics paper's tasks).

Per subject: prediction time = first event (birth excluded) + ``task.index_offset_days``;
label True when a target code occurs in (prediction time, prediction time + horizon];
subjects with the target at or before the prediction time — or within
``task.prevalence_window_days`` after it, since codes recorded at the index visit describe the
past — are excluded, and so are subjects whose record ends before the horizon without the
target unless they died (then False).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ehrfast.cluster import connect, map_tasks
from ehrfast.data.meds import BIRTH_CODE, DEATH_CODE, code_descriptions, data_files
from ehrfast.data.reader import STATIC_TIME, read_shard
from ehrfast.errors import InvalidInputError
from ehrfast.predictions import label_table, write_labels
from ehrfast.task import Task
from ehrfast.units import US_PER_DAY

_COUNTS = ("positive", "negative", "excluded_prior_target", "excluded_short_follow_up")  # LabelSummary's counts


@dataclass
class LabelSummary:
    """What ``make_labels`` wrote: label rows by outcome and the subjects left out, by reason."""

    out_path: str
    task: str
    positive: int = 0
    negative: int = 0
    excluded_prior_target: int = 0
    excluded_short_follow_up: int = 0
    rows_per_split: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"positive": self.positive, "negative": self.negative, "excluded_prior_target": self.excluded_prior_target,
                "excluded_short_follow_up": self.excluded_short_follow_up}

    def describe(self) -> str:
        return f"labels for {self.task} -> {self.out_path}: " + ", ".join(f"{k} {v:,}" for k, v in self.counts().items())


def incidence_labels(meds_dir: str | os.PathLike, task: Task, out_path: str | os.PathLike, *,
                     splits: tuple[str, ...] | None = None, cast_timestamps: bool = False, overwrite: bool = False,
                     cluster=None) -> LabelSummary:
    """Writes one label row per subject of ``meds_dir`` (the given ``splits``, default all) that
    the task's rule keeps, in the MEDS label schema. ``cluster``: one Dask task per shard."""
    descriptions = code_descriptions(meds_dir)
    files = data_files(meds_dir, cast_timestamps=cast_timestamps)
    if splits is not None and (not splits or set(splits) - set(files)):
        raise InvalidInputError(f"{meds_dir}: no split(s) {sorted(set(splits) - set(files)) or list(splits)}; "
                                f"its splits are {sorted(files)}")
    chosen = [(split, path) for split, paths in files.items() if not splits or split in splits for path in paths]
    with connect(cluster) as c:
        shards = map_tasks(c, _shard_labels, [path for _, path in chosen], labels=[str(p) for _, p in chosen], name="label",
                           args=(task, descriptions))
    subject, pred, label, before_birth = [], [], [], []
    counts = dict.fromkeys(_COUNTS, 0)
    per_split = {split: 0 for split in files if not splits or split in splits}
    for (split, _), shard in zip(chosen, shards):
        subject += shard.subject
        pred += shard.prediction_time
        label += shard.label
        before_birth += shard.before_birth
        for k in counts:
            counts[k] += shard.counts[k]
        per_split[split] += len(shard.subject)
    if before_birth:
        raise InvalidInputError(f"task {task.name!r}: index_offset_days {task.index_offset_days:g} puts the prediction time of "
                                f"{len(before_birth):,} subject(s) before their birth (e.g. subject {before_birth[0]} of {meds_dir}); "
                                "a prediction time must not precede birth — use a later offset")
    if not subject:  # written (an empty split can be an answer), but never silently
        warnings.warn(f"task {task.name!r}: no label rows in {meds_dir} (splits {sorted(per_split)}: "
                      + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")", RuntimeWarning, stacklevel=2)
    write_labels(out_path, label_table(subject, pred, label), overwrite=overwrite)
    return LabelSummary(str(out_path), task.name, **counts, rows_per_split=per_split)


@dataclass
class _ShardLabels:
    subject: list[int]
    prediction_time: list[int]  # µs
    label: list[bool]
    counts: dict[str, int]
    before_birth: list[int]  # subjects whose prediction time would precede their birth


def _shard_labels(path, task: Task, descriptions: dict[str, str]) -> _ShardLabels:
    """One shard's label rows (a task with --cluster)."""
    out = _ShardLabels([], [], [], dict.fromkeys(_COUNTS, 0), [])
    counts = out.counts
    shard = read_shard(path)
    is_target = np.array([task.matches(c, descriptions.get(c, "")) for c in shard.code_dictionary] or [False])[shard.code_index]
    is_birth = np.array([c == BIRTH_CODE for c in shard.code_dictionary] or [False])[shard.code_index]
    is_death = np.array([c == DEATH_CODE for c in shard.code_dictionary] or [False])[shard.code_index]
    timed = shard.time != STATIC_TIME
    for k, sid in enumerate(shard.subject_ids.tolist()):
        a, b = shard.seg[k], shard.seg[k + 1]
        t = shard.time[a:b]
        events = timed[a:b] & ~is_birth[a:b]
        if not events.any():
            continue
        t0 = t[events][0]
        pt = int(t0) + int(task.index_offset_days * US_PER_DAY)
        births = t[is_birth[a:b] & timed[a:b]]
        if len(births) and pt < births[0]:
            out.before_birth.append(sid)
            continue
        end = pt + task.horizon_us
        targets = t[is_target[a:b] & timed[a:b]]
        if (targets <= pt + task.prevalence_window_days * US_PER_DAY).any():
            counts["excluded_prior_target"] += 1
            continue
        positive = bool(((targets > pt) & (targets <= end)).any())
        died = bool((is_death[a:b] & timed[a:b] & (t <= end)).any())
        if not positive and t[events][-1] < end and not died:
            counts["excluded_short_follow_up"] += 1
            continue
        out.subject.append(sid)
        out.prediction_time.append(pt)
        out.label.append(positive)
        counts["positive" if positive else "negative"] += 1
    return out
