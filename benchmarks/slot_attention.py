"""Decode-step attention over subject slots: the Triton kernel vs the torch reference (what
``SlotCache`` computed before the kernel), one layer, one step.

The sampler issue's workload per layer: 32 slots × 10 samples (320 rows), 8 heads × 120 dims,
history 1,024, K = 512 own positions, bf16. Write positions are uniform in [0, K) (rows at
different steps, as with continuous batching); ``--finished`` of the rows have ended.
Reported: time (median of CUDA-event timings, ``triton.testing.do_bench``) and the effective
bandwidth: the bytes a step must read at least (each slot's valid history once, each active
row's own keys/values up to its write position, the queries) over its time — the same byte
count for both, so the bandwidth ratio is the speed ratio.

    python benchmarks/slot_attention.py --json out.json     # on a GPU
"""

from __future__ import annotations

import argparse
import json

import torch
from gpu_timing import timed_ms  # benchmarks/gpu_timing.py, beside this script

from ehrfast.model.kernels import slot_attention as sa


def bytes_needed(inputs) -> int:
    q, prefix_k, _, prefix_valid, own_k, _, write_position, active = inputs
    element = prefix_k.element_size()
    per_position = 2 * prefix_k.shape[1] * prefix_k.shape[3] * element  # k and v, all heads
    history = int(prefix_valid.sum()) * per_position
    own = int(((write_position + 1) * active).sum()) * per_position
    return history + own + 2 * q.numel() * element


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=120)
    ap.add_argument("--history", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--finished", type=float, default=0.0, help="share of rows that have ended")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--json")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    inputs = list(sa.random_slot_inputs(args.slots, args.samples, args.heads, args.history, args.new_tokens, args.head_dim,
                                        dtype, "cuda", seed=0))
    inputs[3][:] = True  # full histories
    inputs[7][:] = torch.rand(len(inputs[7]), generator=torch.Generator().manual_seed(1)).cuda() >= args.finished
    moved = bytes_needed(inputs)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "workload": vars(args), "bytes": moved}
    for name, backend in (("triton", "triton"), ("torch reference", "reference")):
        ms = timed_ms(lambda backend=backend: sa.slot_attention(*inputs, backend=backend))
        results[name] = {"ms": ms, "tb_per_s": moved / ms / 1e9}
        print(f"{name:16s} {ms:8.3f} ms  {moved / ms / 1e9:6.2f} TB/s effective", flush=True)
    results["speedup"] = results["torch reference"]["ms"] / results["triton"]["ms"]
    print(f"kernel is {results['speedup']:.2f}x the reference")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
