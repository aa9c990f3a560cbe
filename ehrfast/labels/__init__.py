"""Labels in the MEDS label schema for users without ACES (``ehrfast label``): incidence labels,
and anchored labels of the ETHOS-ARES event tasks (one row per anchor, with its true first event).

Public API::

    make_labels(meds_dir, task, out_path, *, splits=None, drop_timeline_end=False, overwrite=False)
        -> LabelSummary | AnchoredLabelSummary
"""

from ehrfast.labels.anchored import AnchoredLabelSummary
from ehrfast.labels.incidence import LabelSummary
from ehrfast.labels.make import make_labels

__all__ = ["AnchoredLabelSummary", "LabelSummary", "make_labels"]
