"""Outputs: the checks that keep inputs safe, atomic files and directories (written under a
temporary name, renamed into place only on success), and .npy files streamed by appending.

Every command checks its outputs against its inputs before any work (``check_outputs``), and
every directory ehrfast writes carries a marker file, so ``--overwrite`` can only ever replace
ehrfast's own outputs."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ehrfast.errors import InvalidInputError, OutputExistsError, OutputOverlapsInputError

PathLike = str | os.PathLike


OUTPUT_MARKER = ".ehrfast-output.json"  # in every directory ehrfast writes: what --overwrite may replace


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _real(path: str | os.PathLike) -> Path:
    """Absolute, with symlinks resolved: two spellings of one place compare equal."""
    return Path(os.path.realpath(os.fspath(path)))


def _overlap(a: Path, b: Path) -> str | None:
    """How real path ``a`` relates to real path ``b``: "is", "lies inside", "contains" or None."""
    # on the cached parts tuples: Path.parents builds a Path per level, and PRS checks one
    # output against thousands of score files
    pa, pb = a.parts, b.parts
    if pa == pb:
        return "is"
    if len(pa) > len(pb) and pa[: len(pb)] == pb:
        return "lies inside"
    if len(pb) > len(pa) and pb[: len(pa)] == pa:
        return "contains"
    return None


def check_outputs(*, files: Iterable[PathLike | None] = (), directories: Iterable[PathLike | None] = (),
                  inputs: Iterable[PathLike | None] = (), overwrite: bool = False) -> None:
    """Checks a command's outputs before any work is done, so that no input is ever modified:

    * an output that equals, contains or lies inside an input is refused
      (``OutputOverlapsInputError``) — ``--overwrite`` does not change that;
    * two outputs that overlap are refused;
    * an existing output is refused without ``overwrite``; with it, a file output may replace a
      file, and a directory output only a directory that ehrfast itself wrote (it holds
      ``OUTPUT_MARKER``) or an empty one, never an arbitrary one (``OutputExistsError``).

    ``None`` entries (optional paths not given) are skipped."""
    files = [Path(p) for p in files if p is not None]
    directories = [Path(p) for p in directories if p is not None]
    check_no_overlap([*files, *directories], inputs)
    for path in files:
        check_replaceable(path, overwrite, directory=False)
    for path in directories:
        check_replaceable(path, overwrite, directory=True)


def check_no_overlap(outputs: Iterable[PathLike | None], inputs: Iterable[PathLike | None]) -> None:
    """Refuses an output that equals, contains or lies inside an input, and outputs that
    overlap each other (see ``check_outputs``)."""
    outs = [(Path(p), _real(p)) for p in outputs if p is not None]
    ins = [(Path(p), _real(p)) for p in inputs if p is not None]
    for out, real_out in outs:
        for inp, real_in in ins:
            how = _overlap(real_out, real_in)
            if how == "is":
                raise OutputOverlapsInputError(f"output {out} is the input {inp}: ehrfast never writes over its inputs; "
                                               "choose another output path")
            if how == "lies inside":
                raise OutputOverlapsInputError(f"output {out} lies inside the input {inp}: ehrfast never writes into its "
                                               "inputs; choose an output path outside it")
            if how == "contains":
                raise OutputOverlapsInputError(f"output {out} contains the input {inp}: writing it (or replacing it with "
                                               "--overwrite) would destroy the input; choose another output path")
    for i, (a, real_a) in enumerate(outs):
        for b, real_b in outs[i + 1:]:
            if _overlap(real_a, real_b):
                raise InvalidInputError(f"outputs {a} and {b} overlap: give each output its own path")


def check_replaceable(path: PathLike, overwrite: bool, *, directory: bool) -> None:
    """Whether an output may be written at ``path`` (see ``check_outputs``)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if directory and path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return  # an empty directory: replacing it loses nothing
    if not overwrite:
        raise OutputExistsError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    if directory:
        if not path.is_dir():
            raise OutputExistsError(f"{path} already exists and is not a directory; --overwrite replaces only a directory "
                                    "that ehrfast wrote")
        if not has_marker(path):
            raise OutputExistsError(f"{path} already exists and was not written by ehrfast (no {OUTPUT_MARKER} in it): "
                                    "--overwrite replaces only ehrfast's own outputs; remove it yourself or choose another path")
    elif path.is_dir() or not path.is_file():
        raise OutputExistsError(f"{path} already exists and is not a regular file; --overwrite replaces only a file here")


def has_marker(directory: PathLike) -> bool:
    """Whether ehrfast wrote ``directory`` (it holds ``OUTPUT_MARKER``)."""
    return (Path(directory) / OUTPUT_MARKER).is_file()


def write_marker(directory: PathLike, kind: str) -> None:
    """Marks ``directory`` as an ehrfast output of ``kind`` (what ``--overwrite`` may replace)."""
    from ehrfast._version import __version__

    payload = {"written_by": "ehrfast", "version": __version__, "kind": kind,
               "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    (Path(directory) / OUTPUT_MARKER).write_text(json.dumps(payload) + "\n")


@contextlib.contextmanager
def atomic_output(path: PathLike, overwrite: bool = False) -> Iterator[str]:
    """Yields a temporary file path beside ``path``; renames it to ``path`` if the block
    succeeds, else removes it. An existing ``path`` is an error unless ``overwrite``."""
    path = Path(path)
    check_replaceable(path, overwrite, directory=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: PathLike, overwrite: bool = False, kind: str = "output") -> Iterator[Path]:
    """Yields a temporary directory beside ``path``; if the block succeeds, marks it as an
    ehrfast output of ``kind`` and renames it to ``path``, else removes it.

    An existing ``path`` is an error unless ``overwrite``, and even then unless ehrfast wrote
    it (``check_replaceable``); it is replaced only after the new directory is complete, and
    restored if the final rename fails."""
    path = Path(path)
    check_replaceable(path, overwrite, directory=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        write_marker(tmp, kind)
        _swap_in(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, path: Path, overwrite: bool) -> None:
    """Renames directory ``new`` to ``path``, replacing an ehrfast directory there."""
    if not path.exists():
        os.replace(new, path)
        return
    check_replaceable(path, overwrite, directory=True)  # again: it may have changed while we worked
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old)  # onto an empty directory: allowed
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)  # put the previous output back
        raise
    shutil.rmtree(old, ignore_errors=True)


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

    def append_npy(self, path: str | os.PathLike) -> None:
        """Appends the items of another 1-D ``.npy`` file of the same dtype (a part written by a task)."""
        part = np.load(path, mmap_mode="r")
        if part.dtype != self.dtype or part.ndim != 1:
            raise TypeError(f"{path}: expected a 1-D {self.dtype} array, got {part.ndim}-D {part.dtype}")
        if len(part):
            self.append(part)

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
