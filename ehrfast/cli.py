"""``ehrfast <command>``: a thin shell over the public Python API.

Every pipeline command is built from its stage in ``ehrfast.registry``: the arguments from the
stage's options dataclass (help texts, defaults, roles), the call is the stage's function, and
what it prints is the returned summary's ``describe()``. Errors a user can fix
(``EhrfastError``, ``OSError``) print as one line and exit 2; anything else keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
import warnings
from collections.abc import Sequence
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

from ehrfast.errors import EhrfastError, InvalidInputError
from ehrfast.stages import Stage


def _cmd_info(args: argparse.Namespace) -> int:
    from ehrfast.backends import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    yes = {True: "yes", False: "no"}
    print(f"ehrfast {info['version']}")
    print(f"  C++ core (ehrfast._core):      {'built' if info['cpp_core'] else 'NOT built: ' + str(info['core_error'])}")
    print(f"  C++ core OpenMP:               {yes[info['cpp_openmp']]}")
    print(f"  CUDA kernels (ehrfast._cuda):  {'built' if info['cuda_kernels'] else 'not built'}")
    print(f"  CUDA kernels on the CPU (ehrfast._cuda_host, tests): {'built' if info['cuda_host_kernels'] else 'not built'}")
    print(f"  Triton importable:             {yes[info['triton']]}")
    print(f"  torch:                         {info['torch'] or 'not installed'}")
    print(f"  GPU visible:                   {info['gpu'] or 'none'}")
    print("  backends (choice [set by] -> what runs here):")
    for row in info["backends"]:
        print(f"    {row['component']:<17} {row['choice']:<9} [{row['source']}] -> {row['runs']}")
    return 0


# ---- building a subcommand from a stage's options ------------------------------------------


def _optional(annotation):
    """``X | None`` -> X (else the annotation itself)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _dataclass_type(annotation):
    t = _optional(annotation)
    return t if isinstance(t, type) and is_dataclass(t) else None


def _default(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Adds one argument per field of dataclass ``cls`` (recursing into nested settings, whose
    fields' own defaults apply — a derived default such as ``None`` meaning "computed" stays
    ``None``); ``prefix`` keeps the destinations of nested fields apart."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        meta = f.metadata
        if not meta.get("cli", True) or "help" not in meta:
            continue
        default = _default(f)
        nested = _dataclass_type(hints[f.name])
        if nested is not None:
            _add_arguments(parser, nested, f"{prefix}{f.name}.")
            continue
        dest = prefix + f.name
        kind, nargs = _argument_type(hints[f.name])
        kind = meta.get("parse") or kind
        help_text = meta["help"]
        if kind is bool:
            flag = meta["flag"] or "--" + f.name.replace("_", "-")
            action = "store_false" if meta["negate"] else "store_true"
            parser.add_argument(flag, dest=dest, action=action, default=default, help=_with_default(meta["negate"] or help_text, False))
            continue
        common = dict(type=kind, help=_with_default(help_text, default), metavar=meta["metavar"] or (None if meta["choices"] else f.name.upper()))
        if nargs is not None:
            common["nargs"] = nargs
        if meta["choices"]:
            common["choices"] = meta["choices"]
        if meta["positional"]:
            parser.add_argument(dest, **common)
        else:
            flag = meta["flag"] or "--" + f.name.replace("_", "-")
            required = default is MISSING
            if required:
                common["help"] = f"{help_text} (required)"
            parser.add_argument(flag, dest=dest, required=required, default=None if required else default, **common)


def _argument_type(annotation) -> tuple[type, object]:
    """(argparse type, nargs) of a field annotation: scalars, ``tuple[X, ...]`` (one or more),
    ``tuple[X, X]`` (exactly two) and ``tuple[tuple[X, X], ...]`` (pairs, given flat)."""
    t = _optional(annotation)
    if typing.get_origin(t) in (tuple, list):
        args = typing.get_args(t)
        if len(args) == 2 and args[1] is Ellipsis:
            inner = args[0]
            if typing.get_origin(inner) is tuple:  # pairs
                return typing.get_args(inner)[0], "+"
            return inner, "+"
        return args[0], len(args)
    return t, None


def _with_default(text: str, default) -> str:
    """``text`` with its default spelled out, unless the text already says it (a derived default)."""
    if default is MISSING or "default" in text.lower():
        return text
    if default is None or default == ():
        shown = "none"
    elif default is False:
        shown = "off"
    else:
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{text} (default: {shown})"


def _options(cls: type, args: argparse.Namespace, prefix: str = ""):
    """An instance of dataclass ``cls`` from the parsed arguments (nested settings too)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if not f.metadata.get("cli", True) or "help" not in f.metadata:
            continue
        nested = _dataclass_type(hints[f.name])
        if nested is not None:
            values[f.name] = _options(nested, args, f"{prefix}{f.name}.")
            continue
        value = getattr(args, prefix + f.name)
        if isinstance(value, list):
            _, nargs = _argument_type(hints[f.name])
            inner = typing.get_args(_optional(hints[f.name]))[0]
            if typing.get_origin(inner) is tuple:  # given flat, taken in pairs
                if len(value) % 2:
                    raise InvalidInputError(f"{f.name}: files come in pairs (A B [A B ...]); got {len(value)}")
                value = tuple(zip(value[0::2], value[1::2]))
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def _run_stage(stage: Stage, args: argparse.Namespace) -> int:
    summary = stage.run(_options(stage.options, args))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
        print(summary.describe())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ehrfast.demo import DemoOptions, run_demo

    options = _options(DemoOptions, args)
    run_demo(args.out or Path("ehrfast_ares_demo" if options.ares else "ehrfast_demo"), options)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ehrfast._version import __version__
    from ehrfast.demo.options import DemoOptions
    from ehrfast.registry import STAGES

    parser = argparse.ArgumentParser(prog="ehrfast", description="Generative EHR foundation models with genomics.")
    parser.add_argument("--version", action="version", version=f"ehrfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="show which compiled backends and accelerators are available, and the backend choices")
    p.add_argument("--json", action="store_true", help="print build_info() as JSON (default: off, a table)")
    p.set_defaults(func=_cmd_info)

    for stage in STAGES:
        p = sub.add_parser(stage.name, help=stage.help, description=f"{stage.help}. {stage.description}".strip())
        _add_arguments(p, stage.options)
        p.set_defaults(func=lambda args, stage=stage: _run_stage(stage, args))

    p = sub.add_parser("demo", help="run the pipeline end to end on a fresh synthetic cohort")
    p.add_argument("--out", default=None, type=Path, help="output directory (default: ./ehrfast_demo, with --ares ./ehrfast_ares_demo)")
    _add_arguments(p, DemoOptions)
    p.set_defaults(func=_cmd_demo)
    return parser


def _warning_printer(command: str):
    """``warnings.showwarning`` for command-line users: the message, not the Python source line."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"ehrfast {command}: warning: {message}", file=file or sys.stderr)
    return show


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores the caller's showwarning (main is also called in-process)
            warnings.showwarning = _warning_printer(args.command)
            return args.func(args)
    except (EhrfastError, OSError) as exc:
        from ehrfast import distributed

        distributed.mark_failed()
        print(f"ehrfast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
