"""PostgreSQL for tests, real and on loopback:

- ``fresh_schema``: a new schema on the shared PostgreSQL (``PARAMEDIC_TEST_POSTGRES_URL``), as
  ``conftest`` makes one per test, dropped afterwards.
- ``PrivateCluster``: a PostgreSQL cluster of the test's own (``initdb`` in a temporary folder, a
  free port, its unix socket in that folder), so a test may restart it; the shared server is never
  touched.
- ``TcpProxy``: an asyncio TCP proxy between paramedic and PostgreSQL that can drop every
  connection and refuse new ones (a network partition) and heal again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support import REQUIRE, free_port

PG_URL = os.environ.get("PARAMEDIC_TEST_POSTGRES_URL", "")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def require_pg_url() -> str:
    """The shared PostgreSQL URL, or skip: these tests need PostgreSQL (paramedic's scale-out store)."""
    if not PG_URL:
        pytest.skip("PARAMEDIC_TEST_POSTGRES_URL is not set (multi-replica tests need PostgreSQL)")
    return PG_URL


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new, empty schema on ``url``; yields a URL whose connections use it; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield with_schema(url, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# ---- a private PostgreSQL cluster ------------------------------------------------------------------


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` in a temporary folder under /tmp, on a free loopback port.

    As root, initdb refuses to run, so the cluster belongs to the ``postgres`` user and its
    commands run through ``runuser``; its folder is outside pytest's tmp_path (mode 0700, root's).
    """

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / tool).exists():
                message = f"PostgreSQL 15 server binaries are not installed ({PG_BIN / tool})"
                if REQUIRE:
                    pytest.fail(f"PARAMEDIC_REQUIRE_INTEGRATION=1 but {message}")
                pytest.skip(message)
        self.root = Path(tempfile.mkdtemp(prefix="paramedic-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str, timeout: float = 60) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr or done.stdout}")

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"

    def __enter__(self) -> PrivateCluster:
        try:
            self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", self._options(), "-w",
            "start",
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (clients see 'terminating connection due to administrator command')."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# ---- a TCP proxy that can partition paramedic from its database ------------------------------------


class TcpProxy:
    """An asyncio TCP proxy on a free loopback port in a thread of its own.

    ``partition()`` aborts every open connection (both ends see a reset) and refuses new ones
    until ``heal()``: to paramedic, the database has dropped off the network. ``stall()`` keeps
    the connections open but forwards nothing until ``heal()``, like a network that silently drops
    packets: neither end sees an error, each waits for the other.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.partitioned = False
        self._flowing: asyncio.Event | None = None
        self.accepted = 0
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()

        async def start() -> asyncio.Server:
            self._flowing = asyncio.Event()
            self._flowing.set()
            return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._server = self._call(start())
        return self

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.partitioned:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            assert self._flowing is not None
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)

    async def _abort_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()

    def partition(self) -> None:
        self.partitioned = True
        self._call(self._abort_all())

    def stall(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def heal(self) -> None:
        self.partitioned = False
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def __exit__(self, *exc: object) -> None:
        self.partitioned = True
        if self._server is not None:
            self._server.close()
            self._call(self._abort_all())
            self._call(self._server.wait_closed())

            async def drain_tasks() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            self._call(drain_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
