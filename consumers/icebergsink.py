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
import copy
import io
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    RESTError,
    ServerError,
    ServiceUnavailableError,
)
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    LessThanOrEqual,
    Reference,
)
from pyiceberg.expressions.literals import literal
from pyiceberg.expressions.visitors import bind
from pyiceberg.io import load_file_io
from pyiceberg.io.pyarrow import (  # pyiceberg's own copy-on-write pieces, for one snapshot
    ArrowScan,
    _check_pyarrow_schema_compatible,
    _dataframe_to_data_files,
    _expression_to_complementary_pyarrow,
)
from pyiceberg.manifest import DataFile, ManifestContent
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import assign_fresh_schema_ids
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    YearTransform,
)
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

from kafkube.consumers.destinations import MissingObjectError, chosen
from kafkube.consumers.parquet import OFFSET_COLUMN, PARTITION_COLUMN
from kafkube.consumers.settings import EMBEDDED_CATALOG, IcebergSinkConfig, partition_field
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
# An emulator's placeholder token never expires (pyarrow wants a time with a token).
_NEVER_MS = 4_102_444_800_000  # 2100-01-01
# What a catalog says when it is set up wrong (not away): the sink stops, naming the setting.
_REFUSED = (ValueError, ArgumentError, RESTError)
# What a SQL catalog's database says when two make its tables at once (a row or a type there
# already): the one that loses finds them made.
_MADE_AT_ONCE = (IntegrityError, ProgrammingError)
# A name looked up in the warehouse at start: is the store there, and are its settings sound.
_PROBE = ".kafkube-probe"
# pyiceberg tries a failed commit again by itself, with the snapshot as it was made: its
# summary would carry the offsets read before the other commit, and take that commit's
# partitions back. Off: this destination tries again itself, the offsets read anew.
_NO_RETRIES = "commit.retry.num-retries"
_OWN_RETRIES = {_NO_RETRIES: "0"}
# Tries of one commit against concurrent ones before the runner's own back-off takes over.
_COMMIT_TRIES = 10
# How long a commit waits at most for the batches on their way to join it (they are made
# at once, each in a few milliseconds: only a stalled writer makes it wait this long).
_GATHER_SECONDS = 0.5


def offsets_key(group: str, topic: str) -> str:
    """The summary property that holds the group's next offsets of the topic's partitions."""
    return f"kafkube.offsets.{group}.{topic}"


def rewrites_key(group: str, topic: str) -> str:
    """The summary property that holds, for each partition a replay moved back, the offset up
    to which the table's rows are those written before it."""
    return f"kafkube.rewrite.{group}.{topic}"


@dataclass(frozen=True)
class Held:
    """What the table says of a group on a topic, from the newest snapshot that says it (a
    maintenance commit by another tool may say nothing)."""

    offsets: dict[int, int]  # the next offset of each partition the table holds
    rewrites: dict[int, int]  # a replay's: the old rows of a partition end before this offset

    def summary(self, group: str, topic: str) -> dict[str, str]:
        """The snapshot properties that say it again."""
        said = {offsets_key(group, topic): json.dumps(self.offsets)}
        if self.rewrites:
            said[rewrites_key(group, topic)] = json.dumps(self.rewrites)
        return said


def held(table: Table, group: str, topic: str) -> Held:
    """The group's offsets and rewrites as the table's newest snapshot with them says."""
    key, rewrites = offsets_key(group, topic), rewrites_key(group, topic)
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        summary = snapshot.summary
        said = summary[key] if summary is not None else None
        if said:
            moved = summary[rewrites] if summary is not None else None
            return Held(_partitions(said), _partitions(moved) if moved else {})
    return Held({}, {})


def _partitions(said: str) -> dict[int, int]:
    return {int(p): int(o) for p, o in json.loads(said).items()}


def paced(tries: int) -> Iterator[int]:
    """The tries of a commit, each after the first a short random pause later (longer each
    time), so that commits that meet let one another pass rather than meet again."""
    for tried in range(tries):
        if tried:
            time.sleep(random.uniform(0.01, 0.05) * tried)  # noqa: S311 - a jitter
        yield tried


class _Transaction(Transaction):
    """pyiceberg's transaction, its metadata worked out once a state. pyiceberg 0.12 replays
    the staged updates at each read of ``table_metadata`` and deep-copies the whole metadata
    (every snapshot, the schema), and one append reads it 14 times: a commit's cost grew with
    the table's history, 0.15 s at the first and 0.8 s by the fortieth here, most of it in
    ``copy.deepcopy`` (apache/iceberg-python#2673; the cache of #3784 is in no release). The
    copy made is kept until the table's metadata or the staged updates change, and with none
    staged the table's own is read: the models are frozen, so readers share one as they
    would a copy."""

    _kept: tuple[TableMetadata, tuple[Any, ...], TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates, kept = self._table.metadata, self._updates, self._kept
        if not updates:  # nothing staged yet: the table's own
            return base
        if kept is None or kept[0] is not base or kept[1] is not updates:
            kept = self._kept = (base, updates, super().table_metadata)
        return kept[2]


_CHECKED: set[tuple[str, int, int, pa.Schema]] = set()  # the pairs found to fit


def _check_columns(metadata: TableMetadata, columns: pa.Schema) -> None:
    """ValueError unless rows of ``columns`` fit the table's schema; a pair found to fit once
    is not converted again (a table's schema of one id never changes, and the conversion
    took a sixth of a commit: every batch of a writer schema has the same columns)."""
    key = (str(metadata.table_uuid), metadata.current_schema_id, metadata.format_version, columns)
    if key not in _CHECKED:
        _check_pyarrow_schema_compatible(
            metadata.schema(), columns, format_version=metadata.format_version
        )
        if len(_CHECKED) > 64:  # a table or two, each of a schema or two: never many
            _CHECKED.clear()
        _CHECKED.add(key)


def transaction(table: Table) -> Transaction:
    """A transaction on ``table``, as ``table.transaction()``, its metadata read cheaply."""
    return _Transaction(table)


def data_files(table: Table) -> Iterator[DataFile]:
    """The data files of the table's current snapshot."""
    return (task.file for task in table.scan().plan_files())


def _rows_of(partition: int, first: int, last: int) -> BooleanExpression:
    """The table's rows of ``partition`` from offset ``first`` to ``last``."""
    return And(
        EqualTo(term=Reference(PARTITION_COLUMN), value=literal(partition)),
        GreaterThanOrEqual(term=Reference(OFFSET_COLUMN), value=literal(first)),
        LessThanOrEqual(term=Reference(OFFSET_COLUMN), value=literal(last)),
    )


def _overwrite(
    table: Table, rows: pa.Table, where: BooleanExpression, summary: dict[str, str]
) -> None:
    """``rows`` in place of the table's rows ``where`` says, in one snapshot (pyiceberg's own
    overwrite makes a delete snapshot, then an append: a time-travelling reader could land
    between them and miss rows). A data file holding rows ``where`` says is rewritten without
    them, as Iceberg's copy-on-write does."""
    counter = itertools.count()
    with transaction(table) as change:
        metadata = change.table_metadata
        schema = metadata.schema()
        _check_columns(metadata, rows.schema)
        keep = _expression_to_complementary_pyarrow(
            bind(schema, where, case_sensitive=True), schema
        )
        with change.update_snapshot(snapshot_properties=summary).overwrite() as snapshot:
            for task in table.scan(row_filter=where).plan_files():
                held = ArrowScan(metadata, table.io, schema, AlwaysTrue()).to_table([task])
                kept = held.filter(keep)
                if len(kept) == len(held):
                    continue  # its statistics overlap the range, its rows do not
                snapshot.delete_data_file(task.file)
                for part in written_files(metadata, kept, table, snapshot.commit_uuid, counter):
                    snapshot.append_data_file(part)
            for part in written_files(metadata, rows, table, snapshot.commit_uuid, counter):
                snapshot.append_data_file(part)


def written_files(
    metadata: TableMetadata,
    rows: pa.Table,
    table: Table,
    commit: uuid.UUID,
    counter: itertools.count[int],
) -> Iterable[DataFile]:
    """The data files ``rows`` become, written to the table's store and partitioned as it is,
    for a snapshot of commit ``commit`` to add (none for no row)."""
    if len(rows) == 0:
        return ()
    return _dataframe_to_data_files(metadata, rows, table.io, commit, counter)


def _append(
    table: Table,
    fresh: list[_Waiting],
    summary: dict[str, str],
    written: dict[tuple[Any, ...], list[DataFile]],
) -> None:
    """The batches' rows added in one snapshot. Their data files are written at the first
    try and added again by each try after a conflict, as long as the same batches go and
    the table's partitioning and columns are as they were: only the metadata's commit is
    tried again. (Writing the rows again at each try lost every race to a writer that
    commits more often than the rows took to write.)"""
    metadata = table.metadata
    key = (tuple(w.name for w in fresh), metadata.default_spec_id, metadata.current_schema_id)
    files = written.get(key)
    if files is None:
        rows = pa.concat_tables([waiting.rows for waiting in fresh])
        _check_columns(metadata, rows.schema)
        files = list(written_files(metadata, rows, table, uuid.uuid4(), itertools.count()))
        written[key] = files
    with (
        transaction(table) as change,
        change.update_snapshot(snapshot_properties=summary).fast_append() as snapshot,
    ):
        for data_file in files:
            snapshot.append_data_file(data_file)


_DONE = object()  # a waiting batch's outcome: in the table


@dataclass(eq=False)
class _Waiting:
    """A batch put, waiting for a commit (``outcome``: None until one took it, then
    ``_DONE`` or what that commit raised)."""

    name: str
    topic: str
    partition: int
    first: int
    last: int
    rows: pa.Table
    outcome: object = None


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
        # The runner's writer threads put at once: one commits at a time, for all waiting,
        # once those on their way (``coming``) are among them.
        self._commit_lock = threading.Lock()
        self._waiting_lock = threading.Lock()
        self._arrived = threading.Condition(self._waiting_lock)
        self._waiting: list[_Waiting] = []
        self._coming: Counter[str] = Counter()

    # --- the catalog and the tables -------------------------------------------------------

    @property
    def _folder(self) -> bool:
        """Whether the warehouse is a folder here (a REST catalog's may be its name)."""
        return self.config.catalog == "sql" and "://" not in self.warehouse

    def _properties(self) -> dict[str, str]:
        config = self.config
        warehouse = f"file://{self.warehouse}" if self._folder else self.warehouse
        uri = config.catalog_uri or f"sqlite:///{self.warehouse}/{EMBEDDED_CATALOG}"
        properties = {"type": config.catalog, "uri": uri, "warehouse": warehouse}
        if config.s3_endpoint:
            properties["s3.endpoint"] = config.s3_endpoint
        if config.s3_region:  # else pyarrow asks AWS where the bucket is
            properties["s3.region"] = config.s3_region
        if config.gcs_endpoint:  # an emulator: any token passes, and none is looked for
            properties["gcs.service.host"] = config.gcs_endpoint
            properties["gcs.oauth2.token"] = "emulator"
            properties["gcs.oauth2.token-expires-at"] = str(_NEVER_MS)
        return properties

    def catalog(self) -> Catalog:
        if self._catalog is None:
            if self._folder:
                from pathlib import Path  # noqa: PLC0415 - only a folder warehouse needs it

                Path(self.warehouse).mkdir(parents=True, exist_ok=True)
            try:
                try:
                    self._catalog = load_catalog(self.config.catalog_name, **self._properties())
                except _MADE_AT_ONCE:  # by another instance at this moment: there now
                    self._catalog = load_catalog(self.config.catalog_name, **self._properties())
            except _AWAY as err:  # its database or server away: waited out
                raise SinkError(f"the catalog does not answer: {err}") from err
            except (*_REFUSED, ProgrammingError) as err:  # no such database, no login, no right
                raise ConfigError(f"{self._field}.catalog_uri", f"{err}") from err
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
                with transaction(table) as change:
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
        # Made before, or by another instance at this moment (a SQL catalog's insert meets it).
        with contextlib.suppress(NamespaceAlreadyExistsError, IntegrityError):
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

    @property
    def _field(self) -> str:
        return f"sinks.{self.config.sink_type}"

    def check(self) -> None:
        """The catalog answers, and so does the warehouse's store (a REST catalog's warehouse
        may name the catalog's, not a place): what is away is waited out, what is wrong
        refused naming the setting."""
        catalog = self.catalog()
        try:
            catalog.list_namespaces()
        except _AWAY as err:
            raise SinkError(f"the catalog does not answer: {err}") from err
        except _REFUSED as err:
            raise ConfigError(f"{self._field}.catalog_uri", f"the catalog refused: {err}") from err
        if self.config.catalog == "rest" and "://" not in self.warehouse:
            return  # the catalog's warehouse by name: where it is, the catalog knows
        properties = self._properties()
        place = properties["warehouse"]
        try:
            load_file_io(properties, place).new_input(f"{place}/{_PROBE}").exists()
        except ValueError as err:  # the store's settings themselves
            raise ConfigError(f"{self._field}.warehouse", f"{place}: {err}") from err
        except OSError as err:
            raise SinkError(f"the warehouse {place} does not answer: {err}") from err

    def ready(self) -> str | None:
        try:
            self.catalog().list_namespaces()
        except Exception as err:  # noqa: BLE001 - for the probe, any failure is "not ready"
            return f"the Iceberg catalog does not answer: {err}"
        return None

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset of each partition of ``topic`` the table holds, as its newest
        commit says (none before the first)."""
        with self._commit_lock:
            table = self._table(topic, None)
            return {} if table is None else held(table, self.group, topic).offsets

    @contextlib.contextmanager
    def coming(self, topic: str) -> Iterator[None]:
        with self._arrived:
            self._coming[topic] += 1
        try:
            yield
        finally:
            with self._arrived:
                self._coming[topic] -= 1
                self._arrived.notify_all()

    def _gather(self, topic: str) -> None:
        """Wait (a moment at most) until every batch of ``topic`` on its way is waiting."""
        with self._arrived:
            self._arrived.wait_for(
                lambda: sum(w.topic == topic for w in self._waiting) >= self._coming[topic],
                timeout=_GATHER_SECONDS,
            )

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        """One batch, appended with the group's offsets; nothing if the table holds it
        already (or a newer owner of the partition wrote past it). In a range a replay moved
        back, the commit also takes out the rows the batch stands for: those of its
        partition from the table's offset to its last.

        Batches put at once (the runner's writer threads, each partition's one at a time)
        go in one commit: the first to reach the table waits for those still being made
        (``coming``), commits every batch of the topic waiting then, and the others find
        theirs done. A snapshot a tick, not one a
        partition's batch: a commit (manifest, manifest list, metadata) costs far more than
        the rows it adds."""
        mine = _Waiting(
            name,
            metadata["kafkube-topic"],
            int(metadata["kafkube-partition"]),
            int(metadata["kafkube-first-offset"]),
            int(metadata["kafkube-last-offset"]),
            pq.read_table(io.BytesIO(data)),
        )
        with self._arrived:
            self._waiting.append(mine)
            self._arrived.notify_all()
        with self._commit_lock:
            if mine.outcome is None:
                self._gather(mine.topic)
                with self._waiting_lock:
                    group = [w for w in self._waiting if w.topic == mine.topic]
                    group = [w for w in group if w.rows.schema == mine.rows.schema]
                    self._waiting = [w for w in self._waiting if w not in group]
                try:
                    self._commit(group)
                except Exception as err:
                    for waiting in group:
                        waiting.outcome = err
                    raise
                for waiting in group:
                    waiting.outcome = _DONE
        if isinstance(mine.outcome, Exception):  # failed in another's commit: fails alike
            raise copy.copy(mine.outcome)

    def _commit(self, group: list[_Waiting]) -> None:
        """Batches of one topic in one commit (a replay's rewrite, or a partition's second
        batch, each alone, in order)."""
        topic = group[0].topic
        written: dict[tuple[Any, ...], list[DataFile]] = {}  # an append's files, for its tries
        for _ in paced(_COMMIT_TRIES):
            try:
                table = self._table(topic, group[0].rows.schema)
                assert table is not None  # noqa: S101 - made from the rows' schema
                said = held(table, self.group, topic)
                starts = {w.partition: said.offsets.get(w.partition, -1) for w in group}
                # One the table holds was committed before (its answer lost), or by a newer
                # owner of the partition: not again.
                fresh = [w for w in group if starts[w.partition] <= w.first]
                # A replay's rewrite takes a commit of its own; so would a partition's second
                # batch (the runner puts a table's batches one a partition at a time).
                alone = len({w.partition for w in fresh}) < len(fresh)
                if len(fresh) > 1 and (alone or any(w.partition in said.rewrites for w in fresh)):
                    for waiting in fresh:
                        self._commit([waiting])
                    return
                if not fresh:
                    return
                for waiting in fresh:
                    said.offsets[waiting.partition] = waiting.last + 1
                one = fresh[0]
                old_until = said.rewrites.pop(one.partition, None)
                summary = said.summary(self.group, topic)
                if old_until is None:
                    _append(table, fresh, summary, written)
                    return
                if one.last + 1 < old_until:  # old rows remain after this batch
                    said.rewrites[one.partition] = old_until
                    summary = said.summary(self.group, topic)
                where = _rows_of(one.partition, max(starts[one.partition], 0), one.last)
                _overwrite(table, one.rows, where, summary)
            except CommitFailedException:  # another commit came first: read it, try again
                self.conflicts += 1
                continue
            except _AWAY as err:  # the catalog or the warehouse does not answer now
                names = ", ".join(waiting.name for waiting in group)
                raise SinkError(f"{names}: {err}") from err
            return
        raise SinkError(f"{topic}: the table kept changing under {_COMMIT_TRIES} commits")

    def rewind(self, topic: str, starts: dict[int, int]) -> Held | None:
        """Move the group's offsets in the table to ``starts`` (a replay), in one commit that
        changes no row: a partition moved back is rewritten from there by the sink, each batch
        taking out the old rows it stands for in the commit that adds its own. The table's
        offsets before, or None if there is no table yet."""
        table = self._table(topic, None)
        if table is None:
            return None
        for _ in paced(_COMMIT_TRIES):
            said = held(table, self.group, topic)
            before = Held(dict(said.offsets), dict(said.rewrites))
            for partition, start in starts.items():
                old_until = max(said.rewrites.get(partition, -1), said.offsets.get(partition, 0))
                if start < old_until:
                    said.rewrites[partition] = old_until
                else:
                    said.rewrites.pop(partition, None)
                said.offsets[partition] = start
            try:
                with (
                    transaction(table) as change,
                    change.update_snapshot(
                        snapshot_properties=said.summary(self.group, topic)
                    ).fast_append(),
                ):
                    pass
            except CommitFailedException:
                self.conflicts += 1
                table.refresh()
                continue
            except _AWAY as err:
                raise SinkError(f"{self.table_name(topic)}: {err}") from err
            return before
        raise SinkError(f"{self.table_name(topic)}: the table kept changing under the replay")

    def names(self, under: str) -> Iterator[str]:
        return (name for name, _ in self.stored(under))

    def names_from(self, prefix: str, start: str) -> Iterator[str]:
        return chosen(self.names, prefix, start)

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        """The data files of the topic's table now (of every table of the namespace, under
        none), as ``<topic>/<path below the table's location>``, each with the time of the
        snapshot that added it (if expired since, the current one's). Files a later
        snapshot took out are not among them."""
        if under:
            topics = [under.split("/", 1)[0]]
        else:  # a table's name stands for its topic: table_name() gives it back
            try:
                listed = self.catalog().list_tables(self.config.namespace)
            except NoSuchNamespaceError:
                return
            topics = sorted(identifier[-1] for identifier in listed)
        for topic in topics:
            table = self._table(topic, None)
            self.list_requests += 1
            if table is None or table.current_snapshot() is None:
                continue
            location = table.location().rstrip("/") + "/"
            current = table.current_snapshot()
            assert current is not None  # noqa: S101 - looked at above
            added: dict[int | None, int] = {
                s.snapshot_id: s.timestamp_ms for s in table.snapshots()
            }
            for manifest in current.manifests(table.io):
                if manifest.content != ManifestContent.DATA:
                    continue
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                    path = entry.data_file.file_path.removeprefix(location)
                    yield (
                        f"{topic}/{path}",
                        added.get(entry.snapshot_id, current.timestamp_ms) / 1000,
                    )

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
