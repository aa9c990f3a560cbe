"""``ehrfast label``: incidence labels in the MEDS label schema for users without ACES.

Per subject: prediction time = first event (birth excluded) + ``task.index_offset_days``;
label True when a target code occurs in (prediction time, prediction time + horizon];
subjects with the target at or before the prediction time — or within
``task.prevalence_window_days`` after it, since codes recorded at the index visit describe the
past — are excluded, and so are subjects whose record ends before the horizon without the
target unless they died (then False).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrfast.data.meds import BIRTH_CODE, DEATH_CODE, data_files
from ehrfast.infer.task import Task, code_descriptions
from ehrfast.io import atomic_output, check_outputs
from ehrfast.tokenize.reader import STATIC_TIME, read_shard
from ehrfast.tokenize.reference import US_PER_DAY


def make_labels(meds_dir: str | os.PathLike, task: Task, out_path: str | os.PathLike, splits: tuple[str, ...] | None = None,
                overwrite: bool = False) -> dict:
    check_outputs(files=[out_path], inputs=[meds_dir], overwrite=overwrite)
    descriptions = code_descriptions(meds_dir)
    files = data_files(meds_dir)
    subject, pred, label = [], [], []
    counts = {"positive": 0, "negative": 0, "excluded_prior_target": 0, "excluded_short_follow_up": 0}
    for split, paths in files.items():
        if splits and split not in splits:
            continue
        for path in paths:
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
                subject.append(sid)
                pred.append(pt)
                label.append(positive)
                counts["positive" if positive else "negative"] += 1
    table = pa.table({"subject_id": pa.array(subject, pa.int64()),
                      "prediction_time": pa.array(np.asarray(pred, np.int64), pa.int64()).cast(pa.timestamp("us")),
                      "boolean_value": pa.array(label, pa.bool_())})
    with atomic_output(out_path, overwrite=overwrite) as tmp:
        pq.write_table(table, tmp)
    return counts
