"""``compute_prs``: genotypes + score files -> the model-ready PRS matrix (or plink2 /
pgsc_calc score files).

Writes ``PRS.parquet`` (see ``ehrfast.genomics.formats`` for it and the other formats) and
``prs_meta.json`` beside it: per-trait match report, variants used, genome builds,
allele-frequency source, and the standardization fitted on the training subjects.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ehrfast._memory import reuse_freed_memory
from ehrfast.backends import resolve_backend
from ehrfast.cluster import Cluster, check_cluster, connect
from ehrfast.errors import InvalidInputError, NonFiniteResultError
from ehrfast.genomics.builds import check_builds
from ehrfast.genomics.formats import PRSTable, output_format, write_prs_table
from ehrfast.genomics.genotypes import GENOTYPE_EXTENSIONS, GenotypeSource, genotype_files, open_genotypes
from ehrfast.genomics.match import TraitMatch, match_score_files
from ehrfast.genomics.matrix import meta_path as prs_meta_path
from ehrfast.genomics.options import PRSOptions
from ehrfast.genomics.score import distinct_variants, score_traits
from ehrfast.genomics.scorefile import read_score_files
from ehrfast.inputs import JoinReport, read_parquet, read_text
from ehrfast.io import atomic_output, check_outputs

# Fewer samples than this give a mean and sd too noisy to standardize a score with.
MIN_STANDARDIZATION_SAMPLES = 20


@dataclass
class PRSSummary:
    out_path: str
    n_samples: int
    n_subjects_mapped: int
    traits: list[str]
    dropped_traits: list[str]
    seconds: float
    backend: str
    joins: list[str] = field(default_factory=list)  # each subject join's JoinReport.describe()

    def describe(self) -> str:
        lines = [f"PRS for {len(self.traits)} traits x {self.n_samples:,} samples ({self.n_subjects_mapped:,} mapped to subjects) -> "
                 f"{self.out_path} in {self.seconds:.1f} s [{self.backend}]"]
        if self.dropped_traits:
            lines.append(f"  dropped (match rate below the minimum): {', '.join(self.dropped_traits)}")
        lines += [f"  {j}" for j in self.joins]
        return "\n".join(lines)


def _check_finite_sums(sums: np.ndarray, matches: list[TraitMatch], source: GenotypeSource) -> None:
    """Refuses sums [n_samples, n_traits] that overflowed to ±inf or NaN, naming the trait and
    its largest weight (a weight of 1e308 overflows the first sum it enters)."""
    bad = ~np.isfinite(sums)
    if not bad.any():
        return
    k = int(np.flatnonzero(bad.any(0))[0])
    m = matches[k]
    top = int(np.argmax(np.abs(m.weight)))
    raise NonFiniteResultError(f"trait {m.trait} ({m.source}): the score of {int(bad[:, k].sum()):,} of {source.n_samples:,} samples is "
                               f"{sums[bad[:, k], k][0]} — its weights overflow double precision (largest |weight| "
                               f"{m.weight[top]:.6g}, at variant {source.variants.id[m.variant[top]]}); "
                               "nothing written")


def keep_top_variants(m: TraitMatch, max_variants: int | None) -> TraitMatch:
    """At most ``max_variants`` pairs by |weight| (ties: earlier variant first), in variant order."""
    if max_variants is None or len(m.variant) <= max_variants:
        return m
    order = np.lexsort((m.variant, -np.abs(m.weight)))[:max_variants]
    order.sort()
    report = dict(m.report, variants_used=int(max_variants), variants_dropped_by_max=int(len(m.variant) - max_variants))
    return TraitMatch(m.trait, m.source, m.variant[order], m.effect_is_alt[order], m.weight[order], report)


def map_subjects(source: GenotypeSource, sample_map: str | os.PathLike | None) -> np.ndarray:
    """subject_id per sample (object array: int or None): from the mapping file when given —
    lines ``IID subject_id`` or ``FID IID subject_id``, an optional header — else the IID when
    it is an integer. Two samples reaching one subject is an error naming both."""
    out = np.full(source.n_samples, None, dtype=object)
    families = source.family_ids
    if sample_map is not None:
        by_iid, by_fid_iid = _read_sample_map(sample_map)
        for k, iid in enumerate(source.sample_ids):
            fid = str(families[k]) if families is not None else "0"
            out[k] = by_fid_iid.get((fid, str(iid)), by_iid.get(str(iid)))
    else:
        for k, iid in enumerate(source.sample_ids):
            text = str(iid)
            if text.lstrip("-").isdigit():
                out[k] = int(text)
    first: dict[int, int] = {}
    for k, s in enumerate(out):
        if s is None:
            continue
        if s in first:
            raise InvalidInputError(f"{source.path}: samples {source.sample_label(first[s])} and {source.sample_label(k)} both map to "
                                    f"subject {s}{f' (via {sample_map})' if sample_map else ''}; one genotype sample per subject — "
                                    "give a --sample-map with FID IID subject_id lines to tell families apart")
        first[s] = k
    return out


def _read_sample_map(path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """({IID: subject} from 2-column lines, {(FID, IID): subject} from 3-column lines)."""
    by_iid, by_fid_iid = {}, {}
    for i, line in enumerate(read_text(path, what="sample map").splitlines(), start=1):
        parts = line.split()
        if not parts or (i == 1 and not parts[-1].lstrip("-").isdigit()):
            continue  # header or blank line
        if len(parts) not in (2, 3) or not parts[-1].lstrip("-").isdigit():
            raise InvalidInputError(f"{path}: line {i} must be 'IID subject_id' or 'FID IID subject_id' with an integer subject_id")
        key, table = ((parts[0], parts[1]), by_fid_iid) if len(parts) == 3 else (parts[0], by_iid)
        if key in table:
            raise InvalidInputError(f"{path}: line {i}: sample {'/'.join(parts[:-1])} is listed twice")
        table[key] = int(parts[-1])
    return by_iid, by_fid_iid


def _sampleset_name(genotypes: str) -> str:
    """pgsc_calc's sampleset: the genotype file's name without its extensions."""
    name = Path(genotypes).name
    for ext in sorted(GENOTYPE_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _training_mask(subject_ids: np.ndarray, train_subjects: set[int] | None) -> np.ndarray:
    if train_subjects is None:
        return np.ones(len(subject_ids), bool)
    return np.array([s is not None and s in train_subjects for s in subject_ids])


def meds_subjects(meds_dir: str | os.PathLike, split: str = "train") -> tuple[set[int], set[int]]:
    """(all subjects, subjects of ``split``) from a MEDS dataset's subject_splits.parquet."""
    t = read_parquet(Path(meds_dir) / "metadata" / "subject_splits.parquet")
    ids = t.column("subject_id").to_pylist()
    splits = t.column("split").to_pylist()
    return set(ids), {s for s, sp in zip(ids, splits) if sp == split}


def _match_and_score(genotypes, score_files, opt: PRSOptions, backend, sample_map, meds_dir, genotype_options, progress, fmt: str,
                     cluster: Cluster | None):
    """Reads genotypes and score files, matches, checks subjects, scores: the heavy part of
    compute_prs. plink2's count columns (extra passes over the genotypes) only for the outputs
    that hold them: raw parquet, pgsc_calc, and sscore (which also counts over all variants)."""
    source = open_genotypes(genotypes, **(genotype_options or {}))
    files = read_score_files(score_files, backend)
    target_build = opt.target_build or source.genome_build
    builds = check_builds(files, target_build, source.path)
    matches, dropped = [], []
    for m in match_score_files(files, source.variants, opt.match):
        if m.report["match_rate"] < opt.match.min_overlap or m.report["matched"] == 0:
            dropped.append(f"{m.trait} ({m.report['match_rate']:.0%})")
            continue
        matches.append(keep_top_variants(m, opt.max_variants))
    if dropped:
        warnings.warn(f"{len(dropped)} trait(s) matched below the minimum overlap of {opt.match.min_overlap:.0%} and were dropped: "
                      f"{', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''}", RuntimeWarning, stacklevel=3)
    if not matches:
        raise InvalidInputError(f"no trait reached the minimum overlap of {opt.match.min_overlap:.0%} with {source.path}; nothing to score")
    subject_ids = map_subjects(source, sample_map)
    all_subjects, train_subjects = meds_subjects(meds_dir) if meds_dir is not None else (None, None)
    joins = _check_subject_joins(source, subject_ids, sample_map, meds_dir, all_subjects, opt.min_subject_overlap)
    raw = opt.raw or fmt != "parquet"
    n_fit = int(_training_mask(subject_ids, train_subjects).sum())
    if not raw and n_fit < MIN_STANDARDIZATION_SAMPLES:  # before the kernels run
        raise InvalidInputError(f"{source.path}: the standardization would be fitted on {n_fit} sample(s) "
                                f"({'of the MEDS train split' if meds_dir else 'in all'}); it needs at least {MIN_STANDARDIZATION_SAMPLES} — "
                                "give more samples, or --raw for unstandardized sums")
    bar = tqdm(total=len(distinct_variants(matches)), desc="prs: variants", unit="var", disable=not progress, leave=False)
    result = score_traits(source, matches, opt.model, backend=backend, plink2_columns=raw, progress=bar.update,
                          variant_block=opt.variant_block, trait_block=opt.trait_block, cluster=cluster)
    bar.close()
    shared = _shared_columns(source, matches, result, opt, backend, cluster) if fmt == "sscore" else None
    build_record = {"target": target_build, "target_from": "--target-build" if opt.target_build else "genotype header" if target_build else None,
                    "score_files": builds}
    return source, matches, dropped, result, shared, subject_ids, train_subjects, build_record, joins


def _check_subject_joins(source: GenotypeSource, subject_ids: np.ndarray, sample_map, meds_dir, all_subjects: set[int] | None,
                         min_overlap: float) -> list[JoinReport]:
    """The joins samples → subjects (the sample map, when given) and subjects → MEDS (``meds_dir``):
    reported, and refused when empty or below ``min_overlap`` (``JoinReport.check``). Without
    either, samples need not be subjects (scoring 1000 Genomes IIDs as plink2 does)."""
    mapped = int(sum(s is not None for s in subject_ids))
    joins = []
    if sample_map is not None:
        entries = sum(len(t) for t in _read_sample_map(sample_map))
        joins.append(JoinReport("genotype samples", source.n_samples, f"lines of {sample_map}", entries, mapped)
                     .check(min_overlap, option="--min-subject-overlap", where=str(source.path)))
    if meds_dir is not None:
        in_meds = int(sum(s is not None and s in all_subjects for s in subject_ids))
        report = JoinReport("genotype samples", mapped, f"subjects of {meds_dir}", len(all_subjects), in_meds)
        if in_meds == 0:
            raise InvalidInputError(f"none of the {source.n_samples:,} genotype sample ids of {source.path} matches a subject of {meds_dir} "
                                    "(give --sample-map 'IID subject_id' lines when IIDs are not MEDS subject ids)")
        joins.append(report.check(min_overlap, option="--min-subject-overlap", where=str(source.path)))
    return joins


def _shared_columns(source, matches: list[TraitMatch], result, opt: PRSOptions, backend, cluster: Cluster | None) -> np.ndarray:
    """[3, n_samples] ALLELE_CT, DENOM, NAMED_ALLELE_DOSAGE_SUM over every scored variant (plink2
    counts them per score file): the traits' own when they share one variant set, else one
    unit-weight pass over the union (each variant's allele as its first trait names it)."""
    if len({id(m.variant) for m in matches}) == 1:
        return np.stack([result.allele_ct[:, 0], result.denom[:, 0], result.named_sum[:, 0]])
    union = distinct_variants(matches)
    effect = np.zeros(len(union), bool)
    assigned = np.zeros(len(union), bool)
    for m in matches:
        pos = np.searchsorted(union, m.variant)
        new = ~assigned[pos]
        effect[pos[new]] = m.effect_is_alt[new]
        assigned[pos] = True
    everything = TraitMatch("all variants", source.path, union, effect, np.ones(len(union)), {})
    counts = score_traits(source, [everything], opt.model, backend=backend, plink2_columns=True, variant_block=opt.variant_block,
                          trait_block=opt.trait_block, cluster=cluster)
    return np.stack([counts.allele_ct[:, 0], counts.denom[:, 0], counts.named_sum[:, 0]])


def compute_prs(
    genotypes: str | os.PathLike,
    score_files: list[str | os.PathLike],
    out_path: str | os.PathLike,
    options: PRSOptions | None = None,
    *,
    backend: str | None = None,
    sample_map: str | os.PathLike | None = None,
    meds_dir: str | os.PathLike | None = None,
    bgen_ref_last: bool = False,
    format: str = "auto",
    sampleset: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    cluster=None,
) -> PRSSummary:
    """Matches every score file to the genotypes, scores all traits at once and writes the
    PRS matrix. With ``meds_dir``, sample ids must reach MEDS subjects and the standardization
    is fitted on the MEDS training split; otherwise on all samples. ``bgen_ref_last``: the BGEN
    file stores ALT first (plink2's 'ref-last'). ``format``: parquet (model-ready), sscore
    (plink2) or pgsc_calc (``aggregated_scores.txt.gz``, ``sampleset`` defaulting to the genotype
    file's name); "auto" picks by the output's name. sscore and pgsc_calc hold raw sums.
    ``cluster``: score the variant blocks as Dask tasks (``ehrfast.cluster``): matching happens
    once, here; the output is the same to the bit (see ``score_traits``)."""
    t0 = time.perf_counter()
    opt = options or PRSOptions()
    out_path = Path(out_path)
    fmt = output_format(format, out_path)
    meta_path = prs_meta_path(out_path)
    check_outputs(files=[out_path, meta_path], inputs=[*genotype_files(genotypes), *score_files, sample_map, meds_dir],
                  overwrite=overwrite)
    check_cluster(cluster)
    with reuse_freed_memory(), connect(cluster) as c:  # large temporaries: reuse pages instead of faulting fresh ones in
        source, matches, dropped, result, shared, subject_ids, train_subjects, builds, joins = _match_and_score(
            genotypes, score_files, opt, backend, sample_map, meds_dir, {"ref_first": False} if bgen_ref_last else None, progress, fmt, c)
    sums = result.sums
    _check_finite_sums(sums, matches, source)
    train = _training_mask(subject_ids, train_subjects)  # at least MIN_STANDARDIZATION_SAMPLES unless raw (checked before scoring)
    raw = opt.raw or fmt != "parquet"
    fit = sums[train] if train.any() else sums  # raw sums record their own mean/sd even without a train split
    mean, sd = fit.mean(0), fit.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    values = sums if raw else np.clip((sums - mean) / sd, -opt.clip_sd, opt.clip_sd)
    table = PRSTable(source.family_ids, source.sample_ids, subject_ids, result.traits, values, raw, sums, result.allele_ct,
                     result.denom, result.named_sum, shared)
    meta = {
        "format": fmt,
        "genotypes": str(source.path),
        "genotype_format": source.kind,
        "n_samples": int(source.n_samples),
        "traits": result.traits,
        "dropped_traits": dropped,
        "genome_build": builds,
        "values": "raw sums" if raw else f"standardized with training mean/sd, clipped at ±{opt.clip_sd} sd",
        "standardization": {"fitted_on": "MEDS train split" if meds_dir else "all samples", "n": int(train.sum()),
                            "mean": dict(zip(result.traits, mean.tolist())), "sd": dict(zip(result.traits, sd.tolist())), "clip_sd": opt.clip_sd},
        "model": asdict(opt.model),
        "max_variants": opt.max_variants,
        "allele_frequency_source": "target genotypes (non-missing calls), as plink2 computes them",
        "match": {m.trait: {**m.report, "variants_used": int(len(m.variant)), "source": m.source} for m in matches},
    }
    if not (np.isfinite(values).all() and (shared is None or np.isfinite(shared).all())):  # before any output exists
        raise NonFiniteResultError(f"{source.path}: scores are not finite for some samples; nothing written")
    sampleset = sampleset or _sampleset_name(source.path)
    with atomic_output(out_path, overwrite=overwrite) as tmp:
        write_prs_table(table, tmp, fmt, sampleset)
        with atomic_output(meta_path, overwrite=overwrite) as tmp_meta:
            Path(tmp_meta).write_text(json.dumps(meta, indent=1) + "\n")
    n_mapped = int(sum(s is not None for s in subject_ids))
    meta["subject_joins"] = [asdict(j) for j in joins]
    return PRSSummary(str(out_path), int(source.n_samples), n_mapped, result.traits, dropped, round(time.perf_counter() - t0, 3),
                      resolve_backend(backend, "PRS scorer") if source.kind == "bed" else "numpy", [j.describe() for j in joins])
