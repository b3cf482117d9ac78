"""The chart's sinks are the sink table's: one entry per type, and its `config` is that type's
section of the configuration file, field for field (no service: read from values.yaml)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from kafkube.cli.configuration.loading import Config
from kafkube.consumers.settings import SINK_TYPES

VALUES = Path(__file__).parent.parent / "deploy" / "helm" / "kafkube" / "values.yaml"


def test_the_chart_has_one_entry_per_sink_type() -> None:
    sinks = yaml.safe_load(VALUES.read_text(encoding="utf-8"))["sinks"]

    assert set(sinks) == set(SINK_TYPES)


def test_each_sinks_config_names_only_fields_of_its_model() -> None:
    sinks = yaml.safe_load(VALUES.read_text(encoding="utf-8"))["sinks"]

    for sink_type, values in sinks.items():
        fields = set(SINK_TYPES[sink_type].model_fields)
        assert set(values["config"]) <= fields, sink_type
        assert "enabled" not in values["config"], "enabled is the chart's own switch"


# Values the chart repeats from the configuration's defaults (chart path: field path). The
# chart may choose otherwise only where it says so: its logs are JSON, for the collector.
REPEATED = {
    "kafka.topic": "kafka.topic",
    "kafka.security.protocol": "kafka.security.protocol",
    "kafka.security.oidc.extensions": "kafka.security.oidc.extensions",
    "kafka.properties": "kafka.properties",
    "producer.namespaces": "producer.namespaces",
    "producer.apiVersion": "producer.api_version",
    "producer.filter": "producer.filter",
    "producer.enrich.enabled": "producer.enrich.enabled",
    "producer.leaseDurationSeconds": "producer.leader_election.lease_duration_seconds",
    "producer.renewPeriodSeconds": "producer.leader_election.renew_period_seconds",
    "observability.logLevel": "observability.log_level",
}
CHARTS_OWN = {"observability.logFormat": "json"}


def _at(tree: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        tree = tree[part]
    return tree


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in {"filter", "properties"}:
            found |= _leaves(value, f"{path}.")
        else:
            found[path] = value
    return found


def test_every_value_the_chart_repeats_is_the_configurations_default() -> None:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    defaults = Config().model_dump(mode="json")

    for chart, field in REPEATED.items():
        assert _at(values, chart) == _at(defaults, field), chart
    for chart, value in CHARTS_OWN.items():
        assert _at(values, chart) == value != _at(defaults, _snake(chart)), chart
    # A value of a section the model has, under the model's own name, is one of the above.
    sections = {k: values[k] for k in ("kafka", "producer", "observability")}
    for path, value in _leaves(sections).items():
        field = ".".join(_snake(part) for part in path.split("."))
        try:
            default = _at(defaults, field)
        except (KeyError, TypeError):
            continue  # the chart's own (replicas, resources, secrets)
        if value in ("", None) and default in ("", None):
            continue  # unset in both
        assert path in REPEATED or path in CHARTS_OWN, f"{path}: add it to REPEATED"


def test_the_charts_metrics_port_is_the_images() -> None:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    dockerfile = (VALUES.parents[3] / "Dockerfile").read_text(encoding="utf-8")
    listen = re.search(r"KAFKUBE_OBSERVABILITY__LISTEN=[^:\s]+:(\d+)", dockerfile)
    exposed = re.search(r"^EXPOSE (\d+)$", dockerfile, re.MULTILINE)

    assert listen is not None
    assert exposed is not None
    assert values["observability"]["port"] == int(listen[1]) == int(exposed[1])
