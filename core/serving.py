"""``/metrics``, ``/healthz`` and ``/readyz`` for the producer and the sinks.

Readiness reflects real state: each check (the store answers, the watch is open) runs
on a background thread every ``interval`` seconds, so a probe gets the last answer at
once, even while the store it asks about hangs. ``/healthz`` answers while the process
serves at all; ``/metrics`` is every Prometheus metric of the process.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

from kafkube import __version__
from kafkube.core.errors import ConfigError


def build_info(registry: CollectorRegistry, component: str) -> None:
    """``kafkube_build_info{version, python, component} 1``: what runs, for dashboards that
    join it to the other series (Prometheus' build_info convention)."""
    info = Gauge(
        "kafkube_build_info",
        "kafkube's version and Python's, always 1.",
        ["version", "python", "component"],
        registry=registry,
    )
    info.labels(__version__, platform.python_version(), component).set(1)


def component_registry(component: str) -> CollectorRegistry:
    """A component's own registry (a sink's /metrics shows no producer metric, and the
    reverse: both are imported by the one CLI), with the process's CPU, memory and GC and
    its build info."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    build_info(registry, component)
    return registry


# A *_created series beside each counter only doubles the scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]

log = logging.getLogger(__name__)

Check = Callable[[], str | None]  # None when fine, else why not


class Readiness:
    """The last answer of every check, refreshed on a thread of its own."""

    def __init__(self, checks: Mapping[str, Check], interval: float) -> None:
        self.checks, self.interval = dict(checks), interval
        self._problems: dict[str, str] | None = None  # None: not checked yet
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kafkube-readiness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def problems(self) -> dict[str, str]:
        with self._lock:
            return {"checks": "not run yet"} if self._problems is None else dict(self._problems)

    def _loop(self) -> None:
        while not self._stop.is_set():
            problems = {}
            for name, check in self.checks.items():
                try:
                    problem = check()
                except Exception as err:  # noqa: BLE001 - a failing check is an answer
                    problem = f"{type(err).__name__}: {err}"
                if problem is not None:
                    problems[name] = problem
            with self._lock:
                # Said when readiness flips, not when the reasons change: an outage is a line.
                changed = self._problems is not None and bool(problems) != bool(self._problems)
                self._problems = problems
            if changed:
                verdict = "no: " + "; ".join(problems.values()) if problems else "yes"
                log.warning("ready: %s", verdict)
            self._stop.wait(self.interval)


def _handler(readiness: Readiness, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._answer(HTTPStatus.OK, b"ok\n")
            elif path == "/readyz":
                problems = readiness.problems()
                if problems:
                    lines = "".join(f"{name}: {why}\n" for name, why in problems.items())
                    self._answer(HTTPStatus.SERVICE_UNAVAILABLE, lines.encode())
                else:
                    self._answer(HTTPStatus.OK, b"ready\n")
            else:
                self._answer(HTTPStatus.NOT_FOUND, b"/metrics, /healthz or /readyz\n")

        def _answer(self, status: HTTPStatus, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
            """Probes every few seconds would drown the log: say nothing."""

    return Handler


@contextlib.contextmanager
def serving(
    address: tuple[str, int] | None,
    registry: CollectorRegistry,
    checks: Mapping[str, Check],
    *,
    interval: float = 2.0,
) -> Iterator[tuple[str, int] | None]:
    """Serve the three endpoints on ``address`` (port 0: any free one) while in the block;
    nothing at all when ``address`` is None. Yields the address bound."""
    if address is None:
        yield None
        return
    readiness = Readiness(checks, interval)
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    try:
        server = Server(address, _handler(readiness, registry))
    except OSError as err:
        host, port = address
        raise ConfigError(
            "observability.listen", f"cannot listen on {host}:{port}: {err.strerror}"
        ) from err
    bound = str(server.server_address[0]), int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="kafkube-http", daemon=True)
    readiness.start()
    thread.start()
    host = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
    log.info("serving /metrics, /healthz and /readyz on http://%s:%d", host, bound[1])
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        readiness.stop()
