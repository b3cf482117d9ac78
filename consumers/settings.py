"""A sink's settings: one model per sink type, and the runtime settings derived from it.

``SINK_TYPES`` is the one table of sink types. Each entry is a configuration model (its
fields, defaults, bounds and help are the only place they are written), which names the
module that opens its destination. The configuration file's ``sinks`` section, the
``kafkube sink <type>`` commands and their flags, ``config check`` and the demo are all
made from this table. A new sink is a destination module, its model here, and its entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, model_validator

from kafkube.consumers.batching import Rotation
from kafkube.consumers.formats import FORMATS
from kafkube.core.errors import ConfigError
from kafkube.core.settings import OneOf, Section, check_client_properties
from kafkube.schemas.filters import EventFilterConfig
from kafkube.schemas.topics import sink_group


def _codecs() -> tuple[str, ...]:
    """Every format's compressions, and empty (each format's default); a sink's own is
    checked against its format."""
    return (*dict.fromkeys(c for output in FORMATS.values() for c in output.codecs), "")


_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _instance_id(value: str) -> str:
    if value and not _INSTANCE_ID.fullmatch(value):
        raise ValueError(f"letters, digits, '.', '_', '-' (at most 249), got {value!r}")
    return value


def _topic_pattern(pattern: str) -> str:
    if not pattern:
        return pattern
    if not pattern.startswith("^"):
        raise ValueError(f"a topic pattern starts with ^ (Kafka's convention), got {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"not a regular expression: {pattern!r}: {err}") from err
    return pattern


class SinkConfig(Section):
    """What every sink type shares."""

    enabled: bool = Field(default=True, description="Whether this sink is deployed.")
    group: str = Field("", description="Consumer group; default kafkube-sink-<type>.")
    instance_id: Annotated[str, AfterValidator(_instance_id)] = Field(
        "",
        description="Static group membership (Kafka's group.instance.id): a restarted instance "
        "with the same id takes its partitions back at once. Unique per instance (the chart "
        "sets the pod name); empty: dynamic membership.",
    )
    format: Annotated[str, OneOf(lambda: FORMATS)] = Field(
        "avro",
        description="The output format: "
        + "; ".join(f"{name}: {output.description}" for name, output in FORMATS.items())
        + ".",
    )
    codec: Annotated[str, OneOf(_codecs)] = Field(
        "",
        description="The format's compression; empty: its own default. "
        + "; ".join(
            f"{name}: {', '.join(output.codecs)}"
            for name, output in FORMATS.items()
            if output.codecs
        )
        + " (the first is the default).",
    )
    time_field: Literal["record", "event"] = Field(
        "record", description="Which time picks the dt=/hour= folder."
    )
    topics: Annotated[str, AfterValidator(_topic_pattern)] = Field(
        "",
        description="A regular expression of topics to read instead of kafka.topic, starting "
        "with ^ (a topic per cluster: ^kafkube\\.events\\.[^.]+$); each topic's objects go "
        "under its own name. It must leave out kafkube's own topics (.dlq, .producer-state, "
        ".producer-dlq).",
    )
    layout: Literal["topic", "cluster"] = Field(
        "topic",
        description="The folders under the prefix. topic: <topic>/dt=/hour=/; cluster: "
        "<topic>/cluster=<name>/dt=/hour=/, a Hive-style folder per cluster (a batch holding "
        "several clusters' records makes one object for each, all named by its offsets).",
    )
    topic_wait_seconds: float = Field(
        600.0,
        ge=0,
        description="How long a sink started before its topic exists (before the producer "
        "made it) waits for it, not ready meanwhile, before it stops with an error; 0: at "
        "once. Not for a topic pattern, which may match nothing yet.",
    )
    unknown_schema_id_grace_seconds: float = Field(
        300.0,
        ge=0,
        description="A schema id the registry does not know yet (a replica behind, a registry "
        "restarted) is asked again for this long, its records held, before they go to the "
        "dead-letter topic.",
    )
    rotation: Rotation = Field(default_factory=Rotation)
    filter: EventFilterConfig = Field(
        default_factory=EventFilterConfig,
        description="What this sink group writes: a filtered record is not written, its "
        "offset is committed.",
    )

    # The field that says where the records go; a sink cannot start without it.
    place_field: ClassVar[str] = "bucket"
    # Its name: of its command (``kafkube sink <type>``) and of its section (``sinks.<type>``).
    sink_type: ClassVar[str]
    # The module that opens this sink's destination (its ``open_destination(config)``); the
    # store's client library it imports, and the pip extra that brings it.
    destination_module: ClassVar[str]
    client_module: ClassVar[str | None] = None
    extra: ClassVar[str | None] = None
    # The scheme of this store's locations (``s3://``) for ``kafkube inspect``, None for a
    # path; and the field that points the client at another endpoint (an emulator).
    scheme: ClassVar[str | None] = None
    endpoint_field: ClassVar[str | None] = None
    # ``kafkube inspect``'s flag for that endpoint, and the variables other tools share that
    # fill this section's fields where the file leaves them unset (variable: field).
    endpoint_flag: ClassVar[str | None] = None
    standard_variables: ClassVar[dict[str, str]] = {}
    # The formats its destination takes (None: every one of FORMATS), and whether it keeps
    # the group's offsets in its own commits (a table): the runner then starts each
    # partition where the destination says, and nothing is ever rewritten.
    formats: ClassVar[tuple[str, ...] | None] = None
    keeps_offsets: ClassVar[bool] = False

    def place(self) -> str | None:
        value = getattr(self, self.place_field)
        return str(value) if value else None

    def required_place(self) -> str:
        place = self.place()
        if place is None:
            field = self.place_field
            raise ConfigError(
                f"sinks.{self.sink_type}.{field}",
                f"is required (--{field} or the configuration file)",
            )
        return place

    @model_validator(mode="after")
    def _codec_of_the_format(self) -> Self:
        if self.formats is not None and self.format not in self.formats:
            raise ValueError(f"format: a {self.sink_type} sink writes {', '.join(self.formats)}")
        codecs = FORMATS[self.format].codecs
        if self.codec and self.codec not in codecs:
            raise ValueError(f"codec: {self.format} takes {', '.join(codecs)}, not {self.codec!r}")
        return self

    @property
    def group_id(self) -> str:
        return self.group or sink_group(self.sink_type)

    @property
    def output_codec(self) -> str:
        """The compression its objects are written with: ``codec``, else its format's own."""
        return self.codec or FORMATS[self.format].default_codec

    def settings(
        self, kafka: dict[str, Any], topic: str, *, registry: dict[str, str] | None
    ) -> SinkSettings:
        """What the runner runs with: this section as it is, Kafka's and the registry's."""
        return SinkSettings(self, kafka=kafka, topic=topic, registry=registry)


class FileSinkConfig(SinkConfig):
    """``kafkube sink file``: files on a local or mounted disk."""

    sink_type: ClassVar[str] = "file"
    place_field: ClassVar[str] = "dir"
    destination_module: ClassVar[str] = "kafkube.consumers.filesink"
    dir: Path | None = Field(None, description="Directory the files go below.")
    min_free_mb: Annotated[int, Field(ge=0)] = Field(
        64, description="Stop writing (and wait) below this much free space."
    )


class ObjectStoreSinkConfig(SinkConfig):
    bucket: str | None = Field(None, description="The bucket.")
    prefix: str = Field("", description="Prefix of every object name; objects go below it.")


class S3SinkConfig(ObjectStoreSinkConfig):
    """``kafkube sink s3``: objects in S3 or an S3 API (MinIO)."""

    sink_type: ClassVar[str] = "s3"
    destination_module: ClassVar[str] = "kafkube.consumers.s3sink"
    client_module: ClassVar[str | None] = "boto3"
    extra: ClassVar[str | None] = "s3"
    scheme: ClassVar[str | None] = "s3"
    endpoint_field: ClassVar[str | None] = "endpoint_url"
    endpoint_flag: ClassVar[str | None] = "--endpoint-url"
    standard_variables: ClassVar[dict[str, str]] = {
        "AWS_ENDPOINT_URL_S3": "endpoint_url",
        "AWS_REGION": "region",
    }
    endpoint_url: str | None = Field(
        None, description="MinIO or another S3 API. AWS_ENDPOINT_URL_S3."
    )
    region: str | None = Field(None, description="Also AWS_REGION.")
    sse: Literal["AES256", "aws:kms"] | None = Field(None, description="Server-side encryption.")
    kms_key_id: str | None = Field(None, description="With sse aws:kms.")
    storage_class: str | None = Field(None, description="STANDARD_IA, INTELLIGENT_TIERING, ...")
    multipart_threshold_mb: Annotated[int, Field(ge=5)] = Field(
        16, description="Objects above this go up in parts."
    )
    transfer_client: Literal["crt", "boto3"] = Field(
        "crt",
        description="What puts the objects: the AWS Common Runtime (native, a tenth of boto3's"
        " CPU) or boto3 (always behind an HTTP proxy).",
    )


class GCSSinkConfig(ObjectStoreSinkConfig):
    """``kafkube sink gcs``: objects in Google Cloud Storage."""

    sink_type: ClassVar[str] = "gcs"
    destination_module: ClassVar[str] = "kafkube.consumers.gcssink"
    client_module: ClassVar[str | None] = "google.cloud.storage"
    extra: ClassVar[str | None] = "gcs"
    scheme: ClassVar[str | None] = "gs"
    endpoint_field: ClassVar[str | None] = "endpoint"
    endpoint_flag: ClassVar[str | None] = "--gcs-endpoint"
    standard_variables: ClassVar[dict[str, str]] = {
        "GOOGLE_CLOUD_PROJECT": "project",
        "STORAGE_EMULATOR_HOST": "endpoint",
    }
    project: str | None = Field(None, description="Also GOOGLE_CLOUD_PROJECT.")
    endpoint: str | None = Field(None, description="A GCS emulator's URL. STORAGE_EMULATOR_HOST.")


_PARTITION_FIELD = re.compile(
    r"(?:(?P<transform>year|month|day|hour)\((?P<column>[a-z_]+)\)|(?P<identity>[a-z_]+))"
)


def partition_field(text: str) -> tuple[str, str | None]:
    """A partition field as ``partition_by`` writes it: its column, and its transform (None:
    the column's own values)."""
    matched = _PARTITION_FIELD.fullmatch(text)
    if matched is None:
        raise ValueError(
            f"a partition field is a column or year|month|day|hour(column), got {text!r}"
        )
    if matched["identity"]:
        return matched["identity"], None
    return matched["column"], matched["transform"]


def _partition_field(text: str) -> str:
    partition_field(text)
    return text


# The SQL catalog the Iceberg sink keeps in a folder warehouse unless told otherwise (SQLite).
EMBEDDED_CATALOG = "catalog.db"


class IcebergSinkConfig(SinkConfig):
    """``kafkube sink iceberg``: an Apache Iceberg table per topic, one commit a batch."""

    sink_type: ClassVar[str] = "iceberg"
    place_field: ClassVar[str] = "warehouse"
    destination_module: ClassVar[str] = "kafkube.consumers.icebergsink"
    client_module: ClassVar[str | None] = "pyiceberg"
    extra: ClassVar[str | None] = "iceberg"
    formats: ClassVar[tuple[str, ...] | None] = ("parquet",)
    keeps_offsets: ClassVar[bool] = True
    standard_variables: ClassVar[dict[str, str]] = {
        "AWS_ENDPOINT_URL_S3": "s3_endpoint",
        "AWS_REGION": "s3_region",
        "STORAGE_EMULATOR_HOST": "gcs_endpoint",
    }
    format: Annotated[str, OneOf(lambda: IcebergSinkConfig.formats or FORMATS)] = Field(
        "parquet", description="The data files' format: parquet (Iceberg's)."
    )
    layout: Literal["topic"] = Field(
        "topic",
        description="A table per topic (or the one table named by table); the table partitions "
        "by cluster itself (partition_by).",
    )
    warehouse: str | None = Field(
        None,
        description="Where the tables' data and metadata files go: a folder, s3://bucket/prefix "
        "or gs://bucket/prefix (with the credentials the s3 and gcs sinks use).",
    )
    catalog: Literal["sql", "rest"] = Field(
        "sql",
        description="sql: a catalog in a database (SQLite, PostgreSQL) at catalog_uri; rest: an "
        "Iceberg REST catalog at catalog_uri.",
    )
    catalog_uri: str = Field(
        "",
        description="The SQL catalog's database (sqlite:////path/catalog.db, "
        "postgresql+psycopg2://user:password@host:5432/db) or the REST catalog's URL; empty: "
        "SQLite in the warehouse folder (catalog.db).",
    )
    catalog_name: str = Field("kafkube", description="The catalog's name, in its tables' rows.")
    namespace: str = Field("kafkube", description="The tables' namespace.")
    table: str = Field(
        "", description="The table's name; empty: the topic's, '.' and '-' made '_'."
    )
    partition_by: list[Annotated[str, AfterValidator(_partition_field)]] = Field(
        default_factory=lambda: ["day(observed_at)", "cluster"],
        description="The table's partition fields: a column (identity) or "
        "a transform of one: year(column), month(...), day(...) or hour(...).",
    )
    commit_interval_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = Field(
        None,
        description="Seconds at most between a partition's commits (a batch is one commit; "
        "rotation.max_records and rotation.max_bytes bound its size). It is "
        "rotation.max_age_seconds by its Iceberg name: give one or the other (default 60).",
    )
    s3_endpoint: str | None = Field(
        None, description="An S3 API (MinIO) for an s3:// warehouse. AWS_ENDPOINT_URL_S3."
    )
    s3_region: str | None = Field(None, description="An s3:// warehouse's region. AWS_REGION.")
    gcs_endpoint: str | None = Field(
        None, description="A GCS emulator for a gs:// warehouse. STORAGE_EMULATOR_HOST."
    )

    @model_validator(mode="before")
    @classmethod
    def _commit_interval_is_the_batch_age(cls, data: Any) -> Any:  # noqa: ANN401 - pydantic's
        """``commit_interval_seconds`` closes a batch (a commit) as ``rotation.max_age_seconds``
        does: it is set there, and the two may not say different things."""
        if not isinstance(data, dict) or data.get("commit_interval_seconds") is None:
            return data
        interval = data["commit_interval_seconds"]
        rotation = data.get("rotation") or {}
        if isinstance(rotation, BaseModel):
            rotation = rotation.model_dump(exclude_unset=True)
        said = rotation.get("max_age_seconds")
        if said is not None and float(said) != float(interval):
            raise ValueError(
                f"commit_interval_seconds ({interval}) and rotation.max_age_seconds ({said}) are "
                "one setting: give one"
            )
        return {**data, "rotation": {**rotation, "max_age_seconds": interval}}

    @model_validator(mode="after")
    def _one_table_a_topic(self) -> Self:
        if self.catalog == "rest" and not self.catalog_uri:
            raise ValueError("catalog_uri: a rest catalog needs its URL")
        local = self.warehouse is not None and "://" not in self.warehouse
        if self.catalog == "sql" and not self.catalog_uri and self.warehouse and not local:
            raise ValueError("catalog_uri: a warehouse in a store needs the catalog's database")
        return self


# Every sink type, by the name of its command and of its section in the configuration.
SINK_TYPES: dict[str, type[SinkConfig]] = {
    model.sink_type: model
    for model in (FileSinkConfig, S3SinkConfig, GCSSinkConfig, IcebergSinkConfig)
}


@dataclass(frozen=True)
class SinkSettings:
    """What the runner runs with, made by ``SinkConfig.settings``: the sink's section as it
    is, and the Kafka and registry clients' properties made from the ``kafka`` section."""

    sink: SinkConfig
    kafka: dict[str, Any]  # librdkafka properties, passed through (and the CLI's error callback)
    topic: str
    registry: dict[str, str] | None  # the schema registry client's configuration, if any

    def __post_init__(self) -> None:
        check_client_properties(
            self.kafka,
            ("group.id", "group.instance.id", "enable.auto.commit", "isolation.level"),
            "(use --group and --instance-id)",
        )


def store_config(scheme: str, bucket: str, endpoint: str | None = None) -> SinkConfig | None:
    """The configuration of the store a ``<scheme>://bucket`` location names; None if no sink
    type writes to that scheme."""
    for model in SINK_TYPES.values():
        if model.scheme == scheme:
            fields: dict[str, Any] = {"bucket": bucket}
            if endpoint and model.endpoint_field:
                fields[model.endpoint_field] = endpoint
            return model.model_validate(fields)
    return None
