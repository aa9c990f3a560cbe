"""Synthetic cohort: MEDS health records, PLINK genotypes, PGS-Catalog score files, and the truth.

Real EHR and genotype data are access-controlled, so this generator is what the demo, the
tests and the benchmarks run on. It is a small causal world:

* every subject gets genotypes; six diseases (T2D, CAD, depression, schizophrenia, COPD,
  stroke) have a standardized genetic liability G_d = Σ β·dosage over causal variants;
* latent physiology (BMI, glycaemia, LDL, blood pressure) drifts with age and partly follows
  the liabilities; labs and vitals measure it with noise;
* yearly disease hazards are logistic in age, sex, smoking, physiology, prior diseases and
  G_d, so onset depends on genetics *and* on what the EHR shows. Glycaemia carries most of the
  T2D genetic signal: with no history a PRS helps a lot, with years of HbA1c and glucose
  values it helps less — the pattern the genomics paper reports;
* visits (outpatient, emergency, inpatient) arrive at a rate that grows with disease burden
  and a heavy-tailed per-subject frailty, so event counts span tens to thousands.

The published score files weight the causal variants with estimation noise plus non-causal
variants, in random allele orientation, some on the other strand; hundreds of null traits
have no effect at all. ``ground_truth/`` holds the true liabilities, onset times and the true
10-year risks at fixed index times; nothing downstream may read it except to report a ceiling.

Everything is vectorized over subjects (no Python loop over subjects or events) and
deterministic for a seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast.data.meds import CODES_SCHEMA, DATA_SCHEMA, SPLITS_SCHEMA, write_dataset_metadata
from ehrfast.genomics.bed import PlinkWriter, Variant
from ehrfast.io import atomic_directory, check_outputs
from ehrfast.synth import codes as vocab
from ehrfast.synth.chronic import (
    CONDITIONS,
    DIAGNOSIS,
    EMERGENCY,
    INPATIENT,
    INTAKE,
    N_DIS,
    OUTPATIENT,
    ROUTINE,
    T2D,
    Physiology,
    Subjects,
    Visits,
    age_at,
    conditions_at,
    draw_subjects,
    draw_visits,
    measure,
    simulate_onsets,
    to_us,
    true_risk,
)
from ehrfast.synth.config import SyntheticConfig
from ehrfast.synth.hospital import DIAGNOSIS_ARRIVAL, NO_TIME, RANK_DEATH, HospitalWorld, build_hospital_world, emit_hospital_events
from ehrfast.synth.hospital_chain import HospitalChain
from ehrfast.synth.hospital_truth import anchor_table, realized_rates, trajectory_table
from ehrfast.units import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_YEAR

# the MEDS columns, plus text_value (triage text values) and hadm_id (the admission, as
# MIMIC-IV's MEDS data carry it) — both nullable
SCHEMA = pa.schema([*DATA_SCHEMA, pa.field("text_value", pa.large_string()), pa.field("hadm_id", pa.int64())])



@dataclass
class CohortSummary:
    """What ``generate_cohort`` wrote (also saved as ``cohort.json``)."""

    out_dir: str
    n_subjects: int
    n_rows: int
    n_codes: int
    n_genotyped: int
    n_variants: int
    n_traits: int
    rows_per_subject: dict[str, float]
    incidence_10y_at_start: dict[str, float]
    prevalence_at_end: dict[str, float]
    prs_liability_correlation: dict[str, float]
    deaths: int
    seconds: float
    config: dict = field(default_factory=dict)
    hospital: dict = field(default_factory=dict)  # realized rates of the hospital world's outcomes

    def describe(self) -> str:
        r = self.rows_per_subject
        lines = [f"synthetic cohort written to {self.out_dir} in {self.seconds:.1f} s",
                 f"  subjects {self.n_subjects:,}  rows {self.n_rows:,}  codes {self.n_codes}  deaths {self.deaths:,}",
                 f"  rows/subject: min {r['min']}  median {r['median']:.0f}  mean {r['mean']}  p99 {r['p99']:.0f}  max {r['max']}",
                 f"  genotypes: {self.n_genotyped:,} samples x {self.n_variants:,} variants; {self.n_traits} score files",
                 "  10-year incidence from record start / ever diagnosed / corr(PRS, true liability):"]
        for d, inc in self.incidence_10y_at_start.items():
            lines.append(f"    {d:<14} {inc:7.2%}  {self.prevalence_at_end[d]:7.2%}  {self.prs_liability_correlation[d]:.3f}")
        h = self.hospital
        if h:
            lines.append(f"  hospital world: {h['ed_visits']:,} ED visits, {h['admissions']:,} admissions (median stay "
                         f"{h['median_length_of_stay_days']} d, 90th percentile {h['p90_length_of_stay_days']} d)")
            lines.append(f"    in-hospital mortality {h['hospital_mortality']:.2%}  ICU admission {h['icu_admission']:.2%}  stay >= 10 d "
                         f"{h['prolonged_stay_10d']:.2%}  composite {h['composite']:.2%}")
            lines.append(f"    ED: admitted {h['ed_hospitalization']:.2%}  critical outcome within 12 h {h['ed_critical_outcome_12h']:.2%}  "
                         f"return within 72 h {h['ed_return_72h']:.2%};  readmission or death within 30 d {h['readmission_or_death_30d']:.2%}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- genetics

_BASES = np.array(list("ACGT"))
_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


@dataclass
class Genetics:
    """Variants, the causal model, and the published scores."""

    variants: list[Variant]
    freq_a1: np.ndarray  # [n_variants] frequency of the counted allele
    liability: np.ndarray  # [n_subjects, N_DIS] standardized true liability
    prs_corr: dict[str, float]
    n_traits: int
    n_genotyped: int


def _draw_variants(rng: np.random.Generator, n_variants: int) -> tuple[list[Variant], np.ndarray]:
    chrom_len = np.array([249, 243, 198, 191, 182, 171, 159, 145, 138, 134, 135, 133, 114, 107, 102, 90, 83, 80, 59, 64, 47, 51], float)
    chroms = np.sort(rng.choice(22, size=n_variants, p=chrom_len / chrom_len.sum())) + 1
    pos = np.empty(n_variants, dtype=np.int64)
    for c in np.unique(chroms):
        m = chroms == c
        pos[m] = np.sort(rng.choice(int(chrom_len[c - 1] * 1e6), size=m.sum(), replace=False)) + 1
    maf = rng.uniform(0.02, 0.5, n_variants)
    a1 = rng.integers(0, 4, n_variants)
    # About 8% strand-ambiguous pairs (A/T, C/G), as on real arrays; otherwise one of the two
    # non-complementary bases. _BASES is "ACGT", so the complement of base i is 3 - i.
    other = np.stack([(a1 + 1) % 4, (a1 + 2) % 4, (a1 + 3) % 4], axis=1)
    non_comp = np.where(other != (3 - a1)[:, None], other, -1)
    non_comp = np.sort(non_comp, axis=1)[:, 1:]  # the two non-complementary bases
    a2 = np.where(rng.random(n_variants) < 0.08, 3 - a1, non_comp[np.arange(n_variants), rng.integers(0, 2, n_variants)])
    rsids = 1_000_000 + rng.choice(50_000_000, size=n_variants, replace=False)
    variants = [
        Variant(str(c), f"rs{r}", 0.0, int(p), _BASES[x], _BASES[y])
        for c, r, p, x, y in zip(chroms, rsids, pos, a1, a2)
    ]
    return variants, maf


def _score_rows(rng, variants, freq, idx, beta_a1):
    """Score-file rows for variants ``idx`` with per-A1-allele weights ``beta_a1``.

    Half of the rows name A2 as the effect allele (weight negated), and 5% of the
    non-ambiguous rows are written on the other strand, as real score files are.
    """
    rows = []
    swap = rng.random(len(idx)) < 0.5
    flip = rng.random(len(idx)) < 0.05
    for k, v in enumerate(idx):
        var = variants[v]
        eff, oth, w, f = var.a1, var.a2, beta_a1[k], freq[v]
        if swap[k]:
            eff, oth, w, f = oth, eff, -w, 1 - f
        if flip[k] and _COMPLEMENT[eff] != oth:
            eff, oth = _COMPLEMENT[eff], _COMPLEMENT[oth]
        rows.append((var.id, var.chrom, var.pos, eff, oth, w, f))
    rows.sort(key=lambda r: (int(r[1]), r[2]))
    return rows


def write_score_file(path: Path, trait_id: str, trait_name: str, rows: list[tuple]) -> None:
    """A PGS Catalog scoring file (format 2.0 header) for one trait."""
    header = [
        "###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring for additional information",
        "#format_version=2.0",
        "##POLYGENIC SCORE (PGS) INFORMATION",
        f"#pgs_id={trait_id}",
        f"#pgs_name={trait_id}_synthetic",
        f"#trait_reported={trait_name}",
        "#trait_mapped=synthetic",
        "#trait_efo=NR",
        "#genome_build=GRCh38",
        f"#variants_number={len(rows)}",
        "#weight_type=beta",
        "##SOURCE INFORMATION",
        "#pgp_id=SYNTHETIC",
        "#citation=ehrfast synthetic cohort",
        "rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\tallelefrequency_effect",
    ]
    body = [f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]}\t{r[5]:.6g}\t{r[6]:.4f}" for r in rows]
    path.write_text("\n".join(header + body) + "\n")


def _simulate_genetics(rng, cfg: SyntheticConfig, subj: Subjects, out: Path, progress: bool) -> Genetics:
    n, nv = subj.n, cfg.n_variants
    variants, maf = _draw_variants(rng, nv)
    # Causal effects in standardized-genotype units, converted to per-A1-allele weights.
    causal = np.stack([rng.choice(nv, cfg.causal_variants, replace=False) for _ in range(N_DIS)])
    sd_geno = np.sqrt(2 * maf * (1 - maf))
    beta = np.zeros((N_DIS, nv), np.float32)
    for d in range(N_DIS):
        beta[d, causal[d]] = rng.standard_normal(cfg.causal_variants) / np.sqrt(cfg.causal_variants) / sd_geno[causal[d]]
    # Published weights: truth + estimation noise, plus non-causal variants that carry only noise.
    noise_var = (1 / cfg.prs_accuracy**2 - 1) / cfg.score_variants
    published = np.zeros((N_DIS, nv), np.float32)
    score_idx = []
    for d in range(N_DIS):
        others = np.setdiff1d(np.arange(nv), causal[d])
        idx = np.sort(np.concatenate([causal[d], rng.choice(others, cfg.score_variants - cfg.causal_variants, replace=False)]))
        published[d, idx] = beta[d, idx] + rng.normal(0, np.sqrt(noise_var), len(idx)) / sd_geno[idx]
        score_idx.append(idx)

    geno = np.flatnonzero(rng.random(n) < cfg.genotyped_fraction)
    scores_dir = out / "genomics" / "scores"
    scores_dir.mkdir(parents=True)
    raw_liab = np.zeros((N_DIS, n), np.float64)
    raw_prs = np.zeros((N_DIS, n), np.float64)
    block = max(1, min(nv, 2**25 // max(n, 1)))
    starts = range(0, nv, block)
    with PlinkWriter(out / "genomics" / "genotypes", [str(i) for i in subj.ids[geno]], np.where(subj.male[geno], 1, 2)) as w:
        for s in tqdm(starts, desc="genotypes", unit="block", disable=not progress, leave=False):
            e = min(s + block, nv)
            p = maf[s:e, None].astype(np.float32)
            x = (rng.random((e - s, n), dtype=np.float32) < p).astype(np.int8)
            x += rng.random((e - s, n), dtype=np.float32) < p
            xf = x.astype(np.float32)
            raw_liab += beta[:, s:e] @ xf
            raw_prs += published[:, s:e] @ xf
            x[rng.random((e - s, n), dtype=np.float32) < cfg.missing_rate] = -1
            w.write(np.ascontiguousarray(x[:, geno]), variants[s:e])

    liability = ((raw_liab - raw_liab.mean(1, keepdims=True)) / raw_liab.std(1, keepdims=True)).T
    prs_corr = {name: float(np.corrcoef(raw_liab[d], raw_prs[d])[0, 1]) for d, name in enumerate(vocab.DISEASES)}
    for d, name in enumerate(vocab.DISEASES):
        rows = _score_rows(rng, variants, maf, score_idx[d], published[d, score_idx[d]])
        write_score_file(scores_dir / f"SYN_{name}.txt", f"SYN_{name}", vocab.DISEASE_TRAIT_NAMES[name], rows)
    for t in range(cfg.n_null_traits):
        size = min(nv, int(np.exp(rng.uniform(np.log(100), np.log(1500)))))
        idx = np.sort(rng.choice(nv, size, replace=False))
        weights = rng.standard_normal(size) / np.sqrt(size) / sd_geno[idx]
        rows = _score_rows(rng, variants, maf, idx, weights)
        write_score_file(scores_dir / f"SYN_NULL_{t + 1:04d}.txt", f"SYN_NULL_{t + 1:04d}", "Null trait (no effect)", rows)
    return Genetics(variants, maf, liability, prs_corr, N_DIS + cfg.n_null_traits, len(geno))


# ----------------------------------------------------------------------------- events


class EventBuffer:
    """Collects event columns from many vectorized draws, then concatenates once. Text values
    are kept as int32 ids into ``texts`` (-1: none), since they are few distinct strings."""

    def __init__(self, code_index: dict[str, int]):
        self.code_index = code_index
        self.texts: list[str] = []
        self._text_id: dict[str, int] = {}
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, s, t, codes, values=None, rank: int = 5, text=None, hadm=None) -> None:
        """``codes``: array of code ids, or one code string for all rows; ``text``: strings (or
        one for all rows) for ``text_value``; ``hadm``: the admission id of each row (-1: none)."""
        s = np.asarray(s, np.int64)
        n = len(s)
        if isinstance(codes, str):
            codes = np.full(n, self.code_index[codes], np.int32)
        v = np.full(n, np.nan, np.float32) if values is None else np.asarray(values, np.float32)
        text_ids = np.full(n, -1, np.int32) if text is None else self._text_ids(np.broadcast_to(np.asarray(text, dtype=str), (n,)))
        h = np.full(n, -1, np.int64) if hadm is None else np.broadcast_to(np.asarray(hadm, np.int64), (n,)).copy()
        self.parts.append((s, np.asarray(t, np.int64), np.asarray(codes, np.int32), v, np.full(n, rank, np.int8), text_ids, h))

    def _text_ids(self, text: np.ndarray) -> np.ndarray:
        distinct, inverse = np.unique(text, return_inverse=True)
        ids = np.array([self._text_id.setdefault(str(x), len(self._text_id)) for x in distinct], np.int32)
        self.texts = list(self._text_id)
        return ids[inverse.reshape(-1)]

    def columns(self):
        return tuple(np.concatenate(c) for c in zip(*self.parts))


def _choose_code(rng, options: list[tuple], code_index, size) -> np.ndarray:
    """Draws code ids from ``options`` rows (code, description[, share])."""
    ids = np.array([code_index[o[0]] for o in options], np.int32)
    shares = np.array([o[2] if len(o) > 2 else 1.0 for o in options])
    return ids[rng.choice(len(ids), size=size, p=shares / shares.sum())]




def _add_diagnoses(rng, buf: EventBuffer, phys, onset, v: Visits) -> None:
    present = conditions_at(phys, onset, v.subj, v.start)
    present[:, CONDITIONS.index("PREDIABETES")] &= ~present[:, T2D]
    p_record = np.select([v.reason == INTAKE, v.kind == INPATIENT, v.kind == EMERGENCY], [0.9, 0.8, 0.3], 0.35)
    record = present & (rng.random(present.shape) < p_record[:, None])
    is_dx = v.dx >= 0
    record[np.flatnonzero(is_dx), v.dx[is_dx]] = True
    when = np.where(v.kind == INPATIENT, v.end - US_PER_MINUTE, v.start + 10 * US_PER_MINUTE)
    for c, name in enumerate(CONDITIONS):
        rows = np.flatnonzero(record[:, c])
        buf.add(v.subj[rows], when[rows], _choose_code(rng, vocab.DIAGNOSIS_CODES[name], buf.code_index, len(rows)), rank=2,
                hadm=v.hadm_at(rows, when[rows]))
    t1 = np.flatnonzero(phys.subj.type1[v.subj] & (rng.random(v.n) < 0.5))
    buf.add(v.subj[t1], when[t1], vocab.DECOY_CODES[0][0], rank=2, hadm=v.hadm_at(t1, when[t1]))

    # Medications for treated conditions present at the visit.
    for c, name in enumerate(CONDITIONS):
        if name not in vocab.MEDICATION_CODES:
            continue
        rows = np.flatnonzero(present[:, c] & (rng.random(v.n) < 0.6))
        t = v.start[rows] + 20 * US_PER_MINUTE
        buf.add(v.subj[rows], t, _choose_code(rng, vocab.MEDICATION_CODES[name], buf.code_index, len(rows)), rank=3, hadm=v.hadm_at(rows, t))


def _add_measurements(rng, buf: EventBuffer, phys, onset, v: Visits, mask, keys, offset_us, p: float) -> None:
    for key in keys:
        rows = np.flatnonzero(mask & (rng.random(v.n) < p))
        t = v.start[rows] + offset_us
        acute = (v.kind[rows] != OUTPATIENT).astype(float)
        m = vocab.MEASUREMENTS[key]
        values = np.round(measure(rng, phys, onset, key, v.subj[rows], t, acute), m.decimals)
        buf.add(v.subj[rows], t, m.code, values, rank=4, hadm=v.hadm_at(rows, t))


def _add_visit_events(rng, buf: EventBuffer, phys, onset, v: Visits, hospital_episodes: bool = False) -> None:
    """What a visit records. For the hospital world's episodes (``hospital_episodes``) the
    visit codes, the ED panel and the inpatient days are the hospital world's own."""
    for k, name in enumerate(vocab.VISIT_TYPES):
        if hospital_episodes:
            break
        rows = np.flatnonzero(v.kind == k)
        buf.add(v.subj[rows], v.start[rows], vocab.VISIT_START[name][0], rank=0)
        buf.add(v.subj[rows], v.end[rows], vocab.VISIT_END[name][0], rank=9)
    _add_diagnoses(rng, buf, phys, onset, v)

    out, ed, inp = v.kind == OUTPATIENT, v.kind == EMERGENCY, v.kind == INPATIENT
    intake = v.reason == INTAKE
    _add_measurements(rng, buf, phys, onset, v, out | inp, ["BMI"], 5 * US_PER_MINUTE, 0.7)
    _add_measurements(rng, buf, phys, onset, v, np.ones(v.n, bool), ["SBP"], 5 * US_PER_MINUTE, 0.75)
    panel = (out & (rng.random(v.n) < 0.45)) | intake
    _add_measurements(rng, buf, phys, onset, v, panel, ["GLUCOSE", "CREATININE", "SODIUM", "POTASSIUM"], 40 * US_PER_MINUTE, 0.7)
    _add_measurements(rng, buf, phys, onset, v, panel, ["HBA1C", "LDL", "HEMOGLOBIN"], 40 * US_PER_MINUTE, 0.5)
    acute_panel = ["GLUCOSE", "CREATININE", "SODIUM", "POTASSIUM", "HEMOGLOBIN", "WBC"]
    if hospital_episodes:  # the stay's own labs: chronic ones on admission (ED: in the ED)
        _add_measurements(rng, buf, phys, onset, v, ed | inp, ["GLUCOSE", "SODIUM", "POTASSIUM", "HEMOGLOBIN"], 50 * US_PER_MINUTE, 0.8)
    else:
        _add_measurements(rng, buf, phys, onset, v, ed, acute_panel, 45 * US_PER_MINUTE, 0.8)
        _add_inpatient_days(rng, buf, phys, onset, v, acute_panel)

    # Smoking status at intake and now and then.
    rows = np.flatnonzero(intake | (rng.random(v.n) < 0.08))
    smoke = phys.subj.smoker[v.subj[rows]]
    codes = np.where(smoke, buf.code_index[vocab.SMOKING_CODES[1][0]], buf.code_index[vocab.SMOKING_CODES[0][0]])
    t = v.start[rows] + 5 * US_PER_MINUTE
    buf.add(v.subj[rows], t, codes, rank=1, hadm=v.hadm_at(rows, t))

    # Background codes: Zipf-distributed over a long list, no disease signal.
    bg = vocab.background_codes()
    bg_ids = np.array([buf.code_index[c] for c, _ in bg], np.int32)
    n_bg = rng.poisson(np.where(inp, 2.0, 0.9))
    rows = np.repeat(np.arange(v.n), n_bg)
    rank_draw = rng.zipf(1.4, len(rows))
    rank_draw = np.where(rank_draw > len(bg), rng.integers(1, len(bg) + 1, len(rows)), rank_draw) - 1
    t = v.start[rows] + 15 * US_PER_MINUTE
    buf.add(v.subj[rows], t, bg_ids[rank_draw], rank=2, hadm=v.hadm_at(rows, t))


def _add_inpatient_days(rng, buf, phys, onset, v: Visits, panel) -> None:
    """Daily morning labs during inpatient stays: the source of the heavy tail."""
    inp = np.flatnonzero(v.kind == INPATIENT)
    n_days = ((v.end[inp] - v.start[inp]) // US_PER_DAY + 1).astype(np.int64)
    stay = np.repeat(inp, n_days)
    day = np.arange(len(stay)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    first_morning = v.start[stay] // US_PER_DAY * US_PER_DAY + 6 * 60 * US_PER_MINUTE
    t = first_morning + day * US_PER_DAY + rng.integers(0, 90, len(stay)) * US_PER_MINUTE
    t = np.where(day == 0, v.start[stay] + 60 * US_PER_MINUTE, t)
    inside = t < v.end[stay]
    stay, t = stay[inside], t[inside]
    s = v.subj[stay]
    for key in panel:
        keep = rng.random(len(s)) < 0.9
        m = vocab.MEASUREMENTS[key]
        values = np.round(measure(rng, phys, onset, key, s[keep], t[keep], np.ones(keep.sum())), m.decimals)
        buf.add(s[keep], t[keep], m.code, values, rank=4)
    keep = rng.random(len(s)) < 0.8
    m = vocab.MEASUREMENTS["SBP"]
    buf.add(s[keep], t[keep] + 30 * US_PER_MINUTE, m.code, np.round(measure(rng, phys, onset, "SBP", s[keep], t[keep], np.ones(keep.sum())), 0), rank=4)


# ----------------------------------------------------------------------------- assembly


@dataclass
class Cohort:
    """Every MEDS row of the cohort as sorted columns, and what the events changed."""

    s: np.ndarray  # subject index
    t: np.ndarray  # µs (int64 min for static rows)
    code: np.ndarray  # code id
    value: np.ndarray  # float32, NaN when absent
    text: np.ndarray  # int32 id into texts (-1: no text_value)
    texts: list[str]
    hadm: np.ndarray  # int64 admission id, -1 when none
    n_visits: int
    death_us: np.ndarray  # per subject, NO_TIME when alive at the end
    record_end: np.ndarray  # per subject µs
    world: HospitalWorld | None


def _all_events(rng, phys: Physiology, onset, death, record_end, code_index, cfg: SyntheticConfig, censor_us: int) -> Cohort:
    """Every MEDS row of the cohort. With the hospital world, the chronic world's acute visits
    become its episodes (drawn from their own random stream, so the chronic draws do not
    depend on them), and its deaths and record ends apply."""
    subj = phys.subj
    visits = draw_visits(rng, phys, onset, record_end, cfg.visit_rate)
    death_us = np.where(np.isfinite(death), subj.birth + (np.where(np.isfinite(death), death, 0) * US_PER_YEAR).astype(np.int64), NO_TIME)
    world = None
    chronic = visits
    if cfg.hospital:
        hospital_rng = np.random.default_rng([cfg.seed, 1])
        world = build_hospital_world(hospital_rng, HospitalChain(), phys, onset, visits, death_us, censor_us)
        death_us = world.death_us
        kept = np.flatnonzero(world.visit_keep)
        chronic = Visits(visits.subj[kept], world.visit_start[kept], world.visit_end[kept], visits.kind[kept], visits.reason[kept],
                         visits.dx[kept])
        last_end = np.full(subj.n, censor_us, np.int64)
        np.maximum.at(last_end, world.episodes.subj, world.episodes.start + world.episodes.end_step.astype(np.int64) * US_PER_HOUR)
        record_end = np.maximum(np.minimum(death_us, last_end), subj.start)
    buf = EventBuffer(code_index)
    n = subj.n
    static_t = np.full(n, np.iinfo(np.int64).min)  # sorts first; written as null
    buf.add(np.arange(n), static_t, np.where(subj.male, code_index["GENDER//M"], code_index["GENDER//F"]), rank=0)
    race_ids = np.array([code_index[f"RACE//{r}"] for r in vocab.RACES], np.int32)
    buf.add(np.arange(n), static_t, race_ids[subj.race], rank=1)
    buf.add(np.arange(n), subj.birth, "MEDS_BIRTH", rank=0)
    _add_visit_events(rng, buf, phys, onset, chronic)
    if world is not None:
        _add_visit_events(hospital_rng, buf, phys, onset, _episode_visits(world), hospital_episodes=True)
        emit_hospital_events(hospital_rng, buf, world, phys, onset)
    dead = np.flatnonzero(death_us != NO_TIME)
    buf.add(dead, death_us[dead], "MEDS_DEATH", rank=RANK_DEATH)
    s, t, code, value, rank, text, hadm = buf.columns()
    keep = t <= record_end[s]  # nothing after the data end, a death included
    s, t, code, value, rank, text, hadm = s[keep], t[keep], code[keep], value[keep], rank[keep], text[keep], hadm[keep]
    # arrow's multi-key sort is stable, like np.lexsort, and about twice as fast on these columns
    keys = pa.table({"s": s, "t": t, "rank": rank, "code": code})
    order = pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in keys.column_names]).to_numpy()
    return Cohort(s[order], t[order], code[order], value[order], text[order], buf.texts, hadm[order], visits.n, death_us, record_end, world)


def _episode_visits(world: HospitalWorld) -> Visits:
    """The episodes as visits, for the diagnoses, medications and measurements every visit
    records: inpatient when admitted (ending at discharge), else emergency."""
    ep = world.episodes
    end = ep.start + ep.end_step.astype(np.int64) * US_PER_HOUR
    admitted = ep.admit_step >= 0
    kind = np.where(admitted, INPATIENT, EMERGENCY).astype(np.int8)
    reason = np.where(ep.reason == DIAGNOSIS_ARRIVAL, DIAGNOSIS, ROUTINE).astype(np.int8)
    admitted_at = np.where(admitted, ep.start + np.maximum(ep.admit_step, 0).astype(np.int64) * US_PER_HOUR, NO_TIME)
    return Visits(ep.subj.astype(np.int64), ep.start, end, kind, reason, ep.dx.astype(np.int8), world.hadm_id, admitted_at)


def _assign_splits(rng, n: int, fractions) -> np.ndarray:
    """Split index per subject (0 train, 1 tuning, 2 held_out), exact proportions."""
    counts = np.floor(np.asarray(fractions) * n).astype(int)
    counts[0] += n - counts.sum()
    split = np.repeat(np.arange(3), counts)
    rng.shuffle(split)
    return split


def _write_meds(root: Path, subj: Subjects, split, cohort: Cohort, codes: list[str], shard_size: int, progress: bool) -> None:
    s, t, code, value, text, hadm = cohort.s, cohort.t, cohort.code, cohort.value, cohort.text, cohort.hadm
    texts = pa.array(cohort.texts, pa.large_string())
    shard_of_subject = np.empty(subj.n, np.int64)
    shard_names = []
    for k, name in enumerate(("train", "tuning", "held_out")):
        members = np.flatnonzero(split == k)
        for j in range(0, max(len(members), 1), shard_size):
            shard_of_subject[members[j : j + shard_size]] = len(shard_names)
            shard_names.append(f"{name}/{j // shard_size}.parquet")
    row_shard = shard_of_subject[s]
    order = np.argsort(row_shard, kind="stable")  # rows stay sorted by subject, time inside a shard
    bounds = np.searchsorted(row_shard[order], np.arange(len(shard_names) + 1))
    dictionary = pa.array(codes, pa.string())
    static = t == np.iinfo(np.int64).min
    for k, name in enumerate(tqdm(shard_names, desc="MEDS shards", disable=not progress, leave=False)):
        rows = order[bounds[k] : bounds[k + 1]]
        table = pa.table(
            [
                pa.array(subj.ids[s[rows]], pa.int64()),
                pa.array(t[rows], pa.timestamp("us"), mask=static[rows]),
                pa.DictionaryArray.from_arrays(pa.array(code[rows]), dictionary).cast(pa.string()),
                pa.array(value[rows], pa.float32(), mask=np.isnan(value[rows])),
                pa.DictionaryArray.from_arrays(pa.array(text[rows], mask=text[rows] < 0), texts).cast(pa.large_string()),
                pa.array(hadm[rows], pa.int64(), mask=hadm[rows] < 0),
            ],
            schema=SCHEMA,
        )
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, row_group_size=1_000_000)


def _write_metadata(root: Path, subj: Subjects, split, codes: list[str], cfg: SyntheticConfig) -> None:
    from ehrfast import __version__

    (root / "metadata").mkdir(parents=True, exist_ok=True)
    descriptions = vocab.all_code_descriptions()
    parents = [[f"ICD10CM/{c.rsplit('//', 1)[1]}"] if c.startswith("DIAGNOSIS//ICD//10//") else None for c in codes]
    pq.write_table(
        pa.table([pa.array(codes), pa.array([descriptions[c] for c in codes]), pa.array(parents, pa.list_(pa.string()))], schema=CODES_SCHEMA),
        root / "metadata" / "codes.parquet",
    )
    split_names = np.array(["train", "tuning", "held_out"])
    pq.write_table(pa.table([pa.array(subj.ids), pa.array(split_names[split])], schema=SPLITS_SCHEMA), root / "metadata" / "subject_splits.parquet")
    write_dataset_metadata(
        root,
        dataset_name="ehrfast-synthetic",
        dataset_version=f"seed{cfg.seed}-n{cfg.n_subjects}",
        etl_name="ehrfast.synth.generator",
        etl_version=__version__,
        license="CC0-1.0 (synthetic)",
    )


def _write_ground_truth(root: Path, cfg: SyntheticConfig, phys: Physiology, split, onset, death, record_end) -> None:
    subj = phys.subj
    n = subj.n
    gt = root / "ground_truth"
    gt.mkdir()
    ts = pa.timestamp("us")

    def onset_col(ages):
        ok = np.isfinite(ages)
        return pa.array(subj.birth + (np.where(ok, ages, 0) * US_PER_YEAR).astype(np.int64), ts, mask=~ok)

    cols = {
        "subject_id": pa.array(subj.ids),
        "split": pa.array(np.array(["train", "tuning", "held_out"])[split]),
        "male": pa.array(subj.male),
        "race": pa.array(np.array(vocab.RACES)[subj.race]),
        "smoker": pa.array(subj.smoker),
        "birth_time": pa.array(subj.birth, ts),
        "record_start": pa.array(subj.start, ts),
        "record_end": pa.array(record_end, ts),
        "death_time": onset_col(death),
    }
    for d, name in enumerate(vocab.DISEASES):
        cols[f"liability_{name}"] = pa.array(phys.G[:, d].astype(np.float32))
    for d, name in enumerate(vocab.DISEASES):
        cols[f"onset_{name}"] = onset_col(onset[:, d])
    pq.write_table(pa.table(cols), gt / "subjects.parquet")

    # True risk at each index time, NaN where the disease is already present or the
    # record has ended (such subjects are not at risk / not observable).
    parts = []
    s = np.arange(n)
    for off in cfg.index_offsets_days:
        idx_t = subj.start + off * US_PER_DAY
        age0 = age_at(subj, s, idx_t)
        prior = onset <= age0[:, None]
        risk = true_risk(phys, s, age0, prior, cfg.horizon_years)
        risk[prior | (idx_t >= record_end)[:, None]] = np.nan
        for d, name in enumerate(vocab.DISEASES):
            parts.append((subj.ids, np.full(n, name), np.full(n, off), idx_t, risk[:, d]))
    ids, dis, off, idx_t, risk = (np.concatenate(c) for c in zip(*parts))
    pq.write_table(
        pa.table(
            {
                "subject_id": pa.array(ids),
                "disease": pa.array(dis),
                "index_offset_days": pa.array(off, pa.int32()),
                "index_time": pa.array(idx_t, ts),
                "horizon_years": pa.array(np.full(len(ids), cfg.horizon_years, np.float32)),
                "true_risk": pa.array(risk.astype(np.float32), mask=np.isnan(risk)),
            }
        ),
        gt / "risk.parquet",
    )


def generate_cohort(
    out_dir: str | os.PathLike,
    config: SyntheticConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> CohortSummary:
    """Writes a synthetic cohort to ``out_dir`` (atomically) and returns its summary.

    Layout: ``data/``, ``metadata/`` (MEDS 0.4), ``genomics/genotypes.{bed,bim,fam}``,
    ``genomics/scores/SYN_<trait>.txt`` (PGS Catalog format), ``ground_truth/subjects.parquet``
    and ``ground_truth/risk.parquet``, ``cohort.json``.
    """
    import time

    cfg = config or SyntheticConfig()
    cfg.validate()
    check_outputs(directories=[out_dir], overwrite=overwrite)
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    censor_us = to_us(cfg.censor_date)
    codes = sorted(vocab.all_code_descriptions())
    code_index = {c: i for i, c in enumerate(codes)}
    stages = tqdm(total=5, desc="synth", unit="stage", disable=not progress)
    with atomic_directory(out_dir, overwrite=overwrite, kind="cohort") as root:
        subj = draw_subjects(rng, cfg)
        split = _assign_splits(rng, subj.n, cfg.split_fractions)
        _stage_done(stages, "genotypes")
        genetics = _simulate_genetics(rng, cfg, subj, root, progress)
        phys = Physiology(subj, genetics.liability)
        _stage_done(stages, "disease histories")
        onset, death = simulate_onsets(rng, phys, censor_us)
        record_end = np.where(np.isfinite(death), subj.birth + (np.where(np.isfinite(death), death, 0) * US_PER_YEAR).astype(np.int64), censor_us)
        record_end = np.maximum(record_end, subj.start)
        _stage_done(stages, "events")
        cohort = _all_events(rng, phys, onset, death, record_end, code_index, cfg, censor_us)
        death = np.where(cohort.death_us != NO_TIME, (cohort.death_us - subj.birth) / US_PER_YEAR, np.inf)
        onset[onset > np.minimum(death, (cohort.record_end - subj.birth) / US_PER_YEAR)[:, None]] = np.inf  # not lived to
        _stage_done(stages, "writing")
        _write_meds(root, subj, split, cohort, codes, cfg.shard_size, progress)
        _write_metadata(root, subj, split, codes, cfg)
        _write_ground_truth(root, cfg, phys, split, onset, death, cohort.record_end)
        if cohort.world is not None:
            chain = HospitalChain()
            pq.write_table(anchor_table(cohort.world, chain, subj.ids), root / "ground_truth" / "hospital_anchors.parquet")
            pq.write_table(trajectory_table(cohort.world, chain, subj.ids), root / "ground_truth" / "stay_trajectories.parquet")
        summary = _summarize(cfg, root, subj, genetics, onset, death, cohort.s, len(codes), phys, out_dir)
        summary.hospital = realized_rates(cohort.world) if cohort.world is not None else {}
        summary.seconds = round(time.perf_counter() - t0, 2)
        (root / "cohort.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
        stages.update()
        stages.close()
    return summary


def _stage_done(bar, next_stage: str) -> None:
    bar.set_postfix_str(next_stage)
    bar.update()


def _summarize(cfg, root, subj, genetics, onset, death, row_subject, n_codes, phys, out_dir) -> CohortSummary:
    per_subject = np.bincount(row_subject, minlength=subj.n)
    start_age = age_at(subj, np.arange(subj.n), subj.start)
    at_risk = onset > start_age[:, None]
    within = (onset <= start_age[:, None] + cfg.horizon_years) & at_risk
    return CohortSummary(
        out_dir=str(out_dir),
        n_subjects=subj.n,
        n_rows=int(per_subject.sum()),
        n_codes=n_codes,
        n_genotyped=genetics.n_genotyped,
        n_variants=cfg.n_variants,
        n_traits=genetics.n_traits,
        rows_per_subject={
            "min": int(per_subject.min()),
            "median": float(np.median(per_subject)),
            "mean": round(float(per_subject.mean()), 1),
            "p99": float(np.percentile(per_subject, 99)),
            "max": int(per_subject.max()),
        },
        incidence_10y_at_start={n: round(float(within[:, d].sum() / max(at_risk[:, d].sum(), 1)), 4) for d, n in enumerate(vocab.DISEASES)},
        prevalence_at_end={n: round(float(np.isfinite(onset[:, d]).mean()), 4) for d, n in enumerate(vocab.DISEASES)},
        prs_liability_correlation={k: round(v, 3) for k, v in genetics.prs_corr.items()},
        deaths=int(np.isfinite(death).sum()),
        seconds=0.0,
        config=asdict(cfg),
    )
