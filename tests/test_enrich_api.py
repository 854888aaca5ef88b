"""The enrichment around the API: CI/CD change reports, signed chart URLs, evidence collection
resumed after a restart, and charts redrawn in place once paramedic has acted."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from paramedic.api.auth import sha256_hex
from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.config import Auth, Config, Token, WebhookAuth
from paramedic.engine.enrichment import Enricher, EnrichSettings, image_path
from paramedic.engine.service import Paramedic
from paramedic.enrich.base import EnrichRequest, Evidence, EvidenceStatus
from paramedic.store.tables import evidence
from tests.conftest import Server, write_runbooks

AUTH = Auth(
    tokens=[
        Token(name="ci", role="responder", sha256=sha256_hex("ci-token")),
        Token(name="v", role="viewer", sha256=sha256_hex("viewer-token")),
    ],
    webhook=WebhookAuth(bearer_sha256=sha256_hex("hook-secret")),
)


def test_ci_reports_changes_and_bad_reports_are_422(make_server: Callable[..., Server]) -> None:
    srv = make_server(auth=AUTH)
    hook = {"Authorization": "Bearer hook-secret"}
    with srv.client() as c:
        assert c.post("/api/v1/changes", json={"service": "web"}).status_code == 401
        r = c.post(
            "/api/v1/changes",
            headers=hook,
            json={"service": "web", "version": "1.4.2", "kind": "deploy", "description": "feature flag on",
                  "actor": "github-actions", "at": "2024-05-14T09:37:00Z", "url": "https://ci.example.com/run/9"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.json() == {
            "id": 1, "service": "web", "kind": "deploy", "version": "1.4.2", "description": "feature flag on",
            "actor": "github-actions", "at": "2024-05-14T09:37:00+00:00", "url": "https://ci.example.com/run/9",
        }  # fmt: skip
        r = c.post("/api/v1/changes", headers=hook, json={"service": "api", "kind": "rollback"})
        assert r.status_code == 201
        assert r.json()["at"]
        for bad, field in (
            ({"version": "1"}, "service"),
            ({"service": "web", "kind": "Deploy Now"}, "kind"),
            ({"service": "web", "at": "2024-05-14T09:37:00"}, "at"),  # a time without a zone is ambiguous
            ({"service": "web", "extra": 1}, "extra"),
        ):
            r = c.post("/api/v1/changes", headers=hook, json=bad)
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["field"] == field, (bad, r.text)
        listed = c.get("/api/v1/changes?service=web", headers={"Authorization": "Bearer viewer-token"}).json()
        assert [x["version"] for x in listed["changes"]] == ["1.4.2"]
        assert c.get("/api/v1/changes").status_code == 401


def test_a_chart_url_opens_with_its_signature_or_a_token_only(make_server: Callable[..., Server]) -> None:
    srv = make_server(auth=AUTH)
    png = b"\x89PNG\r\n\x1a\nfake"
    now = datetime.now(UTC)
    with srv.pm.db.write() as conn:
        conn.execute(
            evidence.insert().values(
                id=7, incident_id=3, kind="metrics", title="t", status="ok", body="", data={},
                image=base64.b64encode(png).decode(), at=now,
            )
        )  # fmt: skip
        path = image_path(conn, 3, 7, now=now)
    with srv.client() as c:
        r = c.get(path)
        assert r.status_code == 200
        assert r.content == png
        assert r.headers["content-type"] == "image/png"
        assert r.headers["cross-origin-resource-policy"] == "cross-origin"
        assert c.get(path.replace("/3/", "/4/")).status_code == 401  # the signature names the incident
        assert c.get(path[:-2] + "00").status_code == 401
        bare = path.split("?")[0]
        assert c.get(bare).status_code == 401
        assert c.get(bare, headers={"Authorization": "Bearer viewer-token"}).status_code == 200
        assert (
            c.get("/api/v1/incidents/3/evidence/8.png", headers={"Authorization": "Bearer viewer-token"}).status_code
            == 404
        )


def _config(tmp_path: Path, **kw: object) -> Config:
    rb = write_runbooks(tmp_path / "rb", "apiVersion: paramedic/v1\nrunbooks: []\n")
    return Config(database=f"sqlite:///{tmp_path / 'pm.db'}", runbooks=[str(rb)], **kw)


def test_collection_interrupted_by_a_stop_resumes_on_start(tmp_path: Path) -> None:
    cfg = _config(tmp_path)

    async def go() -> list[str]:
        pm = Paramedic.from_config(cfg)
        (res,) = await pm.ingest(
            [Alert("generic", "f", "Odd", AlertStatus.FIRING, datetime.now(UTC), {"service": "s"})]
        )
        # stored before any enricher ran (as if paramedic stopped right after the commit)
        await pm.start()
        deadline = time.monotonic() + 10
        rows: list[str] = []
        while time.monotonic() < deadline and not rows:
            with pm.db.read() as conn:
                rows = [r.kind for r in conn.execute(select(evidence).where(evidence.c.incident_id == res.incident_id))]
            await asyncio.sleep(0.05)
        await pm.stop()
        return rows

    assert asyncio.run(go()) == ["changes"]


class Counting:
    """A stand-in for the Prometheus collector that counts the marks it was given."""

    kind = "prometheus"

    def __init__(self) -> None:
        self.fail = False

    def title(self, request: EnrichRequest) -> str:
        return "chart"

    async def collect(self, request: EnrichRequest) -> Evidence:
        if self.fail:
            from paramedic.enrich.base import CollectError

            raise CollectError("prometheus is down")
        kinds = [m.kind for m in request.marks]
        return Evidence("metrics", "chart", EvidenceStatus.OK, f"{len(kinds)} marks", {"marks": kinds}, b"\x89PNG")


def test_charts_are_redrawn_in_place_and_a_failed_redraw_keeps_the_old_one(tmp_path: Path) -> None:
    cfg = _config(tmp_path, enrich_defaults=[{"prometheus": {"query": "up"}}])
    collector = Counting()

    async def go() -> list[tuple[int, str]]:
        pm = Paramedic.from_config(cfg)
        start = datetime.now(UTC) - timedelta(minutes=1)
        (res,) = await pm.ingest([Alert("generic", "f", "Odd", AlertStatus.FIRING, start, {"service": "s"})])
        assert res.incident_id is not None
        enricher = Enricher(
            db=pm.db, clock=pm.clock, collectors=[collector], settings=EnrichSettings.from_config(cfg.enrich_defaults)
        )
        seen = []
        await enricher.enrich(res.incident_id)
        seen += _charts(pm, res.incident_id)
        await pm.ingest(
            [Alert("generic", "f", "Odd", AlertStatus.RESOLVED, start, {"service": "s"}, ends_at=pm.clock())]
        )
        await enricher.refresh(res.incident_id)
        seen += _charts(pm, res.incident_id)
        collector.fail = True
        await enricher.refresh(res.incident_id)
        seen += _charts(pm, res.incident_id)
        pm.db.dispose()
        return seen

    (first, second, third) = asyncio.run(go())
    assert first[1] == "1 marks"
    assert second == (first[0], "2 marks")
    assert third == second


def _charts(pm: Paramedic, incident_id: int) -> list[tuple[int, str]]:
    with pm.db.read() as conn:
        q = select(evidence.c.id, evidence.c.body).where(
            (evidence.c.incident_id == incident_id) & (evidence.c.kind == "metrics")
        )
        return [(int(r.id), str(r.body)) for r in conn.execute(q)]


@pytest.mark.parametrize("path", ["/api/v1/alerts/grafana", "/api/v1/alerts/pagerduty", "/api/v1/changes"])
def test_new_routes_are_in_the_openapi_document(make_server: Callable[..., Server], path: str) -> None:
    srv = make_server()
    assert path in httpx.get(f"{srv.url}/openapi.json", timeout=5).json()["paths"]
