"""The end-to-end pipeline behind ``ehrfast demo``: named stages, each writing into its own
folder of the run directory, skipped on rerun when its output is complete.

Stages present in this version: ``synth`` (cohort), ``validate`` (MEDS check), ``prs`` (the
real scorer over the cohort's genotypes and score files) and ``tokenize`` (TokenizedDatasets
per split). The train, score, evaluate and report stages join this list as they land; a stage
is only listed once it does its real work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DONE_MARKER = ".done.json"


@dataclass(frozen=True)
class Stage:
    name: str
    output: str  # folder under the run directory
    run: Callable[[Path, Path], dict]  # (run_dir, stage_dir) -> summary dict


def run_stage(stage: Stage, run_dir: Path, force: bool) -> tuple[dict, bool]:
    """Runs ``stage`` unless its output holds a completion marker (and not ``force``).
    Returns its summary and whether it ran."""
    out = run_dir / stage.output
    marker = out / DONE_MARKER
    if marker.exists() and not force:
        print(f"[{stage.name}] already done ({out}); skipping (--force reruns it)")
        return json.loads(marker.read_text()), False
    print(f"[{stage.name}] running ...", flush=True)
    t0 = time.perf_counter()
    summary = stage.run(run_dir, out)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    marker.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"[{stage.name}] done in {summary['seconds']:.1f} s", flush=True)
    return summary, True


def _synth_stage(n_subjects: int, seed: int) -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.cli import _print_cohort
        from ehrfast.data.synthetic import SyntheticConfig, generate_cohort

        summary = generate_cohort(out, SyntheticConfig(n_subjects=n_subjects, seed=seed), overwrite=True)
        _print_cohort(summary)
        return asdict(summary)

    return Stage("synth", "cohort", run)


def _validate_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.data.meds import validate_meds_dataset

        s = validate_meds_dataset(run_dir / "cohort")
        print(f"  MEDS valid: {s.n_subjects:,} subjects, {s.n_rows:,} rows, {s.n_codes} codes")
        out.mkdir(parents=True, exist_ok=True)
        return asdict(s)

    return Stage("validate", "validation", run)


def _prs_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.genomics.prs import compute_prs

        cohort = run_dir / "cohort"
        scores = sorted((cohort / "genomics" / "scores").glob("*.txt"))
        s = compute_prs(cohort / "genomics" / "genotypes", scores, out / "PRS.parquet", meds_dir=cohort, overwrite=True)
        print(f"  PRS: {len(s.traits)} traits x {s.n_samples:,} samples ({len(s.dropped_traits)} traits below the match threshold)")
        return asdict(s)

    return Stage("prs", "prs", run)


def _tokenize_stage() -> Stage:
    def run(run_dir: Path, out: Path) -> dict:
        from dataclasses import asdict

        from ehrfast.tokenize import tokenize_dataset

        s = tokenize_dataset(run_dir / "cohort", out, overwrite=True)
        print(f"  tokens: vocabulary {s.vocab_size}; " + ", ".join(f"{k} {v['tokens']:,}" for k, v in s.splits.items()))
        return asdict(s)

    return Stage("tokenize", "tokens", run)


def run_demo(out_dir: str | Path, n_subjects: int = 5_000, seed: int = 0, force: bool = False) -> dict[str, dict]:
    """Runs every available stage on a fresh synthetic cohort; returns each stage's summary."""
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = [_synth_stage(n_subjects, seed), _validate_stage(), _prs_stage(), _tokenize_stage()]
    results = {}
    upstream_ran = False  # a rerun stage invalidates everything after it
    for i, stage in enumerate(stages, start=1):
        print(f"== stage {i}/{len(stages)}: {stage.name}")
        results[stage.name], ran = run_stage(stage, run_dir, force or upstream_ran)
        upstream_ran |= ran
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"demo finished: outputs in {run_dir}/")
    return results
