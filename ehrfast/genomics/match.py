"""Matching score-file variants to genotype variants, following pgsc_calc's rules.

Each score row is looked up by chromosome + position (or by variant ID when the file has no
positions). A candidate matches when the score's effect/other alleles equal the target's
REF/ALT in one of these ways, best first: ``refalt``, ``altref``, ``refalt_flip``,
``altref_flip`` (the *_flip forms on the opposite strand), and, for rows without an other
allele, ``no_oa_ref``, ``no_oa_alt``, ``no_oa_ref_flip``, ``no_oa_alt_flip``. By default
strand-ambiguous variants (A/T, C/G) and multiallelic sites are excluded, and when two rows
of a trait reach the same target variant only the first (file order) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pyarrow is imported where it is used
    import pyarrow as pa

from ehrfast.errors import InvalidInputError
from ehrfast.genomics.genotypes import VariantTable
from ehrfast.genomics.scorefile import ScoreFile
from ehrfast.stages import option

COMPLEMENT = str.maketrans("ACGT", "TGCA")
MATCH_TYPES = ("refalt", "altref", "refalt_flip", "altref_flip", "no_oa_ref", "no_oa_alt", "no_oa_ref_flip", "no_oa_alt_flip")


def complement(allele: str) -> str:
    return allele.translate(COMPLEMENT)


@dataclass
class MatchOptions:
    """How score-file variants are matched to the genotypes (pgsc_calc's rules)."""

    keep_ambiguous: bool = option("keep strand-ambiguous A/T and C/G variants", False)
    keep_multiallelic: bool = option("keep variants with more than one alternative allele", False)
    min_overlap: float = option("drop traits whose share of matched score-file variants is lower", 0.75)

    def __post_init__(self):
        if not 0 <= self.min_overlap <= 1:
            raise InvalidInputError(f"min_overlap must be in [0, 1], got {self.min_overlap}")


@dataclass
class TraitMatch:
    """One trait's matched variants and its match report."""

    trait: str
    source: str
    variant: np.ndarray  # int64 [k] target variant index, ascending
    effect_is_alt: np.ndarray  # bool [k] effect allele = target ALT (else REF)
    weight: np.ndarray  # float64 [k]
    report: dict = field(default_factory=dict)


def _complement_array(alleles: np.ndarray) -> np.ndarray:
    """Complement of every allele string; each distinct allele is translated once."""
    table = {a: complement(a) for a in set(alleles.tolist())}
    return np.array([table[a] for a in alleles.tolist()], dtype=object)


def _keys(chrom, pos, chrom_codes: dict) -> np.ndarray:
    """int64 keys chromosome·2^40 + position (-1 where the chromosome is unknown)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = pa.array(list(chrom_codes), pa.string())  # chrom_codes numbers chromosomes in insertion order
    codes = pc.index_in(pa.array(chrom, pa.string()), value_set=names).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(codes >= 0, codes * (1 << 40) + np.asarray(pos, np.int64), -1)


def _id_codes(index, ids) -> np.ndarray:
    """Target index of each score-file variant ID (-1 when absent), by hashing (pyarrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(index.ids_arrow) or not len(ids):
        return np.full(len(ids), -1, np.int64)
    found = pc.index_in(ids if isinstance(ids, pa.Array) else pa.array(ids, pa.string()), value_set=index.ids_arrow)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


class _TargetIndex:
    """Lookup structures over a genotype variant table, built once and shared by every score
    file matched against it (thousands of files must not re-index 10^5–10^7 variants each)."""

    def __init__(self, variants: VariantTable):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.chrom_codes = {c: i for i, c in enumerate(dict.fromkeys(variants.chrom.tolist()))}
        # a repeated ID resolves to its first variant, as a sorted search would
        self.ids_arrow = pa.array(variants.id, pa.string())
        first = pc.index_in(self.ids_arrow, value_set=self.ids_arrow).to_numpy(zero_copy_only=False)
        if (first != np.arange(len(first))).any():
            self.ids_arrow = pc.if_else(pa.array(first == np.arange(len(first))), self.ids_arrow, pa.scalar(None, pa.string()))
        self.pos_keys = _keys(variants.chrom, variants.pos, self.chrom_codes)
        self.pos_order = np.argsort(self.pos_keys, kind="stable")
        self.pos_sorted = self.pos_keys[self.pos_order]
        self.ref_is_snv = np.char.str_len(variants.ref.astype(str)) == 1
        self.ambiguous = (_complement_array(variants.ref) == variants.alt) & self.ref_is_snv if len(variants) else np.zeros(0, bool)
        self.multiallelic = np.char.find(variants.alt.astype(str), ",") >= 0 if len(variants) else np.zeros(0, bool)
        self.ref_arrow, self.alt_arrow = pa.array(variants.ref, pa.string()), pa.array(variants.alt, pa.string())


_INDEX_CACHE: dict[int, tuple[VariantTable, _TargetIndex]] = {}


def _target_index(variants: VariantTable) -> _TargetIndex:
    cached = _INDEX_CACHE.get(id(variants))
    if cached is None or cached[0] is not variants:
        _INDEX_CACHE.clear()  # one genotype source at a time is the common case
        cached = (variants, _TargetIndex(variants))
        _INDEX_CACHE[id(variants)] = cached
    return cached[1]


def _candidates_sorted(score_keys: np.ndarray, order: np.ndarray, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = np.searchsorted(sorted_keys, score_keys, "left")
    hi = np.searchsorted(sorted_keys, score_keys, "right")
    count = np.where(score_keys >= 0, hi - lo, 0)
    rows = np.repeat(np.arange(len(score_keys)), count)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
    return rows, order[lo[rows] + within]


def _allele_codes(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Integer codes of allele strings shared across ``columns`` (equal strings, equal codes),
    and per code the code of its complement (-1 when no allele has it): comparisons become
    integer comparisons."""
    import pyarrow as pa

    encoded = pa.concat_arrays([c if isinstance(c, pa.Array) else pa.array(c, pa.string()) for c in columns]).dictionary_encode()
    names = encoded.dictionary.to_pylist()
    code_of = {a: i for i, a in enumerate(names)}
    complement_code = np.array([code_of.get(complement(a), -1) for a in names], np.int64)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    bounds = np.cumsum([0] + [len(c) for c in columns])
    return [codes[a:b] for a, b in zip(bounds[:-1], bounds[1:])], complement_code


def _match_ranks(e, o, ref, alt, complement_code, empty) -> np.ndarray:
    """Index into MATCH_TYPES of each pair's match (len(MATCH_TYPES) = no match), on allele codes."""
    ce, co = complement_code[e], complement_code[o]
    has_o = o != empty
    conditions = [
        has_o & (e == ref) & (o == alt), has_o & (e == alt) & (o == ref),
        has_o & (ce == ref) & (co == alt), has_o & (ce == alt) & (co == ref),
        ~has_o & (e == ref), ~has_o & (e == alt), ~has_o & (ce == ref), ~has_o & (ce == alt),
    ]
    return np.select(conditions, np.arange(len(MATCH_TYPES)), len(MATCH_TYPES))


@dataclass
class _Rows:
    """The rows of several score files, concatenated."""

    file: np.ndarray  # int64 [n] which file
    has_pos: np.ndarray  # bool [n] matched by chromosome + position (else by ID)
    chrom: np.ndarray  # object [n] ("" without positions)
    pos: np.ndarray  # int64 [n]
    ids: pa.Array  # string [n]
    effect: pa.Array  # string [n]
    other: pa.Array  # string [n] ("" when unknown)


def _concat_rows(files: list[ScoreFile]) -> _Rows:
    import pyarrow as pa

    has_pos = [(sf.pos >= 0) if (sf.chrom is not None and sf.pos is not None) else np.zeros(sf.n_rows, bool) for sf in files]
    chrom = [np.asarray(sf.chrom, dtype=object) if sf.chrom is not None else np.full(sf.n_rows, "", dtype=object) for sf in files]
    pos = [np.where(h, sf.pos, 0) if sf.pos is not None else np.zeros(sf.n_rows, np.int64) for sf, h in zip(files, has_pos)]

    def strings(name):
        return pa.concat_arrays([getattr(sf, name) for sf in files]) if files else pa.array([], pa.string())

    return _Rows(
        np.repeat(np.arange(len(files)), [sf.n_rows for sf in files]),
        np.concatenate(has_pos) if files else np.zeros(0, bool),
        np.concatenate(chrom) if files else np.zeros(0, object),
        np.concatenate(pos).astype(np.int64) if files else np.zeros(0, np.int64),
        strings("ids"), strings("effect_allele"), strings("other_allele"),
    )


def match_score_file(sf: ScoreFile, variants: VariantTable, options: MatchOptions | None = None) -> list[TraitMatch]:
    """Matches every row of ``sf`` once, then builds one TraitMatch per trait (weight column)."""
    return match_score_files([sf], variants, options)


STATUSES = ("matched", "ambiguous", "multiallelic", "unmatched")


def match_score_files(files: list[ScoreFile], variants: VariantTable, options: MatchOptions | None = None) -> list[TraitMatch]:
    """Every trait of every file, in file order. All rows of all files are matched in one
    vectorized pass (thousands of PGS Catalog files cost one lookup, not thousands)."""
    opt = options or MatchOptions()
    index = _target_index(variants)
    rows = _concat_rows(files)
    n = len(rows.file)
    score_pos = np.where(rows.has_pos, _keys(rows.chrom, rows.pos, index.chrom_codes), -1) if n else np.zeros(0, np.int64)
    by_id = ~rows.has_pos
    score_id = np.full(n, -1, np.int64)
    if by_id.any():
        score_id[by_id] = _id_codes(index, rows.ids.filter(by_id) if not by_id.all() else rows.ids)
    with_pos = np.flatnonzero(score_pos >= 0)
    rows_p, vars_p = _candidates_sorted(score_pos[with_pos], index.pos_order, index.pos_sorted)
    rows_i = np.flatnonzero(score_id >= 0)  # an ID names one variant
    cand_row, cand = np.r_[with_pos[rows_p], rows_i].astype(np.int64), np.r_[vars_p, score_id[rows_i]].astype(np.int64)
    (e, o, ref, alt, empty), comp = _allele_codes(rows.effect, rows.other, index.ref_arrow, index.alt_arrow, np.array([""], object))
    rank = _match_ranks(e[cand_row], o[cand_row], ref[cand], alt[cand], comp, empty[0]) if len(cand_row) else np.zeros(0, np.int64)
    ok = rank < len(MATCH_TYPES)
    cand_row, cand, rank = cand_row[ok], cand[ok], rank[ok]
    # best candidate per row: lowest rank, then first target variant
    if (cand_row[1:] > cand_row[:-1]).all():  # one candidate per row, in row order (the common case)
        pick = np.arange(len(cand_row))
    else:
        pick = np.lexsort((cand, rank, cand_row))
    first = pick[np.r_[True, cand_row[pick][1:] != cand_row[pick][:-1]]] if len(pick) else pick
    best = np.full(n, -1, np.int64)
    best[cand_row[first]] = cand[first]
    best_rank = np.full(n, len(MATCH_TYPES), np.int64)
    best_rank[cand_row[first]] = rank[first]
    found = best >= 0
    status = np.where(found, 0, 3)
    # as pgsc_calc: a record listing several ALT alleles; split biallelic records at one
    # position are separate candidates and the alleles pick between them
    if not opt.keep_multiallelic:
        status[found & index.multiallelic[np.maximum(best, 0)]] = 2
    if not opt.keep_ambiguous:
        status[found & index.ambiguous[np.maximum(best, 0)]] = 1
    effect_is_alt = np.isin(best_rank, [MATCH_TYPES.index(t) for t in ("altref", "altref_flip", "no_oa_alt", "no_oa_alt_flip")])
    matched = np.flatnonzero(status == 0)
    # duplicates within a file: keep the first row in file order; then order by target variant
    key = rows.file[matched] * (len(variants) + 1) + best[matched]
    order = np.arange(len(key)) if (key[1:] > key[:-1]).all() else np.argsort(key, kind="stable")
    keep = matched[order[np.r_[True, key[order][1:] != key[order][:-1]]]] if len(order) else matched  # sorted by (file, target variant)
    file_of_keep = rows.file[keep]
    n_files = len(files)
    status_counts = np.bincount(rows.file * 4 + status, minlength=4 * n_files).reshape(n_files, 4)
    type_counts = np.bincount(file_of_keep * (len(MATCH_TYPES) + 1) + best_rank[keep], minlength=n_files * (len(MATCH_TYPES) + 1))
    type_counts = type_counts.reshape(n_files, len(MATCH_TYPES) + 1)
    kept_bounds = np.searchsorted(file_of_keep, np.arange(n_files + 1))
    starts = np.r_[0, np.cumsum([sf.n_rows for sf in files])].astype(np.int64)
    out = []
    for f, sf in enumerate(files):
        k = keep[kept_bounds[f] : kept_bounds[f + 1]]
        report = _report(sf, type_counts[f], status_counts[f], len(k))
        variant, eff = best[k], effect_is_alt[k]
        weights = _rows(sf.weights, k - starts[f])  # [k, n_traits]: each trait's weights are a column view (wide files are scored as this matrix)
        out += [TraitMatch(trait, sf.path, variant, eff, weights[:, j], dict(report)) for j, trait in enumerate(sf.traits)]
    return out


def _report(sf: ScoreFile, type_counts: np.ndarray, status_counts: np.ndarray, n_kept: int) -> dict:
    n = sf.n_rows
    counts = {t: int(type_counts[i]) for i, t in enumerate(MATCH_TYPES) if type_counts[i]}
    has_pos = (sf.pos >= 0) if (sf.chrom is not None and sf.pos is not None) else np.zeros(n, bool)
    return {
        "score_rows": n,
        "matched": n_kept,
        "match_types": counts,
        "swapped": sum(counts.get(t, 0) for t in ("refalt", "refalt_flip", "no_oa_ref", "no_oa_ref_flip")),
        "flipped": sum(counts.get(t, 0) for t in MATCH_TYPES if t.endswith("_flip")),
        "ambiguous_excluded": int(status_counts[1]),
        "multiallelic_excluded": int(status_counts[2]),
        "duplicates_excluded": int(status_counts[0] - n_kept),
        "unmatched": int(status_counts[3]),
        "match_rate": n_kept / n if n else 0.0,
        "matched_by": "position" if has_pos.all() else "id" if not has_pos.any() else "position, else id",
    }


def _rows(weights: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """weights[keep], column-major like a wide file's matrix; no copy when every row is kept in order."""
    if len(keep) == len(weights) and (keep == np.arange(len(keep))).all():
        return weights
    out = np.empty((len(keep), weights.shape[1]), order="F")
    for j in range(weights.shape[1]):
        out[:, j] = weights[keep, j]
    return out
