"""``ehrfast score`` for an event task (ETHOS-ARES, ARES.md S1–S6): for every anchor of an
anchored label file, N futures sampled with competing events — one run serves every outcome of
the task's event set — and one predictions row (predictions v2) with, per outcome, the
Monte-Carlo estimate over the valid samples, its exact interval and risk level, and (estimator
``path``) the path estimate; times to each event; tokens generated and the share of samples that
hit the token cap. Optionally every sample's first event (``samples_path``), from which other
outcomes of the same events can be computed without sampling again.

Contexts end where the task's ``anchor.context`` puts them, token-exact (ARES.md S4): at the last
token at the anchor's time (``same_time``), at the anchor's own code token (``anchor``) or k tokens
after it — a label file's ``anchor_token_offset`` column, when present, says it directly; they are
not shortened for the token cap (a long future slides the model's window, keeping the static
prefix), and each prediction has its own random stream, keyed by (subject, anchor_id).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast import distributed
from ehrfast.cluster import connect, map_tasks, opened
from ehrfast.errors import InvalidInputError, NonFiniteResultError
from ehrfast.genomics.matrix import model_prs_rows
from ehrfast.infer.blocks import assembled, block_label, check_cluster_scoring, row_blocks
from ehrfast.infer.decoders import decoder_for, reproducible_threads
from ehrfast.infer.options import ScoreOptions
from ehrfast.infer.outcomes import estimate_outcomes, event_names, time_edges, time_to_event
from ehrfast.infer.risk import binomial_interval, risk_level
from ehrfast.infer.sampler import EventSamples, SamplingSettings, sample_trajectories
from ehrfast.infer.sampling_step import END_MAX_TOKENS, END_REASONS
from ehrfast.io import atomic_output
from ehrfast.model.checkpoint import load_checkpoint
from ehrfast.predictions import DECISION_THRESHOLD, read_anchored_labels, write_predictions
from ehrfast.task import EventTask
from ehrfast.tokenize.dataset import TokenizedDataset

DEFAULT_MAX_NEW_TOKENS = 16_384  # a safety cap, not a budget (ARES.md S1)
DIED_DISCHARGE = "HOSPITAL_DISCHARGE//DIED"
PREDICTIONS_V2_VERSION = 2


@dataclass
class EventScoreSummary:
    """What ``score_event_task`` did."""

    out_path: str
    task: str
    outcomes: list[str]
    predictions: int
    labelled_not_in_split: int
    tokens_generated: int
    share_max_tokens: float
    ranks: int
    seconds: float

    def describe(self) -> str:
        unmatched = f"; {self.labelled_not_in_split:,} label rows without a subject here" if self.labelled_not_in_split else ""
        return (f"scored {self.predictions:,} predictions for {self.task} (outcomes {', '.join(self.outcomes)}) -> {self.out_path} in "
                f"{self.seconds:.1f} s on {self.ranks} rank(s); {self.tokens_generated:,} tokens generated, "
                f"{self.share_max_tokens:.1%} of samples at the token cap" + unmatched)


def event_token_classes(task: EventTask, tokens: list[str], source: str) -> np.ndarray:
    """[V] int64: each token's event class (the first matching event, −1: none). A regex that
    matches no token is an error. With ``death_before_discharge`` a ``HOSPITAL_DISCHARGE//DIED``
    token is the death: in the data it is always written beside MEDS_DEATH, which the labels
    put first, so a future that generates it has died."""
    classes = task.event_of_code(tokens)
    task.check_events_match(tokens, f"the vocabulary of {source}")
    death = [e for e, pattern in enumerate(task.events.values()) if re.search(pattern, "MEDS_DEATH")]
    if task.death_before_discharge and death and DIED_DISCHARGE in tokens:
        classes[tokens.index(DIED_DISCHARGE)] = death[0]
    return classes


def anchor_token_offsets(ds: TokenizedDataset, labels: pa.Table, task: EventTask) -> np.ndarray:
    """[n] int64: where each label row's context ends in its subject's timeline — the labels'
    ``anchor_token_offset`` when they carry one, else ``ds.anchor_token_index`` of the row's
    anchor code and time under ``task.anchor.context``; −1: end at the anchor's time."""
    if "anchor_token_offset" in labels.column_names:
        return pc.fill_null(labels.column("anchor_token_offset").cast(pa.int64()), -1).to_numpy()
    sids = labels.column("subject_id").to_pylist()
    times = labels.column("prediction_time").cast(pa.int64()).to_pylist()
    codes = labels.column("anchor_code").to_pylist()
    return np.array([ds.anchor_token_index(int(s), int(t), c, task.anchor.context) for s, t, c in zip(sids, times, codes)], np.int64)


def prediction_keys(subject_id: np.ndarray, anchor_id: np.ndarray) -> np.ndarray:
    """[n] int64 random-stream keys, one per (subject, anchor_id): two anchors of a subject get
    different streams (a splitmix64 mix; ARES.md S4)."""
    with np.errstate(over="ignore"):
        z = np.asarray(subject_id, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.asarray(anchor_id, np.int64).astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(1)).astype(np.int64)


def score_event_task(checkpoint: str | os.PathLike, data_dir: str | os.PathLike, labels_path: str | os.PathLike, task: EventTask,
                     out_path: str | os.PathLike, options: ScoreOptions | None = None, *, prs_path: str | os.PathLike | None = None,
                     samples_path: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = True,
                     cluster=None) -> EventScoreSummary:
    """Scores every anchor of ``labels_path`` (``ehrfast label --task <event task>``, or a plain
    MEDS label file such as ACES writes: each row scored at its prediction time) that is in
    ``data_dir``; outputs are checked by the caller (``score_cohort``)."""
    t0 = time.perf_counter()
    options = options or ScoreOptions()
    ranks, device = distributed.join(options.device)
    check_cluster_scoring(cluster, device, ranks.world)
    if samples_path is not None and ranks.distributed:
        path = Path(samples_path)
        samples_path = path.with_name(f"{path.stem}.rank{ranks.rank}{path.suffix}")
    labels = read_anchored_labels(labels_path, plain=True)  # a plain MEDS label file (ACES's) is scored at its prediction times
    model = load_checkpoint(checkpoint, map_location=device)
    ds = TokenizedDataset(data_dir)
    if len(ds.vocab) != model.config.vocab_size:
        raise InvalidInputError(f"{data_dir} has {len(ds.vocab)} tokens but the model {checkpoint} expects {model.config.vocab_size}")
    tokens = ds.vocab.decode(range(len(ds.vocab)))
    classes = event_token_classes(task, tokens, str(data_dir))
    sids = labels.column("subject_id").to_numpy()
    pts = labels.column("prediction_time").cast(pa.int64()).to_numpy()
    anchors = labels.column("anchor_id").to_numpy()
    keep = ds.labelled_rows(sids, pts, str(labels_path), options.min_overlap)
    labels = labels.filter(pa.array(keep))
    sids, pts, anchors = sids[keep], pts[keep], anchors[keep]
    window = model.config.token_window
    max_new_tokens = task.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    rows = _EventRows(str(data_dir), None if prs_path is None else str(prs_path), sids, pts, prediction_keys(sids, anchors),
                      anchor_token_offsets(ds, labels, task), context_tokens=min(window, options.context_tokens or window),
                      age_at=task.age_at, event_class=classes, durations_us=ds.vocab.interval_duration_us("mean"),
                      settings=SamplingSettings(horizon_us=float(task.time_limit_us), n_samples=task.n_samples,
                                                max_new_tokens=max_new_tokens, temperature=task.temperature, top_p=task.top_p,
                                                seed=options.seed, time_edges_us=time_edges(task), estimator=task.estimator),
                      window=window, deterministic=options.deterministic)
    bar = tqdm(total=len(sids), desc=f"score {task.name}", unit="prediction", disable=not progress or not ranks.is_main)
    with connect(cluster) as cl:
        if cl is None:
            mine = distributed.shard(np.arange(len(sids)), ranks)
            local = _sample_rows(mine, rows, model, ds, device, bar.update)
            ev = _gathered(local, mine, len(sids), ranks)
            n_ranks = ranks.world
        else:
            blocks = row_blocks(len(sids), cl.n_workers)
            mine = np.arange(len(sids))
            if blocks:
                results = map_tasks(cl, _block_task, blocks, labels=[block_label(f"score {task.name}", b, sids) for b in blocks],
                                    name="score", progress=bar.update, sizes=[len(b) for b in blocks],
                                    args=(cl.broadcast(rows), cl.broadcast(model)))
                local = ev = assembled(list(zip(blocks, results, strict=True)), len(sids))
            else:  # nothing to sample: empty samples of the right shapes
                local = ev = _sample_rows(mine, rows, model, ds, device)
            n_ranks = cl.n_workers
    bar.close()
    table = None
    if ranks.is_main:
        table = predictions_v2(task, labels, ev, options.model_name or Path(checkpoint).name)
        write_predictions(out_path, table, strict_copy=options.strict_copy, overwrite=overwrite)
    if samples_path is not None:
        with atomic_output(samples_path, overwrite) as tmp:
            pq.write_table(sample_table(task, tokens, sids[mine], pts[mine], anchors[mine], local), tmp)
    distributed.barrier(ranks)
    share_cap = float(np.mean(ev.end_reason == END_MAX_TOKENS)) if ev.end_reason.size else 0.0
    return EventScoreSummary(str(out_path), task.name, list(task.outcomes), int(len(sids)), int((~keep).sum()), int(ev.tokens.sum()),
                             share_cap, n_ranks, round(time.perf_counter() - t0, 2))


@dataclass(frozen=True)
class _EventRows:
    """The labelled anchors of an event-task run and how each is sampled — what every block
    needs (sent once to each worker of a cluster). Per row [n]: ``sids``, ``pts`` (µs),
    ``keys`` (random streams), ``offsets`` (``anchor_token_offsets``)."""

    data_dir: str
    prs_path: str | None
    sids: np.ndarray
    pts: np.ndarray
    keys: np.ndarray
    offsets: np.ndarray
    context_tokens: int
    age_at: str
    event_class: np.ndarray
    durations_us: np.ndarray
    settings: SamplingSettings
    window: int
    deterministic: bool


def _sample_rows(mine: np.ndarray, rows: _EventRows, model, ds: TokenizedDataset, device: str, progress=None) -> EventSamples:
    """Samples the futures of label rows ``mine`` (indices into ``rows``) with competing events."""
    contexts = [ds.context(int(rows.sids[i]), int(rows.pts[i]), max_tokens=rows.context_tokens)[0] if rows.offsets[i] < 0
                else ds.context_at(int(rows.sids[i]), int(rows.offsets[i]), max_tokens=rows.context_tokens, age_at=rows.age_at)[0]
                for i in mine]
    prefix = [ds.head_length(ds.row(int(rows.sids[i]))) for i in mine]
    prs = model_prs_rows(model.config.modality, rows.prs_path, rows.sids[mine])
    decoder = decoder_for(model, contexts, rows.settings.max_new_tokens, device, rows.deterministic)
    with reproducible_threads(rows.deterministic, device):
        res = sample_trajectories(decoder, contexts, np.zeros(0, np.int64), rows.durations_us, rows.settings, subject_keys=rows.keys[mine],
                                  prs=prs, window=rows.window, device=device, progress=progress, event_class=rows.event_class,
                                  prefix_lengths=prefix)
    return res.events


def _block_task(mine: np.ndarray, rows: _EventRows, model) -> EventSamples:
    """One cluster task: a block of anchors on this worker's CPU (its dataset opened once)."""
    return _sample_rows(mine, rows, model, opened(("tokens", rows.data_dir), lambda: TokenizedDataset(rows.data_dir)), "cpu")


def _gathered(ev: EventSamples, mine: np.ndarray, n: int, ranks) -> EventSamples:
    """Every rank's samples put back in label order (the samples themselves with one rank)."""
    if not ranks.distributed:
        return ev
    return assembled(distributed.gather((mine, ev), ranks), n)


def predictions_v2(task: EventTask, labels: pa.Table, ev: EventSamples, model_name: str) -> pa.Table:
    """One row per label row (ARES.md S5): the label columns, ``predicted_boolean_probability``
    (the task's estimator on its ``label_outcome``), then per outcome ``p_mc_``, ``n_valid_``,
    ``ci_low_``/``ci_high_`` (exact 95 % interval, n = valid samples), ``risk_level_`` and, with
    the path estimator, ``p_path_``; ``median_time_to_<event>_us`` / ``iqr_time_to_<event>_us``;
    ``tokens_generated``, ``share_max_tokens``, ``n_samples``, ``model``. A value without valid
    samples is null, never NaN. Where the Monte-Carlo estimator has no valid sample (the
    reference drops such predictions), ``predicted_boolean_probability`` is the path estimate
    of the same samples (the mass of valid events up to where each sample stopped), flagged by
    ``n_valid_<outcome>`` = 0."""
    estimates = estimate_outcomes(task, ev)
    n = labels.num_rows
    chosen = estimates[task.label_outcome]
    probability = chosen.p_path if task.estimator == "path" else np.where(chosen.n_valid > 0, chosen.p_mc, chosen.p_path)
    bad = ~np.isfinite(probability)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise NonFiniteResultError(f"prediction row {row} (subject {labels.column('subject_id')[row].as_py()}): no valid sampled future "
                                   f"for {task.label_outcome!r} (every sample ended in an excluded event or at the limit); nothing was "
                                   "written — raise n_samples or the token cap")
    cols: dict[str, pa.Array] = {c: labels.column(c) for c in ("subject_id", "prediction_time", "boolean_value")}
    cols["predicted_boolean_value"] = pa.array(probability >= DECISION_THRESHOLD)
    cols["predicted_boolean_probability"] = pa.array(probability.astype(np.float32))
    cols["anchor_id"] = labels.column("anchor_id")
    for name, est in estimates.items():
        has = est.n_valid > 0
        lo, hi = np.full(n, np.nan), np.full(n, np.nan)
        if has.any():
            lo[has], hi[has] = binomial_interval(est.positive[has], est.n_valid[has])
        levels = np.zeros(n, np.int8)
        levels[has] = risk_level(est.p_mc[has])
        cols[f"p_mc_{name}"] = pa.array(est.p_mc.astype(np.float32), mask=~has)
        cols[f"n_valid_{name}"] = pa.array(est.n_valid.astype(np.int32))
        cols[f"ci_low_{name}"] = pa.array(lo.astype(np.float32), mask=~has)
        cols[f"ci_high_{name}"] = pa.array(hi.astype(np.float32), mask=~has)
        cols[f"risk_level_{name}"] = pa.array(levels, mask=~has)
        if task.estimator == "path":
            cols[f"p_path_{name}"] = pa.array(est.p_path.astype(np.float32), mask=~np.isfinite(est.p_path))
    for name, (median, iqr) in time_to_event(task, ev).items():
        cols[f"median_time_to_{name}_us"] = pa.array(median, mask=~np.isfinite(median))
        cols[f"iqr_time_to_{name}_us"] = pa.array(iqr, mask=~np.isfinite(iqr))
    cols["tokens_generated"] = pa.array(ev.tokens.sum(1).astype(np.int64))
    cols["share_max_tokens"] = pa.array((ev.end_reason == END_MAX_TOKENS).mean(1).astype(np.float32))
    cols["n_samples"] = pa.array(np.full(n, ev.mc_event.shape[1], np.int32))
    cols["model"] = pa.array([model_name] * n, pa.string())
    table = pa.table(cols)
    return table.replace_schema_metadata({"ehrfast_predictions_version": str(PREDICTIONS_V2_VERSION), "task": task.name,
                                          "estimator": task.estimator, "label_outcome": task.label_outcome})


def sample_table(task: EventTask, tokens: list[str], sids, pts, anchors, ev: EventSamples) -> pa.Table:
    """One row per sample: subject_id, prediction_time, anchor_id, sample, mc_event (name or
    'none'), mc_token (the event's token), mc_elapsed_us (null without an event), end_reason,
    end_elapsed_us, tokens."""
    n, n_samples = ev.mc_event.shape
    names = event_names(task, ev.mc_event).ravel()
    token_names = np.array([*tokens, None], dtype=object)
    reasons = np.array([END_REASONS.get(i, "running") for i in range(5)], dtype=object)
    elapsed = ev.mc_elapsed_us.ravel()
    return pa.table({
        "subject_id": pa.array(np.repeat(sids, n_samples), pa.int64()),
        "prediction_time": pa.array(np.repeat(pts, n_samples), pa.int64()).cast(pa.timestamp("us")),
        "anchor_id": pa.array(np.repeat(anchors, n_samples), pa.int64()),
        "sample": pa.array(np.tile(np.arange(n_samples, dtype=np.int32), n)),
        "mc_event": pa.array(names.tolist(), pa.string()),
        "mc_token": pa.array(token_names[np.where(ev.mc_token >= 0, ev.mc_token, len(tokens)).ravel()].tolist(), pa.string()),
        "mc_elapsed_us": pa.array(elapsed, mask=~np.isfinite(elapsed)),
        "end_reason": pa.array(reasons[ev.end_reason.ravel()].tolist(), pa.string()),
        "end_elapsed_us": pa.array(ev.end_elapsed_us.ravel()),
        "tokens": pa.array(ev.tokens.ravel()),
    })
