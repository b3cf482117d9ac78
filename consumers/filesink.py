"""The file destination: temp file, fsync, atomic rename, fsync of the directory."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from kafkube.consumers.destinations import MissingObjectError, chosen
from kafkube.consumers.settings import FileSinkConfig
from kafkube.core.errors import ConfigError, SinkError, SinkRefusedError

# A write in progress: hidden (Spark and Hive skip dot files) and without the output's extension.
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".kafkube-partial"


class FileDestination:
    def __init__(self, config: FileSinkConfig) -> None:
        self.root = Path(config.required_place()).expanduser().absolute()
        self.min_free_bytes = config.min_free_mb << 20  # writing stops (and waits) below it
        self.description = str(self.root)
        self.list_requests = 0

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError("sinks.file.dir", f"{self.root} exists and is not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                "sinks.file.dir", f"cannot create {self.root}: {err.strerror}"
            ) from err
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ConfigError("sinks.file.dir", f"{self.root} is not writable by this user")
        free = shutil.disk_usage(self.root).free
        if free < self.min_free_bytes:
            raise ConfigError(
                "sinks.file.dir", f"{self.root} has {free >> 20} MiB free, less than the minimum "
                f"{self.min_free_bytes >> 20} MiB (sinks.file.min_free_mb)",
            )  # fmt: skip
        for stale in self.root.rglob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            stale.unlink(
                missing_ok=True
            )  # what a crash left half-written: never renamed, never counted

    def ready(self) -> str | None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            return f"{self.root} is not writable"
        free = shutil.disk_usage(self.root).free
        if free < self.min_free_bytes:
            return f"{self.root} has {free >> 20} MiB free, below sinks.file.min_free_mb"
        return None

    def _path(self, name: str) -> Path:
        path = (self.root / name).absolute()
        if not path.is_relative_to(self.root) or ".." in Path(name).parts:
            raise SinkRefusedError(f"refusing to write {name!r}: outside {self.root}")
        return path

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:  # noqa: ARG002 - the name says it all on disk
        path = self._path(name)
        temp = path.with_name(f"{_TEMP_PREFIX}{path.name}{_TEMP_SUFFIX}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            temp.replace(path)
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as err:
            with contextlib.suppress(OSError):  # its folder may be what failed
                temp.unlink(missing_ok=True)
            full = " (disk full)" if err.errno == errno.ENOSPC else ""
            raise SinkError(f"writing {path}{full}: {err.strerror}") from err

    def names(self, under: str) -> Iterator[str]:
        return (name for name, _ in self.stored(under))

    def names_from(self, prefix: str, start: str) -> Iterator[str]:
        return chosen(self.names, prefix, start)

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        base = self._path(under)
        self.list_requests += 1
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.endswith(_TEMP_SUFFIX):
                yield path.relative_to(self.root).as_posix(), path.stat().st_mtime

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as err:
            raise MissingObjectError(f"no {self._path(name)}") from err
        except OSError as err:
            raise SinkError(f"reading {self._path(name)}: {err.strerror}") from err


def open_destination(config: FileSinkConfig) -> FileDestination:
    """The destination of ``sinks.file``."""
    return FileDestination(config)
