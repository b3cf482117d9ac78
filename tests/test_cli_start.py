"""``kafkube --help`` loads click alone: each subcommand's module, and the libraries it needs,
load when that subcommand runs. (How long it takes is the benchmark's to say.)"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click

from kafkube.cli.commands import COMMANDS, cli

HEAVY = ("pydantic", "confluent_kafka", "kubernetes", "fastavro", "yaml", "kafkube.consumers")


def test_help_loads_no_subcommand_and_no_client_library() -> None:
    script = (
        "import sys, json\n"
        "from kafkube.cli.commands import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='kafkube')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(ran.stdout.splitlines()[-1])

    assert "Commands:" in ran.stdout
    assert not [m for m in loaded if m.startswith(HEAVY)]
    assert not [m for m in loaded if m.startswith("kafkube.cli.") and m != "kafkube.cli.commands"]


def test_each_line_of_help_is_its_commands_own_first_sentence() -> None:
    context = click.Context(cli)
    for name, (module, attribute, short) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)

        assert cli.get_command(context, name) is command
        assert command.get_short_help_str(limit=1000) == short, name


def test_the_table_lists_every_command_and_no_other() -> None:
    context = click.Context(cli)

    assert cli.list_commands(context) == list(COMMANDS)
    assert cli.get_command(context, "no-such-command") is None
