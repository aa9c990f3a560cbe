"""``ehrfast transfer``: what a trained model's representations are worth beyond zero-shot
sampling, as in the genomics paper's transfer-learning experiment.

(a) Stroke: a classification head (dropout + linear) on the frozen EHR model's last hidden
    state, against the same model's zero-shot path probability.
(b) COPD: the PRS model's encoder embeddings through a one-hidden-layer MLP, against the raw
    PRS and against demographics through the same MLP.

Labels are 10-year incidence from record start (``ehrfast label``'s rule) on the train split
(to fit) and the held-out split (to evaluate); each comparison is a paired bootstrap in the
report folder ``OUT/report``. A comparison whose held-out split has no case is skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ehrfast.evaluate.compare import evaluate
from ehrfast.evaluate.options import EvaluateOptions
from ehrfast.genomics.matrix import read_prs_matrix
from ehrfast.infer.options import ScoreOptions
from ehrfast.infer.score import score_cohort
from ehrfast.inputs import read_parquet
from ehrfast.io import atomic_directory, check_outputs
from ehrfast.labels import make_labels
from ehrfast.model.checkpoint import load_checkpoint
from ehrfast.predictions import prediction_table, write_labels, write_predictions
from ehrfast.task import Task
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.transfer.features import context_features, demographic_features, prs_embeddings
from ehrfast.transfer.options import TransferOptions
from ehrfast.transfer.probe import train_probe

SAMPLING = dict(horizon_years=10.0, max_new_tokens=48, n_samples=8)
TRANSFER_TASKS = {
    "stroke_10y": Task(name="stroke_10y", target_regex=("cerebral infarction",), match_descriptions=True, **SAMPLING),
    "copd_10y": Task(name="copd_10y", target_regex=("chronic obstructive pulmonary",), match_descriptions=True, **SAMPLING),
}
SPLITS = ("train", "held_out")


@dataclass
class Comparison:
    """One transfer comparison: AUROC of the baseline (A) and the transfer model (B), over ``n``
    held-out subjects of whom ``cases`` are positive."""

    auroc_baseline: float
    auroc_transfer: float
    delta: float
    p_value: float
    n: int = 0
    cases: int = 0


@dataclass
class TransferSummary:
    """What ``run_transfer`` found: each comparison, the stroke cost (forward passes of the head
    against tokens the zero-shot sampler generated), and what was skipped."""

    out_dir: str
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    stroke_cost: dict[str, int] | None = None
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"transfer learning -> {self.out_dir} (report: {self.out_dir}/report/report.html)"]
        if self.stroke_cost:
            lines.append(f"  stroke: the head needs {self.stroke_cost['head_forward_passes']:,} forward passes; zero-shot sampling "
                         f"generated {self.stroke_cost['zero_shot_tokens_generated']:,} tokens")
        for name, c in self.comparisons.items():
            lines.append(f"  {name:<55} AUROC {c.auroc_baseline:.3f} -> {c.auroc_transfer:.3f}  Δ {c.delta:+.3f} (p {c.p_value:.3g})")
        if self.skipped:
            lines.append(f"  skipped (too few cases): {', '.join(self.skipped)}")
        return "\n".join(lines)


def run_transfer(tokens_dir: str | os.PathLike, meds_dir: str | os.PathLike, ehr_model: str | os.PathLike,
                 prs_model: str | os.PathLike, prs_path: str | os.PathLike, out_dir: str | os.PathLike,
                 options: TransferOptions | None = None, *, overwrite: bool = False, progress: bool = True) -> TransferSummary:
    """Runs both transfer experiments (see the module docstring) into ``out_dir`` (atomically):
    ``tokens_dir`` is a tokenize output (train/ and held_out/), ``meds_dir`` the MEDS dataset it
    came from, ``ehr_model`` and ``prs_model`` checkpoints (the second reads PRS), ``prs_path``
    the PRS matrix."""
    options = options or TransferOptions()
    tokens_dir, meds_dir, prs_path = Path(tokens_dir), Path(meds_dir), Path(prs_path)
    check_outputs(directories=[out_dir], inputs=[tokens_dir, meds_dir, ehr_model, prs_model, prs_path], overwrite=overwrite)
    summary = TransferSummary(str(out_dir))
    with atomic_directory(out_dir, overwrite=overwrite, kind="transfer") as out:
        data = {split: TokenizedDataset(tokens_dir / split) for split in SPLITS}
        labels = {(name, split): _labels(meds_dir, task, data[split], split, out / f"labels_{name}_{split}.parquet")
                  for name, task in TRANSFER_TASKS.items() for split in SPLITS}
        comparisons = {}
        if _both_classes(labels["stroke_10y", "train"]):
            comparisons["Stroke 10y: frozen-backbone head (B) vs zero-shot (A)"] = ("stroke_zero_shot", "stroke_head")
            summary.stroke_cost = _stroke(options, data, labels, out, tokens_dir, meds_dir, ehr_model, progress)
        else:
            summary.skipped.append("stroke (one class in train)")
        if _both_classes(labels["copd_10y", "train"]):
            comparisons["COPD 10y: PRS embedding (B) vs raw PRS (A)"] = ("copd_raw_PRS", "copd_embedding")
            comparisons["COPD 10y: PRS embedding (B) vs demographics (A)"] = ("copd_demographics", "copd_embedding")
            _copd(options, data, labels, out, prs_model, prs_path)
        else:
            summary.skipped.append("COPD (one class in train)")
        usable = {k: v for k, v in comparisons.items() if _both_classes(labels[_task_of(v[0]), "held_out"])}
        if usable:
            res = evaluate([(out / f"{a}.parquet", out / f"{b}.parquet") for a, b in usable.values()], out / "report",
                           EvaluateOptions(names=tuple(usable), model_names=("baseline", "transfer"), seed=options.seed, meta_tasks=()),
                           progress=False)
            for name in usable:
                t = res.tasks[name]
                d = t.bootstrap.deltas["auroc"]
                summary.comparisons[name] = Comparison(d.value_a, d.value_b, d.mean, d.p_value, t.n, t.n_positive)
        summary.skipped += [k for k in comparisons if k not in usable]
    return summary


def _task_of(prediction_name: str) -> str:
    return "stroke_10y" if prediction_name.startswith("stroke") else "copd_10y"


def _labels(meds_dir: Path, task: Task, ds: TokenizedDataset, split: str, path: Path):
    """The split's labels, kept to the subjects the tokenizer kept (its event filters may drop some)."""
    make_labels(meds_dir, task, path, splits=(split,))
    table = read_parquet(path)
    kept = np.isin(table.column("subject_id").to_numpy(), np.asarray(ds.subject_ids))
    table = table.filter(kept)
    write_labels(path, table, overwrite=True)
    return table


def _rows(table):
    return (table.column("subject_id").to_numpy(), table.column("prediction_time").cast("int64").to_numpy(),
            table.column("boolean_value").to_numpy(zero_copy_only=False).astype(bool))


def _both_classes(table) -> bool:
    y = _rows(table)[2]
    return bool(y.any()) and not bool(y.all())


def _stroke(options: TransferOptions, data, labels, out: Path, tokens_dir: Path, meds_dir: Path, ehr_model, progress: bool) -> dict:
    """(a): the head on the frozen EHR backbone, and the backbone's zero-shot risk."""
    ehr = load_checkpoint(ehr_model, map_location=options.device)
    feats = {split: context_features(ehr, data[split], *_rows(labels["stroke_10y", split])[:2], device=options.device) for split in SPLITS}
    head = train_probe(feats["train"], _rows(labels["stroke_10y", "train"])[2], hidden=None, dropout=0.1, seed=options.seed)
    held_out = labels["stroke_10y", "held_out"]
    write_predictions(out / "stroke_head.parquet", prediction_table(held_out, head.predict_proba(feats["held_out"]), "head"))
    zero = score_cohort(ehr_model, tokens_dir / "held_out", out / "labels_stroke_10y_held_out.parquet", TRANSFER_TASKS["stroke_10y"],
                        out / "stroke_zero_shot.parquet", ScoreOptions(seed=options.seed, device=options.device, model_name="zero-shot"),
                        meds_dir=meds_dir, progress=progress)
    return {"head_forward_passes": held_out.num_rows, "zero_shot_tokens_generated": zero.tokens_generated}


def _copd(options: TransferOptions, data, labels, out: Path, prs_model, prs_path: Path) -> None:
    """(b): PRS-encoder embeddings, raw PRS and demographics, each through the same MLP."""
    y_train = _rows(labels["copd_10y", "train"])[2]
    encoder_model = load_checkpoint(prs_model, map_location=options.device)
    matrix = read_prs_matrix(prs_path)
    inputs = {}
    for split, ds in data.items():
        sids, pts, _ = _rows(labels["copd_10y", split])
        raw = matrix.rows_for(sids)
        inputs["embedding", split] = prs_embeddings(encoder_model, raw, device=options.device)
        inputs["raw PRS", split] = raw
        inputs["demographics", split] = demographic_features(ds, sids, pts)
    fill = np.nanmean(inputs["raw PRS", "train"], axis=0)  # subjects without genotypes: the training mean
    for split in SPLITS:
        raw = inputs["raw PRS", split]
        inputs["raw PRS", split] = np.where(np.isnan(raw), fill, raw)
    for kind in ("embedding", "raw PRS", "demographics"):
        probe = train_probe(inputs[kind, "train"], y_train, hidden=32, dropout=0.1, seed=options.seed)
        write_predictions(out / f"copd_{kind.replace(' ', '_')}.parquet",
                          prediction_table(labels["copd_10y", "held_out"], probe.predict_proba(inputs[kind, "held_out"]), kind))
