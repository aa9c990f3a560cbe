"""Genotypes, score files and polygenic risk scores."""

from ehrfast.genomics.bed import (
    BedFile,
    PlinkWriter,
    pack_bed,
    pack_bed_reference,
    read_bim,
    read_fam,
    unpack_bed,
    unpack_bed_reference,
)

__all__ = [
    "BedFile",
    "PlinkWriter",
    "pack_bed",
    "pack_bed_reference",
    "read_bim",
    "read_fam",
    "unpack_bed",
    "unpack_bed_reference",
]
