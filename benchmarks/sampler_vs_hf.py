"""Trajectory sampling throughput: ehrfast's engine vs the Hugging Face manual KV-cache loop.

The sampler issue's workload: the ``paper`` preset with cross-attention (random weights),
256 subjects × N = 10 samples, context 1,024, K = 512 new tokens, bf16. Both engines run in
the same process on the same contexts and soft tokens:

* ehrfast: ``CachedDecoder`` (subject slots refilled as subjects finish; each history
  prefilled once and read in place by its N samples; soft-token K/V once per subject; decode
  steps replayed from a CUDA graph) + the CUDA sampling-step kernel (``--step torch`` for the
  reference step);
* Hugging Face: ``GPT2LMHeadModel(add_cross_attention=True)`` loaded with the same weights,
  N× prefill, ``past_key_values`` loop, softmax + ``torch.multinomial`` per step.

Both models hold bf16 weights (``.to(torch.bfloat16)``, as inference is run; autocast would
re-cast every weight at every step).

Reported: generated tokens/s, peak memory, and the fraction of the memory-bandwidth roofline
(bytes of weights + KV cache read per decode step at the measured step rate, against
``--hbm-tbs``, 3.35 TB/s for an H100 SXM). Durations are irrelevant here (no horizon), so
every path runs K tokens unless it draws a stop token; both engines count what they generate.

    python benchmarks/sampler_vs_hf.py                       # the acceptance workload (GPU)
    python benchmarks/sampler_vs_hf.py --tiny --device cpu   # a smoke run anywhere
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from ehrfast.infer.decoders import CachedDecoder
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.model import GPT, GPTConfig


def sample(model, contexts, target_ids, durations_us, **kw):
    """``sample_trajectories`` with the sampling settings given as keywords, as the tests write them."""
    names = {f.name for f in dataclasses.fields(SamplingSettings)}
    settings = SamplingSettings(**{k: v for k, v in kw.items() if k in names})
    return sample_trajectories(model, contexts, target_ids, durations_us, settings, **{k: v for k, v in kw.items() if k not in names})


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def ehrfast_engine(model, contexts, prs, args, device) -> dict:
    decoder = CachedDecoder(model, args.new_tokens, device, subjects_per_batch=args.subjects_per_batch)
    vocab = model.config.vocab_size
    _sync(device)
    t0 = time.perf_counter()
    res = sample(decoder, contexts, np.array([5, 6, 7]), np.zeros(vocab), horizon_us=1.0, n_samples=args.samples,
                              max_new_tokens=args.new_tokens, stop_ids=[], seed=0, prs=prs, device=device, step_backend=args.step)
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tokens": int(res.tokens_generated.sum())}


def hf_loop(hf, contexts, soft, args, device) -> dict:
    """The manual KV-cache loop people write around ``GPT2LMHeadModel``: N× prefill per subject."""
    tokens = 0
    _sync(device)
    t0 = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        per = args.subjects_per_batch
        for first in range(0, len(contexts), per):
            ctx = torch.as_tensor(np.stack(contexts[first:first + per]), device=device).repeat_interleave(args.samples, 0)
            enc = soft[first:first + per].repeat_interleave(args.samples, 0)
            out = hf(input_ids=ctx, encoder_hidden_states=enc, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1]
            for _ in range(args.new_tokens):
                token = torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=gen)
                tokens += token.shape[0]
                out = hf(input_ids=token, encoder_hidden_states=enc, past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[:, -1]
    _sync(device)
    return {"seconds": time.perf_counter() - t0, "tokens": tokens}


def measured(run, device) -> dict:
    """``run()``'s {"seconds", "tokens"} plus tokens/s and, on CUDA, the peak memory it allocated."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = run()
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return result


def roofline_fraction(cfg: GPTConfig, subjects: int, samples: int, context: int, new_tokens: int, tokens_per_s: float,
                      hbm_tbs: float) -> float:
    """Bytes a decode step must read (bf16 weights once + the KV cache: each subject's history
    once, shared by its samples, and every sample's mean number of new positions) times the
    measured steps/s, over the HBM bandwidth."""
    weights = 2 * sum(p for p in (12 * cfg.n_layer * cfg.n_embd ** 2, cfg.vocab_size * cfg.n_embd))
    if cfg.modality == "cross":
        weights += 2 * 4 * cfg.n_layer * cfg.n_embd ** 2
    rows = subjects * samples
    kv = 2 * 2 * cfg.n_layer * cfg.n_embd * (context * subjects + new_tokens / 2 * rows)
    steps_per_s = tokens_per_s / rows
    return (weights + kv) * steps_per_s / (hbm_tbs * 1e12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=256)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--subjects-per-batch", type=int, default=64)
    ap.add_argument("--step", default="auto", choices=["auto", "cuda", "torch"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--hbm-tbs", type=float, default=3.35)
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="a small model and workload (smoke run)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.tiny:
        args.subjects, args.samples, args.context, args.new_tokens, args.vocab, args.subjects_per_batch = 6, 3, 20, 8, 64, 4
    torch.manual_seed(0)
    device = torch.device(args.device)
    preset = "tiny" if args.tiny else "paper"
    cfg = GPTConfig.preset(preset, vocab_size=args.vocab, modality="cross", n_prs_traits=32)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = GPT(cfg).to(device=device, dtype=dtype).eval()
    rng = np.random.default_rng(0)
    contexts = [rng.integers(1, args.vocab, args.context) for _ in range(args.subjects)]
    prs = rng.standard_normal((args.subjects, 32)).astype(np.float32)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
               "workload": {k: getattr(args, k) for k in ("subjects", "samples", "context", "new_tokens", "vocab", "subjects_per_batch")}}
    ours = measured(lambda: ehrfast_engine(model, contexts, prs, args, device), device)
    ours["roofline_fraction"] = roofline_fraction(cfg, args.subjects_per_batch, args.samples, args.context, args.new_tokens,
                                                  ours["tokens_per_s"], args.hbm_tbs)
    results["ehrfast"] = ours
    print(f"ehrfast: {ours['tokens']:,} tokens in {ours['seconds']:.2f} s = {ours['tokens_per_s']:,.0f} tokens/s", flush=True)
    if not args.skip_hf:
        from transformers import GPT2Config, GPT2LMHeadModel

        hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                            n_head=cfg.n_head, add_cross_attention=True, attn_pdrop=0, embd_pdrop=0, resid_pdrop=0,
                            bos_token_id=None, eos_token_id=None)
        hf = GPT2LMHeadModel(hf_cfg).to(device=device, dtype=dtype).eval()
        missing = hf.load_state_dict(model.to_hf_state_dict(), strict=False).missing_keys
        if any(not k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing):
            raise RuntimeError(f"HF model did not take our weights: missing {missing[:5]}")
        with torch.no_grad():
            soft = model.prs_encoder(torch.as_tensor(prs, device=device, dtype=dtype))
        theirs = measured(lambda: hf_loop(hf, contexts, soft, args, device), device)
        results["hf"] = theirs
        results["speedup"] = ours["tokens_per_s"] / theirs["tokens_per_s"]
        print(f"HF loop: {theirs['tokens']:,} tokens in {theirs['seconds']:.2f} s = {theirs['tokens_per_s']:,.0f} tokens/s; "
              f"ehrfast is {results['speedup']:.1f}x", flush=True)
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
