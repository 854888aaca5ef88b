"""How the store reports a database it cannot reach (``store.db``), in process, on PostgreSQL.

Every way of not reaching the database must surface as ``StoreUnavailable`` (HTTP 503, retry
later), never as a driver or pool exception (HTTP 500, a dead heartbeat task): a dropped
connection mid-transaction, a refused connection, a pool with no connection free in time. And a
replica cut off in the middle of a transaction must not hold the advisory write lock, and so every
other replica's writes, for longer than ``idle_in_transaction_session_timeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from paramedic.core.errors import StoreUnavailable
from paramedic.store.db import Database, make_engine
from tests.support.postgres import TcpProxy, fresh_schema, require_pg_url

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with fresh_schema(require_pg_url()) as url:
        yield url


@pytest.fixture
def proxy(pg_schema: str) -> Iterator[TcpProxy]:
    if "@127.0.0.1:5432/" not in pg_schema:
        pytest.skip("these tests put a proxy in front of PARAMEDIC_TEST_POSTGRES_URL on 127.0.0.1:5432")
    with TcpProxy("127.0.0.1", 5432) as p:
        yield p


def via(proxy: TcpProxy, url: str) -> str:
    return url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")


def test_a_connection_dropped_mid_transaction_is_store_unavailable_then_recovers(
    pg_schema: str, proxy: TcpProxy
) -> None:
    db = Database(make_engine(via(proxy, pg_schema), pool_size=2))
    try:
        with db.read() as conn:  # a pooled connection that the partition will kill
            conn.execute(text("SELECT 1"))

        def cut_mid_transaction() -> None:
            with db.write() as conn:
                conn.execute(text("SELECT 1"))
                proxy.partition()
                conn.execute(text("SELECT 2"))

        with pytest.raises(StoreUnavailable):
            cut_mid_transaction()
        with pytest.raises(StoreUnavailable), db.read() as conn:
            conn.execute(text("SELECT 1"))

        def ping() -> int:
            with db.read() as conn:
                return int(conn.execute(text("SELECT 1")).scalar_one())

        with pytest.raises(StoreUnavailable):  # refused while partitioned, retries bounded
            db.retrying(ping, attempts=2, delay=0.01)
        proxy.heal()
        with db.read() as conn:  # the pool replaced its dead connections (pre-ping)
            assert conn.execute(text("SELECT 1")).scalar() == 1
        with db.write() as conn:
            assert conn.execute(text("SELECT 2")).scalar() == 2
    finally:
        db.dispose()


def test_no_free_connection_in_time_is_store_unavailable(pg_schema: str) -> None:
    db = Database(create_engine(pg_schema, pool_size=1, max_overflow=0, pool_timeout=0.2))
    held = db.engine.connect()
    try:
        with pytest.raises(StoreUnavailable, match="came free"), db.read() as conn:
            conn.execute(text("SELECT 1"))
        with pytest.raises(StoreUnavailable, match="came free"), db.write() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        held.close()
        db.dispose()


def test_a_stalled_replica_does_not_hold_the_write_lock(pg_schema: str, proxy: TcpProxy) -> None:
    """Replica A takes the advisory write lock, then its network stalls (packets silently dropped).
    The server ends A's session after the idle-in-transaction limit, which frees the lock: replica
    B writes, instead of waiting for A's network to come back."""
    a = Database(make_engine(via(proxy, pg_schema), pool_size=1, idle_in_transaction=1.0))
    b = Database(make_engine(pg_schema, pool_size=1))
    locked, outcome = threading.Event(), []

    def replica_a() -> None:
        try:
            with a.write() as conn:  # holds the write lock from here on
                locked.set()
                time.sleep(0.3)  # the stall begins meanwhile
                conn.execute(text("SELECT 1"))
        except StoreUnavailable as exc:
            outcome.append(exc)

    thread = threading.Thread(target=replica_a)
    thread.start()
    try:
        assert locked.wait(10)
        proxy.stall()
        began = time.monotonic()
        with b.write() as conn:  # waits for the advisory lock A holds
            conn.execute(text("SELECT 1"))
        waited = time.monotonic() - began
        proxy.heal()
        thread.join(20)
    finally:
        proxy.heal()
        thread.join(20)
        a.dispose()
        b.dispose()
    assert waited < 5.0, waited  # the 1 s limit plus the server's check, not "until A is back"
    assert len(outcome) == 1  # A learned its transaction is gone, and nothing of it was stored
