"""Malformed input is a 4xx with one error shape, ``{"error", "field"}``, never a 500, and nothing
of it is stored. Each case is an input that answered 500 (or another shape) before."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from paramedic.api.auth import sha256_hex
from paramedic.api.errors import json_too_deep
from paramedic.core.config import Auth, Token
from tests.conftest import Server

HUGE = str(2**64)


def shape(r: httpx.Response) -> tuple[int, set[str]]:
    return r.status_code, set(r.json())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/api/v1/alerts", b"[" * 5000 + b"]" * 5000, id="deeply-nested"),
        pytest.param("/api/v1/alerts", b'{"name": "X", "labels": {"n": ' + b"9" * 4301 + b"}}", id="4301-digits"),
    ],
)
def test_malformed_bodies_are_422_with_the_error_shape(
    make_server: Callable[..., Server], path: str, body: bytes
) -> None:
    srv = make_server()
    with srv.client() as c:
        r = c.post(path, content=body, headers={"Content-Type": "application/json"})
        assert shape(r) == (422, {"error", "field"})
        assert c.get("/api/v1/incidents").json()["incidents"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", f"/api/v1/incidents/{HUGE}", id="incident-id"),
        pytest.param("POST", f"/api/v1/incidents/{HUGE}/approve", id="approve-id"),
        pytest.param("GET", f"/api/v1/audit?before={HUGE}", id="audit-before"),
        pytest.param("GET", f"/api/v1/evidence/{HUGE}/image", id="evidence-id"),
    ],
)
def test_integers_past_2_63_are_422_naming_the_parameter(
    make_server: Callable[..., Server], method: str, path: str
) -> None:
    srv = make_server()
    with srv.client() as c:
        r = c.request(method, path, json={} if method == "POST" else None)
        assert shape(r) == (422, {"error", "field"})
        assert r.json()["field"] is not None


def test_every_refusal_has_the_same_shape(make_server: Callable[..., Server]) -> None:
    auth = Auth(tokens=[Token(name="v", role="viewer", sha256=sha256_hex("viewer-token"))])
    srv = make_server(auth=auth)
    viewer = {"Authorization": "Bearer viewer-token"}
    with srv.client() as c:
        assert shape(c.get("/api/v1/incidents")) == (401, {"error", "field"})
        assert shape(c.post("/api/v1/automation/pause", headers=viewer, json={})) == (403, {"error", "field"})
        assert shape(c.get("/api/v1/incidents/999", headers=viewer)) == (404, {"error", "field"})
        assert shape(c.get("/api/v1/no-such-route", headers=viewer)) == (404, {"error", "field"})
        assert shape(c.get("/api/v1/audit?limit=0", headers=viewer)) == (422, {"error", "field"})


def test_a_body_over_the_limit_is_413_with_the_same_shape(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_body_bytes=1024)
    big = b'{"name": "Big", "annotations": {"blob": "' + b"x" * 4096 + b'"}}'

    with srv.client() as c:
        r = c.post("/api/v1/alerts", content=big, headers={"Content-Type": "application/json"})
    assert shape(r) == (413, {"error", "field"})


def test_unknown_incident_is_404_for_approve_and_deny(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    with srv.client() as c:
        assert shape(c.post("/api/v1/incidents/999/approve", json={})) == (404, {"error", "field"})
        assert shape(c.post("/api/v1/incidents/999/deny", json={"reason": "no"})) == (404, {"error", "field"})


def test_depth_check_skips_brackets_inside_strings() -> None:
    assert json_too_deep(b"[" * 65 + b"]" * 65)
    assert not json_too_deep(b"[" * 64 + b"]" * 64)
    assert not json_too_deep(b'["' + b"[" * 500 + b'"]')
    assert not json_too_deep(b'["\\"' + b"[" * 500 + b'"]')
