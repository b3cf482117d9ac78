"""``kafkube iceberg maintain`` against a real catalog (SQLite) in a folder: small files
compacted, every row still there once; old snapshots expired but never those the sink starts
from; data files no snapshot holds removed once old; all of it beside a sink that commits."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from kafkube.cli.commands import cli
from kafkube.consumers.icebergmaintenance import Policy, maintain
from kafkube.consumers.icebergsink import IcebergDestination, data_files
from tests.icebergs import TOPIC, held_positions, iceberg_destination, put
from tests.sinking import event_values

# Every file is small; every snapshot but those kept is old enough to go.
EAGER = Policy(
    small_bytes=1 << 30,
    min_files=2,
    expire_after=timedelta(0),
    orphans_after=timedelta(hours=1),
)


def _files(destination: IcebergDestination) -> int:
    return len(list(data_files(destination.catalog().load_table(destination.table_name(TOPIC)))))


def _orphan(destination: IcebergDestination, name: str, age: timedelta) -> Path:
    """A data file in the table's data folder that no snapshot holds (a commit that never
    went through), written ``age`` ago."""
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    folder = Path(table.location().removeprefix("file://")) / "data"
    orphan = folder / name
    orphan.write_bytes(b"PAR1 never committed")
    then = time.time() - age.total_seconds()
    os.utime(orphan, (then, then))
    return orphan


def test_maintain_compacts_expires_and_removes_orphans_keeping_the_sinks_offsets(
    tmp_path: Path,
) -> None:
    values = [value for _, value in event_values(60, seed=5)]
    destination = iceberg_destination(tmp_path)
    for first in range(0, 60, 10):
        put(destination, first // 30, first % 30, values[first : first + 10])
    old_orphan = _orphan(destination, "lost-commit.parquet", timedelta(hours=3))
    new_orphan = _orphan(destination, "commit-under-way.parquet", timedelta(minutes=1))
    assert _files(destination) == 6

    shown = maintain(destination, EAGER, execute=False)
    assert _files(destination) == 6  # a dry run changes nothing
    assert old_orphan.exists()
    (done,) = maintain(destination, EAGER, execute=True)

    assert (shown[0].compacted, shown[0].written) == (6, 1)
    assert (done.compacted, done.written, done.left) == (6, 1, 0)
    assert _files(destination) == 1
    held = held_positions(destination)
    assert sorted(held) == [(p, o) for p in (0, 1) for o in range(30)]
    assert set(held.values()) == {1}
    assert done.expired > 0
    assert not old_orphan.exists()
    assert new_orphan.exists()  # younger than the policy's age: perhaps a commit under way
    assert destination.offsets(TOPIC) == {0: 30, 1: 30}  # the sink starts where it did
    put(destination, 0, 20, values[20:30])  # a batch it holds, written again: not doubled
    put(destination, 0, 30, values[30:35])
    assert len(held_positions(destination)) == 65


def test_compaction_beside_a_committing_sink_loses_and_doubles_nothing(tmp_path: Path) -> None:
    values = [value for _, value in event_values(130, seed=6)]
    destination, sink = iceberg_destination(tmp_path), iceberg_destination(tmp_path)
    for first in range(0, 50, 5):
        put(destination, 0, first, values[first : first + 5])
    done = threading.Event()

    def committing() -> None:  # 16 commits, while compaction rewrites the table beside them
        for first in range(0, 80, 5):
            put(sink, 1, first, values[50 + first : 55 + first])
        done.set()

    writer = threading.Thread(target=committing)
    writer.start()
    rounds, compacted = 0, 0
    while not done.is_set() or rounds == 0:
        (report,) = maintain(destination, EAGER, execute=True)
        compacted += report.compacted
        rounds += 1
    writer.join()
    (report,) = maintain(destination, EAGER, execute=True)  # what was left while it wrote
    compacted += report.compacted

    held = held_positions(destination)
    assert set(held.values()) == {1}
    assert len(held) == 50 + 80
    assert destination.offsets(TOPIC) == {0: 50, 1: 80}
    assert compacted >= 10, f"{rounds} rounds compacted {compacted} files"


def test_expiry_beside_a_committing_sink_waits_its_turn_and_keeps_the_offsets(
    tmp_path: Path,
) -> None:
    # Only expiry (no group is ever big enough to compact), round after round while a sink
    # commits: a round whose commit meets the sink's tries again against the table as it is.
    values = [value for _, value in event_values(80, seed=8)]
    destination, sink = iceberg_destination(tmp_path), iceberg_destination(tmp_path)
    put(destination, 0, 0, values[:5])
    expiring = Policy(small_bytes=1, min_files=2, expire_after=timedelta(0),
                      orphans_after=timedelta(hours=1))  # fmt: skip
    done = threading.Event()

    def committing() -> None:
        for first in range(5, 80, 5):
            put(sink, 0, first, values[first : first + 5])
        done.set()

    writer = threading.Thread(target=committing)
    writer.start()
    expired, rounds = 0, 0
    while not done.is_set():
        (report,) = maintain(destination, expiring, execute=True)
        expired += report.expired
        rounds += 1
    writer.join()

    assert expired > 0, f"{rounds} rounds"
    held = held_positions(destination)
    assert sorted(held) == [(0, o) for o in range(80)]
    assert destination.offsets(TOPIC) == {0: 80}


def test_the_maintain_command_shows_by_default_and_changes_nothing(tmp_path: Path) -> None:
    values = [value for _, value in event_values(20, seed=7)]
    destination = iceberg_destination(tmp_path)
    for first in range(0, 20, 5):
        put(destination, 0, first, values[first : first + 5])

    shown = CliRunner().invoke(
        cli, ["iceberg", "maintain", "--warehouse", str(tmp_path), "--min-files", "2"]
    )

    assert shown.exit_code == 0, shown.output
    assert "kafkube.kafkube_events: 4 data files; compacted 4 small files into 1" in shown.output
    assert "dry run: nothing changed" in shown.output
    assert _files(destination) == 4
