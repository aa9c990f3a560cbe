"""Training throughput: ehrfast (packed rows, fused cross-attention) vs Hugging Face GPT-2 trained
the genomics paper's way (one subject per row, left-padded to the window).

Both train the ``paper`` preset with cross-attention (960 wide, 12 layers, 8 heads, window
2,048, 10 soft tokens from the same PRS encoder) on the synthetic cohort, bf16 autocast,
fused AdamW, with the same number of token positions per step (rows × window):

* ehrfast: ``BatchSampler(pack=True)`` — subjects' timelines packed back to back, each row's
  subjects separated by segment ids (block-diagonal causal self-attention, each subject
  reading its own soft tokens through the Triton cross-attention kernel);
* Hugging Face: ``GPT2LMHeadModel(add_cross_attention=True)``, one subject per row,
  left-padded with an attention mask and position ids, soft tokens as
  ``encoder_hidden_states``.

Reported: real (non-pad) tokens/s — the measure that matters, since pad positions train
nothing — all positions/s, peak memory, and MFU: model FLOPs of the real tokens
(6·params + 12·layers·width·window per token, nanoGPT's estimate, plus cross-attention) over
the GPU's peak (``--peak-tflops``, 989 for an H100 SXM in dense bf16). Batches are built
before timing, so the numbers are the model's, not the data loader's.

    python benchmarks/train_vs_hf.py --json out.json          # on a GPU
    python benchmarks/train_vs_hf.py --tiny --device cpu      # a smoke run anywhere
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ehrfast.genomics.matrix import read_prs_matrix
from ehrfast.model import GPT, GPTConfig, PRSEncoder
from ehrfast.train.batches import PAD_ID, BatchSampler
from ehrfast.train.loop import token_loss


def synthetic_cohort(directory: Path, n_subjects: int):
    """Generates, tokenizes and scores a synthetic cohort; returns (train split, PRS rows)."""
    from ehrfast.genomics.prs import compute_prs
    from ehrfast.synth.generator import SyntheticConfig, generate_cohort
    from ehrfast.tokenize import TokenizedDataset, tokenize_dataset

    cohort = directory / "cohort"
    generate_cohort(cohort, SyntheticConfig(n_subjects=n_subjects, seed=0), overwrite=True)
    tokenize_dataset(cohort, directory / "tokens", overwrite=True, progress=False)
    scores = sorted((cohort / "genomics" / "scores").glob("*.txt"))
    compute_prs(cohort / "genomics" / "genotypes", scores, directory / "PRS.parquet", meds_dir=cohort, overwrite=True, progress=False)
    ds = TokenizedDataset(directory / "tokens" / "train")
    rows = read_prs_matrix(directory / "PRS.parquet").rows_for(ds.subject_ids)
    return ds, rows


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def optimizer_for(params, device):
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, fused=device.type == "cuda")


def timed_steps(step, batches, warmup: int, device) -> tuple[float, list[float]]:
    """Runs ``step`` on every batch; returns (seconds over the batches after ``warmup``, losses)."""
    losses = []
    for i, batch in enumerate(batches):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        losses.append(step(batch))
    sync(device)
    return time.perf_counter() - t0, losses


def run_ehrfast(cfg: GPTConfig, batches, args, device) -> dict:
    model = GPT(cfg).to(device).train()
    opt = optimizer_for(model.parameters(), device)

    def step(batch):
        with autocast(device):
            loss = token_loss(model, batch, device)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    seconds, losses = timed_steps(step, batches, args.warmup, device)
    return {"seconds": seconds, "first_loss": float(losses[0]), "last_loss": float(losses[-1])}


def left_padded(batch, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One subject per row, right-padded by the sampler -> left-padded (ids, attention mask)."""
    idx = batch.idx[:, :window]
    n_real = (idx != PAD_ID).sum(1)
    shifted = torch.stack([torch.roll(row, int(window - n)) for row, n in zip(idx, n_real)])
    return shifted, shifted != PAD_ID


def run_hf(cfg: GPTConfig, batches, args, device) -> dict:
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, add_cross_attention=True, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=None, eos_token_id=None)
    hf = GPT2LMHeadModel(hf_cfg).to(device).train()
    encoder = PRSEncoder(cfg).to(device).train()
    opt = optimizer_for(list(hf.parameters()) + list(encoder.parameters()), device)

    def step(batch):
        ids, mask, prs = (t.to(device, non_blocking=True) for t in batch)
        position_ids = (mask.long().cumsum(1) - 1).clamp(min=0)
        with autocast(device):
            logits = hf(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                        encoder_hidden_states=encoder(prs)).logits
            targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(hf.parameters()) + list(encoder.parameters()), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    hf_batches = [(*left_padded(b, cfg.block_size), b.prs) for b in batches]
    seconds, losses = timed_steps(step, hf_batches, args.warmup, device)
    return {"seconds": seconds, "first_loss": float(losses[0]), "last_loss": float(losses[-1])}


def flops_per_token(cfg: GPTConfig, n_params: int) -> float:
    """Training FLOPs per token: 6·N for the weights, attention over the window (nanoGPT's
    12·L·C·T), and the cross-attention scores and sums over the soft tokens."""
    return 6 * n_params + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size + 12 * cfg.n_layer * cfg.n_embd * cfg.n_soft_tokens


def real_tokens(batches) -> int:
    """Non-pad input positions of the timed batches."""
    return int(sum(int((b.idx[:, :-1] != PAD_ID).sum()) for b in batches))


def summarize(name, result, real, positions, peak_flops, fpt, device) -> dict:
    result = dict(result, name=name, real_tokens_per_s=real / result["seconds"], positions_per_s=positions / result["seconds"])
    result["mfu"] = result["real_tokens_per_s"] * fpt / peak_flops
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    print(f"  {name:12s} {result['real_tokens_per_s']:>10,.0f} real tokens/s  {result['positions_per_s']:>10,.0f} positions/s  "
          f"MFU {result['mfu']:.1%}  loss {result['first_loss']:.2f} -> {result['last_loss']:.2f}"
          + (f"  peak {result['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in result else ""))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=4000)
    ap.add_argument("--rows", type=int, default=8, help="rows per step (× the 2,048 window = positions per step)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data", help="a directory for the synthetic cohort (default: a temporary one)")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="the tiny preset on a small cohort (smoke run)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.tiny:
        args.subjects, args.rows, args.steps, args.warmup = min(args.subjects, 300), 2, 3, 1
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ds, prs_rows = synthetic_cohort(Path(args.data or tmp), args.subjects)
    preset = "tiny" if args.tiny else "paper"
    cfg = GPTConfig.preset(preset, vocab_size=len(ds.vocab), modality="cross", n_prs_traits=prs_rows.shape[1])
    lengths = np.diff(np.asarray(ds.offsets))
    n_batches = args.warmup + args.steps
    packed = [BatchSampler(ds, cfg.block_size, args.rows, seed=1, prs_rows=prs_rows, pack=True).next() for _ in range(n_batches)]
    padded = [BatchSampler(ds, cfg.block_size, args.rows, seed=1, prs_rows=prs_rows, pack=False).next() for _ in range(n_batches)]
    positions = args.steps * args.rows * cfg.block_size
    model_params = sum(p.numel() for p in GPT(cfg).parameters())
    fpt = flops_per_token(cfg, model_params)
    print(f"{len(ds):,} training subjects, timelines of {np.median(lengths):.0f} tokens (median), {lengths.mean():.0f} (mean), "
          f"{(lengths > cfg.block_size).mean():.1%} longer than the {cfg.block_size} window; {model_params / 1e6:.1f} M parameters")
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
               "workload": vars(args), "median_timeline": float(np.median(lengths)), "params": model_params}
    ehr = run_ehrfast(cfg, packed, args, device)
    results["ehrfast"] = summarize("ehrfast", ehr, real_tokens(packed[args.warmup:]), positions, args.peak_tflops * 1e12, fpt, device)
    if not args.skip_hf:
        hf = run_hf(cfg, padded, args, device)
        results["hf"] = summarize("hf (padded)", hf, real_tokens(padded[args.warmup:]), positions, args.peak_tflops * 1e12,
                                  fpt, device)
        results["speedup_real_tokens"] = results["ehrfast"]["real_tokens_per_s"] / results["hf"]["real_tokens_per_s"]
        print(f"  ehrfast / HF in real tokens/s: {results['speedup_real_tokens']:.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
