"""Cost of ARES trajectories (ARES.md S7): generated tokens per second and positions per second of
``risk_trajectory``, against the same positions sampled one position at a time (each position's
N futures its own ``sample_trajectories`` call, as a per-item loop would), measured in the same
run on the same stays, model and seed — and the expected cost of a full 645-token stay × 100
futures written out from the measured rate.

Workload: a synthetic cohort with its hospital world (``--subjects``), tokenized; a model of
``--preset`` with random weights (cost does not depend on training); the first ``--stays``
held-out admissions with ``--positions`` positions (``every_k`` with ``--every-k``), ``--samples``
futures each, at most ``--max-new-tokens`` tokens, contexts of ``--context-tokens``.

    python benchmarks/ares_cost.py                                     # CPU, the demo preset
    python benchmarks/ares_cost.py --preset paper --device cuda --samples 100 --max-new-tokens 512 \\
        --context-tokens 1024 --stays 8 --json ares.json                # the GPU session
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import torch
from machine import cpu_line  # benchmarks/machine.py

from ehrfast.infer.ares import TrajectorySettings, risk_trajectory, stays_from_labels
from ehrfast.labels import make_labels
from ehrfast.model import GPT, GPTConfig
from ehrfast.synth import SyntheticConfig, generate_cohort
from ehrfast.tokenize import tokenize_dataset
from ehrfast.tokenize.dataset import TokenizedDataset

FULL_STAY_TOKENS = 645  # the MIMIC-IV demo's median stay, admission to discharge (ARES.md S15)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=600)
    ap.add_argument("--preset", default="demo", choices=("tiny", "demo", "paper"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stays", type=int, default=2)
    ap.add_argument("--positions", default="every_k")
    ap.add_argument("--every-k", type=int, default=8)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--context-tokens", type=int, default=128)
    ap.add_argument("--baseline-positions", type=int, default=12, help="positions timed one at a time (their rate is extrapolated)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"{cpu_line()}; torch {torch.__version__}; device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        generate_cohort(d / "cohort", SyntheticConfig(n_subjects=args.subjects, seed=0), progress=False)
        tokenize_dataset(d / "cohort", d / "tok", progress=False)
        make_labels(d / "cohort", "hospital_mortality", d / "hm.parquet", splits=("held_out",))
        ds = TokenizedDataset(d / "tok" / "held_out")
        torch.manual_seed(0)
        cfg = GPTConfig.preset(args.preset, vocab_size=len(ds.vocab), modality="none")
        model = GPT(cfg).to(args.device).eval()
        if args.device.startswith("cuda"):
            model = model.to(torch.bfloat16)
        settings = TrajectorySettings(positions=args.positions, every_k=args.every_k, n_samples=args.samples,
                                      max_new_tokens=args.max_new_tokens, context_tokens=args.context_tokens, seed=0)
        stays, _ = stays_from_labels(ds, pq.read_table(d / "hm.parquet"), settings)
        stays = stays[: args.stays]
        with torch.no_grad():
            _sync(args.device)
            t0 = time.perf_counter()
            traj = risk_trajectory(model, ds, stays, settings, device=args.device)
            _sync(args.device)
            batched = time.perf_counter() - t0
            positions = sum(len(st.positions) for st in traj.stays)
            # one position at a time: the first baseline_positions positions of the first stay
            first = traj.stays[0]
            one = [replace(first.stay, start=int(p), end=int(p) + 1) for p in first.positions[: args.baseline_positions]]
            single = replace(settings, positions="every_token")
            _sync(args.device)
            t0 = time.perf_counter()
            loop_tokens = 0
            for stay in one:
                loop_tokens += risk_trajectory(model, ds, [replace(stay, icu=-1 if stay.icu > stay.start else stay.icu)], single,
                                               device=args.device).tokens_generated
            _sync(args.device)
            looped = time.perf_counter() - t0
    rate = traj.tokens_generated / batched
    loop_rate = loop_tokens / looped
    tokens_per_position = traj.tokens_generated / positions
    full_stay_tokens = FULL_STAY_TOKENS * tokens_per_position * 100 / args.samples
    out = {"preset": args.preset, "device": args.device, "stays": len(stays), "positions": positions, "samples": args.samples,
           "max_new_tokens": args.max_new_tokens, "context_tokens": args.context_tokens, "tokens_generated": traj.tokens_generated,
           "seconds": batched, "tokens_per_second": rate, "positions_per_second": positions / batched,
           "one_at_a_time_tokens_per_second": loop_rate, "speedup_vs_one_at_a_time": rate / loop_rate,
           "tokens_per_position_both_runs": tokens_per_position,
           "full_stay_645_x_100_tokens": full_stay_tokens, "full_stay_645_x_100_seconds": full_stay_tokens / rate}
    print(f"{args.preset} on {args.device}: {len(stays)} stays, {positions} positions × {args.samples} futures (≤ {args.max_new_tokens} tokens), "
          f"{traj.tokens_generated:,} tokens in {batched:.1f} s: {rate:,.0f} tokens/s, {positions / batched:.2f} positions/s")
    print(f"one position at a time: {loop_rate:,.0f} tokens/s -> the slot engine is {rate / loop_rate:.1f}× faster")
    print(f"a full {FULL_STAY_TOKENS}-token stay × 100 futures at this cap: ≈ {full_stay_tokens:,.0f} tokens ≈ "
          f"{full_stay_tokens / rate / 60:.1f} min at the measured rate")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
