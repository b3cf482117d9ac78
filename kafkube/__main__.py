"""``python -m kafkube``: the same command as the ``kafkube`` script."""

from kafkube.launch import main

main()
