"""Evidence collectors one by one, and how the engine runs them: concurrently, inside a time
budget, each failure or overrun recorded with its reason, never in the way of a remediation.

The metrics collector's happy path runs against a real Prometheus in ``test_enrich_prometheus``;
here a loopback fake checks the requests it makes exactly as Prometheus's HTTP API documents them
(``POST /api/v1/query_range`` and ``/api/v1/query`` with form-encoded ``query``, ``start``, ``end``,
``step``, ``time``, ``timeout``) and answers in the documented envelope.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from paramedic.core.config import Config
from paramedic.core.errors import ConfigError
from paramedic.engine.enrichment import Enricher, EnrichSettings, alert_expression
from paramedic.engine.service import Paramedic
from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, EvidenceStatus, Mark, fenced, number
from paramedic.enrich.changes import Change, ChangesCollector
from paramedic.enrich.logs import LogsCollector, redact_line
from paramedic.enrich.metrics import PrometheusCollector
from paramedic.enrich.target import TargetCollector, TargetReading
from paramedic.lab.supervisord import SupervisorHarness
from tests.conftest import write_runbooks
from tests.support import free_port, require_binary

T0 = datetime(2024, 5, 14, 9, 41, 20, tzinfo=UTC)


def request(options: Mapping[str, Any], **kw: Any) -> EnrichRequest:
    base: dict[str, Any] = {
        "incident_id": 1,
        "alertname": "HighErrorRate",
        "labels": {"service": "web", "instance": "h1"},
        "starts_at": T0,
        "now": T0 + timedelta(minutes=5),
        "options": options,
    }
    return EnrichRequest(**{**base, **kw})


# ---- metrics (against a fake Prometheus) ------------------------------------------------------
class FakePrometheus:
    """Answers Prometheus's query API; records each request's method, path and form fields."""

    def __init__(self, answer: Callable[[str, dict[str, str]], tuple[int, Any]]) -> None:
        self.calls: list[tuple[str, str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                fake.calls.append(("POST", self.path, self.headers.get("Content-Type", ""), form))
                status, body = answer(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _matrix(start: float) -> dict[str, Any]:
    def values(level: float) -> list[list[Any]]:
        return [[start + 15 * i, str(level if 8 < i < 14 else 0.01)] for i in range(25)]

    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"job": "web", "instance": "h1"}, "values": values(4.5)},
                {"metric": {"job": "web", "instance": "h2"}, "values": values(0.02)},
            ],
        },
    }


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    def answer(path: str, form: dict[str, str]) -> tuple[int, Any]:
        if "bad(" in form["query"]:
            return 400, {
                "status": "error",
                "errorType": "bad_data",
                "error": "1:4: parse error: unclosed left parenthesis",
            }
        if path == "/api/v1/query_range":
            return 200, _matrix(float(form["start"]))
        vector = [
            {"metric": {"job": "web", "instance": "h1"}, "value": [float(form["time"]), "0.5"]},
            {"metric": {"job": "web", "instance": "h2"}, "value": [float(form["time"]), "0.01"]},
        ]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": vector}}

    fake = FakePrometheus(answer)
    yield fake
    fake.close()


def test_metrics_queries_range_and_instant_and_draws_the_alert_and_actions(prom: FakePrometheus) -> None:
    async def go() -> Evidence:
        async with httpx.AsyncClient() as client:
            collector = PrometheusCollector(client, default_url=prom.url)
            marks = (Mark(T0, "alert fired", "alert"), Mark(T0 + timedelta(minutes=2), "supervisor.restart", "action"))
            return await collector.collect(
                request({"query": "rate(http_errors_total[1m])", "range": "10m"}, marks=marks)
            )

    ev = asyncio.run(go())
    assert ev.status is EvidenceStatus.OK
    assert ev.kind == "metrics"
    (rng, inst) = prom.calls
    assert rng[:3] == ("POST", "/api/v1/query_range", "application/x-www-form-urlencoded")
    assert rng[3]["query"] == "rate(http_errors_total[1m])"
    end = (T0 + timedelta(minutes=5)).timestamp()
    assert float(rng[3]["end"]) == end
    assert float(rng[3]["start"]) == end - 600
    assert rng[3]["step"] == "3s"
    assert rng[3]["timeout"] == "10s"
    assert inst[:2] == ("POST", "/api/v1/query")
    assert float(inst[3]["time"]) == end
    assert ev.image is not None
    assert ev.image.startswith(b"\x89PNG\r\n\x1a\n")
    assert ev.headline.startswith("2 series; highest now `instance=h1`: now **0.5**, peak 4.5")
    assert [s["label"] for s in ev.data["series"]] == ["instance=h1", "instance=h2"]
    assert ev.title == "rate(http_errors_total[1m]) over 10m00s"


def test_metrics_range_reaches_back_to_an_older_alert_start(prom: FakePrometheus) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            collector = PrometheusCollector(client, default_url=prom.url)
            await collector.collect(request({"query": "up", "range": "5m"}, now=T0 + timedelta(hours=1)))

    asyncio.run(go())
    start = float(prom.calls[0][3]["start"])
    assert start < T0.timestamp()  # the moment the alert fired is on the chart


@pytest.mark.parametrize(
    ("options", "default_url", "message"),
    [
        pytest.param({"query": "bad(", "range": "5m"}, True, "Prometheus refused the query (400 bad_data)", id="bad"),
        pytest.param({"range": "5m"}, True, "needs a query", id="no-query"),
        pytest.param({"query": "up", "range": "forever"}, True, "range: cannot parse", id="range"),
        pytest.param({"query": "up"}, False, "no Prometheus URL", id="no-url"),
        pytest.param({"query": "up", "url": "http://127.0.0.1:1"}, True, "cannot reach Prometheus", id="down"),
    ],
)
def test_metrics_failures_say_why(
    prom: FakePrometheus, options: dict[str, Any], default_url: bool, message: str
) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            collector = PrometheusCollector(client, default_url=prom.url if default_url else None)
            await collector.collect(request(options))

    with pytest.raises(CollectError) as err:
        asyncio.run(go())
    assert message in str(err.value)


# ---- logs ---------------------------------------------------------------------------------------
def test_file_tail_keeps_the_last_lines_and_redacts_secrets(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    lines = [f"line {i}" for i in range(5000)]
    lines += [
        "ERROR db connect failed: postgresql://app:hunter2@db:5432/app",
        'INFO request {"user": "ada", "password": "swordfish", "token":"abc123"}',
        "WARN Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    ]
    log.write_text("\n".join(lines) + "\n")
    ev = asyncio.run(LogsCollector().collect(request({"file": str(log), "lines": 4})))
    assert ev.status is EvidenceStatus.OK
    kept = ev.data["lines"]
    assert len(kept) == 4
    assert kept[0] == "line 4999"
    text = "\n".join(kept)
    for secret in ("hunter2", "swordfish", "abc123", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in text
        assert secret not in ev.body
    assert ev.data["error_lines"] == 1
    assert ev.headline.startswith("4 lines, 1 looks like errors; last: `ERROR db connect failed")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"file": "relative.log"}, "must be an absolute path", id="relative"),
        pytest.param({"file": "/var/log/../../etc/shadow"}, "without '..'", id="dotdot"),
        pytest.param({"file": "/nonexistent/x.log"}, "does not exist", id="missing"),
        pytest.param({"program": "web; rm -rf /"}, "not a supervisord process name", id="hostile"),
        pytest.param({"file": "/x", "program": "web"}, "exactly one of file", id="both"),
        pytest.param({"file": "/x", "lines": 0}, "lines must be between", id="lines"),
    ],
)
def test_log_specs_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(CollectError) as err:
        asyncio.run(LogsCollector().collect(request(options)))
    assert message in str(err.value)


def test_redaction_of_keyed_secrets() -> None:
    assert redact_line("api_key=AKIAIOSFODNN7EXAMPLE x") == "api_key=[redacted] x"
    assert redact_line("secret: 'p@ss'") == "secret: '[redacted]'"


@pytest.mark.integration
def test_supervisord_program_log_over_xmlrpc(tmp_path: Path) -> None:
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))
    from paramedic.actions.supervisor import make_proxy

    with SupervisorHarness(tmp_path / "sv", numprocs=1) as h:
        collector = LogsCollector(supervisor=lambda: make_proxy(h.url, timeout=5), supervisor_url=h.url)
        ev = asyncio.run(collector.collect(request({"program": "web:web-1", "lines": 50})))
        assert ev.status is EvidenceStatus.OK
        assert any("sample_service web-1 started" in line for line in ev.data["lines"])
        with pytest.raises(CollectError, match="supervisord has no process 'web:nope'"):
            asyncio.run(collector.collect(request({"program": "web:nope"})))
    down = LogsCollector(supervisor=lambda: make_proxy(f"http://127.0.0.1:{free_port()}/RPC2", timeout=2))
    with pytest.raises(CollectError, match="cannot reach supervisord"):
        asyncio.run(down.collect(request({"program": "web:web-1"})))


# ---- changes and target state ---------------------------------------------------------------
def test_changes_name_the_deploy_just_before_the_alert() -> None:
    seen: list[tuple[str, datetime, datetime]] = []

    async def source(service: str, since: datetime, until: datetime) -> list[Change]:
        seen.append((service, since, until))
        return [
            Change(T0 - timedelta(hours=20), "web", "deploy", "1.4.1", actor="ci"),
            Change(T0 - timedelta(minutes=4), "web", "deploy", "1.4.2", "feature *flag* [on](x)", "ci-bot"),
            Change(T0 + timedelta(minutes=1), "web", "config", "", "raised pool size", "ada"),
        ]

    ev = asyncio.run(ChangesCollector(source).collect(request({})))
    assert seen == [("web", T0 - timedelta(hours=24), T0 + timedelta(minutes=5))]
    assert ev.headline.startswith("**deploy of web `1.4.2` by ci-bot, 4m00s before the alert fired**")
    assert "3 change(s)" in ev.headline
    assert "1 after the alert fired" in ev.headline
    assert r"feature \*flag\* \[on\](x)" in ev.body  # untrusted CI text stays text
    assert [c["version"] for c in ev.data["changes"]] == ["", "1.4.2", "1.4.1"]


def test_no_changes_says_so() -> None:
    async def source(service: str, since: datetime, until: datetime) -> list[Change]:
        return []

    ev = asyncio.run(ChangesCollector(source).collect(request({"window": "2h"})))
    assert ev.body == "No recorded change to web in the 2h00m before the alert."


def test_target_state_comes_from_the_reader() -> None:
    async def reader(action: str, args: Mapping[str, Any]) -> TargetReading:
        assert (action, dict(args)) == ("supervisor.restart", {"program": "web:web-1"})
        return TargetReading("web:web-1", False, "BACKOFF, Exited too quickly", {"pid": "0"})

    collector = TargetCollector(reader)
    req = request({"action": "supervisor.restart", "args": {"program": "web:web-1"}})
    ev = asyncio.run(collector.collect(req))
    assert ev.headline == "`web:web-1`: BACKOFF, Exited too quickly (unhealthy)"
    assert collector.title(req) == "State of the target of supervisor.restart (program=web:web-1)"


def test_small_helpers() -> None:
    assert fenced(["a ``` b"]) == "````\na ``` b\n````"
    assert [number(x) for x in (0.012345, 4.2, 1234.0, 2.5e6, float("nan"))] == [
        "0.01235",
        "4.2",
        "1.234k",
        "2.5M",
        "NaN",
    ]
    url = "http://prom:9090/graph?g0.expr=sum%28up%7Bjob%3D%22web%22%7D%29+%3D%3D+0&g0.tab=1"
    assert alert_expression(url) == 'sum(up{job="web"}) == 0'
    assert alert_expression("https://grafana.example.com/alerting/x/view") is None


# ---- the engine: budget, timeouts, failures --------------------------------------------------
class Slow:
    kind = "slow"

    def title(self, request: EnrichRequest) -> str:
        return "slow one"

    async def collect(self, request: EnrichRequest) -> Evidence:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")


class Broken:
    kind = "broken"

    def title(self, request: EnrichRequest) -> str:
        return "broken one"

    async def collect(self, request: EnrichRequest) -> Evidence:
        raise CollectError("the thing is down")


class Buggy:
    kind = "buggy"

    def title(self, request: EnrichRequest) -> str:
        return "buggy one"

    async def collect(self, request: EnrichRequest) -> Evidence:
        raise KeyError("missing")


class Quick:
    kind = "quick"

    def title(self, request: EnrichRequest) -> str:
        return "quick one"

    async def collect(self, request: EnrichRequest) -> Evidence:
        await asyncio.sleep(0.2)
        return Evidence("quick", "quick one", EvidenceStatus.OK, f"instance {request.labels['instance']}", {"n": 1})


def _pm(tmp_path: Path, defaults: list[dict[str, Any]], runbooks: str = "") -> Paramedic:
    rb = write_runbooks(tmp_path / "rb", runbooks or "apiVersion: paramedic/v1\nrunbooks: []\n")
    cfg = Config(database=f"sqlite:///{tmp_path / 'pm.db'}", runbooks=[str(rb)], enrich_defaults=defaults)
    return Paramedic.from_config(cfg)


def test_collectors_run_concurrently_within_the_budget_and_failures_are_recorded(tmp_path: Path) -> None:
    defaults: list[dict[str, Any]] = [
        {"settings": {"budget": "1s", "timeout": "600ms"}},
        {"slow": {}},
        {"broken": {}},
        {"buggy": {}},
        {"quick": {"when": "{{ labels.instance }}"}},
        {"quick": {"when": "{{ labels.nope }}"}},
        {"unheard_of": {}},
    ]
    pm = _pm(tmp_path, defaults)
    from paramedic.core.alerts import Alert, AlertStatus

    async def go() -> tuple[float, list[Evidence]]:
        (res,) = await pm.ingest([Alert("generic", "fp1", "Mystery", AlertStatus.FIRING, T0, {"instance": "h9"})])
        assert res.incident_id is not None
        enricher = Enricher(
            db=pm.db,
            clock=lambda: T0 + timedelta(minutes=1),
            collectors=[Slow(), Broken(), Buggy(), Quick()],
            settings=EnrichSettings.from_config(defaults),
        )
        began = time.monotonic()
        found = await enricher.enrich(res.incident_id)
        return time.monotonic() - began, found

    elapsed, found = asyncio.run(go())
    assert elapsed < 1.5  # the 30 s collector was cut at its 0.6 s timeout; the others ran beside it
    by_title = {e.title: e for e in found}
    assert by_title["slow one"].status is EvidenceStatus.TIMEOUT
    assert by_title["slow one"].body == "no answer within 0.6s"
    assert by_title["broken one"].status is EvidenceStatus.FAILED
    assert by_title["broken one"].body == "the thing is down"
    assert "collector error: KeyError" in by_title["buggy one"].body
    assert by_title["quick one"].body == "instance h9"
    assert by_title["quick (enrich_defaults[5])"].body.startswith("not collected: ")  # label missing
    assert "no collector called 'unheard_of'" in by_title["unheard_of evidence"].body
    assert by_title["changes evidence"].status is EvidenceStatus.FAILED  # no changes collector given
    with pm.db.read() as conn:
        from sqlalchemy import select

        from paramedic.store.tables import evidence

        rows = conn.execute(select(evidence.c.title, evidence.c.status)).all()
    assert len(rows) == len(found) == 7
    pm.db.dispose()


def test_enrich_settings_are_validated() -> None:
    assert (
        EnrichSettings.from_config([{"settings": {"prometheus_url": "http://p:9090"}}]).prometheus_url
        == "http://p:9090"
    )
    bad: list[dict[str, Any]]
    for bad in ([{"settings": {"prometheus_url": "p:9090"}}], [{"settings": {"colour": 1}}], [{"a": {}, "b": {}}]):
        with pytest.raises(ConfigError):
            EnrichSettings.from_config(bad)


RUNBOOK = """
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {alertname: WebDown}
    mode: observe
    enrich:
      - prometheus: {query: 'up{instance="{{ labels.instance }}"}', range: 15m}
      - logs: {program: "web:{{ labels.program }}", lines: 50}
    steps:
      - action: supervisor.restart
        with: {program: "web:{{ labels.program }}"}
"""


def test_specs_of_a_runbook_incident_and_of_an_unknown_one(tmp_path: Path) -> None:
    settings = {"prometheus_url": "http://127.0.0.1:9", "alert_expression": True}
    pm = _pm(tmp_path, [{"settings": settings}], RUNBOOK)
    from paramedic.core.alerts import Alert, AlertStatus
    from paramedic.engine import enrichment

    async def go() -> list[Any]:
        labels = {"instance": "h1:80", "program": "web-1", "service": "web"}
        known, unknown = await pm.ingest(
            [
                Alert("generic", "fp1", "WebDown", AlertStatus.FIRING, T0, labels),
                Alert(
                    "alertmanager",
                    "fp2",
                    "Odd",
                    AlertStatus.FIRING,
                    T0,
                    {"service": "web"},
                    generator_url="http://prom:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
                ),
            ]
        )
        enricher = enrichment.build(config=pm.config, registry=pm.registry, db=pm.db, clock=pm.clock, http=None)
        assert known.incident_id
        assert unknown.incident_id
        facts = [enricher.read_facts(i) for i in (known.incident_id, unknown.incident_id)]
        return [enricher.specs_for(f) for f in facts if f is not None]

    known, unknown = asyncio.run(go())
    assert known == [
        ("prometheus", {"query": 'up{instance="h1:80"}', "range": "15m"}),
        ("logs", {"program": "web:web-1", "lines": 50}),
        ("target", {"action": "supervisor.restart", "args": {"program": "web:web-1"}}),
        ("changes", {}),
    ]
    assert unknown == [
        ("prometheus", {"query": "up == 0", "range": "30m", "title": "Odd: the alert's expression"}),
        ("changes", {}),
    ]
    pm.db.dispose()


def test_an_alerts_generator_url_runs_no_promql_unless_the_operator_enables_it(tmp_path: Path) -> None:
    """The generatorURL is alert text: by default its ``g0.expr`` never reaches Prometheus."""
    from paramedic.core.alerts import Alert, AlertStatus
    from paramedic.engine import enrichment

    hostile = "http://prom:9090/graph?g0.expr=count%28%7B__name__%3D~%22.%2B%22%7D%29+by+%28__name__%29&g0.tab=1"

    def specs(settings: dict[str, Any], where: str) -> list[Any]:
        pm = _pm(tmp_path / where, [{"settings": settings}])

        async def go() -> list[Any]:
            (r,) = await pm.ingest(
                [Alert("alertmanager", "fp", "Odd", AlertStatus.FIRING, T0, {"service": "web"}, generator_url=hostile)]
            )
            enricher = enrichment.build(config=pm.config, registry=pm.registry, db=pm.db, clock=pm.clock, http=None)
            assert r.incident_id
            facts = enricher.read_facts(r.incident_id)
            assert facts is not None
            return list(enricher.specs_for(facts))

        try:
            return asyncio.run(go())
        finally:
            pm.db.dispose()

    assert specs({"prometheus_url": "http://127.0.0.1:9"}, "default") == [("changes", {})]
    enabled = specs({"prometheus_url": "http://127.0.0.1:9", "alert_expression": True}, "enabled")
    assert enabled[0][1]["query"] == 'count({__name__=~".+"}) by (__name__)'
    with pytest.raises(ConfigError, match="alert_expression must be true or false"):
        EnrichSettings.from_config([{"settings": {"alert_expression": "yes"}}])


def test_the_logs_collector_refuses_symlinks_that_leave_its_folders(tmp_path: Path) -> None:
    """A log path can be rendered from alert labels: a link out of the allowed folders is not read."""
    logs, outside = tmp_path / "logs", tmp_path / "secret"
    logs.mkdir()
    outside.mkdir()
    (outside / "shadow").write_text("root:$6$hash\n")
    (logs / "web.log").write_text("GET / 200\n")
    (logs / "evil.log").symlink_to(outside / "shadow")
    (logs / "sub").symlink_to(outside, target_is_directory=True)
    (logs / "rotated.log").symlink_to(logs / "web.log")  # a link that stays inside is fine

    def tail(file: Path, allowed: tuple[str, ...] = ()) -> Evidence:
        return asyncio.run(LogsCollector(allowed=allowed).collect(request({"file": str(file), "lines": 5})))

    for hostile in (logs / "evil.log", logs / "sub" / "shadow"):
        with pytest.raises(CollectError, match="goes through a symlink"):
            tail(hostile)
        with pytest.raises(CollectError, match="outside the allowed folders"):
            tail(hostile, (str(logs),))
    assert tail(logs / "web.log").data["lines"] == ["GET / 200"]
    with pytest.raises(CollectError, match="goes through a symlink"):
        tail(logs / "rotated.log")  # without log_dirs, no link at all
    assert tail(logs / "rotated.log", (str(logs),)).data["lines"] == ["GET / 200"]
    with pytest.raises(CollectError, match="outside the allowed folders"):
        tail(logs / "web.log", (str(outside),))
    with pytest.raises(ConfigError, match="log_dirs"):
        EnrichSettings.from_config([{"settings": {"log_dirs": ["relative"]}}])
