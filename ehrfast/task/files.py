"""Reading a task file: one mapping of settings in YAML (``.yaml``/``.yml``) or JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from ehrfast.errors import InputNotFoundError, InvalidInputError


def read_task_mapping(path: str | os.PathLike) -> dict:
    """The file's mapping, with ``name`` defaulting to the file stem."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such task file")
    text = path.read_text()
    is_yaml = path.suffix in (".yaml", ".yml")
    try:
        data = yaml.safe_load(text) if is_yaml else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"{path}: not valid {'YAML' if is_yaml else 'JSON'} ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: a task file holds one mapping of task settings")
    data.setdefault("name", path.stem)
    return data
