"""The web UI in a real headless Chromium driven by Playwright: a responder signs in, approves and
watches the incident heal; a viewer finds no button and is refused; a cross-site form post is
refused; and every main page is photographed into pytest's tmp dir. ``make screenshots`` (which
sets ``PARAMEDIC_UPDATE_SCREENSHOTS=1``) copies them to docs/screenshots/; a plain run never writes
into the checkout."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from paramedic.core.breaker import BreakerState, BreakerStatus
from paramedic.engine import guard
from paramedic.store.tables import evidence
from tests.conftest import Server
from tests.support import require_binary
from tests.test_ui_support import (
    ADMIN,
    RESPONDER,
    TOKENS,
    VIEWER,
    approve_runbook,
    auth,
    fire,
    incident,
    paused,
    runbooks,
)

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
UPDATE_SHOTS = os.environ.get("PARAMEDIC_UPDATE_SCREENSHOTS") == "1"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = require_binary("chromium", "/usr/bin/chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    contexts = []

    def make(viewport: dict[str, int] = DESKTOP) -> Page:
        ctx = browser.new_context(viewport=viewport, device_scale_factor=1, locale="en-GB", timezone_id="UTC")
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(10_000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def shot(page: Page, tmp_path: Path, name: str, *, full_page: bool = False) -> Path:
    """Save a small (palette PNG) screenshot under tmp_path; copy it to docs/screenshots/ only when
    asked to (``PARAMEDIC_UPDATE_SCREENSHOTS=1``, set by ``make screenshots``)."""
    from PIL import Image

    raw = tmp_path / f"{name}.png"
    page.screenshot(path=str(raw), full_page=full_page)
    with Image.open(raw) as img:
        small = img.convert("RGB").quantize(colors=128, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        small.save(raw, optimize=True)
    if UPDATE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw, SHOTS / f"{name}.png")
    return raw


def sign_in(page: Page, srv: Server, role: str, *, start: str = "/") -> None:
    page.goto(srv.url + start)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=token]", TOKENS[role])
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator(".who .role")).to_contain_text(role)


def open_breaker(srv: Server, runbook: str, scope: str) -> None:
    with srv.pm.db.write() as conn:
        now = srv.pm.clock()
        st = BreakerState(status=BreakerStatus.OPEN, failures=(now, now), opened_at=now)
        guard.save_breaker(conn, runbook, scope, st, now)


# ---- (1) a responder approves from the browser ---------------------------------------------------
def test_responder_signs_in_approves_and_watches_the_incident_heal(
    make_server: Callable[..., Server], tmp_path: Path, new_page: Callable[..., Page]
) -> None:
    srv = make_server(runbooks(approve_runbook(tmp_path)), auth=auth())
    i = fire(srv, annotations={"summary": "web-1 stopped answering /healthz"})
    page = new_page()
    page.goto(srv.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    shot(page, tmp_path, "login")
    page.fill("input[name=token]", TOKENS["responder"])
    page.click("form[action='/login'] button[type=submit]")

    row = page.locator(f"tr[data-incident='{i}']")
    expect(row).to_be_visible()
    expect(page.locator(".banner-waiting")).to_contain_text("1 action waiting for approval")
    row.locator("td.alert a").click()
    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "awaiting_approval")
    assert not (tmp_path / "fix-fixed").exists()
    shot(page, tmp_path, "incident-pending", full_page=True)

    page.fill("form.approve input[name=reason]", "checked the dashboard: safe to touch")
    page.click("button[data-action=approve]")
    expect(page.locator(".notice")).to_contain_text("approval is recorded")
    expect(status).to_have_attribute("data-status", "mitigated", timeout=15_000)  # live: polled every 2 s
    assert (tmp_path / "fix-fixed").exists()
    fire(srv, status="resolved")
    expect(status).to_have_attribute("data-status", "resolved", timeout=10_000)
    expect(page.locator(".facts")).to_contain_text("MTTR")
    shot(page, tmp_path, "incident-resolved", full_page=True)

    run = incident(srv, i)["runs"][0]  # type: ignore[index]
    assert run["approvals"][0]["actor"] == "rita"
    assert run["approvals"][0]["reason"] == "checked the dashboard: safe to touch"


# ---- (2) a viewer can look but not act -----------------------------------------------------------
def test_viewer_sees_no_buttons_and_is_refused(
    make_server: Callable[..., Server], tmp_path: Path, new_page: Callable[..., Page]
) -> None:
    srv = make_server(runbooks(approve_runbook(tmp_path)), auth=auth())
    i = fire(srv)
    open_breaker(srv, "fix", "service=web")
    with srv.client(headers=VIEWER) as api:
        assert api.post(f"/api/v1/incidents/{i}/approve", json={}).status_code == 403
        assert api.post("/api/v1/automation/pause", json={}).status_code == 403
        assert api.post("/api/v1/runbooks/fix/breaker/reset", json={}).status_code == 403

    page = new_page()
    sign_in(page, srv, "viewer", start=f"/incidents/{i}")
    expect(page).to_have_url(f"{srv.url}/incidents/{i}")
    expect(page.locator(".card.approval")).to_contain_text("can see this plan but not approve it")
    expect(page.locator("button[data-action=approve]")).to_have_count(0)
    expect(page.locator("button[data-action=deny]")).to_have_count(0)
    page.goto(srv.url + "/runbooks")
    expect(page.locator("[data-breaker=open]")).to_be_visible()
    for action in ("pause", "resume", "reset"):
        expect(page.locator(f"button[data-action={action}]")).to_have_count(0)

    # a same-origin post that carries the viewer's own valid CSRF token is refused by role
    for path in (f"/ui/incidents/{i}/approve", "/ui/automation/pause", "/ui/runbooks/fix/breaker/reset"):
        with page.expect_navigation() as nav:
            page.evaluate(
                """([path]) => {
                    const f = document.createElement("form");
                    f.method = "post"; f.action = path;
                    for (const [k, v] of [["csrf_token", document.querySelector("input[name=csrf_token]").value],
                                          ["run_id", "1"]]) {
                        const input = document.createElement("input");
                        input.type = "hidden"; input.name = k; input.value = v; f.appendChild(input);
                    }
                    document.body.appendChild(f); f.submit();
                }""",
                [path],
            )
        response = nav.value
        assert response is not None, path
        assert response.status == 403, path
        expect(page.locator("#error-message")).to_contain_text("viewer role cannot do this")
        page.goto(srv.url + "/runbooks")
    assert not paused(srv)
    assert incident(srv, i)["status"] == "awaiting_approval"
    with srv.client(headers=ADMIN) as api:
        assert api.get("/api/v1/runbooks").json()["runbooks"][0]["breaker"] == "open"


# ---- (3) a forged cross-site form post -----------------------------------------------------------
EVIL = """<!doctype html><html><body><h1>You won a prize</h1>
<form id="pause" method="post" action="{url}/ui/automation/pause">
  <input type="hidden" name="reason" value="pwned"><input type="hidden" name="csrf_token" value="guess">
  <button id="go-pause" type="submit">Claim</button></form>
<form id="approve" method="post" action="{url}/ui/incidents/{i}/approve">
  <input type="hidden" name="run_id" value="1"><button id="go-approve" type="submit">Claim again</button></form>
</body></html>"""


def test_cross_site_form_post_is_refused_and_changes_nothing(
    make_server: Callable[..., Server], tmp_path: Path, new_page: Callable[..., Page]
) -> None:
    srv = make_server(runbooks(approve_runbook(tmp_path)), auth=auth())
    i = fire(srv)
    page = new_page()
    sign_in(page, srv, "admin")  # the victim is signed in as admin in this browser
    page.route(
        "http://evil.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=EVIL.format(url=srv.url, i=i)),
    )
    for button in ("#go-pause", "#go-approve"):
        page.goto("http://evil.test/")
        with page.expect_navigation() as nav:
            page.click(button)
        response = nav.value
        assert response is not None
        assert response.status == 403
        assert "evil.test" in page.locator("#error-message").inner_text()
    assert not paused(srv)
    assert incident(srv, i)["status"] == "awaiting_approval"
    assert not (tmp_path / "fix-fixed").exists()
    with srv.client(headers=ADMIN) as api:
        kinds = {e["kind"] for e in api.get("/api/v1/audit").json()["entries"]}
    assert not {"automation.paused", "approval.approve"} & kinds


# ---- the main pages, photographed ----------------------------------------------------------------
def _auto_runbook(tmp: Path) -> str:
    marker = tmp / "web-restarted"
    return f"""
  - name: restart-web
    owner: team-web
    description: Restart a web instance that stopped answering health checks.
    match: {{alertname: InstanceDown, labels: {{service: [web, search]}}}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    promote: {{after: 10, min_success_rate: 0.95}}
    guardrails:
      rate_limit: {{max: 20, per: 1h, scope: target}}
      circuit_breaker: {{failures: 3, window: 30m, cooldown: 1h, scope: [service]}}
    steps:
      - action: shell.run
        with: {{argv: ["touch", "{marker}"]}}
    verify:
      command: {{argv: ["test", "-f", "{marker}"], within: 5s, every: 0.1s}}
  - name: roll-back-payments
    owner: team-payments
    description: Roll back the last release when errors spike after a deploy.
    match: {{alertname: HighErrorRate}}
    target: "{{{{ labels.service }}}}"
    mode: observe
    steps:
      - action: shell.run
        with: {{argv: ["true"]}}
"""


def _latency_png() -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 2.4), dpi=100, facecolor="#0d1117")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1, facecolor="#161b22")
    xs = list(range(30))
    ys = [0.12 + 0.01 * (n % 3) if n < 22 else 2.4 + 0.2 * (n % 2) for n in xs]
    ax.plot(xs, ys, color="#58a6ff", linewidth=2)
    ax.set_title("p99 latency of web-1:8080 (s), last 30m", color="#e6edf3", fontsize=10, loc="left")
    ax.tick_params(colors="#9aa7b4")
    for side in ax.spines.values():
        side.set_color("#30363d")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="#0d1117")
    return base64.b64encode(buf.getvalue()).decode()


def _seed(srv: Server) -> int:
    """A night's worth of incidents: automated, human-handled, observed, and one waiting now."""
    now = datetime.now(UTC).replace(microsecond=0)

    def at(minutes: float) -> str:
        return (now - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    history = [  # (alert, service, instance, started minutes ago, lasted minutes)
        ("InstanceDown", "web", "web-2:8080", 300, 2.5),
        ("InstanceDown", "web", "web-3:8080", 240, 1.8),
        ("InstanceDown", "search", "search-1:9200", 200, 3.2),
        ("InstanceDown", "web", "web-4:8080", 150, 2.1),
        ("DiskFull", "db", "db-1:5432", 420, 38),
        ("HighErrorRate", "payments", "payments", 360, 24),
        ("CertExpiring", "edge", "lb-1", 500, 55),
    ]
    for name, service, instance, started, lasted in history:
        labels = {"instance": instance, "service": service, "severity": "page"}
        iid = fire(srv, name=name, labels=labels, starts_at=at(started))
        if name == "InstanceDown":
            srv.wait(lambda _c, iid=iid: incident(srv, iid)["status"] == "mitigated")  # type: ignore[misc]
        fire(srv, name=name, labels=labels, status="resolved", starts_at=at(started), ends_at=at(started - lasted))
    fire(srv, name="HighErrorRate", labels={"service": "checkout", "severity": "warning"}, starts_at=at(4))
    i = fire(
        srv,
        labels={"instance": "web-1:8080", "service": "web", "severity": "page"},
        annotations={"summary": "web-1 answers /healthz in 2.4 s (p99); the process is alive"},
        starts_at=at(3),
    )
    with srv.pm.db.write() as conn:
        for title, image, body in (
            ("p99 latency, 30m", _latency_png(), ""),
            (
                "last 8 log lines of web-1",
                None,
                "\n".join(f"03:1{n} worker blocked on db pool (waited {n + 2}s)" for n in range(8)),
            ),
        ):
            conn.execute(
                evidence.insert().values(
                    incident_id=i,
                    kind="prometheus" if image else "logs",
                    title=title,
                    status="ok",
                    body=body,
                    data={},
                    image=image,
                    at=srv.pm.clock(),
                )
            )
    open_breaker(srv, "restart-web", "service=search")
    return i


def test_screenshots_of_the_main_pages(
    make_server: Callable[..., Server], tmp_path: Path, new_page: Callable[..., Page]
) -> None:
    srv = make_server(runbooks(_auto_runbook(tmp_path), approve_runbook(tmp_path)), auth=auth())
    i = _seed(srv)
    page = new_page()
    sign_in(page, srv, "admin", start="/?status=all")
    expect(page.locator("tr[data-incident]")).to_have_count(9)
    shot(page, tmp_path, "incidents")

    page.goto(f"{srv.url}/incidents/{i}")
    expect(page.locator(".ev img")).to_have_count(1)
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    shot(page, tmp_path, "incident", full_page=True)

    page.goto(srv.url + "/approvals")
    expect(page.locator(".card.approval")).to_have_count(1)
    shot(page, tmp_path, "approvals")

    page.goto(srv.url + "/runbooks")
    expect(page.locator("tr[data-runbook=restart-web] [data-breaker=open]")).to_be_visible()
    shot(page, tmp_path, "runbooks")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("tr[data-runbook=restart-web] button[data-action=reset]")
    expect(page.locator(".notice")).to_contain_text("breaker is closed")
    expect(page.locator("tr[data-runbook=restart-web] [data-breaker=closed]")).to_be_visible()

    page.fill("input[name=reason]", "database failover in progress")
    page.click("button[data-action=pause]")
    expect(page.locator(".banner-paused")).to_contain_text("Automation is paused")
    assert paused(srv)
    shot(page, tmp_path, "paused")
    page.click(".banner-paused button[type=submit]")
    expect(page.locator(".banner-paused")).to_have_count(0)
    assert not paused(srv)

    page.goto(srv.url + "/mttr")
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    expect(page.locator(".tile-auto .value")).not_to_have_text("—")
    shot(page, tmp_path, "mttr", full_page=True)

    page.goto(srv.url + "/audit")
    expect(page.locator("table.audit tbody tr").first).to_be_visible()
    shot(page, tmp_path, "audit")

    phone = new_page(PHONE)
    sign_in(phone, srv, "responder")
    shot(phone, tmp_path, "phone-incidents")
    phone.goto(f"{srv.url}/incidents/{i}")
    expect(phone.locator("button[data-action=approve]")).to_be_visible()
    shot(phone, tmp_path, "phone-incident")

    for name in ("incidents", "incident", "approvals", "runbooks", "paused", "mttr", "audit", "phone-incidents"):
        assert (tmp_path / f"{name}.png").stat().st_size < 400_000, name
    with srv.client(headers=RESPONDER) as api:
        assert api.get(f"/api/v1/incidents/{i}").json()["status"] == "awaiting_approval"
