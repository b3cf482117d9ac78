"""``python -m kafkube``: the same command as the ``kafkube`` script."""

from kafkube.cli import main

main()
