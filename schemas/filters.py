"""Which events go on: one filter language for the producer and for each sink group. Pure.

A rule names fields of an event and a glob (or several, any of them) for each; it matches
an event when every field it names matches. A filter passes an event that matches one of
its ``include`` rules (or any event, with none) and none of its ``exclude`` rules::

    include: [{type: Warning}]                         # Warnings only
    exclude: [{namespace: "kube-*"}, {type: Normal, reason: "Pulled|Created"}]

On the command line a rule is ``field=glob[|glob][,field=glob...]``, e.g.
``--exclude 'type=Normal,reason=Pulled|Created'``. Globs are case-sensitive, as Kubernetes
names are; an event without the field (no namespace: a cluster-scoped object) matches
only ``*``... and the empty glob ``""``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from kafkube.core.settings import Section


def _regarding_kind(record: Mapping[str, Any]) -> Any:  # noqa: ANN401 - a record's value
    regarding = record.get("regarding") or {}
    return regarding.get("kind")


def _component(record: Mapping[str, Any]) -> Any:  # noqa: ANN401 - a record's value
    return record.get("reporting_controller") or record.get("source_component")


@dataclass(frozen=True)
class _Field:
    get: Callable[[Mapping[str, Any]], Any]  # its value in a record
    reads: tuple[str, ...]  # the record's top-level fields it looks at


def _top(name: str) -> _Field:
    return _Field(lambda record: record.get(name), (name,))


# The fields a rule may name, and where each is in a record (a sink decodes only those).
FIELDS: dict[str, _Field] = {
    "cluster": _top("cluster"),
    "namespace": _top("namespace"),
    "type": _top("type"),
    "reason": _top("reason"),
    "kind": _Field(_regarding_kind, ("regarding",)),  # the involved object's kind
    # The reporting controller (or, core/v1, the source component).
    "component": _Field(_component, ("reporting_controller", "source_component")),
}


class FilterError(ValueError):
    """A rule that names no field, a field that does not exist, or text that is no rule."""


@dataclass(frozen=True)
class Rule:
    """Each named field, with the globs any of which its value must match."""

    fields: tuple[tuple[str, tuple[str, ...]], ...]

    def __post_init__(self) -> None:
        if not self.fields:
            raise FilterError("a rule names at least one field: " + ", ".join(FIELDS))
        for name, globs in self.fields:
            if name not in FIELDS:
                raise FilterError(f"no field {name!r} to filter on: {', '.join(FIELDS)}")
            if not globs:
                raise FilterError(f"{name}: at least one glob")

    @classmethod
    def of(cls, fields: Mapping[str, str | list[str] | tuple[str, ...]]) -> Rule:
        return cls(
            tuple(
                (name, (value,) if isinstance(value, str) else tuple(value))
                for name, value in fields.items()
            )
        )

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``field=glob[|glob][,field=glob...]``."""
        fields: dict[str, tuple[str, ...]] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, globs = part.partition("=")
            if not sep:
                raise FilterError(f"expected field=glob, got {part!r} in {text!r}")
            fields[name.strip()] = tuple(globs.split("|"))
        return cls(tuple(fields.items()))

    def matches(self, record: Mapping[str, Any]) -> bool:
        for name, globs in self.fields:
            value = FIELDS[name].get(record)
            text = "" if value is None else str(value)
            if not any(fnmatchcase(text, glob) for glob in globs):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(f"{name}={'|'.join(globs)}" for name, globs in self.fields)


@dataclass(frozen=True)
class EventFilter:
    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()

    @property
    def passes_all(self) -> bool:
        return not self.include and not self.exclude

    @property
    def reads(self) -> frozenset[str]:
        """The record's top-level fields its rules look at."""
        return frozenset(
            source
            for rule in (*self.include, *self.exclude)
            for name, _ in rule.fields
            for source in FIELDS[name].reads
        )

    def passes(self, record: Mapping[str, Any]) -> bool:
        if self.include and not any(rule.matches(record) for rule in self.include):
            return False
        return not any(rule.matches(record) for rule in self.exclude)

    def __str__(self) -> str:
        if self.passes_all:
            return "everything"
        parts = []
        if self.include:
            parts.append("include " + " or ".join(f"({rule})" for rule in self.include))
        if self.exclude:
            parts.append("exclude " + " or ".join(f"({rule})" for rule in self.exclude))
        return "; ".join(parts)


PASS_ALL = EventFilter()


def _rule(text: str) -> str:
    try:
        Rule.parse(text)
    except FilterError as err:
        raise ValueError(str(err)) from err
    return text


FilterRule = Annotated[str, AfterValidator(_rule)]


class EventFilterConfig(Section):
    """Which events go on: those that match an include rule (all, with none) and no exclude
    rule. A rule is field=glob[|glob][,field=glob...] over cluster, namespace, type, reason,
    kind (the involved object's) and component (the reporting controller)."""

    include: list[FilterRule] = Field(
        default_factory=list, description="Only events matching one of these rules go on."
    )
    exclude: list[FilterRule] = Field(
        default_factory=list, description="Events matching one of these rules are dropped."
    )

    def event_filter(self) -> EventFilter:
        return EventFilter(
            include=tuple(Rule.parse(text) for text in self.include),
            exclude=tuple(Rule.parse(text) for text in self.exclude),
        )
