"""Source ``file``: a recorded watch stream, replayed through the same producer loop.

Reads what ``kubectl get events --watch -o json`` writes (one pretty-printed
Event after another, with or without ``--output-watch-events``, which wraps
each in ``{"type": ..., "object": ...}``), an ``EventList`` from ``kubectl get
events -o json``, and JSON lines as ``kafkube simulate --record`` writes them;
core/v1 or events.k8s.io/v1. Replaying a file twice publishes nothing twice:
the de-duplication state knows each (uid, resourceVersion).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from kafkube.core.errors import SourceError
from kafkube.producer.watching import LineItem, LineReader, Listing, WatchItem

_CHUNK = 1 << 20


def _json_values(path: Path, read_line: LineReader | None) -> Iterator[Any]:
    """Every JSON value in the file, whether one per line or pretty-printed back to back; a
    line ``read_line`` read itself as its item.

    One value a line (what ``kafkube simulate --record`` and a plain watch write) is read
    line by line with orjson; from the first line that is not a whole value on its own, the
    rest is read with the standard decoder, which finds values wherever they end."""
    with path.open("rb") as stream:
        for line in stream:
            if line.isspace():  # a line is never empty; isspace stops at its first character
                continue
            if read_line is not None and (item := read_line(line)) is not None:
                yield item
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield from _values_in(path, _chunks(line.decode(), stream))
                return
            yield value


def _chunks(first: str, stream: BinaryIO) -> Iterator[str]:
    yield first
    decoder = codecs.getincrementaldecoder("utf-8")()
    while chunk := stream.read(_CHUNK):
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _values_in(path: Path, chunks: Iterator[str]) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        position = 0
        while True:
            while position < len(buffer) and buffer[position].isspace():
                position += 1
            try:
                value, position = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                break  # incomplete: read on
            yield value
        buffer = buffer[position:]
    if buffer.strip():
        raise SourceError(f"{path}: the file ends inside a JSON value: {buffer[:80]!r}")


def watch_items(path: Path, read_line: LineReader | None = None) -> Iterator[WatchItem | LineItem]:
    seen: set[str] = set()  # every uid so far
    for value in _json_values(path, read_line):
        if type(value) is LineItem:  # a watch event, read by read_line
            seen.add(value.uid)
            yield value
            continue
        if not isinstance(value, dict):
            raise SourceError(f"{path}: expected JSON objects, found {type(value).__name__}")
        named = value.get("kind")
        if isinstance(named, str) and named.endswith("List"):
            for obj in value.get("items") or []:
                yield _inferred(obj, seen)
        elif "object" in value and "type" in value:  # a watch event: the common line
            obj = value["object"]
            seen.add(_uid(obj))
            yield WatchItem(str(value["type"]), obj)
        else:
            yield _inferred(value, seen)


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def _inferred(obj: dict[str, Any], seen: set[str]) -> WatchItem:
    """An object without its watch type: ADDED the first time its uid shows, else MODIFIED."""
    uid = _uid(obj)
    item = WatchItem("MODIFIED" if uid in seen else "ADDED", obj)
    seen.add(uid)
    return item


class RecordedEvents:
    """The file as a source: nothing to list, one pass of watch items, then done."""

    finite = True

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceError(f"no recorded watch stream at {path}")
        self.path = path

    def pages(self) -> Iterator[Listing]:
        yield Listing(items=[], resource_version="0")

    def watch(
        self,
        resource_version: str,  # noqa: ARG002 - a file has no window
        *,
        timeout_seconds: int,  # noqa: ARG002
        read_line: LineReader | None = None,
    ) -> Iterator[WatchItem | LineItem]:
        return watch_items(self.path, read_line)

    def stop(self) -> None:
        """A file read is not blocked on a network: nothing to interrupt."""
