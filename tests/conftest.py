"""Fixtures shared by the suite: databases (SQLite always, PostgreSQL when configured), a
Paramedic instance, and a real HTTP server around it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from paramedic.core.config import Config
from paramedic.engine.service import Paramedic
from tests.support import free_port
from tests.support.process import SESSION_VAR, sweep_session

# Hypothesis's 200 ms per-example deadline measures the machine's load, not the code: on a shared
# 2-core CI box an example that takes 60 ms alone takes 250 ms. Property tests assert properties.
settings.register_profile("paramedic", deadline=None)
settings.load_profile("paramedic")

PG_URL = os.environ.get("PARAMEDIC_TEST_POSTGRES_URL", "")


def pytest_configure(config: pytest.Config) -> None:
    """Mark this run's environment, so every process a test starts carries the marker (xdist
    workers inherit it from the controller)."""
    os.environ.setdefault(SESSION_VAR, f"{os.getpid()}-{uuid.uuid4().hex}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` tests spread over workers one by one; the tests of a
    module that shares an expensive module-scoped fixture (a browser, a supervisord, an HAProxy)
    stay together on one worker, so it starts once. A test may also name a group itself with
    ``@pytest.mark.xdist_group("name")`` to run serially with the others of that group."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = getattr(info, "name2fixturedefs", {}) if info is not None else {}
        shared = any(d.scope == "module" for fixturedefs in defs.values() for d in fixturedefs)
        if shared and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.partition("::")[0]))


def pytest_unconfigure(config: pytest.Config) -> None:
    """At the very end of the run (the controller, after every worker has gone), end whatever a test
    left running and say so: no process may outlive the suite."""
    if hasattr(config, "workerinput"):
        return
    left = sweep_session()
    if left:
        import sys

        print("\ntests left these processes behind (now ended):\n  " + "\n  ".join(left), file=sys.stderr)


def _pg_schema_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        for attempt in range(5):  # a server still draining can deadlock with the drop: try again
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                break
            except OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on SQLite, and on PostgreSQL when PARAMEDIC_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'paramedic.db'}"
        return
    if not PG_URL:
        pytest.skip("PARAMEDIC_TEST_POSTGRES_URL is not set")
    yield from _pg_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'paramedic.db'}"


def write_runbooks(folder: Path, text_: str, name: str = "runbooks.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text_)
    return folder


class Server:
    """A real uvicorn server on a free loopback port, in a thread, around one Paramedic."""

    def __init__(self, pm: Paramedic) -> None:
        from paramedic.api.app import create_app

        self.pm = pm
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(
            create_app(pm),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("paramedic test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def wait(self, predicate: Callable[[httpx.Client], bool], timeout: float = 15.0) -> None:
        with self.client() as c:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if predicate(c):
                    return
                time.sleep(0.05)
        pytest.fail(f"condition not met within {timeout}s")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(runbooks: str | None = None, *, database: str | None = None, **config: Any) -> Server:
        rb_dir = tmp_path / f"runbooks{len(servers)}"
        if runbooks is not None:
            write_runbooks(rb_dir, runbooks)
        else:
            rb_dir.mkdir()
        cfg = Config(
            database=database or f"sqlite:///{tmp_path / 'paramedic.db'}",
            runbooks=[str(rb_dir)],
            **config,
        )
        srv = Server(Paramedic.from_config(cfg)).__enter__()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.__exit__(None, None, None)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
