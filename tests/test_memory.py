"""reuse_freed_memory must not leave the process worse off afterwards (glibc only)."""

from __future__ import annotations

import ctypes

import pytest

from ehrfast._memory import _glibc, reuse_freed_memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mmapped_blocks(libc) -> int:
    return int(libc.mallinfo2().hblks)


def test_large_allocations_stay_on_the_heap_after_the_block():
    """A 4 MiB block after the context must come from the heap, as glibc's dynamic threshold
    would serve it — not from a fresh mmap (which the 128 KiB start value gave: every later
    allocation page-faulted afresh; training ran 57% slower after a tokenize stage)."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc >= 2.33")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    with reuse_freed_memory():
        pass
    before = _mmapped_blocks(libc)
    block = libc.malloc(4 << 20)
    try:
        assert _mmapped_blocks(libc) == before
    finally:
        libc.free(block)
