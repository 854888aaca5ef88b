"""Shared test helpers: real-binary lookup that skips on a user's machine and fails in CI, free
ports, polling with a clear failure, and (in submodules) the external processes tests run:

- ``tests.support.process``: start a process, check it is ready, tail its log on failure, stop
  its whole tree (children in other sessions included);
- ``tests.support.services``: paramedic ``serve``, Prometheus, Alertmanager (alone or an HA pair),
  HAProxy, the lab's sample service, each built on ``Process``;
- ``tests.support.postgres``: a fresh schema on the shared PostgreSQL, a private cluster, a TCP
  proxy that partitions paramedic from its database.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.process import Process

__all__ = ["FIXTURES", "REPO", "REQUIRE", "Process", "free_port", "require_binary", "wait_for"]

REQUIRE = os.environ.get("PARAMEDIC_REQUIRE_INTEGRATION") == "1"
REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures"
if not FIXTURES.is_dir():  # a checkout placed elsewhere: fall back to the copy in the repo
    FIXTURES = REPO / "tests" / "fixtures"


def require_binary(name: str, *candidates: str) -> str:
    """Path of a real binary, or skip (fail under PARAMEDIC_REQUIRE_INTEGRATION=1) if missing."""
    for cand in (name, *candidates):
        found = shutil.which(cand) or (cand if os.path.isfile(cand) and os.access(cand, os.X_OK) else None)
        if found:
            return found
    message = f"{name} is not installed (apt-get install the Debian package or pip install it)"
    if REQUIRE:
        pytest.fail(f"PARAMEDIC_REQUIRE_INTEGRATION=1 but {message}")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], *, timeout: float = 10.0, every: float = 0.05) -> None:
    """Poll until ``predicate`` holds; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    pytest.fail(f"condition not met within {timeout}s")
