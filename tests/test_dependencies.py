"""The package runs with its declared dependencies only: pandas is a test extra, so no module
of ehrfast may use it (the README's demo command once failed on ``to_pandas()``)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import ehrfast

PACKAGE = Path(ehrfast.__file__).resolve().parent
TEST_ONLY = re.compile(r"^\s*(import pandas|from pandas\b)|\.to_pandas\(\)", re.M)


def test_no_module_uses_pandas():
    offenders = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py")) if TEST_ONLY.search(p.read_text())]
    assert offenders == [], f"pandas is not a runtime dependency of ehrfast: {offenders}"


# distribution name -> import name, where they differ
IMPORT_NAME = {"scikit-learn": "sklearn", "pyyaml": "yaml"}
# extras imported only where guarded (an optional feature says what to install when missing)
GUARDED_EXTRAS = {"triton", "pgenlib", "cyvcf2", "cbgen", "dask", "distributed"}


def test_every_third_party_import_is_a_runtime_dependency():
    """A plain ``pip install .`` must run every module: the demo once failed on scikit-learn,
    a test extra only."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]  # the checkout's
    declared = {IMPORT_NAME.get(n, n) for n in (re.split(r"[<>=!;\[ ]", d)[0].strip().lower() for d in meta["dependencies"])}
    imported = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "ehrfast"}
    assert third_party - declared - GUARDED_EXTRAS == set(), f"imported by ehrfast but not a runtime dependency: {third_party - declared}"
