"""What every bad-input case checks: the exit code, that the message names the culprit, that no
input changed (a hash of every file before and after), and that nothing half-written is left."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

EHRFAST = shutil.which("ehrfast")


def tree_hash(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (or of the file), by path: equal before and after a
    command means it changed no byte, added or removed no file there."""
    out = {}
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def leftovers(root: Path) -> list[Path]:
    """Temporary files or directories ehrfast leaves when it fails half-way (``.*.tmp``, ``.*.old``)."""
    return sorted(p for p in Path(root).rglob(".*") if p.name.endswith((".tmp", ".old")))


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def ehrfast(*args, separate_process: bool = False) -> Outcome:
    """Runs a command line: in this process through ``ehrfast.cli.main`` (what the console
    script calls; stdout and stderr captured, argparse's exit caught) — a second apart instead
    of a fresh interpreter importing torch per case — or, with ``separate_process``, the console
    script as a user would. An exception that escapes ``main`` (a traceback) fails the test."""
    argv = [str(a) for a in args]
    if separate_process:
        cmd = [EHRFAST, *argv] if EHRFAST else [sys.executable, "-m", "ehrfast.cli", *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        return Outcome(proc.returncode, proc.stdout, proc.stderr)
    from ehrfast import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code if isinstance(exc.code, int) else 2
    return Outcome(code, out.getvalue(), err.getvalue())


def assert_refused(outcome: Outcome, *culprits: str) -> None:
    """Exit 2 with a one-line message naming every culprit, and no traceback."""
    assert outcome.returncode == 2, (outcome.returncode, outcome.stdout, outcome.stderr)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    for culprit in culprits:
        assert culprit in outcome.stderr, (culprit, outcome.stderr)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A 150-subject synthetic cohort (MEDS + genotypes + score files), generated once; tests copy it."""
    from ehrfast.synth.generator import SyntheticConfig, generate_cohort

    out = tmp_path_factory.mktemp("bad_inputs") / "cohort"
    generate_cohort(out, SyntheticConfig(n_subjects=150, seed=3, n_variants=300, n_null_traits=2, causal_variants=20,
                                         score_variants=80, shard_size=100), progress=False)
    return out


@pytest.fixture
def cohort(tiny_cohort, tmp_path) -> Path:
    """A private copy of the tiny cohort inside ``tmp_path/r`` (tests may try to destroy it)."""
    dest = tmp_path / "r" / "meds"
    shutil.copytree(tiny_cohort, dest)
    return dest


@dataclass(frozen=True)
class World:
    """A small pipeline already run, shared by the bad-input cases (read-only: every case hashes
    what it reads): the cohort, its tokens, a tiny trained model, held-out T2D labels, a PRS
    file and the task file."""

    cohort: Path
    tokens: Path
    model: Path
    labels: Path
    prs: Path
    task: Path

    def inputs(self) -> list[Path]:
        return [self.cohort, self.tokens, self.model, self.labels, self.prs, self.task]


@pytest.fixture(scope="session")
def world(tiny_cohort, tmp_path_factory) -> World:
    from ehrfast.genomics import compute_prs
    from ehrfast.labels import make_labels
    from ehrfast.tokenize import tokenize_dataset as tokenize
    from ehrfast.train import TrainConfig, train

    root = tmp_path_factory.mktemp("world")
    task = root / "t2d.yaml"
    task.write_text("name: t2d\ntarget_regex: [\"E11\"]\nn_samples: 2\nmax_new_tokens: 12\n")
    tokenize(tiny_cohort, root / "tokens", progress=False)
    train(root / "tokens", root / "run", TrainConfig(preset="tiny", modality="none", steps=4, seq_len=64, batch_size=4), progress=False)
    make_labels(tiny_cohort, task, root / "labels.parquet", splits=("held_out",))
    scores = sorted((tiny_cohort / "genomics" / "scores").glob("*.txt"))
    compute_prs(tiny_cohort / "genomics" / "genotypes", scores, root / "PRS.parquet", meds_dir=tiny_cohort, progress=False)
    return World(tiny_cohort, root / "tokens", root / "run" / "model", root / "labels.parquet", root / "PRS.parquet", task)


def assert_untouched(before: dict[str, str], *paths: Path) -> None:
    """No input changed, and no ``.tmp`` / ``.old`` is left beside them."""
    assert tree_hash(*paths) == before
    for p in paths:
        assert not leftovers(p if p.is_dir() else p.parent)
