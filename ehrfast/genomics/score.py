"""Multi-trait dosage scoring with plink2's semantics; C++ fast path for .bed, numpy reference.

PRS(s, t) = Σ_v w(v, t) · T(dosage of the effect allele of v in s), where T is the identity
(additive), min(d, 1) (dominant) or max(d − 1, 0) (recessive), optionally centred (− 2p) or
variance-standardized (/ sqrt(2p(1 − p))), with p the effect-allele frequency in the data.
A missing call is mean-imputed as plink2 does (additive: 2p; dominant/recessive: p), or
contributes nothing with ``mean_impute=False``. plink2's ``center``/``variance-standardize``
modes add the uncentred imputed value for a missing call; ``plink2_center_quirk=True``
reproduces that, the default gives a missing call zero weight after centring.

Backends: the numpy reference decodes dosage blocks and multiplies by weight matrices; the
C++ path reads .bed bytes directly — score files with many traits over the same variants as
one dense weight matrix (4-row lookup tables, see csrc/prs/score.hpp), single-trait files as
sparse (trait, variant) pairs — and accumulates fractional dosages (.pgen, VCF) per trait.

Besides the sums, ``plink2_columns=True`` gives ALLELE_CT (2 × non-missing calls), DENOM
(2 × variants with mean imputation, else ALLELE_CT) and NAMED_ALLELE_DOSAGE_SUM per trait.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass

import numpy as np

from ehrfast.backends import require_core, resolve_backend
from ehrfast.cluster import Cluster, results_in_order
from ehrfast.errors import InvalidInputError
from ehrfast.genomics.genotypes import BedSource, GenotypeSource
from ehrfast.genomics.match import TraitMatch
from ehrfast.stages import option

BED_ALT_DOSAGE = np.array([2.0, np.nan, 1.0, 0.0])  # A1 (= ALT here) count per 2-bit code
MODELS = ("additive", "dominant", "recessive")


@dataclass(frozen=True)
class ScoreModel:
    """How each call counts (plink2's --score modifiers)."""

    model: str = option("genotype model of each call", "additive", choices=MODELS)
    mean_impute: bool = option("missing calls count as twice the effect-allele frequency (plink2's default); off: they count 0",
                               True, flag="--no-mean-imputation", negate="missing calls contribute 0 (plink2 no-mean-imputation)")
    center: bool = option("subtract each variant's mean dosage (plink2 center)", False)
    variance_standardize: bool = option("center and scale each variant to unit variance (plink2 variance-standardize)", False)
    plink2_center_quirk: bool = option("reproduce plink2: a missing call adds the uncentred mean in center/variance-standardize "
                                       "modes", False)

    def __post_init__(self):
        if self.model not in MODELS:
            raise InvalidInputError(f"model must be one of {MODELS}, got {self.model!r}")
        if (self.center or self.variance_standardize) and self.model != "additive":
            raise InvalidInputError("center / variance_standardize apply to the additive model only")
        if self.center and self.variance_standardize:
            raise InvalidInputError("choose center or variance_standardize, not both")


class CallOutput(enum.Enum):
    """What a call contributes (the C++ core's ``CallOutput``, matched by name)."""

    score = "score"  # the transformed, imputed value
    nonmissing = "nonmissing"  # 1 per non-missing call (ALLELE_CT)
    named = "named"  # the model-transformed dosage of non-missing calls (NAMED_ALLELE_DOSAGE_SUM)


SCORE, NONMISSING, NAMED = CallOutput.score, CallOutput.nonmissing, CallOutput.named


def core_call_model(core, m: ScoreModel, output: CallOutput):
    """``m`` as the C++ core's ``CallModel`` object for ``output``."""
    return core.CallModel(kind=core.CallKind.__members__[m.model], mean_impute=m.mean_impute, center=m.center,
                          variance_standardize=m.variance_standardize, plink2_center_quirk=m.plink2_center_quirk,
                          output=core.CallOutput.__members__[output.value])


def call_values(d: np.ndarray, p: np.ndarray, m: ScoreModel, output: CallOutput = SCORE) -> np.ndarray:
    """Per-call contribution before weighting. ``d`` [k, ...] effect-allele dosages (NaN =
    missing), ``p`` [k] effect-allele frequencies. ``output``: SCORE (the transformed,
    imputed value), NONMISSING (1 per non-missing call) or NAMED (the model-transformed
    dosage of non-missing calls, for NAMED_ALLELE_DOSAGE_SUM)."""
    d = np.asarray(d, np.float64)
    p = np.asarray(p, np.float64).reshape((-1,) + (1,) * (d.ndim - 1))
    missing = np.isnan(d)
    if output == NONMISSING:
        return (~missing).astype(np.float64)
    if m.model == "additive":
        t, imputed = d, 2 * p
    elif m.model == "dominant":
        t, imputed = np.minimum(d, 1.0), p
    else:
        t, imputed = np.maximum(d - 1.0, 0.0), p
    if output == NAMED:
        return np.where(missing, 0.0, t)
    if m.center or m.variance_standardize:
        scale = np.sqrt(2 * p * (1 - p)) if m.variance_standardize else np.ones_like(p)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(scale > 0, (t - 2 * p) / scale, 0.0)
            imputed = np.where(scale > 0, (2 * p if m.plink2_center_quirk else 0.0) / scale, 0.0)
    if not m.mean_impute:
        imputed = np.zeros_like(imputed)
    return np.where(missing, np.broadcast_to(imputed, d.shape), t)


@dataclass
class ScoreResult:
    traits: list[str]
    sample_ids: np.ndarray
    sums: np.ndarray  # [n_samples, n_traits] float64, column-major (each trait's values contiguous)
    allele_ct: np.ndarray | None = None  # [n_samples, n_traits]
    denom: np.ndarray | None = None  # [n_samples, n_traits]
    named_sum: np.ndarray | None = None  # [n_samples, n_traits]
    effect_allele_freq: dict | None = None  # trait -> [k] p of its variants

    @property
    def averages(self) -> np.ndarray:
        return self.sums / self.denom


DENSE_MIN_TRAITS = 8  # a score file with at least this many traits (and mostly non-zero weights) is scored as a matrix


@dataclass
class _Pairs:
    """All (trait, variant) pairs, indexed into the union of variants."""

    union: np.ndarray  # [u] target variant indices, ascending
    trait_off: np.ndarray  # [n_traits + 1]
    uidx: np.ndarray  # [nnz] union position
    effect_is_alt: np.ndarray  # [nnz]
    weight: np.ndarray  # [nnz]


def distinct_variants(matches: list[TraitMatch]) -> np.ndarray:
    """Sorted distinct target variants of all traits (traits of one file share their array)."""
    distinct = {id(m.variant): m.variant for m in matches}
    if not distinct:
        return np.zeros(0, np.int64)
    if len(distinct) == 1:
        return np.asarray(next(iter(distinct.values())), np.int64)  # already ascending and distinct
    x = np.concatenate(list(distinct.values()))
    if not len(x):  # a task's traits may have no variant in its block
        return x.astype(np.int64)
    end = int(x.max()) + 1
    if end <= 8 * len(x):  # indices into the target's variants, mostly covered: a mask instead of a sort (O(n), 1,000 files at once)
        seen = np.zeros(end, bool)
        seen[x] = True
        return np.flatnonzero(seen).astype(np.int64)
    x = np.sort(x.astype(np.int64))
    return x[np.r_[True, x[1:] != x[:-1]]]


def _union_positions(union: np.ndarray, matches: list[TraitMatch]) -> dict[int, np.ndarray]:
    """id(variant array) -> positions of its variants in ``union``: one search for all arrays."""
    distinct = {id(m.variant): m.variant for m in matches}
    if not distinct:
        return {}
    lookup = np.zeros(int(union[-1]) + 1 if len(union) else 0, np.int64)  # variant -> union position (union ⊂ [0, n_variants))
    lookup[union] = np.arange(len(union))
    found = lookup[np.concatenate(list(distinct.values()))]
    bounds = np.cumsum([0] + [len(v) for v in distinct.values()])
    return {key: found[a:b] for key, a, b in zip(distinct, bounds[:-1], bounds[1:])}


def _pairs(matches: list[TraitMatch], union: np.ndarray, unit_weights: bool = False) -> _Pairs:
    position = _union_positions(union, matches)
    uidx = np.concatenate([position[id(m.variant)] for m in matches]) if matches else np.zeros(0, np.int64)
    off = np.r_[0, np.cumsum([len(m.variant) for m in matches])].astype(np.int64)
    eff = np.concatenate([m.effect_is_alt for m in matches]) if matches else np.zeros(0, bool)
    w = np.concatenate([m.weight for m in matches]) if matches else np.zeros(0)
    return _Pairs(union, off, uidx.astype(np.int64), eff, np.ones_like(w, np.float64) if unit_weights else w.astype(np.float64))


@dataclass
class _Matrix:
    """Traits of one score file scored together: same variants and alleles, weights [k, n]."""

    traits: list[int]  # positions in the trait list
    variant: np.ndarray  # [k] ascending
    effect_is_alt: np.ndarray  # [k]
    weight: np.ndarray  # [k, n] float64


def _weight_matrix(group: list[TraitMatch]) -> np.ndarray:
    """[k, n] weights of traits sharing variants: the score file's own matrix when their
    weights are its columns in order (as match_score_file makes them), else a stacked copy."""
    base = group[0].weight.base
    if isinstance(base, np.ndarray) and base.ndim == 2 and base.dtype == np.float64 and base.shape == (len(group[0].weight), len(group)) \
            and all(m.weight.base is base and m.weight.ctypes.data == base.ctypes.data + base.strides[1] * j for j, m in enumerate(group)):
        return base
    return np.column_stack([m.weight for m in group]).astype(np.float64, copy=False)


def _split_dense(matches: list[TraitMatch], unit_weights: bool) -> tuple[list[_Matrix], list[int]]:
    """(weight matrices of wide score files, positions of the traits scored as sparse pairs)."""
    by_file: dict[tuple[int, int], list[int]] = {}
    for j, m in enumerate(matches):
        by_file.setdefault((id(m.variant), id(m.effect_is_alt)), []).append(j)
    matrices, sparse = [], []
    for traits in by_file.values():
        first = matches[traits[0]]
        if len(traits) >= DENSE_MIN_TRAITS and len(first.variant):
            w = np.ones((len(first.variant), len(traits))) if unit_weights else _weight_matrix([matches[j] for j in traits])
            if unit_weights or np.count_nonzero(w) >= 0.25 * w.size:
                matrices.append(_Matrix(traits, np.asarray(first.variant, np.int64), np.asarray(first.effect_is_alt, bool), w))
                continue
        sparse.extend(traits)
    return matrices, sorted(sparse)


def _block_pairs(pairs: _Pairs, block: int):
    """Yields (a, b, pair indices of union block [a, b), ordered by trait, CSR offsets over traits).
    Each trait's pairs are sorted by union position, so a block is a slice of every trait."""
    n_traits = len(pairs.trait_off) - 1
    n_blocks = -(-len(pairs.union) // block)
    trait_of_pair = np.repeat(np.arange(n_traits), np.diff(pairs.trait_off))
    counts = np.bincount(trait_of_pair * n_blocks + pairs.uidx // block, minlength=n_traits * n_blocks).reshape(n_traits, n_blocks)
    cuts = pairs.trait_off[:-1, None] + np.c_[np.zeros(n_traits, np.int64), np.cumsum(counts, axis=1)]  # [n_traits, n_blocks + 1]
    for k in range(n_blocks):
        a, b = k * block, min((k + 1) * block, len(pairs.union))
        lo, hi = cuts[:, k], cuts[:, k + 1]
        sizes = hi - lo
        idx = np.repeat(lo - np.r_[0, np.cumsum(sizes)[:-1]], sizes) + np.arange(int(sizes.sum()))
        yield a, b, idx, np.r_[0, np.cumsum(sizes)].astype(np.int64)


def alt_frequency(source: GenotypeSource, variants: np.ndarray, block: int = 4096, backend: str | None = None) -> np.ndarray:
    """ALT allele frequency among non-missing calls, per variant (NaN when all are missing)."""
    out = np.empty(len(variants))
    if isinstance(source, BedSource) and resolve_backend(backend, "PRS scorer") == "cpp":
        core = require_core()
        for a in range(0, len(variants), block):
            packed = source.packed(variants[a : a + block])
            alt_sum, called = core.bed_allele_counts(packed, source.n_samples)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[a : a + block] = alt_sum / (2.0 * called)
        out[~np.isfinite(out)] = np.nan
        return out
    for a in range(0, len(variants), block):
        x = source.dosages(variants[a : a + block])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a variant without calls: NaN, refused by the caller
            out[a : a + block] = np.nanmean(x, axis=1) / 2 if x.shape[1] else np.nan
    return out


DEFAULT_VARIANT_BLOCK = 100_000  # distinct variants per block (per Dask task with --cluster)
TASK_SUMS_BYTES = 512 * 2**20  # default bound on one task's partial sums: sets the traits per task


def traits_per_task(n_samples: int, n_traits: int, plink2_columns: bool, trait_block: int | None = None) -> int:
    """Traits scored together in one task: ``trait_block``, or as many as keep the task's
    [n_samples, traits] float64 partials (three of them with plink2's count columns) under
    ``TASK_SUMS_BYTES`` — all of them unless the cohort is large."""
    if trait_block is not None:
        if isinstance(trait_block, bool) or not isinstance(trait_block, int) or trait_block < 1:
            raise InvalidInputError(f"trait_block must be a positive number of traits, got {trait_block!r}")
        return min(trait_block, max(n_traits, 1))
    per_trait = 8 * max(n_samples, 1) * (3 if plink2_columns else 1)
    return max(1, min(max(n_traits, 1), TASK_SUMS_BYTES // per_trait))


def score_traits(
    source: GenotypeSource,
    matches: list[TraitMatch],
    model: ScoreModel | None = None,
    *,
    backend: str | None = None,
    plink2_columns: bool = False,
    block: int = 4096,
    progress=None,
    variant_block: int = DEFAULT_VARIANT_BLOCK,
    trait_block: int | None = None,
    cluster: Cluster | None = None,
) -> ScoreResult:
    """Scores every trait of ``matches`` on every sample of ``source``. ``progress(k)`` is
    called as work proceeds; the calls add up to the number of distinct variants.

    The work is cut into tasks of (block of ``variant_block`` distinct variants) × (group of
    ``trait_block`` consecutive traits, default ``traits_per_task``), each scored alone (its own
    allele frequencies, partial sums from zero), and each group's partials added in block
    order — in this process, or as one Dask task each on ``cluster`` (the source is reopened on
    each worker, each task gets only its weights): the same sums to the bit either way. A
    task holds one block's genotype rows and [n_samples, group] partial sums, whatever the
    number of traits."""
    m = model or ScoreModel()
    if isinstance(variant_block, bool) or not isinstance(variant_block, int) or variant_block < 1:
        raise InvalidInputError(f"variant_block must be a positive number of variants, got {variant_block!r}")
    union = distinct_variants(matches)
    group = traits_per_task(source.n_samples, len(matches), plink2_columns, trait_block)
    groups = [(g, min(g + group, len(matches))) for g in range(0, len(matches), group)] or [(0, 0)]
    bounds = [(a, min(a + variant_block, len(union))) for a in range(0, len(union), variant_block)] or [(0, 0)]
    tasks, labels, sizes = [], [], []
    for g0, g1 in groups:  # a group's blocks in order: its partials are added in that order
        traits = matches[g0:g1]
        for a, b in bounds:
            tasks.append(_Block(_block_matches(traits, union, a, b), a, g0, g1))
            labels.append(f"{source.path}: variants {a + 1:,}-{b:,} of {len(union):,}"
                          + (f", traits {g0 + 1:,}-{g1:,} of {len(matches):,}" if len(groups) > 1 else ""))
            sizes.append((b - a) / len(groups))  # progress counts distinct variants, whatever the grouping
    if cluster is None and len(groups) == 1:  # progress within each task (a task's variants are then its whole block)
        parts = results_in_order(None, _score_block, tasks, labels=labels, name="prs", args=(source, m, backend, plink2_columns, block, progress))
    elif cluster is None:
        parts = results_in_order(None, _score_block, tasks, labels=labels, name="prs", args=(source, m, backend, plink2_columns, block, None),
                                 progress=_scaled(progress, 1.0), sizes=sizes)
    else:
        # each task's weights travel inside it, not as scattered data: a task lost with its
        # worker is rerun from what the scheduler holds; the source pickles as its path (each
        # worker opens the files once)
        parts = results_in_order(cluster, _score_block, tasks, labels=labels, name="prs", args=(source, m, backend, plink2_columns, block, None),
                                 progress=_scaled(progress, 1.0), sizes=sizes)
    n, n_traits = source.n_samples, len(matches)
    # [n_samples, n_traits] views of trait-major memory: the kernels write traits as rows and
    # the writers read them so, without a transposing copy on either side
    sums = np.zeros((n_traits, n)).T
    allele_ct = np.zeros((n_traits, n)).T if plink2_columns else None
    named_sum = np.zeros((n_traits, n)).T if plink2_columns else None
    p_alt = np.full(len(union), np.nan)
    for task, part in zip(tasks, parts):
        cols = slice(task.first_trait, task.end_trait)
        first = task.first_variant == 0  # a group's first block is its start (assigned: -0.0 stays -0.0)
        for total, x in ((sums, part.sums), (allele_ct, part.allele_ct), (named_sum, part.named_sum)):
            if total is None:
                continue
            if first:
                total[:, cols] = x
            else:
                total[:, cols] += x
        p_alt[np.searchsorted(union, part.variants)] = part.p_alt  # a variant's frequency is the same from every task
    result = ScoreResult([t.trait for t in matches], source.sample_ids, sums)
    if plink2_columns:
        result.allele_ct = allele_ct
        result.named_sum = named_sum
        n_vars = np.array([len(t.variant) for t in matches], np.float64)
        result.denom = np.broadcast_to(2 * n_vars[:, None], (n_traits, n)).copy().T if m.mean_impute else result.allele_ct
    result.effect_allele_freq = {}
    freq_of = {}  # traits of one file share their variants and alleles (and so one frequency array)
    position = _union_positions(union, matches)
    for t in matches:
        key = (id(t.variant), id(t.effect_is_alt))
        if key not in freq_of:
            p = p_alt[position[id(t.variant)]]
            freq_of[key] = np.where(t.effect_is_alt, p, 1 - p)
        result.effect_allele_freq[t.trait] = freq_of[key]
    return result


@dataclass
class _Block:
    """One block's traits, sent as one object: Dask serializes a bare list element by element,
    which would part traits that share their arrays (and score a wide file as sparse pairs)."""

    matches: list[TraitMatch]
    first_variant: int  # position of the block in the distinct variants
    first_trait: int  # the traits [first_trait, end_trait) of the whole list
    end_trait: int


@dataclass
class _BlockScores:
    """One task's partial sums [n_samples, traits] float64 (plink2's counts when asked) and the
    ALT frequency [k] of its distinct variants ``variants`` [k]."""

    sums: np.ndarray
    allele_ct: np.ndarray | None
    named_sum: np.ndarray | None
    variants: np.ndarray
    p_alt: np.ndarray


def _block_matches(matches: list[TraitMatch], union: np.ndarray, a: int, b: int) -> list[TraitMatch]:
    """Every trait restricted to the distinct variants ``union[a:b]`` (views, not copies; traits
    that shared their variant and allele arrays still share them, so a wide score file is still
    scored as one matrix)."""
    if a == 0 and b == len(union):
        return matches
    lo, hi = union[a], union[b - 1]
    cuts: dict[int, tuple[int, int]] = {}
    shared: dict[int, np.ndarray] = {}
    out = []
    for t in matches:
        if id(t.variant) not in cuts:
            cuts[id(t.variant)] = (int(np.searchsorted(t.variant, lo, side="left")), int(np.searchsorted(t.variant, hi, side="right")))
        i, j = cuts[id(t.variant)]
        variant = shared.setdefault(id(t.variant), t.variant[i:j])
        effect = shared.setdefault(id(t.effect_is_alt), t.effect_is_alt[i:j])
        out.append(TraitMatch(t.trait, t.source, variant, effect, t.weight[i:j], t.report))
    return out


RESIDENT_ROWS_BYTES = 2**30  # a task whose block of .bed rows is larger unmaps each chunk after use, not only at its end
DECODED_ROWS_BYTES = 256 * 2**20  # bound on the float64 dosage rows decoded at once [rows, n_samples]


def decoded_rows(n_samples: int, block: int) -> int:
    """Variants decoded to float64 at a time: ``block``, fewer when a cohort is so large that
    ``block`` rows would pass ``DECODED_ROWS_BYTES`` (4096 rows of 400,000 samples are 13 GB)."""
    return max(1, min(block, DECODED_ROWS_BYTES // (8 * max(n_samples, 1))))


def _score_block(task: _Block, source: GenotypeSource, m: ScoreModel, backend: str | None, plink2_columns: bool, block: int,
                 progress) -> _BlockScores:
    """The partial scores of one task's traits from zero."""
    try:
        return _score_task(task.matches, source, m, backend, plink2_columns, block, progress)
    finally:
        source.release_pages()


def _score_task(matches: list[TraitMatch], source: GenotypeSource, m: ScoreModel, backend: str | None, plink2_columns: bool, block: int,
                progress) -> _BlockScores:
    union = distinct_variants(matches)
    rows = decoded_rows(source.n_samples, block)
    p_alt = alt_frequency(source, union, rows, backend)
    if np.isnan(p_alt).any():
        bad = int(union[np.isnan(p_alt)][0])
        raise InvalidInputError(f"{source.path}: variant {source.variants.id[bad]} has no non-missing call; cannot impute it")
    if resolve_backend(backend, "PRS scorer") == "cpp" and isinstance(source, BedSource):
        def engine(output, unit_weights, report):
            return _bed_engine(source, matches, union, p_alt, m, output, unit_weights, block, report)
    else:
        pair_engine = _dosage_engine if resolve_backend(backend, "PRS scorer") == "cpp" else _numpy_engine

        def engine(output, unit_weights, report):
            return pair_engine(source, _pairs(matches, union, unit_weights), p_alt, m, output, rows, report).T
    sums = engine(SCORE, False, progress)
    if not plink2_columns:
        return _BlockScores(sums, None, None, union, p_alt)
    if resolve_backend(backend, "PRS scorer") == "cpp" and isinstance(source, BedSource):
        named, called = _bed_counts(source, matches, union, m)
        return _BlockScores(sums, 2 * called, named, union, p_alt)
    return _BlockScores(sums, 2 * engine(NONMISSING, True, None), engine(NAMED, True, None), union, p_alt)


def value_tables(p_alt: np.ndarray, effect_is_alt: np.ndarray, m: ScoreModel, output: CallOutput) -> np.ndarray:
    """[k, 4] what each 2-bit .bed code contributes for the given effect allele of each variant
    (orientation, model transform and imputation folded in, as the C++ kernels expect)."""
    alt = call_values(np.broadcast_to(BED_ALT_DOSAGE, (len(p_alt), 4)), p_alt, m, output)
    ref = call_values(2.0 - np.broadcast_to(BED_ALT_DOSAGE, (len(p_alt), 4)), 1.0 - p_alt, m, output)
    return np.ascontiguousarray(np.where(np.asarray(effect_is_alt, bool)[:, None], alt, ref))


def _numpy_engine(source, pairs: _Pairs, p_alt, m: ScoreModel, output: CallOutput, block, progress) -> np.ndarray:
    """Reference: decode dosage blocks, transform, and multiply by the block's weight matrix."""
    n_traits = len(pairs.trait_off) - 1
    trait_of_pair = np.repeat(np.arange(n_traits), np.diff(pairs.trait_off))
    out = np.zeros((n_traits, source.n_samples))
    for a, b, idx, _ in _block_pairs(pairs, block):
        x = source.dosages(pairs.union[a:b])
        for effect_alt in (True, False):
            k = idx[pairs.effect_is_alt[idx] == effect_alt]
            if not len(k):
                continue
            d = x if effect_alt else 2.0 - x
            p = p_alt[a:b] if effect_alt else 1.0 - p_alt[a:b]
            w = np.zeros((b - a, n_traits))
            w[pairs.uidx[k] - a, trait_of_pair[k]] = pairs.weight[k]  # each (variant, trait) pair occurs once
            out += w.T @ call_values(d, p, m, output)
        if progress:
            progress(b - a)
    return out


def _bed_engine(source: BedSource, matches, union, p_alt, m: ScoreModel, output: CallOutput, unit_weights: bool, block, progress) -> np.ndarray:
    """C++ from the packed bytes: wide score files as dense weight matrices, the other traits
    as sparse pairs. Returns [n_samples, n_traits] (a view of trait-major memory)."""
    core = require_core()
    n = source.n_samples
    matrices, sparse = _split_dense(matches, unit_weights)
    sparse_matches = [matches[j] for j in sparse]
    sparse_union = distinct_variants(sparse_matches)
    # progress is reported in units of the union so that callers can size a bar by it
    work = sum(len(x.variant) for x in matrices) + len(sparse_union)
    report = _scaled(progress, len(union) / work if work else 0.0)
    out = np.zeros((len(matches), n))  # trait-major, as the sparse kernel writes and the parquet writer reads
    # a large block's rows are let go chunk by chunk (a worker then holds one chunk of them);
    # a small block's stay mapped for the next pass (counts, frequencies) and go at the task's end
    release_chunks = len(union) * source.packed_all.shape[1] > RESIDENT_ROWS_BYTES
    for x in matrices:
        lut = value_tables(p_alt[np.searchsorted(union, x.variant)], x.effect_is_alt, m, output)
        part = np.zeros((n, len(x.traits)))
        for a in range(0, len(x.variant), block):
            b = min(a + block, len(x.variant))
            core.score_dense(source.packed_all, n, x.variant[a:b].astype(np.int32), lut[a:b], np.ascontiguousarray(x.weight[a:b]), part)
            if release_chunks:
                source.release_pages(int(x.variant[a]), int(x.variant[b - 1]) + 1)
            report(b - a)
        out[x.traits] += part.T
    if sparse_matches:
        out[sparse] += _bed_sparse(core, source, _pairs(sparse_matches, sparse_union, unit_weights),
                                   p_alt[np.searchsorted(union, sparse_union)], m, output, block, report, release_chunks)
    return out.T


def _bed_counts(source: BedSource, matches: list[TraitMatch], union: np.ndarray, m: ScoreModel) -> tuple[np.ndarray, np.ndarray]:
    """(NAMED_ALLELE_DOSAGE_SUM, non-missing calls) [n_samples, n_traits] float64 from the packed
    bytes, in integers (a .bed call's named count is 0, 1 or 2 under every model): exact, so the
    same numbers as the float64 passes. Traits that share their variant and allele arrays (the
    columns of one score file) have the same counts: each such group is counted once."""
    core = require_core()
    n = source.n_samples
    group_of: dict[tuple[int, int], int] = {}
    members = []
    for t in matches:
        key = (id(t.variant), id(t.effect_is_alt))
        if key not in group_of:
            group_of[key] = len(members)
            members.append(t)
    pairs = _pairs(members, union, unit_weights=True)
    lut = np.empty((2 * len(union), 4))  # rows 2i and 2i + 1: variant i counted for its ALT and for its REF allele
    p_unused = np.full(len(union), 0.5)  # counts do not depend on the frequency
    lut[0::2] = value_tables(p_unused, np.ones(len(union), bool), m, NAMED)
    lut[1::2] = value_tables(p_unused, np.zeros(len(union), bool), m, NAMED)
    if not np.isin(lut, (0.0, 1.0, 2.0)).all():
        raise AssertionError("a .bed call's named-allele count must be 0, 1 or 2")
    named = np.zeros((len(members), n))
    called = np.zeros((len(members), n))
    rows_per_chunk = max(1, RESIDENT_ROWS_BYTES // max(source.packed_all.shape[1], 1))
    release_chunks = len(union) > rows_per_chunk
    for a, b, idx, off in _block_pairs(pairs, rows_per_chunk):  # one pass unless the rows would pass RESIDENT_ROWS_BYTES
        core.score_counts(source.packed_all, n, np.repeat(union[a:b].astype(np.int32), 2), lut[2 * a : 2 * b].astype(np.uint8), off,
                          (2 * pairs.uidx[idx] + (~pairs.effect_is_alt[idx]) - 2 * a).astype(np.int32), named, called)
        if release_chunks:
            source.release_pages(int(union[a]), int(union[b - 1]) + 1)
    if len(members) == len(matches):  # no shared arrays: the groups are the traits, in order
        return named.T, called.T
    group = np.fromiter((group_of[(id(t.variant), id(t.effect_is_alt))] for t in matches), np.int64, len(matches))
    return named[group].T, called[group].T


def _scaled(progress, scale: float):
    """progress(k) in whole units of ``scale`` × the work done (rounding carried forward)."""
    done = [0.0, 0]

    def report(k: int) -> None:
        done[0] += k * scale
        step = int(round(done[0])) - done[1]
        if progress and step:
            progress(step)
        done[1] += step

    return report


def _bed_sparse(core, source: BedSource, pairs: _Pairs, p_alt, m: ScoreModel, output: CallOutput, block, report,
                release_chunks: bool = False) -> np.ndarray:
    """[n_traits, n_samples] from (trait, variant) pairs, a block of the union at a time; each
    variant has two value rows (effect allele ALT, REF) and a pair reads one of them."""
    u = len(pairs.union)
    lut = np.empty((2 * u, 4))
    lut[0::2] = value_tables(p_alt, np.ones(u, bool), m, output)
    lut[1::2] = value_tables(p_alt, np.zeros(u, bool), m, output)
    lut_row = (2 * pairs.uidx + (~pairs.effect_is_alt)).astype(np.int32)
    out = np.zeros((len(pairs.trait_off) - 1, source.n_samples))
    for a, b, idx, off in _block_pairs(pairs, block):
        packed_row = np.repeat(pairs.union[a:b].astype(np.int32), 2)
        core.score_sparse(source.packed_all, source.n_samples, packed_row, lut[2 * a : 2 * b], off, lut_row[idx] - 2 * a, pairs.weight[idx], out)
        if release_chunks:
            source.release_pages(int(pairs.union[a]), int(pairs.union[b - 1]) + 1)
        report(b - a)
    return out


def _dosage_engine(source: GenotypeSource, pairs: _Pairs, p_alt, m: ScoreModel, output: CallOutput, block, progress) -> np.ndarray:
    """C++ for fractional dosages (.pgen, VCF): blocks read by the source's reader, values
    computed and accumulated per trait in the core."""
    core = require_core()
    n_traits = len(pairs.trait_off) - 1
    out = np.zeros((n_traits, source.n_samples))
    for a, b, idx, off in _block_pairs(pairs, block):
        x = np.ascontiguousarray(source.dosages(pairs.union[a:b]))
        core.score_dosages(x, np.ascontiguousarray(p_alt[a:b]), off, (pairs.uidx[idx] - a).astype(np.int32),
                           pairs.effect_is_alt[idx].astype(np.uint8), pairs.weight[idx], core_call_model(core, m, output), out)
        if progress:
            progress(b - a)
    return out
