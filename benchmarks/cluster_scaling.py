"""Scale-out on Dask, measured: tokenize and PRS on 1, 2 and 4 local worker processes against one
process, the per-task overhead, a PRS worker's peak memory against the bound its block size
sets, and — from the measured per-core throughput — the expected wall time of a biobank job
on a cluster (400,000 participants x 1,000,000 variants x 2,000 scores on 32 nodes).

    python benchmarks/cluster_scaling.py [--subjects 16000] [--samples 5000 --variants 200000 --traits 100]

Each configuration runs ``--repeats`` times, alternating, on a cluster started beforehand (its
start-up is reported apart); outputs are checked byte-identical to the one-process run. One
worker is one process with one thread (Dask sets OMP_NUM_THREADS=1), so the one-process run,
which uses every core, is the baseline a user compares with, and ``efficiency`` is the speed-up
over one worker divided by min(workers, cores): on a 2-core machine 4 workers cannot beat 2.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import math
import os
import pickle
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_line  # benchmarks/machine.py
from prs_vs_plink2 import make_bed, write_wide  # noqa: E402

from ehrfast.cluster import connect, map_tasks  # noqa: E402
from ehrfast.genomics import PRSOptions, compute_prs  # noqa: E402
from ehrfast.genomics.genotypes import open_genotypes  # noqa: E402
from ehrfast.genomics.match import MatchOptions  # noqa: E402
from ehrfast.genomics.score import DECODED_ROWS_BYTES, RESIDENT_ROWS_BYTES, traits_per_task  # noqa: E402
from ehrfast.io import OUTPUT_MARKER as MARKER  # noqa: E402
from ehrfast.synth.generator import SyntheticConfig, generate_cohort  # noqa: E402
from ehrfast.tokenize import tokenize_dataset  # noqa: E402

SLACK_BYTES = 64 * 2**20  # interpreter, allocator and communication buffers of a worker


def same_tree(a: Path, b: Path) -> bool:
    """Every file the same bytes, but the output marker (it records when it was written)."""
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != MARKER)
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != MARKER)
    return fa == fb and all(filecmp.cmp(a / f, b / f, shallow=False) for f in fa)


def worker_memory_bound(n_samples: int, variant_block: int, n_traits: int, block: int = 4096) -> int:
    """Bytes a PRS worker may add to its resident size while scoring a .bed (sums without
    plink2's count columns, one task at a time): the block's mapped genotype rows (one chunk of
    them past RESIDENT_ROWS_BYTES); 24 bytes per (variant, trait) — each trait's weights and
    variant indices as received (float64, int64), and the weights again as the kernel's matrix;
    three [samples x traits] partials (the kernel's, the task's result, its serialized copy);
    the decoded frequency rows; and slack."""
    row = math.ceil(n_samples / 4)
    rows = variant_block * row if variant_block * row <= RESIDENT_ROWS_BYTES else RESIDENT_ROWS_BYTES + block * row
    group = min(n_traits, traits_per_task(n_samples, n_traits, plink2_columns=False))  # the traits of one task
    return rows + 3 * 8 * variant_block * group + 3 * 8 * n_samples * group + min(block * row, DECODED_ROWS_BYTES) + SLACK_BYTES


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker_baseline(source_blob: bytes) -> dict:
    """On a worker after a warm-up run: what a task imports and opens once (modules, the C++
    core, the source's variant table), so that the growth measured after is the scoring's own."""
    pickle.loads(source_blob)  # reopens the genotypes through the worker's cache, as a task does
    # Reset the kernel's high-water mark (VmHWM): the worker's start-up transients are not the block's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return {"rss": _rss(), "peak": _worker_peak()}


def _worker_peak() -> int:
    """The process's peak resident size since the last reset, bytes (VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))


def _noop(x, *args):
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=16_000, help="synthetic cohort for tokenize (shards of --shard-size)")
    ap.add_argument("--shard-size", type=int, default=1_000)
    ap.add_argument("--samples", type=int, default=5_000)
    ap.add_argument("--variants", type=int, default=200_000)
    ap.add_argument("--traits", type=int, default=100, help="dense weight columns over every variant")
    ap.add_argument("--variant-block", type=int, default=12_500, help="PRS variants per task in the scaling runs")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-blocks", default="5000,20000,80000", help="variant blocks of the worker-memory runs")
    ap.add_argument("--workdir", default="/tmp/cluster_scaling")
    # the cluster of the extrapolation
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--node-cores", type=int, default=32)
    ap.add_argument("--net-gbps", type=float, default=100.0, help="the client's network link, Gbit/s")
    ap.add_argument("--fs-gbs-per-node", type=float, default=1.0, help="shared filesystem read bandwidth per node, GB/s")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{cpu_line()}; Python {platform.python_version()}")

    t = time.perf_counter()
    cohort = work / "cohort"
    generate_cohort(cohort, SyntheticConfig(n_subjects=args.subjects, shard_size=args.shard_size, n_variants=500, n_null_traits=0),
                    progress=False)
    n_shards = len(list((cohort / "data").rglob("*.parquet")))
    rng = np.random.default_rng(0)
    make_bed(work / "g", args.samples, args.variants, rng)
    ids = [ln.split("\t")[1] for ln in (work / "g.bim").read_text().splitlines()]
    effect = [ln.split("\t")[4] for ln in (work / "g.bim").read_text().splitlines()]
    write_wide(work / "w.tsv", ids, effect, rng.standard_normal((args.variants, args.traits)) * 0.01, [f"t{j}" for j in range(args.traits)])
    n_tasks = math.ceil(args.variants / args.variant_block) * math.ceil(args.traits / traits_per_task(args.samples, args.traits, False))
    print(f"data: {args.subjects:,} subjects in {n_shards} MEDS shards; {args.samples:,} samples x {args.variants:,} variants .bed x "
          f"{args.traits} traits ({n_tasks} PRS tasks of {args.variant_block:,} variants) — made in {time.perf_counter() - t:.0f} s")

    prs_options = PRSOptions(max_variants=None, raw=True, variant_block=args.variant_block, match=MatchOptions(min_overlap=0))

    def tokenize(cluster, out):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        tokenize_dataset(cohort, out, progress=False, cluster=cluster)
        return time.perf_counter() - t0

    def prs(cluster, out):
        shutil.rmtree(out.parent, ignore_errors=True)
        t0 = time.perf_counter()
        compute_prs(work / "g", [work / "w.tsv"], out, prs_options, progress=False, cluster=cluster)
        return time.perf_counter() - t0

    times: dict[str, dict[str, list[float]]] = {"tokenize": {}, "prs": {}}
    configs = ["one process"] + [f"{n} worker{'s' * (n > 1)}" for n in workers]
    clusters = {}
    startup = {}
    with contextlib.ExitStack() as stack:
        for n in workers:
            t0 = time.perf_counter()
            clusters[n] = stack.enter_context(connect(f"local:{n}"))
            startup[n] = time.perf_counter() - t0
        overhead = {}
        for n in workers:  # per-task overhead: a no-op task through map_tasks (submit, run, result, in order)
            c = clusters[n]
            map_tasks(c, _noop, list(range(50)), labels=[str(i) for i in range(50)], name="warm")
            k = 1000
            t0 = time.perf_counter()
            map_tasks(c, _noop, list(range(k)), labels=[str(i) for i in range(k)], name="noop")
            overhead[n] = (time.perf_counter() - t0) / k * 1e3
        for r in range(args.repeats):
            for label, n in zip(configs, [None] + workers):
                c = None if n is None else clusters[n].client
                tag = "serial" if n is None else f"w{n}"
                times["tokenize"].setdefault(label, []).append(tokenize(c, work / f"tok_{tag}"))
                times["prs"].setdefault(label, []).append(prs(c, work / f"prs_{tag}" / "PRS.parquet"))
                if r == 0 and n is not None:
                    assert same_tree(work / "tok_serial", work / f"tok_{tag}"), f"tokenize on {label} differs from one process"
                    assert same_tree(work / "prs_serial", work / f"prs_{tag}"), f"prs on {label} differs from one process"

    print("\ncluster start-up (LocalCluster + Client): " + ", ".join(f"{n} workers {startup[n]:.1f} s" for n in workers))
    print("per-task overhead (no-op tasks through map_tasks, 1,000 of them): "
          + ", ".join(f"{n} workers {overhead[n]:.2f} ms" for n in workers))
    cores = os.cpu_count() or 1
    for stage, by in times.items():
        med = {k: statistics.median(v) for k, v in by.items()}
        one = med[configs[1]]
        print(f"\n{stage} (median of {args.repeats}; outputs byte-identical to one process):")
        for label in configs:
            line = f"  {label:<12} {med[label]:7.2f} s   runs {', '.join(f'{x:.2f}' for x in by[label])}"
            if label != "one process":
                n = int(label.split()[0])
                line += f"   speed-up over 1 worker {one / med[label]:.2f}x, efficiency {one / med[label] / min(n, cores):.0%}"
            print(line)
    prs_one = statistics.median(times["prs"][configs[1]])
    rate = args.samples * args.variants * args.traits / prs_one  # sample x variant x trait per second on one core
    tok_one = statistics.median(times["tokenize"][configs[1]])

    print("\nPRS worker memory (one worker, standardized parquet: no count columns; growth = peak resident size - resident size after a warm-up run and opening the source):")
    source_blob = pickle.dumps(open_genotypes(work / "g"))
    # The warm-up: a tiny run loads on the worker what any first task loads (a fixed cost, not the block's)
    make_bed(work / "tiny", 64, 256, rng)
    tiny_ids = [ln.split("\t")[1] for ln in (work / "tiny.bim").read_text().splitlines()]
    tiny_effect = [ln.split("\t")[4] for ln in (work / "tiny.bim").read_text().splitlines()]
    write_wide(work / "tiny.tsv", tiny_ids, tiny_effect, rng.standard_normal((256, 2)), ["a", "b"])
    for vb in [int(x) for x in args.memory_blocks.split(",")]:
        with connect("local:1") as c:
            compute_prs(work / "tiny", [work / "tiny.tsv"], work / "tiny_out" / "PRS.parquet",
                        PRSOptions(max_variants=None, variant_block=128, match=MatchOptions(min_overlap=0)), progress=False, cluster=c.client)
            shutil.rmtree(work / "tiny_out")
            base = next(iter(c.client.run(_worker_baseline, source_blob).values()))
            opts = PRSOptions(max_variants=None, raw=False, variant_block=vb, match=MatchOptions(min_overlap=0))
            shutil.rmtree(work / "mem", ignore_errors=True)
            compute_prs(work / "g", [work / "w.tsv"], work / "mem" / "PRS.parquet", opts, progress=False, cluster=c.client)
            peak = next(iter(c.client.run(_worker_peak).values()))
        growth, bound = peak - base["rss"], worker_memory_bound(args.samples, vb, args.traits)
        print(f"  variant block {vb:>7,}: growth {growth / 2**20:7.1f} MiB  bound {bound / 2**20:7.1f} MiB  "
              f"({'within' if growth <= bound else 'ABOVE'} the bound)")

    print(f"\nmeasured on one worker (one core): PRS {rate:.3g} sample-variant-traits/s; tokenize "
          f"{args.subjects / tok_one:,.0f} subjects/s")
    extrapolate(rate, args)


def extrapolate(rate: float, args) -> None:
    """Expected wall time of 400,000 x 1,000,000 x 2,000 on the stated cluster, by variant block:
    scoring waves at the measured per-core rate, plus the shared-filesystem reads (each trait group
    reads every variant row once), plus the client's reduce (every task's partials cross the
    client's link and are added there). The terms are added: an upper bound; they overlap in part."""
    n, v, t = 400_000, 1_000_000, 2_000
    cores = args.nodes * args.node_cores
    group = traits_per_task(n, t, plink2_columns=False)
    groups = math.ceil(t / group)
    row = math.ceil(n / 4)
    add_gbs = _add_bandwidth_gbs()
    print(f"\nexpected: {n:,} participants x {v:,} variants x {t:,} scores on {args.nodes} nodes x {args.node_cores} cores "
          f"(client link {args.net_gbps:g} Gbit/s, shared FS {args.fs_gbs_per_node:g} GB/s per node, client adds at "
          f"{add_gbs:.1f} GB/s measured here); {group} traits per task ({groups} groups):")
    print(f"  {'variant block':>13} {'tasks':>6} {'waves':>5} {'task s':>7} {'scoring':>8} {'FS reads':>9} {'to client':>10} "
          f"{'client':>7} {'total':>7}  worker memory/task")
    best = None
    for vb in (10_000, 25_000, 50_000, 100_000, 250_000):
        blocks = math.ceil(v / vb)
        tasks = blocks * groups
        waves = math.ceil(tasks / cores)
        task_s = vb * group * n / rate
        scoring = waves * task_s
        reads = groups * v * row / (args.nodes * args.fs_gbs_per_node * 1e9)
        volume = blocks * n * t * 8  # every block's partials for every trait reach the client
        client = volume / (args.net_gbps / 8 * 1e9) + volume / (add_gbs * 1e9)
        total = scoring + reads + client
        memory = worker_memory_bound(n, vb, t)
        print(f"  {vb:>13,} {tasks:>6,} {waves:>5} {task_s:>7.0f} {scoring:>7.0f}s {reads:>8.0f}s {volume / 1e9:>8.0f}GB "
              f"{client:>6.0f}s {total:>6.0f}s  {memory / 2**30:.1f} GiB")
        if memory * args.node_cores < 0.8 * 256 * 2**30 and (best is None or total < best[1]):
            best = (vb, total)
    if best:
        print(f"  best that fits 256 GiB nodes: --variant-block {best[0]:,}: about {best[1] / 60:.0f} min "
              f"(one 2-core process at the measured rate: {n * v * t / rate / 3600 / 2:,.0f} h)")


def _add_bandwidth_gbs() -> float:
    """Bytes of partials the client adds per second (x += y over 256 MiB float64 arrays)."""
    x, y = np.ones(2**25), np.ones(2**25)
    x += y
    t0 = time.perf_counter()
    for _ in range(5):
        x += y
    return 5 * y.nbytes / (time.perf_counter() - t0) / 1e9


if __name__ == "__main__":
    main()
