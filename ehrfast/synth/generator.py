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
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ehrfast.data.meds import CODES_SCHEMA, DATA_SCHEMA, SPLITS_SCHEMA, write_dataset_metadata
from ehrfast.genomics.bed import PlinkWriter, Variant
from ehrfast.io import atomic_directory, check_outputs
from ehrfast.synth import codes as vocab
from ehrfast.synth.config import SyntheticConfig
from ehrfast.units import US_PER_DAY, US_PER_MINUTE, US_PER_YEAR

_EPOCH = np.datetime64("1970-01-01T00:00:00", "us")
AGE_MIN, AGE_MAX = 18, 100
N_DIS = len(vocab.DISEASES)
T2D, CAD, DEP, SCZ, COPD, STROKE = range(N_DIS)


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

    def describe(self) -> str:
        r = self.rows_per_subject
        lines = [f"synthetic cohort written to {self.out_dir} in {self.seconds:.1f} s",
                 f"  subjects {self.n_subjects:,}  rows {self.n_rows:,}  codes {self.n_codes}  deaths {self.deaths:,}",
                 f"  rows/subject: min {r['min']}  median {r['median']:.0f}  mean {r['mean']}  p99 {r['p99']:.0f}  max {r['max']}",
                 f"  genotypes: {self.n_genotyped:,} samples x {self.n_variants:,} variants; {self.n_traits} score files",
                 "  10-year incidence from record start / ever diagnosed / corr(PRS, true liability):"]
        for d, inc in self.incidence_10y_at_start.items():
            lines.append(f"    {d:<14} {inc:7.2%}  {self.prevalence_at_end[d]:7.2%}  {self.prs_liability_correlation[d]:.3f}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- subjects


@dataclass
class Subjects:
    """Per-subject draws; arrays of length n."""

    ids: np.ndarray  # int64, sorted
    male: np.ndarray  # bool
    race: np.ndarray  # int, index into vocab.RACES
    birth: np.ndarray  # int64 µs since epoch
    start: np.ndarray  # int64 µs: first EHR event
    smoker: np.ndarray  # bool
    frailty: np.ndarray  # float: visit-rate multiplier, heavy-tailed
    noise: np.ndarray  # [n, 4] float: idiosyncratic parts of BMI, glycaemia, LDL, SBP
    type1: np.ndarray  # bool: the decoy condition

    @property
    def n(self) -> int:
        return len(self.ids)


def _to_us(date: str) -> int:
    return int((np.datetime64(date, "us") - _EPOCH).astype(np.int64))


def _draw_subjects(rng: np.random.Generator, cfg: SyntheticConfig) -> Subjects:
    n = cfg.n_subjects
    ids = 100_000_000 + np.cumsum(rng.integers(1, 60, n)).astype(np.int64)
    birth_day = rng.integers(_to_us("1935-01-01") // US_PER_DAY, _to_us("1996-01-01") // US_PER_DAY, n)
    birth = birth_day.astype(np.int64) * US_PER_DAY
    calendar_start = rng.integers(_to_us("1999-01-01"), _to_us("2013-01-01"), n)
    start = np.maximum(calendar_start, birth + AGE_MIN * US_PER_YEAR + rng.integers(0, 5 * US_PER_YEAR, n))
    start = start // US_PER_MINUTE * US_PER_MINUTE
    return Subjects(
        ids=ids,
        male=rng.random(n) < 0.49,
        race=rng.choice(len(vocab.RACES), size=n, p=vocab.RACE_SHARES),
        birth=birth,
        start=start,
        smoker=rng.random(n) < 0.22,
        frailty=np.minimum(rng.lognormal(-0.35, 0.85, n), 6.0),
        noise=rng.standard_normal((n, 4)),
        type1=rng.random(n) < 0.004,
    )


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


# ----------------------------------------------------------------------------- physiology


@dataclass
class Physiology:
    """Latent physiology of each subject as a function of age; all methods take subject
    indices ``s`` and ages ``a`` (years) of equal shape and return values of that shape."""

    subj: Subjects
    G: np.ndarray  # [n, N_DIS] liabilities

    def z_bmi(self, s):
        return 0.3 * self.G[s, T2D] + 0.95 * self.subj.noise[s, 0]

    def bmi(self, s, a):
        return 27.5 + 4.5 * self.z_bmi(s) + 0.06 * (np.minimum(a, 65) - 45)

    def glycaemia(self, s, a):
        """Standardized glycaemic state; carries most of the T2D genetic signal."""
        return 0.65 * self.G[s, T2D] + 0.3 * self.z_bmi(s) + 0.03 * (a - 50) + 0.55 * self.subj.noise[s, 1]

    def z_ldl(self, s):
        return 0.45 * self.G[s, CAD] + 0.9 * self.subj.noise[s, 2]

    def ldl(self, s, a):
        return 118 + 32 * self.z_ldl(s) + 0.4 * (a - 50)

    def z_sbp(self, s, a):
        return 0.3 * self.G[s, STROKE] + 0.95 * self.subj.noise[s, 3] + 0.035 * (a - 45) + 0.2 * self.z_bmi(s)

    def sbp(self, s, a):
        return 122 + 13 * self.z_sbp(s, a)

    def comorbid(self, s, a) -> np.ndarray:
        """[..., 4] bool: prediabetes, hypertension, hyperlipidemia, obesity (by latent state)."""
        return np.stack(
            [
                5.45 + 0.32 * self.glycaemia(s, a) >= 5.7,
                self.sbp(s, a) >= 140,
                self.ldl(s, a) >= 160,
                self.bmi(s, a) >= 30,
            ],
            axis=-1,
        )

    def log_odds(self, s, a, prior: np.ndarray) -> np.ndarray:
        """[len(s), N_DIS] yearly onset log-odds; ``prior`` [len(s), N_DIS] bool diseases present."""
        G, male, smoker = self.G[s], self.subj.male[s], self.subj.smoker[s]
        lo = np.empty((len(s), N_DIS))
        lo[:, T2D] = -4.75 + 1.5 * self.glycaemia(s, a) + 0.2 * G[:, T2D] + 0.15 * male
        lo[:, CAD] = -5.9 + 0.065 * (a - 55) + 0.6 * G[:, CAD] + 0.55 * male + 0.35 * self.z_ldl(s) + 0.6 * prior[:, T2D] + 0.4 * smoker
        lo[:, DEP] = -5.0 + 0.6 * G[:, DEP] + 0.45 * ~male - 0.01 * (a - 40) + 0.4 * (prior[:, CAD] | prior[:, STROKE])
        lo[:, SCZ] = -6.6 + 0.9 * G[:, SCZ] - 0.07 * np.maximum(a - 25, 0) + 0.3 * male
        lo[:, COPD] = -6.1 + 0.06 * (a - 55) + 1.4 * smoker + 0.45 * G[:, COPD]
        lo[:, STROKE] = -6.6 + 0.075 * (a - 60) + 0.5 * G[:, STROKE] + 0.4 * self.z_sbp(s, a) + 0.45 * prior[:, T2D] + 0.35 * prior[:, CAD] + 0.3 * smoker
        return lo

    def death_log_odds(self, s, a, prior):
        major = prior[:, [T2D, CAD, COPD, STROKE]].sum(1)
        return -10.4 + 0.09 * a + 0.35 * major + 0.3 * self.subj.smoker[s]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _simulate_onsets(rng, phys: Physiology, censor_us: int):
    """Yearly discrete-time simulation from age 18. Returns onset ages [n, N_DIS] (inf = none)
    and death age [n] (inf = alive at censoring)."""
    subj = phys.subj
    n = subj.n
    s = np.arange(n)
    age_at_censor = (censor_us - subj.birth) / US_PER_YEAR
    onset = np.full((n, N_DIS), np.inf)
    death = np.full(n, np.inf)
    for y in range(AGE_MIN, AGE_MAX):
        alive = (death == np.inf) & (age_at_censor > y)
        if not alive.any():
            break
        a = np.full(n, float(y))
        prior = onset < y
        p = _sigmoid(phys.log_odds(s, a, prior))
        new = (rng.random((n, N_DIS)) < p) & ~prior & alive[:, None]
        onset[new] = y + rng.random(new.sum())
        dies = (rng.random(n) < _sigmoid(phys.death_log_odds(s, a, prior))) & alive
        death[dies] = y + rng.random(dies.sum())
    onset[onset > np.minimum(death, age_at_censor)[:, None]] = np.inf
    death[death > age_at_censor] = np.inf
    return onset, death


def true_risk(phys: Physiology, s: np.ndarray, age0: np.ndarray, prior: np.ndarray, horizon: float) -> np.ndarray:
    """[len(s), N_DIS] probability of onset within ``horizon`` years after ``age0`` under the
    generating hazards, with the other diseases held at their state ``prior`` at ``age0``.
    Uses the same yearly hazards as the simulation, prorated over partial years."""
    log_surv = np.zeros((len(s), N_DIS))
    first = np.floor(age0)
    for k in range(int(np.ceil(horizon)) + 1):
        y = first + k
        exposure = np.clip(np.minimum(y + 1, age0 + horizon) - np.maximum(y, age0), 0, 1)
        p = _sigmoid(phys.log_odds(s, np.maximum(y, AGE_MIN), prior))
        log_surv += exposure[:, None] * np.log1p(-p)
    return 1 - np.exp(log_surv)


# ----------------------------------------------------------------------------- visits

INTAKE, ROUTINE, DIAGNOSIS = 0, 1, 2  # why a visit happened
OUTPATIENT, EMERGENCY, INPATIENT = range(3)


@dataclass
class Visits:
    """Flat visit table, one entry per visit."""

    subj: np.ndarray  # int64 subject index
    start: np.ndarray  # int64 µs
    end: np.ndarray  # int64 µs
    kind: np.ndarray  # int8 visit type (OUTPATIENT/EMERGENCY/INPATIENT)
    reason: np.ndarray  # int8 INTAKE/ROUTINE/DIAGNOSIS
    dx: np.ndarray  # int8 disease diagnosed at this visit, -1 if none

    @property
    def n(self) -> int:
        return len(self.subj)


def _age(subj: Subjects, s: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    return (t_us - subj.birth[s]) / US_PER_YEAR


def _draw_visits(rng, phys: Physiology, onset, record_end, visit_rate: float) -> Visits:
    subj = phys.subj
    n = subj.n
    # Routine visits: Poisson per subject-year slot, the rate growing with burden and frailty.
    n_slots = np.ceil((record_end - subj.start) / US_PER_YEAR).astype(np.int64).clip(min=1)
    slot_s = np.repeat(np.arange(n), n_slots)
    slot_k = np.arange(len(slot_s)) - np.repeat(np.cumsum(n_slots) - n_slots, n_slots)
    slot_t0 = subj.start[slot_s] + slot_k * US_PER_YEAR
    slot_len = np.minimum(slot_t0 + US_PER_YEAR, record_end[slot_s]) - slot_t0
    mid_age = _age(subj, slot_s, slot_t0 + slot_len // 2)
    burden = (onset[slot_s] < mid_age[:, None]).sum(1) + phys.comorbid(slot_s, mid_age).sum(1)
    rate = visit_rate * subj.frailty[slot_s] * (1 + 0.35 * burden) * np.clip(0.7 + 0.015 * (mid_age - 40), 0.5, None)
    counts = rng.poisson(rate * slot_len / US_PER_YEAR)
    r_s = np.repeat(slot_s, counts)
    r_t = np.repeat(slot_t0, counts) + (rng.random(len(r_s)) * np.repeat(slot_len, counts)).astype(np.int64)
    r_burden = np.repeat(burden, counts)

    # Diagnosis visits: each onset inside the record is seen within weeks.
    onset_us = subj.birth[:, None] + (np.where(np.isfinite(onset), onset, 0) * US_PER_YEAR).astype(np.int64)
    seen = np.isfinite(onset) & (onset_us > subj.start[:, None])
    d_s, d_d = np.nonzero(seen)
    d_t = onset_us[d_s, d_d] + (rng.exponential(20, len(d_s)) * US_PER_DAY).astype(np.int64)
    keep = d_t < record_end[d_s]
    d_s, d_d, d_t = d_s[keep], d_d[keep], d_t[keep]

    s = np.concatenate([np.arange(n), r_s, d_s])
    t = np.concatenate([subj.start, r_t, d_t])
    reason = np.concatenate([np.full(n, INTAKE), np.full(len(r_s), ROUTINE), np.full(len(d_s), DIAGNOSIS)]).astype(np.int8)
    dx = np.concatenate([np.full(n + len(r_s), -1), d_d]).astype(np.int8)
    burden_all = np.concatenate([np.zeros(n), r_burden, np.full(len(d_s), 2)])

    u = rng.random(len(s))
    p_inpatient = np.clip(0.03 + 0.02 * burden_all, 0, 0.2)
    kind = np.where(u < p_inpatient, INPATIENT, np.where(u < p_inpatient + 0.08, EMERGENCY, OUTPATIENT))
    acute_dx = (reason == DIAGNOSIS) & np.isin(dx, [CAD, STROKE])
    kind = np.where(acute_dx & (rng.random(len(s)) < 0.6), INPATIENT, kind)
    kind = np.where(reason == INTAKE, OUTPATIENT, kind).astype(np.int8)

    # Clock times: outpatient visits in office hours, others at any time of day.
    day = t // US_PER_DAY * US_PER_DAY
    office = day + (8 * 60 + rng.integers(0, 9 * 60, len(s))) * US_PER_MINUTE
    t = np.where((kind == OUTPATIENT) & (reason != INTAKE), office, t // US_PER_MINUTE * US_PER_MINUTE)
    t = np.maximum(t, subj.start[s])
    minutes = np.select(
        [kind == OUTPATIENT, kind == EMERGENCY],
        [rng.integers(45, 91, len(s)), rng.integers(120, 600, len(s))],
        (24 * 60 * (1 + rng.gamma(1.3, 2.0, len(s)))).astype(np.int64),
    )
    end = t + minutes * US_PER_MINUTE
    return Visits(s.astype(np.int64), t, end, kind, reason, dx)


# ----------------------------------------------------------------------------- events


class EventBuffer:
    """Collects event columns from many vectorized draws, then concatenates once."""

    def __init__(self, code_index: dict[str, int]):
        self.code_index = code_index
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, s, t, codes, values=None, rank: int = 5) -> None:
        """``codes``: array of code ids, or one code string for all rows."""
        s = np.asarray(s, np.int64)
        if isinstance(codes, str):
            codes = np.full(len(s), self.code_index[codes], np.int32)
        v = np.full(len(s), np.nan, np.float32) if values is None else np.asarray(values, np.float32)
        self.parts.append((s, np.asarray(t, np.int64), np.asarray(codes, np.int32), v, np.full(len(s), rank, np.int8)))

    def columns(self):
        return tuple(np.concatenate(c) for c in zip(*self.parts))


def _choose_code(rng, options: list[tuple], code_index, size) -> np.ndarray:
    """Draws code ids from ``options`` rows (code, description[, share])."""
    ids = np.array([code_index[o[0]] for o in options], np.int32)
    shares = np.array([o[2] if len(o) > 2 else 1.0 for o in options])
    return ids[rng.choice(len(ids), size=size, p=shares / shares.sum())]


def _conditions_at(phys: Physiology, onset, s, t_us) -> np.ndarray:
    """[len(s), N_DIS + 4] bool: diseases then comorbidities present at times ``t_us``."""
    a = _age(phys.subj, s, t_us)
    return np.concatenate([onset[s] <= a[:, None], phys.comorbid(s, a)], axis=1)


CONDITIONS = list(vocab.DISEASES) + list(vocab.COMORBIDITIES)


def _add_diagnoses(rng, buf: EventBuffer, phys, onset, v: Visits) -> None:
    present = _conditions_at(phys, onset, v.subj, v.start)
    present[:, CONDITIONS.index("PREDIABETES")] &= ~present[:, T2D]
    p_record = np.select([v.reason == INTAKE, v.kind == INPATIENT, v.kind == EMERGENCY], [0.9, 0.8, 0.3], 0.35)
    record = present & (rng.random(present.shape) < p_record[:, None])
    is_dx = v.dx >= 0
    record[np.flatnonzero(is_dx), v.dx[is_dx]] = True
    when = np.where(v.kind == INPATIENT, v.end - US_PER_MINUTE, v.start + 10 * US_PER_MINUTE)
    for c, name in enumerate(CONDITIONS):
        rows = np.flatnonzero(record[:, c])
        buf.add(v.subj[rows], when[rows], _choose_code(rng, vocab.DIAGNOSIS_CODES[name], buf.code_index, len(rows)), rank=2)
    t1 = np.flatnonzero(phys.subj.type1[v.subj] & (rng.random(v.n) < 0.5))
    buf.add(v.subj[t1], when[t1], vocab.DECOY_CODES[0][0], rank=2)

    # Medications for treated conditions present at the visit.
    for c, name in enumerate(CONDITIONS):
        if name not in vocab.MEDICATION_CODES:
            continue
        rows = np.flatnonzero(present[:, c] & (rng.random(v.n) < 0.6))
        buf.add(v.subj[rows], v.start[rows] + 20 * US_PER_MINUTE, _choose_code(rng, vocab.MEDICATION_CODES[name], buf.code_index, len(rows)), rank=3)


def _measure(rng, phys: Physiology, onset, key: str, s, t_us, acute) -> np.ndarray:
    """Measured values of lab/vital ``key`` for subjects ``s`` at times ``t_us``."""
    a = _age(phys.subj, s, t_us)
    n = len(s)
    years_t2d = a - onset[s, T2D]
    has_t2d = years_t2d >= 0
    treated_gap = np.where(has_t2d, 0.6 + 0.8 * np.exp(-np.clip(years_t2d, 0, None) / 4), 0)
    noise = rng.standard_normal(n)
    if key == "HBA1C":
        return 5.45 + 0.32 * phys.glycaemia(s, a) + treated_gap + 0.12 * noise
    if key == "GLUCOSE":
        return 96 + 11 * phys.glycaemia(s, a) + 30 * treated_gap + 8 * noise + 25 * acute * rng.random(n)
    if key == "LDL":
        statin = onset[s, CAD] <= a
        return np.clip(phys.ldl(s, a) - 35 * statin + 12 * noise, 30, None)
    if key == "BMI":
        return phys.bmi(s, a) + 0.6 * noise
    if key == "SBP":
        return phys.sbp(s, a) + 8 * noise + 10 * acute
    if key == "CREATININE":
        return np.clip(0.85 + 0.12 * phys.subj.male[s] + 0.006 * (a - 50) + 0.3 * has_t2d + 0.12 * noise + 0.4 * acute * rng.random(n), 0.3, None)
    if key == "HEMOGLOBIN":
        return 13.2 + 1.3 * phys.subj.male[s] - 0.8 * acute + 0.9 * noise
    if key == "SODIUM":
        return 139.5 + 2.2 * noise - 1.5 * acute
    if key == "POTASSIUM":
        return 4.2 + 0.35 * noise + 0.1 * has_t2d
    if key == "WBC":
        return np.exp(np.log(7.0) + 0.25 * noise + 0.35 * acute)
    raise KeyError(key)


def _add_measurements(rng, buf: EventBuffer, phys, onset, v: Visits, mask, keys, offset_us, p: float) -> None:
    for key in keys:
        rows = np.flatnonzero(mask & (rng.random(v.n) < p))
        t = v.start[rows] + offset_us
        acute = (v.kind[rows] != OUTPATIENT).astype(float)
        m = vocab.MEASUREMENTS[key]
        values = np.round(_measure(rng, phys, onset, key, v.subj[rows], t, acute), m.decimals)
        buf.add(v.subj[rows], t, m.code, values, rank=4)


def _add_visit_events(rng, buf: EventBuffer, phys, onset, v: Visits) -> None:
    for k, name in enumerate(vocab.VISIT_TYPES):
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
    _add_measurements(rng, buf, phys, onset, v, ed, acute_panel, 45 * US_PER_MINUTE, 0.8)
    _add_inpatient_days(rng, buf, phys, onset, v, acute_panel)

    # Smoking status at intake and now and then.
    rows = np.flatnonzero(intake | (rng.random(v.n) < 0.08))
    smoke = phys.subj.smoker[v.subj[rows]]
    codes = np.where(smoke, buf.code_index[vocab.SMOKING_CODES[1][0]], buf.code_index[vocab.SMOKING_CODES[0][0]])
    buf.add(v.subj[rows], v.start[rows] + 5 * US_PER_MINUTE, codes, rank=1)

    # Background codes: Zipf-distributed over a long list, no disease signal.
    bg = vocab.background_codes()
    bg_ids = np.array([buf.code_index[c] for c, _ in bg], np.int32)
    n_bg = rng.poisson(np.where(inp, 2.0, 0.9))
    rows = np.repeat(np.arange(v.n), n_bg)
    rank_draw = rng.zipf(1.4, len(rows))
    rank_draw = np.where(rank_draw > len(bg), rng.integers(1, len(bg) + 1, len(rows)), rank_draw) - 1
    buf.add(v.subj[rows], v.start[rows] + 15 * US_PER_MINUTE, bg_ids[rank_draw], rank=2)


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
        values = np.round(_measure(rng, phys, onset, key, s[keep], t[keep], np.ones(keep.sum())), m.decimals)
        buf.add(s[keep], t[keep], m.code, values, rank=4)
    keep = rng.random(len(s)) < 0.8
    m = vocab.MEASUREMENTS["SBP"]
    buf.add(s[keep], t[keep] + 30 * US_PER_MINUTE, m.code, np.round(_measure(rng, phys, onset, "SBP", s[keep], t[keep], np.ones(keep.sum())), 0), rank=4)


# ----------------------------------------------------------------------------- assembly


def _all_events(rng, phys: Physiology, onset, death, record_end, code_index, visit_rate: float):
    """Every MEDS row of the cohort as sorted columns (subject index, time µs or None, code id, value)."""
    subj = phys.subj
    visits = _draw_visits(rng, phys, onset, record_end, visit_rate)
    buf = EventBuffer(code_index)
    n = subj.n
    static_t = np.full(n, np.iinfo(np.int64).min)  # sorts first; written as null
    buf.add(np.arange(n), static_t, np.where(subj.male, code_index["GENDER//M"], code_index["GENDER//F"]), rank=0)
    race_ids = np.array([code_index[f"RACE//{r}"] for r in vocab.RACES], np.int32)
    buf.add(np.arange(n), static_t, race_ids[subj.race], rank=1)
    buf.add(np.arange(n), subj.birth, "MEDS_BIRTH", rank=0)
    _add_visit_events(rng, buf, phys, onset, visits)
    dead = np.flatnonzero(np.isfinite(death))
    buf.add(dead, subj.birth[dead] + (death[dead] * US_PER_YEAR).astype(np.int64), "MEDS_DEATH", rank=10)
    s, t, code, value, rank = buf.columns()
    keep = (t <= record_end[s]) | (code == code_index["MEDS_DEATH"])
    s, t, code, value, rank = s[keep], t[keep], code[keep], value[keep], rank[keep]
    order = np.lexsort((code, rank, t, s))
    return s[order], t[order], code[order], value[order], visits.n


def _assign_splits(rng, n: int, fractions) -> np.ndarray:
    """Split index per subject (0 train, 1 tuning, 2 held_out), exact proportions."""
    counts = np.floor(np.asarray(fractions) * n).astype(int)
    counts[0] += n - counts.sum()
    split = np.repeat(np.arange(3), counts)
    rng.shuffle(split)
    return split


def _write_meds(root: Path, subj: Subjects, split, cols, codes: list[str], shard_size: int, progress: bool) -> None:
    s, t, code, value = cols
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
            ],
            schema=DATA_SCHEMA,
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
        created_at="1970-01-01T00:00:00",  # fixed so that the same seed gives byte-identical output
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
        age0 = _age(subj, s, idx_t)
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
    censor_us = _to_us(cfg.censor_date)
    codes = sorted(vocab.all_code_descriptions())
    code_index = {c: i for i, c in enumerate(codes)}
    stages = tqdm(total=5, desc="synth", unit="stage", disable=not progress)
    with atomic_directory(out_dir, overwrite=overwrite, kind="cohort") as root:
        subj = _draw_subjects(rng, cfg)
        split = _assign_splits(rng, subj.n, cfg.split_fractions)
        _stage_done(stages, "genotypes")
        genetics = _simulate_genetics(rng, cfg, subj, root, progress)
        phys = Physiology(subj, genetics.liability)
        _stage_done(stages, "disease histories")
        onset, death = _simulate_onsets(rng, phys, censor_us)
        record_end = np.where(np.isfinite(death), subj.birth + (np.where(np.isfinite(death), death, 0) * US_PER_YEAR).astype(np.int64), censor_us)
        record_end = np.maximum(record_end, subj.start)
        _stage_done(stages, "events")
        s, t, code, value, n_visits = _all_events(rng, phys, onset, death, record_end, code_index, cfg.visit_rate)
        _stage_done(stages, "writing")
        _write_meds(root, subj, split, (s, t, code, value), codes, cfg.shard_size, progress)
        _write_metadata(root, subj, split, codes, cfg)
        _write_ground_truth(root, cfg, phys, split, onset, death, record_end)
        summary = _summarize(cfg, root, subj, genetics, onset, death, s, len(codes), phys, out_dir)
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
    start_age = _age(subj, np.arange(subj.n), subj.start)
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
