"""The ``paramedic`` command line: ``app`` holds the commands, ``render`` draws incidents for the
terminal."""

from paramedic.cli.app import main

__all__ = ["main"]
