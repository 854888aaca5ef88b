"""Database engines: SQLite in WAL mode (the embedded default) and PostgreSQL (scale-out).

SQLite write transactions start with ``BEGIN IMMEDIATE`` so a read-then-write never deadlocks on
lock upgrade; ``read()`` transactions start deferred and run beside writers under WAL.
Connection failures surface as ``StoreUnavailable`` so the API can answer 503: a refused or
dropped connection (``OperationalError``), a connection the pool invalidated, and a pool with no
connection free within its timeout (a stalled or overloaded database).

On PostgreSQL every session gets ``idle_in_transaction_session_timeout``: a replica cut off from the
database in the middle of a transaction would otherwise keep its locks, among them the advisory
lock that orders audited writes, until the server noticed the dead peer (hours, with default TCP
keepalives), and every other replica's writes would wait for it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool, StaticPool

from paramedic.core.errors import ConfigError, StoreUnavailable

T = TypeVar("T")
WRITE_LOCK = 0x70A2A3EE  # the advisory lock that orders paramedic's audited writes on PostgreSQL


IDLE_IN_TRANSACTION = 10.0  # seconds; paramedic's transactions never wait on anything outside the database


def make_engine(url: str, *, pool_size: int = 10, idle_in_transaction: float = IDLE_IN_TRANSACTION) -> Engine:
    """Create an engine for ``url`` with paramedic's connection settings."""
    if url.startswith("sqlite"):
        pool: dict[str, Any] = (
            {"poolclass": StaticPool}
            if ":memory:" in url or url.rstrip("/") == "sqlite:"
            else {"pool_size": pool_size, "max_overflow": pool_size}
        )
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            **pool,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            read_only = conn.get_execution_options().get("paramedic_read", False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=5,
            connect_args={"connect_timeout": 5},
        )
        limit_ms = max(1, round(idle_in_transaction * 1000))

        @event.listens_for(engine, "connect")
        def _session(dbapi_conn: Any, _record: Any) -> None:
            # A SET, not the `options` connect argument: that would replace the URL's own options.
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET idle_in_transaction_session_timeout = {limit_ms}")
            dbapi_conn.commit()

        return engine
    raise ConfigError(f"database {url!r}: use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")


def single_use_engine(url: str) -> Engine:
    """An engine without a pool, for short CLI commands."""
    if url.startswith("sqlite"):
        return make_engine(url, pool_size=1)
    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})


class Database:
    """A thin wrapper that gives transactions with retries on transient connection failures."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.is_postgres = engine.dialect.name == "postgresql"
        # SQLite admits one writer at a time. Threads of this process queue on a lock instead of
        # in SQLite's busy handler, which sleeps and polls (up to 100 ms a turn) and so adds
        # tens to thousands of milliseconds under load; other processes still meet busy_timeout.
        self._write_lock = threading.RLock() if self.is_sqlite else contextlib.nullcontext()

    @contextmanager
    def write(self, *, serial: bool = True) -> Iterator[Connection]:
        """A write transaction. On PostgreSQL a ``serial`` one first takes a transaction-level
        advisory lock, so every transaction that may append to the audit chain (which is one
        sequence) takes its locks in the same order: no deadlock between row locks and the
        chain's head. Pass ``serial=False`` only for writes that never touch the audit trail."""
        with _unavailable(), self._write_lock, self.engine.begin() as conn:
            if serial and self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK})
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with _unavailable(), self.engine.connect().execution_options(paramedic_read=True) as conn, conn.begin():
            yield conn

    def retrying(self, fn: Callable[[], T], *, attempts: int = 3, delay: float = 0.2) -> T:
        """Run ``fn`` again after a transient failure, a bounded number of times."""
        for i in range(attempts):
            try:
                return fn()
            except StoreUnavailable:
                if i == attempts - 1:
                    raise
                time.sleep(delay * (2**i))
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _unavailable() -> Iterator[None]:
    """Translate the driver's and the pool's 'cannot reach the database now' into ``StoreUnavailable``."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable(f"the database is unavailable: {_short(exc)}") from exc
    except PoolTimeout as exc:
        raise StoreUnavailable(f"no database connection came free in time: {_short(exc)}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(f"the database connection was lost: {_short(exc)}") from exc
        raise


def _short(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
