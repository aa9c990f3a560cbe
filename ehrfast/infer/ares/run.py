"""``ehrfast ares`` and ``ehrfast next-token``: the stage functions.

``ehrfast ares CKPT TOKENS --anchors LABELS --out DIR`` writes

* ``trajectory.parquet`` — one row per (stay position, component), ``RiskTrajectory.table``;
* ``explanations.parquet`` — per stay and component the ``top_k`` token groups that moved the risk;
* ``figures/stay_<subject>_<anchor>.png`` — the ARES panel of the first ``figures`` stays;
* ``index.html`` (self-contained) and ``report.md`` — the overview of every stay (Table S10), the
  panels and the explanation tables;
* ``summary.json`` — settings, counts, cost (generated tokens and positions per second) and, with
  ``--truth``, the mean absolute error of each component against the synthetic world's true risk.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast.document import Document
from ehrfast.errors import InvalidInputError, NonFiniteResultError
from ehrfast.genomics.matrix import model_prs_rows
from ehrfast.infer.ares.explanations import explain, explain_stay
from ehrfast.infer.ares.figures import SHOWN, overview_html, overview_markdown, stay_figure, stay_title, table_html
from ehrfast.infer.ares.next_token import NEXT_TOKEN_TASKS, read_next_tokens
from ehrfast.infer.ares.options import TrajectorySettings
from ehrfast.infer.ares.trajectory import COMPONENTS, RiskTrajectory, Stay, StayTrajectory, risk_trajectory, stays_from_labels
from ehrfast.inputs import read_parquet
from ehrfast.io import atomic_directory, atomic_output, check_outputs
from ehrfast.model.checkpoint import load_checkpoint
from ehrfast.predictions import read_anchored_labels
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.units import US_PER_DAY, US_PER_HOUR

TRUTH_COLUMNS = {c: f"p_{c}" for c in ("hospital_mortality", "icu_admission", "prolonged_stay", "composite", "composite_ref")}


@dataclass
class AresSummary:
    """What ``run_ares`` did; ``truth_mae``: component -> mean |estimate − truth| over the
    positions of the stays that have a true trajectory."""

    out_dir: str
    stays: int
    skipped: int
    positions: int
    tokens_generated: int
    seconds: float
    truth_mae: dict[str, float] | None = None

    def describe(self) -> str:
        rate = self.tokens_generated / self.seconds if self.seconds else 0.0
        text = (f"ARES trajectories of {self.stays} stay(s) ({self.positions:,} positions, {self.skipped} anchors skipped) -> "
                f"{self.out_dir} in {self.seconds:.1f} s: {self.tokens_generated:,} tokens generated ({rate:,.0f}/s, "
                f"{self.positions / self.seconds if self.seconds else 0:.2f} positions/s); open {self.out_dir}/index.html")
        if self.truth_mae:
            text += "\n  vs the true risk (mean absolute error): " + ", ".join(f"{k} {v:.3f}" for k, v in self.truth_mae.items())
        return text


def select_stays(stays: list[Stay], wanted: tuple[str, ...] | None, max_stays: int | None) -> list[Stay]:
    """The stays named ``SUBJECT`` or ``SUBJECT:ANCHOR_ID`` (in that order), at most ``max_stays``."""
    if wanted:
        chosen = []
        for spec in wanted:
            sid, _, aid = str(spec).partition(":")
            try:
                sid_i, aid_i = int(sid), (int(aid) if aid else None)
            except ValueError:
                raise InvalidInputError(f"--stays: {spec!r} is not SUBJECT or SUBJECT:ANCHOR_ID") from None
            hits = [s for s in stays if s.subject_id == sid_i and (aid_i is None or s.anchor_id == aid_i)]
            if not hits:
                raise InvalidInputError(f"--stays: no stay {spec!r} among the {len(stays)} stays of the anchors in this split")
            chosen += [s for s in hits if s not in chosen]
        stays = chosen
    return stays[:max_stays] if max_stays else stays


def read_truth(truth_path: Path) -> pa.Table:
    """A synthetic cohort's ``stay_trajectories.parquet``, its columns checked."""
    table = read_parquet(truth_path)
    missing = [c for c in ("subject_id", "hadm_id", "elapsed_hours", *TRUTH_COLUMNS.values()) if c not in table.column_names]
    if missing:
        raise InvalidInputError(f"{truth_path}: not a stay_trajectories.parquet (missing {missing})")
    return table


def true_risks(table: pa.Table, st: StayTrajectory) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """component -> (elapsed days, true risk) of the stay's hourly truth (``read_truth``), or None if it has none."""
    if st.stay.hadm_id is None:
        return None
    sid = table.column("subject_id").to_numpy()
    hadm = table.column("hadm_id").to_numpy()
    rows = np.flatnonzero((sid == st.stay.subject_id) & (hadm == st.stay.hadm_id))
    if not len(rows):
        return None
    hours = table.column("elapsed_hours").to_numpy()[rows].astype(np.float64)
    return {c: (hours / 24.0, table.column(col).to_numpy(zero_copy_only=False)[rows].astype(np.float64)) for c, col in TRUTH_COLUMNS.items()}


def truth_errors(st: StayTrajectory, truth: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """component -> |estimate − truth| at each position (the truth of the hour the position falls in)."""
    out = {}
    for c, (days, risk) in truth.items():
        hour = np.floor(st.elapsed_us / US_PER_HOUR).astype(np.int64)
        at = np.searchsorted(np.round(days * 24).astype(np.int64), hour, side="right") - 1
        ok = (at >= 0) & np.isfinite(st.risk[c])
        true = np.where(ok, risk[np.clip(at, 0, len(risk) - 1)], np.nan)
        ok &= np.isfinite(true)
        out[c] = np.abs(st.risk[c][ok] - true[ok])
    return out


def run_ares(checkpoint: str | os.PathLike, data_dir: str | os.PathLike, anchors_path: str | os.PathLike, out_dir: str | os.PathLike,
             settings: TrajectorySettings | None = None, stays: tuple[str, ...] | None = None, max_stays: int | None = None, top_k: int = 5,
             figures: int = 6, device: str = "cpu", prs_path: str | os.PathLike | None = None, truth_path: str | os.PathLike | None = None,
             overwrite: bool = False, progress: bool = True) -> AresSummary:
    """ARES trajectories, explanations and pictures of the stays of ``anchors_path`` in ``data_dir``."""
    t0 = time.perf_counter()
    settings = settings or TrajectorySettings()
    check_outputs(directories=[out_dir], inputs=[checkpoint, data_dir, anchors_path, prs_path, truth_path], overwrite=overwrite)
    labels = read_anchored_labels(anchors_path)
    model = load_checkpoint(checkpoint, map_location=device)
    ds = TokenizedDataset(data_dir)
    if len(ds.vocab) != model.config.vocab_size:
        raise InvalidInputError(f"{data_dir} has {len(ds.vocab)} tokens but the model {checkpoint} expects {model.config.vocab_size}")
    all_stays, skipped = stays_from_labels(ds, labels, settings)
    chosen = select_stays(all_stays, stays, max_stays)
    if not chosen:
        raise InvalidInputError(f"no stay of {anchors_path} has a position in {data_dir} ({skipped} anchors skipped: not in this split, "
                                "or discharged at the anchor's time)")
    prs = model_prs_rows(model.config.modality, prs_path, np.array([s.subject_id for s in chosen], np.int64))
    bar = tqdm(desc="ares", unit="position", disable=not progress)

    def plan(total: int) -> None:
        bar.total = total
        bar.refresh()

    traj = risk_trajectory(model, ds, chosen, settings, prs=prs, device=device, progress=bar.update, on_plan=plan)
    bar.close()
    table = traj.table()
    _check_finite(table)
    explanations = pa.concat_tables([explain(traj, c, top_k) for c in COMPONENTS])
    seconds = time.perf_counter() - t0
    errors: dict[str, list[np.ndarray]] = {}
    with atomic_directory(out_dir, overwrite=overwrite, kind="ares") as root:
        pq.write_table(table, root / "trajectory.parquet")
        pq.write_table(explanations, root / "explanations.parquet")
        (root / "figures").mkdir()
        doc = _page(traj, settings, len(chosen), skipped)
        truth_table = read_truth(Path(truth_path)) if truth_path else None  # once, not per stay
        for i, st in enumerate(traj.stays):
            truth = true_risks(truth_table, st) if truth_table is not None else None
            if truth:
                for c, e in truth_errors(st, truth).items():
                    errors.setdefault(c, []).append(e)
            if i < figures:
                groups = explain_stay(traj, st, "composite", top_k)
                path = stay_figure(root / "figures" / f"stay_{st.stay.subject_id}_{st.stay.anchor_id}.png", traj, st, groups, truth)
                _stay_section(doc, traj, st, path, groups, truth is not None)
        mae = {c: float(np.concatenate(e).mean()) for c, e in errors.items() if sum(map(len, e))} or None
        if mae:
            doc.heading("Against the true risk")
            doc.paragraph("The synthetic hospital world knows every patient's exact risk after every hour of the stay; the mean absolute "
                          "difference between the estimate and it, over every evaluated position:")
            doc.table(["component", "mean |estimate − truth|"], [[c, v] for c, v in mae.items()])
        positions = sum(len(st.positions) for st in traj.stays)
        summary = AresSummary(str(out_dir), len(chosen), skipped, positions, traj.tokens_generated, round(seconds, 2), mae)
        (root / "summary.json").write_text(json.dumps({**asdict(summary), "settings": _settings_json(settings), "top_k": top_k,
                                                       "tokens_per_second": traj.tokens_generated / max(seconds, 1e-9),
                                                       "positions_per_second": positions / max(seconds, 1e-9)}, indent=1) + "\n")
        (root / "index.html").write_text(doc.to_html())
        (root / "report.md").write_text(doc.to_markdown(root))
    return summary


def _check_finite(table: pa.Table) -> None:
    for name in ("risk", "ci_low", "ci_high"):
        values = table.column(name).to_numpy(zero_copy_only=False)
        bad = ~np.isnan(values) & ((values < 0) | (values > 1) | ~np.isfinite(values))
        if bad.any():
            raise NonFiniteResultError(f"trajectory column {name!r} has a value outside [0, 1] at row {int(np.flatnonzero(bad)[0])}; "
                                       "nothing was written")


def _settings_json(settings: TrajectorySettings) -> dict:
    out = {}
    for k, v in asdict(settings).items():
        out[k] = v if isinstance(v, str | int | float | bool | type(None) | tuple | list) else getattr(v, "name", str(v))
    return out


def _page(traj: RiskTrajectory, settings: TrajectorySettings, n: int, skipped: int) -> Document:
    doc = Document("ETHOS-ARES: risk trajectories")
    where = {"every_token": "after every token", "every_k": f"after every {settings.every_k}th token", "per_timestamp":
             "at each distinct time", "per_group": "after each group of tokens"}[settings.positions]
    doc.paragraph(f"{n} stay(s); the risk of each component re-estimated {where} of the stay from {settings.n_samples} sampled futures (valid futures only: those that met the event set before the "
                  f"token cap), with exact 95 % intervals and ARES's five levels. The ICU component switches off once the patient is "
                  f"in the ICU; the prolonged stay is a stay of {settings.thresholds_days[0]:g} days until day "
                  f"{settings.thresholds_days[0]:g}, then of {settings.thresholds_days[1]:g} days. {skipped} anchor(s) skipped.")
    doc.heading("Overview (Table S10)")
    doc.paragraph("Ten evenly spaced moments of each stay, coloured by risk level (1: 0–20 % … 5: 80–100 %); an empty cell is a "
                  "switched-off component.")
    doc.fragment(overview_html(traj), overview_markdown(traj))
    return doc


def _stay_section(doc: Document, traj: RiskTrajectory, st: StayTrajectory, figure: Path, groups, with_truth: bool) -> None:
    doc.heading(stay_title(st))
    moves = []
    for c in SHOWN:
        v = st.risk[c][np.isfinite(st.risk[c])]
        if len(v):
            until = " (until the ICU admission)" if c == "icu_admission" and st.deactivated.any() else ""
            moves.append(f"{SHOWN[c][0].lower()} {v[0]:.0%} → {v[-1]:.0%}{until}")
    n_valid = st.n_valid["hospital_mortality"]
    doc.paragraph(f"{len(st.positions)} positions over {st.elapsed_us[-1] / US_PER_DAY:.1f} days. Risk at the first → at the last "
                  f"position: {'; '.join(moves)}. Valid futures per position (mortality run): median {np.median(n_valid):.0f} of "
                  f"{traj.settings.n_samples} (the others reached the token cap before any event; few valid futures make a jumpy curve "
                  "and wide bands).")
    doc.figure(figure, "Top: the four components with 95 % bands, on tokens and on days since admission"
               + (" (dashed: the true risk)" if with_truth else "") + "; middle: the stay's tokens with the groups that moved the "
               "composite most; bottom: the ARES bar.")
    if groups:
        header = ["rank", "tokens", "day", "Δ composite", "z", "window"]
        rows = [[g.rank, g.tokens, f"{g.elapsed_us / US_PER_DAY:.2f}", f"{g.delta:+.3f}", "n/a" if g.z is None else f"{g.z:.2f}", g.window]
                for g in groups]
        doc.fragment(table_html(header, rows), "\n".join(["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
                                                          + ["| " + " | ".join(map(str, r)) + " |" for r in rows]))


@dataclass
class NextTokenSummary:
    out_path: str
    task: str
    reads: int
    top1: float
    top5: float
    expected_quantile: float | None

    def describe(self) -> str:
        eq = "" if self.expected_quantile is None else f", mean expected quantile {self.expected_quantile:.2f}"
        return f"{self.task}: {self.reads} reads -> {self.out_path}; top-1 accuracy {self.top1:.3f}, top-5 {self.top5:.3f}{eq}"


def run_next_token(checkpoint: str | os.PathLike, data_dir: str | os.PathLike, task: str, out_path: str | os.PathLike, parity: bool = False,
                   device: str = "cpu", prs_path: str | os.PathLike | None = None, overwrite: bool = False) -> NextTokenSummary:
    """DRG / SOFA readouts (ARES.md S9) of every read in ``data_dir``: one row per read with the
    real answer, the top-1 and top-5 candidates, the real answer's probability and rank, the
    probability vector (candidates in the schema metadata) and, for quantile answers, the expected
    quantile."""
    check_outputs(files=[out_path], inputs=[checkpoint, data_dir, prs_path], overwrite=overwrite)
    if task not in NEXT_TOKEN_TASKS:
        raise InvalidInputError(f"next-token task must be one of {sorted(NEXT_TOKEN_TASKS)}, got {task!r}")
    model = load_checkpoint(checkpoint, map_location=device)
    ds = TokenizedDataset(data_dir)
    if len(ds.vocab) != model.config.vocab_size:
        raise InvalidInputError(f"{data_dir} has {len(ds.vocab)} tokens but the model {checkpoint} expects {model.config.vocab_size}")
    prs = model_prs_rows(model.config.modality, prs_path, np.asarray(ds.subject_ids))
    reads = read_next_tokens(model, ds, NEXT_TOKEN_TASKS[task], parity=parity, prs=prs, device=device)
    if not len(reads.truth):
        raise InvalidInputError(f"{data_dir}: no read of task {task!r} (no real token matching {NEXT_TOKEN_TASKS[task].at!r} with an answer)")
    p = reads.probabilities
    order = np.argsort(-p, axis=1, kind="stable")
    names = np.array(reads.candidates, dtype=object)
    rank = (order == reads.truth[:, None]).argmax(1) + 1
    quantile = all(c.startswith("Q") and c[1:].isdigit() for c in reads.candidates)
    cols = {"subject_id": pa.array(reads.subject_id), "token_index": pa.array(reads.token_index),
            "time": pa.array(reads.time_us).cast(pa.timestamp("us")), "truth": pa.array(names[reads.truth].tolist(), pa.string()),
            "predicted": pa.array(names[order[:, 0]].tolist(), pa.string()),
            "top5": pa.array([names[o[:5]].tolist() for o in order], pa.list_(pa.string())),
            "p_truth": pa.array(p[np.arange(len(p)), reads.truth].astype(np.float32)), "truth_rank": pa.array(rank.astype(np.int32)),
            "probabilities": pa.array([row.astype(np.float32) for row in p], pa.list_(pa.float32()))}
    if quantile:
        cols["expected_quantile"] = pa.array(reads.expected_quantile().astype(np.float32))
    table = pa.table(cols).replace_schema_metadata({"task": task, "parity": str(parity).lower(), "candidates": json.dumps(reads.candidates)})
    with atomic_output(out_path, overwrite) as tmp:
        pq.write_table(table, tmp)
    return NextTokenSummary(str(out_path), task, len(reads.truth), reads.top_k_accuracy(1), reads.top_k_accuracy(5),
                            float(reads.expected_quantile().mean()) if quantile else None)
