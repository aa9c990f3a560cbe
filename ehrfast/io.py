"""Outputs: atomic files and directories (written under a temporary name, renamed into place only
on success), and .npy files streamed by appending."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary file path beside ``path``; renames it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary directory beside ``path``; renames it to ``path`` if the block succeeds.

    An existing ``path`` is an error unless ``overwrite``; then it is replaced only after the
    new directory is complete.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


class NpyAppender:
    """A 1-D ``.npy`` file written by appending arrays, its length unknown until the end — so
    outputs stream to disk without first measuring them. The header is written last, into
    space reserved at the start (a 1-D header is always 128 bytes).

    ``evict_written`` tells writers that append through ``fileno()`` (the C++ core) to stream
    the file through the page cache: written back as it goes and dropped a window behind, so
    GBs of output neither fill the page cache nor pay for fresh pages (costly on virtual
    machines). Set ``EHRFAST_KEEP_PAGE_CACHE=1`` to keep written outputs cached instead (e.g.
    on a slow disk, when the next step reads them right away).
    """

    HEADER_BYTES = 128

    def __init__(self, path: str | os.PathLike, dtype: np.dtype | type):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.length = 0
        self.evict_written = os.environ.get("EHRFAST_KEEP_PAGE_CACHE", "0") in ("", "0")
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 — closed in close()
        self._file.write(b"\0" * self.HEADER_BYTES)

    def append(self, array: np.ndarray) -> None:
        if array.dtype != self.dtype or array.ndim != 1:
            raise TypeError(f"{self.path}: expected a 1-D {self.dtype} array, got {array.ndim}-D {array.dtype}")
        view = memoryview(np.ascontiguousarray(array)).cast("B")
        while view:  # a raw write may write less than asked
            view = view[self._file.write(view):]
        self.length += len(array)

    def fileno(self) -> int:
        """For writers that append to the file themselves (the C++ core); then call ``wrote``."""
        return self._file.fileno()

    def wrote(self, n: int) -> None:
        """Records ``n`` items appended straight to ``fileno()``."""
        self.length += n

    def close(self) -> None:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                                                      "shape": (self.length,)})
        if header.tell() != self.HEADER_BYTES:  # cannot happen for 1-D arrays; never write a corrupt file
            raise RuntimeError(f"{self.path}: .npy header is {header.tell()} bytes, expected {self.HEADER_BYTES}")
        self._file.seek(0)
        self._file.write(header.getvalue())
        self._file.close()

    def __enter__(self) -> NpyAppender:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._file.close()
