"""``python -m paramedic.cli``: the same entry point as the ``paramedic`` command."""

from paramedic.cli.app import main

main()
