"""The demo's triage comparison (ETHOS-ARES Tables S3–S5 on the synthetic hospital world): for
the three ED tasks — hospitalization within 72 h and critical outcome within 12 h, predicted at
triage, and ED re-presentation within 72 h, predicted at an ED departure home — both demo models'
zero-shot risk (competing-event sampling) beside the six early-warning scores (not for
re-presentation: they are "not applicable once the patient has left the ED"), the four tabular
models fitted on the training split, and the world's exact risk at the anchor as the ceiling;
one methods table per task with 95 % bootstrap intervals, and a forest plot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ehrfast import registry
from ehrfast.baselines.options import BaselinesSettings, BaselinesStageOptions
from ehrfast.demo.hospital import ANCHORS, MODELS, _sample_rows, demo_event_task, methods_summary, outcome_predictions, score_with_both_models
from ehrfast.evaluate.options import EvaluateOptions, EvaluateStageOptions
from ehrfast.labels.options import LabelOptions
from ehrfast.predictions import method_scores_table

# task -> (title, the anchor code in the world's ground truth, whether the early-warning scores apply)
TASKS = {
    "ed_hospitalization": ("ED hospitalization (72 h)", "ED_REGISTRATION", True),
    "ed_critical_outcome": ("ED critical outcome (12 h)", "ED_REGISTRATION", True),
    "ed_representation": ("ED re-presentation (72 h)", "ED_OUT", False),
}
TRUTH = "true risk (ceiling)"


def true_risk_file(cohort: Path, labels: pa.Table, task: str, anchor: str, out: Path) -> Path:
    """A method-scores file with the world's exact probability at each label row's anchor."""
    truth = pq.read_table(cohort / "ground_truth" / "hospital_anchors.parquet", columns=["subject_id", "anchor", "time", f"p_{task}"])
    keep = pc.equal(truth.column("anchor"), anchor)
    truth = truth.filter(keep)
    risk = dict(zip(zip(truth.column("subject_id").to_pylist(), pc.cast(truth.column("time"), pa.int64()).to_pylist()),
                    truth.column(f"p_{task}").to_pylist()))
    keys = zip(labels.column("subject_id").to_pylist(), pc.cast(labels.column("prediction_time"), pa.int64()).to_pylist())
    p = np.array([np.nan if (v := risk.get(k)) is None else v for k in keys], np.float64)
    known = np.isfinite(p)
    pq.write_table(method_scores_table(labels.filter(pa.array(known)), {TRUTH: p[known]}), out)
    return out


def positive_all(labels: pa.Table) -> int:
    return int(pc.sum(labels.column("boolean_value")).as_py() or 0)


def triage_step(run_dir: Path, out: Path, seed: int, device: str = "cpu") -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cohort = run_dir / "cohort"
    summary: dict = {"anchors": ANCHORS, "tasks": {}}
    pairs, names, methods = [], [], []
    for task, (title, anchor, scores_apply) in TASKS.items():
        event_task = demo_event_task(task)
        registry.LABEL.run(LabelOptions(cohort, event_task, out / f"labels_{task}_all.parquet", splits=("train", "held_out"), overwrite=True))
        everything = pq.read_table(out / f"labels_{task}_all.parquet")
        registry.LABEL.run(LabelOptions(cohort, event_task, out / f"labels_{task}_held_out.parquet", splits=("held_out",), overwrite=True))
        held = pq.read_table(out / f"labels_{task}_held_out.parquet")
        labels = _sample_rows(held, ANCHORS, seed)
        pq.write_table(labels, out / f"labels_{task}.parquet")
        positive = positive_all(labels)
        summary["tasks"][task] = {"title": title, "n": labels.num_rows, "positive": positive, "train_anchors": everything.num_rows - held.num_rows}
        if not 0 < positive < labels.num_rows:
            print(f"  {title}: skipped ({positive} of {labels.num_rows} anchors positive)")
            continue
        score_with_both_models(run_dir, out, event_task, task, seed, device)
        train_positive = positive_all(everything) - positive_all(held)
        tabular = 0 < train_positive < summary["tasks"][task]["train_anchors"]  # a tiny cohort may have one class only
        if not tabular:
            print(f"  {title}: tabular models skipped ({train_positive} of {summary['tasks'][task]['train_anchors']} training anchors positive)")
        pairs.append(tuple(outcome_predictions(out / f"run_{m}_{task}.parquet", labels, task, out / f"pred_{m}_{task}.parquet")
                           for m in MODELS))
        names.append(title)
        if scores_apply or tabular:
            b = registry.BASELINES.run(BaselinesStageOptions(cohort, out / f"labels_{task}_all.parquet", out / f"baselines_{task}.parquet",
                                                             BaselinesSettings(scores=scores_apply, tabular=tabular, seed=seed),
                                                             overwrite=True, progress=False))
            print(f"  {b.describe()}")
            methods.append(f"{title}={out / f'baselines_{task}.parquet'}")
        methods.append(f"{title}={true_risk_file(cohort, labels, task, anchor, out / f'truth_{task}.parquet')}")
    if not pairs:
        return summary
    res = registry.EVALUATE.run(EvaluateStageOptions(tuple(pairs), out / "evaluation", EvaluateOptions(
        names=tuple(names), model_names=tuple(MODELS.values()), seed=seed, iterations=500, meta_tasks=(), calibration_bins="uniform"),
        methods=tuple(methods), overwrite=True, progress=False))
    for entry in summary["tasks"].values():
        if entry["title"] not in res.tasks:
            continue
        rows = res.tasks[entry["title"]].methods
        entry["methods"] = methods_summary(rows)
        print(f"  {entry['title']:<28} AUROC " + "  ".join(f"{r.method} {r.auroc.value:.3f}" for r in rows))
    print(f"  report: {out}/evaluation/report.html")
    return summary
