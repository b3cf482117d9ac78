"""Kafka security: the producer, a sink and the CLI through a native broker that takes only
TLS with SCRAM-SHA-512 or PLAIN, or mutual TLS; a wrong password refused clearly; no secret
in any log or in ``status``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kafkube.compose import fetch
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from tests.conftest import unique
from tests.processes import KafkubeProcess, run_kafkube
from tests.secured_kafka import USER, SecuredKafka, make_certificates
from tests.sinking import read_avro_dir

pytestmark = pytest.mark.timeout(600)

PASSWORD = "pw-" + "7Hq2x9Vb" + "-never-logged"


@pytest.fixture(scope="module")
def secured(
    native_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredKafka]:
    folder = tmp_path_factory.mktemp("secured-kafka")
    broker = SecuredKafka(
        folder=folder,
        libs=fetch.kafka_libs(native_stack.settings),
        password=PASSWORD,
        certificates=make_certificates(folder / "tls"),
    )
    broker.start()
    yield broker
    broker.stop()


def _config(path: Path, bootstrap: str, security: dict[str, str]) -> Path:
    path.write_text(
        yaml.safe_dump({"kafka": {"bootstrap_servers": bootstrap, "security": security}})
    )
    return path


def _scram_config(secured: SecuredKafka, folder: Path) -> Path:
    """The password is not in the file: it comes from KAFKUBE_KAFKA__SECURITY__PASSWORD."""
    return _config(
        folder / "scram.yaml",
        secured.sasl_bootstrap,
        {
            "protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": USER,
            "ca_file": str(secured.certificates.ca),
        },
    )


def _env(config: Path, password: str = PASSWORD, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKUBE_CONFIG": str(config),
        "KAFKUBE_KAFKA__SECURITY__PASSWORD": password,
        **more,
    }


@dataclass
class _Process(KafkubeProcess):
    log: Path
    process: subprocess.Popen[bytes] | None = None


def _recording(folder: Path, count: int) -> Path:
    path = folder / "watch.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "kafkube", "simulate", "--record", str(path), "--count", str(count)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


def test_producer_sink_and_cli_work_through_tls_with_scram_plain_and_mtls(
    secured: SecuredKafka, tmp_path: Path
) -> None:
    topic, group = unique("secure"), unique("sink-secure")
    scram = _scram_config(secured, tmp_path)
    recording = _recording(tmp_path, 300)

    produced = run_kafkube(
        "-v", "produce", "--cluster", "secure", "--source", "file", "--file", str(recording),
        "--topic", topic, "--partitions", "2", "--transactional-id", unique("tx"),
        env=_env(scram),
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    published = json.loads(produced.stderr.strip().splitlines()[-1])["stopped"]["published"]
    assert published > 0

    # The sink logs in with PLAIN on the same TLS listener (the mechanism from the environment).
    sink = _Process(log=tmp_path / "sink.log")
    sink.launch(
        "-v", "sink", "file", "--dir", str(tmp_path / "out"), "--topic", topic, "--group", group,
        "--max-age-seconds", "0.5",
        env={
            "KAFKUBE_CONFIG": str(scram), "KAFKUBE_KAFKA__SECURITY__PASSWORD": PASSWORD,
            "KAFKUBE_KAFKA__SECURITY__SASL_MECHANISM": "PLAIN",
        },
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(read_avro_dir(tmp_path / "out")) < published:
        assert sink.alive(), sink.log.read_text()
        assert time.monotonic() < deadline, sink.log.read_text()
        time.sleep(0.5)
    assert sink.terminate() == 0

    # The CLI over mutual TLS: a client certificate instead of a password.
    mtls = _config(
        tmp_path / "mtls.yaml",
        secured.mtls_bootstrap,
        {
            "protocol": "SSL",
            "ca_file": str(secured.certificates.ca),
            "cert_file": str(secured.certificates.client_cert),
            "key_file": str(secured.certificates.client_key),
        },
    )
    mtls_env = {**os.environ, "KAFKUBE_CONFIG": str(mtls)}
    status = run_kafkube("status", "--topic", topic, env=mtls_env)
    status_json = run_kafkube("status", "--topic", topic, "--json", env=mtls_env)
    scram_status = run_kafkube("status", "--topic", topic, "--json", env=_env(scram))
    checked = run_kafkube("config", "check", str(scram), env=_env(scram))

    assert status.returncode == 0, status.stderr
    groups = {g["group"]: g for g in json.loads(status_json.stdout)["groups"]}
    assert sum(p["lag"] for p in groups[group]["partitions"]) == 0
    assert json.loads(scram_status.stdout)["groups"] == json.loads(status_json.stdout)["groups"]
    assert checked.returncode == 0
    everything = [
        produced.stdout, produced.stderr, sink.log.read_text(), status.stdout, status.stderr,
        status_json.stdout, scram_status.stdout, scram_status.stderr, checked.stdout,
        checked.stderr,
    ]  # fmt: skip
    assert not [text for text in everything if PASSWORD in text], "a secret reached the output"
    assert "**********" in checked.stdout


def test_a_wrong_password_is_refused_with_a_clear_error_and_never_printed(
    secured: SecuredKafka, tmp_path: Path
) -> None:
    wrong = "not-the-" + "password-42"
    scram = _scram_config(secured, tmp_path)
    recording = _recording(tmp_path, 10)

    began = time.monotonic()
    produced = run_kafkube(
        "produce", "--cluster", "secure", "--source", "file", "--file", str(recording),
        "--topic", unique("refused"), env=_env(scram, password=wrong), timeout=120,
    )  # fmt: skip
    produce_seconds = time.monotonic() - began
    sink = run_kafkube(
        "sink", "file", "--dir", str(tmp_path / "out"), "--topic", unique("refused"),
        env=_env(scram, password=wrong), timeout=120,
    )  # fmt: skip
    status = run_kafkube("status", env=_env(scram, password=wrong), timeout=120)

    for result in (produced, sink, status):
        assert result.returncode == 1, result.stderr
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith("kafkube: Kafka refused the login"), result.stderr
        assert f"SASL_SSL SCRAM-SHA-512 as {USER!r}" in message
        assert "kafka.security" in message  # where to fix it
        assert wrong not in result.stdout + result.stderr
    assert produce_seconds < 60


def test_a_password_changed_mid_run_ends_producer_and_sink_with_the_clear_error(
    secured: SecuredKafka, endpoints: Endpoints, namespace: str, tmp_path: Path
) -> None:
    """The password rotated on the broker, which restarts: every connection logs in again
    and is refused. Both processes say so and exit within 60 s; meanwhile, with the broker
    down, the sink's /readyz names Kafka. Runs last: it changes the module broker's password
    (and sets it back)."""
    topic, group = unique("rotated"), unique("sink-rotated")
    scram = _scram_config(secured, tmp_path)
    listen = {"KAFKUBE_OBSERVABILITY__LISTEN": "127.0.0.1:0"}
    producer = _Process(log=tmp_path / "producer.log")
    producer.launch(
        "produce", "--cluster", "rotated", "--kubeconfig", endpoints.kubeconfig,
        "--namespace", namespace, "--topic", topic, "--partitions", "1",
        "--transactional-id", unique("tx"), "--bootstrap-servers", secured.sasl_bootstrap,
        env=_env(scram),
    )  # fmt: skip
    _wait_in_log(producer, "watching from resourceVersion")
    sink = _Process(log=tmp_path / "sink.log")
    sink.launch(
        "sink", "file", "--dir", str(tmp_path / "out"), "--topic", topic, "--group", group,
        "--bootstrap-servers", secured.sasl_bootstrap, env=_env(scram, **listen),
    )  # fmt: skip
    _wait_in_log(sink, "assigned partition")
    ready = f"{_wait_in_log(sink, 'serving /metrics').split(' on ')[-1].strip()}/readyz"
    _until_status(ready, 200)

    rotated = "pw-rotated-" + "Zk4mQ8"
    secured.change_password(rotated)
    try:
        secured.stop()
        down = _until_status(ready, 503)
        secured.launch()
        codes = [process.process.wait(60) for process in (producer, sink) if process.process]
    finally:
        secured.change_password(PASSWORD)

    assert "kafka" in down, down
    assert "does not answer" in down, down
    for process, code in zip((producer, sink), codes, strict=True):
        text = process.log.read_text()
        assert code == 1, text[-3000:]
        last = text.strip().splitlines()[-1]
        assert last.startswith("kafkube: Kafka refused the login"), text[-3000:]
        assert "kafka.security" in last
        assert PASSWORD not in text


def _wait_in_log(process: _Process, text: str, timeout: float = 60) -> str:
    """The first log line holding ``text``, once there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in process.log.read_text().splitlines() if text in line]
        if lines:
            return lines[0]
        assert process.alive(), process.log.read_text()[-3000:]
        assert time.monotonic() < deadline, process.log.read_text()[-3000:]
        time.sleep(0.1)


def _status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def _until_status(url: str, wanted: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        code, body = _status(url)
        if code == wanted:
            return body
        assert time.monotonic() < deadline, (code, body)
        time.sleep(0.5)
