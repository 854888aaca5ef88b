"""The human side of an incident in a real headless Chromium (Playwright): a responder sees why a
human was called, acknowledges, adds a note, assigns to a team and resolves with a reason, each
through the page's own forms; the audit trail and MTTR record it. A viewer finds no such form."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.test_ui_browser import browser, new_page, sign_in
from tests.test_ui_support import auth, fire, incident, runbooks

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
