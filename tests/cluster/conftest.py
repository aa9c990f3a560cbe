"""Shared by the scale-out tests: a two-worker LocalCluster on loopback for the whole session,
and the byte-for-byte comparison of two output trees."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

MARKER = ".ehrfast-output.json"  # holds the time it was written: the one file two runs never share


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (or of the file), by relative path; ehrfast's output
    marker left out."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER)
    return {str(f.relative_to(root.parent if root.is_file() else root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def assert_same_files(a: Path, b: Path) -> None:
    ha, hb = file_hashes(a), file_hashes(b)
    assert ha.keys() == hb.keys(), f"different files: {sorted(ha.keys() ^ hb.keys())}"
    differ = [k for k in ha if ha[k] != hb[k]]
    assert differ == [], f"these files differ between the one-process and the cluster run: {differ}"
    assert ha, "nothing was compared"


@pytest.fixture(scope="session")
def client():
    """A Client of a LocalCluster of 2 single-threaded worker processes (loopback only). The
    tests' own task functions travel by reference (Dask pickles a task by value only when its
    outermost object is from a by-value module), so the workers must import this test package:
    they are spawned with this process's sys.path, to which the repository root is appended
    (after site-packages, so that an installed ehrfast is still the one tested)."""
    import logging
    import sys

    root = str(Path(__file__).resolve().parents[2])
    added = root not in sys.path
    if added:
        sys.path.append(root)
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                      silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as c:
            yield c
    finally:
        if added:
            sys.path.remove(root)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """A 900-subject synthetic cohort in shards of 150 subjects (so every split has several),
    with genotypes and its score files."""
    from ehrfast.synth.generator import SyntheticConfig, generate_cohort

    out = tmp_path_factory.mktemp("cluster") / "cohort"
    cfg = SyntheticConfig(n_subjects=900, seed=11, n_variants=1_200, n_null_traits=12, causal_variants=80, score_variants=300,
                          shard_size=150)
    generate_cohort(out, cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def mimic(shared_data) -> Path:
    return shared_data / "mimic-iv-demo-meds"


@pytest.fixture(scope="session")
def scoring_run(cohort, tmp_path_factory):
    """The cohort tokenized and a tiny model (no PRS) trained on it: (cohort, directory with tok/ and run/)."""
    from ehrfast.tokenize import tokenize_dataset
    from ehrfast.train import TrainConfig, train

    d = tmp_path_factory.mktemp("scoring")
    tokenize_dataset(cohort, d / "tok", progress=False)
    train(d / "tok", d / "run", TrainConfig(preset="tiny", steps=4, batch_size=2, seq_len=32, eval_every=4, eval_batches=1, modality="none"),
          progress=False)
    return cohort, d
