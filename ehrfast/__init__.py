"""ehrfast: fast generative EHR foundation models with genomics.

The pipeline (one public function and one CLI command per arrow)::

    MEDS dir --tokenize--> TokenizedDataset --+
    genotypes + score files --prs--> PRSMatrix --+--train--> checkpoint --score--> predictions --evaluate--> report
"""

from __future__ import annotations

from ehrfast._version import __version__
from ehrfast.backends import build_info

__all__ = ["__version__", "build_info"]
