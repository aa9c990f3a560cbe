"""Tokenizer throughput as a user meets it: each run in a fresh process (input parquet in the
page cache), timing only the work itself (imports excluded), alternating the contenders:

  read      pq.read_table(shard, columns=[subject_id, time, code, numeric_value]) for every shard
  read-dict the same with read_dictionary=["code"]
  tokenize  ehrfast.tokenize.tokenize_dataset(...) — fit on train + every split to disk

    python benchmarks/tokenize_throughput.py MEDS_DIR [--repeats 3] [--backend cpp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from machine import cpu_line  # benchmarks/machine.py

CHILD = r"""
import json, shutil, sys, time
mode, meds, out, backend = sys.argv[1:5]
shutil.rmtree(out, ignore_errors=True)  # a first run: no earlier output to delete while timed
import pyarrow.parquet as pq
from ehrfast.data.meds import data_files
from ehrfast.tokenize import tokenize_dataset
files = [f.path for fs in data_files(meds).values() for f in fs]
cols = ["subject_id", "time", "code", "numeric_value"]
t = time.perf_counter()
if mode == "tokenize":
    s = tokenize_dataset(meds, out, backend=backend, progress=False)
    extra = {"tokens": sum(v["tokens"] for v in s.splits.values())}
else:
    rows = sum(pq.read_table(f, columns=cols, read_dictionary=["code"] if mode == "read-dict" else None).num_rows for f in files)
    extra = {"rows": rows}
print(json.dumps({"seconds": time.perf_counter() - t, **extra}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("meds_dir")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default="cpp")
    args = ap.parse_args()
    out = os.path.join(tempfile.mkdtemp(), "tok")
    times: dict[str, list[float]] = {"read": [], "read-dict": [], "tokenize": []}
    info = {}
    for _ in range(args.repeats):
        for mode in times:
            res = json.loads(subprocess.run([sys.executable, "-c", CHILD, mode, args.meds_dir, out, args.backend],
                                            check=True, capture_output=True, text=True).stdout)
            times[mode].append(res.pop("seconds"))
            info.update(res)
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"{cpu_line()}; rows {info['rows']:,}; tokens {info['tokens']:,}")
    for m, v in med.items():
        print(f"  {m:<10} median {v:6.2f} s  ({info['rows'] / v / 1e6:5.1f} M rows/s)   runs: {', '.join(f'{x:.2f}' for x in times[m])}")
    print(f"  tokenize / read = {med['tokenize'] / med['read']:.2f}x   tokenize / read-dict = {med['tokenize'] / med['read-dict']:.2f}x")


if __name__ == "__main__":
    main()
