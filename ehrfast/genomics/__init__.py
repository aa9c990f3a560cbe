"""Genotypes, score files and polygenic risk scores (``ehrfast prs``).

Public API::

    compute_prs(genotypes, score_files, out_path, PRSOptions(...), *, meds_dir=None, ...) -> PRSSummary
    read_prs_matrix(path) -> PRSMatrix      # the output, aligned to subjects by PRSMatrix.rows_for
    BedFile, PlinkWriter, pack_bed, unpack_bed, read_bim, read_fam (+ the numpy references)
"""

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
from ehrfast.genomics.matrix import PRSMatrix, read_prs_matrix
from ehrfast.genomics.options import PRSOptions
from ehrfast.genomics.prs import PRSSummary, compute_prs

__all__ = [
    "BedFile",
    "PRSMatrix",
    "PRSOptions",
    "PRSSummary",
    "PlinkWriter",
    "compute_prs",
    "pack_bed",
    "pack_bed_reference",
    "read_bim",
    "read_fam",
    "read_prs_matrix",
    "unpack_bed",
    "unpack_bed_reference",
]
