"""Tasks: what to label and what to predict.

Two kinds, read from small YAML or JSON files and shared by ``ehrfast label`` and ``ehrfast score``:

* ``Task`` (``incidence.py``) — the genomics paper's incidence task: a target code set, a horizon
  from a prediction time at the record's start.
* ``EventTask`` (``events.py``) — an ETHOS-ARES task: which of several competing events comes first
  after an anchor (an admission, an ED registration, a discharge, an ICU admission), and when.

The ETHOS-ARES catalog ships as package data (``catalog/ares/*.yaml``); ``load_task`` takes a
task object, a file path, or a catalog name (``"hospital_mortality"``).

Public API::

    load_task(task_or_path_or_name) -> Task | EventTask
    catalog_task(name) -> EventTask;  CATALOG: {name: path of its file}
"""

from __future__ import annotations

import os
from pathlib import Path

from ehrfast.errors import InvalidInputError
from ehrfast.task.aces import aces_task, is_aces_config
from ehrfast.task.events import DEATH_REGEX, NO_EVENT, Anchor, Clause, EventTask, Outcome, Validity
from ehrfast.task.files import read_task_mapping
from ehrfast.task.incidence import AGGREGATIONS, Task, TokenVocabulary

CATALOG_DIR = Path(__file__).resolve().parent / "catalog" / "ares"
CATALOG: dict[str, str] = {p.stem: str(p) for p in sorted(CATALOG_DIR.glob("*.yaml"))}
EVENT_TASK_KEYS = ("anchor", "events", "outcomes")  # a file with any of these is an event task


def read_task_file(path: str | os.PathLike) -> Task | EventTask:
    """Reads a task file (``.yaml``/``.yml`` or JSON); its name defaults to the file stem. A
    file with ``anchor``, ``events`` or ``outcomes`` is an event task, an ACES config (``predicates``,
    ``trigger``, ``windows``) is read as the event task it asks about (``aces.py``), anything
    else is an incidence task."""
    data = read_task_mapping(path)
    if is_aces_config(data):
        name = data.pop("name")
        return aces_task(data, str(path), name)
    kind = EventTask if any(k in data for k in EVENT_TASK_KEYS) else Task
    return kind.from_dict(data, source=str(path))


def catalog_task(name: str) -> EventTask:
    """The ETHOS-ARES catalog's task ``name``."""
    if name not in CATALOG:
        raise InvalidInputError(f"no task file {name!r} and no catalog task of that name; the catalog has {', '.join(CATALOG)}")
    task = read_task_file(CATALOG[name])
    assert isinstance(task, EventTask)
    return task


def load_task(task: Task | EventTask | str | os.PathLike) -> Task | EventTask:
    """``task`` itself, the task read from a file path, or the catalog task of that name (a
    bare name, no suffix, that is not an existing file)."""
    if isinstance(task, Task | EventTask):
        return task
    path = Path(task)
    if not path.exists() and path.name == str(task) and not path.suffix:
        return catalog_task(str(task))
    return read_task_file(path)


__all__ = ["AGGREGATIONS", "CATALOG", "DEATH_REGEX", "NO_EVENT", "Anchor", "Clause", "EventTask", "Outcome", "Task", "TokenVocabulary",
           "Validity", "aces_task", "catalog_task", "is_aces_config", "load_task", "read_task_file"]
