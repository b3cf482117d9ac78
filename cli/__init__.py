"""The ``kafkube`` command: parses, builds settings and calls into the packages below."""

from kafkube.cli.commands import cli, main

__all__ = ["cli", "main"]
