"""The training loop: AdamW, warm-up then linear or cosine decay, gradient clipping, bf16 autocast
on CUDA, periodic validation loss, checkpoints that resume to the same next step."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ehrfast import distributed
from ehrfast.backends import torch_device
from ehrfast.errors import InvalidInputError, NonFiniteResultError, OutputExistsError
from ehrfast.genomics.matrix import read_prs_matrix
from ehrfast.inputs import JoinReport
from ehrfast.io import check_no_overlap, check_replaceable, has_marker, write_marker
from ehrfast.model import GPT, GPTConfig
from ehrfast.model.checkpoint import load_checkpoint, save_checkpoint
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.train.batches import PAD_ID, Batch, BatchSampler
from ehrfast.train.config import TrainConfig

# Training losses are read from the device every this many steps, not every step: a read waits
# for the GPU to finish the step, so the host could not queue the next one meanwhile.
LOSS_READ_EVERY = 16


@dataclass
class TrainSummary:
    """What a training run did (``history.json`` holds the same): losses by step, throughput,
    the PRS traits read, and whether the run reached its last step (else it paused)."""

    out_dir: str
    steps_done: int
    finished: bool
    train_loss: list[float]
    val_loss: list[tuple[int, float]]
    traits: list[str]
    train_subjects: int
    world_size: int
    config: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    tokens_per_second: float | None = None
    prs_join: str | None = None  # JoinReport.describe() of training subjects × PRS subjects

    @classmethod
    def of(cls, history: dict, out_dir: Path, steps_done: int, finished: bool) -> TrainSummary:
        return cls(str(out_dir), steps_done, finished, list(history["train_loss"]), [tuple(v) for v in history["val_loss"]],
                   list(history["traits"]), int(history["train_subjects"]), int(history["world_size"]), history["config"],
                   history["model"], history.get("tokens_per_second"), history.get("prs_join"))

    def describe(self) -> str:
        cfg = self.config
        vals = ", ".join(f"step {s}: {v:.3f}" for s, v in self.val_loss)
        if not self.finished:
            return f"paused {cfg['preset']} ({cfg['modality']}) after {self.steps_done} steps -> {self.out_dir}/last; validation loss {vals}"
        lines = [f"trained {cfg['preset']} ({cfg['modality']}) for {self.steps_done} steps -> {self.out_dir}/model; validation loss {vals}"]
        if self.tokens_per_second is not None:
            lines.append(f"  {self.tokens_per_second:,.0f} real tokens/s on {cfg['device']}")
        if self.prs_join:
            lines.append(f"  PRS: {self.prs_join}")
        return "\n".join(lines)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimizer step ``step`` (0-based). ``linear``: warm-up to lr over
    ``warmup_steps`` (step + 1 of them), then linear decay to ``min_lr_ratio``·lr at the last step.
    ``cosine`` (the ETHOS-ARES reference's nanoGPT schedule, ARES.md S14): lr·step/warmup before
    the warm-up ends, min_lr after ``lr_decay_steps``, and between them
    min_lr + ½(1 + cos(π·(step − warmup)/(lr_decay_steps − warmup)))·(lr − min_lr)."""
    if cfg.schedule == "cosine":
        min_lr = cfg.lr * cfg.min_lr_ratio
        if step < cfg.warmup_steps:
            return cfg.lr * step / cfg.warmup_steps
        if step > cfg.lr_decay_steps:
            return min_lr
        ratio = (step - cfg.warmup_steps) / (cfg.lr_decay_steps - cfg.warmup_steps)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - min_lr)
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (1 - (1 - cfg.min_lr_ratio) * min(frac, 1.0))


def token_loss(model: GPT, batch: Batch, device, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy; pad targets and targets across a subject boundary are ignored."""
    config = getattr(model, "module", model).config  # a DDP wrapper keeps the model in .module
    idx = batch.idx.to(device)
    inputs, targets = idx[:, :-1], idx[:, 1:].clone()
    seg = batch.segment_ids.to(device) if batch.segment_ids is not None else None
    if seg is not None:
        targets[seg[:, 1:] != seg[:, :-1]] = PAD_ID
    prs = batch.prs.to(device) if batch.prs is not None else None
    if config.modality == "none":
        prs = None
    if seg is not None:
        logits = model(inputs, prs=prs, segment_ids=seg[:, :-1])
    else:
        logits = model(inputs, prs=prs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=PAD_ID, reduction=reduction)


def _autocast(device):
    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def evaluate_loss(model: GPT, sampler: BatchSampler, n_batches: int, device) -> float:
    model.eval()
    losses = []
    with torch.no_grad(), _autocast(device):
        for _ in range(n_batches):
            losses.append(float(token_loss(model, sampler.next(), device)))
    model.train()
    return float(np.mean(losses))


def train(data_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: TrainConfig | None = None, *,
          prs_path: str | os.PathLike | None = None, resume: bool = False, overwrite: bool = False,
          stop_after: int | None = None, progress: bool = True) -> dict:
    """Trains a GPT on ``data_dir/train`` (validation on ``data_dir/tuning``) and writes the
    final checkpoint to ``out_dir/model`` (``out_dir/last`` holds the resumable state; with
    ``stop_after`` the run pauses there after that many steps, to be continued with
    ``resume=True``). Returns a summary of the run. Under ``torchrun`` (WORLD_SIZE > 1) every
    rank trains a DDP replica on its own disjoint shard of the training subjects, with
    ``batch_size`` rows per rank; rank 0 writes the checkpoints.

    An existing ``out_dir`` is continued with ``resume`` (it must hold a resumable state),
    started afresh with ``overwrite`` (only a run directory ehrfast wrote), and refused
    otherwise."""
    cfg = cfg or TrainConfig()
    torch_device(cfg.device)
    ranks, device = distributed.join(cfg.device)
    cfg = replace(cfg, device=device)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    _check_run_directory(out_dir, [data_dir, prs_path], resume, overwrite, ranks)
    train_ds, val_ds = TokenizedDataset(data_dir / "train"), TokenizedDataset(data_dir / "tuning")
    torch.manual_seed(cfg.seed)
    prs_train = prs_val = None
    prs_join = None
    traits: list[str] = []
    if cfg.modality != "none":
        if prs_path is None:
            raise InvalidInputError(f"modality {cfg.modality!r} needs --prs PRS.parquet")
        matrix = read_prs_matrix(prs_path)
        prs_train, prs_val, traits = matrix.rows_for(train_ds.subject_ids), matrix.rows_for(val_ds.subject_ids), matrix.traits
        with_prs = int((~np.isnan(prs_train).all(1)).sum())
        prs_join = JoinReport("training subjects", len(train_ds), f"subjects with PRS in {prs_path}", len(matrix.subject_ids),
                              with_prs).check(cfg.min_prs_overlap, option="--min-prs-overlap", where=f"train {data_dir / 'train'}",
                                              warn=False).describe()  # subjects without PRS are normal: the summary says how many
    subjects = np.arange(len(train_ds))
    if prs_train is not None and cfg.missing_prs == "exclude":
        subjects = np.flatnonzero(~np.isnan(prs_train).all(1))
    subjects = distributed.shard(subjects, ranks)
    model_cfg = GPTConfig.preset(cfg.preset, vocab_size=len(train_ds.vocab), modality=cfg.modality, n_prs_traits=len(traits))
    if cfg.seq_len > model_cfg.token_window:
        raise InvalidInputError(f"seq_len {cfg.seq_len} does not fit the {cfg.preset} preset's window of {model_cfg.block_size}")
    _create_run_directory(out_dir, overwrite, ranks)  # only now: a refused run leaves no directory behind
    model = GPT(model_cfg).to(cfg.device)
    opt = _optimizer(model, cfg)
    sampler = BatchSampler(train_ds, cfg.seq_len, cfg.batch_size, cfg.seed + 1000 * ranks.rank, prs_train, cfg.pack, subjects)
    history: dict = {"train_loss": [], "val_loss": [], "config": asdict(cfg), "model": model_cfg.to_dict(), "traits": traits,
                     "prs_missing": cfg.missing_prs, "prs_join": prs_join, "train_subjects": int(distributed.total(len(sampler.subjects), ranks)),
                     "world_size": ranks.world}
    step = 0
    state_path = out_dir / "last"
    if resume:
        model = load_checkpoint(state_path, map_location=cfg.device).train()
        opt = _optimizer(model, cfg)
        saved = torch.load(state_path / "trainer.pt", weights_only=False)
        saved.setdefault("samplers", [saved.get("sampler")])  # states written before multi-rank training
        if len(saved["samplers"]) != ranks.world:
            raise InvalidInputError(f"{state_path}: saved by {len(saved['samplers'])} ranks, resumed with {ranks.world}")
        opt.load_state_dict(saved["optimizer"])
        sampler.set_state(saved["samplers"][ranks.rank])
        torch.set_rng_state(saved["torch_rng"])
        step, history = saved["step"], saved["history"]
    model.train()
    trained = model
    if ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=not progress or not ranks.is_main)
    t0, tokens = time.perf_counter(), 0
    unread: list[torch.Tensor] = []  # losses still on the device
    while step < cfg.steps and (stop_after is None or step < stop_after):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        batch = sampler.next()
        with _autocast(cfg.device):
            loss = token_loss(trained, batch, cfg.device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        tokens += batch.n_real_tokens
        unread.append(loss.detach())
        bar.update(1)
        if len(unread) == LOSS_READ_EVERY:
            _read_losses(unread, history, bar)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            _read_losses(unread, history, bar)
            val = BatchSampler(val_ds, cfg.seq_len, cfg.batch_size, cfg.seed + 1 + 1000 * ranks.rank, prs_val, cfg.pack)
            val_loss = distributed.total(evaluate_loss(model, val, cfg.eval_batches, cfg.device), ranks) / ranks.world
            history["val_loss"].append((step, val_loss))
            _save_state(model, opt, sampler, step, history, state_path, data_dir, ranks)
    _read_losses(unread, history, bar)
    bar.close()
    distributed.check_in_sync(model, ranks)
    if step < cfg.steps:  # paused: the resumable state is all there is to write
        _save_state(model, opt, sampler, step, history, state_path, data_dir, ranks)
        return TrainSummary.of(history, out_dir, step, finished=False)
    history["tokens_per_second"] = distributed.total(tokens, ranks) / max(time.perf_counter() - t0, 1e-9)
    if ranks.is_main:
        save_checkpoint(model, out_dir / "model", tokenizer_dir=data_dir, extra={"step": step, "traits": traits}, overwrite=True)
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    distributed.barrier(ranks)
    return TrainSummary.of(history, out_dir, step, finished=True)


RUN_FILES = ("model", "last", "history.json")  # what a training run writes into its directory


def _check_run_directory(out_dir: Path, inputs: list, resume: bool, overwrite: bool, ranks: distributed.Ranks) -> None:
    """Checks ``out_dir`` against the resume / overwrite rule (every rank, before any work)."""
    check_no_overlap([out_dir], inputs)
    if resume and overwrite:
        raise InvalidInputError("give --resume (continue the run) or --overwrite (start it afresh), not both")
    state = out_dir / "last" / "trainer.pt"
    if resume:
        if not state.exists():
            raise InvalidInputError(f"{out_dir}: nothing to resume (no {state.relative_to(out_dir)}); drop --resume to start a new run")
    elif out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not overwrite:
            raise OutputExistsError(f"{out_dir} already exists (pass --resume to continue that run, or overwrite=True / --overwrite "
                                    "to start it afresh)")
        check_replaceable(out_dir, overwrite, directory=True)


def _create_run_directory(out_dir: Path, overwrite: bool, ranks: distributed.Ranks) -> None:
    """Rank 0 creates ``out_dir`` (checked by ``_check_run_directory``), marked as an ehrfast run,
    clearing a previous run's files under ``overwrite``."""
    distributed.barrier(ranks)  # every rank has checked before rank 0 changes anything
    if ranks.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in RUN_FILES:
                path = out_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        if not has_marker(out_dir):
            write_marker(out_dir, "train-run")
    distributed.barrier(ranks)


def _read_losses(unread: list[torch.Tensor], history: dict, bar) -> None:
    """Moves the losses still on the device into the history, in one transfer."""
    if unread:
        values = torch.stack(unread).float().tolist()
        if not all(math.isfinite(v) for v in values):
            step = len(history["train_loss"]) + next(i for i, v in enumerate(values) if not math.isfinite(v))
            raise NonFiniteResultError(f"training loss is {values[step - len(history['train_loss'])]} at step {step}: the run diverged "
                                       "(lower --lr, keep --grad-clip); nothing after the last saved state (OUT/last) was written")
        history["train_loss"].extend(values)
        bar.set_postfix(loss=f"{values[-1]:.3f}")
        unread.clear()


def _optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, LayerNorms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                             betas=(0.9, cfg.beta2))


def _save_state(model, opt, sampler, step, history, path: Path, data_dir: Path, ranks: distributed.Ranks) -> None:
    """Rank 0 writes the model, optimizer and every rank's batch-sampler state (replicas are equal)."""
    samplers = distributed.gather(sampler.state(), ranks)
    if ranks.is_main:
        save_checkpoint(model, path, tokenizer_dir=data_dir, extra={"step": step}, overwrite=True)
        torch.save({"optimizer": opt.state_dict(), "samplers": samplers, "torch_rng": torch.get_rng_state(), "step": step,
                    "history": history}, path / "trainer.pt")
    distributed.barrier(ranks)


def per_subject_loss(model: GPT, ds: TokenizedDataset, prs_rows: np.ndarray | None = None, max_tokens: int | None = None,
                     device="cpu") -> np.ndarray:
    """Mean next-token loss of each subject's timeline (the last ``max_tokens`` tokens, default the
    model window): [n_subjects] float64, for the paired tests of the evaluation."""
    model.eval()
    window = max_tokens or model.config.token_window
    out = np.full(len(ds), np.nan)
    with torch.no_grad():
        for i in range(len(ds)):
            tokens, _ = ds.timeline(i)
            tokens = tokens[-(window + 1):]
            if len(tokens) < 2:
                continue
            idx = torch.from_numpy(tokens.astype(np.int64))[None].to(device)
            prs = None
            if model.config.modality != "none" and prs_rows is not None:
                prs = torch.from_numpy(prs_rows[i : i + 1]).to(device)
            logits = model(idx[:, :-1], prs=prs)
            out[i] = float(F.cross_entropy(logits[0].float(), idx[0, 1:]))
    return out


__all__ = ["TrainConfig", "TrainSummary", "learning_rate", "per_subject_loss", "train"]
