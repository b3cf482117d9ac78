"""Rendering the Helm chart with a real helm, as the chart tests and the RBAC test need it."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kafkube.compose.settings import KUBE_VERSION
from tests.conftest import unique

KUBE = KUBE_VERSION.removeprefix("v")
CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "kafkube"


def render_chart(helm: Path, tmp_path: Path, namespace: str, values: dict[str, Any]) -> list[Any]:
    """``helm template`` of the chart with these values: its manifests, parsed."""
    values_file = tmp_path / f"values-{unique('v')}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    rendered = subprocess.run(
        [str(helm), "template", "events", str(CHART), "--namespace", namespace,
         "--kube-version", KUBE, "--values", str(values_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


# The Prometheus Operator's module on the Go module proxy: its CRDs are in it, as released.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"


def monitoring_crds() -> list[Any]:
    """The ServiceMonitor and PodMonitor CRDs as the Prometheus Operator releases them, from
    its module (Go's module cache keeps it: 4 MB, fetched once)."""
    with tempfile.TemporaryDirectory(prefix="kafkube-crds-") as scratch:
        fetched = subprocess.run(
            ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
            cwd=scratch, capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )  # fmt: skip
    module = json.loads(fetched.stdout)
    assert "Error" not in module, module.get("Error")
    folder = Path(module["Dir"]) / "example" / "prometheus-operator-crd"
    return [
        yaml.safe_load((folder / f"monitoring.coreos.com_{plural}.yaml").read_text())
        for plural in ("servicemonitors", "podmonitors")
    ]
