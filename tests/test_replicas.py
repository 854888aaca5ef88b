"""Several ``paramedic serve`` replicas on one PostgreSQL, behind HAProxy (DESIGN §1, §4, §6).

- Two real Alertmanagers in an HA cluster, each sending to every replica through the load
  balancer, deliver the same alert to different replicas: one incident, one action.
- Alerts spread over three replicas: each run is claimed by exactly one replica
  (``FOR UPDATE SKIP LOCKED`` plus a lease), each action runs once, and the blast-radius limit holds
  across processes because the guardrail check locks its scope rows in the action's transaction.

The action is an ``http.request`` to a receiver in this process that counts what it gets.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from paramedic.core.guardrails import scope_key
from paramedic.store import state
from paramedic.store.db import Database, make_engine
from paramedic.store.tables import audit, incidents, ledger, runs
from tests.support import wait_for
from tests.support.postgres import fresh_schema, require_pg_url
from tests.support.services import Haproxy, Serve, alertmanager_pair, replicas
from tests.support.services import serve_config as replica_config
from tests.test_alertmanager_integration import Receiver, runbook_yaml
from tests.test_guardrails_concurrency import Receiver as ConcurrencyReceiver

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with fresh_schema(require_pg_url()) as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def deliveries_by_replica(members: list[Serve], source: str) -> list[float]:
    """How many alert deliveries of ``source`` each replica stored (its own /metrics)."""
    pattern = re.compile(rf'^paramedic_alerts_total\{{[^}}]*source="{source}"[^}}]*\}} ([0-9.e+]+)$', re.M)
    out = []
    for r in members:
        text = httpx.get(f"{r.url}/metrics", timeout=5).text
        out.append(sum(float(v) for v in pattern.findall(text)))
    return out


def db_rows(url: str, query: Any) -> list[Any]:
    db = Database(make_engine(url, pool_size=1))
    try:
        with db.read() as conn:
            return list(conn.execute(query).all())
    finally:
        db.dispose()


def test_ha_alertmanager_pair_through_haproxy_one_incident_one_action(
    tmp_path: Path, pg_schema: str, receiver: Receiver
) -> None:
    alertname = f"HaDup{uuid.uuid4().hex[:8]}"
    rb = runbook_yaml(alertname, f"{receiver.url}/action")
    configs = [replica_config(tmp_path, database=pg_schema, runbooks=rb, name=f"r{i}") for i in range(3)]
    with replicas(configs) as members:
        lb = Haproxy(tmp_path / "haproxy", members)
        try:
            hook = f"{lb.url}/api/v1/alerts/alertmanager"
            # A peer timeout shorter than gossip takes: both peers notify, as an HA pair does
            # whenever gossip lags; round robin hands the two copies to two different replicas.
            with alertmanager_pair(tmp_path, webhooks=[hook, f"{receiver.url}/capture"], peer_timeout="1ms") as pair:
                alert = {
                    "labels": {"alertname": alertname, "service": "web", "instance": "127.0.0.1:18081"},
                    "annotations": {"summary": "down"},
                    "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                }
                for am in pair:  # Prometheus sends every alert to every Alertmanager of the pair
                    am.push([alert])
                wait_for(lambda: len(receiver.bodies("/capture")) >= 2, timeout=20)
                wait_for(lambda: len(receiver.bodies("/action")) >= 1, timeout=20)
                time.sleep(2.0)  # a second action, if one had been started, would have arrived by now
                per_replica = deliveries_by_replica(members, "alertmanager")

                # Replay what Alertmanager sent six times at once: every replica gets two copies.
                captured = json.dumps(receiver.bodies("/capture")[0]).encode()
                barrier = threading.Barrier(6)

                def send(_: int) -> int:
                    with httpx.Client(timeout=30) as c:
                        barrier.wait(10)
                        return c.post(hook, content=captured, headers={"Content-Type": "application/json"}).status_code

                with ThreadPoolExecutor(6) as pool:
                    codes = list(pool.map(send, range(6)))
                time.sleep(1.5)
                after_replay = deliveries_by_replica(members, "alertmanager")
        finally:
            lb.stop()

    assert codes == [202] * 6
    assert sum(1 for n in per_replica if n >= 1) >= 2, f"both copies went to one replica: {per_replica}"
    assert all(n >= 1 for n in after_replay), after_replay
    assert len(receiver.bodies("/action")) == 1, receiver.bodies("/action")
    rows = db_rows(pg_schema, select(incidents.c.id, incidents.c.deliveries).where(incidents.c.alertname == alertname))
    assert len(rows) == 1, rows
    assert rows[0].deliveries == sum(after_replay) >= 8
    kinds = Counter(r.kind for r in db_rows(pg_schema, select(audit.c.kind)))
    assert kinds["incident.opened"] == 1
    assert kinds["run.created"] == 1
    assert kinds["step.started"] == 1
    assert kinds["run.succeeded"] == 1


TARGETS = [f"10.0.0.{i}:80" for i in range(1, 31)]
MAX_CONCURRENT = 2


def spread_runbook(url: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {{alertname: ReplicaSpread, labels: {{service: web}}}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    guardrails:
      rate_limit: {{max: 1, per: 1h, scope: target}}
      blast_radius: {{scope: [service], max_concurrent: {MAX_CONCURRENT}, max_fraction: 1.0}}
    steps:
      - action: http.request
        with: {{url: "{url}/restart/{{{{ labels.instance }}}}", method: POST}}
"""


def test_runs_spread_over_three_replicas_run_once_within_guardrails(tmp_path: Path, pg_schema: str) -> None:
    target = ConcurrencyReceiver()  # records true concurrency; each request takes 0.3 s
    try:
        configs = [
            replica_config(tmp_path, database=pg_schema, runbooks=spread_runbook(target.url), name=f"r{i}", workers=4)
            for i in range(3)
        ]
        with replicas(configs) as members:
            db = Database(make_engine(pg_schema, pool_size=1))
            try:  # the inventory a probe would provide
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
            lb = Haproxy(tmp_path / "haproxy", members)
            try:
                # every alert twice, so that the two copies land on different replicas
                bodies = [{"name": "ReplicaSpread", "labels": {"service": "web", "instance": t}} for t in TARGETS] * 2

                def send(body: dict[str, Any]) -> int:
                    with httpx.Client(timeout=30) as c:
                        return c.post(f"{lb.url}/api/v1/alerts", json=body).status_code

                with ThreadPoolExecutor(12) as pool:
                    codes = list(pool.map(send, bodies))

                def settled() -> bool:
                    rows = db_rows(pg_schema, select(runs.c.status))
                    return len(rows) == len(TARGETS) and all(r.status not in ("pending", "running") for r in rows)

                wait_for(settled, timeout=60, every=0.3)
                time.sleep(0.5)
            finally:
                lb.stop()
            pids = {r.pid for r in members}
    finally:
        target.close()

    assert codes == [202] * len(bodies)
    assert len(db_rows(pg_schema, select(incidents.c.id))) == len(TARGETS)
    acted = [r.target for r in db_rows(pg_schema, select(ledger.c.target))]
    assert len(acted) == len(set(acted)) >= 1  # one action per target at most
    assert sum(target.hits.values()) == len(acted)
    assert max(target.hits.values()) == 1
    assert target.peak <= MAX_CONCURRENT, target.peak
    statuses = Counter(r.status for r in db_rows(pg_schema, select(runs.c.status)))
    assert statuses["succeeded"] == len(acted)
    assert statuses["refused"] == len(TARGETS) - len(acted)
    # the runs were claimed by more than one process (the owner is host:pid:nonce/worker)
    owners = {
        int(r.actor.split(":")[1])
        for r in db_rows(pg_schema, select(audit.c.actor).where(audit.c.kind == "step.started"))
    }
    assert owners <= pids
    assert len(owners) >= 2, owners
