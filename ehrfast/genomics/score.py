"""Multi-trait dosage scoring with plink2's semantics; C++ fast path for .bed, numpy reference.

PRS(s, t) = Σ_v w(v, t) · T(dosage of the effect allele of v in s), where T is the identity
(additive), min(d, 1) (dominant) or max(d − 1, 0) (recessive), optionally centred (− 2p) or
variance-standardized (/ sqrt(2p(1 − p))), with p the effect-allele frequency in the data.
A missing call is mean-imputed as plink2 does (additive: 2p; dominant/recessive: p), or
contributes nothing with ``mean_impute=False``. plink2's ``center``/``variance-standardize``
modes add the uncentred imputed value for a missing call; ``plink2_center_quirk=True``
reproduces that, the default gives a missing call zero weight after centring.

Backends: the numpy reference decodes dosage blocks and multiplies by weight matrices; the
C++ path reads .bed bytes directly (sparse per-trait accumulation, or decode + BLAS for dense
weights) and accumulates fractional dosages (.pgen, VCF) per trait.

Besides the sums, ``plink2_columns=True`` gives ALLELE_CT (2 × non-missing calls), DENOM
(2 × variants with mean imputation, else ALLELE_CT) and NAMED_ALLELE_DOSAGE_SUM per trait.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrfast._backend import require_core, resolve_backend
from ehrfast.genomics.genotypes import BedSource, GenotypeSource
from ehrfast.genomics.match import TraitMatch

BED_ALT_DOSAGE = np.array([2.0, np.nan, 1.0, 0.0])  # A1 (= ALT here) count per 2-bit code
MODELS = ("additive", "dominant", "recessive")


@dataclass(frozen=True)
class ScoreModel:
    model: str = "additive"
    mean_impute: bool = True
    center: bool = False
    variance_standardize: bool = False
    plink2_center_quirk: bool = False

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if (self.center or self.variance_standardize) and self.model != "additive":
            raise ValueError("center / variance_standardize apply to the additive model only")
        if self.center and self.variance_standardize:
            raise ValueError("choose center or variance_standardize, not both")


SCORE, NONMISSING, NAMED = 0, 1, 2  # what a call contributes (mirrors prs::CallModel::output)


def call_values(d: np.ndarray, p: np.ndarray, m: ScoreModel, output: int = SCORE) -> np.ndarray:
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
    sums: np.ndarray  # [n_samples, n_traits] float64
    allele_ct: np.ndarray | None = None  # [n_samples, n_traits]
    denom: np.ndarray | None = None  # [n_samples, n_traits]
    named_sum: np.ndarray | None = None  # [n_samples, n_traits]
    effect_allele_freq: dict | None = None  # trait -> [k] p of its variants

    @property
    def averages(self) -> np.ndarray:
        return self.sums / self.denom


@dataclass
class _Pairs:
    """All (trait, variant) pairs, indexed into the union of variants."""

    union: np.ndarray  # [u] target variant indices, ascending
    trait_off: np.ndarray  # [n_traits + 1]
    uidx: np.ndarray  # [nnz] union position
    effect_is_alt: np.ndarray  # [nnz]
    weight: np.ndarray  # [nnz]


def _pairs(matches: list[TraitMatch]) -> _Pairs:
    # Traits of one score file share their variant array: index each distinct array once.
    distinct = {id(m.variant): m.variant for m in matches}
    union = np.unique(np.concatenate(list(distinct.values()))) if matches else np.zeros(0, np.int64)
    position = {key: np.searchsorted(union, v) for key, v in distinct.items()}
    uidx = np.concatenate([position[id(m.variant)] for m in matches]) if matches else np.zeros(0, np.int64)
    off = np.r_[0, np.cumsum([len(m.variant) for m in matches])].astype(np.int64)
    eff = np.concatenate([m.effect_is_alt for m in matches]) if matches else np.zeros(0, bool)
    w = np.concatenate([m.weight for m in matches]) if matches else np.zeros(0)
    return _Pairs(union, off, uidx.astype(np.int64), eff, w.astype(np.float64))


def _block_pairs(pairs: _Pairs, block: int):
    """Yields (a, b, pair indices of union block [a, b), ordered by trait, CSR offsets over traits).
    Each trait's pairs are sorted by union position, so a block is a slice of every trait."""
    n_traits = len(pairs.trait_off) - 1
    bounds = np.arange(0, len(pairs.union) + block, block)
    cuts = np.stack([a + np.searchsorted(pairs.uidx[a:b], bounds) for a, b in zip(pairs.trait_off[:-1], pairs.trait_off[1:])]) \
        if n_traits else np.zeros((0, len(bounds)), np.int64)
    for k in range(len(bounds) - 1):
        a, b = int(bounds[k]), int(min(bounds[k + 1], len(pairs.union)))
        if a >= b:
            break
        lo, hi = cuts[:, k], cuts[:, k + 1]
        counts = hi - lo
        idx = np.repeat(lo - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(int(counts.sum()))
        yield a, b, idx, np.r_[0, np.cumsum(counts)].astype(np.int64)


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
        with np.errstate(invalid="ignore"):
            out[a : a + block] = np.nanmean(x, axis=1) / 2 if x.shape[1] else np.nan
    return out


def score_traits(
    source: GenotypeSource,
    matches: list[TraitMatch],
    model: ScoreModel | None = None,
    *,
    backend: str | None = None,
    plink2_columns: bool = False,
    block: int = 4096,
    progress=None,
) -> ScoreResult:
    """Scores every trait of ``matches`` on every sample of ``source``."""
    m = model or ScoreModel()
    pairs = _pairs(matches)
    p_alt = alt_frequency(source, pairs.union, block, backend)
    if np.isnan(p_alt).any():
        bad = int(pairs.union[np.isnan(p_alt)][0])
        raise ValueError(f"{source.path}: variant {source.variants.id[bad]} has no non-missing call; cannot impute it")
    if resolve_backend(backend, "PRS scorer") == "cpp":
        engine = _bed_engine if isinstance(source, BedSource) else _dosage_engine
    else:
        engine = _numpy_engine
    n_traits = len(matches)
    sums = engine(source, pairs, p_alt, m, SCORE, block, progress)
    result = ScoreResult([t.trait for t in matches], source.sample_ids, sums.T.copy())
    if plink2_columns:
        ones = np.ones_like(pairs.weight)
        counted = _Pairs(pairs.union, pairs.trait_off, pairs.uidx, pairs.effect_is_alt, ones)
        result.allele_ct = 2 * engine(source, counted, p_alt, m, NONMISSING, block, None).T
        result.named_sum = engine(source, counted, p_alt, m, NAMED, block, None).T
        n_vars = np.diff(pairs.trait_off).astype(np.float64)
        result.denom = np.broadcast_to(2 * n_vars, (source.n_samples, n_traits)).copy() if m.mean_impute else result.allele_ct
    result.effect_allele_freq = {
        t.trait: np.where(pairs.effect_is_alt[a:b], p_alt[pairs.uidx[a:b]], 1 - p_alt[pairs.uidx[a:b]])
        for t, a, b in zip(matches, pairs.trait_off[:-1], pairs.trait_off[1:])
    }
    return result


def _numpy_engine(source, pairs: _Pairs, p_alt, m: ScoreModel, output: int, block, progress) -> np.ndarray:
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


def _bed_engine(source: BedSource, pairs: _Pairs, p_alt, m: ScoreModel, output: int, block, progress) -> np.ndarray:
    """C++: per (variant, orientation) 4-entry value tables, accumulated straight from the
    packed bytes — sparse pairs per trait, or decode + BLAS when the weights are dense."""
    core = require_core()
    u = len(pairs.union)
    lut = np.empty((2 * u, 4))
    lut[0::2] = call_values(np.broadcast_to(BED_ALT_DOSAGE, (u, 4)), p_alt, m, output)
    lut[1::2] = call_values(2.0 - np.broadcast_to(BED_ALT_DOSAGE, (u, 4)), 1.0 - p_alt, m, output)
    lut_row = (2 * pairs.uidx + (~pairs.effect_is_alt)).astype(np.int32)
    n_traits = len(pairs.trait_off) - 1
    out = np.zeros((n_traits, source.n_samples))
    dense = n_traits >= 8 and len(pairs.weight) > 0.25 * u * n_traits
    trait_of_pair = np.repeat(np.arange(n_traits), np.diff(pairs.trait_off))
    buffer = np.empty((2 * min(block, u), source.n_samples)) if dense else None  # reused: no page faults per block
    for a, b, idx, off in _block_pairs(pairs, block):
        packed = source.packed(pairs.union[a:b])
        local = lut_row[idx] - 2 * a  # table rows of this block, 0 .. 2(b - a)
        if dense:
            used = np.zeros(2 * (b - a), bool)
            used[local] = True
            rows = np.flatnonzero(used)
            position = np.cumsum(used) - 1  # table row -> row of the decoded block
            core.decode_values(packed, source.n_samples, lut, (rows // 2).astype(np.int32), (rows + 2 * a).astype(np.int32), buffer)
            w = np.zeros((len(rows), n_traits))
            w[position[local], trait_of_pair[idx]] = pairs.weight[idx]  # each (variant, trait) pair occurs once
            out += w.T @ buffer[: len(rows)]
        else:
            core.score_sparse(packed, source.n_samples, lut, off, (pairs.uidx[idx] - a).astype(np.int32), lut_row[idx], pairs.weight[idx], out)
        if progress:
            progress(b - a)
    return out


def _dosage_engine(source: GenotypeSource, pairs: _Pairs, p_alt, m: ScoreModel, output: int, block, progress) -> np.ndarray:
    """C++ for fractional dosages (.pgen, VCF): blocks read by the source's reader, values
    computed and accumulated per trait in the core."""
    core = require_core()
    n_traits = len(pairs.trait_off) - 1
    out = np.zeros((n_traits, source.n_samples))
    for a, b, idx, off in _block_pairs(pairs, block):
        x = np.ascontiguousarray(source.dosages(pairs.union[a:b]))
        core.score_dosages(x, np.ascontiguousarray(p_alt[a:b]), off, (pairs.uidx[idx] - a).astype(np.int32),
                           pairs.effect_is_alt[idx].astype(np.uint8), pairs.weight[idx], MODELS.index(m.model), m.mean_impute,
                           m.center, m.variance_standardize, m.plink2_center_quirk, output, out)
        if progress:
            progress(b - a)
    return out
