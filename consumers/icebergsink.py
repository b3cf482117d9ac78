"""The Iceberg destination: a table per topic, each batch one commit (a snapshot), with
pyiceberg, through a catalog (SQL: SQLite or PostgreSQL; or REST), its files in the
warehouse (a folder, S3 or GCS).

Exactly once through the table: every commit carries, in its snapshot's summary, the next
offset of each partition of the topic the group has written (``kafkube.offsets.<group>.
<topic>``, as Iceberg's own Kafka Connect sink keeps them). The runner starts each partition
there, not at Kafka's committed offset (committed after, for lag and tools), so a batch the
table holds is never read again; and a batch whose commit went through though its answer
was lost is found in the summary and not appended twice. A concurrent commit (another
instance of the group, on other partitions) fails ours at the catalog: the table is read
again, the summary merged anew, and the commit tried again (``conflicts`` counts them). Data
files written by a commit that never went through are in no snapshot: not in the table.

The columns are the Parquet format's (``kafkube.consumers.parquet``); a newer writer schema
adds its columns by schema evolution, and older records read them as nulls.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    ServerError,
    ServiceUnavailableError,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import assign_fresh_schema_ids
from pyiceberg.table import Table
from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    YearTransform,
)
from sqlalchemy.exc import OperationalError

from kafkube.consumers.destinations import MissingObjectError
from kafkube.consumers.settings import IcebergSinkConfig, partition_field
from kafkube.core.errors import ConfigError, SinkError

_TRANSFORMS: dict[str, Transform[Any, Any]] = {
    "year": YearTransform(),
    "month": MonthTransform(),
    "day": DayTransform(),
    "hour": HourTransform(),
}
# What a catalog or a warehouse away raises (a database busy or gone, a REST catalog's 5xx,
# a store's connection): the runner waits it out, its partitions paused.
_AWAY = (OSError, OperationalError, ServerError, ServiceUnavailableError)
# pyiceberg tries a failed commit again by itself, with the snapshot as it was made: its
# summary would carry the offsets read before the other commit, and take that commit's
# partitions back. Off: this destination tries again itself, the offsets read anew.
_NO_RETRIES = "commit.retry.num-retries"
_OWN_RETRIES = {_NO_RETRIES: "0"}
# Tries of one commit against concurrent ones before the runner's own back-off takes over.
_COMMIT_TRIES = 10


def offsets_key(group: str, topic: str) -> str:
    """The summary property that holds the group's next offsets of the topic's partitions."""
    return f"kafkube.offsets.{group}.{topic}"


def _offsets(table: Table, key: str) -> dict[int, int]:
    snapshot = table.current_snapshot()
    said = snapshot.summary[key] if snapshot is not None and snapshot.summary else None
    return {int(p): int(o) for p, o in json.loads(said).items()} if said else {}


class IcebergDestination:
    def __init__(self, config: IcebergSinkConfig) -> None:
        self.config = config
        self.warehouse = config.required_place().rstrip("/")
        self.group = config.group_id
        self.description = f"iceberg {config.namespace}.* in {self.warehouse}"
        self.list_requests = 0
        self.conflicts = 0  # commits that met another's and were tried again
        self._catalog: Catalog | None = None
        self._tables: dict[str, Table] = {}

    # --- the catalog and the tables -------------------------------------------------------

    def _properties(self) -> dict[str, str]:
        config = self.config
        local = "://" not in self.warehouse
        warehouse = f"file://{self.warehouse}" if local else self.warehouse
        uri = config.catalog_uri or f"sqlite:///{self.warehouse}/catalog.db"
        properties = {"type": config.catalog, "uri": uri, "warehouse": warehouse}
        if config.s3_endpoint:
            properties["s3.endpoint"] = config.s3_endpoint
        if config.s3_region:  # else pyarrow asks AWS where the bucket is
            properties["s3.region"] = config.s3_region
        if config.gcs_endpoint:
            properties["gcs.service.host"] = config.gcs_endpoint
        return properties

    def catalog(self) -> Catalog:
        if self._catalog is None:
            if "://" not in self.warehouse:
                from pathlib import Path  # noqa: PLC0415 - only a folder warehouse needs it

                Path(self.warehouse).mkdir(parents=True, exist_ok=True)
            try:
                self._catalog = load_catalog(self.config.catalog_name, **self._properties())
            except (OSError, ValueError) as err:
                raise SinkError(f"the catalog does not answer: {err}") from err
        return self._catalog

    def table_name(self, topic: str) -> str:
        return f"{self.config.namespace}.{self.config.table or re.sub(r'[.-]', '_', topic)}"

    def _table(self, topic: str, schema: pa.Schema | None) -> Table | None:
        """The topic's table, made (partitioned as configured) or grown to ``schema``'s
        columns where needed; None if it does not exist and no schema says how to make it."""
        table = self._tables.get(topic)
        if table is None:
            try:
                table = self.catalog().load_table(self.table_name(topic))
            except NoSuchTableError:
                if schema is None:
                    return None
                table = self._create(topic, schema)
            if table.properties.get(_NO_RETRIES) != "0":  # a table made by another tool
                with table.transaction() as change:
                    change.set_properties(_OWN_RETRIES)
            self._tables[topic] = table
        else:
            table.refresh()
        if schema is not None:
            known = {field.name for field in table.schema().fields}
            if any(name not in known for name in schema.names):
                with table.update_schema() as update:
                    update.union_by_name(schema)
        return table

    def _create(self, topic: str, columns: pa.Schema) -> Table:
        """The table, made with its partition spec in the same commit: instances of a group
        that make it at once end with one table, partitioned once."""
        catalog = self.catalog()
        with contextlib.suppress(NamespaceAlreadyExistsError):
            catalog.create_namespace(self.config.namespace)
        schema = assign_fresh_schema_ids(Catalog._convert_schema_if_needed(columns))  # noqa: SLF001 - pyiceberg's own Arrow to Iceberg conversion
        fields = []
        for number, text in enumerate(self.config.partition_by):
            column, transform = partition_field(text)  # the model checked it
            if column not in columns.names:
                raise ConfigError(
                    f"sinks.{self.config.sink_type}.partition_by",
                    f"{text}: the table has no column {column}",
                )
            found = schema.find_field(column)
            kind = _TRANSFORMS[transform] if transform else IdentityTransform()
            name = f"{column}_{transform}" if transform else column
            fields.append(PartitionField(found.field_id, 1000 + number, kind, name))
        return catalog.create_table_if_not_exists(
            self.table_name(topic),
            schema=schema,
            partition_spec=PartitionSpec(*fields),
            properties=_OWN_RETRIES,
        )

    # --- the destination ------------------------------------------------------------------

    def check(self) -> None:
        catalog = self.catalog()
        try:
            catalog.list_namespaces()
        except Exception as err:
            raise SinkError(f"the catalog does not answer: {err}") from err

    def ready(self) -> str | None:
        try:
            self.catalog().list_namespaces()
        except Exception as err:  # noqa: BLE001 - for the probe, any failure is "not ready"
            return f"the Iceberg catalog does not answer: {err}"
        return None

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset of each partition of ``topic`` the table holds, as its newest
        commit says (none before the first)."""
        table = self._table(topic, None)
        return {} if table is None else _offsets(table, offsets_key(self.group, topic))

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        """One batch, appended in one commit with the group's offsets; nothing if the table
        holds it already (or a newer owner of the partition wrote past it)."""
        topic = metadata["kafkube-topic"]
        partition = int(metadata["kafkube-partition"])
        first, last = int(metadata["kafkube-first-offset"]), int(metadata["kafkube-last-offset"])
        rows = pq.read_table(io.BytesIO(data))
        key = offsets_key(self.group, topic)
        for _ in range(_COMMIT_TRIES):
            try:
                table = self._table(topic, rows.schema)
                assert table is not None  # noqa: S101 - made from the rows' schema
                held = _offsets(table, key)
                if held.get(partition, -1) > first:
                    return  # committed before (its answer lost), or by a newer owner
                table.append(
                    rows, snapshot_properties={key: json.dumps(held | {partition: last + 1})}
                )
            except CommitFailedException:  # another commit came first: read it, try again
                self.conflicts += 1
                continue
            except _AWAY as err:  # the catalog or the warehouse does not answer now
                raise SinkError(f"{name}: {err}") from err
            return
        raise SinkError(f"{name}: the table kept changing under {_COMMIT_TRIES} commits")

    def names(self, under: str) -> Iterator[str]:
        return (name for name, _ in self.stored(under))

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        """The data files of the topic's table now, as paths below its location, with the
        time of the snapshot that holds them."""
        if not under:
            return
        table = self._table(under.split("/", 1)[0], None)
        self.list_requests += 1
        if table is None or table.current_snapshot() is None:
            return
        location = table.location().rstrip("/") + "/"
        when = table.current_snapshot().timestamp_ms / 1000  # type: ignore[union-attr]
        for task in table.scan().plan_files():
            yield under.split("/", 1)[0] + "/" + task.file.file_path.removeprefix(location), when

    def get(self, name: str) -> bytes:
        topic, _, path = name.partition("/")
        table = self._table(topic, None)
        if table is None:
            raise MissingObjectError(f"no table for {topic}")
        location = table.location().rstrip("/") + "/" + path
        try:
            with table.io.new_input(location).open() as stream:
                return bytes(stream.read())
        except FileNotFoundError as err:
            raise MissingObjectError(f"no {location}") from err


def open_destination(config: IcebergSinkConfig) -> IcebergDestination:
    """The destination of ``sinks.iceberg``."""
    return IcebergDestination(config)
