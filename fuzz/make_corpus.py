"""Writes the seed corpus of every fuzz target: ``python fuzz/make_corpus.py OUT_DIR``.

The seeds are well-formed inputs, so the fuzzer starts from what the parsers accept and mutates
inward: PLINK filesets in the byte layout ``targets.plink`` reads (built by the same writer the
synthetic cohort uses), score files in each layout the tests read (PGS Catalog with and
without harmonized columns, plink2-style tables, gzip), and MEDS column layouts (sorted,
unsorted, with nulls and chunks). Deterministic: the same files every run.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

PGS = b"""###PGS CATALOG SCORING FILE
#format_version=2.0
#pgs_id=PGS000001
#genome_build=GRCh37
rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\tallelefrequency_effect
rs1\t1\t100\tA\tG\t0.5\t0.2
rs2\t1\t200\tC\tT\t-0.25\t0.7
rs3\t2\t300\tG\tA\t1e-3\t0.5
"""
HARMONIZED = b"""#pgs_id=PGS000002
#genome_build=GRCh37
#HmPOS_build=GRCh38
rsID\tchr_name\tchr_position\teffect_allele\teffect_weight\thm_chr\thm_pos\thm_inferOtherAllele
rs1\t1\t100\tA\t0.5\t1\t110\tG
rs2\t1\t200\tC\t-0.25\t1\t210\tT/G
"""
PLINK_TABLE = b"ID\teffect_allele\tT1\tT2\nrs1\tA\t0.5\t1\nrs2\tC\t-1.0\t0\n"


def _u32(v: int) -> bytes:
    return int(v).to_bytes(4, "little")


def plink_seeds() -> list[bytes]:
    """Inputs for ``targets.plink``: n, m, then the .fam and .bim recipes and a .bed body."""
    from ehrfast.genomics.bed import pack_bed_reference

    rng = np.random.default_rng(0)
    seeds = []
    for n, m in ((1, 1), (4, 3), (9, 12), (33, 24)):
        head = _u32(n - 1) + _u32(m)
        fam = _u32(0) + b"".join(_u32(v) for k in range(n) for v in (0, k, 1))
        bim = _u32(0) + b"".join(_u32(v) for _ in range(m) for v in (0, rng.integers(1, 5), rng.integers(0, 4), rng.integers(0, 4)))
        g = rng.integers(-1, 3, (m, n)).astype(np.int8)
        seeds.append(head + fam + bim + _u32(1) + pack_bed_reference(g).tobytes())  # 1: the .bed magic bytes
    return seeds


def scorefile_seeds() -> list[bytes]:
    plain = [PGS, HARMONIZED, PLINK_TABLE]
    return [_u32(0) + s for s in plain] + [_u32(1) + s for s in plain]


def meds_seeds() -> list[bytes]:
    """Inputs for ``targets.meds_columns`` that decode to readable shards (sorted by subject, then
    time, static rows first; some nulls; several chunks; an offset), plus one unsorted."""
    rng = np.random.default_rng(1)
    seeds = []
    for n, k, lead in ((0, 0, 0), (5, 1, 0), (40, 2, 3), (300, 4, 9)):
        out = [n, k, *sorted(rng.integers(0, n + 1, k))]
        steps = (rng.random(n) < 0.3).astype(int)
        steps[:1] = 0
        out += [v for s in steps for v in (1, s)]  # selector (non-zero: a step of 0 or 1), the step
        subject = np.cumsum(steps)
        times = np.zeros(n, int)
        valid = np.ones(n, int)
        for sid in np.unique(subject):
            rows = np.flatnonzero(subject == sid)
            times[rows] = np.sort(rng.integers(-5, 41, len(rows)))
            valid[rows[: rng.integers(0, 2)]] = 0  # a static row first, sometimes
        out += [t + 5 for t in times] + list(valid)
        out += list(rng.integers(0, 201, n)) + list(rng.integers(0, 4, n))
        out.append(lead)
        seeds.append(b"".join(_u32(v) for v in out))
    seeds.append(b"".join(_u32(v) for v in rng.integers(0, 2**32, 400)))  # random: mostly unsorted, refused alike
    return seeds


def main(out: Path) -> None:
    for target, seeds in (("plink", plink_seeds()), ("scorefile", scorefile_seeds()), ("meds_columns", meds_seeds())):
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for s in seeds:
            (d / hashlib.sha1(s).hexdigest()).write_bytes(s)
    print(f"seed corpus -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus"))
