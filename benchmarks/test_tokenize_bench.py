"""Tokenizer throughput: the whole command (parquet on disk -> arrays on disk, fit on train
included) against simply reading the same parquet columns with pyarrow, and against the
Python reference — same cohort, same run.

    EHRFAST_BENCH_SUBJECTS=100000 pytest benchmarks/test_tokenize_bench.py --benchmark-only \
        --benchmark-columns=min,median,rounds

Set EHRFAST_BENCH_REFERENCE=0 to skip the (slow) Python reference at large sizes.
"""

from __future__ import annotations

import os
import shutil

import pyarrow.parquet as pq
import pytest

from ehrfast.data.meds import data_files
from ehrfast.synth.generator import SyntheticConfig, generate_cohort
from ehrfast.tokenize import tokenize_dataset

N_SUBJECTS = int(os.environ.get("EHRFAST_BENCH_SUBJECTS", "20000"))
COLUMNS = ["subject_id", "time", "code", "numeric_value"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "cohort"
    generate_cohort(root, SyntheticConfig(n_subjects=N_SUBJECTS, n_variants=200, n_null_traits=0, causal_variants=20, score_variants=50), progress=False)
    files = [f.path for fs in data_files(root).values() for f in fs]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return root, files, rows


def _read(files, dictionary: bool):
    return sum(pq.read_table(f, columns=COLUMNS, read_dictionary=["code"] if dictionary else None).num_rows for f in files)


@pytest.mark.parametrize("dictionary", [False, True], ids=["strings", "dictionary"])
def test_plain_pyarrow_read(benchmark, cohort, dictionary):
    root, files, rows = cohort
    benchmark.group = f"tokenize {N_SUBJECTS:,} subjects"
    benchmark.extra_info["rows"] = rows
    assert benchmark.pedantic(_read, args=(files, dictionary), rounds=5, iterations=1) == rows


@pytest.mark.parametrize("backend", ["cpp", "python"])
def test_tokenize_command(benchmark, cohort, tmp_path, backend):
    if backend == "python" and os.environ.get("EHRFAST_BENCH_REFERENCE", "1") == "0":
        pytest.skip("EHRFAST_BENCH_REFERENCE=0")
    root, _, rows = cohort
    out = tmp_path / "tok"
    benchmark.group = f"tokenize {N_SUBJECTS:,} subjects"
    benchmark.extra_info["rows"] = rows

    def fresh_output():  # a first run: no earlier output to delete inside the timed region
        shutil.rmtree(out, ignore_errors=True)

    def run():
        return tokenize_dataset(root, out, backend=backend, progress=False)

    summary = benchmark.pedantic(run, setup=fresh_output, rounds=3 if backend == "cpp" else 1, iterations=1)
    benchmark.extra_info["tokens"] = sum(s["tokens"] for s in summary.splits.values())
