"""Times ``generate_cohort`` at a given size and checks the output validates.

    python benchmarks/synth_scale.py --subjects 100000 --out /tmp/syn100k
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import time

from ehrfast.data.meds import validate_meds_dataset
from ehrfast.synth.generator import SyntheticConfig, generate_cohort


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--out", default="/tmp/ehrfast_synth_scale")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    t0 = time.perf_counter()
    s = generate_cohort(args.out, SyntheticConfig(n_subjects=args.subjects), progress=False)
    gen = time.perf_counter() - t0
    t1 = time.perf_counter()
    v = validate_meds_dataset(args.out)
    val = time.perf_counter() - t1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"subjects {s.n_subjects:,}  rows {s.n_rows:,}  generate {gen:.1f} s  validate {val:.1f} s  peak RSS {rss:.1f} GiB")
    print(f"valid MEDS: {v.n_subjects:,} subjects, {v.n_rows:,} rows")


if __name__ == "__main__":
    main()
