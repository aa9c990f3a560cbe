"""Anchored labels (ARES.md S3): one label row per anchor row of an event task — its outcome on
the real timeline, the first event after the anchor and when it came.

Rows are read in file order (MEDS: sorted by subject and time); with the task's
``death_before_discharge`` (on by default, as the reference tokenizer) a ``MEDS_DEATH`` row moves
before a discharge (``HOSPITAL_DISCHARGE//…`` or ``ICU_DISCHARGE//…``) at the same time, so a
death recorded beside its discharge is the first event. After an anchor row, the first row whose
code matches one of the task's events is the true first event, at elapsed time t(event) −
t(anchor); an event later than the time limit becomes ``none`` at the limit, and a record that
ends first ends in the task's timeline-end event (or ``none`` when the limit came first).

Columns: the MEDS label schema (``prediction_time`` = the anchor's time; ``boolean_value`` = the
task's ``label_outcome``), then ``anchor_id`` (the anchor row's ordinal over the dataset's
shards, splits in name order: unique even when two anchors share a time), ``anchor_code``,
``hadm_id`` (null when the data has none), ``true_event``, ``true_time_us`` and one
``label_<outcome>`` per outcome of the task.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa

from ehrfast.cluster import Cluster, connect, map_tasks
from ehrfast.data.meds import ShardFile, code_descriptions, data_files
from ehrfast.data.reader import STATIC_TIME, read_shard
from ehrfast.errors import InvalidInputError
from ehrfast.predictions import write_labels
from ehrfast.task import DEATH_REGEX, NO_EVENT, EventTask

# a death at the time of these rows comes before them (ARES.md S3)
DISCHARGES_AFTER_DEATH = "^(HOSPITAL|ICU)_DISCHARGE//"


@dataclass
class AnchoredLabelSummary:
    """What ``make_labels`` wrote for an event task: anchors kept and dropped (by rule), label
    counts, true first events, and rows per split."""

    out_path: str
    task: str
    anchors: int = 0
    positive: int = 0
    negative: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    first_events: dict[str, int] = field(default_factory=dict)
    rows_per_split: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        dropped = ", ".join(f"{k} {v:,}" for k, v in self.dropped.items() if v) or "none"
        events = ", ".join(f"{k} {v:,}" for k, v in self.first_events.items())
        return (f"labels for {self.task} -> {self.out_path}: {self.positive + self.negative:,} anchors labelled "
                f"(positive {self.positive:,}, negative {self.negative:,}); first events: {events}; anchors dropped: {dropped}")


@dataclass
class _Columns:
    subject: list = field(default_factory=list)
    time: list = field(default_factory=list)
    label: list = field(default_factory=list)
    anchor_id: list = field(default_factory=list)
    anchor_code: list = field(default_factory=list)
    hadm: list = field(default_factory=list)
    event: list = field(default_factory=list)
    elapsed: list = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)
    split: list = field(default_factory=list)

    def extend(self, other: _Columns) -> None:
        """Appends another shard's columns (shards joined in order)."""
        for f in fields(self):
            if f.name == "outcomes":
                for name, parts in other.outcomes.items():
                    self.outcomes.setdefault(name, []).extend(parts)
            else:
                getattr(self, f.name).extend(getattr(other, f.name))


def _matches(pattern: str | None, dictionary: list[str]) -> np.ndarray:
    if pattern is None:
        return np.zeros(len(dictionary) + 1, bool)
    rx = re.compile(pattern)
    return np.array([bool(rx.search(c)) for c in dictionary] + [False], bool)  # index -1 (none) maps to the last


def death_first_order(subject_row: np.ndarray, time: np.ndarray, is_death: np.ndarray, is_discharge: np.ndarray) -> np.ndarray:
    """The row order with each death moved before the first discharge of its (subject, time)
    group when one precedes it; every other row keeps its place. [n] int64 permutation."""
    n = len(time)
    idx = np.arange(n)
    if not n or not is_death.any():
        return idx
    new_group = np.r_[True, (subject_row[1:] != subject_row[:-1]) | (time[1:] != time[:-1])]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    first_dc = np.minimum.reduceat(np.where(is_discharge, idx, n), starts)[group]
    move = is_death & (first_dc < idx)
    key = np.where(move, first_dc, idx)
    return np.lexsort((idx, ~move, key))


def _shard_labels(task: EventTask, shard, hadm: np.ndarray | None, ordinal0: int, split: str, out: _Columns, dropped: dict[str, int]) -> None:
    dictionary = shard.code_dictionary
    names = list(task.events)
    event_of = np.r_[task.event_of_code(dictionary), -1]
    n = len(shard.time)
    code = shard.code_index
    subject_row = np.repeat(np.arange(len(shard.subject_ids)), np.diff(shard.seg))
    time = shard.time
    order = np.arange(n)
    if task.death_before_discharge:
        order = death_first_order(subject_row, time, _matches(DEATH_REGEX, dictionary)[code], _matches(DISCHARGES_AFTER_DEATH, dictionary)[code])
    code, time, subject_row = code[order], time[order], subject_row[order]
    hadm_row = None if hadm is None else hadm[order]
    ev = event_of[code]
    seg_end = shard.seg[1:][subject_row]  # one past the subject's last row

    a = task.anchor
    is_anchor = _matches(a.code_regex, dictionary)[code] & (time != STATIC_TIME)
    candidates = np.flatnonzero(is_anchor)
    keep = np.ones(len(candidates), bool)
    if a.hadm_id != "any":
        has = np.zeros(n, bool) if hadm_row is None else hadm_row >= 0
        ok = ~has[candidates] if a.hadm_id == "null" else has[candidates]
        dropped["hadm_id"] += int((keep & ~ok).sum())
        keep &= ok
    if a.not_preceded_by is not None:
        prev = candidates - 1
        first_of_subject = prev < shard.seg[:-1][subject_row[candidates]]
        hit = ~first_of_subject & _matches(a.not_preceded_by, dictionary)[code[np.maximum(prev, 0)]]
        dropped["preceded_by"] += int((keep & hit).sum())
        keep &= ~hit
    if a.first_since is not None:
        since_rows = np.flatnonzero(_matches(a.first_since, dictionary)[code])
        k = np.searchsorted(since_rows, candidates, side="left") - 1
        s = np.where(k >= 0, since_rows[np.maximum(k, 0)], -1)
        same_subject = (s >= 0) & (subject_row[np.maximum(s, 0)] == subject_row[candidates])
        between = np.cumsum(is_anchor)
        block = np.zeros(n, bool)
        for pattern in a.unless_between:
            block |= _matches(pattern, dictionary)[code]
        blocked = np.cumsum(block)
        s0 = np.maximum(s, 0)
        earlier_anchor = between[candidates - 1] - between[s0] > 0  # another anchor row in (s, i)
        in_between = blocked[candidates - 1] - blocked[s0] > 0
        ok = same_subject & ~earlier_anchor & ~in_between
        dropped["not_first"] += int((keep & ~ok).sum())
        keep &= ok
    rows = candidates[keep]

    # the first event row after each anchor, within its subject
    event_rows = np.flatnonzero(ev >= 0)
    k = np.searchsorted(event_rows, rows, side="right")
    nxt = np.where(k < len(event_rows), event_rows[np.minimum(k, len(event_rows) - 1)], n)
    found = nxt < seg_end[rows]
    te = task.timeline_end_event() or NO_EVENT
    event = np.where(found, np.array(names, dtype=object)[np.where(found, ev[np.minimum(nxt, n - 1)], 0)], te).astype(object)
    last = seg_end[rows] - 1
    elapsed = np.where(found, time[np.minimum(nxt, n - 1)], time[last]) - time[rows]
    late = elapsed > task.time_limit_us
    event[late] = NO_EVENT
    elapsed = np.where(late, task.time_limit_us, elapsed)

    out.subject.append(shard.subject_ids[subject_row[rows]])
    out.split.append(np.full(len(rows), split, dtype=object))
    out.time.append(time[rows])
    out.anchor_id.append(ordinal0 + order[rows])
    out.anchor_code.append(np.array(dictionary, dtype=object)[code[rows]] if len(dictionary) else np.zeros(0, object))
    out.hadm.append(np.full(len(rows), -1, np.int64) if hadm_row is None else hadm_row[rows])
    out.event.append(event)
    out.elapsed.append(elapsed.astype(np.int64))
    for name, outcome in task.outcomes.items():
        out.outcomes.setdefault(name, []).append(outcome.indicator(event, elapsed))


def _hadm_column(shard: ShardFile) -> np.ndarray | None:
    if "hadm_id" not in shard.schema().names:
        return None
    column = shard.read(["hadm_id"]).column("hadm_id").cast(pa.int64())
    return column.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _shard_codes(path: ShardFile) -> list[str]:
    return path.read(["code"]).column("code").cast(pa.string()).unique().to_pylist()


@dataclass(frozen=True)
class _AnchorShard:
    path: ShardFile
    ordinal0: int  # anchor_id of the shard's first row
    split: str


def _anchored_shard(item: _AnchorShard, task: EventTask) -> tuple[_Columns, dict[str, int]]:
    """One shard's anchored label columns and drop counts (a task with --cluster)."""
    out = _Columns()
    dropped = {"hadm_id": 0, "preceded_by": 0, "not_first": 0}
    _shard_labels(task, read_shard(item.path), _hadm_column(item.path), item.ordinal0, item.split, out, dropped)
    return out, dropped


def anchored_labels(meds_dir: str | os.PathLike, task: EventTask, out_path: str | os.PathLike, *, splits: tuple[str, ...] | None = None,
                    drop_timeline_end: bool = False, cast_timestamps: bool = False, overwrite: bool = False,
                    cluster=None) -> AnchoredLabelSummary:
    """Writes one label row per kept anchor of ``task`` in ``meds_dir`` (see the module
    docstring); ``drop_timeline_end`` leaves out anchors whose record ends before any event.
    ``cluster``: one Dask task per shard."""
    with connect(cluster) as c:
        return _anchored_labels(meds_dir, task, out_path, splits, drop_timeline_end, cast_timestamps, overwrite, c)


def _anchored_labels(meds_dir, task: EventTask, out_path, splits, drop_timeline_end: bool, cast_timestamps: bool, overwrite: bool,
                     c: Cluster | None) -> AnchoredLabelSummary:
    files = data_files(meds_dir, cast_timestamps=cast_timestamps)
    if splits is not None and (not splits or set(splits) - set(files)):
        raise InvalidInputError(f"{meds_dir}: no split(s) {sorted(set(splits) - set(files)) or list(splits)}; "
                                f"its splits are {sorted(files)}")
    codes = sorted(code_descriptions(meds_dir)) or []
    all_codes = set(codes)
    ordered = [(split, path) for split in sorted(files) for path in files[split]]
    # codes.parquet may list fewer codes than the data holds
    for codes_of_shard in map_tasks(c, _shard_codes, [p for _, p in ordered], labels=[str(p) for _, p in ordered], name="label-codes"):
        all_codes.update(codes_of_shard)
    all_codes.discard(None)
    te = task.timeline_end_event()
    task.check_events_match(sorted(all_codes), str(meds_dir), allow_unmatched=[te] if te else [])
    if not any(re.search(task.anchor.code_regex, c) for c in all_codes):
        raise InvalidInputError(f"task {task.name!r}: anchor.code_regex {task.anchor.code_regex!r} matches no code of {meds_dir}")

    dropped = {"hadm_id": 0, "preceded_by": 0, "not_first": 0, "timeline_end": 0}
    items, ordinal = [], 0
    for split, path in ordered:
        if splits is None or split in splits:
            items.append(_AnchorShard(path, ordinal, split))
        ordinal += path.num_rows
    out = _Columns()
    for part, part_dropped in map_tasks(c, _anchored_shard, items, labels=[str(i.path) for i in items], name="label", args=(task,)):
        out.extend(part)
        for k, v in part_dropped.items():
            dropped[k] += v

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    event = cat(out.event, object)
    keep = np.ones(len(event), bool)
    if drop_timeline_end and te is not None:
        keep = event != te
        dropped["timeline_end"] = int((~keep).sum())
    split_of_row = cat(out.split, object)[keep]
    per_split = {split: int((split_of_row == split).sum()) for split in sorted(files) if splits is None or split in splits}
    outcomes = {name: cat(parts, bool)[keep] for name, parts in out.outcomes.items()} if out.outcomes else {n: np.zeros(0, bool) for n in task.outcomes}
    label = outcomes[task.label_outcome]
    hadm = cat(out.hadm, np.int64)[keep]
    columns = {
        "subject_id": pa.array(cat(out.subject, np.int64)[keep], pa.int64()),
        "prediction_time": pa.array(cat(out.time, np.int64)[keep], pa.int64()).cast(pa.timestamp("us")),
        "boolean_value": pa.array(label, pa.bool_()),
        "anchor_id": pa.array(cat(out.anchor_id, np.int64)[keep], pa.int64()),
        "anchor_code": pa.array(cat(out.anchor_code, object)[keep].tolist(), pa.string()),
        "hadm_id": pa.array(hadm, pa.int64(), mask=hadm < 0),
        "true_event": pa.array(event[keep].tolist(), pa.string()),
        "true_time_us": pa.array(cat(out.elapsed, np.int64)[keep], pa.int64()),
        **{f"label_{name}": pa.array(v, pa.bool_()) for name, v in outcomes.items()},
    }
    table = pa.table(columns)
    write_labels(out_path, table, overwrite=overwrite)
    names, counts = np.unique(event[keep].astype(str), return_counts=True)
    return AnchoredLabelSummary(str(out_path), task.name, anchors=int(len(label)), positive=int(label.sum()), negative=int((~label).sum()),
                                dropped=dropped, first_events=dict(zip(names.tolist(), counts.tolist())), rows_per_split=per_split)
