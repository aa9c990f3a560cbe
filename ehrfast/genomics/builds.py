"""Genome builds: the names score files and genotype headers use, and the check that a
position-matched score file is on the genotypes' build.

Positions differ between GRCh37 and GRCh38 at almost every variant, so matching by position
across builds silently scores the wrong variants (or few of them). Score files declare their
build (PGS Catalog ``#genome_build``, harmonized files ``#HmPOS_build`` or ``_hmPOS_GRCh38`` in
the file name); VCF and .pvar headers often reveal the genotypes' (``##reference``, or the
length of chromosome 1 in ``##contig``).
"""

from __future__ import annotations

import re

from ehrfast.errors import InvalidInputError

BUILDS = ("GRCh37", "GRCh38")
_ALIASES = {
    "grch37": "GRCh37", "hg19": "GRCh37", "ncbi37": "GRCh37", "b37": "GRCh37", "hs37d5": "GRCh37", "37": "GRCh37",
    "grch38": "GRCh38", "hg38": "GRCh38", "ncbi38": "GRCh38", "b38": "GRCh38", "38": "GRCh38",
}
_UNKNOWN = {"", "nr", "na", "none", "unknown"}
CHR1_LENGTH = {249250621: "GRCh37", 248956422: "GRCh38"}  # the contig length that tells the builds apart


def normalize_build(name: str | None, *, where: str = "genome build") -> str | None:
    """``GRCh37``/``GRCh38`` for the usual spellings (hg19, NCBI37, b37, GRCh37.p13, ...), None
    for "not reported"; anything else is an error naming ``where``."""
    if name is None:
        return None
    key = name.strip().lower()
    if key in _UNKNOWN:
        return None
    key = re.sub(r"\.p\d+$", "", key)  # patch releases share coordinates
    if key in _ALIASES:
        return _ALIASES[key]
    raise InvalidInputError(f"{where}: unknown genome build {name!r}; expected one of {', '.join(BUILDS)} (or hg19/hg38)")


def build_from_filename(name: str) -> str | None:
    """The build of a PGS Catalog harmonized download, from its name (``PGS000001_hmPOS_GRCh38.txt.gz``)."""
    m = re.search(r"_hmPOS_(GRCh3[78])", name)
    return m.group(1) if m else None


def build_from_header(lines) -> str | None:
    """The build a VCF/.pvar ``##`` header reveals: chromosome 1's contig length, else a
    ``##reference`` naming one; None when it says nothing."""
    reference = None
    for line in lines:
        m = re.match(r"##contig=<ID=(?:chr)?1,.*?length=(\d+)", line)
        if m and int(m.group(1)) in CHR1_LENGTH:
            return CHR1_LENGTH[int(m.group(1))]
        if line.startswith("##reference="):
            text = line.split("=", 1)[1].lower()
            for alias in ("grch37", "hg19", "b37", "hs37d5", "grch38", "hg38", "b38"):
                if alias in text:
                    reference = _ALIASES[alias]
                    break
    return reference


def check_builds(score_files, target_build: str | None, target_name: str) -> dict[str, str | None]:
    """Refuses position-matched score files on another build than the genotypes', or (when
    the genotypes' build is unknown) position-matched files that disagree with each other.
    ``score_files``: objects with ``path``, ``genome_build`` and ``matches_by_position``.
    Returns {score file path: build} for the record."""
    builds = {str(sf.path): sf.genome_build for sf in score_files}
    positional = [sf for sf in score_files if sf.matches_by_position and sf.genome_build is not None]
    if target_build is not None:
        for sf in positional:
            if sf.genome_build != target_build:
                raise InvalidInputError(
                    f"{sf.path} gives positions on {sf.genome_build} but the genotypes {target_name} are {target_build}: "
                    f"download the score file harmonized to {target_build} (PGS Catalog '_hmPOS_{target_build}'), "
                    "lift the genotypes over, or set --target-build if the genotypes' build is mis-declared")
    else:
        first = positional[0] if positional else None
        for sf in positional[1:]:
            if sf.genome_build != first.genome_build:
                raise InvalidInputError(
                    f"score files on different builds are matched by position: {first.path} is {first.genome_build}, "
                    f"{sf.path} is {sf.genome_build}; the genotypes {target_name} can only be on one — "
                    "set --target-build and use score files of that build")
    return builds


__all__ = ["BUILDS", "build_from_filename", "build_from_header", "check_builds", "normalize_build"]
