"""The import contracts cover every module by package, and the source tree is the installed
one: a new module in any folder is importable at once, with no install step between."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import kafkube

ROOT = Path(__file__).parent.parent
PYPROJECT = ROOT / "pyproject.toml"
# The root package holds the entry points (python -m, the console script) and nothing else.
ENTRY_POINTS = {"__main__", "launch"}


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["contracts"])


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
    assert {"kafkube.core", "kafkube.cli", "kafkube.schemas"} <= named


def test_the_root_package_holds_only_the_entry_points() -> None:
    modules = {info.name for info in pkgutil.iter_modules(kafkube.__path__) if not info.ispkg}

    assert modules == ENTRY_POINTS


def test_no_contract_lists_modules_as_what_it_covers() -> None:
    for contract in _contracts():
        sources = contract.get("source_modules", [])
        assert sources in ([], ["kafkube"]), contract["name"]


def test_each_package_of_the_tree_is_its_top_level_folder() -> None:
    for info in pkgutil.iter_modules(kafkube.__path__):
        if info.ispkg:
            assert (ROOT / "kafkube" / info.name).resolve() == ROOT / info.name


def test_a_new_module_is_importable_at_once(tmp_path: Path) -> None:
    name = f"probe_{uuid.uuid4().hex[:8]}"
    module = ROOT / "consumers" / f"{name}.py"
    module.write_text("WHERE = __file__\n", encoding="utf-8")
    try:
        # A process of its own, started elsewhere: it finds kafkube through the install alone.
        found = subprocess.run(
            [sys.executable, "-c", f"import kafkube.consumers.{name} as m; print(m.WHERE)"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        module.unlink()

    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve() == module
