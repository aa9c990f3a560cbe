"""The end-to-end pipeline behind ``ehrfast demo``: named stages, each writing into its own
folder of the run directory, skipped on rerun when its output is complete.

Stages: ``synth`` (cohort), ``validate`` (MEDS check), ``prs`` (the real scorer over the
cohort's genotypes and score files), ``tokenize`` (TokenizedDatasets per split), ``train_ehr`` /
``train_prs`` (EHR-only and EHR+PRS cross-attention models, 2,000 steps each by default),
``label`` (10-year incidence labels for the paper's zero-shot tasks: T2D, CAD, depression and
schizophrenia from demographics only, and T2D three years in with 0 / 6 / 12 / 36 months of
history shown), ``score_ehr`` / ``score_prs`` (zero-shot path probabilities and Monte-Carlo frequencies on the
held-out split, KV-cache engine), ``evaluate`` (paired-bootstrap report per task, with a
meta-analysis across the four diseases), ``transfer`` (a stroke head on the frozen backbone;
PRS-encoder embeddings for COPD) and ``report`` (``DIR/report.md`` / ``report.html``: every
number in plain language, with the ground-truth ceiling). On CPU
the models are small and briefly trained: the paper's T2D effect shows; the rarer diseases
need more held-out cases, the GPU engine and longer training.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DONE_MARKER = ".done.json"


@dataclass(frozen=True)
class Stage:
    name: str
    output: str  # folder under the run directory
    run: Callable[[Path, Path], dict]  # (run_dir, stage_dir) -> summary dict


def run_stage(stage: Stage, run_dir: Path, force: bool) -> tuple[dict, bool]:
    """Runs ``stage`` unless its output holds a completion marker (and not ``force``).
    Returns its summary and whether it ran."""
    out = run_dir / stage.output
    marker = out / DONE_MARKER
    if marker.exists() and not force:
        print(f"[{stage.name}] already done ({out}); skipping (--force reruns it)")
        return json.loads(marker.read_text()), False
    print(f"[{stage.name}] running ...", flush=True)
    t0 = time.perf_counter()
    summary = stage.run(run_dir, out)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    marker.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"[{stage.name}] done in {summary['seconds']:.1f} s", flush=True)
    return summary, True


def _synth_stage(n_subjects: int, seed: int) -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.cli import _print_cohort
        from ehrfast.data.synthetic import SyntheticConfig, generate_cohort

        summary = generate_cohort(out, SyntheticConfig(n_subjects=n_subjects, seed=seed), overwrite=True)
        _print_cohort(summary)
        return asdict(summary)

    return Stage("synth", "cohort", run)


def _validate_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.data.meds import validate_meds_dataset

        s = validate_meds_dataset(run_dir / "cohort")
        print(f"  MEDS valid: {s.n_subjects:,} subjects, {s.n_rows:,} rows, {s.n_codes} codes")
        out.mkdir(parents=True, exist_ok=True)
        return asdict(s)

    return Stage("validate", "validation", run)


def _prs_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.genomics.prs import compute_prs

        cohort = run_dir / "cohort"
        scores = sorted((cohort / "genomics" / "scores").glob("*.txt"))
        s = compute_prs(cohort / "genomics" / "genotypes", scores, out / "PRS.parquet", meds_dir=cohort, overwrite=True)
        print(f"  PRS: {len(s.traits)} traits x {s.n_samples:,} samples ({len(s.dropped_traits)} traits below the match threshold)")
        return asdict(s)

    return Stage("prs", "prs", run)


def _tokenize_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.tokenize import tokenize_dataset

        s = tokenize_dataset(run_dir / "cohort", out, overwrite=True)
        print(f"  tokens: vocabulary {s.vocab_size}; " + ", ".join(f"{k} {v['tokens']:,}" for k, v in s.splits.items()))
        return asdict(s)

    return Stage("tokenize", "tokens", run)


# The zero-shot tasks of the genomics paper, as Task keyword arguments (Task itself is built
# inside the stages: importing ehrfast.infer loads torch). "Demographics only": time zero is the
# record start and the context holds the demographic tokens alone. The history series (the
# paper's Table 3) puts time zero three years after the record start — the same subjects and
# labels for all four — and shows the last 0 / 6 / 12 / 36 months of EHR before it.
_SAMPLING = dict(horizon_years=10.0, max_new_tokens=48, n_samples=8)
_T2D = dict(target_all_of=("type 2 diabetes",), **_SAMPLING)
_AT_START = dict(index_offset_days=0.0, history_days=0.0)
_YEAR = 365.25
_AT_YEAR_3 = dict(truth=("T2D", 1095), index_offset_days=3 * _YEAR, **_T2D)
DEMO_TASKS = {
    "t2d_10y": dict(title="T2D 10y (demographics only)", truth=("T2D", 0), **_AT_START, **_T2D),
    "t2d_10y_0m": dict(title="T2D 10y at year 3, no history", history_days=0.0, **_AT_YEAR_3),
    "t2d_10y_6m": dict(title="T2D 10y at year 3, 6 months of history", history_days=0.5 * _YEAR, **_AT_YEAR_3),
    "t2d_10y_1y": dict(title="T2D 10y at year 3, 1 year of history", history_days=_YEAR, **_AT_YEAR_3),
    "t2d_10y_3y": dict(title="T2D 10y at year 3, 3 years of history", history_days=3 * _YEAR, **_AT_YEAR_3),
    "cad_10y": dict(title="CAD 10y (demographics only)", truth=("CAD", 0), target_regex=("coronary artery", "myocardial infarction"),
                    **_AT_START, **_SAMPLING),
    "depression_10y": dict(title="Depression 10y (demographics only)", truth=("DEPRESSION", 0), target_regex=("major depressive disorder",),
                           **_AT_START, **_SAMPLING),
    "schizophrenia_10y": dict(title="Schizophrenia 10y (demographics only)", truth=("SCHIZOPHRENIA", 0), target_regex=("schizophrenia",),
                              **_AT_START, **_SAMPLING),
}
# title: the report's name; truth: (disease, index offset in days) of the ground-truth risk
# that gives the report's ceiling line — nothing else reads the ground truth.
HEADLINE_TASK = "t2d_10y"
T2D_PRS_TRAIT = "SYN_T2D"  # the cohort's T2D score file: probability differences are correlated with it
META_TASKS = ("t2d_10y", "cad_10y", "depression_10y", "schizophrenia_10y")  # one per disease, no history


def demo_task(name: str):
    """The ehrfast.infer.Task of a demo task."""
    from ehrfast.infer.task import Task

    spec = {k: v for k, v in DEMO_TASKS[name].items() if k not in ("title", "truth")}
    return Task(name=name, **spec)


def _label_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from ehrfast.infer.labels import make_labels

        out.mkdir(parents=True, exist_ok=True)
        counts = {}
        for name in DEMO_TASKS:
            counts[name] = make_labels(run_dir / "cohort", demo_task(name), out / f"{name}.parquet", splits=("held_out",), overwrite=True)
            print(f"  {name} (held_out): " + ", ".join(f"{k} {v}" for k, v in counts[name].items()))
        return counts

    return Stage("label", "labels", run)


def _train_stage(name: str, modality: str, steps: int, seed: int) -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from ehrfast.train import TrainConfig, train

        cfg = TrainConfig(preset="demo", modality=modality, steps=steps, batch_size=8, seq_len=192, lr=2e-3, warmup_steps=20,
                          eval_every=max(1, steps // 3), eval_batches=4, seed=seed)
        hist = train(run_dir / "tokens", out, cfg, prs_path=run_dir / "prs" / "PRS.parquet" if modality != "none" else None,
                     overwrite=True)
        print("  validation loss: " + ", ".join(f"{v:.3f}" for _, v in hist["val_loss"]))
        return {"val_loss": hist["val_loss"], "tokens_per_second": hist.get("tokens_per_second")}

    return Stage(name, f"models/{name.split('_')[1]}", run)


def _score_stage(name: str, model: str, seed: int) -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from ehrfast.infer.score import score_cohort

        out.mkdir(parents=True, exist_ok=True)
        summaries = {}
        for task_name in DEMO_TASKS:
            summaries[task_name] = score_cohort(
                run_dir / "models" / model / "model", run_dir / "tokens" / "held_out", run_dir / "labels" / f"{task_name}.parquet",
                demo_task(task_name), out / f"{task_name}.parquet", meds_dir=run_dir / "cohort",
                prs_path=run_dir / "prs" / "PRS.parquet" if model == "prs" else None, seed=seed, model_name=model,
                overwrite=True)
        return summaries

    return Stage(name, f"predictions/{model}", run)


def _evaluable(labels_path: Path, minimum: int = 1) -> bool:
    """At least ``minimum`` positives and negatives: a tiny cohort may have none of a rare disease."""
    import pyarrow.parquet as pq

    y = pq.read_table(labels_path, columns=["boolean_value"]).column("boolean_value").to_numpy(zero_copy_only=False)
    return int(y.sum()) >= minimum and int((~y.astype(bool)).sum()) >= minimum


def _evaluate_stage(seed: int) -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from ehrfast.evaluate import evaluate

        pred = run_dir / "predictions"
        names = [n for n in DEMO_TASKS if _evaluable(run_dir / "labels" / f"{n}.parquet")]
        skipped = [n for n in DEMO_TASKS if n not in names]
        if skipped:
            print(f"  skipped (no positives or no negatives in held_out): {', '.join(skipped)}")
        if not names:
            raise ValueError("the held-out split is too small to evaluate any task (no positives); run with more --subjects")
        titles = [DEMO_TASKS[n]["title"] for n in names]
        res = evaluate([(pred / "ehr" / f"{n}.parquet", pred / "prs" / f"{n}.parquet") for n in names], out, names=titles,
                       model_names=("EHR", "EHR+PRS"), seed=seed, meta_tasks=[DEMO_TASKS[n]["title"] for n in META_TASKS if n in names],
                       other_score_columns=("mc_frequency",), prs_path=run_dir / "prs" / "PRS.parquet", traits=[T2D_PRS_TRAIT],
                       overwrite=True, progress=False)
        per_task = {}
        for n, title in zip(names, titles):
            t = res["tasks"][title]
            d = t["bootstrap"]["deltas"]["auroc"]
            mc = t["other_scores"]["mc_frequency"]["metrics_b"]
            per_task[n] = {"auroc_ehr": d["value_a"], "auroc_prs": d["value_b"], "delta": d["mean"], "p_value": d["p_value"],
                           "prs_model_path_auroc": t["metrics_b"]["auroc"], "prs_model_path_points": t["metrics_b"]["operating_points"],
                           "prs_model_mc_auroc": mc["auroc"], "prs_model_mc_points": mc["operating_points"]}
            print(f"  {title:<40} AUROC EHR {d['value_a']:.3f}  EHR+PRS {d['value_b']:.3f}  Δ {d['mean']:+.3f} (p {d['p_value']:.3g})")
        print(f"  report: {out}/report.html")
        summary = {"tasks": per_task, "skipped": skipped}
        if HEADLINE_TASK in per_task:
            summary.update(per_task[HEADLINE_TASK])
        if "meta_analysis" in res:
            summary["meta_analysis_random"] = res["meta_analysis"]["random"]
        return summary

    return Stage("evaluate", "evaluation", run)


TRANSFER_TASKS = {
    "stroke_10y": dict(target_regex=("cerebral infarction",), **_SAMPLING),
    "copd_10y": dict(target_regex=("chronic obstructive pulmonary",), **_SAMPLING),
}


def _transfer_stage(seed: int) -> Stage:
    """(a) a classification head (dropout + linear) on the frozen EHR model's last hidden state
    for stroke, against the same model's zero-shot path probability; (b) the PRS model's
    encoder embeddings into a one-hidden-layer MLP for COPD, against the raw PRS and against
    demographics through the same MLP. Its own report under transfer/report/."""

    def run(run_dir: Path, out: Path) -> dict:
        import numpy as np
        import pyarrow.parquet as pq

        from ehrfast.evaluate import evaluate
        from ehrfast.infer.labels import make_labels
        from ehrfast.infer.score import score_cohort
        from ehrfast.infer.task import Task
        from ehrfast.tokenize.dataset import TokenizedDataset
        from ehrfast.train.checkpoint import load_checkpoint
        from ehrfast.train.loop import prs_rows_for
        from ehrfast.transfer import context_features, demographic_features, prs_embeddings, train_probe
        from ehrfast.transfer.predictions import write_predictions

        out.mkdir(parents=True, exist_ok=True)
        tasks = {name: Task(name=name, **spec) for name, spec in TRANSFER_TASKS.items()}
        data = {split: TokenizedDataset(run_dir / "tokens" / split) for split in ("train", "held_out")}
        labels = {}
        for name, task in tasks.items():
            for split in data:
                path = out / f"labels_{name}_{split}.parquet"
                make_labels(run_dir / "cohort", task, path, splits=(split,), overwrite=True)
                table = pq.read_table(path)  # keep subjects the tokenizer kept (its event filters may drop some)
                kept = np.isin(table.column("subject_id").to_numpy(), np.asarray(data[split].subject_ids))
                labels[name, split] = table.filter(kept)
                pq.write_table(labels[name, split], path)

        def rows(name, split):
            t = labels[name, split]
            return t.column("subject_id").to_numpy(), t.column("prediction_time").cast("int64").to_numpy(), \
                t.column("boolean_value").to_numpy(zero_copy_only=False).astype(bool)

        def both_classes(y) -> bool:
            return bool(y.any()) and not bool(y.all())

        summary: dict = {"skipped": []}
        comparisons = {}
        # (a) stroke: head on the frozen EHR backbone vs the backbone's zero-shot risk
        if both_classes(rows("stroke_10y", "train")[2]):
            ehr = load_checkpoint(run_dir / "models" / "ehr" / "model")
            feats = {split: context_features(ehr, data[split], *rows("stroke_10y", split)[:2]) for split in data}
            head = train_probe(feats["train"], rows("stroke_10y", "train")[2], hidden=None, dropout=0.1, seed=seed)
            write_predictions(out / "stroke_head.parquet", labels["stroke_10y", "held_out"], head.predict_proba(feats["held_out"]), "head",
                              overwrite=True)
            zero = score_cohort(run_dir / "models" / "ehr" / "model", run_dir / "tokens" / "held_out",
                                out / "labels_stroke_10y_held_out.parquet", tasks["stroke_10y"], out / "stroke_zero_shot.parquet",
                                meds_dir=run_dir / "cohort", seed=seed, model_name="zero-shot", overwrite=True, progress=False)
            n_held = labels["stroke_10y", "held_out"].num_rows
            summary["stroke_cost"] = {"head_forward_passes": n_held, "zero_shot_tokens_generated": zero["tokens_generated"]}
            print(f"  stroke: the head needs {n_held:,} forward passes; zero-shot sampling generated {zero['tokens_generated']:,} tokens")
            comparisons["Stroke 10y: frozen-backbone head (B) vs zero-shot (A)"] = ("stroke_zero_shot", "stroke_head")
        else:
            summary["skipped"].append("stroke (one class in train)")
        # (b) COPD: PRS-encoder embeddings vs raw PRS vs demographics, each through the same MLP
        y_train = rows("copd_10y", "train")[2]
        if not both_classes(y_train):
            summary["skipped"].append("COPD (one class in train)")
        prs_model = load_checkpoint(run_dir / "models" / "prs" / "model")
        inputs = {}
        for split, ds in data.items():
            sids, pts, _ = rows("copd_10y", split)
            raw = prs_rows_for(ds, run_dir / "prs" / "PRS.parquet")[0][[ds.row(int(s)) for s in sids]]
            inputs["embedding", split] = prs_embeddings(prs_model, raw)
            inputs["raw PRS", split] = raw
            inputs["demographics", split] = demographic_features(ds, sids, pts)
        fill = np.nanmean(inputs["raw PRS", "train"], axis=0)  # subjects without genotypes: the training mean
        for split in data:
            raw = inputs["raw PRS", split]
            inputs["raw PRS", split] = np.where(np.isnan(raw), fill, raw)
        for kind in ("embedding", "raw PRS", "demographics") if both_classes(y_train) else ():
            probe = train_probe(inputs[kind, "train"], y_train, hidden=32, dropout=0.1, seed=seed)
            write_predictions(out / f"copd_{kind.replace(' ', '_')}.parquet", labels["copd_10y", "held_out"],
                              probe.predict_proba(inputs[kind, "held_out"]), kind, overwrite=True)
        if both_classes(y_train):
            comparisons["COPD 10y: PRS embedding (B) vs raw PRS (A)"] = ("copd_raw_PRS", "copd_embedding")
            comparisons["COPD 10y: PRS embedding (B) vs demographics (A)"] = ("copd_demographics", "copd_embedding")
        usable = {k: v for k, v in comparisons.items() if _evaluable(out / f"{v[0]}.parquet")}
        if usable:
            res = evaluate([(out / f"{a}.parquet", out / f"{b}.parquet") for a, b in usable.values()], out / "report", names=list(usable),
                           model_names=("baseline", "transfer"), seed=seed, meta_tasks=[], overwrite=True, progress=False)
            for name in usable:
                d = res["tasks"][name]["bootstrap"]["deltas"]["auroc"]
                summary[name] = {"auroc_baseline": d["value_a"], "auroc_transfer": d["value_b"], "delta": d["mean"], "p_value": d["p_value"]}
                print(f"  {name:<55} AUROC {d['value_a']:.3f} -> {d['value_b']:.3f}  Δ {d['mean']:+.3f} (p {d['p_value']:.3g})")
        summary["skipped"] += [k for k in comparisons if k not in usable]
        if summary["skipped"]:
            print(f"  skipped (too few cases): {', '.join(summary['skipped'])}")
        return summary

    return Stage("transfer", "transfer", run)


def _report_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from ehrfast.report import write_demo_report

        numbers = write_demo_report(run_dir, out, DEMO_TASKS)
        print(f"  report: {run_dir}/report.html (and report.md)")
        return numbers

    return Stage("report", "report", run)


def run_demo(out_dir: str | Path, n_subjects: int = 5_000, seed: int = 0, force: bool = False,
             train_steps: int | None = None) -> dict[str, dict]:
    """Runs every available stage on a fresh synthetic cohort; returns each stage's summary."""
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = train_steps if train_steps is not None else 2000
    stages = [_synth_stage(n_subjects, seed), _validate_stage(), _prs_stage(), _tokenize_stage(),
              _train_stage("train_ehr", "none", steps, seed), _train_stage("train_prs", "cross", steps, seed), _label_stage(),
              _score_stage("score_ehr", "ehr", seed), _score_stage("score_prs", "prs", seed), _evaluate_stage(seed),
              _transfer_stage(seed), _report_stage()]
    results = {}
    upstream_ran = False  # a rerun stage invalidates everything after it
    for i, stage in enumerate(stages, start=1):
        print(f"== stage {i}/{len(stages)}: {stage.name}")
        results[stage.name], ran = run_stage(stage, run_dir, force or upstream_ran)
        upstream_ran |= ran
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"demo finished: outputs in {run_dir}/")
    return results
