"""The web UI over plain HTTP: what answers without a session, sign-in, roles, CSRF, security
headers, approvals from forms (plan digest, resolved alert, two approvers), breakers, MTTR."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from paramedic.cli import main
from paramedic.core.breaker import BreakerState, BreakerStatus
from paramedic.engine import guard
from paramedic.store.tables import evidence
from tests.conftest import Server
from tests.test_ui_support import (
    ADMIN,
    TOKENS,
    VIEWER,
    approve_runbook,
    auth,
    csrf_of,
    fire,
    incident,
    paused,
    runbooks,
    sign_in,
)

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
    )
).decode()


@pytest.fixture
def srv(make_server: Callable[..., Server], tmp_path: Path) -> Server:
    return make_server(runbooks(approve_runbook(tmp_path)), auth=auth())


def test_with_auth_only_health_login_and_static_answer_without_a_session(srv: Server) -> None:
    with srv.client() as c:
        for path in ("/", "/incidents/1", "/approvals", "/runbooks", "/audit", "/mttr", "/docs"):
            r = c.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next="), path
        for path in ("/metrics", "/openapi.json", "/api/v1/incidents", "/api/v1/runbooks", "/api/v1/evidence/1/image"):
            assert c.get(path).status_code == 401, path
        assert c.get("/ui/partials/incidents").status_code == 401
        assert c.get("/ui/charts/mttr-runbook.png").status_code == 303
        assert c.get("/redoc").status_code == 404  # Swagger/ReDoc would load scripts from a CDN
        for path in ("/healthz", "/readyz", "/login", "/static/app.css", "/static/app.js"):
            assert c.get(path).status_code == 200, path
    with srv.client(headers=VIEWER) as c:
        assert c.get("/metrics").status_code == 200
        assert "/api/v1/runbooks/{name}/breaker/reset" in c.get("/openapi.json").json()["paths"]


def test_sign_in_sets_a_signed_httponly_samesite_strict_cookie(srv: Server) -> None:
    with sign_in(srv, "responder") as c:
        sent = c.get("/").request.headers["cookie"]
        assert "paramedic_session=" in sent
        assert TOKENS["responder"] not in sent
        page = c.get("/")
        assert page.status_code == 200
        assert "rita · responder" in page.text
        session = c.cookies["paramedic_session"]
    with srv.client(headers={"Origin": srv.url}) as fresh:
        page = fresh.get("/login")
        bad = fresh.post("/login", data={"token": "guess", "csrf_token": csrf_of(page.text), "next": "/"})
        assert bad.status_code == 401
        assert "not valid" in bad.text
        assert "paramedic_session" not in fresh.cookies
        r = fresh.post("/login", data={"token": TOKENS["responder"], "csrf_token": csrf_of(page.text), "next": "/"})
        header = r.headers["set-cookie"].lower()
        assert "httponly" in header
        assert "samesite=strict" in header
        assert "path=/" in header
    body, sig = session.split(".")
    for forged in (body + "." + sig[::-1], body[:-2] + "AA." + sig, "garbage"):
        with srv.client(cookies={"paramedic_session": forged}) as c2:
            assert c2.get("/").status_code == 303, forged


def test_login_redirects_only_to_local_paths(srv: Server) -> None:
    with srv.client(headers={"Origin": srv.url}) as c:
        page = c.get("/login?next=//evil.example/x")
        assert 'name="next" value="/"' in page.text
        r = c.post(
            "/login", data={"token": TOKENS["viewer"], "csrf_token": csrf_of(page.text), "next": "https://evil.example"}
        )
        assert r.headers["location"] == "/"
        for bad in ("/\t/evil.example", "/\\evil.example", "javascript:alert(1)"):  # signed in: redirected
            assert c.get("/login", params={"next": bad}).headers["location"] == "/", bad


def test_session_cookie_reads_the_api_but_never_writes_through_it(srv: Server) -> None:
    with sign_in(srv, "admin") as c:
        assert c.get("/api/v1/incidents").status_code == 200
        assert c.post("/api/v1/automation/pause", json={}).status_code == 401
    assert not paused(srv)


def test_pages_carry_csp_and_frame_headers_and_no_inline_script(srv: Server) -> None:
    def check(r: httpx.Response) -> None:
        assert r.status_code == 200, r.url
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["cache-control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), r.url
        assert " style=" not in r.text
        assert " on" + "click=" not in r.text

    fire(srv)
    with sign_in(srv, "admin") as c:
        for path in ("/", "/incidents/1", "/approvals", "/runbooks", "/audit", "/mttr", "/docs"):
            check(c.get(path))
    with srv.client() as anonymous:
        check(anonymous.get("/login"))


@pytest.mark.parametrize(
    ("token", "headers"),
    [
        pytest.param(None, {}, id="no-token"),
        pytest.param("forged", {}, id="wrong-token"),
        pytest.param("valid", {"Origin": "http://evil.example"}, id="foreign-origin"),
        pytest.param("valid", {"Origin": "null"}, id="opaque-origin"),
        pytest.param("valid", {"Origin": "", "Referer": "http://evil.example/page"}, id="foreign-referer"),
        pytest.param("valid", {"Origin": ""}, id="no-origin-no-referer"),
    ],
)
def test_forged_form_posts_are_refused_and_change_nothing(
    srv: Server, token: str | None, headers: dict[str, str]
) -> None:
    i = fire(srv)
    with sign_in(srv, "admin") as c:
        valid = csrf_of(c.get("/runbooks").text)
        run_id = incident(srv, i)["runs"][0]["id"]  # type: ignore[index]
        form = {"reason": "forged"} | ({"csrf_token": valid if token == "valid" else token} if token else {})
        if headers.get("Origin") == "":
            c.headers.pop("Origin")
            headers = {k: v for k, v in headers.items() if k != "Origin"}
        for path, extra in (
            ("/ui/automation/pause", {}),
            (f"/ui/incidents/{i}/approve", {"run_id": str(run_id)}),
            ("/ui/runbooks/fix/breaker/reset", {}),
            ("/logout", {}),
        ):
            r = c.post(path, data=form | extra, headers=headers)
            assert r.status_code == 403, (path, r.status_code)
            assert "nothing changed" in r.text
        assert c.get("/").status_code == 200  # still signed in: the forged logout did nothing
    assert not paused(srv)
    assert incident(srv, i)["status"] == "awaiting_approval"
    with srv.client(headers=ADMIN) as api:
        kinds = [e["kind"] for e in api.get("/api/v1/audit").json()["entries"]]
    assert not {"automation.paused", "approval.approve", "breaker.reset"} & set(kinds)


def test_a_csrf_token_is_bound_to_its_session(srv: Server) -> None:
    with sign_in(srv, "admin") as a, sign_in(srv, "admin") as b:
        token_a = csrf_of(a.get("/runbooks").text)
        assert b.post("/ui/automation/pause", data={"csrf_token": token_a}).status_code == 403
        assert a.post("/ui/automation/pause", data={"csrf_token": token_a}).status_code == 303
    assert paused(srv)


def test_ui_approval_carries_the_plan_digest_it_showed(srv: Server) -> None:
    i = fire(srv)
    with sign_in(srv, "responder") as c:
        page = c.get(f"/incidents/{i}").text
        run = incident(srv, i)["runs"][0]  # type: ignore[index]
        assert f'name="plan_digest" value="{run["plan_digest"]}"' in page
        form = {"csrf_token": csrf_of(page), "run_id": str(run["id"]), "reason": "ok"}
        stale = c.post(f"/ui/incidents/{i}/approve", data=form | {"plan_digest": "0" * 16})
        assert stale.status_code == 409
        assert "plan changed" in stale.text
        assert incident(srv, i)["status"] == "awaiting_approval"
        ok = c.post(f"/ui/incidents/{i}/approve", data=form | {"plan_digest": run["plan_digest"]})
        assert ok.status_code == 303
        assert ok.headers["location"] == f"/incidents/{i}?done=approve"
    srv.wait(lambda _: incident(srv, i)["status"] == "mitigated")
    approvals = incident(srv, i)["runs"][0]["approvals"]  # type: ignore[index]
    assert approvals == [{"actor": "rita", "decision": "approve", "reason": "ok", "at": approvals[0]["at"]}]


def test_ui_approval_after_the_alert_resolved_is_refused(srv: Server) -> None:
    i = fire(srv)
    with sign_in(srv, "responder") as c:
        page = c.get(f"/incidents/{i}").text
        run = incident(srv, i)["runs"][0]  # type: ignore[index]
        fire(srv, status="resolved")
        r = c.post(
            f"/ui/incidents/{i}/approve",
            data={"csrf_token": csrf_of(page), "run_id": str(run["id"]), "plan_digest": run["plan_digest"]},
        )
        assert r.status_code == 409
        assert "alert resolved" in r.text
        deny = c.post(f"/ui/incidents/{i}/deny", data={"csrf_token": csrf_of(page), "run_id": str(run["id"])})
        assert deny.status_code == 422  # a denial needs a reason


def test_two_person_rule_in_the_ui(make_server: Callable[..., Server], tmp_path: Path) -> None:
    from paramedic.api.auth import sha256_hex
    from paramedic.core.config import Token

    second = Token(name="sam", role="responder", sha256=sha256_hex("second-token"))
    srv = make_server(runbooks(approve_runbook(tmp_path, approvers=2)), auth=auth(extra=(second,)))
    i = fire(srv)
    run = incident(srv, i)["runs"][0]  # type: ignore[index]
    with sign_in(srv, "responder") as c:
        page = c.get(f"/incidents/{i}").text
        assert "approvals 0 of 2" in page
        form = {"csrf_token": csrf_of(page), "run_id": str(run["id"]), "plan_digest": run["plan_digest"]}
        assert c.post(f"/ui/incidents/{i}/approve", data=form).status_code == 303
        page = c.get(f"/incidents/{i}").text
        assert "approvals 1 of 2: rita" in page
        assert 'data-action="approve"' not in page
        again = c.post(f"/ui/incidents/{i}/approve", data=form)
        assert again.status_code == 409
        assert "second approver" in again.text
    assert incident(srv, i)["status"] == "awaiting_approval"
    with srv.client(headers={"Authorization": "Bearer second-token"}) as c2:
        assert c2.post(f"/api/v1/incidents/{i}/approve", json={"plan_digest": run["plan_digest"]}).status_code == 200
    srv.wait(lambda _: incident(srv, i)["status"] == "mitigated")


def test_viewer_is_refused_approve_pause_and_reset_in_the_api_and_the_ui(srv: Server) -> None:
    i = fire(srv)
    run = incident(srv, i)["runs"][0]  # type: ignore[index]
    with srv.client(headers=VIEWER) as api:
        assert api.post(f"/api/v1/incidents/{i}/approve", json={}).status_code == 403
        assert api.post("/api/v1/automation/pause", json={}).status_code == 403
        assert api.post("/api/v1/runbooks/fix/breaker/reset", json={}).status_code == 403
    with sign_in(srv, "viewer") as c:
        page = c.get(f"/incidents/{i}").text
        assert 'data-action="approve"' not in page
        assert "can see this plan but not approve" in page
        assert 'data-action="pause"' not in c.get("/runbooks").text
        token = csrf_of(page)
        for path, form in (
            (f"/ui/incidents/{i}/approve", {"run_id": str(run["id"])}),
            ("/ui/automation/pause", {}),
            ("/ui/runbooks/fix/breaker/reset", {}),
        ):
            r = c.post(path, data=form | {"csrf_token": token})
            assert r.status_code == 403, path
            assert "viewer role cannot do this" in r.text, path
    assert not paused(srv)
    assert incident(srv, i)["status"] == "awaiting_approval"


def test_breaker_reset_through_api_ui_and_cli(srv: Server) -> None:
    def open_breaker() -> None:
        def tx(conn: object) -> None:
            now = srv.pm.clock()
            st = BreakerState(status=BreakerStatus.OPEN, failures=(now, now), opened_at=now)
            guard.save_breaker(conn, "fix", "service=web", st, now)  # type: ignore[arg-type]

        srv.pm.db.retrying(lambda: _in_write(srv, tx))

    open_breaker()
    with srv.client(headers=ADMIN) as api:
        rb = api.get("/api/v1/runbooks").json()["runbooks"][0]
        assert rb["breaker"] == "open"
        assert rb["breakers"][0]["scope"] == "service=web"
        assert api.post("/api/v1/runbooks/fix/breaker/reset", json={}).json() == {"runbook": "fix", "reset": 1}
        assert api.get("/api/v1/runbooks").json()["runbooks"][0]["breaker"] == "closed"
        assert api.post("/api/v1/runbooks/nope/breaker/reset", json={}).status_code == 404
    open_breaker()
    with sign_in(srv, "admin") as c:
        page = c.get("/runbooks").text
        assert 'data-breaker="open"' in page
        r = c.post("/ui/runbooks/fix/breaker/reset", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303
        assert r.headers["location"] == "/runbooks?done=reset"
        assert 'data-breaker="closed"' in c.get("/runbooks").text
    open_breaker()
    cli = CliRunner()
    result = cli.invoke(main, ["breaker", "reset", "fix", "--url", srv.url], env={"PARAMEDIC_TOKEN": TOKENS["admin"]})
    assert result.exit_code == 0
    assert "1 open breaker(s) closed" in result.output
    result = cli.invoke(main, ["breaker", "reset", "fix", "--url", srv.url], env={"PARAMEDIC_TOKEN": TOKENS["viewer"]})
    assert result.exit_code == 1
    assert "403" in result.output
    with srv.client(headers=ADMIN) as api:
        resets = [e for e in api.get("/api/v1/audit").json()["entries"] if e["kind"] == "breaker.reset"]
    assert [e["actor"] for e in resets] == ["adam", "adam", "adam"]


def _in_write(srv: Server, fn: Callable[[object], None]) -> None:
    with srv.pm.db.write() as conn:
        fn(conn)


def test_evidence_image_is_served_and_linked(srv: Server) -> None:
    i = fire(srv)

    def tx(conn: object) -> None:
        now = srv.pm.clock()
        for image in (PNG_1PX, None, base64.b64encode(b"<svg onload=alert(1)>").decode()):
            conn.execute(  # type: ignore[attr-defined]
                evidence.insert().values(
                    incident_id=i,
                    kind="prometheus",
                    title="error rate",
                    status="ok",
                    body="",
                    data={},
                    image=image,
                    at=now,
                )
            )

    _in_write(srv, tx)
    with srv.client(headers=VIEWER) as c:
        ev = c.get(f"/api/v1/incidents/{i}").json()["evidence"]
        assert [e["image_url"] is not None for e in ev] == [True, False, True]
        png = c.get(ev[0]["image_url"])
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
        assert c.get(ev[2]["image_url"]).status_code == 404  # not a PNG: never served
    with sign_in(srv, "viewer") as c:
        assert f'src="{ev[0]["image_url"]}"' in c.get(f"/incidents/{i}").text


def test_mttr_page_and_chart(srv: Server) -> None:
    i = fire(srv, starts_at="2026-01-01T00:00:00Z")
    fire(srv, status="resolved", starts_at="2026-01-01T00:00:00Z", ends_at="2026-01-01T00:07:30Z")
    assert incident(srv, i)["mttr"] == "7m30s"
    with sign_in(srv, "viewer") as c:
        page = c.get("/mttr").text
        assert "7m30s" in page
        assert 'src="/ui/charts/mttr-runbook.png"' in page
        for by in ("runbook", "service"):
            png = c.get(f"/ui/charts/mttr-{by}.png")
            assert png.status_code == 200
            assert png.content.startswith(b"\x89PNG")
        assert c.get("/ui/charts/mttr-secret.png").status_code == 422


def test_audit_page_is_paged(srv: Server) -> None:
    for n in range(30):
        fire(srv, name=f"Other{n}")
    with sign_in(srv, "viewer") as c:
        first = c.get("/audit").text
        older = re.search(r'href="/audit\?before=(\d+)"', first)
        assert older, "no link to older entries"
        second = c.get(f"/audit?before={older.group(1)}").text
        assert "Newest" in second
        assert second.count("<tr>") >= 10


def test_without_auth_the_ui_is_open_on_loopback_but_forms_still_need_csrf(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    srv = make_server(runbooks(approve_runbook(tmp_path)))
    with srv.client(headers={"Origin": srv.url}) as c:
        page = c.get("/runbooks")
        assert page.status_code == 200
        assert "local · admin" in page.text
        assert c.get("/login").status_code == 303
        assert c.post("/ui/automation/pause", data={}).status_code == 403
        assert c.post("/ui/automation/pause", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    assert paused(srv)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        pytest.param("evil.example:8080", 403, id="rebound-dns-name"),
        pytest.param("10.0.0.5:8080", 403, id="lan-address"),
        pytest.param("localhost:8080", 200, id="localhost"),
        pytest.param("[::1]:8080", 200, id="ipv6-loopback"),
        pytest.param("127.0.0.1", 200, id="no-port"),
    ],
)
def test_without_auth_only_loopback_host_names_are_answered(
    make_server: Callable[..., Server], host: str, status: int
) -> None:
    srv = make_server()
    with srv.client() as c:
        assert c.get("/api/v1/incidents", headers={"Host": host}).status_code == status
        assert c.post("/api/v1/automation/pause", json={}, headers={"Host": host}).status_code == status
