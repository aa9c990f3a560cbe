"""``compute_prs``: genotypes + score files -> the model-ready PRS matrix.

Writes ``PRS.parquet`` (``sample_id`` string, ``subject_id`` int64 or null, one float32
column per trait) and ``prs_meta.json`` beside it (per-trait match report, variants used,
allele-frequency source, and the standardization fitted on the training subjects).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast._memory import reuse_freed_memory
from ehrfast.backends import resolve_backend
from ehrfast.errors import InvalidInputError
from ehrfast.genomics.genotypes import genotype_files, open_genotypes
from ehrfast.genomics.match import TraitMatch, match_score_files
from ehrfast.genomics.matrix import meta_path as prs_meta_path
from ehrfast.genomics.options import PRSOptions
from ehrfast.genomics.score import distinct_variants, score_traits
from ehrfast.genomics.scorefile import read_score_files
from ehrfast.io import atomic_output, check_outputs


@dataclass
class PRSSummary:
    out_path: str
    n_samples: int
    n_subjects_mapped: int
    traits: list[str]
    dropped_traits: list[str]
    seconds: float
    backend: str

    def describe(self) -> str:
        lines = [f"PRS for {len(self.traits)} traits x {self.n_samples:,} samples ({self.n_subjects_mapped:,} mapped to subjects) -> "
                 f"{self.out_path} in {self.seconds:.1f} s [{self.backend}]"]
        if self.dropped_traits:
            lines.append(f"  dropped (match rate below the minimum): {', '.join(self.dropped_traits)}")
        return "\n".join(lines)


def keep_top_variants(m: TraitMatch, max_variants: int | None) -> TraitMatch:
    """At most ``max_variants`` pairs by |weight| (ties: earlier variant first), in variant order."""
    if max_variants is None or len(m.variant) <= max_variants:
        return m
    order = np.lexsort((m.variant, -np.abs(m.weight)))[:max_variants]
    order.sort()
    report = dict(m.report, variants_used=int(max_variants), variants_dropped_by_max=int(len(m.variant) - max_variants))
    return TraitMatch(m.trait, m.source, m.variant[order], m.effect_is_alt[order], m.weight[order], report)


def map_subjects(sample_ids: np.ndarray, sample_map: str | os.PathLike | None) -> np.ndarray:
    """subject_id per sample (float NaN where unknown, kept exact via object ints): from the
    mapping file (``sample_id<TAB>subject_id``) when given, else the IID when it is an integer."""
    out = np.full(len(sample_ids), None, dtype=object)
    if sample_map is not None:
        mapping = {}
        for i, line in enumerate(Path(sample_map).read_text().splitlines(), start=1):
            parts = line.split()
            if not parts or (i == 1 and not parts[-1].lstrip("-").isdigit()):
                continue  # header or blank line
            if len(parts) < 2 or not parts[1].lstrip("-").isdigit():
                raise InvalidInputError(f"{sample_map}: line {i} must be 'sample_id subject_id' with an integer subject_id")
            mapping[parts[0]] = int(parts[1])
        for k, s in enumerate(sample_ids):
            out[k] = mapping.get(str(s))
        return out
    for k, s in enumerate(sample_ids):
        text = str(s)
        if text.lstrip("-").isdigit():
            out[k] = int(text)
    return out


def _training_mask(subject_ids: np.ndarray, train_subjects: set[int] | None) -> np.ndarray:
    if train_subjects is None:
        return np.ones(len(subject_ids), bool)
    return np.array([s is not None and s in train_subjects for s in subject_ids])


def meds_subjects(meds_dir: str | os.PathLike, split: str = "train") -> tuple[set[int], set[int]]:
    """(all subjects, subjects of ``split``) from a MEDS dataset's subject_splits.parquet."""
    t = pq.read_table(Path(meds_dir) / "metadata" / "subject_splits.parquet")
    ids = t.column("subject_id").to_pylist()
    splits = t.column("split").to_pylist()
    return set(ids), {s for s, sp in zip(ids, splits) if sp == split}


def _match_and_score(genotypes, score_files, opt: PRSOptions, backend, sample_map, meds_dir, genotype_options, progress):
    """Reads genotypes and score files, matches, checks subjects, scores: the heavy part of compute_prs."""
    source = open_genotypes(genotypes, **(genotype_options or {}))
    files = read_score_files(score_files)
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
    subject_ids = map_subjects(source.sample_ids, sample_map)
    train_subjects = None
    if meds_dir is not None:
        all_subjects, train_subjects = meds_subjects(meds_dir)
        if not any(s in all_subjects for s in subject_ids if s is not None):
            raise InvalidInputError(f"none of the {len(subject_ids)} genotype sample ids of {source.path} matches a subject of {meds_dir} "
                             "(give --sample-map SAMPLE_ID<TAB>SUBJECT_ID when IIDs are not MEDS subject ids)")
    bar = tqdm(total=len(distinct_variants(matches)), desc="prs: variants", unit="var", disable=not progress, leave=False)
    result = score_traits(source, matches, opt.model, backend=backend, progress=bar.update)
    bar.close()
    return source, matches, dropped, result, subject_ids, train_subjects


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
    overwrite: bool = False,
    progress: bool = True,
) -> PRSSummary:
    """Matches every score file to the genotypes, scores all traits at once and writes the
    PRS matrix. With ``meds_dir``, sample ids must reach MEDS subjects and the standardization
    is fitted on the MEDS training split; otherwise on all samples. ``bgen_ref_last``: the BGEN
    file stores ALT first (plink2's 'ref-last')."""
    t0 = time.perf_counter()
    opt = options or PRSOptions()
    out_path = Path(out_path)
    meta_path = prs_meta_path(out_path)
    check_outputs(files=[out_path, meta_path], inputs=[*genotype_files(genotypes), *score_files, sample_map, meds_dir],
                  overwrite=overwrite)
    with reuse_freed_memory():  # large temporaries: reuse pages instead of faulting fresh ones in
        source, matches, dropped, result, subject_ids, train_subjects = _match_and_score(
            genotypes, score_files, opt, backend, sample_map, meds_dir, {"ref_first": False} if bgen_ref_last else None, progress)
    sums = result.sums
    train = _training_mask(subject_ids, train_subjects) & np.isfinite(sums).all(1)
    mean = sums[train].mean(0) if train.any() else sums.mean(0)
    sd = sums[train].std(0) if train.any() else sums.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    values = sums if opt.raw else np.clip((sums - mean) / sd, -opt.clip_sd, opt.clip_sd)
    columns = {"sample_id": pa.array([str(s) for s in source.sample_ids], pa.string()), "subject_id": pa.array(list(subject_ids), pa.int64())}
    for j, trait in enumerate(result.traits):
        columns[trait] = pa.array(values[:, j].astype(np.float32))
    meta = {
        "genotypes": str(source.path),
        "genotype_format": source.kind,
        "n_samples": int(source.n_samples),
        "traits": result.traits,
        "dropped_traits": dropped,
        "values": "raw sums" if opt.raw else f"standardized with training mean/sd, clipped at ±{opt.clip_sd} sd",
        "standardization": {"fitted_on": "MEDS train split" if meds_dir else "all samples", "n": int(train.sum()),
                            "mean": dict(zip(result.traits, mean.tolist())), "sd": dict(zip(result.traits, sd.tolist())), "clip_sd": opt.clip_sd},
        "model": asdict(opt.model),
        "max_variants": opt.max_variants,
        "allele_frequency_source": "target genotypes (non-missing calls), as plink2 computes them",
        "match": {m.trait: {**m.report, "variants_used": int(len(m.variant)), "source": m.source} for m in matches},
    }
    with atomic_output(out_path, overwrite=overwrite) as tmp:
        pq.write_table(pa.table(columns), tmp, use_dictionary=False, write_statistics=False)  # continuous values: no dictionary pages
        with atomic_output(meta_path, overwrite=overwrite) as tmp_meta:
            Path(tmp_meta).write_text(json.dumps(meta, indent=1) + "\n")
    n_mapped = int(sum(s is not None for s in subject_ids))
    return PRSSummary(str(out_path), int(source.n_samples), n_mapped, result.traits, dropped, round(time.perf_counter() - t0, 3),
                      resolve_backend(backend, "PRS scorer") if source.kind == "bed" else "numpy")
