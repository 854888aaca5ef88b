"""Guardrails under real concurrency: 200 alerts for 50 targets of one service arrive within one
second as concurrent HTTP requests to a real server. The limits hold on SQLite and PostgreSQL,
because the check and the reservation happen in one transaction."""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from paramedic.core.guardrails import scope_key
from paramedic.store import state
from paramedic.store.tables import ledger, runs
from tests.conftest import Server

TARGETS = [f"10.0.0.{i}:80" for i in range(1, 51)]
# Every target alerts, so every target is unhealthy: min_healthy (tested on its own in
# test_guardrails.py) would refuse all of them. This test is about the three limits that
# concurrency can break: max_concurrent, max_fraction and the rate limit.
MAX_CONCURRENT, MAX_FRACTION, TOUCHABLE = 3, 0.2, 10  # floor(0.2 * 50) = 10


class Receiver:
    """A local endpoint standing in for the remediated system; it records true concurrency."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.hits: Counter[str] = Counter()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.peak = max(receiver.peak, receiver.in_flight)
                    receiver.hits[self.path] += 1
                time.sleep(0.3)
                with receiver.lock:
                    receiver.in_flight -= 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def runbook(url: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {{alertname: InstanceDown, labels: {{service: web}}}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    guardrails:
      rate_limit: {{max: 1, per: 1h, scope: target}}
      blast_radius: {{scope: [service], max_concurrent: {MAX_CONCURRENT}, max_fraction: {MAX_FRACTION}, min_healthy: 0}}
    steps:
      - action: http.request
        with: {{url: "{url}/restart/{{{{ labels.instance }}}}", method: POST}}
    params:
      instance: {{pattern: '^10\\.0\\.0\\.[0-9]+:80$'}}
"""


def test_limits_hold_for_200_concurrent_alerts(
    make_server: Callable[..., Server], database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    srv = make_server(runbook(receiver.url), database=database_url, workers=8)

    def seed(conn: object) -> None:  # the inventory a probe would provide: 50 healthy targets
        state.note_targets(
            conn,
            scope_key({"service": "web"}, ["service"]),
            [(t, True) for t in TARGETS],  # type: ignore[arg-type]
            origin="probe",
            now=datetime.now(UTC),
        )

    with srv.pm.db.write() as conn:
        seed(conn)

    clients = 25
    start = threading.Barrier(clients)

    def send(worker: int) -> list[int]:
        codes = []
        with httpx.Client(timeout=10) as c:
            c.get(f"{srv.url}/healthz")  # connect first, so the alerts themselves arrive together
            start.wait()
            for i in range(worker, 200, clients):
                target = TARGETS[i % 50]
                body = {
                    "name": "InstanceDown",
                    "labels": {"service": "web", "instance": target, "check": f"c{i // 50}"},
                }
                codes.append(c.post(f"{srv.url}/api/v1/alerts", json=body).status_code)
        return codes

    with ThreadPoolExecutor(max_workers=clients) as pool:
        codes = [code for batch in pool.map(send, range(clients)) for code in batch]
    assert codes == [202] * 200, Counter(codes)

    def settled(c: httpx.Client) -> bool:
        with srv.pm.db.read() as conn:
            pending = conn.execute(select(runs.c.id).where(runs.c.status.in_(("pending", "running")))).first()
        return pending is None

    srv.wait(settled, timeout=60)
    with srv.pm.db.read() as conn:
        statuses = Counter(r.status for r in conn.execute(select(runs.c.status)))
        reasons = Counter(r.reason.split(":")[0] for r in conn.execute(select(runs.c.reason)).all() if r.reason)
        acted = [r.target for r in conn.execute(select(ledger.c.target))]

    assert sum(statuses.values()) == 200
    assert receiver.peak <= MAX_CONCURRENT, receiver.peak
    assert len(set(acted)) <= TOUCHABLE
    assert len(acted) == len(set(acted))  # one action per target at most
    assert sum(receiver.hits.values()) == len(acted) >= 1
    assert max(receiver.hits.values()) == 1
    assert statuses["refused"] == 200 - len(acted)
    assert set(reasons) <= {"blast_radius", "rate_limited", "all steps succeeded (no verify configured)"}
