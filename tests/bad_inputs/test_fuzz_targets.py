"""The fuzz targets (``fuzz/targets.py``) replayed in the ordinary test run: every seed of the
corpus ``fuzz/make_corpus.py`` writes and every past finding in ``fuzz/regressions/<target>/``
must pass — a refusal (``EhrfastError``) or agreement between the C++ core and the reference.
The coverage-guided runs themselves (atheris, ASan) are ``.ci/fuzz``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"fuzz.{name}", ROOT / "fuzz" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


targets, corpus = _load("targets"), _load("make_corpus")
SEEDS = {"plink": corpus.plink_seeds(), "scorefile": corpus.scorefile_seeds(), "meds_columns": corpus.meds_seeds()}
REGRESSIONS = sorted((ROOT / "fuzz" / "regressions").glob("*/*"))


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_every_seed_passes(target):
    assert SEEDS[target], "a target without seeds fuzzes from nothing"
    for seed in SEEDS[target]:
        targets.TARGETS[target](seed)


@pytest.mark.parametrize("finding", REGRESSIONS, ids=[f"{p.parent.name}/{p.name[:14]}" for p in REGRESSIONS])
def test_past_findings_stay_fixed(finding):
    targets.TARGETS[finding.parent.name](finding.read_bytes())


def test_plink_seeds_reach_the_scoring_kernels(monkeypatch):
    """A seed that the parsers refuse would leave the kernels unfuzzed: most seeds must score."""
    import ehrfast.genomics.score as score

    calls = []
    real = score.score_traits
    monkeypatch.setattr(score, "score_traits", lambda *a, **k: (calls.append(k["backend"]), real(*a, **k))[1])
    for seed in SEEDS["plink"]:
        targets.plink(seed)
    assert calls.count("fast") >= len(SEEDS["plink"]) - 1


def test_the_differential_check_catches_a_disagreement(monkeypatch):
    """The oracle can fail: a core that returns a wrong array is caught by the meds_columns target."""
    import numpy as np

    import ehrfast.data.meds as meds

    real = meds.time_values
    monkeypatch.setattr(meds, "time_values", lambda column, backend=None: real(column, backend) + (backend == "fast"))
    caught = 0
    for seed in SEEDS["meds_columns"]:
        try:
            targets.meds_columns(seed)
        except AssertionError:
            caught += 1
    assert caught >= 2  # the readable seeds (not the empty one, not the unsorted one) disagree
    assert np.isfinite(real(meds.pa.chunked_array([meds.pa.array([1], meds.pa.timestamp("us"))]))).all()
