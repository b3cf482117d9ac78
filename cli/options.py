"""What several commands share: the Kafka connection options, the stack's folders, stopping on
a signal. Settings are read from options and the environment here, in the entry point only."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import click
import platformdirs

from kafkube.schemas.topics import DEFAULT_TOPIC


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("kafkube"))


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("kafkube")) / "stack"


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM or Ctrl-C sets: long-running commands drain and exit 0 on it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def service_process() -> threading.Event:
    """Set up a process that streams events until told to stop (producer, sinks).

    The cyclic garbage collector is made to run a hundredth as often: every event makes
    a dozen short-lived dicts, freed by reference counting, and the default thresholds
    collected after every 700 of them: 15 % of the producer's time went to scans that
    found nothing. Nothing on the per-event path makes reference cycles.
    """
    gc.set_threshold(70_000, 20, 100)
    return stop_on_signals()


def kafka_properties(values: tuple[str, ...], bootstrap: str) -> dict[str, str]:
    properties = {"bootstrap.servers": bootstrap}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="--kafka")
        properties[name] = setting
    return properties


def kafka_options(command: Callable[..., None]) -> Callable[..., None]:
    """--bootstrap-servers, --topic and --kafka KEY=VALUE (any librdkafka property)."""
    options = [
        click.option(
            "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", required=True,
            help="Kafka brokers (or KAFKA_BOOTSTRAP_SERVERS).",
        ),
        click.option("--topic", default=DEFAULT_TOPIC, show_default=True),
        click.option(
            "--kafka", "kafka_props", multiple=True, metavar="KEY=VALUE",
            help="librdkafka property, passed through (repeatable).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def stack_dir_options(command: Callable[..., None]) -> Callable[..., None]:
    """Where the local stack keeps its built services and its state."""
    options = [
        click.option(
            "--cache-dir", type=click.Path(path_type=Path, file_okay=False),
            envvar="KAFKUBE_CACHE_DIR", default=default_cache_dir,
            show_default="the user cache dir",
            help="Where fetched jars and built binaries are kept.",
        ),
        click.option(
            "--state-dir", type=click.Path(path_type=Path, file_okay=False),
            envvar="KAFKUBE_STACK_DIR", default=default_state_dir,
            show_default="the user state dir",
            help="Where this stack keeps its data, logs, ports and credentials.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command
