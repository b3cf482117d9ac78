"""The import contracts cover every module: the layers are packages, so a new file in one is
checked at once; the root package's own modules (the core) are named, so this makes sure a
new one is named too."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import kafkube

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["contracts"])


def test_every_core_module_is_held_below_the_packages() -> None:
    core = {
        f"kafkube.{info.name}"
        for info in pkgutil.iter_modules(kafkube.__path__)
        # The entry points (python -m, the console script) start the command: they load the CLI.
        if not info.ispkg and info.name not in {"__main__", "launch"}
    }
    (contract,) = [c for c in _contracts() if str(c["name"]).startswith("The core")]

    assert core == set(contract["source_modules"])  # type: ignore[arg-type]
    named = {m.removeprefix("kafkube.") for m in core}
    assert {"admin", "errors", "login", "registry", "serving"} <= named


def test_the_layers_name_every_package_and_no_module() -> None:
    packages = {
        f"kafkube.{info.name}" for info in pkgutil.iter_modules(kafkube.__path__) if info.ispkg
    }
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    named = {
        module.strip()
        for layer in layers["layers"]  # type: ignore[attr-defined]
        for module in layer.replace(":", "|").split("|")
    }

    assert named == packages
