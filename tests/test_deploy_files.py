"""The container image recipe and the Grafana dashboard: checked against the code they ship.

The image is built and run in tests/test_image.py, on a local base (no registry is reachable
here); what that build cannot show is checked here as text: the default base pinned to an exact
release, two stages, the non-root user the chart expects, one entry point, every file it copies
present. The dashboard may only chart metrics the producer and sinks export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from kafkube.consumers import metrics as sink_metrics
from kafkube.producer import metrics as producer_metrics

REPO = Path(__file__).resolve().parent.parent


def _exported() -> set[str]:
    sink_metrics.start("file")  # labelled series exist once a sink has started
    names = set()
    for registry in (producer_metrics.REGISTRY, sink_metrics.REGISTRY):
        for family in registry.collect():
            names |= {family.name} | {sample.name for sample in family.samples}
    return names


def test_the_dashboard_charts_only_metrics_that_exist() -> None:
    dashboard = json.loads((REPO / "compose" / "grafana" / "kafkube-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"\b(kafkube_[a-z_]+|process_[a-z_]+)", e)}
    exported = _exported()

    assert len(exprs) >= 15
    assert used - exported == set(), "the dashboard charts metrics nobody exports"
    for family in (
        "kafkube_producer_transaction_aborts_total",
        "kafkube_sink_lag_records",
        "kafkube_sink_write_duration_seconds_bucket",
        "kafkube_producer_relists_total",
    ):
        assert family in used  # fmt: skip


def test_the_dockerfile_builds_in_stages_on_a_pinned_base_and_runs_as_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)$", text, re.MULTILINE)
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE)

    assert len(stages) == 3  # build (wheels), runtime (the pruned virtualenv), the image
    assert set(stages) == {"${PYTHON_IMAGE}"}
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), "pin an exact release"
    assert users == ["10001:10001"]
    assert text.index("USER") > text.rindex("FROM")
    assert 'ENTRYPOINT ["kafkube"]' in text
    for sources in copied:
        for source in sources.split():
            assert (REPO / source).exists(), source
    values = yaml.safe_load((REPO / "deploy" / "helm" / "kafkube" / "values.yaml").read_text())
    port = values["observability"]["port"]
    assert f"KAFKUBE_OBSERVABILITY__LISTEN=0.0.0.0:{port}" in text
    assert f"EXPOSE {port}" in text
    assert values["podSecurityContext"]["runAsUser"] == 10001
