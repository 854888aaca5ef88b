"""The audit chain's checkpoint file: signed heads, one JSON line each, appended outside the database.

The file is the sink a database writer cannot reach (keep it on another volume, ship it to log
storage, or make it append-only with ``chattr +a``); ``paramedic audit verify`` reads its last line.
"""

from __future__ import annotations

import os
from pathlib import Path

from paramedic.core.audit import Checkpoint, parse_checkpoint
from paramedic.core.errors import ConfigError


def write(path: Path, checkpoint: Checkpoint) -> None:
    """Append one checkpoint and make it durable before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def latest(path: Path) -> Checkpoint | None:
    """The last checkpoint of the file, or None if the file is missing or empty. A last line that is
    not a checkpoint raises ``ConfigError``: a damaged sink must not pass for an empty one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the checkpoint file {path}: {exc.strerror or exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return parse_checkpoint(lines[-1])
    except ValueError as exc:
        raise ConfigError(f"{path}: the last line is damaged: {exc}") from None
