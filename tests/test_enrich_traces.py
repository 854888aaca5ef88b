"""Traces as evidence: exemplars from a real Prometheus, traces from Tempo and Jaeger.

No Tempo or Jaeger server runs on this machine, so those are tested at paramedic's boundary: a
loopback HTTP server answers the documented endpoints (Tempo ``GET /api/traces/{id}`` in OTLP JSON
and ``GET /api/search`` with a TraceQL ``q``; Jaeger ``GET /api/traces/{id}`` and
``GET /api/traces?service=&start=&end=`` in microseconds) and fails any other request. The
exemplars come from the real Prometheus (Debian package, exemplar storage enabled) scraping the
sample service, which exposes its latency histogram in OpenMetrics with trace-ID exemplars.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from paramedic.core.errors import ConfigError
from paramedic.core.loader import parse_runbooks
from paramedic.enrich.base import CollectError, EnrichRequest, EvidenceStatus
from paramedic.enrich.settings import EnrichSettings
from paramedic.enrich.traces import (
    TracesCollector,
    exemplar_trace_ids,
    jaeger_spans,
    summarise,
    tempo_spans,
    traceql_string,
)
from paramedic.runbooks.loading import check_enrich
from tests.support import free_port, wait_for
from tests.support.services import Prometheus, SampleService

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SLOW_IDS = ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"]

# The shape of Prometheus's documented ``query_exemplars`` answer.
EXEMPLARS = {
    "status": "success",
    "data": [
        {
            "seriesLabels": {"__name__": "http_request_duration_seconds_bucket", "instance": "web-1", "le": "0.5"},
            "exemplars": [
                {"labels": {"trace_id": "EpTxMJ40fUus7aGY"}, "value": "6", "timestamp": 1600096945.479},
                {"labels": {"trace_id": SLOW_IDS[1]}, "value": "0.31", "timestamp": 1600096945.5},
            ],
        },
        {
            "seriesLabels": {"__name__": "http_request_duration_seconds_bucket", "instance": "web-1", "le": "+Inf"},
            "exemplars": [
                {"labels": {"traceID": SLOW_IDS[0].upper()}, "value": "1.2", "timestamp": 1600096946.1},
                {"labels": {"trace_id": SLOW_IDS[1]}, "value": "0.9", "timestamp": 1600096946.2},
            ],
        },
    ],
}


def otlp_trace(trace_id: str, *, slow_ms: int = 800, failing: bool = True) -> dict[str, Any]:
    """A Tempo ``/api/traces/{id}`` answer: OTLP JSON, ``batches`` of resource spans."""
    start = 1_764_590_400_000_000_000
    return {
        "batches": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.flask"},
                        "spans": [
                            {
                                "traceId": trace_id.upper(),
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "",
                                "name": "GET /cart",
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + slow_ms * 1_000_000),
                                "status": {},
                            }
                        ],
                    }
                ],
            },
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "postgres"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id.upper(),
                                "spanId": "EEE19B7EC3C1B175",
                                "parentSpanId": "EEE19B7EC3C1B174",
                                "name": "SELECT [cart] `items`",
                                "startTimeUnixNano": str(start + 5_000_000),
                                "endTimeUnixNano": str(start + (slow_ms - 10) * 1_000_000),
                                "status": {"code": 2, "message": "timeout"} if failing else {},
                            }
                        ],
                    }
                ],
            },
        ]
    }


def jaeger_trace(trace_id: str) -> dict[str, Any]:
    """One item of Jaeger's ``/api/traces`` ``data``: microsecond times, ``processes`` by id."""
    return {
        "traceID": trace_id,
        "spans": [
            {
                "traceID": trace_id,
                "spanID": "a1",
                "operationName": "HTTP GET /cart",
                "references": [],
                "startTime": 1_764_590_400_000_000,
                "duration": 420_000,
                "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
                "processID": "p1",
            },
            {
                "traceID": trace_id,
                "spanID": "a2",
                "operationName": "redis GET",
                "references": [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": "a1"}],
                "startTime": 1_764_590_400_010_000,
                "duration": 400_000,
                "tags": [{"key": "error", "type": "bool", "value": True}],
                "processID": "p2",
            },
        ],
        "processes": {"p1": {"serviceName": "checkout", "tags": []}, "p2": {"serviceName": "redis", "tags": []}},
    }


class TraceBackend:
    """Tempo or Jaeger at paramedic's boundary: answers the documented endpoints, 404 otherwise."""

    def __init__(self, kind: str, traces: Mapping[str, dict[str, Any]]) -> None:
        self.kind, self.traces = kind, dict(traces)
        self.requests: list[tuple[str, dict[str, str]]] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                backend.requests.append((url.path, query))
                status, body = backend.answer(url.path, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path.startswith("/api/traces/"):
            tid = path.removeprefix("/api/traces/")
            if tid not in self.traces:
                return 404, {"error": "trace not found"}
            return 200, self.traces[tid] if self.kind == "tempo" else {"data": [self.traces[tid]]}
        if self.kind == "tempo" and path == "/api/search":
            assert set(query) == {"q", "start", "end", "limit"}
            assert int(query["start"]) < int(query["end"])
            return 200, {"traces": [{"traceID": t, "rootServiceName": "checkout"} for t in self.traces]}
        if self.kind == "jaeger" and path == "/api/traces":
            assert {"service", "start", "end", "limit"} <= set(query)
            assert int(query["end"]) - int(query["start"]) > 60 * 1_000_000  # microseconds
            return 200, {"data": list(self.traces.values())}
        return 404, {"error": f"no route {path}"}

    def __enter__(self) -> TraceBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def request(options: Mapping[str, Any], *, labels: Mapping[str, str] | None = None) -> EnrichRequest:
    return EnrichRequest(
        incident_id=1,
        alertname="HighLatency",
        labels=dict(labels or {"service": "checkout", "instance": "web-1"}),
        starts_at=NOW - timedelta(minutes=5),
        now=NOW,
        options=options,
    )


async def collect(collector_kwargs: Mapping[str, Any], options: Mapping[str, Any], **kw: Any) -> Any:
    async with httpx.AsyncClient() as client:
        return await TracesCollector(client, **collector_kwargs).collect(request(options, **kw))


# ---- pure parsing --------------------------------------------------------------------------------
def test_exemplar_ids_are_the_slowest_requests_first_each_once_and_only_hex() -> None:
    assert exemplar_trace_ids(EXEMPLARS["data"], limit=5) == SLOW_IDS  # "EpTx…" is no hex trace id


def test_exemplar_ids_respect_the_limit_and_ignore_malformed_entries() -> None:
    junk: list[Any] = [None, {"exemplars": [{"labels": "x"}, {"value": "1"}]}, *EXEMPLARS["data"]]
    assert exemplar_trace_ids(junk, limit=1) == SLOW_IDS[:1]
    assert exemplar_trace_ids({"not": "a list"}, limit=3) == []


def test_a_tempo_trace_summary_names_the_root_the_failing_and_the_slowest_spans() -> None:
    t = summarise(SLOW_IDS[0], tempo_spans(otlp_trace(SLOW_IDS[0])), link=None)
    assert t.root == "checkout: GET /cart"
    assert t.services == ("checkout", "postgres")
    assert t.duration_ms == pytest.approx(800)
    assert [s.name for s in t.errors] == ["SELECT [cart] `items`"]
    assert t.slowest[0].name == "GET /cart"


def test_tempo_v2_answers_and_string_status_codes_are_read_too() -> None:
    v1 = otlp_trace(SLOW_IDS[0])
    span = v1["batches"][1]["scopeSpans"][0]["spans"][0]
    span["status"] = {"code": "STATUS_CODE_ERROR"}
    v2 = {"trace": {"resourceSpans": v1["batches"]}}
    assert [s.error for s in tempo_spans(v2)] == [False, True]


def test_a_jaeger_trace_reads_microseconds_processes_and_error_tags() -> None:
    t = summarise("abcd" * 8, jaeger_spans(jaeger_trace("abcd" * 8)), link=None)
    assert t.root == "checkout: HTTP GET /cart"
    assert t.duration_ms == pytest.approx(420)
    assert [(s.service, s.name) for s in t.errors] == [("redis", "redis GET")]


def test_traceql_strings_cannot_be_closed_by_a_service_name() -> None:
    assert traceql_string('a" || true || "b\\') == '"a\\" || true || \\"b\\\\"'


# ---- boundary: Tempo and Jaeger ------------------------------------------------------------------
def test_traces_from_tempo_by_service_search_when_no_exemplars_are_configured() -> None:
    with TraceBackend("tempo", {i: otlp_trace(i) for i in SLOW_IDS}) as tempo:
        ev = asyncio.run(collect({"default_url": tempo.url}, {"limit": 2}))
    assert ev.status is EvidenceStatus.OK
    assert [t["trace_id"] for t in ev.data["traces"]] == SLOW_IDS
    path, query = tempo.requests[0]
    assert path == "/api/search"
    assert query["q"] == '{ resource.service.name = "checkout" }'
    assert ev.headline.startswith("2 trace(s) through a search for service checkout; slowest 800 ms")
    assert "SELECT \\[cart\\] \\`items\\`" in ev.body  # span names stay text in markdown


def test_traces_from_jaeger_search_with_links_to_its_ui() -> None:
    tid = "abcd" * 8
    with TraceBackend("jaeger", {tid: jaeger_trace(tid)}) as jaeger:
        ev = asyncio.run(collect({"default_url": jaeger.url, "default_backend": "jaeger"}, {"service": "checkout"}))
    assert ev.data["traces"][0]["link"] == f"{jaeger.url}/trace/{tid}"
    assert ev.data["traces"][0]["errors"] == [{"service": "redis", "name": "redis GET", "duration_ms": 400.0}]
    assert jaeger.requests[0][0] == "/api/traces"


def test_a_trace_the_backend_does_not_have_is_a_clear_collect_error() -> None:
    async def run(url: str) -> Any:
        async with httpx.AsyncClient() as client:
            return await TracesCollector(client, default_url=url).collect(request({"limit": 1}))

    with TraceBackend("tempo", {SLOW_IDS[0]: otlp_trace(SLOW_IDS[0])}) as tempo:
        tempo.traces.clear()  # listed by the search, gone when fetched
        tempo.answer = lambda path, query: (  # type: ignore[method-assign]
            (200, {"traces": [{"traceID": SLOW_IDS[0]}]}) if path == "/api/search" else (404, {"error": "not found"})
        )
        with pytest.raises(CollectError, match="no such trace"):
            asyncio.run(run(tempo.url))


def test_without_a_url_or_a_way_to_find_traces_the_collector_says_what_to_configure() -> None:
    with pytest.raises(CollectError, match=r"settings\.traces_url"):
        asyncio.run(collect({}, {}))
    with TraceBackend("tempo", {}) as tempo, pytest.raises(CollectError, match=r"exemplars .* or a service"):
        asyncio.run(collect({"default_url": tempo.url}, {}, labels={"instance": "web-1"}))


# ---- validate and config -------------------------------------------------------------------------
def test_validate_refuses_an_unknown_collector_kind_with_its_position_and_a_suggestion() -> None:
    text = """apiVersion: paramedic/v1
runbooks:
  - name: slow-checkout
    owner: team-shop
    match: {alertname: HighLatency}
    target: "{{ labels.instance }}"
    mode: observe
    enrich:
      - traces: {service: checkout}
      - trace: {service: checkout}
"""
    (loc,), problems = parse_runbooks(text, "rb.yaml")
    assert problems == []
    (problem,) = check_enrich(loc)
    assert (problem.line, problem.col) == (10, 9)
    assert problem.message == "unknown evidence collector 'trace'"
    assert problem.hint == "did you mean 'traces'?"


def test_enrich_defaults_take_trace_settings() -> None:
    s = EnrichSettings.from_config([{"settings": {"traces_url": "http://tempo:3200", "traces_backend": "jaeger"}}])
    assert (s.traces_url, s.traces_backend) == ("http://tempo:3200", "jaeger")
    with pytest.raises(ConfigError, match="traces_backend must be tempo or jaeger"):
        EnrichSettings.from_config([{"settings": {"traces_backend": "zipkin"}}])


# ---- the real Prometheus, scraping exemplars -----------------------------------------------------
@pytest.fixture
def sample(tmp_path: Path) -> Iterator[SampleService]:
    with SampleService(tmp_path).started() as svc:
        yield svc


@pytest.mark.integration
def test_the_incident_shows_the_trace_ids_of_the_slow_requests_that_fired_the_alert(
    tmp_path: Path, sample: SampleService
) -> None:
    """Slow requests carry known W3C trace IDs; the real Prometheus stores them as exemplars of
    the latency histogram; the traces collector finds exactly those IDs and their spans."""
    with Prometheus(tmp_path / "prom", [f"127.0.0.1:{sample.port}"], flags=["--enable-feature=exemplar-storage"]) as p:
        for i in range(20):  # fast traffic, with trace ids of its own
            httpx.get(f"{sample.url}/", headers={"traceparent": f"00-{i:032x}-{1:016x}-01"}, timeout=5)
        httpx.post(f"{sample.url}/fault/slow?ms=300", timeout=5)
        query = f'http_request_duration_seconds_bucket{{instance="127.0.0.1:{sample.port}"}}'

        def stored(tid: str) -> bool:
            now = time.time()
            r = httpx.get(
                f"{p.url}/api/v1/query_exemplars", params={"query": query, "start": now - 300, "end": now}, timeout=2
            ).json()
            return tid in exemplar_trace_ids(r["data"], limit=50)

        for tid in SLOW_IDS:  # a bucket exposes its latest exemplar: each is scraped before the next
            httpx.get(f"{sample.url}/", headers={"traceparent": f"00-{tid}-00f067aa0ba902b7-01"}, timeout=5)
            wait_for(lambda tid=tid: stored(tid), timeout=30, every=0.3)  # type: ignore[misc]
        with TraceBackend("tempo", {i: otlp_trace(i) for i in SLOW_IDS}) as tempo:
            now = datetime.now(UTC)

            async def run() -> Any:
                async with httpx.AsyncClient() as client:
                    collector = TracesCollector(client, prometheus_url=p.url, default_url=tempo.url)
                    req = EnrichRequest(
                        incident_id=1,
                        alertname="HighLatency",
                        labels={"instance": f"127.0.0.1:{sample.port}", "service": "sample"},
                        starts_at=now - timedelta(minutes=1),
                        now=now,
                        options={"exemplars": query, "limit": 2, "range": "5m"},
                    )
                    return await collector.collect(req)

            ev = asyncio.run(run())
    assert ev.status is EvidenceStatus.OK
    assert sorted(t["trace_id"] for t in ev.data["traces"]) == sorted(SLOW_IDS)
    assert ev.data["source"] == "exemplars"
    assert sorted(path for path, _ in tempo.requests) == sorted(f"/api/traces/{i}" for i in SLOW_IDS)
    assert all(t["errors"][0]["service"] == "postgres" for t in ev.data["traces"])
