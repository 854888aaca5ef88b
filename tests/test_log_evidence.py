"""Logs as an engineer reads them: Loki as a source, errors first, the excerpt in every ticket,
and a runbook that declines still gathering its own evidence.

No Loki runs on this machine: it is tested at paramedic's boundary, a loopback HTTP server that
answers ``GET /loki/api/v1/query_range`` as Loki's HTTP API documents it (``streams`` result,
``[<unix ns string>, <line>]`` values) and checks the request's parameters.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.config import Config
from paramedic.engine import enrichment
from paramedic.engine.service import Paramedic
from paramedic.engine.summary import EvidenceFact, IncidentFacts, compose, log_excerpt
from paramedic.enrich.base import CollectError, EnrichRequest, EvidenceStatus
from paramedic.enrich.logs import log_evidence
from paramedic.enrich.loki import LokiCollector, stream_lines
from paramedic.store.rows import IncidentRow
from tests.conftest import write_runbooks

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
NS = int(NOW.timestamp() * 1e9)


def streams(*entries: tuple[str, int, str]) -> dict[str, Any]:
    """Loki's documented ``query_range`` answer for a log query."""
    by: dict[str, list[list[str]]] = {}
    for pod, offset, line in entries:
        by.setdefault(pod, []).append([str(NS - offset * 1_000_000_000), line])
    return {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [{"stream": {"app": "web", "pod": pod}, "values": values} for pod, values in by.items()],
            "stats": {},
        },
    }


class FakeLoki:
    def __init__(self, answer: Mapping[str, Any], status: int = 200) -> None:
        self.answer, self.status = dict(answer), status
        self.requests: list[tuple[str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append((url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}))
                ok = url.path == "/loki/api/v1/query_range"
                data = json.dumps(fake.answer if ok else {"error": "not found"}).encode()
                self.send_response(fake.status if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    fake = FakeLoki(
        streams(
            ("web-1", 30, "GET /cart 200"),
            ("web-2", 20, "ERROR payment gateway timed out token=hunter2"),
            ("web-1", 10, "GET /cart 200"),
            ("web-2", 5, "retrying"),
        )
    )
    yield fake
    fake.close()


def collect(url: str | None, options: Mapping[str, Any]) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            req = EnrichRequest(1, "WebErrors", {"app": "web"}, NOW - timedelta(minutes=2), NOW, options)
            return await LokiCollector(client, default_url=url).collect(req)

    return asyncio.run(go())


def test_loki_lines_are_merged_by_time_redacted_and_errors_come_first(loki: FakeLoki) -> None:
    ev = collect(loki.url, {"query": '{app="web"}', "lines": 50, "range": "15m"})
    assert ev.status is EvidenceStatus.OK
    assert ev.data["lines"] == [
        "GET /cart 200",
        "ERROR payment gateway timed out token=[redacted]",
        "GET /cart 200",
        "retrying",
    ]
    ((path, query),) = loki.requests
    assert path == "/loki/api/v1/query_range"
    assert query["query"] == '{app="web"}'
    assert (query["direction"], query["limit"]) == ("backward", "50")
    assert int(query["end"]) == NS
    assert int(query["end"]) - int(query["start"]) == 15 * 60 * 1_000_000_000  # nanoseconds
    body = ev.body
    assert body.index("Lines that look like errors") < body.index("Last 4 lines")
    assert ev.headline.startswith("4 lines, 1 looks like errors; last: `ERROR payment gateway")


def test_loki_refusals_and_metric_queries_are_clear_errors(loki: FakeLoki) -> None:
    with pytest.raises(CollectError, match=r"settings\.loki_url"):
        collect(None, {"query": '{app="web"}'})
    with pytest.raises(CollectError, match="needs a LogQL query"):
        collect(loki.url, {})
    loki.answer = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(CollectError, match="not a metric query"):
        collect(loki.url, {"query": 'rate({app="web"}[1m])'})
    loki.status, loki.answer = 400, {"error": "parse error at line 1"}
    with pytest.raises(CollectError, match=r"Loki refused the query \(400\)"):
        collect(loki.url, {"query": "{app="})


def test_stream_lines_ignore_malformed_values() -> None:
    body = streams(("a", 2, "one"), ("b", 1, "two"))
    body["data"]["result"].append({"values": [["x"], "nope", ["notanumber", "three"]]})
    assert stream_lines(body) == ["three", "one", "two"]  # an unreadable timestamp sorts first


# ---- the excerpt a ticket shows ------------------------------------------------------------------
def incident() -> IncidentRow:
    return IncidentRow(
        id=9, source="alertmanager", fingerprint="f", starts_at=NOW, group_key="", alertname="WebErrors",
        service="web", severity="page", labels={"alertname": "WebErrors", "service": "web"}, annotations={},
        status="escalated", runbooks=[], handled_by="", deliveries=1, first_seen_at=NOW, last_seen_at=NOW,
        acknowledged_at=None, mitigated_at=None, escalated_at=NOW, resolved_at=None, ends_at=None, generator_url="",
    )  # fmt: skip


def test_a_ticket_carries_the_log_excerpt_errors_first_not_just_a_headline() -> None:
    lines = [f"line {i}" for i in range(40)]
    lines[3] = "ERROR db connection refused"
    lines[4] = "Traceback (most recent call last):"
    ev = log_evidence("Last 40 lines of web.log", "/var/log/web.log", lines)
    excerpt = log_excerpt(ev.data)
    assert excerpt[:2] == ("ERROR db connection refused", "Traceback (most recent call last):")
    assert excerpt[2:] == tuple(f"line {i}" for i in range(30, 40))
    fact = EvidenceFact(1, "logs", ev.title, "ok", ev.headline, False, excerpt)
    text = compose(IncidentFacts(incident(), (), (fact,)), event="escalated", reason="", now=NOW)
    assert "**Log excerpt: Last 40 lines of web.log**" in text
    assert "ERROR db connection refused\nTraceback" in text
    assert text.index("**Log excerpt") > text.index("**Evidence**")


def test_a_log_line_cannot_close_the_excerpts_code_block() -> None:
    fact = EvidenceFact(1, "logs", "t", "ok", "h", False, ("```", "<!channel> ``` @team"))
    text = compose(IncidentFacts(incident(), (), (fact,)), event="escalated", reason="", now=NOW)
    block = text.split("**Log excerpt: t**\n\n", 1)[1]
    fence = block.split("\n", 1)[0]
    assert set(fence) == {"`"}
    assert len(fence) > 3  # longer than any run of backticks inside, so the lines stay inside it


# ---- a runbook that declines still gathers its own evidence --------------------------------------
RUNBOOK = """
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {alertname: WebDown}
    target: "{{ labels.instance }}"
    mode: auto
    params:
      instance: {pattern: '^[a-z0-9.-]{1,64}$'}
    enrich:
      - logs: {program: "web:{{ labels.program }}", lines: 50}
      - prometheus: {query: 'up{instance="{{ labels.instance }}"}', range: 15m}
    steps:
      - action: shell.run
        with: {argv: ["true", "{{ labels.instance }}"]}
"""


def test_a_runbook_whose_label_fails_its_pattern_still_gathers_its_own_evidence(tmp_path: Path) -> None:
    rb = write_runbooks(tmp_path / "rb", RUNBOOK)
    pm = Paramedic.from_config(Config(database=f"sqlite:///{tmp_path / 'pm.db'}", runbooks=[str(rb)]))

    async def go() -> list[Any]:
        labels = {"instance": "web-1; rm -rf /", "program": "web-1", "service": "web"}
        (result,) = await pm.ingest([Alert("generic", "fp1", "WebDown", AlertStatus.FIRING, NOW, labels)])
        enricher = enrichment.build(
            config=pm.config, registry=pm.registry, db=pm.db, clock=pm.clock, http=None, runbook_of=pm.runbooks.get
        )
        assert result.incident_id
        facts = enricher.read_facts(result.incident_id)
        assert facts is not None
        return enricher.specs_for(facts)

    specs = asyncio.run(go())
    pm.db.dispose()
    assert ("logs", {"program": "web:web-1", "lines": 50}) in specs  # its own, rendered
    (failed,) = [s for s in specs if not isinstance(s, tuple)]
    assert failed.status is EvidenceStatus.FAILED
    assert "instance" in failed.body  # the label that failed its pattern, said as the reason
    assert ("changes", {}) in specs
