"""Stages: the pipeline's units of work, each one subpackage, one public function, one options
dataclass, one command and one on-disk contract.

A ``Stage`` names the command, its options dataclass and its public function, whose parameters
are exactly the options' fields (checked by the tests). The options' fields say what they are
with ``option(...)``: their help text, their role (an input, an output file or directory, or a
setting) and how the command line spells them; nested settings dataclasses (e.g. a
``TrainConfig`` inside the train options) contribute their own fields. The CLI builds every
subcommand from these declarations (``ehrfast.cli``), and the demo runs the same stages with
the same options (``ehrfast.demo``), so the command, the demo step and the API function cannot
drift apart.

Every function returns a summary dataclass with ``describe()``: the lines the command prints.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from ehrfast.errors import InvalidInputError

ROLES = ("setting", "input", "output_file", "output_dir")


def option(help: str, default: Any = MISSING, *, default_factory: Any = MISSING, role: str = "setting", flag: str | None = None,
           positional: bool = False, choices: tuple | None = None, metavar: str | tuple | None = None, cli: bool = True,
           negate: str | None = None, parse: Any = None) -> Any:
    """A dataclass field that documents itself for the command line.

    ``role``: "setting", "input" (a file or directory the stage reads and must never change),
    "output_file" or "output_dir"; ``flag``: the option's spelling (default ``--field-name``);
    ``positional``: an argument without a flag; ``negate``: for a boolean that defaults to True,
    the help of the flag that turns it off (``--quiet`` for ``progress``); ``cli=False``: API
    only; ``parse``:
    how the command line reads the value when the annotation allows more than a path or a
    number (``Task | Path`` reads a path)."""
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {ROLES}, got {role!r}")
    metadata = {"help": help, "role": role, "flag": flag, "positional": positional, "choices": choices, "metavar": metavar,
                "cli": cli, "negate": negate, "parse": parse}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def progress_option() -> Any:
    """``progress: bool = True``, turned off by ``--quiet``."""
    return option("show progress bars", True, flag="--quiet", negate="no progress bars")


def cluster_option() -> Any:
    """``cluster: str | None = None``, ``--cluster ADDRESS|local:N`` (``ehrfast.cluster``)."""
    return option("run the tasks on a Dask cluster: local:N (N worker processes here) or a scheduler address (tcp://host:8786); "
                  "the output is the same as without it; needs pip install 'ehrfast[dask]' (default: this process, no Dask)", None,
                  metavar="ADDRESS")


def overwrite_option(what: str = "the output") -> Any:
    """``overwrite: bool = False``, ``--overwrite``."""
    return option(f"replace {what} if present (only what ehrfast itself wrote; never an input)", False)


class Summary(Protocol):
    """What a stage function returns: a dataclass whose ``describe()`` gives the lines a user
    reads after the command."""

    def describe(self) -> str: ...


O = TypeVar("O")
S = TypeVar("S")


@dataclass(frozen=True)
class Stage(Generic[O, S]):
    """One pipeline stage: ``name`` (the command), ``help``, the ``options`` dataclass, and
    ``function``, the public API function as ``"module:attribute"`` (imported when first run,
    so ``ehrfast --help`` loads no torch)."""

    name: str
    help: str
    options: type[O]
    function: str
    description: str = ""

    def callable(self) -> Callable[..., S]:
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def run(self, options: O) -> S:
        """Calls the function with the options' fields as keyword arguments."""
        if not isinstance(options, self.options):
            raise TypeError(f"stage {self.name!r} takes {self.options.__name__}, got {type(options).__name__}")
        return self.callable()(**{f.name: getattr(options, f.name) for f in fields(options)})

    def paths(self, options: O, role: str) -> list[Path]:
        """The paths of ``options`` (nested settings included) that have ``role``."""
        return list(_paths(options, role))


def _paths(options, role: str):
    for f in fields(options):
        value = getattr(options, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            yield from _paths(value, role)
        elif f.metadata.get("role") == role and value is not None:
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                # a path, a list of paths, or pairs of them; objects given instead of files (a Task) have no path
                yield from (Path(x) for x in (v if isinstance(v, (list, tuple)) else [v]) if isinstance(x, str | os.PathLike))


def replace(options: O, **changes) -> O:
    """``dataclasses.replace`` for options (a name kept short for the demo's step tables)."""
    return dataclasses.replace(options, **changes)


__all__ = ["ROLES", "Stage", "Summary", "option", "overwrite_option", "progress_option", "replace"]
