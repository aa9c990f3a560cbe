"""Shared fixtures: paths to the shared reference data, and small synthetic cohorts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EHRFAST_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $EHRFAST_SHARED_DATA); tests that need it skip when it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory):
    """A 1,500-subject cohort with a small genotype panel, generated once per test session."""
    from ehrfast.synth.generator import SyntheticConfig, generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "small"
    cfg = SyntheticConfig(n_subjects=1_500, seed=7, n_variants=1_500, n_null_traits=12,
                          causal_variants=100, score_variants=400, shard_size=600)
    summary = generate_cohort(out, cfg, progress=False)
    return out, cfg, summary


@pytest.fixture(autouse=True)
def _backend_settings_read_afresh():
    """Backend choices are read from the environment once per process: a test that sets an
    ``EHRFAST_*`` variable calls ``backends.refresh()``; afterwards the next test reads afresh."""
    yield
    from ehrfast import backends

    backends.refresh()


@pytest.fixture(scope="session")
def meds_evaluation():
    """Runs the real ``meds-evaluation-cli`` on a predictions file and returns its JSON results
    (skips when meds-evaluation is not installed)."""
    import json
    import shutil
    import subprocess
    import tempfile

    pytest.importorskip("meds_evaluation")
    cli = shutil.which("meds-evaluation-cli")
    if cli is None:
        pytest.skip("meds-evaluation-cli is not on PATH")

    def run(path) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "results.json"
            done = subprocess.run([cli, f"predictions_path={path}", f"output_file={out}"], capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"meds-evaluation-cli rejected {path}:\n{done.stderr[-3000:]}"
            return json.loads(out.read_text())

    return run
