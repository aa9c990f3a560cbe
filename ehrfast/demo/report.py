"""The demo's top-level report: every number the stages produced, read in plain language,
with the synthetic ground truth as the ceiling — the only place that reads it.

Inputs are the stage summaries (each stage's ``.done.json``) and the held-out labels; outputs
``DIR/report.md``, a self-contained ``DIR/report.html`` and the figures under ``DIR/report/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ehrfast.document import Document
from ehrfast.evaluate.metrics import auroc
from ehrfast.evaluate.report import MIN_CASES

ALPHA = 0.05
FEW = "†"
FEW_NOTE = (f"{FEW} Fewer than {MIN_CASES} cases: the p-value and the ceiling are shown for completeness only; with so few "
            "cases neither says much (a larger cohort, --subjects, gives more).")


def _few(cases: int | None) -> bool:
    return cases is not None and cases < MIN_CASES


def _caveat(text: str, cases: int | None) -> str:
    return f"{text}{FEW}" if _few(cases) else text


def _evaluation_counts(run_dir: Path) -> dict[str, tuple[int, int]]:
    """{task title: (predictions, positives)} from the evaluation's results.json."""
    path = run_dir / "evaluation" / "results.json"
    if not path.exists():
        return {}
    tasks = json.loads(path.read_text()).get("tasks", {})
    return {title: (int(t["n"]), int(t["n_positive"])) for title, t in tasks.items()}


def ceiling_auroc(cohort: Path, labels_path: Path, disease: str, offset_days: int) -> float | None:
    """AUROC of the cohort's true 10-year risk against the held-out labels, over the labelled
    subjects with a finite true risk (None without both classes)."""
    truth = pq.read_table(cohort / "ground_truth" / "risk.parquet")
    mine = (np.asarray(truth.column("disease").to_pylist()) == disease) & (truth.column("index_offset_days").to_numpy() == offset_days)
    risk = dict(zip(truth.column("subject_id").to_numpy()[mine].tolist(), truth.column("true_risk").to_numpy()[mine].tolist()))
    labels = pq.read_table(labels_path, columns=["subject_id", "boolean_value"])
    pairs = [(bool(y), risk[s]) for s, y in zip(labels.column("subject_id").to_pylist(), labels.column("boolean_value").to_pylist())
             if s in risk and np.isfinite(risk[s])]
    y = np.array([p[0] for p in pairs], bool)
    if y.all() or not y.any():
        return None
    return auroc(y, np.array([p[1] for p in pairs]))


def _summary(run_dir: Path, folder: str) -> dict:
    marker = run_dir / folder / ".done.json"
    return json.loads(marker.read_text()) if marker.exists() else {}


def _significance(p: float) -> str:
    return "significant" if p < ALPHA else "not significant"


def write_demo_report(run_dir: Path, out: Path, tasks: dict[str, dict]) -> dict:
    """``tasks``: the demo's task specs (title, truth = (disease, offset days)). Returns every
    number shown."""
    evaluation, transfer = _summary(run_dir, "evaluation"), _summary(run_dir, "transfer")
    out.mkdir(parents=True, exist_ok=True)
    doc = Document("ehrfast demo: EHR-only vs EHR + PRS on a synthetic cohort")
    doc.paragraph(
        "Two GPT-style models were trained on the same synthetic health records; the second also reads 206 polygenic risk "
        "scores through cross-attention. Each predicts 10-year incidence zero-shot, by sampling futures from the held-out "
        "subjects' records. Δ = AUROC(EHR+PRS) − AUROC(EHR), from a paired bootstrap; the ceiling is the AUROC of the "
        "cohort's true risk, which no model can see."
    )
    rows, numbers = [], {}
    counts = _evaluation_counts(run_dir)
    for name, spec in tasks.items():
        t = evaluation.get("tasks", {}).get(name)
        if t is None:
            continue
        n, cases = counts.get(spec["title"], (None, None))
        ceiling = ceiling_auroc(run_dir / "cohort", run_dir / "labels" / f"{name}.parquet", *spec["truth"])
        numbers[name] = {**t, "ceiling_auroc": ceiling, "subjects": n, "cases": cases}
        rows.append([spec["title"], "—" if n is None else f"{n:,}", "—" if cases is None else f"{cases:,}", f"{t['auroc_ehr']:.3f}",
                     f"{t['auroc_prs']:.3f}", f"{t['delta']:+.3f}", _caveat(f"{t['p_value']:.3g}", cases),
                     "—" if ceiling is None else _caveat(f"{ceiling:.3f}", cases),
                     f"{t['prs_model_path_auroc']:.3f} / {t['prs_model_path_points']}", f"{t['prs_model_mc_auroc']:.3f} / {t['prs_model_mc_points']}"])
    skipped = [tasks[n]["title"] for n in evaluation.get("skipped", []) if n in tasks]
    doc.heading("Zero-shot prediction, held-out subjects")
    doc.table(["task", "subjects", "cases", "AUROC EHR", "AUROC EHR+PRS", "Δ", "p", "ceiling (true risk)", "path prob. AUROC / points",
               "MC freq. AUROC / points"], rows)
    if any(_few(t["cases"]) for t in numbers.values()):
        doc.paragraph(FEW_NOTE)
    if skipped:
        doc.paragraph(f"Not evaluated (no case or no non-case among the held-out subjects): {', '.join(skipped)}.")
    doc.paragraph(_reading(numbers, tasks, evaluation.get("meta_analysis_random")))
    forest = run_dir / "evaluation" / "plots" / "forest_auroc.png"
    if forest.exists():
        shutil.copy(forest, out / "forest_auroc.png")
        doc.figure(out / "forest_auroc.png", "Δ AUROC (EHR+PRS − EHR) per disease and pooled (random effects)")
    hospital = _summary(run_dir, "hospital")
    if hospital.get("outcomes"):
        _hospital_section(doc, run_dir, hospital)
    triage = _summary(run_dir, "triage")
    if any("methods" in t for t in triage.get("tasks", {}).values()):
        _triage_section(doc, run_dir, out, triage)
    doc.heading("Transfer learning")
    comparisons = transfer.get("comparisons", {})
    transfer_rows = [[k, f"{v.get('n', 0):,}", f"{v.get('cases', 0):,}", f"{v['auroc_baseline']:.3f}", f"{v['auroc_transfer']:.3f}",
                      f"{v['delta']:+.3f}", _caveat(f"{v['p_value']:.3g}", v.get("cases"))] for k, v in comparisons.items()]
    doc.table(["comparison", "subjects", "cases", "AUROC baseline (A)", "AUROC transfer (B)", "Δ", "p"], transfer_rows)
    if any(_few(v.get("cases")) for v in comparisons.values()):
        doc.paragraph(FEW_NOTE)
    cost = transfer.get("stroke_cost")
    if cost:
        doc.paragraph(f"Inference cost for stroke: the head needs one forward pass per subject ({cost['head_forward_passes']:,}); "
                      f"zero-shot sampling generated {cost['zero_shot_tokens_generated']:,} tokens.")
    details = [("zero-shot tasks (bootstrap tables, ROC, precision differences, calibration)", "evaluation/report.html"),
               ("transfer learning", "transfer/report/report.html"), ("in-hospital tasks", "hospital/evaluation/report.html"),
               ("ED triage tasks", "triage/evaluation/report.html")]
    doc.links("Detail reports:", [(text, href) for text, href in details if (run_dir / href).exists()])
    (run_dir / "report.md").write_text(doc.to_markdown(run_dir) + "\n")
    (run_dir / "report.html").write_text(doc.to_html())
    return {"tasks": numbers, "meta_analysis_random": evaluation.get("meta_analysis_random"), "transfer": transfer,
            "hospital": hospital.get("outcomes", {}), "triage": triage.get("tasks", {})}


def subject_count(*labels_paths: Path) -> str:
    """Distinct subjects over label files, for a table cell ("—" when none of them exists)."""
    ids = set()
    for path in labels_paths:
        if path.exists():
            ids.update(pq.read_table(path, columns=["subject_id"]).column("subject_id").to_pylist())
    return f"{len(ids):,}" if ids else "—"


def _hospital_section(doc: Document, run_dir: Path, hospital: dict) -> None:
    """The ETHOS-ARES in-hospital tasks: per outcome, both models' AUROC, AUPRC and Brier score,
    with the AUROC of the exact risk at admission as the ceiling."""
    doc.heading("In-hospital risk at admission (ETHOS-ARES tasks), held-out admissions")
    rows = []
    for o in hospital["outcomes"].values():
        ceiling = "—" if o["ceiling"] is None else _caveat(f"{o['ceiling']:.3f}", o["positive"])
        subjects = subject_count(run_dir / "hospital" / f"labels_{o['run']}.parquet")
        if "auroc_ehr" not in o:  # one class only among the scored admissions
            rows.append([o["title"], subjects, f"{o['positive']} / {o['n']}", *["—"] * 6, ceiling])
            continue
        rows.append([o["title"], subjects, f"{o['positive']} / {o['n']}", f"{o['auroc_ehr']:.3f}", f"{o['auroc_prs']:.3f}", f"{o['auprc_ehr']:.3f}",
                     f"{o['auprc_prs']:.3f}", f"{o['brier_ehr']:.4f}", f"{o['brier_prs']:.4f}", ceiling])
    doc.table(["outcome", "subjects", "cases / admissions", "AUROC EHR", "AUROC EHR+PRS", "AUPRC EHR", "AUPRC EHR+PRS", "Brier EHR",
               "Brier EHR+PRS", "ceiling (true risk)"], rows)
    if any(_few(o["positive"]) for o in hospital["outcomes"].values()):
        doc.paragraph(FEW_NOTE)
    doc.paragraph(
        f"Each admission's futures were sampled {hospital['samples']} times with competing events, at most "
        f"{hospital['max_new_tokens']} tokens each; one run of the mortality task gives prolonged stay too, and one run of the ICU task "
        "the composite. The estimate is the path estimate (the probability, along each sampled path, that each event comes first). "
        "The ceiling is the AUROC of the synthetic world's exact risk at admission (a dynamic program over its latent severity), "
        "which no model sees. Futures longer than the token cap are out of reach: a stay of 10 days or more runs to several hundred "
        "tokens here, so prolonged stay needs the GPU engine and longer generations.")
    for o in hospital["outcomes"].values():
        if o.get("methods"):
            doc.paragraph(f"{o['title']}: the demo models beside the tabular models (lr, rf, gb, mlp: scikit-learn on age, gender, "
                          "prior visits, the stay's triage vitals and Charlson/Elixhauser flags, fitted on the training admissions) and "
                          "the exact risk, with 95% bootstrap intervals:")
            _methods_table(doc, o["methods"])


def _methods_table(doc: Document, methods: dict) -> None:
    """One task's methods (from a stage summary): each metric with its 95 % bootstrap interval."""
    doc.table(["method", "AUROC", "AUPRC", "sensitivity", "specificity"],
              [[m, *(f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for v in (e["auroc"], e["auprc"], e["sensitivity"], e["specificity"]))]
               for m, e in methods.items()])


def _triage_section(doc: Document, run_dir: Path, out: Path, triage: dict) -> None:
    """Tables S3–S5 on the synthetic world: per ED task, every method with its 95 % intervals."""
    doc.heading("At ED triage: ETHOS-style scoring against early-warning scores and tabular models, held-out visits")
    for task, t in triage["tasks"].items():
        if "methods" not in t:
            continue
        subjects = subject_count(run_dir / "triage" / f"labels_{task}.parquet")
        doc.paragraph(f"{t['title']}: {t['n']} scored anchors of {subjects} subjects, {t['positive']} positive; tabular models fitted on "
                      f"{t['train_anchors']:,} training anchors.")
        _methods_table(doc, t["methods"])
    doc.paragraph("EHR and EHR+PRS: the demo models' zero-shot risk (path estimate over sampled futures with competing events). "
                  "news_edbench … cart: the early-warning scores as the MIMIC-IV-ED benchmark computes them from the triage vitals "
                  "(no supplemental O2, AVPU or GCS); esi: minus the triage acuity; lr, rf, gb, mlp: scikit-learn models on the "
                  "benchmark's features (age, gender, prior visits, triage vitals, Charlson/Elixhauser flags), fitted on the training "
                  "split. The scores do not apply after the patient left the ED (re-presentation). The last row is the synthetic world's "
                  "exact risk at the anchor, which no method sees: the ceiling. Sensitivity and specificity at each method's ROC point "
                  "closest to (0, 1); intervals from 500 bootstrap resamples shared by all methods.")
    forest = run_dir / "triage" / "evaluation" / "plots" / "methods_auroc.png"
    if forest.exists():
        shutil.copy(forest, out / "triage_methods_auroc.png")
        doc.figure(out / "triage_methods_auroc.png", "AUROC of every method per ED task, with 95% bootstrap intervals")


def _reading(numbers: dict, tasks: dict, meta: dict | None) -> str:
    """Plain-language reading of the zero-shot table."""
    parts = []
    for name, t in numbers.items():
        head = f"{tasks[name]['title']}: the PRS model's AUROC is {t['auroc_prs']:.3f} against {t['auroc_ehr']:.3f} (Δ {t['delta']:+.3f}"
        if _few(t.get("cases")):
            parts.append(f"{head}; only {t['cases']} cases, too few to test).")
        else:
            parts.append(f"{head}, p {t['p_value']:.3g}, {_significance(t['p_value'])}).")
    if meta:
        parts.append(f"Pooled over the four diseases, Δ AUROC is {meta['estimate']:+.3f} (95% CI {meta['ci_low']:+.3f} to "
                     f"{meta['ci_high']:+.3f}, p {meta['p_value']:.3g}): {_significance(meta['p_value'])}.")
    if "t2d_10y_0m" in numbers and "t2d_10y_3y" in numbers:
        d0, d3 = numbers["t2d_10y_0m"]["delta"], numbers["t2d_10y_3y"]["delta"]
        trend = "smaller" if d3 < d0 else "not smaller"
        parts.append(f"For T2D three years into the record (same subjects, same labels) the PRS advantage with 3 years of "
                     f"history shown ({d3:+.3f}) is {trend} than with none ({d0:+.3f}).")
    better = sum(t["prs_model_path_auroc"] >= t["prs_model_mc_auroc"] for t in numbers.values())
    parts.append(f"Path probabilities rank at least as well as Monte-Carlo frequencies on {better} of {len(numbers)} tasks and "
                 f"give far more operating points (one per distinct value).")
    return " ".join(parts)
