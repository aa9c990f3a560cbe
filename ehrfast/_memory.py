"""Keeping freed memory in the process during bulk array work (glibc only).

Large numpy arrays are allocated with mmap and returned to the OS when freed, so every new
shard's arrays page-fault their memory in again — on virtual machines that costs as much as
the work itself. Inside ``reuse_freed_memory()`` glibc serves large allocations from its heap
and keeps freed blocks, so later shards reuse pages already mapped. On exit the settings are
restored and the spare memory is returned to the OS (malloc_trim). Elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_TOP_PAD: 0, M_MMAP_THRESHOLD: 128 * 1024}


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
        for option, value in _DEFAULTS.items():
            libc.mallopt(option, value)
        libc.malloc_trim(0)
