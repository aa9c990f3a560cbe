"""Fuzz targets: the input parsers, each a function of one byte string.

A target turns the bytes into what a user could hand ehrfast (a PLINK fileset, a score file, the
Arrow columns of a MEDS shard), runs the parser, and returns. It may raise ``EhrfastError``: a
clear refusal is the right answer to a bad input. Anything else — a Python exception, a
disagreement between the C++ core and its numpy reference, and, under AddressSanitizer, any
memory error in the core — is a finding. ``fuzz/run.py`` drives these under atheris (libFuzzer);
``tests/bad_inputs/test_fuzz_targets.py`` replays the seed corpus and every past finding
(``fuzz/regressions/<target>/``) in the ordinary test run.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import numpy as np

from ehrfast.errors import EhrfastError

WORK = Path(tempfile.gettempdir()) / f"ehrfast-fuzz-{os.getpid()}"


class Bytes:
    """Reads typed values off the front of a byte string (libFuzzer's FuzzedDataProvider, kept
    here so that the targets run without atheris: in the tests, on any machine)."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def remaining(self) -> int:
        return len(self.data) - self.at

    def take(self, n: int) -> bytes:
        out = self.data[self.at: self.at + n]
        self.at += len(out)
        return out

    def int(self, low: int, high: int) -> int:
        """An integer in [low, high] from the next 4 bytes (low when they run out)."""
        raw = self.take(4)
        return low + (int.from_bytes(raw.ljust(4, b"\0"), "little") % (high - low + 1)) if raw else low

    def flag(self) -> bool:
        return bool(self.int(0, 1))

    def rest(self) -> bytes:
        return self.take(self.remaining())


def _file(name: str, content: bytes) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    path.write_bytes(content)
    return path


def _refused(call) -> bool:
    """Runs ``call``; True when it refused the input with an ``EhrfastError``."""
    try:
        call()
    except EhrfastError:
        return True
    return False


# ---- PLINK 1 fileset: .bed (bytes), .bim and .fam (text), then scored by both backends -------


def _fam(b: Bytes, n: int) -> bytes:
    if b.flag():
        return b.take(b.int(0, 400))  # free-form bytes
    return "".join(f"{b.int(0, 3)} s{b.int(0, n)} 0 0 {b.int(0, 2)} -9\n" for _ in range(n)).encode()


def _bim(b: Bytes, m: int) -> bytes:
    if b.flag():
        return b.take(b.int(0, 600))
    alleles = "ACGTN"
    lines = [f"{b.int(1, 3)}\trs{k}\t0\t{b.int(1, 5) * 100}\t{alleles[b.int(0, 4)]}\t{alleles[b.int(0, 4)]}\n" for k in range(m)]
    return "".join(lines).encode()


SCORE_FILE = b"rsID\teffect_allele\teffect_weight\n" + b"".join(f"rs{k}\t{'ACGT'[k % 4]}\t{(k % 7 - 3) / 4}\n".encode() for k in range(24))


def plink(data: bytes) -> None:
    """A .bed/.bim/.fam fileset from the bytes, opened and scored by the C++ core and by the numpy
    reference, which must agree (or both refuse)."""
    from ehrfast.genomics.genotypes import open_genotypes
    from ehrfast.genomics.match import MatchOptions, match_score_files
    from ehrfast.genomics.score import score_traits
    from ehrfast.genomics.scorefile import read_score_file

    b = Bytes(data)
    n, m = b.int(1, 33), b.int(0, 24)
    fam, bim = _fam(b, n), _bim(b, m)
    bed = (b"\x6c\x1b\x01" if b.flag() else b.take(3)) + b.rest()
    _file("g.fam", fam), _file("g.bim", bim), _file("g.bed", bed)
    scores = _file("s.tsv", SCORE_FILE)
    try:
        source = open_genotypes(WORK / "g")
        matches = match_score_files([read_score_file(scores)], source.variants, MatchOptions(keep_ambiguous=True, keep_multiallelic=True))
    except EhrfastError:
        return
    if not matches or not len(matches[0].variant):
        return
    results = []
    for backend in ("fast", "reference"):
        try:
            results.append(score_traits(source, matches, backend=backend, plink2_columns=True))
        except EhrfastError as exc:  # e.g. a variant without a call to impute from: both must say so
            results.append(str(exc))
    fast, ref = results
    if isinstance(fast, str) or isinstance(ref, str):
        assert fast == ref, (fast, ref)
        return
    np.testing.assert_allclose(fast.sums, ref.sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(fast.allele_ct, ref.allele_ct)


# ---- score files: PGS Catalog or plink2-style tables, plain or gzip ---------------------------


def scorefile(data: bytes) -> None:
    """The bytes as a score file (gzip-compressed when the first byte is odd), parsed by the C++
    reader and by pyarrow (the reference): the same refusal, or the same columns."""
    from ehrfast.backends import core
    from ehrfast.genomics.scorefile import read_score_file

    b = Bytes(data)
    packed = b.flag()
    body = b.rest()
    path = _file("f.txt.gz" if packed else "f.txt", gzip.compress(body, mtime=0) if packed else body)
    if core is None:
        _refused(lambda: read_score_file(path))
        return
    outcome = {}
    for backend in ("python", "cpp"):
        try:
            outcome[backend] = read_score_file(path, backend)
        except EhrfastError as exc:
            outcome[backend] = exc
    ref, fast = outcome["python"], outcome["cpp"]
    if isinstance(ref, EhrfastError) or isinstance(fast, EhrfastError):
        assert type(ref) is type(fast) and str(ref) == str(fast), (ref, fast)
        return
    assert fast.traits == ref.traits and fast.header == ref.header and fast.chrom == ref.chrom
    assert fast.ids.equals(ref.ids) and fast.effect_allele.equals(ref.effect_allele) and fast.other_allele.equals(ref.other_allele)
    np.testing.assert_array_equal(fast.weights, ref.weights)


# ---- the Arrow-buffer MEDS reader: nulls, chunks, slices (bit offsets), sort order ------------


def meds_columns(data: bytes) -> None:
    """A shard's subject_id / time / numeric_value columns built from the bytes — chunked, with
    nulls and sliced (non-zero bit offsets) — read by the C++ core and by the numpy reference,
    which must return the same arrays or refuse with the same error."""
    import pyarrow as pa

    from ehrfast.data.meds import numeric_values, shard_core_columns

    b = Bytes(data)
    n = b.int(0, 300)
    chunks = sorted({b.int(0, n) for _ in range(b.int(0, 4))} | {0, n})
    subject = np.cumsum([b.int(0, 1) if b.int(0, 9) else b.int(-2, 3) for _ in range(n)]).astype(np.int64)
    time = np.array([b.int(-5, 40) for _ in range(n)], np.int64) * 1_000_000
    time_valid = np.array([b.int(0, 7) > 0 for _ in range(n)], bool)
    value = np.array([b.int(-100, 100) / 7 for _ in range(n)], np.float32)
    value_valid = np.array([b.int(0, 3) > 0 for _ in range(n)], bool)
    lead = b.int(0, min(9, n))  # rows sliced off the front: buffers at a bit offset

    def column(values, valid, kind):
        pieces = []
        for a, z in zip(chunks[:-1], chunks[1:]):
            head = np.concatenate([values[:lead], values[a:z]]) if lead else values[a:z]
            mask = np.concatenate([valid[:lead], valid[a:z]]) if lead else valid[a:z]
            pieces.append(pa.array(head, kind, mask=~mask if mask is not None else None).slice(lead))
        return pa.chunked_array(pieces, kind)

    table = pa.table({"subject_id": column(subject, np.ones(n, bool), pa.int64()), "time": column(time, time_valid, pa.timestamp("us")),
                      "code": pa.chunked_array([pa.array(["C"] * n, pa.string())]),
                      "numeric_value": column(value, value_valid, pa.float32())})
    results = []
    for backend in ("fast", "reference"):
        try:
            results.append(shard_core_columns("fuzz", table, backend) + (numeric_values(table.column("numeric_value"), backend),))
        except EhrfastError as exc:
            results.append(str(exc))
    fast, ref = results
    if isinstance(fast, str) or isinstance(ref, str):
        assert fast == ref, (fast, ref)
        return
    for a, r in zip(fast, ref):
        np.testing.assert_array_equal(a, r)


TARGETS = {"plink": plink, "scorefile": scorefile, "meds_columns": meds_columns}
