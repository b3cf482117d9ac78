"""Wires a sink from its settings: the shared runner and one destination."""

from __future__ import annotations

import threading

from kafkube.consumers.destinations import Destination
from kafkube.consumers.runner import SinkRunner, SinkStats
from kafkube.consumers.settings import SinkSettings


def run_sink(
    settings: SinkSettings, destination: Destination, *, stop: threading.Event
) -> SinkStats:
    return SinkRunner(settings, destination).run(stop)
