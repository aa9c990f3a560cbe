"""PRS settings (``PRSOptions``) and the prs stage's options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ehrfast.errors import InvalidInputError
from ehrfast.genomics.builds import normalize_build
from ehrfast.genomics.formats import FORMATS
from ehrfast.genomics.match import MatchOptions
from ehrfast.genomics.score import ScoreModel
from ehrfast.inputs import DEFAULT_MIN_OVERLAP, check_min_overlap
from ehrfast.stages import cluster_option, option, overwrite_option, progress_option


@dataclass
class PRSOptions:
    """What is scored and how the scores are made model-ready."""

    max_variants: int | None = option("per trait, the variants with the largest |weight| after matching (0 or None: all)", 1500)
    model: ScoreModel = option("how each call counts", default_factory=ScoreModel)
    match: MatchOptions = option("how score-file variants are matched", default_factory=MatchOptions)
    clip_sd: float = option("clip standardized scores at ±k standard deviations", 4.0, flag="--clip")
    raw: bool = option("write unstandardized sums, with plink2's per-trait SUM, AVG, ALLELE_CT, DENOM, NAMED_ALLELE_DOSAGE_SUM", False)
    target_build: str | None = option("genome build of the genotypes (GRCh37/hg19 or GRCh38/hg38): position-matched score files "
                                      "of another build are refused; default: what the VCF/.pvar header says, else unchecked", None)

    variant_block: int = option("distinct variants per scoring block (one Dask task each with --cluster; a worker holds one "
                                "block's genotype rows and weights, plus one [samples x traits] partial sum)", 100_000)
    trait_block: int | None = option("traits per scoring task (a task = a block of variants x a group of traits); default: as "
                                     "many as keep one task's [samples x traits] float64 partial sums under 512 MiB (167 at 400,000 "
                                     "samples; a third of that with --raw's count columns)", None)
    min_subject_overlap: float = option("refuse when fewer than this share of the genotype samples reach a subject (through "
                                        "--sample-map) or a MEDS subject (--meds) — of the smaller side", DEFAULT_MIN_OVERLAP)

    def __post_init__(self):
        check_min_overlap(self.min_subject_overlap, "min_subject_overlap (--min-subject-overlap)")
        if self.max_variants is not None and (isinstance(self.max_variants, bool) or not isinstance(self.max_variants, int)):
            raise InvalidInputError(f"max_variants must be an integer or None, got {self.max_variants!r}")
        if self.max_variants is not None and self.max_variants <= 0:
            self.max_variants = None  # "0 = all", as the command line spells it
        self.target_build = normalize_build(self.target_build, where="target_build (--target-build)")
        if isinstance(self.variant_block, bool) or not isinstance(self.variant_block, int) or self.variant_block < 1:
            raise InvalidInputError(f"variant_block (--variant-block) must be a positive number of variants, got {self.variant_block!r}")
        if self.trait_block is not None and (isinstance(self.trait_block, bool) or not isinstance(self.trait_block, int)
                                             or self.trait_block < 1):
            raise InvalidInputError(f"trait_block (--trait-block) must be a positive number of traits, got {self.trait_block!r}")
        if not 0 < self.clip_sd < math.inf:
            raise InvalidInputError(f"clip_sd (--clip) must be a positive finite number of standard deviations, got {self.clip_sd}")


@dataclass
class PRSStageOptions:
    """``ehrfast prs``: the arguments of ``ehrfast.genomics.compute_prs``."""

    genotypes: Path = option("PLINK prefix (.bed or .pgen), VCF/BCF, or BGEN", role="input", flag="--genotypes")
    score_files: tuple[Path, ...] = option("PGS Catalog scoring files or ID/effect_allele/weight tables", role="input",
                                           flag="--scores")
    out_path: Path = option("output parquet (prs_meta.json is written beside it)", role="output_file", flag="--out")
    options: PRSOptions = option("PRS settings", default_factory=PRSOptions)
    backend: str | None = option("auto, fast (the C++ core) or reference (numpy); default: the process setting", None)
    sample_map: Path | None = option("TSV of 'IID subject_id' or 'FID IID subject_id' lines (when IIDs are not MEDS subject ids)", None,
                                     role="input")
    meds_dir: Path | None = option("MEDS dataset: check ids and fit the standardization on its train split", None, role="input",
                                   flag="--meds")
    bgen_ref_last: bool = option("BGEN stores ALT first (plink2 'ref-last'); default: REF first", False)
    format: str = option("parquet (model-ready), sscore (plink2 --score layout) or pgsc_calc (aggregated_scores.txt.gz); "
                         "auto: by the output's name (.sscore, .txt.gz, else parquet)", "auto", choices=FORMATS)
    sampleset: str | None = option("pgsc_calc sampleset column; default: the genotype file's name", None)
    overwrite: bool = overwrite_option("the output files")
    progress: bool = progress_option()
    cluster: str | None = cluster_option()


__all__ = ["PRSOptions", "PRSStageOptions"]
