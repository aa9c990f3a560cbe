"""ACES task configurations (es-aces) read as ehrfast event tasks.

An ACES config names predicates (codes), a trigger and a tree of windows; the window with
``label`` says what is predicted, the one with ``index_timestamp`` when. ehrfast asks the same
question of sampled futures as an event task: the label predicate is an event, a window that ends
at the next ``Q`` (``start -> Q``) makes ``Q`` a competing event, a window of fixed length gives
the time limit. Codes are matched as ACES matches them: the code alone, case-sensitive
(``code: MEDS_DEATH`` is the exact code, ``code: {regex: ...}`` a search, ``code: {any: [...]}``
exact codes); ``or(...)`` predicates join their parts.

What an event task cannot say is refused with the field named: value ranges and other columns on
predicates, ``and(...)``, windows before the trigger used as the target, a target starting before
the prediction time. Windows' ``has`` constraints select the cohort: they are ACES's job when it
writes the labels (score ACES labels with the mapped task), and ``ehrfast label`` refuses a task
that has them rather than label a different cohort (``cohort_criteria``); they are not applied
to sampled futures either. A target starting ``d`` after the prediction time (after a gap) is
mapped only when a window over the gap forbids the label predicate (``label: (None, 0)``, or an
``or(...)`` holding it), as then, in the cohort, the first label event is the first one in the
target window; a future with an event in the gap counts as not reaching the label.

Public API::

    is_aces_config(mapping) -> bool
    aces_task(mapping, source, name) -> EventTask    # extra["aces"] records what was not mapped
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ehrfast.errors import InvalidInputError
from ehrfast.task.events import TIMELINE_END_CODE, Anchor, Clause, EventTask, Outcome, Validity
from ehrfast.units import DURATION_UNITS, format_duration, parse_duration

ACES_KEYS = ("predicates", "trigger", "windows")
ACES_TOP_LEVEL = {"predicates", "trigger", "windows", "metadata", "description", "patient_demographics", "name"}
SPECIAL_PREDICATES = ("_ANY_EVENT", "_RECORD_START", "_RECORD_END")
UNBOUNDED_TIME_LIMIT = "730d"  # a window that ends at an event has no length; the ETHOS-ARES tasks' limit
_TIMELINE_END = "timeline_end"
# pytimeparse's units, as ACES reads window offsets ("24h", "30 days", "1 day 2 hours", "1 day, 14:20:16")
_UNITS = {"w": "w", "wk": "w", "wks": "w", "week": "w", "weeks": "w", "d": "d", "day": "d", "days": "d",
          "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "m": "min", "min": "min", "mins": "min", "minute": "min",
          "minutes": "min", "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s"}


def is_aces_config(data: Mapping) -> bool:
    """A mapping with ACES's ``predicates``, ``trigger`` and ``windows``."""
    return all(k in data for k in ACES_KEYS)


def parse_aces_timedelta(text: str, where: str) -> int:
    """An ACES window offset (``"24h"``, ``"30 days"``, ``"1 day 2 hours"``, ``"1 day, 14:20:16"``)
    in µs."""
    s = text.strip().lower().replace(",", " ")
    total = 0.0
    clock = re.search(r"(\d+):(\d{2})(?::(\d{2}(?:\.\d+)?))?$", s)
    if clock:
        total += (int(clock.group(1)) * 3600 + int(clock.group(2)) * 60 + float(clock.group(3) or 0)) * DURATION_UNITS["s"]
        s = s[:clock.start()]
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", s)
    if re.sub(r"(\d+(?:\.\d+)?)\s*([a-z]+)", "", s).strip() or (not parts and not clock):
        raise InvalidInputError(f"{where}: cannot read {text!r} as a time offset (e.g. '24h', '30 days', '1 day 2 hours')")
    for number, unit in parts:
        if unit not in _UNITS:
            raise InvalidInputError(f"{where}: unknown time unit {unit!r} in {text!r}; ACES reads {sorted(set(_UNITS))}")
        total += float(number) * DURATION_UNITS[_UNITS[unit]]
    return int(round(total))


@dataclass(frozen=True)
class _Point:
    """A window boundary: ``offset_us`` after the trigger, or the first ``predicate`` after
    ``base`` (``->``), or the record's start or end."""

    offset_us: int | None = None
    predicate: str | None = None
    base: _Point | None = None
    record: str | None = None


class _Windows:
    """Resolves ``W.start`` / ``W.end`` references to points relative to the trigger."""

    def __init__(self, windows: Mapping, source: str):
        self.windows, self.source = windows, source
        self._busy: set[str] = set()

    def point(self, window: str, side: str) -> _Point:
        where = f"{self.source}: windows.{window}.{side}"
        key = f"{window}.{side}"
        if key in self._busy:
            raise InvalidInputError(f"{where}: the window references go round in a circle")
        self._busy.add(key)
        try:
            spec = self.windows[window]
            text = spec.get(side)
            if text is None:
                return _Point(record="start" if side == "start" else "end")
            if not isinstance(text, str):
                raise InvalidInputError(f"{where}: a window boundary is a string, got {text!r}")
            return self._boundary(text, window, where)
        finally:
            self._busy.discard(key)

    def _reference(self, ref: str, window: str, where: str) -> _Point:
        ref = ref.strip()
        if ref == "trigger":
            return _Point(offset_us=0)
        if ref in ("start", "end"):
            return self.point(window, ref)
        name, _, side = ref.partition(".")
        if side not in ("start", "end") or name not in self.windows:
            raise InvalidInputError(f"{where}: {ref!r} is not 'trigger', 'start', 'end' or '<window>.start|end' of a window "
                                    f"({sorted(self.windows)})")
        return self.point(name, side)

    def _boundary(self, text: str, window: str, where: str) -> _Point:
        if "<-" in text:
            raise InvalidInputError(f"{where}: {text!r} looks back for an event ('<-'); a prediction looks forward only")
        if "->" in text:
            ref, predicate = (x.strip() for x in text.split("->", 1))
            return _Point(predicate=predicate, base=self._reference(ref, window, where))
        for sign in ("+", "-"):
            if sign in text:
                ref, offset = (x.strip() for x in text.split(sign, 1))
                base = self._reference(ref, window, where)
                if base.offset_us is None:
                    raise InvalidInputError(f"{where}: {text!r} offsets a boundary that is not a fixed time after the trigger")
                delta = parse_aces_timedelta(offset, where)
                return _Point(offset_us=base.offset_us + (delta if sign == "+" else -delta))
        return self._reference(text, window, where)


def _predicate_regex(predicates: Mapping, name: str, source: str, seen: tuple[str, ...] = ()) -> str:
    """The regex over codes alone that a predicate matches (ACES's semantics)."""
    where = f"{source}: predicates.{name}"
    if name in SPECIAL_PREDICATES:
        raise InvalidInputError(f"{where}: the special predicate {name} has no code to sample; use a code predicate")
    if name not in predicates:
        raise InvalidInputError(f"{source}: predicate {name!r} is not defined; predicates are {sorted(predicates)}")
    if name in seen:
        raise InvalidInputError(f"{where}: refers to itself")
    spec = predicates[name]
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"{where}: a predicate is a mapping (code: ... or expr: ...), got {spec!r}")
    if "expr" in spec:
        operator, parts = _expression(spec["expr"])
        if operator is None:
            raise InvalidInputError(f"{where}: cannot read expr {spec['expr']!r} (or(a, b, ...) or and(a, b, ...))")
        if operator == "and":
            raise InvalidInputError(f"{where}: and(...) (two predicates at the same time) is not an event an event task can sample; "
                                    "only or(...) is mapped")
        return "|".join(f"(?:{_predicate_regex(predicates, p, source, (*seen, name))})" for p in parts)
    unmapped = sorted(k for k, v in spec.items() if k != "code" and v not in (None, {}, False))
    if unmapped:
        raise InvalidInputError(f"{where}: {unmapped} (value ranges, other columns, static) cannot be mapped: an event task's "
                                "events are codes")
    code = spec.get("code")
    if isinstance(code, str) and code:
        return f"^{re.escape(code)}$"
    if isinstance(code, Mapping) and set(code) == {"regex"} and isinstance(code["regex"], str) and code["regex"]:
        return code["regex"]
    if isinstance(code, Mapping) and set(code) == {"any"} and isinstance(code["any"], list) and code["any"]:
        return "^(?:" + "|".join(re.escape(str(c)) for c in code["any"]) + ")$"
    raise InvalidInputError(f"{where}: code must be a string, {{regex: ...}} or {{any: [...]}}, got {code!r}")


def _expression(expr) -> tuple[str | None, list[str]]:
    """A derived predicate's ``or(a, b, ...)`` / ``and(...)`` as (operator, parts); (None, []) if unreadable."""
    match = re.fullmatch(r"(or|and)\((.*)\)", str(expr).strip())
    if match is None:
        return None, []
    return match.group(1), [p.strip() for p in match.group(2).split(",") if p.strip()]


def _window_with(windows: Mapping, key: str, source: str) -> str:
    named = [w for w, spec in windows.items() if isinstance(spec, Mapping) and spec.get(key) is not None]
    if len(named) != 1:
        raise InvalidInputError(f"{source}: exactly one window needs '{key}', found {len(named)} ({named})")
    return named[0]


def aces_task(data: Mapping, source: str, name: str) -> EventTask:
    """The event task an ACES config asks about; ``extra["aces"]`` records the prediction
    time's offset from the trigger (``index_offset_us``) and the cohort criteria not applied."""
    unknown = sorted(set(data) - ACES_TOP_LEVEL)
    if unknown:
        raise InvalidInputError(f"{source}: unknown key(s) {unknown} for an ACES config; it takes {sorted(ACES_TOP_LEVEL)}")
    predicates = {**(data.get("patient_demographics") or {}), **(data["predicates"] or {})}
    windows = data["windows"]
    if not isinstance(windows, Mapping) or not windows:
        raise InvalidInputError(f"{source}: 'windows' must be a non-empty mapping")
    for w, spec in windows.items():
        if not isinstance(spec, Mapping):
            raise InvalidInputError(f"{source}: windows.{w} must be a mapping")
    trigger = data["trigger"]
    if not isinstance(trigger, str):
        raise InvalidInputError(f"{source}: 'trigger' must be a predicate name, got {trigger!r}")
    anchor_regex = _predicate_regex(predicates, trigger, source)
    resolve = _Windows(windows, source)

    label_window = _window_with(windows, "label", source)
    index_window = _window_with(windows, "index_timestamp", source)
    side = windows[index_window]["index_timestamp"]
    if side not in ("start", "end"):
        raise InvalidInputError(f"{source}: windows.{index_window}.index_timestamp must be start or end, got {side!r}")
    index = resolve.point(index_window, side)
    if index.offset_us is None or index.offset_us < 0:
        raise InvalidInputError(f"{source}: the prediction time (windows.{index_window}.{side}) must be a fixed time at or after the "
                                "trigger to be mapped")
    label = windows[label_window]["label"]
    label_regex = _predicate_regex(predicates, label, source)
    start, end = resolve.point(label_window, "start"), resolve.point(label_window, "end")
    where = f"{source}: windows.{label_window}"
    if start.offset_us is None:
        raise InvalidInputError(f"{where}.start: the target window must start at a fixed time after the trigger")
    begin = start.offset_us - index.offset_us
    if begin < 0:
        raise InvalidInputError(f"{where}: the target window starts {format_duration(-begin)} before the prediction time; that is "
                                "not a prediction")
    if begin > 0:
        covering = [w for w, spec in windows.items()
                    if w != label_window and _forbids(spec.get("has") or {}, _containing(predicates, label))
                    and _at_or_before(resolve.point(w, "start"), index.offset_us) and _at_or_after(resolve.point(w, "end"), start.offset_us)]
        if not covering:
            raise InvalidInputError(f"{where}: the target starts {format_duration(begin)} after the prediction time, and no window "
                                    f"over that gap forbids {label!r} ('{label}: (None, 0)'): the first {label} event need not be the "
                                    "first one in the target window")
    # sampled futures start after the context, so start_inclusive (about rows at the index time) does not apply to them
    lo = begin if begin > 0 else None
    events = {label: label_regex}
    if end.predicate is not None:  # start -> Q: Q competes with the label; the window must close
        if end.base != start:
            raise InvalidInputError(f"{where}.end: a '->' end must start from the window's own start")
        if end.predicate != label:
            events[end.predicate] = _predicate_regex(predicates, end.predicate, source)
        events[_TIMELINE_END] = f"^{TIMELINE_END_CODE}$"
        clause = Clause((label,), lo, None)
        valid = Validity((_TIMELINE_END,), exclude_time_limit=True)  # ACES drops a window that never closes
        time_limit_us = parse_duration(UNBOUNDED_TIME_LIMIT)
        if not windows[label_window].get("end_inclusive", True):
            raise InvalidInputError(f"{where}.end_inclusive: false with a '->' end cannot be mapped (a label event at the closing "
                                    "event's time would be cut)")
    elif end.offset_us is not None:
        length = end.offset_us - index.offset_us
        if length <= begin:
            raise InvalidInputError(f"{where}: the target window ends before it starts")
        time_limit_us = length
        hi = length if windows[label_window].get("end_inclusive", True) else length - 1
        clause = Clause((label,), lo, hi)
        valid = Validity()
    else:
        raise InvalidInputError(f"{where}.end: a target window must end at a fixed time or at an event ('start -> predicate')")
    criteria = [f"windows.{w}.has {dict(spec.get('has'))}" for w, spec in windows.items() if spec.get("has")]
    description = str(data.get("description") or (data.get("metadata") or {}).get("description", "") or "")
    return EventTask(name=name, anchor=Anchor(anchor_regex, context="same_time"), events=events,
                     outcomes={name: Outcome(name, (clause,))}, time_limit_us=time_limit_us, valid=valid, label_outcome=name,
                     description=(f"from the ACES config {source}. " + description).strip(),
                     extra={"aces": {"index_offset_us": index.offset_us, "cohort_criteria": criteria, "source": source}})


def _forbids(has: Mapping, names: set[str]) -> bool:
    """``has`` holds ``name: (None, 0)`` (or ``(0, 0)``) for one of ``names``."""
    for name in names:
        parts = [p.strip() for p in str(has.get(name, "")).strip("()").split(",")]
        if len(parts) == 2 and parts[0] in ("None", "", "0") and parts[1] == "0":
            return True
    return False


def _containing(predicates: Mapping, name: str) -> set[str]:
    """``name`` and every or(...) predicate that contains it, directly or through others."""
    out, grew = {name}, True
    while grew:
        grew = False
        for other, spec in predicates.items():
            operator, parts = _expression(spec["expr"]) if isinstance(spec, Mapping) and "expr" in spec else (None, [])
            if operator == "or" and other not in out and set(parts) & out:
                out.add(other)
                grew = True
    return out


def _at_or_before(point: _Point, offset_us: int) -> bool:
    return point.record == "start" or (point.offset_us is not None and point.offset_us <= offset_us)


def _at_or_after(point: _Point, offset_us: int) -> bool:
    return point.record == "end" or (point.offset_us is not None and point.offset_us >= offset_us)


__all__ = ["SPECIAL_PREDICATES", "UNBOUNDED_TIME_LIMIT", "aces_task", "is_aces_config", "parse_aces_timedelta"]
