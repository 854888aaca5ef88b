"""No input gives a 500: schemathesis generates requests from paramedic's own ``/openapi.json``
(valid and invalid parameters, bodies, headers) against a real server with auth configured; every
answer must be below 500 and every error body must have the one shape ``{"error", "field"}``.

The webhooks read raw JSON, which the schema cannot describe, so hypothesis adds random and
hostile bodies (too deep, numbers past 4,300 digits, dates out of range) and random headers there.

Bounded for CI: ``PARAMEDIC_TEST_FUZZ_EXAMPLES`` examples per operation and mode (default 25: several
hundred requests in all, about a minute). The closing figure (requests tried, answers by status)
is printed at the end of the module and written to ``PARAMEDIC_TEST_FUZZ_REPORT`` when that is set.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from paramedic.api.auth import sha256_hex
from paramedic.core.config import Auth, Config, Token, WebhookAuth
from paramedic.engine.service import Paramedic
from tests.conftest import Server

EXAMPLES = int(os.environ.get("PARAMEDIC_TEST_FUZZ_EXAMPLES", "25"))
ADMIN = {"Authorization": "Bearer admin-token"}
TALLY: Counter[int] = Counter()
ERROR_KEYS = {"error", "field"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "runbooks").mkdir()
    auth = Auth(
        tokens=[Token(name="a", role="admin", sha256=sha256_hex("admin-token"))],
        webhook=WebhookAuth(bearer_sha256=sha256_hex("admin-token")),
    )
    cfg = Config(database=f"sqlite:///{tmp / 'p.db'}", runbooks=[str(tmp / "runbooks")], auth=auth)
    with Server(Paramedic.from_config(cfg)) as srv:
        with srv.client(headers=ADMIN) as c:  # a few rows, so ids that exist are reachable too
            c.post("/api/v1/alerts", json=[{"name": f"Fuzz{i}", "labels": {"i": str(i)}} for i in range(3)])
        yield srv
    report()


def problem(case: schemathesis.Case) -> str | None:
    """What is wrong with the answer to one generated request, or None."""
    response = case.call(headers=ADMIN, timeout=10)
    TALLY[response.status_code] += 1
    where = f"{case.method} {case.formatted_path} {case.query or ''}"
    if response.status_code >= 500:
        return f"{where} -> {response.status_code} {response.text[:200]}"
    kind = (response.headers.get("content-type") or [""])[0]
    if response.status_code >= 400 and kind.startswith("application/json"):
        body = response.json()
        if not isinstance(body, dict) or not set(body) >= ERROR_KEYS:
            return f"{where} -> {response.status_code} error body without error/field: {response.text[:200]}"
    return None


def test_no_request_gives_a_server_error(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", headers=ADMIN).json()
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.base_url = server.url
    operations = [result.ok() for result in schema.get_all_operations()]
    found: dict[str, None] = {}
    assert len(operations) >= 10  # the schema lists the API, not an empty shell
    for operation, mode in [(op, mode) for op in operations for mode in GenerationMode]:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def one(case: schemathesis.Case) -> None:
            if (p := problem(case)) is not None:
                found.setdefault(p)

        try:
            one()
        except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
            assert mode is GenerationMode.NEGATIVE
    assert list(found) == [], "\n".join(found)


INGEST = ["/api/v1/alerts/alertmanager", "/api/v1/alerts/grafana", "/api/v1/alerts/pagerduty", "/api/v1/alerts"]
INGEST.append("/api/v1/changes")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
HEADERS = ["Authorization", "Content-Type", "Origin", "X-Grafana-Alerting-Signature", "Webhook-Signature"]
TIME_KEYS = ["startsAt", "endsAt", "starts_at", "at", "occurred_at", "created_at"]
NASTY = [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser's recursion
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"alerts": [{"labels": {"alertname": "X"}, "startsAt": ' + b"9" * 5000 + b"}]}",  # over 4,300 digits
    b'{"alerts": [{"labels": {"alertname": "X"}, "startsAt": "99999-01-01T00:00:00Z"}]}',
    b'{"alerts": [{"labels": {"alertname": "X"}, "startsAt": "0001-01-01T00:00:00-23:59"}]}',
    b'{"name": "X", "starts_at": "9999-12-31T23:59:59-23:59"}',
    b'{"name": "X", "starts_at": 1e308}',
    b'{"name": "X", "starts_at": -99999999999999999999}',
    b"\xff\xfe not utf-8",
]


def body_problem(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> str | None:
    r = client.post(path, content=body, headers={"Content-Type": "application/json", **ADMIN, **headers})
    TALLY[r.status_code] += 1
    if r.status_code >= 500:
        return f"POST {path} {body[:80]!r} {headers} -> {r.status_code} {r.text[:200]}"
    if r.status_code >= 400 and not set(r.json()) >= ERROR_KEYS:
        return f"POST {path} -> {r.status_code} error body without error/field: {r.text[:200]}"
    return None


@pytest.mark.parametrize("path", INGEST)
def test_nasty_bodies_are_4xx(server: Server, path: str) -> None:
    """Bodies the schema cannot describe (the webhooks read raw JSON): too deep, too long a number,
    dates out of range, not UTF-8."""
    with server.client() as c:
        found = [p for body in NASTY if (p := body_problem(c, path, body, {})) is not None]
    assert found == []


@given(
    path=st.sampled_from(INGEST),
    value=JSON,
    when=st.sampled_from(TIME_KEYS),
    stamp=st.text(max_size=40) | st.integers() | st.floats(),
    header=st.sampled_from(HEADERS),
    header_value=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip),
)
@settings(max_examples=EXAMPLES * 4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_random_bodies_and_headers_are_never_a_server_error(
    server: Server, path: str, value: object, when: str, stamp: object, header: str, header_value: str
) -> None:
    if isinstance(value, dict):
        value[when] = stamp
    body = json.dumps({"alerts": [value]} if path.endswith("alertmanager") else value).encode()
    with server.client() as c:
        assert body_problem(c, path, body, {}) is None
        assert body_problem(c, path, body, {header: header_value}) is None


def report() -> None:
    total = sum(TALLY.values())
    by_code = ", ".join(f"{code}: {n}" for code, n in sorted(TALLY.items()))
    line = f"fuzz: {total} requests, {by_code}; 5xx: {sum(n for c, n in TALLY.items() if c >= 500)}"
    print("\n" + line)
    if out := os.environ.get("PARAMEDIC_TEST_FUZZ_REPORT"):
        Path(out).write_text(json.dumps({"requests": total, "by_status": dict(TALLY)}) + "\n")


SHAPED = st.fixed_dictionaries(
    {"alerts": st.lists(st.dictionaries(st.sampled_from(["labels", "annotations", *TIME_KEYS, "status"]), JSON))},
    optional={"version": JSON, "status": JSON, "event": JSON, "messages": JSON},
)


@given(payload=JSON | SHAPED, source=st.sampled_from(["alertmanager", "grafana", "pagerduty", "generic"]))
@settings(max_examples=EXAMPLES * 8, deadline=None, database=None)
def test_parsers_refuse_only_with_a_payload_error(payload: object, source: str) -> None:
    """Every parser either returns alerts or raises PayloadError naming the field: the API turns
    that into a 422, so no payload reaches the sender as a 500."""
    from datetime import UTC, datetime

    from paramedic.core.errors import PayloadError
    from paramedic.ingest import payloads

    field: str | None = "none raised"
    try:
        payloads.parse(payload, now=datetime(2026, 1, 1, tzinfo=UTC), source=source)
    except PayloadError as exc:
        field = exc.field
    assert field is not None
