"""ehrfast: fast generative EHR foundation models with genomics.

The pipeline (one public function and one CLI command per arrow)::

    MEDS dir --tokenize--> TokenizedDataset --+
    genotypes + score files --prs--> PRSMatrix --+--train--> checkpoint --score--> predictions --evaluate--> report
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ehrfast._backend import build_info

try:
    __version__ = version("ehrfast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "build_info"]
