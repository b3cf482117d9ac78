"""Where log lines go: stderr, as text for a terminal or one JSON object a line for the
cluster's log collector (``observability.log_format``), at ``observability.log_level``."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def setup_logging(level: str, log_format: str) -> None:
    """Log lines to stderr: text for a terminal, or one JSON object a line for a collector."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for chatty in ("botocore", "urllib3", "google"):  # their INFO lines say nothing to a user
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
