"""The configuration: one YAML file, environment overrides, flags over both, and errors that
name the field. Pure: no service is needed to read a configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kafkube.cli.configuration.loading import Config, load
from kafkube.cli.configuration.reference import reference_markdown
from kafkube.consumers.formats import FORMATS
from kafkube.core.errors import ConfigError
from tests.processes import run_kafkube

REPO = Path(__file__).resolve().parent.parent

FULL = """\
kafka:
  bootstrap_servers: broker-0:9093,broker-1:9093
  topic: prod.events
  security:
    protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    username: kafkube
    password_file: {password_file}
    ca_file: {ca_file}
  properties:
    client.id: kafkube-prod
    message.max.bytes: 2000000
    enable.ssl.certificate.verification: true
producer:
  cluster: prod-eu-1
  namespaces: [payments, checkout]
  linger_seconds: 0.5
sinks:
  s3:
    bucket: k8s-events
    prefix: prod-eu-1
    format: jsonl
    rotation:
      max_age_seconds: 30
observability:
  log_format: json
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os  # noqa: PLC0415 - only to list what to clear

    from kafkube.cli.configuration.loading import standard_variables  # noqa: PLC0415

    for name in list(os.environ):
        if name.startswith("KAFKUBE_") or name in dict(standard_variables()):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def full_file(tmp_path: Path) -> Path:
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cr3t-from-file\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "kafkube.yaml"
    path.write_text(FULL.format(password_file=secret, ca_file=ca))
    return path


def test_a_full_file_becomes_the_settings_each_component_runs_with(
    clean_env: pytest.MonkeyPatch, full_file: Path
) -> None:
    config = load(full_file)

    producer = config.producer_settings()
    sink = config.sink_settings("s3")

    assert producer.cluster == "prod-eu-1"
    assert producer.topic == sink.topic == "prod.events"
    assert producer.producer.namespaces == ["payments", "checkout"]
    assert producer.producer.linger_seconds == 0.5
    section = sink.sink
    assert (section.format, section.rotation.max_age_seconds, section.group_id) == (
        "jsonl",
        30,
        "kafkube-sink-s3",
    )
    assert (
        producer.kafka
        == sink.kafka
        == {
            "bootstrap.servers": "broker-0:9093,broker-1:9093",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "kafkube",
            "sasl.password": "s3cr3t-from-file",
            "ssl.ca.location": str(full_file.parent / "ca.crt"),
            "client.id": "kafkube-prod",  # any librdkafka property passes through, as text
            "message.max.bytes": "2000000",
            "enable.ssl.certificate.verification": "true",
        }
    )


def test_environment_beats_the_file_and_flags_beat_both(
    clean_env: pytest.MonkeyPatch, full_file: Path
) -> None:
    clean_env.setenv("KAFKUBE_PRODUCER__LINGER_SECONDS", "2")
    clean_env.setenv("KAFKUBE_KAFKA__TOPIC", "from.env")
    clean_env.setenv("KAFKUBE_KAFKA__SECURITY__PASSWORD", "s3cr3t-from-env")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "standard-variable:9092")

    from_env = load(full_file)
    flagged = load(full_file, {"kafka": {"topic": "from.flag"}})

    assert from_env.producer.linger_seconds == 2
    assert from_env.kafka.topic == "from.env"
    assert from_env.kafka.client_properties()["sasl.password"] == "s3cr3t-from-env"
    assert from_env.kafka.bootstrap_servers == "broker-0:9093,broker-1:9093"  # the file's
    assert from_env.producer.cluster == "prod-eu-1"  # what nothing overrides stays the file's
    assert flagged.kafka.topic == "from.flag"
    assert flagged.producer.linger_seconds == 2


def test_the_listen_address_takes_ipv4_ipv6_or_nothing(clean_env: pytest.MonkeyPatch) -> None:
    def address(listen: str) -> tuple[str, int] | None:
        return load(None, {"observability": {"listen": listen}}).observability.address()

    assert address("0.0.0.0:9464") == ("0.0.0.0", 9464)  # noqa: S104 - parsed, not bound
    assert address("[::]:9464") == ("::", 9464)
    assert address(":9464") == ("0.0.0.0", 9464)  # noqa: S104
    assert address("") is None


STANDARD = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers", "standard:9092", "file:9092"),
    "KUBECONFIG": ("producer", "kubeconfig", "/standard/kubeconfig", "/file/kubeconfig"),
    "AWS_ENDPOINT_URL_S3": ("sinks.s3", "endpoint_url", "http://standard:9000", "http://file"),
    "AWS_REGION": ("sinks.s3", "region", "eu-standard-1", "eu-file-1"),
    "GOOGLE_CLOUD_PROJECT": ("sinks.gcs", "project", "standard-project", "file-project"),
    "STORAGE_EMULATOR_HOST": ("sinks.gcs", "endpoint", "http://standard:4443", "http://file"),
}


def _field(config: Config, section: str, name: str) -> str:
    node: object = config
    for part in (*section.split("."), name):
        node = getattr(node, part)
    return str(node)


@pytest.mark.parametrize("variable", sorted(STANDARD))
def test_flags_beat_kafkube_variables_beat_the_file_beats_the_standard_variables(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    section, name, standard, in_file = STANDARD[variable]
    path = tmp_path / "kafkube.yaml"
    nested: dict[str, object] = {name: in_file}
    for part in reversed(section.split(".")):
        nested = {part: nested}
    path.write_text(yaml.safe_dump(nested))
    ours = "KAFKUBE_" + "__".join((*section.upper().split("."), name.upper()))
    flag: dict[str, object] = {name: "from-the-flag"}
    for part in reversed(section.split(".")):
        flag = {part: flag}
    clean_env.setenv(variable, standard)

    assert _field(load(None), section, name) == standard  # alone, the standard variable counts
    assert _field(load(path), section, name) == in_file  # the file beats it
    clean_env.setenv(ours, "from-kafkube-variable")
    assert _field(load(path), section, name) == "from-kafkube-variable"
    assert _field(load(path, flag), section, name) == "from-the-flag"


def test_no_config_driven_option_reads_a_variable_of_its_own() -> None:
    """A click option with an envvar counts as a flag: it would beat the file. The standard
    variables come through the configuration, below the file."""
    import click  # noqa: PLC0415

    from kafkube.cli import cli  # noqa: PLC0415
    from kafkube.consumers.settings import SINK_TYPES  # noqa: PLC0415

    context = click.Context(cli)
    sink = cli.get_command(context, "sink")
    assert isinstance(sink, click.Group)
    commands = [cli.get_command(context, "produce")]
    commands += [sink.get_command(context, name) for name in sink.list_commands(context)]
    assert len(commands) == 1 + len(SINK_TYPES)
    for command in commands:
        assert command is not None
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            assert envvar is None or str(envvar).startswith("KAFKUBE_"), (command.name, envvar)


def test_kafkube_variables_beat_the_standard_one(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "standard:9092")
    clean_env.setenv("KAFKUBE_KAFKA__BOOTSTRAP_SERVERS", "ours:9092")

    assert load(None).kafka.bootstrap_servers == "ours:9092"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kafka: {securty: {}}", "kafka.securty: unknown field (did you mean security?)"),
        ("sinks: {s3: {format: csv}}", f"sinks.s3.format: must be one of {', '.join(FORMATS)}"),
        ("sinks: {gcs: {codec: lz4}}", "sinks.gcs.codec: must be one of deflate, snappy"),
        ("sinks: {gcs: {codec: gzip}}", "sinks.gcs: codec: avro takes deflate, snappy"),
        ("producer: {linger_seconds: 600}", "producer.linger_seconds: Input should be less than"),
        (
            "sinks: {file: {rotation: {max_records: 0}}}",
            "sinks.file.rotation.max_records: Input should be greater than or equal to 1",
        ),
        (
            "kafka: {security: {protocol: SASL_SSL, sasl_mechanism: PLAIN}}",
            "kafka.security: SASL_SSL with PLAIN needs username, password (or password_file)",
        ),
        (
            (
                "kafka: {security: {protocol: SASL_SSL, sasl_mechanism: OAUTHBEARER,"
                " oidc: {token_endpoint: 'https://idp/token'}}}"
            ),
            (
                "SASL_SSL with OAUTHBEARER needs oidc.client_id, oidc.client_secret (or "
                "oidc.client_secret_file)"
            ),
        ),
        (
            (
                "kafka: {security: {protocol: SASL_SSL, sasl_mechanism: OAUTHBEARER, username: u,"
                " oidc: {token_endpoint: 'https://idp/token', client_id: c, client_secret: s}}}"
            ),
            "OAUTHBEARER logs in without username and password: set kafka.security.oidc",
        ),
        (
            (
                "kafka: {security: {protocol: SASL_PLAINTEXT, sasl_mechanism: AWS_MSK_IAM,"
                " msk_iam: {region: eu-west-1}}}"
            ),
            "AWS_MSK_IAM needs protocol SASL_SSL",
        ),
        (
            "kafka: {security: {protocol: TLS}}",
            (
                "kafka.security.protocol: Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' "
                "or 'SASL_SSL'"
            ),
        ),
        (
            "kafka: {properties: {sasl.password: x}}",
            "properties.sasl.password: set kafka.security.password instead",
        ),
        ("observability: {listen: nowhere}", "listen: expected host:port, got 'nowhere'"),
        (
            "sinks: {iceberg: {commit_interval_seconds: 5, rotation: {max_age_seconds: 9}}}",
            "sinks.iceberg: commit_interval_seconds (5) and rotation.max_age_seconds (9) are one",
        ),
        (
            "producer: {leader_election: {lease_duration_seconds: 4, renew_period_seconds: 3}}",
            "renew_period_seconds must be at most half of lease_duration_seconds",
        ),
        ("- a list", "expected a mapping of sections"),
        ("kafka: [", "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field_and_what_it_accepts(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError) as refused:
        load(path)

    assert expected in str(refused.value)
    assert str(path) in str(refused.value)


def test_an_iceberg_sinks_commit_interval_is_its_batches_age(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "iceberg.yaml"
    path.write_text("sinks: {iceberg: {warehouse: /lake, commit_interval_seconds: 300}}\n")

    rotation = load(path).sink("iceberg").rotation

    assert rotation.max_age_seconds == 300
    assert Config().sink("iceberg").rotation.max_age_seconds == 60


def test_every_problem_of_a_file_is_reported_at_once(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("producer: {partitions: 0}\nsinks: {s3: {format: csv}, gcs: {codec: lz4}}\n")

    with pytest.raises(ConfigError) as refused:
        load(path)

    lines = str(refused.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "producer.partitions",
        "sinks.s3.format",
        "sinks.gcs.codec",
    ]


def test_what_a_component_needs_is_asked_for_when_it_starts(clean_env: pytest.MonkeyPatch) -> None:
    config = load(None)

    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers: is required"):
        config.kafka.client_properties()
    with pytest.raises(ConfigError, match=r"producer\.cluster: is required"):
        load(None, {"kafka": {"bootstrap_servers": "k:9092"}}).producer_settings()


def test_kafkubes_own_delivery_settings_cannot_be_passed_through(
    clean_env: pytest.MonkeyPatch,
) -> None:
    config = load(
        None,
        {
            "kafka": {"bootstrap_servers": "k:9092", "properties": {"enable.idempotence": False}},
            "producer": {"cluster": "c"},
        },
    )

    with pytest.raises(ConfigError, match=r"kafka\.enable\.idempotence: is set by kafkube"):
        config.producer_settings()


def test_config_check_prints_the_result_with_secrets_hidden(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, full_file: Path
) -> None:
    import os  # noqa: PLC0415

    env = {**os.environ, "KAFKUBE_KAFKA__SECURITY__PASSWORD": "hunter2-never-printed"}
    result = run_kafkube("config", "check", str(full_file), env=env, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "hunter2-never-printed" not in result.stdout + result.stderr
    assert "password: '**********'" in result.stdout
    assert "ready to start: producer, s3" in result.stdout


def test_config_check_refuses_a_bad_file_with_exit_1_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sinks:\n  s3:\n    bucket: b\n    rotation: {max_bytes: 10}\n")

    result = run_kafkube("config", "check", str(path), timeout=60)

    assert result.returncode == 1
    assert "sinks.s3.rotation.max_bytes: Input should be greater than or equal to 1024" in (
        result.stderr
    )


def test_config_check_says_what_a_chosen_component_still_lacks(tmp_path: Path) -> None:
    path = tmp_path / "partial.yaml"
    path.write_text("kafka: {bootstrap_servers: 'k:9092'}\n")

    result = run_kafkube("config", "check", str(path), "--component", "gcs", timeout=60)

    assert result.returncode == 1
    assert "sinks.gcs.bucket: is required" in result.stderr


def test_the_example_file_is_valid_once_its_files_exist(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    example = run_kafkube("config", "example", timeout=60).stdout
    for placeholder in ("/etc/kafkube/secrets/kafka-password", "/etc/kafkube/tls/ca.crt"):
        local = tmp_path / Path(placeholder).name
        local.write_text("x")
        example = example.replace(placeholder, str(local))
    path = tmp_path / "example.yaml"
    path.write_text(example)

    config = load(path)

    assert isinstance(config, Config)
    assert config.producer.leader_election.enabled


def test_the_readme_reference_is_generated_from_the_model() -> None:
    readme = (REPO / "README.md").read_text()
    begin, end = "<!-- config-reference:begin -->\n", "<!-- config-reference:end -->"

    assert begin in readme, "README lacks the generated configuration reference"
    generated = readme.split(begin, 1)[1].split(end, 1)[0]

    assert generated == reference_markdown(), "run: kafkube config reference, into the README"
    for field in ("kafka.security.password", "sinks.s3.rotation.max_age_seconds"):
        assert f"`{field}`" in generated


def test_config_check_shows_no_secret_of_a_registry_url_or_a_kafka_property(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": "127.0.0.1:9092",
                    "schema_registry": {"url": "https://reg-user:Pw-in-url-7@registry:8081/api"},
                    "properties": {
                        "ssl.keystore.password": "Keystore-pw-7",
                        "sasl.oauthbearer.assertion.private.key.passphrase": "Oauth-secret-7",
                        "message.max.bytes": 2000000,
                    },
                }
            }
        )
    )

    result = run_kafkube("config", "check", str(path), timeout=60)
    loaded = load(path)

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for secret in ("Pw-in-url-7", "Keystore-pw-7", "Oauth-secret-7"):
        assert secret not in output
    assert "https://registry:8081/api" in output
    assert "reg-user" in output  # a user name is no secret
    assert "2000000" in output  # nor is any other property
    registry = loaded.kafka.schema_registry.client_properties()
    assert registry == {
        "url": "https://registry:8081/api",
        "basic.auth.user.info": "reg-user:Pw-in-url-7",
    }


def test_a_secret_property_on_the_command_line_is_refused_naming_the_file_field() -> None:
    result = run_kafkube(
        "status", "--bootstrap-server", "127.0.0.1:1",
        "--kafka", "sasl.oauthbearer.client.secret=On-the-cli-7", timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "kafka.properties.sasl.oauthbearer.client.secret" in result.stderr
    assert "On-the-cli-7" not in result.stdout + result.stderr
