"""Keeping the Iceberg sink's tables in shape (``kafkube iceberg maintain``): small data files
of a partition compacted into one, old snapshots expired, data files no snapshot holds
removed. What the sink needs is kept: every commit made here carries the group's offsets
(``kafkube.*`` of the newest snapshot with them), and no snapshot from the newest one with
them to the current one is expired, so the sink still starts where the table says.

Compaction goes with a running sink: the new files are written once, then the commit (one
overwrite snapshot, the small files out and their rows in) is tried against the table as it
is now, as often as another commit came first, for as long as the small files are still all
in the table (a replay that rewrote one of them wins, as do commits that keep coming first:
its group is left for the next run).
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyarrow import fs
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of

from kafkube.consumers.icebergsink import (
    IcebergDestination,
    data_files,
    paced,
    transaction,
    written_files,
)
from kafkube.consumers.parquet import OFFSET_COLUMN, PARTITION_COLUMN

_KAFKUBE = "kafkube."  # the summary properties the sink keeps its offsets in
_OFFSETS = "kafkube.offsets."
_COMMIT_TRIES = 20


@dataclass(frozen=True)
class Policy:
    """What ``maintain`` does: compact a partition's data files smaller than ``small_bytes``
    once it has ``min_files`` of them; expire snapshots older than ``expire_after``; remove
    data files no snapshot holds once they are older than ``orphans_after`` (a commit under
    way holds files no snapshot names yet)."""

    small_bytes: int = 32 << 20
    min_files: int = 4
    expire_after: timedelta = timedelta(days=7)
    orphans_after: timedelta = timedelta(days=1)


@dataclass
class Report:
    """What ``maintain`` did to one table (or, in a dry run, would do)."""

    table: str
    files_before: int = 0
    compacted: int = 0  # small files taken out
    written: int = 0  # files they became
    left: int = 0  # groups left for the next run: the table changed under them
    expired: int = 0  # snapshots
    expiry_left: bool = False  # the sink's commits kept coming first: for the next run
    orphans: list[str] = field(default_factory=list)  # data files removed

    def lines(self) -> Iterator[str]:
        yield (
            f"{self.table}: {self.files_before} data files; compacted {self.compacted} small "
            f"files into {self.written}" + (f" ({self.left} group(s) left)" if self.left else "")
        )
        yield f"{self.table}: expired {self.expired} snapshot(s)" + (
            " (left for the next run: the table kept changing)" if self.expiry_left else ""
        )
        yield f"{self.table}: removed {len(self.orphans)} data file(s) no snapshot holds"


def maintain(destination: IcebergDestination, policy: Policy, *, execute: bool) -> list[Report]:
    """Every table of the sink's namespace, kept in shape; with ``execute`` false only what
    would be done is reported."""
    catalog = destination.catalog()
    reports = []
    for identifier in sorted(catalog.list_tables(destination.config.namespace)):
        table = catalog.load_table(identifier)
        report = Report(".".join(identifier), files_before=len(list(data_files(table))))
        _compact(table, policy, report, execute=execute)
        _expire(table, policy, report, execute=execute)
        _remove_orphans(table, policy, report, execute=execute)
        reports.append(report)
    return reports


# --- compaction -------------------------------------------------------------------------------


def _small_groups(table: Table, policy: Policy) -> list[list[FileScanTask]]:
    """The table's small data files, by partition (of one spec), where there are enough."""
    by_partition: dict[tuple[int, str], list[FileScanTask]] = defaultdict(list)
    for task in table.scan().plan_files():
        if task.file.file_size_in_bytes < policy.small_bytes:
            by_partition[task.file.spec_id, repr(task.file.partition)].append(task)
    return [tasks for tasks in by_partition.values() if len(tasks) >= policy.min_files]


def _compact(table: Table, policy: Policy, report: Report, *, execute: bool) -> None:
    for tasks in _small_groups(table, policy):
        if not execute:
            report.compacted += len(tasks)
            report.written += 1
            continue
        metadata = table.metadata
        rows = ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue()).to_table(tasks)
        if PARTITION_COLUMN in rows.column_names:  # in topic order: tight offset statistics
            rows = rows.sort_by([(PARTITION_COLUMN, "ascending"), (OFFSET_COLUMN, "ascending")])
        commit = uuid.uuid4()
        written = list(written_files(table.metadata, rows, table, commit, itertools.count()))
        if _replace(table, [task.file for task in tasks], written, commit):
            report.compacted += len(tasks)
            report.written += len(written)
        else:
            report.left += 1
            for file in written:  # in no snapshot: not in the table
                table.io.delete(file.file_path)


def _replace(table: Table, old: list[DataFile], new: list[DataFile], commit: uuid.UUID) -> bool:
    """One snapshot: ``old`` out, ``new`` in, the sink's offsets carried; False if a file of
    ``old`` left the table meanwhile, or the sink's commits kept coming first (the next run
    tries again: compaction never holds the sink up)."""
    wanted = {file.file_path for file in old}
    for _ in paced(_COMMIT_TRIES):  # let the commit that came first pass
        table.refresh()
        if not wanted <= {file.file_path for file in data_files(table)}:
            return False
        try:
            with (
                transaction(table) as change,
                change.update_snapshot(snapshot_properties=_carried(table)).overwrite(
                    commit
                ) as snapshot,
            ):
                for file in old:
                    snapshot.delete_data_file(file)
                for file in new:
                    snapshot.append_data_file(file)
        except CommitFailedException:
            continue  # the sink committed first: the same files, against the table as now
        return True
    return False


def _carried(table: Table) -> dict[str, str]:
    """The sink's properties of the newest snapshot that has them, to say again."""
    newest = _newest_with_offsets(table)
    summary = newest.summary if newest is not None else None
    if summary is None:
        return {}
    said: dict[str, Any] = summary.additional_properties
    return {key: str(value) for key, value in said.items() if key.startswith(_KAFKUBE)}


def _newest_with_offsets(table: Table) -> Snapshot | None:
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        said = snapshot.summary.additional_properties if snapshot.summary is not None else {}
        if any(key.startswith(_OFFSETS) for key in said):
            return snapshot
    return None


# --- snapshots and orphans --------------------------------------------------------------------


def _expire(table: Table, policy: Policy, report: Report, *, execute: bool) -> None:
    """Snapshots older than the policy's age, except the current one and those from it back
    to the newest with the sink's offsets (``held`` walks that way); tried again against the
    table as it is now when a sink's commit came first, as compaction is."""
    for _ in paced(_COMMIT_TRIES):
        table.refresh()
        old = _expirable(table, policy)
        report.expired = len(old)
        if not execute or not old:
            return
        try:
            table.maintenance.expire_snapshots().by_ids(old).commit()
        except CommitFailedException:
            continue
        return
    report.expired, report.expiry_left = 0, True


def _expirable(table: Table, policy: Policy) -> list[int]:
    kept = set()
    newest = _newest_with_offsets(table)
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        kept.add(snapshot.snapshot_id)
        if newest is None or snapshot.snapshot_id == newest.snapshot_id:
            break
    cutoff = (datetime.now(UTC) - policy.expire_after).timestamp() * 1000
    return [
        snapshot.snapshot_id
        for snapshot in table.snapshots()
        if snapshot.timestamp_ms < cutoff and snapshot.snapshot_id not in kept
    ]


def _remove_orphans(table: Table, policy: Policy, report: Report, *, execute: bool) -> None:
    """Data files under the table's data folder that no snapshot left holds (a commit that
    never went through, a compaction that lost, an expired snapshot's), older than the
    policy's age."""
    table.refresh()
    held = {_path(path) for path in table.inspect.all_data_files()["file_path"].to_pylist()}
    io = table.io
    if not isinstance(io, PyArrowFileIO):
        return
    scheme, netloc, path = PyArrowFileIO.parse_location(table.location().rstrip("/") + "/data")
    filesystem = io.fs_by_scheme(scheme, netloc)
    cutoff = datetime.now(UTC) - policy.orphans_after
    listed = filesystem.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
    for info in listed:
        if info.type != fs.FileType.File or info.mtime is None or info.mtime >= cutoff:
            continue
        if _path(info.path) not in held:
            report.orphans.append(info.path)
            if execute:
                filesystem.delete_file(info.path)


def _path(location: str) -> str:
    """A file's place without its scheme: a listing's paths and a manifest's agree."""
    return location.split("://", 1)[-1].lstrip("/")
