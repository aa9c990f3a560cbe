"""The errors ehrfast raises for problems a user can fix: bad input files, options, configs,
missing builds. Every one derives from ``EhrfastError``, and the CLI prints exactly these (and
``OSError``) as one line; anything else — a CUDA out-of-memory error, a bug — keeps its
traceback.

The subclasses also derive from the built-in exception a Python caller would expect
(``ValueError``, ``FileExistsError``, …), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class EhrfastError(Exception):
    """Base of every error ehrfast raises on bad input; the message names the file, row,
    field or option, and what is wrong."""


class InvalidInputError(EhrfastError, ValueError):
    """A value in an input file, an option or a configuration that cannot be used."""


class InputNotFoundError(EhrfastError, FileNotFoundError):
    """An input file or directory that does not exist or is not what it should be."""


class OutputExistsError(EhrfastError, FileExistsError):
    """An output path that exists, without ``overwrite`` — or that ehrfast did not write, so
    ``overwrite`` may not replace it."""


class OutputOverlapsInputError(EhrfastError, ValueError):
    """An output path that equals, contains or lies inside one of the command's inputs."""


class BackendUnavailableError(EhrfastError, RuntimeError):
    """A fast path was forced (``backend="fast"``, an ``EHRFAST_*`` variable) but cannot run."""


class NonFiniteResultError(EhrfastError, ValueError):
    """A stage computed NaN or infinity where a number is the answer; nothing was written."""


__all__ = [
    "BackendUnavailableError",
    "EhrfastError",
    "InputNotFoundError",
    "InvalidInputError",
    "NonFiniteResultError",
    "OutputExistsError",
    "OutputOverlapsInputError",
]
