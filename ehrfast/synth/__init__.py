"""The synthetic cohort generator (``ehrfast synth``): MEDS health records, PLINK genotypes,
PGS-Catalog score files and the ground truth, from one seed.

Public API::

    generate_cohort(out_dir, SyntheticConfig(n_subjects=..., seed=...), *, overwrite=False) -> CohortSummary
"""

from ehrfast.synth.config import SyntheticConfig, SynthOptions
from ehrfast.synth.generator import CohortSummary, generate_cohort

__all__ = ["CohortSummary", "SynthOptions", "SyntheticConfig", "generate_cohort"]
