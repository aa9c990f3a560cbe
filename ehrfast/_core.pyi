"""Type stubs for the compiled C++ core ``ehrfast._core``."""

import numpy as np
import numpy.typing as npt

def pack_bed(genotypes: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """[n_variants, n_samples] int8 A1 counts (-1 missing) -> [n_variants, ceil(n_samples/4)] uint8."""

def unpack_bed(packed: npt.NDArray[np.uint8], n_samples: int) -> npt.NDArray[np.int8]:
    """[n_variants, ceil(n_samples/4)] uint8 -> [n_variants, n_samples] int8 A1 counts (-1 missing)."""

def built_with_openmp() -> bool: ...

class TimelineProgram:
    """A fitted code table + timeline rules (ehrfast/tokenize/reference.py has the rules)."""

    def __init__(
        self,
        pre_off: npt.NDArray[np.int64],
        pre: npt.NDArray[np.int32],
        post_off: npt.NDArray[np.int64],
        post: npt.NDArray[np.int32],
        cut_off: npt.NDArray[np.int64],
        cuts: npt.NDArray[np.float64],
        interval_lower: npt.NDArray[np.int64],
        interval_token: npt.NDArray[np.int32],
        q_first: int,
        n_quantiles: int,
        timeline_end: int,
        age_tokens: bool,
    ) -> None: ...
    def measure(
        self, time: npt.NDArray[np.int64], entry: npt.NDArray[np.int32], value: npt.NDArray[np.float32],
        seg: npt.NDArray[np.int64], keep: npt.NDArray[np.uint8],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Per kept subject: (n_tokens, n_intervals, static_lengths, births µs)."""
    def write(
        self, time: npt.NDArray[np.int64], entry: npt.NDArray[np.int32], value: npt.NDArray[np.float32],
        seg: npt.NDArray[np.int64], keep: npt.NDArray[np.uint8], token_offsets: npt.NDArray[np.int64],
        interval_offsets: npt.NDArray[np.int64], out_tokens: npt.NDArray[np.int32], out_times: npt.NDArray[np.int64],
        out_bins: npt.NDArray[np.int32], out_shares: npt.NDArray[np.float64],
    ) -> None:
        """Writes kept subjects' tokens into caller-owned arrays (checked against measure())."""

def score_dense(
    packed: npt.NDArray[np.uint8], n_samples: int, packed_row: npt.NDArray[np.int32], lut: npt.NDArray[np.float64],
    weight: npt.NDArray[np.float64], scores: npt.NDArray[np.float64],
) -> None:
    """scores[s, t] += Σ_r lut[r][code(packed_row[r], s)] · weight[r, t], in place; scores [n_samples, n_traits]."""

def score_sparse(
    packed: npt.NDArray[np.uint8], n_samples: int, packed_row: npt.NDArray[np.int32], lut: npt.NDArray[np.float64],
    trait_off: npt.NDArray[np.int64], row: npt.NDArray[np.int32], weight: npt.NDArray[np.float64], scores: npt.NDArray[np.float64],
) -> None:
    """scores[t, s] += lut[row[k]][code(packed_row[row[k]], s)] · weight[k] over trait t's pairs k, in place; scores [n_traits, n_samples]."""

def score_dosages(
    dosages: npt.NDArray[np.float64], p_alt: npt.NDArray[np.float64], trait_off: npt.NDArray[np.int64], row: npt.NDArray[np.int32],
    effect_is_alt: npt.NDArray[np.uint8], weight: npt.NDArray[np.float64], kind: int, mean_impute: bool, center: bool,
    variance_standardize: bool, plink2_center_quirk: bool, output: int, scores: npt.NDArray[np.float64],
) -> None:
    """Fractional-dosage scoring, in place (see ehrfast.genomics.score.call_values)."""

def bed_allele_counts(packed: npt.NDArray[np.uint8], n_samples: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(A1 count sum, called samples) per variant."""

def event_counts(time: npt.NDArray[np.int64], entry: npt.NDArray[np.int32], seg: npt.NDArray[np.int64], birth_entry: int) -> npt.NDArray[np.int64]:
    """Timed, non-birth rows per subject."""

def code_subject_counts(entry: npt.NDArray[np.int32], seg: npt.NDArray[np.int64], n_entries: int) -> npt.NDArray[np.int64]:
    """Number of subjects in which each entry occurs."""

def grouped_quantiles(
    group: npt.NDArray[np.int32], values: npt.NDArray[np.float64], n_groups: int, probs: list[float], min_count: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(offsets [n_groups + 1], cut points, counts) — numpy 'nearest' quantiles, duplicates removed."""

def grouped_mean_median(
    group: npt.NDArray[np.int32], values: npt.NDArray[np.float64], n_groups: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(count, mean, median) per group."""
