"""The chart's sinks are the sink table's: one entry per type, and its `config` is that type's
section of the configuration file, field for field (no service: read from values.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml

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
