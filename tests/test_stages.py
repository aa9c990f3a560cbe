"""The stage registry: each command, its options dataclass and its public function agree, every
option documents itself, and every stage refuses to write over any of its declared inputs."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

import pytest

from ehrfast import registry
from ehrfast.cli import build_parser
from ehrfast.demo.options import DemoOptions
from ehrfast.errors import OutputOverlapsInputError


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.name)
def test_options_are_the_functions_parameters(stage):
    """Same names, same order, same defaults: the command and the API cannot drift apart."""
    params = inspect.signature(stage.callable()).parameters
    assert list(params) == [f.name for f in fields(stage.options)]
    for f in fields(stage.options):
        default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else MISSING)
        expected = params[f.name].default
        if expected is inspect.Parameter.empty:
            assert default is MISSING, f"{stage.name}.{f.name}: the function requires it, the options give a default"
        elif is_dataclass(default):
            assert expected is None, f"{stage.name}.{f.name}: a settings object defaults to None (= its own defaults)"
        else:
            assert default == expected, f"{stage.name}.{f.name}: {default!r} in the options, {expected!r} in the function"


def _documented(cls, where):
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        assert f.metadata.get("help"), f"{where}.{f.name} has no help text"
        assert f.metadata.get("role") in ("setting", "input", "output_file", "output_dir"), f"{where}.{f.name}"
        t = hints[f.name]
        nested = [a for a in (t, *typing.get_args(t)) if isinstance(a, type) and is_dataclass(a)]
        if nested and f.metadata["role"] == "setting" and f.metadata.get("parse") is None:
            _documented(nested[0], f"{where}.{f.name}")


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.name)
def test_every_option_has_a_help_text_and_a_role(stage):
    _documented(stage.options, stage.name)


def test_every_command_is_built_from_its_stage():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"info", "demo", *(s.name for s in registry.STAGES)}
    _documented(DemoOptions, "demo")
    for stage in registry.STAGES:
        text = commands[stage.name].format_help()
        assert "--quiet" in text or "progress" not in {f.name for f in fields(stage.options)}


def _example(stage, root: Path = Path("/tmp/ehrfast-example")):
    """Options with a distinct path for every required path field."""
    hints = typing.get_type_hints(stage.options)
    values = {}
    for f in fields(stage.options):
        if f.default is not MISSING or f.default_factory is not MISSING:
            continue
        t = hints[f.name]
        if typing.get_origin(t) is tuple:
            inner = typing.get_args(t)[0]
            values[f.name] = ((root / f"{f.name}_a", root / f"{f.name}_b"),) if typing.get_origin(inner) is tuple else (root / f.name,)
        else:
            values[f.name] = root / f.name
    return stage.options(**values)


@pytest.mark.parametrize("stage", registry.STAGES, ids=lambda s: s.name)
def test_every_stage_refuses_an_output_over_each_declared_input(stage, tmp_path):
    """Generic over the registry: for each input a stage declares, an output placed on it (or
    around it) is refused before any work — whatever the stage."""
    options = _example(stage, tmp_path)
    outputs = [f for f in fields(stage.options) if f.metadata.get("role") in ("output_file", "output_dir")]
    inputs = stage.paths(options, "input")
    if not inputs or not outputs:
        pytest.skip(f"{stage.name} has no {'inputs' if not inputs else 'outputs'}")
    for path in inputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        for out in outputs:
            for target in (path, path.parent):  # on the input, and a directory holding it
                changed = _with(options, out.name, target)
                with pytest.raises(OutputOverlapsInputError):
                    stage.run(changed)


def _with(options, name, value):
    import dataclasses

    return dataclasses.replace(options, **{name: value})


def test_help_imports_no_torch():
    code = "import sys; from ehrfast.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
