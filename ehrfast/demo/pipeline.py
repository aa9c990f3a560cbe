"""The end-to-end pipeline behind ``ehrfast demo``: the registry's stages, run on a fresh
synthetic cohort with the demo's options, each writing into its own folder of the run
directory and skipped on rerun when its output is complete.

Steps: ``synth`` (cohort), ``validate`` (MEDS check), ``prs`` (the real scorer over the
cohort's genotypes and score files), ``tokenize`` (TokenizedDatasets per split), ``train_ehr`` /
``train_prs`` (EHR-only and EHR+PRS cross-attention models, 2,000 steps each by default),
``label`` (10-year incidence labels for the paper's zero-shot tasks: T2D, CAD, depression and
schizophrenia from demographics only, and T2D three years in with 0 / 6 / 12 / 36 months of
history shown), ``score_ehr`` / ``score_prs`` (zero-shot path probabilities and Monte-Carlo
frequencies on the held-out split, KV-cache engine), ``evaluate`` (paired-bootstrap report per
task, with a meta-analysis across the four diseases), ``transfer`` (a stroke head on the frozen
backbone; PRS-encoder embeddings for COPD), ``hospital`` (the ETHOS-ARES in-hospital tasks at
admission — mortality, ICU admission, prolonged stay, composite — sampled with competing events
by both models; ``demo/hospital.py``) and ``report`` (``DIR/report.md`` / ``report.html``:
every number in plain language, with the ground-truth ceiling). On CPU the models are small and
briefly trained: the paper's T2D effect shows; the rarer diseases need more held-out cases, the
GPU engine and longer training.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ehrfast import registry
from ehrfast.data.options import ValidateOptions
from ehrfast.demo import ares as ares_demo
from ehrfast.demo.hospital import hospital_step
from ehrfast.demo.options import DemoOptions
from ehrfast.demo.report import write_demo_report
from ehrfast.demo.triage import triage_step
from ehrfast.errors import InvalidInputError
from ehrfast.evaluate.options import EvaluateOptions, EvaluateStageOptions
from ehrfast.genomics.options import PRSStageOptions
from ehrfast.infer.options import ScoreOptions, ScoreStageOptions
from ehrfast.labels.options import LabelOptions
from ehrfast.synth.config import SyntheticConfig, SynthOptions
from ehrfast.task import Task
from ehrfast.tokenize.options import TokenizeOptions
from ehrfast.train.config import TrainConfig, TrainOptions
from ehrfast.transfer.options import TransferOptions, TransferStageOptions
from ehrfast.units import US_PER_DAY, US_PER_YEAR

DONE_MARKER = ".done.json"

# The zero-shot tasks of the genomics paper. "Demographics only": time zero is the record start
# and the context holds the demographic tokens alone. The history series (the paper's Table 3)
# puts time zero three years after the record start — the same subjects and labels for all four
# — and shows the last 0 / 6 / 12 / 36 months of EHR before it.
_SAMPLING = dict(horizon_years=10.0, max_new_tokens=48, n_samples=8)
_T2D = dict(target_all_of=("type 2 diabetes",), **_SAMPLING)
_AT_START = dict(index_offset_days=0.0, history_days=0.0)
_BY_DESCRIPTION = dict(match_descriptions=True)  # the regexes name diseases, not codes
_YEAR = US_PER_YEAR / US_PER_DAY  # 365.25 days
_AT_YEAR_3 = dict(truth=("T2D", 1095), index_offset_days=3 * _YEAR, **_T2D)
DEMO_TASKS = {
    "t2d_10y": dict(title="T2D 10y (demographics only)", truth=("T2D", 0), **_AT_START, **_T2D),
    "t2d_10y_0m": dict(title="T2D 10y at year 3, no history", history_days=0.0, **_AT_YEAR_3),
    "t2d_10y_6m": dict(title="T2D 10y at year 3, 6 months of history", history_days=0.5 * _YEAR, **_AT_YEAR_3),
    "t2d_10y_1y": dict(title="T2D 10y at year 3, 1 year of history", history_days=_YEAR, **_AT_YEAR_3),
    "t2d_10y_3y": dict(title="T2D 10y at year 3, 3 years of history", history_days=3 * _YEAR, **_AT_YEAR_3),
    "cad_10y": dict(title="CAD 10y (demographics only)", truth=("CAD", 0), target_regex=("coronary artery", "myocardial infarction"),
                    **_BY_DESCRIPTION, **_AT_START, **_SAMPLING),
    "depression_10y": dict(title="Depression 10y (demographics only)", truth=("DEPRESSION", 0), target_regex=("major depressive disorder",),
                           **_BY_DESCRIPTION, **_AT_START, **_SAMPLING),
    "schizophrenia_10y": dict(title="Schizophrenia 10y (demographics only)", truth=("SCHIZOPHRENIA", 0), target_regex=("schizophrenia",),
                              **_BY_DESCRIPTION, **_AT_START, **_SAMPLING),
}
# title: the report's name; truth: (disease, index offset in days) of the ground-truth risk
# that gives the report's ceiling line — nothing else reads the ground truth.
HEADLINE_TASK = "t2d_10y"
T2D_PRS_TRAIT = "SYN_T2D"  # the cohort's T2D score file: probability differences are correlated with it
META_TASKS = ("t2d_10y", "cad_10y", "depression_10y", "schizophrenia_10y")  # one per disease, no history


def demo_task(name: str) -> Task:
    """The Task of a demo task."""
    spec = {k: v for k, v in DEMO_TASKS[name].items() if k not in ("title", "truth")}
    return Task(name=name, **spec)


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: a name, the folder of the run directory it writes, and what it runs
    (``run(run_dir, folder, options)`` -> the step's summary as plain data)."""

    name: str
    folder: str
    run: Callable[[Path, Path, DemoOptions], dict]


def _plain(summary) -> dict:
    return asdict(summary) if is_dataclass(summary) else summary


def _say(summary) -> None:
    for line in summary.describe().splitlines():
        print(f"  {line}")


def _synth(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    summary = registry.SYNTH.run(SynthOptions(out, SyntheticConfig(n_subjects=o.n_subjects, seed=o.seed), overwrite=True,
                                                 progress=o.progress))
    _say(summary)
    return _plain(summary)


def _validate(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    summary = registry.VALIDATE.run(ValidateOptions(run_dir / "cohort"))
    _say(summary)
    out.mkdir(parents=True, exist_ok=True)
    return _plain(summary)


def _prs(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    cohort = run_dir / "cohort"
    scores = tuple(sorted((cohort / "genomics" / "scores").glob("*.txt")))
    summary = registry.PRS.run(PRSStageOptions(cohort / "genomics" / "genotypes", scores, out / "PRS.parquet", meds_dir=cohort,
                                               overwrite=True, progress=o.progress))
    _say(summary)
    return _plain(summary)


def _tokenize(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    summary = registry.TOKENIZE.run(TokenizeOptions(run_dir / "cohort", out, overwrite=True, progress=o.progress))
    _say(summary)
    return _plain(summary)


def _train(modality: str) -> Callable:
    def run(run_dir: Path, out: Path, o: DemoOptions) -> dict:
        cfg = TrainConfig(preset="demo", modality=modality, steps=o.train_steps, batch_size=8, seq_len=192, lr=2e-3, warmup_steps=20,
                          eval_every=max(1, o.train_steps // 3), eval_batches=4, seed=o.seed, device=o.device)
        summary = registry.TRAIN.run(TrainOptions(run_dir / "tokens", out, cfg, prs_path=run_dir / "prs" / "PRS.parquet"
                                                  if modality != "none" else None, overwrite=True, progress=o.progress))
        _say(summary)
        return _plain(summary)

    return run


def _label(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in DEMO_TASKS:
        summary = registry.LABEL.run(LabelOptions(run_dir / "cohort", demo_task(name), out / f"{name}.parquet", splits=("held_out",),
                                                  overwrite=True))
        counts[name] = summary.counts()
        print(f"  {name} (held_out): " + ", ".join(f"{k} {v}" for k, v in counts[name].items()))
    return counts


def _score(model: str) -> Callable:
    def run(run_dir: Path, out: Path, o: DemoOptions) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        summaries = {}
        for name in DEMO_TASKS:
            summary = registry.SCORE.run(ScoreStageOptions(
                run_dir / "models" / model / "model", run_dir / "tokens" / "held_out", run_dir / "labels" / f"{name}.parquet",
                demo_task(name), out / f"{name}.parquet", ScoreOptions(seed=o.seed, model_name=model, device=o.device),
                meds_dir=run_dir / "cohort", prs_path=run_dir / "prs" / "PRS.parquet" if model == "prs" else None, overwrite=True,
                progress=o.progress))
            summaries[name] = _plain(summary)
        return summaries

    return run


def _evaluable(labels_path: Path, minimum: int = 1) -> bool:
    """At least ``minimum`` positives and negatives: a tiny cohort may have none of a rare disease."""
    y = pq.read_table(labels_path, columns=["boolean_value"]).column("boolean_value").to_numpy(zero_copy_only=False)
    return int(y.sum()) >= minimum and int((~y.astype(bool)).sum()) >= minimum


def _evaluate(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    pred = run_dir / "predictions"
    names = [n for n in DEMO_TASKS if _evaluable(run_dir / "labels" / f"{n}.parquet")]
    skipped = [n for n in DEMO_TASKS if n not in names]
    if skipped:
        print(f"  skipped (no positives or no negatives in held_out): {', '.join(skipped)}")
    if not names:
        raise InvalidInputError("the held-out split is too small to evaluate any task (no positives); run with more --subjects")
    titles = [DEMO_TASKS[n]["title"] for n in names]
    settings = EvaluateOptions(names=tuple(titles), model_names=("EHR", "EHR+PRS"), seed=o.seed, traits=(T2D_PRS_TRAIT,),
                               meta_tasks=tuple(DEMO_TASKS[n]["title"] for n in META_TASKS if n in names),
                               other_score_columns=("mc_frequency",))
    res = registry.EVALUATE.run(EvaluateStageOptions(tuple((pred / "ehr" / f"{n}.parquet", pred / "prs" / f"{n}.parquet") for n in names),
                                                     out, settings, prs_path=run_dir / "prs" / "PRS.parquet", overwrite=True,
                                                     progress=False))
    per_task = {}
    for n, title in zip(names, titles):
        t = res.tasks[title]
        d = t.bootstrap.deltas["auroc"]
        mc = t.other_scores["mc_frequency"].metrics_b
        per_task[n] = {"auroc_ehr": d.value_a, "auroc_prs": d.value_b, "delta": d.mean, "p_value": d.p_value,
                       "prs_model_path_auroc": t.metrics_b.auroc, "prs_model_path_points": t.metrics_b.operating_points,
                       "prs_model_mc_auroc": mc.auroc, "prs_model_mc_points": mc.operating_points}
        print(f"  {title:<40} AUROC EHR {d.value_a:.3f}  EHR+PRS {d.value_b:.3f}  Δ {d.mean:+.3f} (p {d.p_value:.3g})")
    print(f"  report: {out}/report.html")
    summary = {"tasks": per_task, "skipped": skipped}
    if HEADLINE_TASK in per_task:
        summary.update(per_task[HEADLINE_TASK])
    if res.meta_analysis is not None:
        summary["meta_analysis_random"] = asdict(res.meta_analysis.random)
    return summary


def _transfer(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    summary = registry.TRANSFER.run(TransferStageOptions(
        run_dir / "tokens", run_dir / "cohort", run_dir / "models" / "ehr" / "model", run_dir / "models" / "prs" / "model",
        run_dir / "prs" / "PRS.parquet", out, TransferOptions(seed=o.seed, device=o.device), overwrite=True,
        progress=False))
    _say(summary)
    return _plain(summary)


def _hospital(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    return hospital_step(run_dir, out, o.seed, o.device)


def _triage(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    return triage_step(run_dir, out, o.seed, o.device)


def _report(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    numbers = write_demo_report(run_dir, out, DEMO_TASKS)
    print(f"  report: {run_dir}/report.html (and report.md)")
    return numbers


STEPS = (
    DemoStep("synth", "cohort", _synth),
    DemoStep("validate", "validation", _validate),
    DemoStep("prs", "prs", _prs),
    DemoStep("tokenize", "tokens", _tokenize),
    DemoStep("train_ehr", "models/ehr", _train("none")),
    DemoStep("train_prs", "models/prs", _train("cross")),
    DemoStep("label", "labels", _label),
    DemoStep("score_ehr", "predictions/ehr", _score("ehr")),
    DemoStep("score_prs", "predictions/prs", _score("prs")),
    DemoStep("evaluate", "evaluation", _evaluate),
    DemoStep("transfer", "transfer", _transfer),
    DemoStep("hospital", "hospital", _hospital),
    DemoStep("triage", "triage", _triage),
    DemoStep("report", "report", _report),
)


def run_step(step: DemoStep, run_dir: Path, options: DemoOptions, force: bool) -> tuple[dict, bool]:
    """Runs ``step`` unless its folder holds a completion marker (and not ``force``). Returns its
    summary and whether it ran."""
    out = run_dir / step.folder
    marker = out / DONE_MARKER
    if marker.exists() and not force:
        print(f"[{step.name}] already done ({out}); skipping (--force reruns it)")
        return json.loads(marker.read_text()), False
    print(f"[{step.name}] running ...", flush=True)
    t0 = time.perf_counter()
    summary = step.run(run_dir, out, options)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    marker.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"[{step.name}] done in {summary['seconds']:.1f} s", flush=True)
    return summary, True


ARES_STEPS = (
    DemoStep("mimic", "mimic", ares_demo.mimic_step),
    DemoStep("synthetic_hospital", "synth", ares_demo.synthetic_step),
    DemoStep("report", "report", ares_demo.report_step),
)


def run_demo(out_dir: str | os.PathLike, options: DemoOptions | None = None) -> dict[str, dict]:
    """Runs every step on a fresh synthetic cohort into ``out_dir`` (with ``options.ares``: the
    ETHOS-ARES demo, ``demo/ares.py``); returns each step's summary (also written to
    ``out_dir/results.json``)."""
    options = options or DemoOptions()
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    upstream_ran = False  # a rerun step invalidates everything after it
    steps = ARES_STEPS if options.ares else STEPS
    for i, step in enumerate(steps, start=1):
        print(f"== stage {i}/{len(steps)}: {step.name}")
        results[step.name], ran = run_step(step, run_dir, options, options.force or upstream_ran)
        upstream_ran |= ran
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"demo finished: outputs in {run_dir}/")
    return results
