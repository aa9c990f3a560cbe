"""``ehrfast score``: zero-shot risk for every (subject, prediction time) of a label file, by
sampling futures from a trained model (``sample_trajectories``: KV-cache decoding, on CUDA with
CUDA graphs and the sampling kernel). Writes predictions in the MEDS label schema plus
ehrfast's columns, and optionally the sampled futures themselves."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast.infer.decoders import CachedDecoder, RecomputeDecoder
from ehrfast.infer.sampler import SamplingResult, risk_level, sample_trajectories, wilson_interval
from ehrfast.infer.task import Task, code_descriptions
from ehrfast.io import atomic_output, check_outputs
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.train import distributed
from ehrfast.train.checkpoint import load_checkpoint
from ehrfast.train.loop import prs_rows_for

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

STRICT_COLUMNS = ("subject_id", "prediction_time", "boolean_value", "predicted_boolean_value", "predicted_boolean_probability")


def score_cohort(checkpoint: str | os.PathLike, data_dir: str | os.PathLike, labels_path: str | os.PathLike, task: Task,
                 out_path: str | os.PathLike, *, meds_dir: str | os.PathLike | None = None, prs_path: str | os.PathLike | None = None,
                 seed: int = 0, device: str = "cpu", model_name: str | None = None, strict_copy: bool = False,
                 trajectories_path: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """``data_dir`` is one split's TokenizedDataset. Returns a summary (targets matched, counts,
    time). ``trajectories_path``: also write every sampled future (``TRAJECTORY_SCHEMA``, one
    row per generated token) for inspection.

    Under ``torchrun`` (WORLD_SIZE > 1) each rank scores every world-th labelled subject on its
    own GPU (LOCAL_RANK); rank 0 gathers the predictions and writes ``out_path``, which equals a
    one-process run's (the random stream is keyed by subject and sample, not by batch). Each
    rank writes its own trajectories, to ``<stem>.rank<r>.parquet`` beside ``trajectories_path``."""
    t0 = time.perf_counter()
    ranks, device = distributed.join(device)
    if trajectories_path is not None and ranks.distributed:
        path = Path(trajectories_path)
        trajectories_path = path.with_name(f"{path.stem}.rank{ranks.rank}{path.suffix}")
    check_outputs(files=[out_path, _strict_path(out_path) if strict_copy else None, trajectories_path],
                  inputs=[checkpoint, data_dir, labels_path, meds_dir, prs_path], overwrite=overwrite)
    model = load_checkpoint(checkpoint, map_location=device)
    ds = TokenizedDataset(data_dir)
    if len(ds.vocab) != model.config.vocab_size:
        raise ValueError(f"{data_dir} has {len(ds.vocab)} tokens but the model {checkpoint} expects {model.config.vocab_size}")
    labels = pq.read_table(labels_path)
    for col in ("subject_id", "prediction_time", "boolean_value"):
        if col not in labels.column_names:
            raise ValueError(f"{labels_path}: missing column '{col}'")
    descriptions = code_descriptions(meds_dir) if meds_dir else {}
    targets = task.target_token_ids(ds.vocab, descriptions)
    if not len(targets):
        raise ValueError(f"task {task.name!r}: no vocabulary token matches its target patterns")
    stops = [ds.vocab.id(t) for t in task.stop_tokens if t in ds.vocab]
    window = model.config.token_window
    context_len = max(window - min(task.max_new_tokens, window // 2), 1)
    sids = labels.column("subject_id").to_numpy()
    pts = labels.column("prediction_time").cast(pa.int64()).to_numpy()
    in_split = set(np.asarray(ds.subject_ids).tolist())
    keep = np.array([s in in_split for s in sids.tolist()], bool)
    if not keep.any():
        raise ValueError(f"none of the {len(sids)} labelled subjects of {labels_path} is in {data_dir}")
    sids, pts = sids[keep], pts[keep]
    mine = distributed.shard(np.arange(len(sids)), ranks)  # this rank's labelled rows
    contexts = [ds.context(int(sids[i]), int(pts[i]), max_tokens=context_len, history_us=task.history_us)[0] for i in mine]
    prs = None
    if model.config.modality != "none":
        if prs_path is None:
            raise ValueError(f"the model reads PRS ({model.config.modality}); pass prs_path / --prs")
        rows, _ = prs_rows_for(ds, prs_path)
        prs = np.stack([rows[ds.row(int(sids[i]))] for i in mine]) if len(mine) else None

    def forward(idx, prs=None):
        return model(idx, prs=prs) if prs is not None else model(idx)

    # the KV-cache decoder when every context leaves room for K new tokens (contexts are cut so
    # that they do whenever K <= half the window); else recompute with a sliding window
    cached = CachedDecoder(model, task.max_new_tokens, device)
    decoder = cached if all(cached.fits(len(c)) for c in contexts) else RecomputeDecoder(forward, window, device)
    bar = tqdm(total=len(contexts), desc=f"score {task.name}", unit="subject", disable=not progress or not ranks.is_main)
    with contextlib.ExitStack() as stack:
        sink = None
        if trajectories_path is not None:
            writer = stack.enter_context(pq.ParquetWriter(stack.enter_context(atomic_output(trajectories_path, overwrite)),
                                                          TRAJECTORY_SCHEMA))
            sink = _trajectory_writer(writer, ds.vocab.decode(range(len(ds.vocab))), sids[mine], pts[mine])
        # a rank may get no subject (more ranks than labels): sampling nothing returns empty arrays
        res = sample_trajectories(decoder, contexts, targets, ds.vocab.interval_duration_us("mean"), horizon_us=task.horizon_us,
                                  n_samples=task.n_samples, max_new_tokens=task.max_new_tokens, temperature=task.temperature,
                                  top_p=task.top_p, stop_ids=stops, aggregation=task.aggregation, seed=seed, subject_keys=sids[mine],
                                  prs=prs, window=window, device=device, progress=bar.update, trajectory_sink=sink)
    bar.close()
    res = _gathered(res, mine, len(sids), ranks)
    summary = {"task": task.name, "targets_matched": int(len(targets)), "subjects": int(len(sids)), "labelled_not_in_split": int((~keep).sum()),
               "tokens_generated": int(res.tokens_generated.sum()), "ranks": ranks.world}
    if ranks.is_main:
        _write_predictions(res, labels.column("boolean_value").filter(pa.array(keep)), sids, pts, task, model_name or Path(checkpoint).name,
                           out_path, strict_copy, overwrite)
    distributed.barrier(ranks)
    return {**summary, "seconds": round(time.perf_counter() - t0, 2)}


def _gathered(res: SamplingResult, mine: np.ndarray, n: int, ranks) -> SamplingResult:
    """Every rank's results put back in label order (the result itself with one rank)."""
    if not ranks.distributed:
        return res
    parts = distributed.gather((mine, res), ranks)
    fields = {f: np.zeros((n, *getattr(res, f).shape[1:]), getattr(res, f).dtype) for f in SamplingResult.__dataclass_fields__}
    for rows, part in parts:
        for f, array in fields.items():
            array[rows] = getattr(part, f)
    return SamplingResult(**fields)


def _strict_path(out_path) -> Path:
    """Where the copy with only meds-evaluation's columns goes: ``<stem>_strict.parquet``."""
    return Path(out_path).with_name(Path(out_path).stem + "_strict.parquet")


def _write_predictions(res: SamplingResult, boolean_value, sids, pts, task: Task, model_name: str, out_path, strict_copy: bool,
                       overwrite: bool) -> None:
    lo, hi = wilson_interval(res.sample_hit.sum(1), task.n_samples)
    prob = res.path_probability.astype(np.float32)
    table = pa.table({
        "subject_id": pa.array(sids, pa.int64()),
        "prediction_time": pa.array(pts.astype(np.int64), pa.int64()).cast(pa.timestamp("us")),
        "boolean_value": boolean_value,
        "predicted_boolean_value": pa.array(prob >= 0.5),
        "predicted_boolean_probability": pa.array(prob),
        "path_probability": pa.array(res.path_probability.astype(np.float32)),
        "mc_frequency": pa.array(res.mc_frequency.astype(np.float32)),
        "n_samples": pa.array(np.full(len(sids), task.n_samples, np.int32)),
        "ci_low": pa.array(lo.astype(np.float32)),
        "ci_high": pa.array(hi.astype(np.float32)),
        "risk_level": pa.array(risk_level(res.path_probability).astype(np.int8)),
        "tokens_generated": pa.array(res.tokens_generated),
        "model": pa.array([model_name] * len(sids)),
    })
    with atomic_output(out_path, overwrite) as tmp:
        pq.write_table(table, tmp)
    if strict_copy:
        with atomic_output(_strict_path(out_path), overwrite) as tmp:
            pq.write_table(table.select(list(STRICT_COLUMNS)), tmp)


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
