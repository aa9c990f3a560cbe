"""Keeping freed memory in the process during bulk array work (glibc only).

Large numpy arrays are allocated with mmap and returned to the OS when freed, so every new
shard's arrays page-fault their memory in again — on virtual machines that costs as much as
the work itself. Inside ``reuse_freed_memory()`` glibc serves large allocations from its heap
and keeps freed blocks, so later shards reuse pages already mapped. On exit the thresholds are
set to what glibc's own dynamic adjustment converges to (not its start values: see
``_AFTERWARDS``) and the spare memory is returned to the OS (malloc_trim). Elsewhere
(non-glibc platforms) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
# What glibc's dynamic thresholds grow to in a process that frees large blocks (the 64-bit
# maximum of the mmap threshold, and twice that for trimming). Any mallopt call switches the
# dynamic adjustment off for good, so restoring the 128 KiB start values would leave every
# allocation above 128 KiB mmapped and page-faulted afresh for the rest of the process —
# measured: training steps 57% slower after a tokenize or PRS stage in the same process.
_AFTERWARDS = {M_TRIM_THRESHOLD: 64 << 20, M_TOP_PAD: 128 << 10, M_MMAP_THRESHOLD: 32 << 20}


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 — glibc and musl differ; musl has no mallopt
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def reuse_freed_memory():
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)  # allocations up to 1 GiB come from the heap
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 62)  # never give freed heap back while inside
    libc.mallopt(M_TOP_PAD, 256 << 20)
    try:
        yield
    finally:
        for option, value in _AFTERWARDS.items():
            libc.mallopt(option, value)
        libc.malloc_trim(0)
