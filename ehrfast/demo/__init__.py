"""``ehrfast demo``: the pipeline end to end on a fresh synthetic cohort, and its report.

Public API::

    run_demo(out_dir, DemoOptions(n_subjects=5_000, seed=0, force=False, train_steps=2_000)) -> {step: summary}
"""

from ehrfast.demo.options import DemoOptions
from ehrfast.demo.pipeline import run_demo

__all__ = ["DemoOptions", "run_demo"]
