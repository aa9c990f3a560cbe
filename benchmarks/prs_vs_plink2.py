"""ehrfast's PRS scorer against `plink2 --score`, same .bed, same weights, same run.

(a) dense: 100 traits over all variants; (b) sparse: 1,000 traits x 1,500 variants each.
plink2 reads one wide table (--score-col-nums); ehrfast reads the same table in (a) and,
as a user with PGS Catalog files would, 1,000 score files in (b). Both write raw sums; the
sums are compared (rtol 1e-5: plink2 prints 6 significant digits). Each workload runs the two
tools alternately ``--repeats`` times (fresh runs, the .bed in the page cache for both) and
reports the median of each.

    python benchmarks/prs_vs_plink2.py [--samples 5000] [--variants 200000] [--repeats 3] [--workdir /tmp/prsbench]

Needs plink2 on PATH (Debian: apt-get install plink2 libopenblas0).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from machine import cpu_line  # benchmarks/machine.py

from ehrfast.genomics.bed import PlinkWriter, Variant
from ehrfast.genomics.match import MatchOptions
from ehrfast.genomics.prs import PRSOptions, compute_prs


def make_bed(prefix: Path, n_samples: int, n_variants: int, rng) -> None:
    bases = np.array(list("ACGT"))
    with PlinkWriter(prefix, [f"S{i}" for i in range(n_samples)]) as w:
        for a in range(0, n_variants, 5000):
            b = min(a + 5000, n_variants)
            p = rng.uniform(0.05, 0.5, b - a)[:, None]
            g = (rng.random((b - a, n_samples)) < p).astype(np.int8) + (rng.random((b - a, n_samples)) < p)
            g[rng.random(g.shape) < 0.01] = -1
            a1 = rng.integers(0, 4, b - a)
            # never the complement (base 3 - i for "ACGT"), so no strand-ambiguous pairs: both tools score every variant
            others = np.array([[j for j in range(4) if j not in (i, 3 - i)] for i in range(4)])
            a2 = others[a1, rng.integers(0, 2, b - a)]
            w.write(g, [Variant("1", f"v{a + i}", 0, a + i + 1, bases[a1[i]], bases[a2[i]]) for i in range(b - a)])


def write_wide(path: Path, ids, effect, weights: np.ndarray, names) -> None:
    table = pa.table({"ID": ids, "effect_allele": effect, **{n: weights[:, j] for j, n in enumerate(names)}})
    with open(path, "wb") as fh:
        fh.write(("\t".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False))


def run_plink2(bfile: Path, score: Path, n_traits: int, out: Path) -> float:
    cmd = ["plink2", "--bfile", str(bfile), "--score", str(score), "header-read", "cols=+scoresums", "--score-col-nums",
           f"3-{2 + n_traits}", "--threads", str(os.cpu_count()), "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def plink2_sums(path: Path, names) -> np.ndarray:
    rows = list(csv.reader(open(path), delimiter="\t"))
    head = [h.lstrip("#") for h in rows[0]]
    return np.array([[float(r[head.index(f"{n}_SUM")]) for n in names] for r in rows[1:]])


def run_ehrfast(bfile: Path, scores: list[Path], out: Path) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    s = compute_prs(bfile, scores, out, PRSOptions(max_variants=None, raw=True, match=MatchOptions(min_overlap=0)), overwrite=True, progress=False)
    elapsed = time.perf_counter() - t
    table = pq.read_table(out)
    return elapsed, np.column_stack([table.column(n).to_numpy() for n in s.traits])


def side_by_side(label: str, repeats: int, plink2_run, ehrfast_run, check) -> None:
    """Alternate the tools ``repeats`` times; check ehrfast's sums every time; print the medians."""
    tp, te = [], []
    for _ in range(repeats):
        tp.append(plink2_run())
        elapsed, ours = ehrfast_run()
        te.append(elapsed)
        check(ours)
    p, e = float(np.median(tp)), float(np.median(te))
    runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(tp, te))
    print(f"{label}: plink2 {p:.2f} s, ehrfast {e:.2f} s -> {p / e:.2f}x (median of {repeats}; plink2/ehrfast per run: {runs})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--variants", type=int, default=200_000)
    ap.add_argument("--dense-traits", type=int, default=100)
    ap.add_argument("--sparse-traits", type=int, default=1000)
    ap.add_argument("--sparse-size", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/prsbench")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    make_bed(work / "g", args.samples, args.variants, rng)
    bim = [ln.split("\t") for ln in (work / "g.bim").read_text().splitlines()]
    ids = [r[1] for r in bim]
    effect = [r[4] if k % 2 else r[5].strip() for k, r in enumerate(bim)]  # half the rows name A2
    print(f"data: {args.samples:,} samples x {args.variants:,} variants .bed in {time.perf_counter() - t:.1f} s")
    print(f"{cpu_line()}; plink2: {subprocess.run(['plink2', '--version'], capture_output=True, text=True).stdout.strip()}")

    names = [f"d{j}" for j in range(args.dense_traits)]
    write_wide(work / "dense.tsv", ids, effect, rng.standard_normal((args.variants, args.dense_traits)) * 0.01, names)
    side_by_side(f"(a) dense {args.dense_traits} traits x {args.variants:,} variants", args.repeats,
                 lambda: run_plink2(work / "g", work / "dense.tsv", len(names), work / "p_dense"),
                 lambda: run_ehrfast(work / "g", [work / "dense.tsv"], work / "e_dense.parquet"),
                 lambda ours, names=names: np.testing.assert_allclose(ours, plink2_sums(work / "p_dense.sscore", names), rtol=1e-5, atol=1e-6))

    names = [f"s{j}" for j in range(args.sparse_traits)]
    weights = np.zeros((args.variants, args.sparse_traits))
    files = []
    sdir = work / "sparse"
    sdir.mkdir()
    for j, n in enumerate(names):
        v = np.sort(rng.choice(args.variants, args.sparse_size, replace=False))
        weights[v, j] = rng.standard_normal(args.sparse_size) * 0.01
        f = sdir / f"{n}.tsv"
        write_wide(f, [ids[i] for i in v], [effect[i] for i in v], weights[v, j : j + 1], [n])
        files.append(f)
    used = weights.any(1)
    write_wide(work / "sparse_wide.tsv", [i for i, u in zip(ids, used) if u], [e for e, u in zip(effect, used) if u], weights[used], names)
    side_by_side(f"(b) sparse {args.sparse_traits} traits x {args.sparse_size} variants ({len(files):,} score files)", args.repeats,
                 lambda: run_plink2(work / "g", work / "sparse_wide.tsv", len(names), work / "p_sparse"),
                 lambda: run_ehrfast(work / "g", files, work / "e_sparse.parquet"),
                 lambda ours, names=names: np.testing.assert_allclose(ours, plink2_sums(work / "p_sparse.sscore", names), rtol=1e-5, atol=1e-6))


if __name__ == "__main__":
    main()
