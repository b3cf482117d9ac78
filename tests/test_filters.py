"""The filter language the producer and every sink group share (no service)."""

from __future__ import annotations

from typing import Any

import pytest

from kafkube.cli.configuration.loading import Config
from kafkube.schemas.filters import EventFilter, FilterError, Rule


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "cluster": "prod-eu-1", "namespace": "payments", "type": "Warning", "reason": "BackOff",
        "regarding": {"kind": "Pod"}, "reporting_controller": None, "source_component": "kubelet",
        **fields,
    }  # fmt: skip


def test_a_rule_matches_when_every_field_it_names_matches_one_of_its_globs() -> None:
    rule = Rule.parse("namespace=pay*|checkout,type=Warning")

    assert rule.matches(_event())
    assert rule.matches(_event(namespace="checkout"))
    assert not rule.matches(_event(namespace="staging"))
    assert not rule.matches(_event(type="Normal"))
    assert str(rule) == "namespace=pay*|checkout,type=Warning"


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("kind=Pod", "regarding", {"kind": "Pod"}),
        ("component=kubelet", "source_component", "kubelet"),  # core/v1's source
        ("component=default-scheduler", "reporting_controller", "default-scheduler"),
        ("cluster=prod-*", "cluster", "prod-us-2"),
        ("reason=Back*", "reason", "BackOff"),
    ],
)
def test_each_field_is_read_where_the_record_keeps_it(text: str, field: str, value: Any) -> None:
    assert Rule.parse(text).matches(_event(**{field: value}))


def test_a_cluster_scoped_object_has_no_namespace_and_matches_only_the_empty_or_star() -> None:
    event = _event(namespace=None)

    assert Rule.parse("namespace=*").matches(event)
    assert not Rule.parse("namespace=kube-*").matches(event)


def test_include_then_exclude() -> None:
    warnings_but_not_kube = EventFilter(
        include=(Rule.parse("type=Warning"),), exclude=(Rule.parse("namespace=kube-*"),)
    )

    assert warnings_but_not_kube.passes(_event())
    assert not warnings_but_not_kube.passes(_event(type="Normal"))
    assert not warnings_but_not_kube.passes(_event(namespace="kube-system"))
    assert EventFilter().passes(_event(type="Normal"))
    assert EventFilter().passes_all
    assert str(warnings_but_not_kube) == "include (type=Warning); exclude (namespace=kube-*)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names at least one field"),
        ("severity=high", "no field 'severity'"),
        ("type", "expected field=glob"),
    ],
)
def test_a_rule_that_is_no_rule_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Rule.parse(text)


def test_the_configuration_refuses_a_bad_rule_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"sinks\.s3\.filter\.include\.0"):
        Config.model_validate({"sinks": {"s3": {"filter": {"include": ["severity=high"]}}}})
    config = Config.model_validate(
        {"producer": {"filter": {"exclude": ["type=Normal", "namespace=kube-*"]}}}
    )
    assert not config.producer.filter.event_filter().passes(_event(type="Normal"))
