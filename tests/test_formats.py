"""The formats' bytes: JSON Lines are the JSON the standard library writes (compact, UTF-8,
times in ISO 8601 with a Z), whichever encoder writes them."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from typing import Any

from kafkube.consumers.formats import json_line, json_line_bytes, json_lines_gzip
from kafkube.schemas.codec import Codec
from tests.sinking import edge_case_records, event_values


def _standard(record: dict[str, Any]) -> str:
    def plain(value: object) -> str:
        assert isinstance(value, datetime)
        return value.isoformat().replace("+00:00", "Z")

    return json.dumps(record, default=plain, ensure_ascii=False, separators=(",", ":"))


def test_a_json_line_is_the_standard_librarys_json_of_the_record() -> None:
    codec = Codec()
    records = [codec.decode(value) for _, value in event_values(2000, seed=16)]
    records += [codec.decode(codec.encode(r)) for r in edge_case_records(records[0])]

    assert [json_line(r) for r in records] == [_standard(r) for r in records]
    written = json_lines_gzip([json_line_bytes(r) for r in records])
    lines = gzip.decompress(written).decode().splitlines()
    assert lines == [_standard(r) for r in records]
