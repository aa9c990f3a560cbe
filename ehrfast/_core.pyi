"""Type stubs for the compiled C++ core ``ehrfast._core``."""

import numpy as np
import numpy.typing as npt

def pack_bed(genotypes: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """[n_variants, n_samples] int8 A1 counts (-1 missing) -> [n_variants, ceil(n_samples/4)] uint8."""

def unpack_bed(packed: npt.NDArray[np.uint8], n_samples: int) -> npt.NDArray[np.int8]:
    """[n_variants, ceil(n_samples/4)] uint8 -> [n_variants, n_samples] int8 A1 counts (-1 missing)."""

def built_with_openmp() -> bool: ...

def tokenize_rows(
    time: npt.NDArray[np.int64],
    entry: npt.NDArray[np.int32],
    value: npt.NDArray[np.float32],
    seg: npt.NDArray[np.int64],
    keep: npt.NDArray[np.uint8],
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
    want_share: bool,
) -> tuple[
    npt.NDArray[np.int32],  # tokens [T]
    npt.NDArray[np.int64],  # token times µs [T]
    npt.NDArray[np.int64],  # offsets [n_kept + 1]
    npt.NDArray[np.int32],  # static lengths [n_kept]
    npt.NDArray[np.int64],  # birth times µs [n_kept] (int64 min = unknown)
    tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]] | None,  # (bin, gap share µs) per interval token
]:
    """Tokenize one shard's rows (rules: ehrfast/tokenize/reference.py)."""

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
