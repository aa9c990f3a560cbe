"""What the deterministic mode costs: the same sampling run with the batched KV-cache decoder
(``CachedDecoder``: subjects batched into one matmul) and with ``IsolatedDecoder`` (every
subject on shapes of its own, so its logits are bit-identical whatever the batching), measured
in one process, alternating, on the same contexts. Also checks what each mode promises: the
isolated decoder gives the same bits with 1 slot and with all slots; the batched one need not.

    python benchmarks/deterministic_cost.py                    # the demo preset on the CPU
    python benchmarks/deterministic_cost.py --device cuda      # on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from ehrfast.infer.decoders import CachedDecoder, IsolatedDecoder
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.model import GPT, GPTConfig


def run(decoder, contexts, settings, device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = sample_trajectories(decoder, contexts, np.array([5, 6, 7]), np.full(decoder.model.config.vocab_size, 1e5), settings,
                              device=device)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo")
    p.add_argument("--subjects", type=int, default=48)
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--context", type=int, default=200, help="longest context; lengths drawn from [context/4, context]")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    torch.manual_seed(0)
    model = GPT(GPTConfig.preset(args.preset, vocab_size=512)).to(args.device).eval()
    rng = np.random.default_rng(0)
    contexts = [rng.integers(8, 512, int(n)) for n in rng.integers(args.context // 4, args.context + 1, args.subjects)]
    settings = SamplingSettings(horizon_us=1e12, n_samples=args.samples, max_new_tokens=args.new_tokens, stop_ids=(1,), seed=3)
    times = {"batched": [], "deterministic": []}
    for _ in range(args.repeats):  # alternating, so drift affects both alike
        times["batched"].append(run(CachedDecoder(model, args.new_tokens, args.device, args.slots), contexts, settings, args.device)[0])
        times["deterministic"].append(run(IsolatedDecoder(model, args.new_tokens, args.device, args.slots), contexts, settings,
                                          args.device)[0])
    _, one = run(IsolatedDecoder(model, args.new_tokens, args.device, 1), contexts, settings, args.device)
    _, many = run(IsolatedDecoder(model, args.new_tokens, args.device, args.slots), contexts, settings, args.device)
    _, b1 = run(CachedDecoder(model, args.new_tokens, args.device, 1), contexts, settings, args.device)
    _, bm = run(CachedDecoder(model, args.new_tokens, args.device, args.slots), contexts, settings, args.device)
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = int(many.tokens_generated.sum())
    out = {
        "workload": {**vars(args), "tokens_generated": tokens},
        "seconds_median": med,
        "tokens_per_second": {k: tokens / v for k, v in med.items()},
        "slowdown": med["deterministic"] / med["batched"],
        "deterministic_bit_identical_1_vs_slots": bool(np.array_equal(one.sample_path_probability, many.sample_path_probability)
                                                       and np.array_equal(one.tokens_generated, many.tokens_generated)),
        "batched_bit_identical_1_vs_slots": bool(np.array_equal(b1.sample_path_probability, bm.sample_path_probability)
                                                 and np.array_equal(b1.tokens_generated, bm.tokens_generated)),
        "batched_max_abs_path_difference_1_vs_slots": float(np.abs(b1.sample_path_probability - bm.sample_path_probability).max()),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
