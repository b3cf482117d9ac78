"""Every destination x every format passes the same contract, against the real stores.

A destination stores bytes under a name and finds them again; a format turns a batch into
bytes, the same bytes for the same batch. Together: what is written is found by its name
under the topic's folder and read back byte for byte, a rewrite of the same batch leaves
one object with the same bytes, nothing lands outside the destination's place, and a name
that is not there is a typed miss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Message

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stores import StackStores
from kafkube.consumers.destinations import Destination, MissingObjectError
from kafkube.consumers.destinations import open_destination as opened
from kafkube.consumers.fastpath import FastScan
from kafkube.consumers.formats import FORMATS, Batch, json_line_bytes
from kafkube.consumers.local import local_sink
from kafkube.consumers.naming import object_folder, object_name, objects_from, parse_object_name
from kafkube.consumers.settings import SINK_TYPES
from kafkube.core.errors import SinkError, SinkRefusedError
from kafkube.schemas.codec import Codec
from tests.conftest import unique
from tests.sinking import event_values, s3_env

HOUR = datetime(2026, 11, 28, 9, tzinfo=UTC)
BUCKET = "kafkube-contract"


def _batch(output_format: str, name: str, values: list[bytes], path: str) -> bytes:
    """The events as the runner writes them in this format (the same bytes every time), their
    datums taken by either of the sink's paths: the compiled scan of the consumed messages,
    or the Python one, value by value."""
    codec, output = Codec(), FORMATS[output_format]
    records, lines = [], []
    if path == "compiled":
        messages = [
            Message(topic="t", partition=2, offset=100 + i, value=value, timestamp=(1, 0))
            for i, value in enumerate(values)
        ]
        scan = FastScan(codec, records=output.needs_records, lines=output.lines)
        ((_, _, _, _, datums, *_, rows),) = scan.scan(messages)
        records, lines = ([], rows) if output.lines else (rows or [], [])
    else:
        datums = [codec.split(value)[1] for value in values]
        records = [codec.decode(value) for value in values]
        lines = [json_line_bytes(record) for record in records] if output.lines else []
    return output.write(
        Batch(name, codec.writer, datums, records, output.default_codec, lines=lines)
    )


def _read(output_format: str, data: bytes) -> list[tuple[str, str]]:
    """What an object holds, read back with the format's own reader (fastavro, gzip+JSON)."""
    return [(row["uid"], row["resource_version"]) for row in FORMATS[output_format].read(data)]


@pytest.fixture
def open_destination(
    tmp_path: Path, endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Destination]:
    """Each sink type of the table pointed at the stack, as the demo and the bench wire it."""
    for name, value in s3_env(endpoints).items():  # boto3's standard chain, as a user sets it
        monkeypatch.setenv(name, value)

    def make(kind: str) -> Destination:
        # "s3 boto3": S3 with boto3 putting the objects (behind a proxy), not the CRT.
        kind, _, transfer = kind.partition(" ")
        fields = {"transfer_client": transfer} if transfer else {}
        config = local_sink(
            StackStores(endpoints), kind, bucket=BUCKET, folder=tmp_path / "out",
            prefix="contract", **fields,
        )  # fmt: skip
        destination = opened(config)
        destination.check()
        return destination

    return make


def holds_to_the_contract(destination: Destination, output_format: str, path: str) -> None:
    """What every destination does with every format's bytes, a batch written by one of the
    sink's paths and rewritten by the other."""
    topic = unique("contract")
    name = object_name(
        topic, 2, first=100, last=149, hour=HOUR, extension=FORMATS[output_format].extension
    )
    values = [value for _key, value in event_values(50, seed=41)]
    records = [Codec().decode(value) for value in values]
    occurrences = [(r["uid"], r["resource_version"]) for r in records]
    data = _batch(output_format, name, values, path)

    destination.put(name, data, {"kafkube-topic": topic, "kafkube-records": "50"})
    # The same batch again, as after a crash, by the other path.
    rewritten = _batch(output_format, name, values, "python" if path == "compiled" else "compiled")
    destination.put(name, rewritten, {"kafkube-topic": topic, "kafkube-records": "50"})

    found = list(destination.names(topic))
    assert rewritten == data
    assert found == [name]
    assert parse_object_name(found[0], topic) is not None
    assert destination.get(name) == data
    assert _read(output_format, destination.get(name)) == occurrences
    assert list(destination.names(unique("other"))) == []
    ((stored, at),) = destination.stored(topic)  # when it became durable, by the store's clock
    assert stored == name
    assert abs(at - time.time()) < 300
    with pytest.raises(MissingObjectError):
        destination.get(f"{topic}/never-written.{FORMATS[output_format].extension}")


# Every destination of named objects, with every format it takes. A table (a destination
# that keeps the group's offsets in its commits) has its own tests: it appends, never rewrites.
OBJECT_STORES = [
    (kind, output_format)
    for kind, model in SINK_TYPES.items()
    if not model.keeps_offsets
    for output_format in FORMATS
    if model.formats is None or output_format in model.formats
] + [("s3 boto3", output_format) for output_format in FORMATS]


@pytest.mark.parametrize("path", ["compiled", "python"])
@pytest.mark.parametrize(("kind", "output_format"), OBJECT_STORES)
def test_every_destination_and_format_write_find_and_rewrite_identically(
    open_destination: Callable[[str], Destination], kind: str, output_format: str, path: str
) -> None:
    holds_to_the_contract(open_destination(kind), output_format, path)


@pytest.mark.parametrize("kind", sorted({kind for kind, _ in OBJECT_STORES}))
def test_every_destination_lists_a_partitions_names_in_a_folder_from_an_offset_on(
    open_destination: Callable[[str], Destination], kind: str
) -> None:
    """What a restart after a crash lists: one partition's objects in one folder, from the
    offset its index left open on, in order; not its other folders, not other partitions'."""
    destination, topic = open_destination(kind), unique("narrow")
    names = {
        (partition, first, hour): object_name(
            topic, partition, first=first, last=first + 9, hour=hour, extension="avro"
        )
        for partition in (1, 2, 10)
        for first in (0, 10, 20, 30)
        for hour in (HOUR, HOUR.replace(hour=10))
    }
    for name in names.values():
        destination.put(name, b"x", {})
    folder = object_folder(topic, HOUR)

    found = list(
        destination.names_from(
            f"{folder}/{objects_from(topic, 2)}", f"{folder}/{objects_from(topic, 2, 20)}"
        )
    )

    assert found == [names[2, 20, HOUR], names[2, 30, HOUR]]


@pytest.mark.parametrize("transfer", ["crt", "boto3"])
def test_an_s3_put_the_store_refuses_stops_the_sink_and_one_that_may_pass_is_retried(
    endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transfer: str
) -> None:
    """Through the CRT as through boto3: a signature S3 rejects is for good, no answer is not."""
    for name, value in s3_env(endpoints).items():
        monkeypatch.setenv(name, value)

    def s3(**fields: str) -> Destination:
        return opened(
            local_sink(
                StackStores(endpoints), "s3", bucket=BUCKET, folder=tmp_path,
                transfer_client=transfer, **fields,
            )
        )  # fmt: skip

    away = s3(endpoint_url="http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = s3()

    with pytest.raises(SinkRefusedError, match="SignatureDoesNotMatch") as refused:
        wrong.put("refused.avro", b"x", {})
    with pytest.raises(SinkError) as no_answer:
        away.put("away.avro", b"x", {})
    assert not refused.value.retriable
    assert no_answer.value.retriable
    assert "s3://kafkube-contract/away.avro" in str(no_answer.value)
