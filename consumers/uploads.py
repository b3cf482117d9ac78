"""A store's uploads in a process of their own, for a client that spends milliseconds of
Python on every object.

google-cloud-storage spends about 2.6 ms of interpreter time an upload (requests and its own
layers, whatever the size), and the sink's reading, which needs the interpreter for every
record, waited for all of it: GCS ran at 0.7 of the file sink. In a helper process that time
is spent beside the reading, not in its turn. The helper holds its own client, opened from
the same settings; it only puts. Everything else (the check, readiness, listing, reading
back) stays with the sink's own client.

One pipe per writer thread, each served by a thread of the helper: uploads go up as many at
a time as before. The object's bytes cross as they are (``send_bytes``), not pickled. The
helper is a new interpreter (``fork`` would copy the sink's Kafka threads in a broken state;
multiprocessing's ``spawn`` would import the sink's main module again, all of the CLI),
ignores the signals a terminal or Kubernetes sends the sink (the sink finishes its writes,
then closes it), and ends by itself when the sink's process is gone (its pipes close). A
helper that died (killed, out of memory) fails the writes it had as retriable errors, and
the next write starts another.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Protocol

from kafkube.core.errors import SinkError


class Puts(Protocol):
    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None: ...


def serve(fds: list[int]) -> None:
    """The helper (``python -c``): its client, made by the opener the first pipe brings,
    and a thread per pipe putting what comes, until the pipes close. Each answer: the error
    (None: stored) and the helper's CPU seconds so far."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    connections = [Connection(fd) for fd in fds]
    try:
        client: Puts = connections[0].recv()()
    except EOFError:
        return

    def serve_one(connection: Connection) -> None:
        while True:
            try:
                name, metadata = connection.recv()
                data = connection.recv_bytes()
            except (EOFError, OSError):
                return
            error: Exception | None = None
            try:
                client.put(name, data, metadata)
            except SinkError as err:  # its message alone: it crosses back pickled
                error = type(err)(str(err))
            except Exception as err:  # noqa: BLE001 - a bug: said, and the sink stops on it
                error = RuntimeError(f"{type(err).__name__}: {err}")
            connection.send((error, time.process_time()))

    threads = [threading.Thread(target=serve_one, args=(c,), daemon=True) for c in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class UploadProcess:
    """``put`` through a helper process's client, ``width`` at a time (``opener`` makes the
    client there: picklable, a module's function or a partial of one)."""

    def __init__(self, opener: Callable[[], Puts], width: int = 4) -> None:
        self._opener, self._width = opener, width
        self._lock = threading.Lock()
        self._helper: subprocess.Popen[bytes] | None = None
        # The pipes no write holds now, each with the helper at its other end.
        self._idle: queue.SimpleQueue[tuple[Connection, subprocess.Popen[bytes]]] = (
            queue.SimpleQueue()
        )
        self._cpu = 0.0  # the running helper's CPU seconds, as of its last answer
        self._ended_cpu = 0.0  # the helpers' that ended

    @property
    def cpu_seconds(self) -> float:
        return self._ended_cpu + self._cpu

    def _start(self) -> None:
        with self._lock:
            if self._helper is not None:
                return
            pairs = [socket.socketpair() for _ in range(self._width)]
            theirs = [pair[1].detach() for pair in pairs]
            self._helper = helper = subprocess.Popen(
                [sys.executable, "-c", f"import {__name__} as m; m.serve({theirs!r})"],
                pass_fds=theirs,
                stdin=subprocess.DEVNULL,
            )
            for fd in theirs:
                os.close(fd)
            connections = [Connection(pair[0].detach()) for pair in pairs]
            connections[0].send(self._opener)
            for connection in connections:
                self._idle.put((connection, helper))

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        self._start()
        connection, helper = self._idle.get()
        try:
            connection.send((name, metadata))
            connection.send_bytes(data)
            error, cpu = connection.recv()
        except (EOFError, OSError) as err:
            connection.close()
            self._ended(helper)
            raise SinkError(f"the upload helper process ended ({err or 'no answer'})") from err
        self._idle.put((connection, helper))
        self._cpu = max(self._cpu, cpu)
        if error is not None:
            raise error

    def _ended(self, helper: subprocess.Popen[bytes]) -> None:
        """A helper died: its idle pipes go, and the next write starts another (the pipes
        that writes hold fail there)."""
        with self._lock:
            if self._helper is not helper:
                return  # already seen to
            self._helper = None
            self._ended_cpu, self._cpu = self._ended_cpu + self._cpu, 0.0
            self._close_idle()
        _reap(helper)

    def _close_idle(self) -> None:
        while not self._idle.empty():
            self._idle.get()[0].close()

    def close(self) -> None:
        """End the helper: its pipes close, it finishes and exits."""
        with self._lock:
            helper, self._helper = self._helper, None
            self._close_idle()
        if helper is not None:
            _reap(helper)


def _reap(helper: subprocess.Popen[bytes]) -> None:
    try:
        helper.wait(30)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()
