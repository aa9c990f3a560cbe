"""Type stubs for the compiled C++ core ``ehrfast._core``."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def pack_bed(genotypes: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """[n_variants, n_samples] int8 A1 counts (-1 missing) -> [n_variants, ceil(n_samples/4)] uint8."""

def unpack_bed(packed: npt.NDArray[np.uint8], n_samples: int) -> npt.NDArray[np.int8]:
    """[n_variants, ceil(n_samples/4)] uint8 -> [n_variants, n_samples] int8 A1 counts (-1 missing)."""

def built_with_openmp() -> bool: ...
def kernel_isa() -> str:
    """The vector unit the dense and sparse PRS kernels run on: avx512f, avx2, avx, sse2, neon or scalar."""

def kernel_isa_chosen_at_run_time() -> bool:
    """Whether a portable build picked ``kernel_isa()`` for this CPU when loaded (not fixed when compiled)."""

class CodeTableArrays:
    """What each code-table entry emits, as CSR arrays (``CodeTable.csr()``)."""

    def __init__(
        self,
        pre_off: npt.NDArray[np.int64],
        pre: npt.NDArray[np.int32],
        post_off: npt.NDArray[np.int64],
        post: npt.NDArray[np.int32],
        cut_off: npt.NDArray[np.int64],
        cuts: npt.NDArray[np.float64],
    ) -> None: ...

class TimelineRules:
    """Interval bins (lower edges µs, token ids), Q1's id, the number of quantiles, TIMELINE_END's id (-1: none), age tokens,
    age rounding (0: half up, 1: ethos)."""

    def __init__(self, interval_lower: npt.NDArray[np.int64], interval_token: npt.NDArray[np.int32], q_first: int, n_quantiles: int,
                 timeline_end: int, age_tokens: bool, age_rounding: int = 0) -> None: ...

class TimelineProgram:
    """A fitted code table + timeline rules (ehrfast/tokenize/reference.py has the rules)."""

    def __init__(self, table: CodeTableArrays, rules: TimelineRules) -> None: ...
    def tokenize(
        self, time: npt.NDArray[np.int64], code: npt.NDArray[np.int32], entry_of_code: npt.NDArray[np.int32],
        value: npt.NDArray[np.float32], seg: npt.NDArray[np.int64], keep: npt.NDArray[np.uint8], gaps: IntervalGaps | None = None,
        token_fd: int = -1, time_fd: int = -1, evict_written: bool = False,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int32] | None, npt.NDArray[np.int64] | None]:
        """(n_tokens, static_lengths, births µs) per kept subject, then (tokens, times) — both None
        when appended to the open files token_fd / time_fd (raw int32 / int64 bytes). Interval
        tokens' gap shares go to ``gaps`` when given."""

class IntervalGaps:
    """Interval-token gap shares (µs) on the training split, by bin."""

    def __init__(self, n_bins: int) -> None: ...
    @property
    def n_bins(self) -> int: ...
    def add(self, bins: npt.NDArray[np.int32], shares: npt.NDArray[np.float64]) -> None: ...
    def take(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(count, mean, median) per bin; consumes the gaps."""
    def take_shares(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
        """(bins, shares µs): every share so far, part by part in the order added; consumes them."""

class TrainStatistics:
    """Per raw code id: kept subjects it occurs in, whether on a static row, its numeric values."""

    def __init__(self) -> None: ...
    def add(
        self, time: npt.NDArray[np.int64], code: npt.NDArray[np.int32], raw_of_code: npt.NDArray[np.int32],
        value: npt.NDArray[np.float32], seg: npt.NDArray[np.int64], keep: npt.NDArray[np.uint8], n_codes: int, birth_code: int,
    ) -> None: ...
    def subject_counts(self) -> npt.NDArray[np.int64]: ...
    def on_static_row(self) -> npt.NDArray[np.uint8]: ...
    def take_quantiles(self, probs: list[float], min_count: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """(offsets [n_codes + 1], cut points, value counts) — numpy 'nearest' quantiles, duplicates removed; consumes the values."""
    def take_values(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(offsets [n_codes + 1], values): each code's values in the order added; consumes them."""
    def merge(
        self, raw_of_other: npt.NDArray[np.int32], subject_counts: npt.NDArray[np.int64], on_static_row: npt.NDArray[np.uint8],
        value_offsets: npt.NDArray[np.int64], values: npt.NDArray[np.float32], n_codes: int,
    ) -> None:
        """Adds another accumulation's partial (of other subjects): its code l is raw id raw_of_other[l] here; counts add,
        static flags OR, values are appended."""

def fill_null_times(values: npt.NDArray[np.int64], validity: npt.NDArray[np.uint8], bit_offset: int, out: npt.NDArray[np.int64]) -> None:
    """out = values, int64 min (static time) where the Arrow validity bit is clear (empty validity = no nulls)."""

def fill_null_values(values: npt.NDArray[np.float32] | npt.NDArray[np.float64], validity: npt.NDArray[np.uint8], bit_offset: int,
                     out: npt.NDArray[np.float32]) -> None:
    """out = float32 values, NaN where the Arrow validity bit is clear (empty validity = no nulls)."""

def subject_segments(subject_id: list[npt.NDArray[np.int64]], time: npt.NDArray[np.int64]
                     ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int, bool]:
    """(seg [n_subjects + 1], subject_ids, first row out of order or -1, whether its subject_id decreases)."""

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

def score_counts(
    packed: npt.NDArray[np.uint8], n_samples: int, packed_row: npt.NDArray[np.int32], named_lut: npt.NDArray[np.uint8],
    trait_off: npt.NDArray[np.int64], row: npt.NDArray[np.int32], named: npt.NDArray[np.float64], called: npt.NDArray[np.float64],
) -> None:
    """plink2's count columns, exact: named[t, s] += named_lut[row[k]][code] (0..2) and called[t, s] += 1 per non-missing
    call, over trait t's pairs k, in place; named, called [n_traits, n_samples] float64."""

def parse_score_table(
    body: bytes | bytearray | memoryview, is_numeric: Sequence[bool], n_threads: int = 0,
) -> tuple[int, int, npt.NDArray[np.float64] | None, list[tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]] | None]:
    """A tab-separated score-file body (the rows after the column line): (n_rows, declined_row, numbers [n_rows,
    n_numeric] float64 column-major, [(offsets [n_rows + 1], utf-8 bytes)] per text column). declined_row >= 0 (the
    0-based body row): a row the fast path leaves to pyarrow (blank line, CR, wrong field count, a weight that is not
    a plain finite decimal, non-ASCII text); numbers and text are then None. n_threads 0: OpenMP's maximum."""

class CallKind:
    """The genotype model of a call: ``additive``, ``dominant`` or ``recessive``."""

    additive: CallKind
    dominant: CallKind
    recessive: CallKind

class CallOutput:
    """What a call contributes: ``score``, ``nonmissing`` (1 per called genotype) or ``named`` (its named-allele dosage)."""

    score: CallOutput
    nonmissing: CallOutput
    named: CallOutput

class CallModel:
    """How each call counts and what it contributes (``ehrfast.genomics.score.ScoreModel`` + ``CallOutput``)."""

    kind: CallKind
    mean_impute: bool
    center: bool
    variance_standardize: bool
    plink2_center_quirk: bool
    output: CallOutput
    def __init__(self, kind: CallKind = ..., mean_impute: bool = True, center: bool = False, variance_standardize: bool = False,
                 plink2_center_quirk: bool = False, output: CallOutput = ...) -> None: ...

def score_dosages(
    dosages: npt.NDArray[np.float64], p_alt: npt.NDArray[np.float64], trait_off: npt.NDArray[np.int64], row: npt.NDArray[np.int32],
    effect_is_alt: npt.NDArray[np.uint8], weight: npt.NDArray[np.float64], model: CallModel, scores: npt.NDArray[np.float64],
) -> None:
    """Fractional-dosage scoring, in place (see ehrfast.genomics.score.call_values)."""

def bed_allele_counts(packed: npt.NDArray[np.uint8], n_samples: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(A1 count sum, called samples) per variant."""

def event_counts(time: npt.NDArray[np.int64], code: npt.NDArray[np.int32], entry_of_code: npt.NDArray[np.int32],
                 seg: npt.NDArray[np.int64], birth_entry: int) -> npt.NDArray[np.int64]:
    """Timed rows per subject whose entry (entry_of_code[code]) is not birth_entry."""

def bootstrap_counts(bit_generator: object, k: int, n_resamples: int) -> npt.NDArray[np.int32]:
    """[n_resamples, k] counts of k draws of 0 … k−1 each: Generator.integers(0, k, (n_resamples, k)) drawn from the
    BitGenerator ``bit_generator`` (its ``capsule``; hold its ``lock``)."""

def bootstrap_metrics(counts: npt.NDArray[np.int32], cluster: npt.NDArray[np.int32], positive: npt.NDArray[np.uint8],
                      predicted: npt.NDArray[np.uint8], sq_error: npt.NDArray[np.float64], tie_end: npt.NDArray[np.uint8]
                      ) -> npt.NDArray[np.float64]:
    """[n_resamples, n_models, 7]: AUROC, average precision, tp, fp, fn, tn, Brier score per resample and model; every
    model array [n_models, n] in the model's descending score order (AUROC and AP NaN for a one-class resample)."""
