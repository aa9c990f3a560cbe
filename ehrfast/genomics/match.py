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

import numpy as np

from ehrfast.genomics.genotypes import VariantTable
from ehrfast.genomics.scorefile import ScoreFile

COMPLEMENT = str.maketrans("ACGT", "TGCA")
MATCH_TYPES = ("refalt", "altref", "refalt_flip", "altref_flip", "no_oa_ref", "no_oa_alt", "no_oa_ref_flip", "no_oa_alt_flip")


def complement(allele: str) -> str:
    return allele.translate(COMPLEMENT)


@dataclass
class MatchOptions:
    keep_ambiguous: bool = False
    keep_multiallelic: bool = False
    min_overlap: float = 0.75


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
    codes = np.array([chrom_codes.get(c, -1) for c in chrom], np.int64)
    return np.where(codes >= 0, codes * (1 << 40) + np.asarray(pos, np.int64), -1)


def _id_codes(index, ids) -> np.ndarray:
    """Target index of each score-file variant ID (-1 when absent), by binary search."""
    q = np.asarray(ids, dtype=str)
    if not len(index.ids_sorted) or not len(q):
        return np.full(len(q), -1, np.int64)
    pos = np.minimum(np.searchsorted(index.ids_sorted, q), len(index.ids_sorted) - 1)
    return np.where(index.ids_sorted[pos] == q, index.id_order[pos], -1).astype(np.int64)


class _TargetIndex:
    """Lookup structures over a genotype variant table, built once and shared by every score
    file matched against it (thousands of files must not re-index 10^5–10^7 variants each)."""

    def __init__(self, variants: VariantTable):
        self.chrom_codes = {c: i for i, c in enumerate(dict.fromkeys(variants.chrom.tolist()))}
        ids = variants.id.astype(str)
        self.id_order = np.argsort(ids, kind="stable")
        self.ids_sorted = ids[self.id_order]
        self.pos_keys = _keys(variants.chrom, variants.pos, self.chrom_codes)
        self.pos_order = np.argsort(self.pos_keys, kind="stable")
        self.pos_sorted = self.pos_keys[self.pos_order]
        self.positions = np.arange(len(variants), dtype=np.int64)
        self.ref_is_snv = np.char.str_len(variants.ref.astype(str)) == 1
        self.ambiguous = (_complement_array(variants.ref) == variants.alt) & self.ref_is_snv if len(variants) else np.zeros(0, bool)
        self.multiallelic = np.char.find(variants.alt.astype(str), ",") >= 0 if len(variants) else np.zeros(0, bool)


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


def _match_ranks(e, o, ref, alt) -> np.ndarray:
    """Index into MATCH_TYPES of each pair's match (len(MATCH_TYPES) = no match), vectorized."""
    ce, co = _complement_array(e), _complement_array(o)
    has_o = o != ""
    conditions = [
        has_o & (e == ref) & (o == alt), has_o & (e == alt) & (o == ref),
        has_o & (ce == ref) & (co == alt), has_o & (ce == alt) & (co == ref),
        ~has_o & (e == ref), ~has_o & (e == alt), ~has_o & (ce == ref), ~has_o & (ce == alt),
    ]
    return np.select(conditions, np.arange(len(MATCH_TYPES)), len(MATCH_TYPES))


def match_score_file(sf: ScoreFile, variants: VariantTable, options: MatchOptions | None = None) -> list[TraitMatch]:
    """Matches every row of ``sf`` once, then builds one TraitMatch per trait (weight column)."""
    opt = options or MatchOptions()
    n = sf.n_rows
    # rows with a position match by chromosome + position, the others by variant ID
    has_pos = (sf.pos >= 0) if (sf.chrom is not None and sf.pos is not None) else np.zeros(n, bool)
    index = _target_index(variants)
    score_pos = _keys(sf.chrom, np.where(has_pos, sf.pos, 0), index.chrom_codes) if sf.chrom is not None else np.full(n, -1)
    score_id = _id_codes(index, sf.ids) if not has_pos.all() else np.full(n, -1)
    rows_p, vars_p = _candidates_sorted(np.where(has_pos, score_pos, -1), index.pos_order, index.pos_sorted)
    rows_i, vars_i = _candidates_sorted(np.where(has_pos, -1, score_id), index.positions, index.positions)
    rows, cand = np.r_[rows_p, rows_i].astype(np.int64), np.r_[vars_p, vars_i].astype(np.int64)
    effect, other = np.array(sf.effect_allele, dtype=object), np.array(sf.other_allele, dtype=object)
    rank = _match_ranks(effect[rows], other[rows], variants.ref[cand], variants.alt[cand]) if len(rows) else np.zeros(0, np.int64)
    ok = rank < len(MATCH_TYPES)
    rows, cand, rank = rows[ok], cand[ok], rank[ok]
    # best candidate per row: lowest rank, then first target variant
    pick = np.lexsort((cand, rank, rows))
    first = pick[np.r_[True, rows[pick][1:] != rows[pick][:-1]]] if len(pick) else pick
    best = np.full(n, -1, np.int64)
    best[rows[first]] = cand[first]
    best_rank = np.full(n, len(MATCH_TYPES), np.int64)
    best_rank[rows[first]] = rank[first]
    status = np.full(n, "unmatched", dtype=object)
    found = best >= 0
    ambiguous = found & index.ambiguous[np.maximum(best, 0)] if n else np.zeros(0, bool)
    # as pgsc_calc: a record listing several ALT alleles; split biallelic records at one
    # position are separate candidates and the alleles pick between them
    multiallelic = found & index.multiallelic[np.maximum(best, 0)] if n else np.zeros(0, bool)
    status[found] = "matched"
    if not opt.keep_multiallelic:
        status[found & multiallelic] = "multiallelic"
    if not opt.keep_ambiguous:
        status[found & ambiguous] = "ambiguous"
    effect_is_alt = np.isin(best_rank, [MATCH_TYPES.index(t) for t in ("altref", "altref_flip", "no_oa_alt", "no_oa_alt_flip")])
    rows = np.flatnonzero(status == "matched")
    _, first_of = np.unique(best[rows], return_index=True)  # duplicates: keep the first row in file order
    keep = np.sort(rows[first_of])
    keep = keep[np.argsort(best[keep], kind="stable")]
    type_counts = np.bincount(best_rank[keep], minlength=len(MATCH_TYPES) + 1)
    counts = {t: int(type_counts[i]) for i, t in enumerate(MATCH_TYPES) if type_counts[i]}
    report = {
        "score_rows": n,
        "matched": len(keep),
        "match_types": counts,
        "swapped": sum(counts.get(t, 0) for t in ("refalt", "refalt_flip", "no_oa_ref", "no_oa_ref_flip")),
        "flipped": sum(counts.get(t, 0) for t in MATCH_TYPES if t.endswith("_flip")),
        "ambiguous_excluded": int((status == "ambiguous").sum()),
        "multiallelic_excluded": int((status == "multiallelic").sum()),
        "duplicates_excluded": int(len(rows) - len(keep)),
        "unmatched": int((status == "unmatched").sum()),
        "match_rate": len(keep) / n if n else 0.0,
        "matched_by": "position" if has_pos.all() else "id" if not has_pos.any() else "position, else id",
    }
    variant, eff = best[keep], effect_is_alt[keep]
    out = [TraitMatch(trait, sf.path, variant, eff, sf.weights[keep, j].copy(), dict(report)) for j, trait in enumerate(sf.traits)]
    return out
