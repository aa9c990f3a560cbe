"""``ehrfast demo --ares``: ETHOS-ARES end to end (ARES.md S15), on the real MIMIC-IV demo in MEDS and
on the synthetic hospital world, where the true risk is known.

MIMIC-IV demo (``mimic/``): tokenize, train a small model, anchored labels for in-hospital mortality,
ICU admission (whose runs also give prolonged stay and the composite) and 30-day readmission on
tuning + held_out (pooled: held_out alone has no in-hospital death), competing-event scoring,
evaluation per prediction (the path estimate against the Monte-Carlo frequency of the same
futures: two estimators, one model), next-token DRG readouts, and one full stay's trajectory with
its explanation and figure (``mimic/ares/index.html``). The early-warning baselines cannot run:
the demo has no triage vitals (ARES.md S15).

Synthetic hospital world (``synth/``): a small cohort, tokenized, a model trained, and the
trajectory of one held-out stay that the world records hour by hour, drawn beside the true risk
(``synth/ares/index.html``).

CPU budget (about 10 minutes on 2 cores): models of the ``demo`` preset trained ``ARES_TRAIN_STEPS``
steps on 384-token rows; ``SAMPLES`` futures per prediction (``TRAJECTORY_SAMPLES`` per trajectory position) of at most
``MAX_NEW_TOKENS`` tokens from contexts of ``CONTEXT_TOKENS`` (context + future within the window:
the KV cache runs); the trajectories at each distinct time of a stay of at most ``MAX_POSITIONS``
such positions. A future that reaches
the cap met no event and is not valid: the estimates are few-sample and the model small — the
point is the machinery, on real data, at the paper's semantics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ehrfast import registry
from ehrfast.demo.options import DemoOptions
from ehrfast.errors import InputNotFoundError, InvalidInputError
from ehrfast.evaluate.options import EvaluateOptions, EvaluateStageOptions
from ehrfast.evaluate.report import MIN_CASES
from ehrfast.infer.ares.options import AresStageOptions, NextTokenStageOptions, TrajectorySettings
from ehrfast.infer.options import ScoreOptions, ScoreStageOptions
from ehrfast.labels.options import LabelOptions
from ehrfast.predictions import write_predictions
from ehrfast.synth.config import SyntheticConfig, SynthOptions
from ehrfast.task import EventTask, catalog_task
from ehrfast.tokenize.options import TokenizeOptions
from ehrfast.train.config import TrainConfig, TrainOptions

MIMIC_DEMO = Path("data") / "mimic-iv-demo-meds"
ARES_TRAIN_STEPS = 400
SAMPLES = 10  # per prediction at admission
TRAJECTORY_SAMPLES = 30  # per trajectory position
MAX_NEW_TOKENS = 192
CONTEXT_TOKENS = 128
MAX_POSITIONS = 60
SYNTH_SUBJECTS = 2_000
# event set (catalog task) -> its outcomes evaluated
RUNS = {"hospital_mortality": ("hospital_mortality", "prolonged_stay"), "icu_admission": ("icu_admission", "composite"),
        "readmission_30d": ("readmission_30d",)}
SPLITS = ("tuning", "held_out")


def find_mimic_demo(given: Path | None) -> Path:
    """The MIMIC-IV demo in MEDS: ``given``, else ``../shared/data/mimic-iv-demo-meds`` from the
    working directory or from the project root."""
    if given is not None:
        if not (Path(given) / "data").is_dir():
            raise InputNotFoundError(f"{given}: not a MEDS dataset (no data/ folder)")
        return Path(given)
    roots = [Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in roots:
        candidate = root.parent / "shared" / MIMIC_DEMO
        if (candidate / "data").is_dir():
            return candidate
    raise InputNotFoundError("the MIMIC-IV demo in MEDS was not found at ../shared/data/mimic-iv-demo-meds; pass --mimic DIR")


def demo_event_task(name: str) -> EventTask:
    return EventTask.from_dict({**catalog_task(name).to_dict(), "n_samples": SAMPLES, "max_new_tokens": MAX_NEW_TOKENS, "estimator": "path"})


def _train(tokens: Path, out: Path, o: DemoOptions) -> dict:
    cfg = TrainConfig(preset="demo", modality="none", steps=o.ares_train_steps, batch_size=8, seq_len=384, lr=2e-3, warmup_steps=20,
                      eval_every=max(1, o.ares_train_steps // 2), eval_batches=2, seed=o.seed, device=o.device)
    s = registry.TRAIN.run(TrainOptions(tokens, out, cfg, overwrite=True, progress=o.progress))
    print(f"  {s.describe().splitlines()[0]}")
    return {"steps": o.ares_train_steps}


def _pooled_labels(meds: Path, task: EventTask, out: Path) -> dict[str, Path]:
    """Per split (tuning, held_out) the anchored labels of ``task``; splits without anchors left out."""
    paths = {}
    for split in SPLITS:
        path = out / f"labels_{task.name}_{split}.parquet"
        registry.LABEL.run(LabelOptions(meds, task, path, splits=(split,), overwrite=True))
        if pq.read_metadata(path).num_rows:
            paths[split] = path
    return paths


def outcome_predictions(runs: list[tuple[Path, Path]], outcome: str, column: str, out: Path) -> Path:
    """One predictions file for ``outcome``, pooled over the splits' (predictions, labels) pairs:
    its label as ``boolean_value``, ``column`` (p_path_… or p_mc_…) as the probability."""
    parts = []
    for pred_path, labels_path in runs:
        pred, labels = pq.read_table(pred_path), pq.read_table(labels_path)
        p = pred.column(f"{column}_{outcome}").to_numpy(zero_copy_only=False).astype(np.float64)
        p = np.where(np.isfinite(p), p, pred.column("predicted_boolean_probability").to_numpy(zero_copy_only=False))
        parts.append(pa.table({"subject_id": pred.column("subject_id"), "prediction_time": pred.column("prediction_time"),
                               "boolean_value": labels.column(f"label_{outcome}"), "predicted_boolean_value": pa.array(p >= 0.5),
                               "predicted_boolean_probability": pa.array(p.astype(np.float32)), "anchor_id": pred.column("anchor_id")}))
    write_predictions(out, pa.concat_tables(parts), overwrite=True)
    return out


def mimic_step(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    meds = find_mimic_demo(o.mimic)
    out.mkdir(parents=True, exist_ok=True)
    print(f"  MIMIC-IV demo: {meds}")
    s = registry.TOKENIZE.run(TokenizeOptions(meds, out / "tokens", overwrite=True, progress=False))
    print(f"  {s.describe().splitlines()[0]}")
    summary: dict = {"meds": str(meds), "train": _train(out / "tokens", out / "model", o), "outcomes": {}}
    model = out / "model" / "model"
    pairs, names = [], []
    for run, outcomes in RUNS.items():
        task = demo_event_task(run)
        labels = _pooled_labels(meds, task, out)
        scored = []
        for split, labels_path in labels.items():
            pred = out / f"run_{run}_{split}.parquet"
            s = registry.SCORE.run(ScoreStageOptions(model, out / "tokens" / split, labels_path, task, pred,
                                                     ScoreOptions(seed=o.seed, context_tokens=CONTEXT_TOKENS, device=o.device), overwrite=True,
                                                     progress=False))
            print(f"  {s.describe()}")
            scored.append((pred, labels_path))
        for outcome in outcomes:
            y = np.concatenate([pq.read_table(lp, columns=[f"label_{outcome}"]).column(0).to_numpy(zero_copy_only=False) for _, lp in scored])
            summary["outcomes"][outcome] = {"n": int(len(y)), "positive": int(y.sum())}
            if not 0 < y.sum() < len(y):
                print(f"  {outcome}: not evaluable ({int(y.sum())} of {len(y)} positive in tuning + held_out)")
                continue
            pairs.append((outcome_predictions(scored, outcome, "p_path", out / f"pred_path_{outcome}.parquet"),
                          outcome_predictions(scored, outcome, "p_mc", out / f"pred_mc_{outcome}.parquet")))
            names.append(outcome)
    if pairs:
        res = registry.EVALUATE.run(EvaluateStageOptions(tuple(pairs), out / "evaluation", EvaluateOptions(
            names=tuple(names), model_names=("path estimate", "Monte Carlo"), seed=o.seed, iterations=500, meta_tasks=(),
            calibration_bins="uniform", cluster_by_subject=True), demographics_from=meds, overwrite=True, progress=False))
        for name in names:
            t = res.tasks[name]
            summary["outcomes"][name].update({"auroc_path": t.metrics_a.auroc, "auroc_mc": t.metrics_b.auroc, "auprc_path": t.metrics_a.auprc})
            print(f"  {name:<20} AUROC path {t.metrics_a.auroc:.3f}  MC {t.metrics_b.auroc:.3f}  "
                  f"({summary['outcomes'][name]['positive']} of {summary['outcomes'][name]['n']} positive, tuning + held_out)")
    drg = registry.NEXT_TOKEN.run(NextTokenStageOptions(model, out / "tokens" / "held_out", "drg", out / "drg.parquet", device=o.device,
                                                        overwrite=True))
    print(f"  {drg.describe()}")
    summary["drg"] = {"reads": drg.reads, "top1": drg.top1, "top5": drg.top5}
    summary["ares"] = _trajectory(meds, out, model, out / "tokens", o, truth=None)
    return summary


def _choose_stay(labels_path: Path, tokens: Path, max_positions: int) -> str:
    """SUBJECT:ANCHOR of the stay to draw: among those with at most ``max_positions`` distinct
    times, the longest with an ICU admission, else the longest."""
    from ehrfast.infer.ares.trajectory import stays_from_labels
    from ehrfast.tokenize.dataset import TokenizedDataset

    ds = TokenizedDataset(tokens)
    stays, _ = stays_from_labels(ds, pq.read_table(labels_path), TrajectorySettings())
    best = None
    for st in stays:
        _, times = ds.timeline(ds.row(st.subject_id))
        n = len(np.unique(times[st.start:st.end]))
        if n > max_positions:
            continue
        key = (st.icu >= 0, n)
        if best is None or key > best[0]:
            best = (key, st)
    if best is None:
        raise InvalidInputError(f"{labels_path}: no stay in {tokens} has at most {max_positions} distinct times")
    return f"{best[1].subject_id}:{best[1].anchor_id}"


def _trajectory(meds: Path, out: Path, model: Path, tokens: Path, o: DemoOptions, truth: Path | None,
                split: str = "held_out", labels: Path | None = None) -> dict:
    if labels is None:
        labels = out / "labels_ares.parquet"
        registry.LABEL.run(LabelOptions(meds, "hospital_mortality", labels, splits=(split,), overwrite=True))
    stay = _choose_stay(labels, tokens / split, MAX_POSITIONS)
    settings = TrajectorySettings(positions="per_timestamp", n_samples=TRAJECTORY_SAMPLES, max_new_tokens=MAX_NEW_TOKENS, context_tokens=CONTEXT_TOKENS,
                                  seed=o.seed, common_random_numbers=True)
    s = registry.ARES.run(AresStageOptions(model, tokens / split, labels, out / "ares", settings, stays=(stay,), truth_path=truth,
                                           device=o.device, overwrite=True, progress=False))
    print(f"  {s.describe()}")
    return {"stay": stay, "positions": s.positions, "tokens_generated": s.tokens_generated, "seconds": s.seconds, "truth_mae": s.truth_mae,
            "page": str(out / "ares" / "index.html")}


def synthetic_step(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cohort = out / "cohort"
    registry.SYNTH.run(SynthOptions(cohort, SyntheticConfig(n_subjects=SYNTH_SUBJECTS, seed=o.seed), overwrite=True, progress=False))
    s = registry.TOKENIZE.run(TokenizeOptions(cohort, out / "tokens", overwrite=True, progress=False))
    print(f"  {s.describe().splitlines()[0]}")
    train = _train(out / "tokens", out / "model", o)
    truth = cohort / "ground_truth" / "stay_trajectories.parquet"
    recorded = pq.read_table(truth, columns=["subject_id", "hadm_id"])
    labels_all = out / "labels_ares_all.parquet"
    registry.LABEL.run(LabelOptions(cohort, "hospital_mortality", labels_all, splits=("held_out",), overwrite=True))
    table = pq.read_table(labels_all)
    keys = set(zip(recorded.column("subject_id").to_pylist(), recorded.column("hadm_id").to_pylist()))
    keep = [(s, h) in keys for s, h in zip(table.column("subject_id").to_pylist(), table.column("hadm_id").to_pylist())]
    if not any(keep):
        raise InvalidInputError(f"{truth}: no held-out stay of the synthetic world has a true trajectory; raise the cohort size")
    pq.write_table(table.filter(pa.array(keep)), out / "labels_ares.parquet")
    ares = _trajectory(cohort, out, out / "model" / "model", out / "tokens", o, truth=truth, labels=out / "labels_ares.parquet")
    return {"subjects": SYNTH_SUBJECTS, "train": train, "ares": ares}


def report_step(run_dir: Path, out: Path, o: DemoOptions) -> dict:
    from ehrfast.demo.report import subject_count
    from ehrfast.document import Document

    out.mkdir(parents=True, exist_ok=True)
    mimic = json.loads((run_dir / "mimic" / ".done.json").read_text())
    synth = json.loads((run_dir / "synth" / ".done.json").read_text())
    doc = Document("ehrfast ETHOS-ARES demo")
    doc.paragraph(f"A small model of the demo preset trained {o.ares_train_steps} steps on CPU; {SAMPLES} sampled futures per "
                  f"prediction ({TRAJECTORY_SAMPLES} per trajectory position), at most {MAX_NEW_TOKENS} tokens each. The numbers show the machinery at the paper's semantics, not "
                  "the paper's accuracy, which needs the full MIMIC-IV, the paper-sized model and the GPU.")
    doc.heading("MIMIC-IV demo: at admission (tuning + held_out pooled)")
    run_of = {outcome: run for run, outcomes in RUNS.items() for outcome in outcomes}

    def auroc_cell(v: dict, key: str) -> str:
        if key not in v:
            return "n/a"
        return f"{v[key]:.3f}{'†' if v['positive'] < MIN_CASES else ''}"

    rows = [[k, subject_count(*(run_dir / "mimic" / f"labels_{run_of.get(k, k)}_{split}.parquet" for split in SPLITS)), v["positive"], v["n"], auroc_cell(v, "auroc_path"), auroc_cell(v, "auroc_mc")]
            for k, v in mimic["outcomes"].items()]
    doc.table(["outcome", "subjects", "cases", "admissions", "AUROC (path)", "AUROC (MC)"], rows)
    if any(v["positive"] < MIN_CASES for v in mimic["outcomes"].values()):
        doc.paragraph(f"† Fewer than {MIN_CASES} cases: the AUROC is shown for completeness and says little (the MIMIC-IV demo has "
                      "100 subjects; the full MIMIC-IV is needed for the paper's numbers).")
    doc.paragraph(f"DRG at discharge, read as the softmax over the HCFA DRG tokens: top-1 {mimic['drg']['top1']:.3f}, top-5 "
                  f"{mimic['drg']['top5']:.3f} over {mimic['drg']['reads']} held-out stays.")
    doc.heading("Trajectories")
    doc.paragraph(f"MIMIC-IV demo: stay {mimic['ares']['stay']}, {mimic['ares']['positions']} positions. "
                  f"Synthetic hospital world: stay {synth['ares']['stay']}, {synth['ares']['positions']} positions beside the true risk.")
    doc.links("Pages:", [("MIMIC-IV evaluation report", "../mimic/evaluation/report.html"),
                         ("MIMIC-IV stay trajectory", "../mimic/ares/index.html"),
                         ("synthetic stay trajectory beside the true risk", "../synth/ares/index.html")])
    if synth["ares"].get("truth_mae"):
        doc.table(["component", "mean |estimate − truth|"], [[k, v] for k, v in synth["ares"]["truth_mae"].items()])
    (out / "report.html").write_text(doc.to_html())
    (out / "report.md").write_text(doc.to_markdown(out))
    print(f"  report: {out}/report.html")
    return {"report": str(out / "report.html")}
