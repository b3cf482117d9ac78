"""Registry mode against a real Apicurio Registry (its Confluent-compatible API) and Kafka:
the topic as every Kafka tool reads it, both framings on one topic, P9 with a registry."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from fastavro.schema import fingerprint, to_parsing_canonical_form

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.processes import running_pid
from kafkube.compose.settings import StackSettings
from kafkube.compose.stack import Stack
from kafkube.core.registry import SchemaRegistry
from kafkube.schemas.codec import Codec, latest_version, released_versions
from kafkube.schemas.topics import dlq_topic
from tests.conftest import CACHE_DIR, unique
from tests.processes import KafkubeProcess, run_kafkube
from tests.producing import EventWriter, new_producer, read_messages, wait_for_occurrences
from tests.sinking import (
    SinkProcess,
    create_topic,
    event_values,
    produce,
    read_avro_dir,
    read_gcs,
    read_jsonl_dir,
    read_s3,
    registered_codec,
    s3_env,
    wait_for_count,
)

pytestmark = pytest.mark.timeout(600)


def _fingerprint(schema: str | dict[str, Any]) -> str:
    parsed = fastavro.parse_schema(
        json.loads(schema) if isinstance(schema, str) else schema, _write_hint=False
    )
    return str(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def _latest(registry: str, subject: str) -> dict[str, Any]:
    url = f"{registry}/subjects/{subject}/versions/latest"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the stack's registry
        found: dict[str, Any] = json.load(response)
    return found


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """Registry clients opened by a test, closed after it (their connections)."""
    with contextlib.ExitStack() as stack:
        yield stack


def test_every_record_reads_with_the_standard_avro_deserializer_as_with_ours(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path,
    closing: contextlib.ExitStack,
) -> None:  # fmt: skip
    registry = endpoints.schema_registry_url
    producer = new_producer(endpoints, namespace, tmp_path, "--schema-registry-url", registry)
    writer = EventWriter(kube_api, namespace)
    producer.start()
    for i in range(20):
        writer.repeat(writer.create(f"pod-{i}.registry"))
    wait_for_occurrences(
        endpoints.kafka_bootstrap, producer.topic, writer.occurrences, registry=registry
    )
    assert producer.terminate() == 0

    client = closing.enter_context(SchemaRegistryClient({"url": registry}))
    standard = AvroDeserializer(client)  # the standard client, nothing of ours
    ours = Codec(lookup=closing.enter_context(SchemaRegistry({"url": registry})).schema)
    messages = read_messages(endpoints.kafka_bootstrap, producer.topic)
    context = SerializationContext(producer.topic, MessageField.VALUE)
    read = [standard(m.value(), context) for m in messages]
    assert len(read) == len(writer.occurrences) == 40
    assert read == [ours.decode(m.value()) for m in messages]  # field for field
    assert {(r["uid"], r["resource_version"]) for r in read} == writer.occurrences
    latest = _latest(registry, f"{producer.topic}-value")
    assert _fingerprint(latest["schema"]) == latest_version().fingerprint_hex
    assert {m.value()[1:5] for m in messages} == {latest["id"].to_bytes(4, "big")}


def test_both_framings_and_both_versions_on_one_topic_reach_every_sink_exactly_once(
    endpoints: Endpoints, s3_client: Any, s3_bucket: str, gcs_client: Any, gcs_bucket: str,
    tmp_path: Path, closing: contextlib.ExitStack,
) -> None:  # fmt: skip
    registry = endpoints.schema_registry_url
    bootstrap, topic = endpoints.kafka_bootstrap, unique("framings")
    create_topic(bootstrap, topic, 3)
    v1, v2 = released_versions()[1], released_versions()[2]
    ids = closing.enter_context(SchemaRegistry({"url": registry}))
    # v1 first, then v2 (an added optional field): the registry's BACKWARD rule lets it in.
    v1_id = ids.register(f"{topic}-value", v1.schema_json)
    v2_id = ids.register(f"{topic}-value", v2.schema_json)
    codecs = {
        "single-object v1": Codec(writer=v1),
        "single-object v2": Codec(writer=v2),
        "registry v1": Codec(writer=v1, writer_id=v1_id),
        "registry v2": Codec(writer=v2, writer_id=v2_id),
    }
    sent: set[tuple[str, str]] = set()
    for seed, (name, codec) in enumerate(codecs.items(), start=1):
        values = event_values(100, seed=seed * 7, codec=codec)
        sent |= produce(bootstrap, topic, values, Codec(lookup=ids.schema))
        assert len(sent) == seed * 100, name
    known = Codec(lookup=ids.schema)
    unknown = Codec(writer=v2, writer_id=v2_id + 1000).encode(known.decode(values[0][1]))
    produce(bootstrap, topic, [(b"unknown-id", unknown)], Codec(lookup=ids.schema))

    with_registry = [
        "--schema-registry-url", registry, "--max-records", "60", "--max-age-seconds", "0.5",
        "--unknown-schema-id-grace-seconds", "1",  # the unknown id below: asked again 1 s
    ]  # fmt: skip
    sinks = {
        "file avro": SinkProcess(
            bootstrap=bootstrap, topic=topic, directory=tmp_path / "avro",
            log=tmp_path / "avro.log", group=unique("sink-file"), extra=with_registry,
        ),
        "file jsonl": SinkProcess(
            bootstrap=bootstrap, topic=topic, directory=tmp_path / "jsonl",
            log=tmp_path / "jsonl.log", group=unique("sink-file"),
            extra=[*with_registry, "--format", "jsonl"],
        ),
        "s3": SinkProcess(
            bootstrap=bootstrap, topic=topic, directory=tmp_path, log=tmp_path / "s3.log",
            group=unique("sink-s3"), kind="s3", target=["--bucket", s3_bucket],
            env=s3_env(endpoints), extra=with_registry,
        ),
        "gcs": SinkProcess(
            bootstrap=bootstrap, topic=topic, directory=tmp_path, log=tmp_path / "gcs.log",
            group=unique("sink-gcs"), kind="gcs", target=["--bucket", gcs_bucket],
            env={"STORAGE_EMULATOR_HOST": endpoints.gcs_endpoint}, extra=with_registry,
        ),
    }  # fmt: skip
    for sink in sinks.values():
        sink.start()
    found = {
        "file avro": wait_for_count(read_avro_dir, tmp_path / "avro", 400),
        "file jsonl": wait_for_count(read_jsonl_dir, tmp_path / "jsonl", 400),
        "s3": wait_for_count(lambda _: read_s3(s3_client, s3_bucket), tmp_path, 400),
        "gcs": wait_for_count(lambda _: read_gcs(gcs_client, gcs_bucket), tmp_path, 400),
    }
    dead = _wait_for_dead_letters(bootstrap, dlq_topic(topic), len(sinks))
    codes = [sink.terminate() for sink in sinks.values()]

    for name, records in found.items():  # read with plain fastavro (jsonl: gzip -dc)
        assert Counter(records) == Counter(dict.fromkeys(sent, 1)), name
    assert codes == [0, 0, 0, 0]
    assert len(dead) == len(sinks)  # one dead letter from each sink's group
    headers = dict(dead[0].headers() or [])
    assert headers["error.class"] == b"UnknownSchemaIdError"
    assert f"schema id {v2_id + 1000} is unknown".encode() in headers["error.message"]
    assert {m.value() for m in dead} == {unknown}
    # A reader on v1 and one on v2 both read every registry-framed record of either version.
    client = closing.enter_context(SchemaRegistryClient({"url": registry}))
    context = SerializationContext(topic, MessageField.VALUE)
    known_ids = {v1_id.to_bytes(4, "big"), v2_id.to_bytes(4, "big")}
    framed = [m.value() for m in read_messages(bootstrap, topic) if m.value()[1:5] in known_ids]
    for reader in (v1, v2):
        deserialize = AvroDeserializer(client, reader.schema_json)
        assert len([deserialize(value, context) for value in framed]) == 200


def _wait_for_dead_letters(bootstrap: str, topic: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 60
    while True:
        found = read_messages(bootstrap, topic)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[Stack]:
    """A registry of this test's own, stopped mid-test without touching the session's."""
    stack = Stack(
        StackSettings(
            cache_dir=CACHE_DIR, state_dir=tmp_path / "registry", prefer_default_ports=False
        )
    )
    try:
        stack.up(["registry"])
        yield stack
    finally:
        stack.down()  # also when it did not come up: nothing left running


def test_the_registry_stopped_mid_run_changes_nothing_for_producer_or_sink(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path, private_registry: Stack
) -> None:
    registry = private_registry.endpoints().schema_registry_url
    producer = new_producer(endpoints, namespace, tmp_path, "--schema-registry-url", registry)
    writer = EventWriter(kube_api, namespace)
    producer.start()
    sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=producer.topic, directory=tmp_path / "out",
        log=tmp_path / "sink.log", group=unique("sink-file"),
        extra=["--schema-registry-url", registry, "--max-records", "10",
               "--max-age-seconds", "0.3"],
    )  # fmt: skip
    for i in range(10):
        writer.create(f"pod-{i}.before")
    sink.start()
    wait_for_count(read_avro_dir, sink.directory, 10)

    assert private_registry.down(["registry"]) == ["registry"]
    for i in range(10):
        writer.create(f"pod-{i}.after")
    found = wait_for_count(read_avro_dir, sink.directory, 20)
    codes = producer.terminate(), sink.terminate()

    assert Counter(found) == Counter(dict.fromkeys(writer.occurrences, 1))
    assert codes == (0, 0), producer.log.read_text()[-2000:] + sink.log.read_text()[-2000:]


def test_an_incompatible_schema_is_refused_at_start_with_the_registrys_verdict(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    registry, topic = endpoints.schema_registry_url, unique("incompatible")
    older = {  # an earlier, different record under the same subject: uid was a number
        "type": "record", "name": "KubernetesEvent", "namespace": "io.kafkube.v1",
        "fields": [{"name": "uid", "type": "long"}],
    }  # fmt: skip
    with SchemaRegistry({"url": registry}) as earlier:
        earlier.register(f"{topic}-value", json.dumps(older))
    recording = tmp_path / "events.jsonl"
    assert run_kafkube("simulate", "--record", str(recording), "--count", "5").returncode == 0

    refused = run_kafkube(
        "produce", "--cluster", "c", "--source", "file", "--file", str(recording),
        "--bootstrap-servers", endpoints.kafka_bootstrap, "--topic", topic,
        "--schema-registry-url", registry,
    )  # fmt: skip

    assert refused.returncode != 0
    assert f"incompatible with subject {topic}-value" in refused.stderr
    assert "Incompatible artifact" in refused.stderr  # Apicurio's own words
    assert read_messages(endpoints.kafka_bootstrap, topic) == []  # nothing published


@pytest.mark.parametrize("command", ["produce", "sink"])
def test_a_registry_unreachable_at_start_is_waited_for_said_once_and_never_a_crash(
    endpoints: Endpoints, tmp_path: Path, command: str
) -> None:
    nowhere = "http://127.0.0.1:9/apis/ccompat/v7"
    recording = tmp_path / "events.jsonl"
    recording.write_text("")
    argv = {
        "produce": ["produce", "--cluster", "c", "--source", "file", "--file", str(recording)],
        "sink": ["sink", "file", "--dir", str(tmp_path / "out")],
    }[command]
    topic = unique("unreachable")
    create_topic(endpoints.kafka_bootstrap, topic, 1)
    waiting = KafkubeProcess()
    waiting.log = tmp_path / f"{command}.log"
    waiting.launch(
        *argv, "--bootstrap-server", endpoints.kafka_bootstrap, "--topic", topic,
        "--schema-registry-url", nowhere,
    )  # fmt: skip

    said = f"the schema registry at {nowhere} does not answer"
    waiting.wait_for(said)
    time.sleep(5)  # the instant under test: still waiting, and quiet, five seconds on
    alive = waiting.alive()
    code = waiting.terminate()
    log = waiting.log.read_text()

    assert alive
    assert code == 0
    assert log.count(said) == 1  # retried with a backoff, said once
    assert "Traceback" not in log


def _file_sink(endpoints: Endpoints, topic: str, registry: str, tmp_path: Path) -> SinkProcess:
    return SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path / "out",
        log=tmp_path / "sink.log", group=unique("sink-file"),
        extra=["--schema-registry-url", registry, "--max-age-seconds", "0.3"],
    )  # fmt: skip


def _schema_with_a_new_id(registry: str) -> tuple[str, int]:
    """The latest writer schema with a doc of its own (new content for the registry, the same
    schema for kafkube: a doc is not part of an Avro schema's canonical form), and the id
    the registry will give it: the one after the id of a throwaway schema registered now."""
    writer = json.loads(latest_version().schema_json)
    with SchemaRegistry({"url": registry}) as client:
        throwaway = client.register(unique("throwaway"), json.dumps({**writer, "doc": unique("t")}))
    return json.dumps({**writer, "doc": unique("doc")}), throwaway + 1


def test_a_new_schema_id_answered_404_first_and_registered_within_the_grace_is_not_dead_lettered(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    registry, topic = endpoints.schema_registry_url, unique("grace")
    create_topic(endpoints.kafka_bootstrap, topic, 1)
    schema, next_id = _schema_with_a_new_id(registry)
    codec = Codec(writer=latest_version(), writer_id=next_id)
    sent = produce(endpoints.kafka_bootstrap, topic, event_values(50, seed=51, codec=codec), codec)
    sink = _file_sink(endpoints, topic, registry, tmp_path)
    sink.start()
    sink.wait_for(f"does not know schema id {next_id}")

    with SchemaRegistry({"url": registry}) as client:  # a registry replica catching up
        registered = client.register(f"{topic}-value", schema)
    found = wait_for_count(read_avro_dir, sink.directory, 50)
    code = sink.terminate()

    assert registered == next_id
    assert Counter(found) == Counter(dict.fromkeys(sent, 1))
    assert read_messages(endpoints.kafka_bootstrap, dlq_topic(topic)) == []
    assert code == 0


def test_the_registry_frozen_when_a_new_id_arrives_the_sink_waits_then_writes(
    endpoints: Endpoints, tmp_path: Path, private_registry: Stack
) -> None:
    registry, topic = private_registry.endpoints().schema_registry_url, unique("frozen")
    create_topic(endpoints.kafka_bootstrap, topic, 1)
    codec = registered_codec(registry, topic)
    sink = _file_sink(endpoints, topic, registry, tmp_path)
    sink.start()
    sink.wait_running()
    pid = running_pid(private_registry.settings.state_dir, "registry")
    assert pid is not None

    os.killpg(pid, signal.SIGSTOP)  # connections open, nothing answered
    try:
        values = event_values(30, seed=52, codec=codec)
        sent = produce(endpoints.kafka_bootstrap, topic, values, codec)  # read back by its id
        sink.wait_for("unavailable", timeout=120)
    finally:
        os.killpg(pid, signal.SIGCONT)
    found = wait_for_count(read_avro_dir, sink.directory, 30)
    code = sink.terminate()

    assert Counter(found) == Counter(dict.fromkeys(sent, 1))
    assert read_messages(endpoints.kafka_bootstrap, dlq_topic(topic)) == []
    assert code == 0


def test_a_standard_client_reads_a_single_object_topic_never(
    endpoints: Endpoints, closing: contextlib.ExitStack
) -> None:
    """The registry-less framing is kafkube's alone: the standard deserializer refuses it."""
    topic = unique("plain")
    create_topic(endpoints.kafka_bootstrap, topic, 1)
    produce(endpoints.kafka_bootstrap, topic, event_values(1))
    (message,) = read_messages(endpoints.kafka_bootstrap, topic)
    client = SchemaRegistryClient({"url": endpoints.schema_registry_url})
    standard = AvroDeserializer(closing.enter_context(client))

    with pytest.raises(SerializationError, match="Invalid magic byte"):
        standard(message.value(), SerializationContext(topic, MessageField.VALUE))
    assert io.BytesIO(message.value()).read(2) == b"\xc3\x01"


def test_no_secret_of_the_registry_url_or_of_kafka_properties_reaches_any_output(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    """P17 with the real services: a registry URL holding a user and password, and Kafka
    properties whose names say they are secrets; config check, a producer and a sink run, and
    none of their outputs (logs, errors, exit counts, /metrics) holds a secret."""
    registry = endpoints.schema_registry_url.replace("http://", "http://reg-user:Url-pw-17@")
    topic = unique("secrets")
    secrets = ("Url-pw-17", "Keystore-pw-17", "Oauth-secret-17")
    config = tmp_path / "kafkube.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": endpoints.kafka_bootstrap,
                    "topic": topic,
                    "schema_registry": {"url": registry},
                    "properties": {
                        "ssl.keystore.password": "Keystore-pw-17",
                        "sasl.oauthbearer.assertion.private.key.passphrase": "Oauth-secret-17",
                    },
                },
                "observability": {"listen": "127.0.0.1:0"},
            }
        )
    )
    recording = tmp_path / "events.jsonl"
    assert run_kafkube("simulate", "--record", str(recording), "--count", "20").returncode == 0
    env = {**os.environ, "KAFKUBE_CONFIG": str(config)}

    checked = run_kafkube("config", "check", str(config), env=env)
    produced = run_kafkube(
        "produce", "--cluster", "c", "--source", "file", "--file", str(recording), env=env
    )
    sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path / "out",
        log=tmp_path / "sink.log", group=unique("sink-file"), env={"KAFKUBE_CONFIG": str(config)},
        extra=["--max-age-seconds", "0.3"],
    )  # fmt: skip
    sink.start()
    found = wait_for_count(read_avro_dir, sink.directory, 20)
    served = re.search(r"on (http://[\d.]+:\d+)", sink.log.read_text())
    assert served is not None
    with urllib.request.urlopen(f"{served.group(1)}/metrics", timeout=10) as answer:  # noqa: S310
        metrics = answer.read().decode()
    code = sink.terminate()

    assert checked.returncode == produced.returncode == code == 0, produced.stderr
    assert len(found) == 20  # the registry took the user and password from the URL's place
    outputs = [
        checked.stdout, checked.stderr, produced.stdout, produced.stderr,
        sink.log.read_text(), metrics,
    ]  # fmt: skip
    for output in outputs:
        for secret in secrets:
            assert secret not in output
