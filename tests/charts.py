"""Rendering the Helm chart with a real helm, as the chart tests and the RBAC test need it."""

from __future__ import annotations

import subprocess
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
