"""Labels in the MEDS label schema for users without ACES (``ehrfast label``).

Public API::

    make_labels(meds_dir, task, out_path, *, splits=None, overwrite=False) -> LabelSummary
"""

from ehrfast.labels.incidence import LabelSummary, make_labels

__all__ = ["LabelSummary", "make_labels"]
