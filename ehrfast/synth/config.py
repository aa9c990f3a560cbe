"""Settings of the synthetic world (``SyntheticConfig``) and the synth stage's options (light:
the command line is built from them without loading the generator)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ehrfast.errors import InvalidInputError
from ehrfast.stages import option, overwrite_option, progress_option


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic world; the defaults give the demo's cohort."""

    n_subjects: int = option("number of subjects", 10_000, flag="--subjects")
    seed: int = option("random seed (the same seed gives the same bytes)", 0)
    n_variants: int = option("genotyped variants", 8_000, flag="--variants")
    n_null_traits: int = option("score files of traits with no genetic effect", 200, flag="--null-traits")
    causal_variants: int | None = option("causal variants per disease (default: min(300, score variants / 4))", None)
    score_variants: int | None = option("variants per disease score file, causal included (default: min(1,200, variants / 2))", None)
    prs_accuracy: float = option("target correlation of a disease PRS with the true liability", 0.8)
    missing_rate: float = option("share of genotype calls set missing", 0.01)
    genotyped_fraction: float = option("share of subjects with genotypes", 0.98)
    visit_rate: float = option("routine visits per year before frailty and burden", 1.2)
    shard_size: int = option("subjects per MEDS shard", 20_000)
    split_fractions: tuple[float, float, float] = option("train, tuning and held-out shares", (0.8, 0.1, 0.1), cli=False)
    index_offsets_days: tuple[int, ...] = option("index times of the ground-truth risks, days after record start",
                                                 (0, 182, 365, 1095), cli=False)
    horizon_years: float = option("horizon of the ground-truth risks", 10.0, cli=False)
    censor_date: str = option("end of every record (ISO date)", "2025-01-01", cli=False)
    hospital: bool = option("the hospital world: ED visits with triage, stays with a latent severity, ICU, in-hospital deaths, "
                            "readmissions (MIMIC-IV codes)", True, flag="--no-hospital", negate="leave the hospital world out")

    def __post_init__(self):
        if self.score_variants is None:
            object.__setattr__(self, "score_variants", min(1_200, max(4, self.n_variants // 2)))
        if self.causal_variants is None:
            object.__setattr__(self, "causal_variants", min(300, self.score_variants // 4))

    def validate(self) -> None:
        for name in ("n_subjects", "n_variants", "n_null_traits", "shard_size", "causal_variants", "score_variants"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "n_null_traits" else 1):
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if self.n_subjects < 10:
            raise InvalidInputError(f"n_subjects must be at least 10, got {self.n_subjects}")
        if self.causal_variants > self.score_variants or self.score_variants > self.n_variants:
            raise InvalidInputError("need causal_variants <= score_variants <= n_variants")
        if len(self.split_fractions) != 3 or not math.isclose(sum(self.split_fractions), 1.0) or min(self.split_fractions) < 0:
            raise InvalidInputError(f"split_fractions must be three shares >= 0 that sum to 1, got {self.split_fractions}")
        if not 0 < self.prs_accuracy <= 1:
            raise InvalidInputError("prs_accuracy must be in (0, 1]")
        for name in ("missing_rate", "genotyped_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidInputError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.visit_rate < math.inf or not 0 < self.horizon_years < math.inf:
            raise InvalidInputError("visit_rate and horizon_years must be positive finite numbers")


@dataclass
class SynthOptions:
    """``ehrfast synth``: the arguments of ``ehrfast.synth.generate_cohort``."""

    out_dir: Path = option("output directory (must not exist unless --overwrite)", role="output_dir", flag="--out")
    config: SyntheticConfig = option("the synthetic world's settings", default_factory=SyntheticConfig)
    overwrite: bool = overwrite_option("the output directory")
    progress: bool = progress_option()
