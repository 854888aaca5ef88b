"""The human side of an incident in a real headless Chromium (Playwright): a responder sees why a
human was called, acknowledges, adds a note, assigns to a team and resolves with a reason, each
through the page's own forms; the audit trail and MTTR record it. A viewer finds no such form."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.support import FIXTURES
from tests.test_ui_browser import browser, new_page, sign_in
from tests.test_ui_support import ADMIN, auth, fire, incident, runbooks

pytestmark = pytest.mark.integration
__all__ = ["browser", "new_page"]  # fixtures used by the tests below

NOTHING = runbooks(
    """
  - name: other
    owner: team-web
    match: {alertname: SomethingElse}
    steps: []
"""
)


def test_responder_acknowledges_notes_assigns_and_resolves(
    make_server: Callable[..., Server], tmp_path: Path, new_page: Callable[..., Page]
) -> None:
    srv = make_server(NOTHING, auth=auth())
    i = fire(srv, "DiskFull", annotations={"summary": "the log volume is full"})
    page = new_page()
    sign_in(page, srv, "responder", start=f"/incidents/{i}")

    banner = page.locator("#escalation")
    expect(banner).to_contain_text("Why you were called: no runbook matches this alert")
    expect(banner).to_contain_text("paramedic did not improvise")

    page.click("button[data-action=acknowledge]")
    expect(page.locator(".notice")).to_contain_text("You acknowledged the incident")
    expect(page.locator("[data-field=acknowledged_by]")).to_have_text("rita")
    expect(page.locator("button[data-action=acknowledge]")).to_have_count(0)

    page.fill("[data-field=note-text]", "rotated /var/log by hand <script>alert(1)</script>")
    page.click("button[data-action=note]")
    expect(page.locator(".notes")).to_contain_text("rotated /var/log by hand <script>alert(1)</script>")

    page.fill("[data-field=assign-to]", "team-storage")
    page.select_option("#lifecycle select[name=kind]", "team")
    page.click("button[data-action=assign]")
    expect(page.locator("[data-field=assignee]")).to_have_text("team-storage")

    page.once("dialog", lambda d: d.accept())
    page.fill("[data-field=resolve-reason]", "freed 20 GB; ticket STOR-12 for the retention")
    page.click("button[data-action=resolve]")
    expect(page.locator("#status")).to_have_attribute("data-status", "resolved")
    expect(page.locator(".facts")).to_contain_text("MTTR")
    expect(page.locator("#escalation")).to_have_count(0)

    data = incident(srv, i)
    assert data["resolved_by"] == "rita"
    assert data["resolution"] == "freed 20 GB; ticket STOR-12 for the retention"
    assert data["assignee"] == "team-storage"
    assert data["mttr_s"] is not None
    kinds = [t["kind"] for t in data["timeline"]]  # type: ignore[attr-defined]
    assert {"incident.acknowledged", "incident.note", "incident.assigned", "incident.resolved"} <= set(kinds)


def test_viewer_sees_the_banner_but_no_lifecycle_form(
    make_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    srv = make_server(NOTHING, auth=auth())
    i = fire(srv, "DiskFull")
    page = new_page()
    sign_in(page, srv, "viewer", start=f"/incidents/{i}")
    expect(page.locator("#escalation")).to_contain_text("Why you were called")
    for action in ("acknowledge", "resolve", "note", "assign", "snooze"):
        expect(page.locator(f"button[data-action={action}]")).to_have_count(0)


ECHO = runbooks(
    """
  - name: say-hello
    owner: team-web
    description: Print a greeting, to show step output.
    match: {alertname: Greet}
    target: "{{ labels.instance }}"
    mode: auto
    guardrails:
      rate_limit: {max: 5, per: 1h, scope: target}
    steps:
      - action: shell.run
        with: {argv: ["echo", "hello from the step"]}
"""
)


def test_incident_page_shows_step_output_and_only_safe_alert_links(
    make_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    srv = make_server(ECHO, auth=auth())
    payload = json.loads((FIXTURES / "alertmanager-0.25-firing.json").read_text())  # Alertmanager's own
    alert = payload["alerts"][0]
    payload["alerts"] = [alert]
    alert["labels"]["alertname"] = "Greet"
    alert["annotations"] = {
        "runbook_url": "https://wiki.example.com/runbooks/greet?x=1",
        "dashboard_url": "javascript:alert(document.cookie)",
        "summary": "http://user:pw@evil.example.com/",
    }
    with srv.client(headers=ADMIN) as c:
        r = c.post("/api/v1/alerts/alertmanager", json=payload)
    assert r.status_code == 202, r.text
    i = int(r.json()["alerts"][0]["incident_id"])
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{i}", headers=ADMIN).json()["runs"][0]["status"] == "succeeded")
    page = new_page()
    sign_in(page, srv, "viewer", start=f"/incidents/{i}")

    link = page.locator("a[data-alert-link=runbook_url]")
    expect(link).to_have_attribute("href", "https://wiki.example.com/runbooks/greet?x=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(page.locator("a[data-alert-link=generatorURL]")).to_have_attribute("href", alert["generatorURL"])
    expect(page.locator(".from-alert").first).to_contain_text("link from the alert")
    expect(page.locator("a[data-alert-link=dashboard_url]")).to_have_count(0)  # javascript: stays text
    expect(page.locator("a[data-alert-link=summary]")).to_have_count(0)  # credentials in the URL
    expect(page.locator("table.kv")).to_contain_text("javascript:alert(document.cookie)")

    page.locator("details.output summary").first.click()
    expect(page.locator("[data-field=step-output]").first).to_contain_text("hello from the step")

    page.goto(srv.url + "/runbooks")
    does = page.locator("[data-does=say-hello]")
    does.locator("summary").click()
    expect(does).to_contain_text("alertname=Greet")
    expect(does).to_contain_text("shell.run")
    expect(does).to_contain_text("rate_limit")
    expect(does.locator("[data-field=source]")).to_contain_text("runbooks.yaml:")
    expect(does.locator("[data-field=version]")).not_to_be_empty()
