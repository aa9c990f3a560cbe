"""``ehrfast baselines``: the paper's comparison methods for the label rows of one task — the six
early-warning scores from triage vitals and, with ``tabular``, the four tabular models — written
as one method-scores file (``ehrfast.predictions.method_scores_table``) that ``ehrfast evaluate
--methods`` sets beside the models."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast.baselines.features import births, feature_names, tabular_features
from ehrfast.baselines.options import BaselinesSettings
from ehrfast.baselines.rows import subject_splits
from ehrfast.baselines.scores import early_warning_scores
from ehrfast.baselines.tabular import TABULAR_METHODS, fit_and_score
from ehrfast.baselines.triage import FIELDS, TriageEvents, age_years, clean, fit_medians, impute, read_triage_events
from ehrfast.data.meds import STATIC_TIME
from ehrfast.errors import InvalidInputError
from ehrfast.io import atomic_output, check_outputs
from ehrfast.predictions import method_scores_table, read_labels


@dataclass
class BaselinesSummary:
    out_path: str
    rows: int
    methods: list[str]
    train_triage_events: int = 0
    train_anchors: int = 0
    medians: dict[str, float] = field(default_factory=dict)  # triage imputation values (°C for temperature)
    imputed: dict[str, int] = field(default_factory=dict)  # scored anchors with each triage value imputed

    def describe(self) -> str:
        parts = [f"{self.rows:,} label rows scored by {len(self.methods)} methods ({', '.join(self.methods)}) -> {self.out_path}"]
        if self.medians:
            imputed = ", ".join(f"{k} {v}" for k, v in self.imputed.items() if v) or "none"
            parts.append(f"triage imputation fitted on {self.train_triage_events:,} training events; imputed at the anchors: {imputed}")
        if self.train_anchors:
            parts.append(f"tabular models fitted on {self.train_anchors:,} training anchors")
        return "\n".join(parts)


def _when(t_us: int) -> str:
    return str(np.datetime64(int(t_us), "us"))


def _triage_at_anchors(meds_dir: Path, triage: TriageEvents, sid: np.ndarray, time: np.ndarray, settings: BaselinesSettings,
                       summary: BaselinesSummary) -> dict[str, np.ndarray]:
    """The six scores at the anchors; every anchor needs a triage event with an acuity."""
    idx = triage.find(sid, time)
    missing = np.flatnonzero(idx < 0)
    if len(missing):
        i = int(missing[0])
        raise InvalidInputError(f"{meds_dir}: no triage vitals for {len(missing)} of {len(sid)} anchors (e.g. subject {sid[i]} at "
                                f"{_when(time[i])}): the early-warning scores need triage rows ({', '.join(settings.triage_codes.patterns().values())}) "
                                "at the anchor time — use ED-triage anchors, or --no-scores")
    acuity = FIELDS.index("acuity")
    no_acuity = np.flatnonzero(~np.isfinite(triage.values[idx, acuity]))
    if len(no_acuity):
        i = int(no_acuity[0])
        raise InvalidInputError(f"{meds_dir}: {len(no_acuity)} anchors have triage vitals but no acuity (e.g. subject {sid[i]} at "
                                f"{_when(time[i])}); the benchmark keeps only triage records with an acuity")
    unit = settings.triage_codes.temperature_unit
    train = (triage.split == settings.train_split) & np.isfinite(triage.values[:, acuity])
    medians = fit_medians(clean(triage.values[train], unit), f"{meds_dir} (split {settings.train_split!r})")
    values, imputed = impute(clean(triage.values[idx], unit), medians)
    birth = births(meds_dir, settings.feature_codes.birth)
    age = age_years(time, np.array([birth.get(s, STATIC_TIME) for s in sid.tolist()], np.int64))
    train_age = age_years(triage.time[train], np.array([birth.get(s, STATIC_TIME) for s in triage.subject_id[train].tolist()], np.int64))
    if (~np.isfinite(age)).any():
        if not np.isfinite(train_age).any():
            raise InvalidInputError(f"{meds_dir}: no birth rows ({settings.feature_codes.birth}) for the training triage events: no age")
        imputed["age"] = int((~np.isfinite(age)).sum())
        age = np.where(np.isfinite(age), age, np.nanmedian(train_age))
    summary.train_triage_events = int(train.sum())
    summary.medians = {f: float(m) for f, m in zip(FIELDS, medians)}
    summary.imputed = imputed
    col = {f: values[:, j] for j, f in enumerate(FIELDS)}
    return early_warning_scores(age, col["temperature"], col["heart_rate"], col["resp_rate"], col["o2sat"], col["sbp"], col["dbp"],
                                col["acuity"])


def run_baselines(meds_dir: str | os.PathLike, labels_path: str | os.PathLike, out_path: str | os.PathLike,
                  settings: BaselinesSettings | None = None, *, overwrite: bool = False, progress: bool = True) -> BaselinesSummary:
    """Scores the label rows of ``settings.splits`` with the early-warning scores and/or the
    tabular models and writes the method-scores file ``out_path``."""
    s = settings or BaselinesSettings()
    meds_dir, labels_path = Path(meds_dir), Path(labels_path)
    check_outputs(files=[out_path], inputs=[meds_dir, labels_path], overwrite=overwrite)
    if not s.scores and not s.tabular:
        raise InvalidInputError("no baseline chosen: drop --no-scores or add --tabular")
    labels = read_labels(labels_path)
    sid = labels.column("subject_id").to_numpy()
    time = pc.cast(labels.column("prediction_time"), "int64").to_numpy()
    split_of = subject_splits(meds_dir)
    row_split = np.array([split_of.get(x) for x in sid.tolist()], dtype=object)
    if (unknown := np.flatnonzero(row_split == None)).size:  # noqa: E711 (elementwise)
        raise InvalidInputError(f"{labels_path}: row {int(unknown[0])}: subject {sid[unknown[0]]} is not in {meds_dir}")
    scored = np.flatnonzero(np.isin(row_split, list(s.splits)))
    if not len(scored):
        raise InvalidInputError(f"{labels_path}: no label rows in split(s) {list(s.splits)} (rows per split: "
                                f"{ {k: int((row_split == k).sum()) for k in sorted(set(row_split.tolist()))} })")
    summary = BaselinesSummary(str(out_path), len(scored), [])
    triage = read_triage_events(meds_dir, s.triage_codes)
    scores: dict[str, np.ndarray] = {}
    if s.scores:
        scores.update(_triage_at_anchors(meds_dir, triage, sid[scored], time[scored], s, summary))
    if s.tabular:
        train = np.flatnonzero(row_split == s.train_split)
        if not len(train):
            raise InvalidInputError(f"{labels_path}: no label rows of the training split {s.train_split!r} to fit the tabular models on; "
                                    f"make labels for it too (ehrfast label without --splits)")
        rows = np.r_[train, scored]
        x = tabular_features(meds_dir, sid[rows], time[rows], triage, s.feature_codes, s.triage_codes.temperature_unit, s.triage_window_hours)
        y = labels.column("boolean_value").to_numpy(zero_copy_only=False).astype(bool)
        for name in tqdm(TABULAR_METHODS, desc="baselines: tabular", unit="model", disable=not progress, leave=False):
            scores.update(fit_and_score(x[: len(train)], y[train], x[len(train):], feature_names(), s.seed, (name,)))
        summary.train_anchors = len(train)
    table = method_scores_table(labels.take(scored), scores)
    with atomic_output(out_path, overwrite) as tmp:
        pq.write_table(table, tmp)
    summary.methods = list(scores)
    return summary
