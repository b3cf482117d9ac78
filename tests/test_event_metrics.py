"""``kafkube_events_total``: occurrences by cluster, type and reason, with bounded label values
(no service: the producer's exporter and its registry, in process)."""

from __future__ import annotations

import json
from dataclasses import asdict

from kafkube.producer import metrics
from kafkube.producer.running import ProducerStats


def _sample(cluster: str, event_type: str, reason: str) -> float:
    labels = {"cluster": cluster, "type": event_type, "reason": reason}
    return metrics.REGISTRY.get_sample_value("kafkube_events_total", labels) or 0.0


def test_events_are_counted_by_type_and_reason_and_unbounded_reasons_fold_into_other() -> None:
    export = metrics.Exporter("metrics-test")
    stats = ProducerStats()
    stats.by_kind = {"Warning": {"BackOff": 3}, "Normal": {"Pulled": 2}}
    export(stats)
    stats.by_kind["Warning"]["BackOff"] = 5
    export(stats)  # only the growth is added
    stats.by_kind["Warning"] |= {f"Made-up-{i}": 1 for i in range(150)}
    export(stats)
    assert json.loads(json.dumps(asdict(stats)))["by_kind"]["Normal"] == {"Pulled": 2}

    assert _sample("metrics-test", "Warning", "BackOff") == 5
    assert _sample("metrics-test", "Normal", "Pulled") == 2
    cap = metrics.LABEL_CAPS["reason"]
    kept = sum(_sample("metrics-test", "Warning", f"Made-up-{i}") for i in range(150))
    assert kept == cap - 2  # BackOff and Pulled took two of the reasons
    assert _sample("metrics-test", "Warning", "other") == 150 - (cap - 2)
    series = {
        sample.labels["reason"]
        for family in metrics.REGISTRY.collect()
        if family.name == "kafkube_events"
        for sample in family.samples
        if sample.labels.get("cluster") == "metrics-test"
    }
    assert len(series) == cap + 1  # the cap, and "other"


def test_a_missing_type_or_reason_is_none() -> None:
    label = metrics.BoundedLabel(2)

    assert [label(v) for v in ("", "a", "b", "c", "a")] == ["none", "a", "other", "other", "a"]
