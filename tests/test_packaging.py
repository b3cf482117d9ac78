"""Installed, kafkube claims one import name and carries everything its launcher builds from."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kafkube.compose.fetch import WRAPPED_BUILDS
from kafkube.compose.settings import KAFKA_VERSION

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=240,
        # The compiled extensions are optional: with a compiler that fails, the wheel leaves
        # them out. These tests read its names and metadata, not its compiled code (which the
        # install builds, and the fast path's tests run): 10 s, not 40, of the pure tier.
        env={**os.environ, "CC": "false"},
    )
    (built,) = out.glob("kafkube-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_claims_only_the_kafkube_import_name(wheel: zipfile.ZipFile) -> None:
    top_levels = {name.split("/")[0] for name in wheel.namelist()}
    top_level_txt = wheel.read(next(n for n in wheel.namelist() if n.endswith("top_level.txt")))

    assert {t for t in top_levels if not t.endswith(".dist-info")} == {"kafkube"}
    assert top_level_txt.decode().split() == ["kafkube"]
    for generic in ("core", "schemas", "producer", "consumers", "compose", "cli", "tests"):
        assert f"{generic}/__init__.py" not in wheel.namelist()


def test_the_wheel_carries_the_pom_configs_and_pinned_go_modules(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    pom = wheel.read("kafkube/compose/kafka/pom.xml").decode()

    assert {
        "kafkube/compose/docker-compose.yml",
        "kafkube/compose/kafka/server.properties",
        "kafkube/compose/kafka/log4j2.properties",
        "kafkube/compose/kafka/tools-log4j2.properties",
    } <= names
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom
    for build in WRAPPED_BUILDS.values():
        folder = f"kafkube/compose/kube/{build.folder}"
        assert f"{folder}/go.mod" in names, build.binary
        if not build.requires:  # a module of our own (the node's pause), with no dependency
            continue
        assert f"{folder}/go.sum" in names, build.binary
        go_mod = wheel.read(f"{folder}/go.mod").decode()
        pin = rf"^require {re.escape(build.requires)} {build.version}$"
        assert re.search(pin, go_mod, re.MULTILINE), build.binary


def test_the_console_script_answers(tmp_path: Path) -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "kafkube", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"kafkube, version \d+\.\d+\.\d+\n", result.stdout)


def test_the_object_store_clients_are_extras_and_a_sink_without_one_says_which(
    wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [line for line in requires if "extra ==" not in line]

    assert not [line for line in core if "boto3" in line or "google-cloud-storage" in line]
    assert any("boto3" in line and 'extra == "s3"' in line for line in requires)
    assert any("google-cloud-storage" in line and 'extra == "gcs"' in line for line in requires)
    for kind, client in (("s3", "boto3"), ("gcs", "google")):
        # The client made unimportable in this interpreter, as if the extra were not installed.
        absent = (
            f"import sys; sys.modules[{client!r}] = None; sys.argv = ['kafkube', 'sink', "
            f"{kind!r}, '--bucket', 'b', '--bootstrap-servers', '127.0.0.1:1']; "
            "from kafkube.cli import main; main()"
        )
        result = subprocess.run(
            [sys.executable, "-c", absent], capture_output=True, text=True, cwd=tmp_path,
            timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert f"pip install 'kafkube[{kind}]'" in result.stderr, result.stderr
