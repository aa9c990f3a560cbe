"""Genotype sources behind one interface: variant table, sample ids, and ALT-allele dosages
of chosen variants in blocks (float64, NaN = missing).

* PLINK 1 ``.bed/.bim/.fam``: native (memory-mapped, decoded by the C++ core); the counted
  allele A1 plays ALT, A2 plays REF.
* PLINK 2 ``.pgen/.pvar/.psam``: through ``pgenlib`` (hard calls and fractional dosages).
* VCF/BCF with ``DS`` or ``GT``: through ``cyvcf2``.
* BGEN (unphased diploid biallelic): through ``cbgen``.
"""

from __future__ import annotations

import abc
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ehrfast.errors import InvalidInputError
from ehrfast.genomics.bed import BedFile, missing_files, unpack_bed
from ehrfast.genomics.builds import build_from_header
from ehrfast.inputs import read_text


class GenotypeError(InvalidInputError):
    """Unusable genotype input; the message names the file and the problem."""


@dataclass
class VariantTable:
    chrom: np.ndarray  # object [n] (no "chr" prefix)
    pos: np.ndarray  # int64 [n]
    id: np.ndarray  # object [n]
    ref: np.ndarray  # object [n]
    alt: np.ndarray  # object [n] (the allele whose dosage is read)

    def __len__(self) -> int:
        return len(self.pos)


def _strip_chr(values) -> np.ndarray:
    table = {v: v[3:] if v.lower().startswith("chr") else v for v in set(values)}  # few distinct chromosomes
    return np.array([table[v] for v in values], dtype=object)


def _upper(alleles) -> np.ndarray:
    table = {a: a.upper() for a in set(alleles)}
    return np.array([table[a] for a in alleles], dtype=object)


class GenotypeSource(abc.ABC):
    """``sample_ids`` are IIDs; ``family_ids`` the FIDs of PLINK filesets that have them (None
    when absent or all "0"); ``genome_build`` what the file's header declares (None: unknown)."""

    kind = "abstract"
    path: str
    sample_ids: np.ndarray
    variants: VariantTable
    family_ids: np.ndarray | None = None
    genome_build: str | None = None
    sample_file: str | None = None  # where the sample ids come from (.fam, .psam), for messages
    opened_as: tuple[str, dict] | None = None  # open_genotypes' arguments: how a Dask worker reopens it

    def __reduce__(self):
        """Pickled as the way to open it again (a Dask worker reopens the files from the shared
        filesystem), never as the genotypes themselves."""
        if self.opened_as is None:
            raise TypeError(f"{self.path}: a genotype source not made by open_genotypes cannot be sent to another process")
        return _reopen, self.opened_as

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    def sample_label(self, k: int) -> str:
        """Sample ``k`` as plink2 names it in messages: ``FID/IID``, or the IID alone."""
        return f"{self.family_ids[k]}/{self.sample_ids[k]}" if self.family_ids is not None else str(self.sample_ids[k])

    def check_unique_samples(self) -> None:
        """Two samples with the same (FID, IID) cannot be told apart in any output."""
        keys = list(zip(self.family_ids, self.sample_ids)) if self.family_ids is not None else list(self.sample_ids)
        if len(set(keys)) != len(keys):
            seen: dict = {}
            for k, key in enumerate(keys):
                if key in seen:
                    raise GenotypeError(f"{self.sample_file or self.path}: samples {seen[key] + 1} and {k + 1} are both {self.sample_label(k)}; "
                                        "sample ids (FID, IID) must be unique")
                seen[key] = k

    @abc.abstractmethod
    def dosages(self, idx: np.ndarray) -> np.ndarray:
        """ALT dosages of variants ``idx`` (ascending): float64 [len(idx), n_samples], NaN missing."""

    def release_pages(self, first: int = 0, end: int | None = None) -> None:
        """Lets go of what the reader keeps mapped of variant rows [first, end) (default: all)
        read so far — after a scoring task, a worker then holds one block's genotypes, not
        every block it has scored. Readers that copy each read into memory of their own have
        nothing to release."""
        return None


class BedSource(GenotypeSource):
    kind = "bed"

    def __init__(self, prefix: str | os.PathLike):
        self.bed = BedFile(prefix)
        self.path = str(prefix)
        self.sample_file = f"{prefix}.fam"
        self.sample_ids = self.bed.sample_ids
        self.family_ids = self.bed.family_ids
        v = self.bed.variants
        self.variants = VariantTable(_strip_chr(v.chrom), v.pos, v.id, _upper(v.a2), _upper(v.a1))

    @property
    def packed_all(self) -> np.ndarray:
        """Every variant's 2-bit codes, memory-mapped: uint8 [n_variants, ceil(n/4)] (the kernels
        read the rows they need straight from the page cache)."""
        return self.bed._packed

    def release_pages(self, first: int = 0, end: int | None = None) -> None:
        # The .bed is memory-mapped: every row a task read stays mapped into this process (its
        # resident size) until released. MADV_DONTNEED drops the mapping only; the bytes stay in
        # the page cache, so a later read of the same rows is a minor fault, not a disk read.
        mm = getattr(self.bed._packed, "_mmap", None)
        if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
            return
        packed = self.bed._packed
        head = packed.offset % mmap.ALLOCATIONGRANULARITY  # where row 0 starts in the mapping
        start = (head + first * packed.shape[1]) // mmap.PAGESIZE * mmap.PAGESIZE  # whole pages: a neighbour row refaults, harmlessly
        stop = min(len(mm), head + (len(packed) if end is None else end) * packed.shape[1])
        if stop > start:
            mm.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def packed(self, idx: np.ndarray) -> np.ndarray:
        """Raw 2-bit codes of variants ``idx``: uint8 [len(idx), ceil(n/4)] (memory-mapped reads)."""
        return np.ascontiguousarray(self.bed._packed[np.asarray(idx, np.int64)])

    def dosages(self, idx: np.ndarray) -> np.ndarray:
        g = unpack_bed(self.packed(idx), self.n_samples).astype(np.float64)
        g[g < 0] = np.nan
        return g


class PgenSource(GenotypeSource):
    kind = "pgen"

    def __init__(self, prefix: str | os.PathLike):
        try:
            import pgenlib
        except ImportError:
            raise GenotypeError("reading .pgen needs the 'pgenlib' package: pip install pgenlib") from None
        prefix = str(prefix)
        missing = missing_files(prefix, (".pgen", ".pvar", ".psam"))
        if missing:
            raise GenotypeError(f"PLINK 2 fileset {prefix}: missing {missing[0]}")
        self.path = prefix
        self.sample_file = prefix + ".psam"
        self.family_ids, self.sample_ids = _read_psam(prefix + ".psam")
        self.variants, self.genome_build = _read_pvar(prefix + ".pvar")
        try:
            self.reader = pgenlib.PgenReader(prefix.encode() + b".pgen", raw_sample_ct=len(self.sample_ids))
        except RuntimeError as exc:
            raise GenotypeError(f"{prefix}.pgen: {exc}") from None
        if self.reader.get_variant_ct() != len(self.variants):
            raise GenotypeError(f"{prefix}.pgen has {self.reader.get_variant_ct()} variants but the .pvar lists {len(self.variants)}")

    def dosages(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), self.n_samples), np.float64)
        if len(idx):
            self.reader.read_dosages_list(np.asarray(idx, np.uint32), out)
        out[out < 0] = np.nan  # pgenlib marks missing as -9
        return out


def _read_psam(path: str) -> tuple[np.ndarray | None, np.ndarray]:
    """(FIDs or None, IIDs): a ``#FID IID ...`` or ``#IID ...`` header, or .fam-style rows."""
    lines = [ln for ln in read_text(path, what=".psam file").splitlines() if ln.strip()]
    if not lines:
        raise GenotypeError(f"{path}: empty sample file")
    head = lines[0].lstrip("#").split()
    if lines[0].startswith("#") and "IID" in head:
        rows = [ln.split() for ln in lines[1:]]
        for i, r in enumerate(rows, start=2):
            if len(r) != len(head):
                raise GenotypeError(f"{path}: line {i} has {len(r)} columns, the header names {len(head)}")
        iid = np.array([r[head.index("IID")] for r in rows], dtype=object)
        fid = np.array([r[head.index("FID")] for r in rows], dtype=object) if "FID" in head else None
    else:  # .fam-style: FID IID ...
        rows = [ln.split() for ln in lines]
        if any(len(r) < 2 for r in rows):
            raise GenotypeError(f"{path}: expected a '#IID' or '#FID IID' header, or FID IID columns")
        fid, iid = np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=object)
    return (None if fid is None or (fid == "0").all() else fid), iid


def _read_pvar(path: str) -> tuple[VariantTable, str | None]:
    """(variants, the build the ``##`` header reveals or None)."""
    text = read_text(path, what=".pvar file").splitlines()
    build = build_from_header(ln for ln in text if ln.startswith("##"))
    rows = [ln.split("\t") for ln in text if ln and not ln.startswith("##")]
    if not rows or not rows[0][0].startswith("#CHROM"):
        raise GenotypeError(f"{path}: expected a '#CHROM POS ID REF ALT' header line")
    head = [h.lstrip("#") for h in rows[0]]
    try:
        c, p, i, r, a = (head.index(k) for k in ("CHROM", "POS", "ID", "REF", "ALT"))
    except ValueError:
        raise GenotypeError(f"{path}: header {head} lacks one of CHROM POS ID REF ALT") from None
    body = rows[1:]
    return VariantTable(_strip_chr([x[c] for x in body]), np.array([int(x[p]) for x in body], np.int64),
                        np.array([x[i] for x in body], dtype=object), np.array([x[r].upper() for x in body], dtype=object),
                        np.array([x[a].upper() for x in body], dtype=object)), build


class VcfSource(GenotypeSource):
    kind = "vcf"

    def __init__(self, path: str | os.PathLike, field: str = "auto"):
        try:
            import cyvcf2
        except ImportError:
            raise GenotypeError("reading VCF/BCF needs the 'cyvcf2' package: pip install cyvcf2") from None
        self.path = str(path)
        try:
            self._read(cyvcf2, field)
        except GenotypeError:
            raise
        except Exception as exc:  # noqa: BLE001 (cyvcf2 raises bare Exception for a header it cannot parse)
            raise GenotypeError(f"{self.path}: not a readable VCF/BCF ({exc})") from None

    def _read(self, cyvcf2, field: str) -> None:
        vcf = cyvcf2.VCF(self.path)
        self.sample_ids = np.array(vcf.samples, dtype=object)
        self.genome_build = build_from_header(vcf.raw_header.splitlines())
        formats = {h["ID"] for h in vcf.header_iter() if h["HeaderType"] == "FORMAT"}
        self.field = ("DS" if "DS" in formats else "GT") if field == "auto" else field
        if self.field not in formats:
            raise GenotypeError(f"{self.path}: FORMAT/{self.field} not declared in the header")
        chrom, pos, ids, ref, alt, values = [], [], [], [], [], []
        for v in vcf:  # one pass: VCFs here are test-sized; big cohorts should use .pgen/.bed
            chrom.append(v.CHROM)
            pos.append(v.POS)
            ids.append(v.ID or f"{v.CHROM}:{v.POS}:{v.REF}:{','.join(v.ALT)}")
            ref.append(v.REF.upper())
            alt.append(",".join(v.ALT).upper())
            if self.field == "DS":
                ds = v.format("DS")
                values.append(np.full(len(self.sample_ids), np.nan) if ds is None else ds[:, 0].astype(np.float64))
            else:
                gt = v.gt_types.astype(np.float64)  # 0 hom-ref, 1 het, 2 unknown, 3 hom-alt
                values.append(np.select([gt == 0, gt == 1, gt == 3], [0.0, 1.0, 2.0], np.nan))
        self.variants = VariantTable(_strip_chr(chrom), np.array(pos, np.int64), np.array(ids, dtype=object),
                                     np.array(ref, dtype=object), np.array(alt, dtype=object))
        self._values = np.array(values).reshape(len(pos), len(self.sample_ids))
        self._values[self._values < -1e30] = np.nan  # cyvcf2 marks missing floats as -inf-like sentinels

    def dosages(self, idx: np.ndarray) -> np.ndarray:
        return self._values[np.asarray(idx, np.int64)]


class BgenSource(GenotypeSource):
    """BGEN (v1.1–1.3, diploid biallelic) through ``cbgen``. BGEN does not say which allele is
    REF: ``ref_first=True`` (the usual convention, plink2's ``ref-first``) reads the first
    allele as REF, ``False`` the second (``ref-last``)."""

    kind = "bgen"

    def __init__(self, path: str | os.PathLike, sample_file: str | os.PathLike | None = None, ref_first: bool = True):
        try:
            import cbgen
        except ImportError:
            raise GenotypeError("reading BGEN needs the 'cbgen' package: pip install cbgen") from None
        import tempfile

        self.path = str(path)
        if not os.path.exists(self.path):
            raise GenotypeError(f"{self.path}: no such BGEN file")
        self._tmp = tempfile.TemporaryDirectory(prefix="ehrfast-bgen-")
        metafile = os.path.join(self._tmp.name, "index.metafile")
        self._bgen = cbgen.bgen_file(self.path)
        self._bgen.create_metafile(metafile, verbose=False)
        self.sample_ids = self._samples(sample_file)
        chrom, pos, ids, a1, a2, self._offsets = [], [], [], [], [], []
        with cbgen.bgen_metafile(metafile) as meta:
            for k in range(meta.npartitions):
                v = meta.read_partition(k).variants
                for c, p, rs, vid, alleles, off, nal in zip(v.chromosome, v.position, v.rsid, v.id, v.allele_ids, v.offset, v.nalleles):
                    first, _, second = alleles.decode().partition(",")
                    chrom.append(c.decode())
                    pos.append(int(p))
                    ids.append(rs.decode() or vid.decode())
                    a1.append(first.upper())
                    a2.append(second.upper() if nal == 2 else ",".join(alleles.decode().upper().split(",")[1:]))
                    self._offsets.append(int(off))
        ref, alt = (a1, a2) if ref_first else (a2, a1)
        self.ref_first = ref_first
        self.variants = VariantTable(_strip_chr(chrom), np.array(pos, np.int64), np.array(ids, dtype=object),
                                     np.array(ref, dtype=object), np.array(alt, dtype=object))

    def _samples(self, sample_file) -> np.ndarray:
        if sample_file is None and os.path.exists(self.path[: -len(".bgen")] + ".sample"):
            sample_file = self.path[: -len(".bgen")] + ".sample"
        if sample_file is not None:
            lines = [ln.split() for ln in read_text(sample_file, what="BGEN .sample file").splitlines() if ln.strip()]
            ids = [r[1] for r in lines[2:]]  # header line, type line, then ID_1 ID_2 ...
        elif self._bgen.contain_samples:
            ids = [s.decode() if isinstance(s, bytes) else str(s) for s in self._bgen.read_samples()]
        else:
            ids = [f"sample_{i}" for i in range(self._bgen.nsamples)]
        if len(ids) != self._bgen.nsamples:
            raise GenotypeError(f"{sample_file}: {len(ids)} samples listed, the BGEN holds {self._bgen.nsamples}")
        return np.array(ids, dtype=object)

    def dosages(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), self.n_samples))
        for k, v in enumerate(np.asarray(idx, np.int64)):
            g = self._bgen.read_genotype(self._offsets[v])
            prob = np.asarray(g.probability, np.float64)
            if prob.shape[1] != 3 or g.phased:
                raise GenotypeError(f"{self.path}: variant {self.variants.id[v]} is not unphased diploid biallelic")
            # dosage of the second allele: P(het) + 2 P(hom second)
            second = prob[:, 1] + 2 * prob[:, 2]
            out[k] = second if self.ref_first else 2.0 - second
            out[k, np.asarray(g.missing, bool)] = np.nan
        return out


GENOTYPE_EXTENSIONS = (".bed", ".bim", ".fam", ".pgen", ".pvar", ".psam", ".pvar.zst", ".bgen", ".bgen.bgi", ".sample",
                       ".vcf", ".vcf.gz", ".bcf", ".tbi", ".csi")


def genotype_files(path: str | os.PathLike) -> list[Path]:
    """The files a genotype ``path`` (a PLINK prefix or a file) may stand for — what an output
    must never overwrite. Existing ones only, plus ``path`` itself."""
    p = str(path)
    prefixes = {p} | {p[: -len(ext)] for ext in GENOTYPE_EXTENSIONS if p.endswith(ext)}
    found = {Path(p)} | {Path(q + ext) for q in prefixes for ext in GENOTYPE_EXTENSIONS if os.path.exists(q + ext)}
    return sorted(found)


def open_genotypes(path: str | os.PathLike, **options) -> GenotypeSource:
    """Opens ``path``: a PLINK prefix (``x`` for x.bed or x.pgen, or the file itself), a VCF/BCF
    or a BGEN file (``options`` go to its reader, e.g. ``ref_first=False``)."""
    source = _open(str(path), options)
    source.check_unique_samples()
    source.opened_as = (str(path), dict(options))
    return source


def _reopen(path: str, options: dict) -> GenotypeSource:
    """The source a pickled one stands for: opened once per process (each Dask task that gets it)."""
    from ehrfast.cluster import opened

    return opened(("genotypes", path, tuple(sorted(options.items()))), lambda: open_genotypes(path, **options))


def _open(p: str, options: dict) -> GenotypeSource:
    if p.endswith(".bgen"):
        return BgenSource(p, **options)
    for ext in (".bed", ".bim", ".fam", ".pgen", ".pvar", ".psam"):
        if p.endswith(ext):
            prefix = p[: -len(ext)]
            return BedSource(prefix) if ext in (".bed", ".bim", ".fam") else PgenSource(prefix)
    if p.endswith((".vcf", ".vcf.gz", ".bcf")):
        return VcfSource(p)
    if os.path.exists(p + ".bed"):  # the native reader first: a prefix with both needs no pgenlib
        return BedSource(p)
    if os.path.exists(p + ".pgen"):
        return PgenSource(p)
    raise GenotypeError(f"{p}: no .bed/.pgen fileset or VCF/BCF file found")
