"""Reading a task file: one mapping of settings in YAML (``.yaml``/``.yml``) or JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from ehrfast.errors import InputNotFoundError, InvalidInputError
from ehrfast.inputs import read_text


def number_as_text_hint(value) -> str:
    """For a value that should be a number: when it is text that reads as one, why (YAML 1.1,
    which PyYAML follows, reads ``1e-3`` — no dot — as a string, and quotes always make one)."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    if any(c in value.lower() for c in "e") and "." not in value.lower().split("e")[0]:
        return f" — YAML reads {value} as text; write it with a dot ({value.lower().replace('e', '.0e', 1)}) or as a decimal"
    return " — it is quoted, so YAML reads it as text; drop the quotes"


def read_task_mapping(path: str | os.PathLike) -> dict:
    """The file's mapping, with ``name`` defaulting to the file stem."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such task file")
    text = read_text(path, what="task file")
    is_yaml = path.suffix in (".yaml", ".yml")
    try:
        data = yaml.safe_load(text) if is_yaml else json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise InvalidInputError(f"{path}: not valid YAML ({where}{getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: a task file holds one mapping of task settings")
    data.setdefault("name", path.stem)
    return data
