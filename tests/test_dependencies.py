"""The package runs with its declared dependencies only: pandas is a test extra, so no module
of ehrfast may use it (the README's demo command once failed on ``to_pandas()``)."""

from __future__ import annotations

import re
from pathlib import Path

import ehrfast

PACKAGE = Path(ehrfast.__file__).resolve().parent
TEST_ONLY = re.compile(r"^\s*(import pandas|from pandas\b)|\.to_pandas\(\)", re.M)


def test_no_module_uses_pandas():
    offenders = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py")) if TEST_ONLY.search(p.read_text())]
    assert offenders == [], f"pandas is not a runtime dependency of ehrfast: {offenders}"
