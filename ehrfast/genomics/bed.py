"""PLINK 1 binary genotypes (.bed/.bim/.fam), SNP-major.

A genotype is the count of the A1 allele (the .bim's 5th column): 0, 1, 2, or -1 for a
missing call. Packing/unpacking has a C++ fast path (``ehrfast._core``) and the numpy
reference below; both produce identical bytes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from ehrfast.backends import require_core, resolve_backend
from ehrfast.errors import InputNotFoundError, InvalidInputError
from ehrfast.inputs import read_text
from ehrfast.io import atomic_output

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])  # plink 1 magic + SNP-major mode

# A1 count + 1 -> 2-bit code, and 2-bit code -> A1 count.
_CODE_OF_COUNT = np.array([0b01, 0b11, 0b10, 0b00], dtype=np.uint8)
_COUNT_OF_CODE = np.array([2, -1, 1, 0], dtype=np.int8)


def bytes_per_variant(n_samples: int) -> int:
    return (n_samples + 3) // 4


def _check_genotypes(genotypes: np.ndarray, check_values: bool = True) -> np.ndarray:
    g = np.asarray(genotypes)
    if g.ndim != 2:
        raise InvalidInputError(f"genotypes must be 2-D [n_variants, n_samples], got shape {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        raise TypeError(f"genotypes must be integer A1 counts, got dtype {g.dtype}")
    if g.dtype != np.int8 and (g.min(initial=0) < -128 or g.max(initial=0) > 127):
        check_values = True  # values that do not fit int8 must be caught before the cast
    if not check_values:
        return np.ascontiguousarray(g, dtype=np.int8)
    bad = (g < -1) | (g > 2)
    if bad.any():
        v, s = np.argwhere(bad)[0]
        raise InvalidInputError(
            f"genotype at [variant {v}, sample {s}] is {g[v, s]}; allowed: -1 (missing), 0, 1, 2"
        )
    return np.ascontiguousarray(g, dtype=np.int8)


def pack_bed_reference(genotypes: np.ndarray) -> np.ndarray:
    """numpy reference: [n_variants, n_samples] int8 -> [n_variants, ceil(n/4)] uint8."""
    g = _check_genotypes(genotypes)
    n_variants, n_samples = g.shape
    padded = np.full((n_variants, 4 * bytes_per_variant(n_samples)), 2, dtype=np.int8)
    padded[:, :n_samples] = g  # padding as count 2 -> code 00, as plink writes it
    codes = _CODE_OF_COUNT[padded + 1].reshape(n_variants, bytes_per_variant(n_samples), 4)
    return (codes[..., 0] | codes[..., 1] << 2 | codes[..., 2] << 4 | codes[..., 3] << 6).astype(np.uint8)


def unpack_bed_reference(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """numpy reference: [n_variants, ceil(n/4)] uint8 -> [n_variants, n_samples] int8."""
    p = _check_packed(packed, n_samples)
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    codes = (p[..., None] >> shifts) & 3
    return _COUNT_OF_CODE[codes.reshape(p.shape[0], 4 * p.shape[1])[:, :n_samples]]


def _check_packed(packed: np.ndarray, n_samples: int) -> np.ndarray:
    p = np.asarray(packed)
    if p.ndim != 2 or p.dtype != np.uint8:
        raise InvalidInputError(f"packed .bed bytes must be 2-D uint8, got shape {p.shape} dtype {p.dtype}")
    if n_samples < 0 or p.shape[1] != bytes_per_variant(n_samples):
        raise InvalidInputError(
            f"packed has {p.shape[1]} bytes per variant but {n_samples} samples need "
            f"{bytes_per_variant(max(n_samples, 0))}"
        )
    return np.ascontiguousarray(p)


def pack_bed(genotypes: np.ndarray, backend: str | None = None) -> np.ndarray:
    """[n_variants, n_samples] A1 counts (int, -1 = missing) -> SNP-major .bed bytes."""
    if resolve_backend(backend, "bed packing") == "cpp":
        # the core scans values itself (in parallel) and names the first bad one
        return require_core().pack_bed(_check_genotypes(genotypes, check_values=False))
    return pack_bed_reference(genotypes)


def unpack_bed(packed: np.ndarray, n_samples: int, backend: str | None = None) -> np.ndarray:
    """SNP-major .bed bytes [n_variants, ceil(n/4)] -> int8 A1 counts [n_variants, n_samples]."""
    p = _check_packed(packed, n_samples)
    if resolve_backend(backend, "bed unpacking") == "cpp":
        return require_core().unpack_bed(p, n_samples)
    return unpack_bed_reference(p, n_samples)


@dataclass(frozen=True)
class Variant:
    """One .bim row. ``a1`` is the counted allele."""

    chrom: str
    id: str
    cm: float
    pos: int
    a1: str
    a2: str


def read_fam(path: str | os.PathLike) -> np.ndarray:
    """IIDs (column 2) of a .fam file as a string array, in file order."""
    return read_fam_ids(path)[1]


def read_fam_ids(path: str | os.PathLike) -> tuple[np.ndarray | None, np.ndarray]:
    """(FIDs or None when every FID is "0" — plink2's "no family" —, IIDs) of a .fam file,
    string arrays in file order."""
    rows = [line.split() for line in read_text(path, what=".fam file").splitlines() if line.strip()]
    for i, r in enumerate(rows, start=1):
        if len(r) < 6:
            raise InvalidInputError(f"{path}: line {i} has {len(r)} columns, a .fam row needs 6")
    fids = np.array([r[0] for r in rows], dtype=object)
    return (None if (fids == "0").all() else fids), np.array([r[1] for r in rows], dtype=object)


@dataclass
class BimTable:
    """The rows of a .bim file as columns (object arrays of str; ``a1`` is the counted allele)."""

    chrom: np.ndarray
    id: np.ndarray
    cm: np.ndarray  # float64
    pos: np.ndarray  # int64
    a1: np.ndarray
    a2: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)


_BIM_COLUMNS = ("chrom", "id", "cm", "pos", "a1", "a2")


def read_bim(path: str | os.PathLike) -> BimTable:
    """All rows of a .bim file. Tab-separated files (what PLINK writes) are parsed by pyarrow;
    others line by line, which also names the first bad line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {"chrom": pa.string(), "id": pa.string(), "cm": pa.float64(), "pos": pa.int64(), "a1": pa.string(), "a2": pa.string()}
    try:
        t = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=list(_BIM_COLUMNS)),
                           parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                           convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    except pa.ArrowInvalid:
        return _read_bim_lines(path)
    if _has_blank_field(t):
        return _read_bim_lines(path)
    return BimTable(*(t.column(c).to_numpy(zero_copy_only=False) for c in _BIM_COLUMNS))


def _has_blank_field(t) -> bool:
    """Whether any string field is empty (e.g. doubled tabs): the line parser then explains."""
    import pyarrow.compute as pc

    return any(pc.any(pc.equal(pc.utf8_length(t.column(c)), 0)).as_py() for c in ("chrom", "id", "a1", "a2"))


def _read_bim_lines(path: str | os.PathLike) -> BimTable:
    rows = []
    for i, line in enumerate(read_text(path, what=".bim file").splitlines(), start=1):
        if not line.strip():
            continue
        f = line.split()
        if len(f) != 6:
            raise InvalidInputError(f"{path}: line {i} has {len(f)} columns, a .bim row needs 6")
        try:
            rows.append((f[0], f[1], float(f[2]), int(f[3]), f[4], f[5]))
        except ValueError as exc:
            raise InvalidInputError(f"{path}: line {i}: {exc}") from None
    cols = list(zip(*rows)) if rows else [()] * 6
    return BimTable(np.array(cols[0], dtype=object), np.array(cols[1], dtype=object), np.array(cols[2], np.float64),
                    np.array(cols[3], np.int64), np.array(cols[4], dtype=object), np.array(cols[5], dtype=object))


def missing_files(prefix: str, extensions) -> list[str]:
    """The files ``prefix + ext`` of a fileset that do not exist."""
    return [prefix + ext for ext in extensions if not os.path.exists(prefix + ext)]


class BedFile:
    """A memory-mapped SNP-major .bed with its .bim/.fam; decodes variant blocks on demand."""

    def __init__(self, prefix: str | os.PathLike):
        prefix = str(prefix)
        missing = missing_files(prefix, (".bed", ".bim", ".fam"))
        if missing:
            raise InputNotFoundError(f"PLINK fileset {prefix}: missing {missing[0]}")
        self.prefix = prefix
        self.family_ids, self.sample_ids = read_fam_ids(prefix + ".fam")
        self.variants = read_bim(prefix + ".bim")
        n_s, n_v = len(self.sample_ids), len(self.variants)
        bpv = bytes_per_variant(n_s)
        with open(prefix + ".bed", "rb") as fh:
            magic = fh.read(3)
        if magic != BED_MAGIC:
            raise InvalidInputError(f"{prefix}.bed: not a SNP-major PLINK 1 .bed (magic bytes {magic.hex()})")
        size = os.path.getsize(prefix + ".bed")
        if size != 3 + n_v * bpv:
            raise InvalidInputError(
                f"{prefix}.bed: {size} bytes, but {n_v} variants x {n_s} samples need "
                f"{3 + n_v * bpv} (truncated or mismatched .bim/.fam)"
            )
        self._packed = np.memmap(prefix + ".bed", dtype=np.uint8, mode="r", offset=3, shape=(n_v, bpv))

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    @property
    def n_variants(self) -> int:
        return len(self.variants)

    def read(self, start: int = 0, stop: int | None = None, backend: str | None = None) -> np.ndarray:
        """A1 counts of variants [start, stop) as int8 [n_variants, n_samples]."""
        return unpack_bed(np.asarray(self._packed[start:stop]), self.n_samples, backend=backend)


class PlinkWriter:
    """Streams variant blocks into a .bed/.bim/.fam fileset, atomically.

    Files are written under temporary names and renamed only when the writer closes
    without an error, so a failed run leaves nothing half-written in place.
    """

    def __init__(self, prefix: str | os.PathLike, sample_ids, sexes=None):
        self.prefix = str(prefix)
        self.n_samples = len(sample_ids)
        self._stack = contextlib.ExitStack()
        paths = {ext: self._stack.enter_context(atomic_output(self.prefix + ext)) for ext in (".bed", ".bim", ".fam")}
        sexes = np.zeros(self.n_samples, dtype=int) if sexes is None else np.asarray(sexes)
        with open(paths[".fam"], "w") as fam:
            fam.writelines(f"{iid}\t{iid}\t0\t0\t{int(sex)}\t-9\n" for iid, sex in zip(sample_ids, sexes))
        self._bed = self._stack.enter_context(open(paths[".bed"], "wb"))
        self._bim = self._stack.enter_context(open(paths[".bim"], "w"))
        self._bed.write(BED_MAGIC)

    def write(self, genotypes: np.ndarray, variants: list[Variant], backend: str | None = None) -> None:
        """Appends a block: ``genotypes`` [len(variants), n_samples] A1 counts."""
        if genotypes.shape != (len(variants), self.n_samples):
            raise InvalidInputError(
                f"block shape {genotypes.shape} != ({len(variants)} variants, {self.n_samples} samples)"
            )
        self._bed.write(pack_bed(genotypes, backend=backend).tobytes())
        self._bim.writelines(f"{v.chrom}\t{v.id}\t{v.cm:g}\t{v.pos}\t{v.a1}\t{v.a2}\n" for v in variants)

    def __enter__(self) -> PlinkWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        # ExitStack closes the files first, then renames (or deletes, on error) the temporaries.
        return self._stack.__exit__(exc_type, exc, tb)
