"""The demo's in-hospital step (ETHOS-ARES): on the synthetic hospital world's held-out
admissions, the catalog's mortality and ICU-admission tasks — one sampling run each, which also
give prolonged stay (from the mortality run) and the composite (from the ICU run) — scored by
both demo models, evaluated per prediction beside the four tabular models (fitted on the
training admissions) and the generator's exact risk at admission
(``ground_truth/hospital_anchors.parquet``) as the ceiling, in one methods table per outcome.

CPU budget: a seeded sample of ``ANCHORS`` admissions, ``SAMPLES`` futures each with the path
estimator (lower variance than Monte Carlo at few samples), at most ``MAX_NEW_TOKENS`` tokens,
and contexts of ``CONTEXT_TOKENS`` so that context and future stay within the positions the demo
models were trained on (their 192-token rows) and the KV cache runs. A future still running at
the cap met no event and is not valid; stays longer than that many tokens (a stay of 10 days is
about 700 in this world) are out of reach, so the prolonged-stay row shows what a short cap costs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrfast import registry
from ehrfast.baselines.options import BaselinesSettings, BaselinesStageOptions
from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.metrics import auroc
from ehrfast.evaluate.options import EvaluateOptions, EvaluateStageOptions
from ehrfast.infer.options import ScoreOptions, ScoreStageOptions
from ehrfast.labels.options import LabelOptions
from ehrfast.predictions import method_scores_table, write_predictions
from ehrfast.task import EventTask, catalog_task

# event set (catalog task) -> the outcomes its one sampling run gives
RUNS = {"hospital_mortality": ("hospital_mortality", "prolonged_stay"), "icu_admission": ("icu_admission", "composite")}
TITLES = {"hospital_mortality": "In-hospital mortality", "prolonged_stay": "Prolonged stay (>= 10 d)", "icu_admission": "ICU admission",
          "composite": "Composite (death, ICU or >= 10 d)"}
ANCHORS = 480
SAMPLES = 10
MAX_NEW_TOKENS = 128
CONTEXT_TOKENS = 64  # + MAX_NEW_TOKENS = the demo models' training length
MODELS = {"ehr": "EHR", "prs": "EHR+PRS"}


def demo_event_task(name: str) -> EventTask:
    return EventTask.from_dict({**catalog_task(name).to_dict(), "n_samples": SAMPLES, "max_new_tokens": MAX_NEW_TOKENS, "estimator": "path"})


def _sample_rows(table: pa.Table, n: int, seed: int) -> pa.Table:
    if table.num_rows <= n:
        return table
    rows = np.sort(np.random.default_rng(seed).choice(table.num_rows, size=n, replace=False))
    return table.take(pa.array(rows))


def outcome_predictions(pred_path: Path, labels: pa.Table, outcome: str, out: Path) -> Path:
    """A predictions file for one outcome of a run: its label column as ``boolean_value`` and its
    path estimate as the probability."""
    pred = pq.read_table(pred_path)
    probability = pred.column(f"p_path_{outcome}").to_numpy(zero_copy_only=False).astype(np.float64)
    if not np.isfinite(probability).all():
        raise InvalidInputError(f"{pred_path}: {outcome} has predictions without a valid path mass; raise MAX_NEW_TOKENS")
    table = pa.table({"subject_id": pred.column("subject_id"), "prediction_time": pred.column("prediction_time"),
                      "boolean_value": labels.column(f"label_{outcome}"), "predicted_boolean_value": pa.array(probability >= 0.5),
                      "predicted_boolean_probability": pa.array(probability.astype(np.float32)), "anchor_id": pred.column("anchor_id")})
    write_predictions(out, table, overwrite=True)
    return out


def score_with_both_models(run_dir: Path, out: Path, task: EventTask, name: str, seed: int, device: str = "cpu") -> None:
    """Both demo models' sampling run on ``out/labels_<name>.parquet`` -> ``out/run_<model>_<name>.parquet``."""
    for model in MODELS:
        s = registry.SCORE.run(ScoreStageOptions(
            run_dir / "models" / model / "model", run_dir / "tokens" / "held_out", out / f"labels_{name}.parquet", task,
            out / f"run_{model}_{name}.parquet", ScoreOptions(seed=seed, model_name=model, context_tokens=CONTEXT_TOKENS, device=device),
            prs_path=run_dir / "prs" / "PRS.parquet" if model == "prs" else None, overwrite=True, progress=False))
        print(f"  {s.describe()}")


def methods_summary(rows) -> dict:
    """A task's methods table (``evaluate.methods.MethodRow``) as plain numbers: each metric's
    [value, ci_low, ci_high] per method."""
    return {r.method: {k: [getattr(r, k).value, getattr(r, k).ci_low, getattr(r, k).ci_high]
                       for k in ("auroc", "auprc", "sensitivity", "specificity")} for r in rows}


def admission_risk(cohort: Path, labels: pa.Table, outcome: str) -> np.ndarray:
    """[n] float64: the world's exact risk of ``outcome`` at each label row's admission (NaN where
    the ground truth has none)."""
    truth = pq.read_table(cohort / "ground_truth" / "hospital_anchors.parquet", columns=["subject_id", "hadm_id", "anchor", f"p_{outcome}"])
    admission = np.asarray(truth.column("anchor").to_pylist()) == "HOSPITAL_ADMISSION"
    risk = dict(zip(zip(truth.column("subject_id").to_numpy()[admission].tolist(), truth.column("hadm_id").to_numpy()[admission].tolist()),
                    truth.column(f"p_{outcome}").to_numpy()[admission].tolist()))
    keys = zip(labels.column("subject_id").to_pylist(), labels.column("hadm_id").to_pylist())
    return np.array([risk.get(k, np.nan) for k in keys], np.float64)


def ceiling(cohort: Path, labels: pa.Table, outcome: str) -> float | None:
    """AUROC of the exact risk at admission against the real outcomes of the scored admissions."""
    p = admission_risk(cohort, labels, outcome)
    y = labels.column(f"label_{outcome}").to_numpy(zero_copy_only=False).astype(bool)
    ok = np.isfinite(p)
    if not ok.any() or y[ok].all() or not y[ok].any():
        return None
    return auroc(y[ok], p[ok])


def _outcome_labels(labels: pa.Table, outcome: str) -> pa.Table:
    """The label rows with ``boolean_value`` = the outcome's own label column."""
    return labels.set_column(labels.schema.get_field_index("boolean_value"), "boolean_value", labels.column(f"label_{outcome}"))


def baseline_methods(run_dir: Path, out: Path, task: EventTask, outcome: str, labels: pa.Table, seed: int) -> list[Path]:
    """Method-scores files for one outcome at admission: the four tabular models fitted on the
    training admissions (no early-warning score: admissions carry no triage of their own), and
    the world's exact risk as the ceiling. None when the training admissions hold one class only."""
    cohort = run_dir / "cohort"
    train_all = out / f"labels_{task.name}_train_held_out.parquet"
    if not train_all.exists():
        registry.LABEL.run(LabelOptions(cohort, task, train_all, splits=("train", "held_out"), overwrite=True))
    both = _outcome_labels(pq.read_table(train_all), outcome)
    pq.write_table(both, out / f"labels_{outcome}_train_held_out.parquet")
    files = []
    y = both.column("boolean_value").to_numpy(zero_copy_only=False)
    if 0 < int(y.sum()) < len(y):
        b = registry.BASELINES.run(BaselinesStageOptions(cohort, out / f"labels_{outcome}_train_held_out.parquet",
                                                         out / f"baselines_{outcome}.parquet",
                                                         BaselinesSettings(scores=False, tabular=True, seed=seed), overwrite=True, progress=False))
        print(f"  {b.describe()}")
        files.append(out / f"baselines_{outcome}.parquet")
    scored = _outcome_labels(labels, outcome)
    p = admission_risk(cohort, scored, outcome)
    known = np.isfinite(p)
    pq.write_table(method_scores_table(scored.filter(pa.array(known)), {"true risk (ceiling)": p[known]}), out / f"truth_{outcome}.parquet")
    return [*files, out / f"truth_{outcome}.parquet"]


def hospital_step(run_dir: Path, out: Path, seed: int, device: str = "cpu") -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cohort = run_dir / "cohort"
    summary: dict = {"anchors": ANCHORS, "samples": SAMPLES, "max_new_tokens": MAX_NEW_TOKENS, "outcomes": {}}
    pairs, names, methods = [], [], []
    for run, outcomes in RUNS.items():
        task = demo_event_task(run)
        registry.LABEL.run(LabelOptions(cohort, task, out / f"labels_{run}_all.parquet", splits=("held_out",), overwrite=True))
        labels = _sample_rows(pq.read_table(out / f"labels_{run}_all.parquet"), ANCHORS, seed)
        pq.write_table(labels, out / f"labels_{run}.parquet")
        if labels.num_rows == 0:
            print(f"  {run}: no held-out admission; skipped")
            continue
        score_with_both_models(run_dir, out, task, run, seed, device)
        for outcome in outcomes:
            positive = int(np.sum(labels.column(f"label_{outcome}").to_numpy(zero_copy_only=False)))
            summary["outcomes"][outcome] = {"title": TITLES[outcome], "run": run, "ceiling": ceiling(cohort, labels, outcome),
                                            "positive": positive, "n": labels.num_rows}
            if not 0 < positive < labels.num_rows:  # a tiny cohort: nothing to rank
                print(f"  {TITLES[outcome]}: skipped ({positive} of {labels.num_rows} admissions positive)")
                continue
            pairs.append(tuple(outcome_predictions(out / f"run_{m}_{run}.parquet", labels, outcome, out / f"pred_{m}_{outcome}.parquet")
                               for m in MODELS))
            names.append(TITLES[outcome])
            methods += [f"{TITLES[outcome]}={f}" for f in baseline_methods(run_dir, out, task, outcome, labels, seed)]
    if not pairs:
        return summary
    res = registry.EVALUATE.run(EvaluateStageOptions(tuple(pairs), out / "evaluation", EvaluateOptions(
        names=tuple(names), model_names=tuple(MODELS.values()), seed=seed, iterations=500, meta_tasks=(), calibration_bins="uniform"),
        methods=tuple(methods), overwrite=True, progress=False))
    for outcome, entry in summary["outcomes"].items():
        if TITLES[outcome] not in res.tasks:
            continue
        t = res.tasks[TITLES[outcome]]
        entry["methods"] = methods_summary(t.methods)
        entry.update({"auroc_ehr": t.metrics_a.auroc, "auroc_prs": t.metrics_b.auroc, "auprc_ehr": t.metrics_a.auprc,
                      "auprc_prs": t.metrics_b.auprc, "brier_ehr": t.metrics_a.brier, "brier_prs": t.metrics_b.brier,
                      "scored": t.n, "delta_auroc": t.bootstrap.deltas["auroc"].mean, "p_value": t.bootstrap.deltas["auroc"].p_value})
        ceil = entry["ceiling"]
        print(f"  {entry['title']:<36} AUROC EHR {t.metrics_a.auroc:.3f}  EHR+PRS {t.metrics_b.auroc:.3f}  AUPRC {t.metrics_a.auprc:.3f} / "
              f"{t.metrics_b.auprc:.3f}  ceiling {'n/a' if ceil is None else f'{ceil:.3f}'}  ({entry['positive']} of {entry['n']} positive)")
    print(f"  report: {out}/evaluation/report.html")
    return summary
