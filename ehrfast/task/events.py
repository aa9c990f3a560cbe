"""Event tasks (ARES.md S2): "which event comes first after an anchor, and when".

A task file names an anchor (the rows predictions are made at: admissions, ED registrations,
discharges, ICU admissions), the competing events (regexes over codes: death, discharge, ICU
admission, …), a time limit, and outcomes — any-of clauses over the first event and its time —
plus the rule for which sampled futures are valid. One sampling run serves every outcome of its
event set: prolonged stay comes from the mortality run, the composite from the ICU run.

    name: hospital_mortality
    anchor: {code_regex: "^HOSPITAL_ADMISSION//", context: same_time}
    events: {death: "^MEDS_DEATH$", discharge: "^HOSPITAL_DISCHARGE//", timeline_end: "^TIMELINE_END$"}
    time_limit: 730d
    outcomes:
      hospital_mortality: {any_of: [{events: [death]}]}
      prolonged_stay: {any_of: [{events: [death, discharge], min_time: 10d}]}
    valid: {exclude_events: [timeline_end], exclude_time_limit: true}

An outcome's indicator is f(first event, its elapsed time since the anchor); "none" stands for
no event before the time limit (or the token cap). ``min_time`` is inclusive (elapsed ≥ it),
``max_time`` too (elapsed ≤ it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ehrfast.errors import InvalidInputError
from ehrfast.task.files import number_as_text_hint
from ehrfast.units import format_duration, parse_duration

NO_EVENT = "none"  # the first "event" of a future that met none before the time limit
CONTEXTS = ("same_time", "anchor")  # or an int: that many tokens after the anchor's first token
ESTIMATORS = ("mc", "path")
HADM_RULES = ("any", "null", "present")
DEATH_REGEX = "^MEDS_DEATH$"
DISCHARGE_REGEX = "^HOSPITAL_DISCHARGE//"
TIMELINE_END_CODE = "TIMELINE_END"


def _compile(pattern: str, where: str) -> re.Pattern:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidInputError(f"{where}: a regex is a non-empty string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInputError(f"{where}: bad regex {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class Clause:
    """One any-of clause: the first event is one of ``events`` (``NO_EVENT`` for none) and its
    elapsed time (µs since the anchor) is within [min_time_us, max_time_us]."""

    events: tuple[str, ...]
    min_time_us: int | None = None
    max_time_us: int | None = None

    def holds(self, event: np.ndarray, elapsed_us: np.ndarray) -> np.ndarray:
        """[n] bool for [n] event names (object/str) and [n] elapsed µs."""
        ok = np.isin(np.asarray(event, dtype=object), list(self.events))
        elapsed = np.asarray(elapsed_us, np.float64)
        if self.min_time_us is not None:
            ok &= elapsed >= self.min_time_us
        if self.max_time_us is not None:
            ok &= elapsed <= self.max_time_us
        return ok

    def to_dict(self) -> dict:
        d: dict = {"events": list(self.events)}
        if self.min_time_us is not None:
            d["min_time"] = format_duration(self.min_time_us)
        if self.max_time_us is not None:
            d["max_time"] = format_duration(self.max_time_us)
        return d


@dataclass(frozen=True)
class Outcome:
    """A named outcome: true when any of its clauses holds."""

    name: str
    any_of: tuple[Clause, ...]

    def indicator(self, event, elapsed_us) -> np.ndarray:
        """[n] bool: f(first event, elapsed µs) for each future or real timeline."""
        event = np.asarray(event, dtype=object)
        out = np.zeros(event.shape, bool)
        for clause in self.any_of:
            out |= clause.holds(event, elapsed_us)
        return out


@dataclass(frozen=True)
class Anchor:
    """Where predictions are made: every row whose code matches ``code_regex``, less the rows the
    filters drop.

    * ``context``: where the context ends — ``same_time`` (the last token at the anchor's time),
      ``anchor`` (the anchor's own tokens), or an int k (k tokens after the anchor's first token,
      the reference's "anchor + 2").
    * ``hadm_id``: ``null`` keeps anchors without an admission id (ED visits that did not admit),
      ``present`` those with one.
    * ``not_preceded_by``: drop an anchor whose previous row (after the death reorder) matches
      (a discharge right after a death does not start a readmission window).
    * ``first_since`` / ``unless_between``: keep only the first anchor row after the latest row
      matching ``first_since`` (e.g. the first ICU discharge of an admission), and only when no row
      matching any ``unless_between`` regex lies between the two (not after a discharge or death).
    """

    code_regex: str
    context: str | int = "same_time"
    hadm_id: str = "any"
    not_preceded_by: str | None = None
    first_since: str | None = None
    unless_between: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d: dict = {"code_regex": self.code_regex, "context": self.context}
        if self.hadm_id != "any":
            d["hadm_id"] = self.hadm_id
        if self.not_preceded_by:
            d["not_preceded_by"] = self.not_preceded_by
        if self.first_since:
            d["first_since"] = self.first_since
        if self.unless_between:
            d["unless_between"] = list(self.unless_between)
        return d


@dataclass(frozen=True)
class Validity:
    """Which sampled futures count (the reference's ``filter_ambiguous``): drop futures whose first
    event is in ``exclude_events`` and, with ``exclude_time_limit``, those that met no event
    before the time limit (or the token cap)."""

    exclude_events: tuple[str, ...] = ()
    exclude_time_limit: bool = False

    def valid(self, event) -> np.ndarray:
        event = np.asarray(event, dtype=object)
        ok = ~np.isin(event, list(self.exclude_events))
        if self.exclude_time_limit:
            ok &= event != NO_EVENT
        return ok


@dataclass(frozen=True)
class EventTask:
    """A first-event task (see the module docstring). ``events`` keeps the file's order: a row
    matching two event regexes is the first of them. ``label_outcome``: the outcome written as
    a label's ``boolean_value`` (default: the outcome named like the task, else the first)."""

    name: str
    anchor: Anchor
    events: Mapping[str, str]
    outcomes: Mapping[str, Outcome]
    time_limit_us: int
    valid: Validity = Validity()
    n_samples: int = 100
    estimator: str = "mc"
    max_new_tokens: int | None = None  # a safety cap; None: from the data (ARES.md S1)
    temperature: float = 1.0
    top_p: float = 1.0
    death_before_discharge: bool = True  # MEDS_DEATH moved before a same-time discharge when rows are read
    age_at: str = "prediction"  # a context's age tokens at the prediction time, or at its window start (the reference)
    label_outcome: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        where = f"task {self.name!r}"
        if not self.events:
            raise InvalidInputError(f"{where}: 'events' names at least one event")
        for name, pattern in self.events.items():
            if name == NO_EVENT:
                raise InvalidInputError(f"{where}: '{NO_EVENT}' is reserved (no event before the time limit); rename that event")
            _compile(pattern, f"{where}: events.{name}")
        if not self.outcomes:
            raise InvalidInputError(f"{where}: 'outcomes' names at least one outcome")
        known = set(self.events) | {NO_EVENT}
        for outcome in self.outcomes.values():
            for clause in outcome.any_of:
                unknown = sorted(set(clause.events) - known)
                if unknown:
                    raise InvalidInputError(f"{where}: outcomes.{outcome.name} names unknown event(s) {unknown}; "
                                            f"the events are {sorted(self.events)} (or '{NO_EVENT}')")
        unknown = sorted(set(self.valid.exclude_events) - set(self.events))
        if unknown:
            raise InvalidInputError(f"{where}: valid.exclude_events names unknown event(s) {unknown}")
        if self.time_limit_us <= 0:
            raise InvalidInputError(f"{where}: time_limit must be a positive duration")
        if self.estimator not in ESTIMATORS:
            raise InvalidInputError(f"{where}: estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        for name in ("n_samples", "max_new_tokens"):
            value = getattr(self, name)
            if value is None and name == "max_new_tokens":
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise InvalidInputError(f"{where}: {name} must be a positive integer, got {value!r}")
        if not 0 < self.top_p <= 1:
            raise InvalidInputError(f"{where}: top_p must be in (0, 1], got {self.top_p}")
        if not 0 < self.temperature < float("inf"):
            raise InvalidInputError(f"{where}: temperature must be a positive finite number, got {self.temperature}")
        a = self.anchor
        _compile(a.code_regex, f"{where}: anchor.code_regex")
        if not (a.context in CONTEXTS or (isinstance(a.context, int) and not isinstance(a.context, bool) and a.context >= 0)):
            raise InvalidInputError(f"{where}: anchor.context must be one of {CONTEXTS} or a token count >= 0, got {a.context!r}")
        if a.hadm_id not in HADM_RULES:
            raise InvalidInputError(f"{where}: anchor.hadm_id must be one of {HADM_RULES}, got {a.hadm_id!r}")
        for key in ("not_preceded_by", "first_since"):
            if getattr(a, key) is not None:
                _compile(getattr(a, key), f"{where}: anchor.{key}")
        for pattern in a.unless_between:
            _compile(pattern, f"{where}: anchor.unless_between")
        if a.unless_between and a.first_since is None:
            raise InvalidInputError(f"{where}: anchor.unless_between needs anchor.first_since")
        if self.age_at not in ("prediction", "window_start"):
            raise InvalidInputError(f"{where}: age_at must be prediction or window_start, got {self.age_at!r}")
        if not self.label_outcome:
            object.__setattr__(self, "label_outcome", self.name if self.name in self.outcomes else next(iter(self.outcomes)))
        elif self.label_outcome not in self.outcomes:
            raise InvalidInputError(f"{where}: label_outcome {self.label_outcome!r} is not one of its outcomes {sorted(self.outcomes)}")

    # ---- matching ------------------------------------------------------------------------

    def event_of_code(self, codes: Sequence[str]) -> np.ndarray:
        """[len(codes)] int: the index of the first event (in ``events`` order) whose regex
        matches each code, −1 for none."""
        out = np.full(len(codes), -1, np.int64)
        for e, pattern in reversed(list(enumerate(self.events.values()))):
            rx = re.compile(pattern)
            hit = np.array([bool(rx.search(c)) for c in codes], bool) if len(codes) else np.zeros(0, bool)
            out[hit] = e
        return out

    def check_events_match(self, codes: Sequence[str], source: str, *, allow_unmatched: Sequence[str] = ()) -> None:
        """Refuses an event regex that matches none of ``codes`` (an unmatched event would be
        silently never predicted): names the event and ``source``. ``allow_unmatched``: events
        that may be absent (a token the data itself never holds, such as TIMELINE_END)."""
        for name, pattern in self.events.items():
            if name in allow_unmatched:
                continue
            rx = re.compile(pattern)
            if not any(rx.search(c) for c in codes):
                raise InvalidInputError(f"task {self.name!r}: event '{name}' (regex {pattern!r}) matches no code of {source}")

    def timeline_end_event(self) -> str | None:
        """The event that stands for the end of the data (its regex matches TIMELINE_END), if any."""
        for name, pattern in self.events.items():
            if re.search(pattern, TIMELINE_END_CODE):
                return name
        return None

    def to_dict(self) -> dict:
        d = {"name": self.name, "anchor": self.anchor.to_dict(), "events": dict(self.events),
             "time_limit": format_duration(self.time_limit_us), "n_samples": self.n_samples, "estimator": self.estimator,
             "outcomes": {k: {"any_of": [c.to_dict() for c in o.any_of]} for k, o in self.outcomes.items()},
             "valid": {"exclude_events": list(self.valid.exclude_events), "exclude_time_limit": self.valid.exclude_time_limit},
             "temperature": self.temperature, "top_p": self.top_p, "order": {"death_before_discharge": self.death_before_discharge},
             "age_at": self.age_at, "label_outcome": self.label_outcome}
        if self.max_new_tokens is not None:
            d["max_new_tokens"] = self.max_new_tokens
        if self.description:
            d["description"] = self.description
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "task") -> EventTask:
        """An event task from a task file's mapping; ``source`` prefixes every error, which names
        the field."""
        d = dict(d)
        allowed = {"name", "description", "anchor", "events", "time_limit", "n_samples", "estimator", "outcomes", "valid",
                   "max_new_tokens", "temperature", "top_p", "order", "age_at", "label_outcome", "extra"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise InvalidInputError(f"{source}: unknown key(s) {unknown}; an event task takes {sorted(allowed)}")
        for key in ("name", "anchor", "events", "time_limit", "outcomes"):
            if key not in d:
                raise InvalidInputError(f"{source}: an event task needs '{key}'")
        try:
            return cls(name=_string(d["name"], "name"), anchor=_anchor(d["anchor"]), events=_events(d["events"]),
                       outcomes=_outcomes(d["outcomes"]), time_limit_us=parse_duration(d["time_limit"], "time_limit"),
                       valid=_validity(d.get("valid", {})), n_samples=_integer(d.get("n_samples", 100), "n_samples"),
                       estimator=_string(d.get("estimator", "mc"), "estimator"),
                       max_new_tokens=None if d.get("max_new_tokens") is None else _integer(d["max_new_tokens"], "max_new_tokens"),
                       temperature=_number(d.get("temperature", 1.0), "temperature"), top_p=_number(d.get("top_p", 1.0), "top_p"),
                       death_before_discharge=_order(d.get("order", {})), age_at=_string(d.get("age_at", "prediction"), "age_at"),
                       label_outcome=_string(d.get("label_outcome", ""), "label_outcome"),
                       description=_string(d.get("description", ""), "description"), extra=_mapping(d.get("extra", {}), "extra"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}: {exc}") from None


# ---- parsing helpers: each names the field it refuses ------------------------------------------


def _string(value, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"'{what}' must be a string, got {value!r}")
    return value


def _integer(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise InvalidInputError(f"'{what}' must be an integer, got {value!r}{number_as_text_hint(value)}")
    return int(value)


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"'{what}' must be a number, got {value!r}{number_as_text_hint(value)}")
    if not np.isfinite(value):
        raise InvalidInputError(f"'{what}' must be a finite number, got {value!r}")
    return float(value)


def _mapping(value, what: str) -> dict:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"'{what}' must be a mapping, got {value!r}")
    return dict(value)


def _strings(value, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
        raise InvalidInputError(f"'{what}' must be a string or a list of strings, got {value!r}")
    return tuple(value)


def _anchor(value) -> Anchor:
    if isinstance(value, str):
        value = {"code_regex": value}
    d = _mapping(value, "anchor")
    allowed = {"code_regex", "context", "hadm_id", "not_preceded_by", "first_since", "unless_between"}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise InvalidInputError(f"anchor: unknown key(s) {unknown}; it takes {sorted(allowed)}")
    if "code_regex" not in d:
        raise InvalidInputError("anchor: needs 'code_regex'")
    return Anchor(code_regex=_string(d["code_regex"], "anchor.code_regex"), context=d.get("context", "same_time"),
                  hadm_id=_string(d.get("hadm_id", "any"), "anchor.hadm_id"),
                  not_preceded_by=None if d.get("not_preceded_by") is None else _string(d["not_preceded_by"], "anchor.not_preceded_by"),
                  first_since=None if d.get("first_since") is None else _string(d["first_since"], "anchor.first_since"),
                  unless_between=_strings(d.get("unless_between", ()), "anchor.unless_between"))


def _events(value) -> dict[str, str]:
    d = _mapping(value, "events")
    for name, pattern in d.items():
        if not isinstance(name, str):
            raise InvalidInputError(f"events: an event's name must be a string, got {name!r}")
        _string(pattern, f"events.{name}")
    return d


def _clause(value, where: str) -> Clause:
    d = _mapping(value, where)
    unknown = sorted(set(d) - {"events", "min_time", "max_time"})
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {unknown}; a clause takes events, min_time, max_time")
    if "events" not in d:
        raise InvalidInputError(f"{where}: a clause needs 'events' (a list of event names, or '{NO_EVENT}')")
    events = _strings(d["events"], f"{where}.events")
    lo = None if d.get("min_time") is None else parse_duration(d["min_time"], f"{where}.min_time")
    hi = None if d.get("max_time") is None else parse_duration(d["max_time"], f"{where}.max_time")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInputError(f"{where}: min_time is after max_time")
    return Clause(events, lo, hi)


def _outcomes(value) -> dict[str, Outcome]:
    d = _mapping(value, "outcomes")
    out = {}
    for name, spec in d.items():
        where = f"outcomes.{name}"
        spec = _mapping(spec, where)
        if set(spec) != {"any_of"}:
            raise InvalidInputError(f"{where}: an outcome is {{any_of: [clause, ...]}}, got keys {sorted(spec)}")
        clauses = spec["any_of"]
        if not isinstance(clauses, list) or not clauses:
            raise InvalidInputError(f"{where}.any_of: a non-empty list of clauses")
        out[name] = Outcome(name, tuple(_clause(c, f"{where}.any_of[{i}]") for i, c in enumerate(clauses)))
    return out


def _validity(value) -> Validity:
    d = _mapping(value, "valid")
    unknown = sorted(set(d) - {"exclude_events", "exclude_time_limit"})
    if unknown:
        raise InvalidInputError(f"valid: unknown key(s) {unknown}; it takes exclude_events, exclude_time_limit")
    flag = d.get("exclude_time_limit", False)
    if not isinstance(flag, bool):
        raise InvalidInputError(f"'valid.exclude_time_limit' must be true or false, got {flag!r}")
    return Validity(_strings(d.get("exclude_events", ()), "valid.exclude_events"), flag)


def _order(value) -> bool:
    d = _mapping(value, "order")
    unknown = sorted(set(d) - {"death_before_discharge"})
    if unknown:
        raise InvalidInputError(f"order: unknown key(s) {unknown}; it takes death_before_discharge")
    flag = d.get("death_before_discharge", True)
    if not isinstance(flag, bool):
        raise InvalidInputError(f"'order.death_before_discharge' must be true or false, got {flag!r}")
    return flag
