"""Every metric kafkube exports follows Prometheus' naming rules (no service: the registries,
in process): one prefix, base units as suffixes, ``_total`` on counters and only there."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry

from kafkube.consumers import metrics as sink_metrics
from kafkube.producer import metrics as producer_metrics

_NAME = re.compile(r"kafkube_[a-z][a-z0-9_]*[a-z0-9]")
# Words that name a unit in another scale than the base one Prometheus asks for.
_NOT_BASE = ("_milliseconds", "_ms", "_minutes", "_hours", "_kilobytes", "_megabytes", "_mb")


def _families(registry: CollectorRegistry) -> list[tuple[str, str, set[str]]]:
    """Each family's name, type and the names of the series it exposes."""
    return [
        (family.name, family.type, {sample.name for sample in family.samples})
        for family in registry.collect()
        if family.name.startswith("kafkube_")
    ]


@pytest.mark.parametrize("registry", [producer_metrics.REGISTRY, sink_metrics.REGISTRY])
def test_names_follow_prometheus_conventions(registry: CollectorRegistry) -> None:
    families = _families(registry)

    assert families
    for name, kind, series in families:
        assert _NAME.fullmatch(name), name
        assert not name.endswith(_NOT_BASE), f"{name}: base units (seconds, bytes)"
        if kind == "counter":
            assert series <= {f"{name}_total"}, f"{name}: a counter's series ends in _total"
        else:
            assert not any(s.endswith("_total") for s in series), f"{name}: not a counter"
        if "duration" in name or "latency" in name or name.endswith("_seconds"):
            assert name.endswith("_seconds"), f"{name}: a time is in seconds"
        if kind == "histogram":
            assert name.endswith(("_seconds", "_bytes", "_records")), f"{name}: its unit"


@pytest.mark.parametrize(
    ("registry", "component"),
    [(producer_metrics.REGISTRY, "producer"), (sink_metrics.REGISTRY, "sink")],
)
def test_each_component_says_what_runs_in_build_info(
    registry: CollectorRegistry, component: str
) -> None:
    (sample,) = [s for f in registry.collect() if f.name == "kafkube_build_info" for s in f.samples]

    assert sample.value == 1
    assert sample.labels["component"] == component
    assert sample.labels["version"]
    assert re.fullmatch(r"3\.\d+\.\d+", sample.labels["python"])
