"""Times ``generate_cohort`` at a given size, with and without the hospital world, in the same
run, checks that both outputs validate, and prints the hospital world's achieved rates.

    python benchmarks/synth_scale.py --subjects 100000 --out /tmp/syn100k
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time

from machine import cpu_line  # benchmarks/machine.py

from ehrfast.data.meds import validate_meds_dataset
from ehrfast.synth.generator import SyntheticConfig, generate_cohort


def _run(out: str, subjects: int, hospital: bool) -> tuple[float, float, object]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = generate_cohort(out, SyntheticConfig(n_subjects=subjects, hospital=hospital), progress=False)
    generate = time.perf_counter() - t0
    t1 = time.perf_counter()
    validated = validate_meds_dataset(out)
    assert validated.n_rows == summary.n_rows
    return generate, time.perf_counter() - t1, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--out", default="/tmp/ehrfast_synth_scale")
    args = ap.parse_args()
    print(cpu_line())
    times = {}
    for hospital in (False, True):
        gen, val, s = _run(args.out + ("_hospital" if hospital else "_chronic"), args.subjects, hospital)
        times[hospital] = gen
        label = "with the hospital world   " if hospital else "chronic world (--no-hospital)"
        print(f"{label}: subjects {s.n_subjects:,}  rows {s.n_rows:,}  generate {gen:.1f} s  validate {val:.1f} s")
        if hospital:
            print("  " + "\n  ".join(line.strip() for line in s.describe().splitlines() if "hospital" in line or "ED:" in line or "mortality" in line))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"hospital / chronic time: {times[True] / times[False]:.2f}x   peak RSS {rss:.1f} GiB")


if __name__ == "__main__":
    main()
