"""Type stubs for the compiled C++ core ``ehrfast._core``."""

import numpy as np
import numpy.typing as npt

def pack_bed(genotypes: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """[n_variants, n_samples] int8 A1 counts (-1 missing) -> [n_variants, ceil(n_samples/4)] uint8."""

def unpack_bed(packed: npt.NDArray[np.uint8], n_samples: int) -> npt.NDArray[np.int8]:
    """[n_variants, ceil(n_samples/4)] uint8 -> [n_variants, n_samples] int8 A1 counts (-1 missing)."""

def built_with_openmp() -> bool: ...
