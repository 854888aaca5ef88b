"""Failures with real processes on loopback: replicas of ``paramedic serve`` on PostgreSQL.

- SIGKILL of the replica that is running a step: another replica takes the run over once the
  lease expires, verifies first, and repeats the step only if it is idempotent.
- PostgreSQL restarted (a private cluster of this test) while alerts arrive: paramedic retries a
  bounded number of times and answers 503 rather than accepting what it cannot store; the client
  retries until 202, and afterwards every accepted alert is in the database exactly once.
- A network partition from the database (an asyncio TCP proxy that drops every connection): the
  same guarantees.
- A slow step outlives its lease: heartbeats extend it, so nobody takes the run over; and when
  the heartbeats cannot reach the database, another replica takes over and the first one writes
  nothing more for that run (``LeaseLost``): the non-idempotent step runs once.

After each: nothing accepted is lost, nothing runs twice, every guardrail held, and the audit
chain verifies.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Select, func, select

from paramedic.core.audit import verify_chain
from paramedic.core.guardrails import scope_key
from paramedic.store import audit as audit_repo
from paramedic.store import state
from paramedic.store.db import Database, make_engine
from paramedic.store.tables import audit, incidents, ledger, runs, steps
from tests.support import wait_for
from tests.support.postgres import PrivateCluster, TcpProxy, fresh_schema, require_pg_url
from tests.support.services import replicas
from tests.support.services import serve_config as write_replica_config
from tests.test_crash_resume import CHECK_SCRIPT, STEP_SCRIPT, lines
from tests.test_guardrails_concurrency import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with fresh_schema(require_pg_url()) as url:
        yield url


def query(url: str, q: Select[Any]) -> list[Any]:
    db = Database(make_engine(url, pool_size=1))
    try:
        with db.read() as conn:
            return list(conn.execute(q).all())
    finally:
        db.dispose()


def assert_audit_chain_intact(url: str) -> None:
    db = Database(make_engine(url, pool_size=1))
    try:
        with db.read() as conn:
            seq, digest = audit_repo.head(conn)
            report = verify_chain(audit_repo.iter_entries(conn), head_seq=seq, head_hash=digest)
    finally:
        db.dispose()
    assert report.ok, report


def owner_pid(owner: str) -> int:
    """A lease owner is ``host:pid:nonce/wN``."""
    return int(owner.split(":")[1])


# ---- a step that takes a while, counted by the lines it appends -------------------------------------


def step_runbook(workdir: Path, *, name: str, idempotent: bool, seconds: float, verify_lines: int | None) -> str:
    """``shell.run`` of a script that appends a line to ``counter`` and sleeps. Verification passes
    once the counter has ``verify_lines`` lines (never, when None)."""
    (workdir / "step.py").write_text(STEP_SCRIPT)
    (workdir / "check.py").write_text(CHECK_SCRIPT)
    counter = workdir / "counter"
    step = [sys.executable, str(workdir / "step.py"), str(counter), "-", str(workdir / "pids"), str(seconds)]
    check = [sys.executable, str(workdir / "check.py"), str(counter), str(verify_lines or 10**6)]
    return textwrap.dedent(
        f"""\
        apiVersion: paramedic/v1
        runbooks:
          - name: {name}
            owner: team-web
            match: {{alertname: SlowStep, labels: {{service: web}}}}
            target: "{{{{ labels.instance }}}}"
            mode: auto
            steps:
              - action: shell.run
                with: {{argv: {step!r}, timeout: 60}}
                idempotent: {"true" if idempotent else "false"}
            verify:
              command: {{argv: {check!r}, within: 1s, every: 200ms}}
            on_failure: escalate
        """
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Step scripts run detached from paramedic, in a session of their own: stopping a replica
    (``tests.support.process``) ends them too, by the marker they inherit."""
    return tmp_path


def fire(url: str) -> int:
    r = httpx.post(
        f"{url}/api/v1/alerts",
        json={"name": "SlowStep", "labels": {"service": "web", "instance": "127.0.0.1:9"}},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    return int(r.json()["alerts"][0]["incident_id"])


def the_run(url: str) -> Any:
    [run] = query(url, select(runs))
    return run


def run_ended(url: str) -> Callable[[], bool]:
    def check() -> bool:
        rows = query(url, select(runs.c.status))
        return len(rows) == 1 and rows[0].status not in ("pending", "running", "approved")

    return check


@dataclass(frozen=True)
class Entry:
    kind: str
    actor: str
    data: dict[str, Any]


def timeline(url: str) -> list[Entry]:
    rows = query(url, select(audit.c.kind, audit.c.actor, audit.c.data).order_by(audit.c.seq))
    return [Entry(r.kind, r.actor, json.loads(r.data)) for r in rows]


@pytest.mark.parametrize(
    ("idempotent", "verify_lines", "expect_run", "expect_lines"),
    [
        pytest.param(False, None, "failed", 1, id="non-idempotent-not-repeated-escalated"),
        pytest.param(True, 2, "succeeded", 2, id="idempotent-re-executed-by-the-survivor"),
    ],
)
def test_sigkill_replica_mid_step_survivor_takes_over_after_lease(
    workdir: Path, pg_schema: str, idempotent: bool, verify_lines: int | None, expect_run: str, expect_lines: int
) -> None:
    rb = step_runbook(workdir, name="slow", idempotent=idempotent, seconds=3.0, verify_lines=verify_lines)
    configs = [write_replica_config(workdir, database=pg_schema, runbooks=rb, name=f"r{i}") for i in range(2)]
    counter = workdir / "counter"
    with replicas(configs) as members:
        by_pid = {r.pid: r for r in members}
        fire(members[0].url)
        wait_for(lambda: lines(counter) == 1, timeout=20)  # the step is running now, on some replica
        run = the_run(pg_schema)
        victim = by_pid[owner_pid(run.lease_owner)]
        survivor = next(r for r in members if r is not victim)
        victim.kill()
        killed_at = time.monotonic()
        wait_for(run_ended(pg_schema), timeout=30, every=0.2)
        time.sleep(0.5)  # nothing more may happen after the run ended
        assert survivor.ready()

    run = the_run(pg_schema)
    [step] = query(pg_schema, select(steps))
    events = timeline(pg_schema)
    resumed = [e for e in events if e.kind == "run.resumed"]
    assert len(resumed) == 1
    assert owner_pid(resumed[0].actor) == survivor.pid
    assert owner_pid(resumed[0].data["previous_owner"]) == victim.pid
    assert time.monotonic() - killed_at >= 1.0  # taken over only once the 2 s lease had expired
    assert run.status == expect_run, run.reason
    assert lines(counter) == expect_lines
    assert step.attempts == expect_lines
    assert [e.kind for e in events].count("step.started") == expect_lines
    if not idempotent:
        assert step.reason == "unknown_outcome"
        assert "not idempotent" in run.reason
        [inc] = query(pg_schema, select(incidents.c.status))
        assert inc.status == "escalated"
    assert_audit_chain_intact(pg_schema)


def test_slow_step_outlives_its_lease_heartbeats_keep_it(workdir: Path, pg_schema: str) -> None:
    rb = step_runbook(workdir, name="slow", idempotent=True, seconds=5.0, verify_lines=1)
    configs = [write_replica_config(workdir, database=pg_schema, runbooks=rb, name=f"r{i}") for i in range(2)]
    counter = workdir / "counter"
    with replicas(configs) as members:
        fire(members[0].url)
        wait_for(lambda: lines(counter) == 1, timeout=20)
        first = the_run(pg_schema)
        time.sleep(2.5)  # longer than the 2 s lease
        second = the_run(pg_schema)
        wait_for(run_ended(pg_schema), timeout=30, every=0.2)

    assert second.status == "running"
    assert second.lease_owner == first.lease_owner
    assert second.lease_until > first.lease_until  # extended by heartbeats
    run = the_run(pg_schema)
    assert run.status == "succeeded", run.reason
    assert run.attempts == 1
    assert lines(counter) == 1
    assert "run.resumed" not in [e.kind for e in timeline(pg_schema)]


def test_heartbeat_lost_to_a_partition_no_double_execution(workdir: Path, pg_schema: str) -> None:
    """Replica A reaches PostgreSQL through a proxy; while its slow step runs, the proxy cuts it
    off. Its heartbeats fail, the lease expires, replica B takes the run over. When A's network
    heals and its step ends, A must write nothing for that run: B's verdict stands."""
    host_port = query(pg_schema, select(func.inet_server_port()))[0][0]
    rb = step_runbook(workdir, name="slow", idempotent=False, seconds=7.0, verify_lines=None)
    with TcpProxy("127.0.0.1", int(host_port or 5432)) as proxy:
        via_proxy = pg_schema.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
        assert via_proxy != pg_schema, "the test needs PARAMEDIC_TEST_POSTGRES_URL on 127.0.0.1:5432"
        a_cfg = write_replica_config(workdir, database=via_proxy, runbooks=rb, name="a")
        b_cfg = write_replica_config(workdir, database=pg_schema, runbooks=rb, name="b")
        counter = workdir / "counter"
        with replicas([a_cfg]) as [a]:
            fire(a.url)
            wait_for(lambda: lines(counter) == 1, timeout=20)
            assert owner_pid(the_run(pg_schema).lease_owner) == a.pid
            with replicas([b_cfg]) as [b]:
                proxy.partition()
                wait_for(lambda: any(e.kind == "run.resumed" for e in timeline(pg_schema)), timeout=20)
                proxy.heal()  # A is back before its step ends: it must notice it lost the lease
                wait_for(run_ended(pg_schema), timeout=30, every=0.2)
                time.sleep(0.5)
                ended = the_run(pg_schema)
                wait_for(lambda: not (workdir / "pids").exists() or _step_done(workdir), timeout=20)
                time.sleep(1.5)  # A's step has ended; give A time to (wrongly) write its result
                assert a.ready()
                assert b.ready()

    run = the_run(pg_schema)
    [step] = query(pg_schema, select(steps))
    events = timeline(pg_schema)
    resumed = next(e for e in events if e.kind == "run.resumed")
    assert owner_pid(resumed.actor) == b.pid
    assert lines(counter) == 1  # the non-idempotent step ran once
    assert run.status == ended.status == "failed"
    assert step.status == "failed"
    assert step.reason == "unknown_outcome"
    after = events[events.index(resumed) :]
    assert not [e for e in after if e.actor and ":" in e.actor and owner_pid(e.actor) == a.pid], after
    assert_audit_chain_intact(pg_schema)


def _step_done(workdir: Path) -> bool:
    """The step script has ended (its pid is gone)."""
    for pid in (workdir / "pids").read_text().split():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        return False
    return True


# ---- alerts arriving while the database goes away -----------------------------------------------------

ALERTS = 160
TARGETS = [f"10.1.{i // 200}.{i % 200}:80" for i in range(ALERTS)]
MAX_CONCURRENT = 3


def storm_runbook(url: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {{alertname: Storm, labels: {{service: web}}}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    guardrails:
      rate_limit: {{max: 1, per: 1h, scope: target}}
      blast_radius: {{scope: [service], max_concurrent: {MAX_CONCURRENT}, max_fraction: 1.0}}
    steps:
      - action: http.request
        with: {{url: "{url}/restart/{{{{ labels.instance }}}}", method: POST}}
"""


@dataclass
class Storm:
    """What the clients saw: every response code, and errors that were not HTTP responses."""

    codes: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def send_until_accepted(urls: list[str], bodies: list[dict[str, Any]], storm: Storm, *, rate: float) -> None:
    """Each client sends its share of alerts at ``rate``/s, retrying each one (on the next replica)
    until it is answered 202; bounded by a deadline per alert."""

    def client(n: int) -> None:
        with httpx.Client(timeout=15) as c:
            for i in range(n, len(bodies), 4):
                began, attempt = time.monotonic(), 0
                while time.monotonic() - began < 45:
                    url = urls[(i + attempt) % len(urls)]
                    attempt += 1
                    try:
                        r = c.post(f"{url}/api/v1/alerts", json=bodies[i])
                    except httpx.HTTPError as exc:
                        with storm.lock:
                            storm.transport_errors[type(exc).__name__] += 1
                        time.sleep(0.2)
                        continue
                    with storm.lock:
                        storm.codes[r.status_code] += 1
                    if r.status_code == 202:
                        with storm.lock:
                            storm.accepted.add(bodies[i]["labels"]["instance"])
                        break
                    time.sleep(0.2)
                time.sleep(4 / rate)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client, range(4)))


def seed_targets(url: str) -> None:
    db = Database(make_engine(url, pool_size=1))
    try:
        with db.write() as conn:
            state.note_targets(
                conn,
                scope_key({"service": "web"}, ["service"]),
                [(t, True) for t in TARGETS],
                origin="probe",
                now=datetime.now(UTC),
            )
    finally:
        db.dispose()


def storm_with(
    tmp_path: Path, *, replica_db: str, check_db: str, disrupt: Callable[[], None]
) -> tuple[Storm, Counter[int], Receiver]:
    """Two replicas on ``replica_db``; alerts sent at 40/s; ``disrupt`` runs about a second in."""
    target = Receiver()
    try:
        rb = storm_runbook(target.url)
        configs = [
            write_replica_config(tmp_path, database=replica_db, runbooks=rb, name=f"r{i}", workers=3) for i in range(2)
        ]
        with replicas(configs) as members:
            seed_targets(check_db)
            bodies = [{"name": "Storm", "labels": {"service": "web", "instance": t}} for t in TARGETS]
            storm = Storm()
            ready: Counter[int] = Counter()
            done = threading.Event()

            def watch_readiness() -> None:
                with httpx.Client(timeout=5) as c:
                    while not done.is_set():
                        try:
                            ready[c.get(f"{members[0].url}/readyz").status_code] += 1
                        except httpx.HTTPError:
                            ready[0] += 1
                        time.sleep(0.1)

            watcher = threading.Thread(target=watch_readiness)
            watcher.start()
            sender = threading.Thread(
                target=send_until_accepted, args=([m.url for m in members], bodies, storm), kwargs={"rate": 40.0}
            )
            sender.start()
            try:
                time.sleep(1.0)
                disrupt()
            finally:
                sender.join(120)
            wait_for(lambda: all(m.ready() for m in members), timeout=20)
            done.set()
            watcher.join(10)

            def settled() -> bool:
                rows = query(check_db, select(runs.c.status))
                return len(rows) == ALERTS and all(r.status not in ("pending", "running") for r in rows)

            wait_for(settled, timeout=60, every=0.3)
            time.sleep(0.5)
    finally:
        target.close()
    return storm, ready, target


def assert_nothing_lost_nothing_twice(url: str, storm: Storm, ready: Counter[int], target: Receiver) -> None:
    # the client: every alert accepted in the end; paramedic said 503 (never 500) meanwhile
    assert storm.accepted == set(TARGETS)
    assert set(storm.codes) <= {202, 503}, storm.codes
    assert storm.codes[503] >= 1, "the disruption never reached an ingest request"
    assert not storm.transport_errors, storm.transport_errors
    assert ready[503] >= 1, ready  # readiness followed the database
    # the database: every accepted alert exactly once
    per_instance = Counter(
        r.labels["instance"] for r in query(url, select(incidents.c.labels).where(incidents.c.alertname == "Storm"))
    )
    assert per_instance == Counter({t: 1 for t in TARGETS})
    assert len(query(url, select(runs.c.id))) == ALERTS
    # the actions: at most once per target (rate limit), never more than MAX_CONCURRENT at once
    acted = [r.target for r in query(url, select(ledger.c.target))]
    assert len(acted) == len(set(acted))
    assert set(target.hits) <= {f"/restart/{t}" for t in acted}
    assert max(target.hits.values(), default=1) == 1
    assert target.peak <= MAX_CONCURRENT
    assert sum(target.hits.values()) >= 1
    statuses = Counter(r.status for r in query(url, select(runs.c.status)))
    assert set(statuses) <= {"succeeded", "refused", "failed"}, statuses
    failed = query(url, select(steps.c.reason).where(steps.c.status == "failed"))
    assert all(r.reason == "unknown_outcome" for r in failed), failed  # only steps cut by the outage
    assert_audit_chain_intact(url)


def test_postgres_restart_while_alerts_arrive(tmp_path: Path) -> None:
    require_pg_url()
    with PrivateCluster() as pg:

        def restart() -> None:
            pg.stop("fast")
            time.sleep(2.0)
            pg.start()

        storm, ready, target = storm_with(tmp_path, replica_db=pg.url, check_db=pg.url, disrupt=restart)
        assert_nothing_lost_nothing_twice(pg.url, storm, ready, target)


def test_partition_from_the_database_while_alerts_arrive(tmp_path: Path, pg_schema: str) -> None:
    host_port = query(pg_schema, select(func.inet_server_port()))[0][0]
    with TcpProxy("127.0.0.1", int(host_port or 5432)) as proxy:
        via_proxy = pg_schema.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
        assert via_proxy != pg_schema, "the test needs PARAMEDIC_TEST_POSTGRES_URL on 127.0.0.1:5432"

        def partition() -> None:
            proxy.partition()  # a short blip, then a longer cut
            time.sleep(0.3)
            proxy.heal()
            time.sleep(0.7)
            proxy.partition()
            time.sleep(2.0)
            proxy.heal()

        storm, ready, target = storm_with(tmp_path, replica_db=via_proxy, check_db=pg_schema, disrupt=partition)
        assert proxy.refused >= 1
    assert_nothing_lost_nothing_twice(pg_schema, storm, ready, target)
