"""``ehrfast score``: zero-shot risk for every (subject, prediction time) of a label file, by
sampling futures from a trained model (``sample_trajectories``: KV-cache decoding, on CUDA with
CUDA graphs and the sampling kernel). Writes predictions in the MEDS label schema plus
ehrfast's columns (``ehrfast.predictions``), and optionally the sampled futures themselves."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast import distributed
from ehrfast.cluster import connect, map_tasks, opened
from ehrfast.data.meds import code_descriptions
from ehrfast.errors import InvalidInputError
from ehrfast.genomics.matrix import model_prs_rows
from ehrfast.infer.blocks import assembled, block_label, check_cluster_scoring, join_parts, part_path, row_blocks
from ehrfast.infer.decoders import decoder_for, reproducible_threads
from ehrfast.infer.options import ScoreOptions
from ehrfast.infer.risk import binomial_interval, risk_level
from ehrfast.infer.sampler import SamplingResult, SamplingSettings, sample_trajectories
from ehrfast.infer.score_events import EventScoreSummary, score_event_task
from ehrfast.io import atomic_output, check_outputs
from ehrfast.model.checkpoint import load_checkpoint
from ehrfast.predictions import label_table, prediction_table, read_labels, strict_path, write_predictions
from ehrfast.task import EventTask, Task, load_task
from ehrfast.tokenize.dataset import TokenizedDataset

TRAJECTORY_SCHEMA = pa.schema([
    ("subject_id", pa.int64()),
    ("prediction_time", pa.timestamp("us")),
    ("sample", pa.int32()),
    ("step", pa.int32()),
    ("code", pa.string()),  # the generated token
    ("elapsed_us", pa.float64()),  # model time after this token, from the prediction time
    ("time", pa.timestamp("us")),  # prediction_time + elapsed_us
    # the path's Monte-Carlo draw landed in the target set at this step (first time only); the
    # written tokens are the survival path the path probability follows, never a target token
    ("target_drawn", pa.bool_()),
])


@dataclass
class ScoreSummary:
    """What ``score_cohort`` did: subjects scored, the task's matched target tokens, labelled
    subjects not in the split, tokens generated, ranks, seconds."""

    out_path: str
    task: str
    targets_matched: int
    subjects: int
    labelled_not_in_split: int
    tokens_generated: int
    ranks: int
    seconds: float

    def describe(self) -> str:
        unmatched = f"; {self.labelled_not_in_split:,} label rows without a subject here" if self.labelled_not_in_split else ""
        return (f"scored {self.subjects:,} subjects for {self.task} ({self.targets_matched} target tokens) -> {self.out_path} in "
                f"{self.seconds:.1f} s on {self.ranks} rank(s); {self.tokens_generated:,} tokens generated" + unmatched)


def sampling_settings(task: Task, stop_ids, seed: int) -> SamplingSettings:
    """The sampler's settings for ``task`` (its horizon, samples, token cap, temperature, top-p
    and aggregation) with the vocabulary's ``stop_ids`` and the run's ``seed``."""
    return SamplingSettings(horizon_us=task.horizon_us, n_samples=task.n_samples, max_new_tokens=task.max_new_tokens,
                            temperature=task.temperature, top_p=task.top_p, stop_ids=tuple(stop_ids), aggregation=task.aggregation,
                            seed=seed)


def score_cohort(checkpoint: str | os.PathLike, data_dir: str | os.PathLike, labels_path: str | os.PathLike,
                 task: Task | EventTask | str | os.PathLike, out_path: str | os.PathLike, options: ScoreOptions | None = None, *,
                 meds_dir: str | os.PathLike | None = None, prs_path: str | os.PathLike | None = None,
                 trajectories_path: str | os.PathLike | None = None, samples_path: str | os.PathLike | None = None,
                 overwrite: bool = False, progress: bool = True, cluster=None) -> ScoreSummary | EventScoreSummary:
    """``data_dir`` is one split's TokenizedDataset; ``task`` a task, a task file or a catalog
    name. Returns a summary. ``trajectories_path`` (incidence tasks): also write every sampled
    future (``TRAJECTORY_SCHEMA``, one row per generated token) for inspection. An event task
    (ETHOS-ARES) is scored per anchor by ``score_events.score_event_task`` (predictions v2);
    ``samples_path`` then also writes every sample's first event.

    Under ``torchrun`` (WORLD_SIZE > 1) each rank scores every world-th labelled subject on its
    own GPU (LOCAL_RANK); rank 0 gathers the predictions and writes ``out_path``, which equals a
    one-process run's (the random stream is keyed by subject and sample, not by batch). Each
    rank writes its own trajectories, to ``<stem>.rank<r>.parquet`` beside ``trajectories_path``.

    ``cluster`` (``ehrfast.cluster``; CPU only): one Dask task per block of labelled subjects,
    the model sent once to each worker; the predictions are put back in label order and written
    by this process (with ``options.deterministic``, the bytes of a one-process run), the
    trajectories joined in block order into one file."""
    t0 = time.perf_counter()
    options = options or ScoreOptions()
    source = task if not isinstance(task, Task | EventTask) else None
    check_outputs(files=[out_path, strict_path(out_path) if options.strict_copy else None, trajectories_path, samples_path],
                  inputs=[checkpoint, data_dir, labels_path, source, meds_dir, prs_path], overwrite=overwrite)
    task = load_task(task)
    if isinstance(task, EventTask):
        if trajectories_path is not None:
            raise InvalidInputError(f"task {task.name!r} is an event task: it writes each sample's first event with samples_path "
                                    "(--samples), not trajectories")
        return score_event_task(checkpoint, data_dir, labels_path, task, out_path, options, prs_path=prs_path, samples_path=samples_path,
                                overwrite=overwrite, progress=progress, cluster=cluster)
    if samples_path is not None:
        raise InvalidInputError(f"task {task.name!r} is an incidence task: samples_path (--samples) is for event tasks")
    ranks, device = distributed.join(options.device)
    check_cluster_scoring(cluster, device, ranks.world)
    if trajectories_path is not None and ranks.distributed:
        path = Path(trajectories_path)
        trajectories_path = path.with_name(f"{path.stem}.rank{ranks.rank}{path.suffix}")
    check_outputs(files=[out_path, strict_path(out_path) if options.strict_copy else None, trajectories_path],
                  inputs=[checkpoint, data_dir, labels_path, source, meds_dir, prs_path],
                  overwrite=overwrite)
    model = load_checkpoint(checkpoint, map_location=device)
    ds = TokenizedDataset(data_dir)
    if len(ds.vocab) != model.config.vocab_size:
        raise InvalidInputError(f"{data_dir} has {len(ds.vocab)} tokens but the model {checkpoint} expects {model.config.vocab_size}")
    labels = read_labels(labels_path)
    descriptions = code_descriptions(meds_dir) if meds_dir else {}
    targets = task.target_token_ids(ds.vocab, descriptions)
    if not len(targets):
        raise InvalidInputError(f"task {task.name!r}: no vocabulary token matches its target patterns")
    stops = [ds.vocab.id(t) for t in task.stop_tokens if t in ds.vocab]
    window = model.config.token_window
    sids = labels.column("subject_id").to_numpy()
    pts = labels.column("prediction_time").cast(pa.int64()).to_numpy()
    keep = ds.labelled_rows(sids, pts, str(labels_path), options.min_overlap)
    sids, pts = sids[keep], pts[keep]
    rows = _IncidenceRows(
        str(data_dir), None if prs_path is None else str(prs_path), sids, pts,
        # contexts are cut so that the KV cache fits whenever K <= half the window
        context_len=max(window - min(task.max_new_tokens, window // 2), 1), history_us=task.history_us, targets=targets,
        durations_us=ds.vocab.interval_duration_us("mean"), settings=sampling_settings(task, stops, options.seed), window=window,
        deterministic=options.deterministic, token_names=ds.vocab.decode(range(len(ds.vocab))) if trajectories_path else None)

    bar = tqdm(total=len(sids), desc=f"score {task.name}", unit="subject", disable=not progress or not ranks.is_main)
    with contextlib.ExitStack() as stack:
        tmp_trajectories = None if trajectories_path is None else stack.enter_context(atomic_output(trajectories_path, overwrite))
        cl = stack.enter_context(connect(cluster))
        n_ranks = ranks.world if cl is None else cl.n_workers
        if cl is None:
            mine = distributed.shard(np.arange(len(sids)), ranks)  # this rank's labelled rows
            sink = None
            if tmp_trajectories is not None:
                writer = stack.enter_context(pq.ParquetWriter(tmp_trajectories, TRAJECTORY_SCHEMA))
                sink = _trajectory_writer(writer, rows.token_names, sids[mine], pts[mine])
            # a rank may get no subject (more ranks than labels): sampling nothing returns empty arrays
            res = _gathered(_sample_rows(mine, rows, model, ds, device, bar.update, sink), mine, len(sids), ranks)
        else:
            res = _sampled_on_cluster(cl, rows, model, ds, bar.update, task.name, tmp_trajectories)
    bar.close()
    if ranks.is_main:
        lo, hi = binomial_interval(res.sample_hit.sum(1), task.n_samples)  # exact (Clopper-Pearson), as reports use
        probability = res.path_probability.astype(np.float32)
        table = prediction_table(
            label_table(sids, pts, labels.column("boolean_value").filter(pa.array(keep))),
            probability, options.model_name or Path(checkpoint).name,
            {"path_probability": probability, "mc_frequency": res.mc_frequency.astype(np.float32),
             "n_samples": np.full(len(sids), task.n_samples, np.int32), "ci_low": lo.astype(np.float32), "ci_high": hi.astype(np.float32),
             "risk_level": risk_level(res.path_probability).astype(np.int8), "tokens_generated": res.tokens_generated})
        write_predictions(out_path, table, strict_copy=options.strict_copy, overwrite=overwrite)
    distributed.barrier(ranks)
    return ScoreSummary(str(out_path), task.name, int(len(targets)), int(len(sids)), int((~keep).sum()), int(res.tokens_generated.sum()),
                        n_ranks, round(time.perf_counter() - t0, 2))


@dataclass(frozen=True)
class _IncidenceRows:
    """The labelled rows of an incidence run and how each is sampled — what every block needs
    (sent once to each worker of a cluster). ``sids``/``pts`` [n] int64 (µs)."""

    data_dir: str
    prs_path: str | None
    sids: np.ndarray
    pts: np.ndarray
    context_len: int
    history_us: float | None
    targets: np.ndarray
    durations_us: np.ndarray
    settings: SamplingSettings
    window: int
    deterministic: bool
    token_names: list[str] | None  # with trajectories only


def _sample_rows(mine: np.ndarray, rows: _IncidenceRows, model, ds: TokenizedDataset, device: str, progress=None,
                 sink=None) -> SamplingResult:
    """Samples the futures of label rows ``mine`` (indices into ``rows``)."""
    contexts = [ds.context(int(rows.sids[i]), int(rows.pts[i]), max_tokens=rows.context_len, history_us=rows.history_us)[0] for i in mine]
    prs = model_prs_rows(model.config.modality, rows.prs_path, rows.sids[mine])
    decoder = decoder_for(model, contexts, rows.settings.max_new_tokens, device, rows.deterministic)
    with reproducible_threads(rows.deterministic, device):
        return sample_trajectories(decoder, contexts, rows.targets, rows.durations_us, rows.settings, subject_keys=rows.sids[mine], prs=prs,
                                   window=rows.window, device=device, progress=progress, trajectory_sink=sink)


def _sampled_on_cluster(cl, rows: _IncidenceRows, model, ds: TokenizedDataset, progress, name: str,
                        tmp_trajectories: str | None) -> SamplingResult:
    """Every label row sampled on the cluster, one task per block of rows; the model and the
    rows are sent once to each worker. Trajectories: each task writes its block's to a part
    file beside the output, joined in block order into ``tmp_trajectories``."""
    blocks = row_blocks(len(rows.sids), cl.n_workers)
    if not blocks:  # nothing to sample: empty results of the right shapes
        return _sample_rows(np.zeros(0, np.int64), rows, model, ds, "cpu")
    with contextlib.ExitStack() as stack:
        parts_dir = None
        if tmp_trajectories is not None:
            where = Path(tmp_trajectories)
            parts_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{where.name}.", suffix=".parts", dir=where.parent))
        results = map_tasks(cl, _block_task, blocks, labels=[block_label(f"score {name}", b, rows.sids) for b in blocks], name="score",
                            progress=progress, sizes=[len(b) for b in blocks], args=(cl.broadcast(rows), cl.broadcast(model), parts_dir))
        if parts_dir is not None:
            join_parts([part_path(parts_dir, b) for b in blocks], tmp_trajectories, TRAJECTORY_SCHEMA)
    return assembled(list(zip(blocks, results, strict=True)), len(rows.sids))


def _block_task(mine: np.ndarray, rows: _IncidenceRows, model, parts_dir: str | None) -> SamplingResult:
    """One cluster task: a block of label rows on this worker's CPU (its dataset opened once)."""
    ds = opened(("tokens", rows.data_dir), lambda: TokenizedDataset(rows.data_dir))
    if parts_dir is None:
        return _sample_rows(mine, rows, model, ds, "cpu")
    part = part_path(parts_dir, mine)
    tmp = part.with_suffix(".tmp")  # a rerun of a task whose worker died writes its part again, whole
    with pq.ParquetWriter(tmp, TRAJECTORY_SCHEMA) as writer:
        res = _sample_rows(mine, rows, model, ds, "cpu", sink=_trajectory_writer(writer, rows.token_names, rows.sids[mine], rows.pts[mine]))
    os.replace(tmp, part)
    return res


def _gathered(res: SamplingResult, mine: np.ndarray, n: int, ranks) -> SamplingResult:
    """Every rank's results put back in label order (the result itself with one rank)."""
    if not ranks.distributed:
        return res
    return assembled(distributed.gather((mine, res), ranks), n)


def _trajectory_writer(writer: pq.ParquetWriter, token_names: list[str], sids: np.ndarray, pts: np.ndarray):
    """A ``trajectory_sink`` that appends each batch of subjects' paths to ``writer``, one row per
    generated token (a path's tokens after it finished are not written)."""
    names = np.asarray(token_names, dtype=object)

    def write(group: np.ndarray, tokens: np.ndarray, elapsed: np.ndarray, counts: np.ndarray, first_hit: np.ndarray) -> None:
        g, n, steps = tokens.shape
        generated = np.arange(steps)[None, None, :] < counts[:, :, None]  # [g, N, steps]
        subject, sample, step = np.nonzero(generated)
        offset = elapsed[subject, sample, step]
        start = pts[group][subject]
        writer.write_table(pa.table({
            "subject_id": pa.array(sids[group][subject], pa.int64()),
            "prediction_time": pa.array(start, pa.int64()).cast(pa.timestamp("us")),
            "sample": pa.array(sample.astype(np.int32)),
            "step": pa.array(step.astype(np.int32)),
            "code": pa.array(names[tokens[subject, sample, step]], pa.string()),
            "elapsed_us": pa.array(offset),
            "time": pa.array(start + np.round(offset).astype(np.int64), pa.int64()).cast(pa.timestamp("us")),
            "target_drawn": pa.array(first_hit[subject, sample] == step),
        }, schema=TRAJECTORY_SCHEMA))

    return write
