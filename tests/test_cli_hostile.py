"""The command line over a real server, fed hostile alert text: rich markup (``[/]``, ``[bold]``) and
ANSI escapes in labels are shown as data, never interpreted; the approval view shows what would run;
approving while paused is refused and the run stays approvable; unknown ids are 404."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from paramedic.cli import main
from tests.conftest import Server

ESC = "\x1b"
PATTERN = "^[a-z0-9.-]{1,64}$"


def runbook(tmp: Path) -> str:
    marker = tmp / "fixed"
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: fix-queue
    owner: team-queue
    match: {{alertname: QueueStuck}}
    target: "{{{{ labels.instance }}}}"
    mode: approve
    steps:
      - action: shell.run
        with: {{argv: ["touch", "{marker}-{{{{ labels.instance }}}}"]}}
    verify:
      command: {{argv: ["test", "-f", "{marker}-{{{{ labels.instance }}}}"], within: 5s, every: 0.1s}}
    params:
      instance: {{pattern: '{PATTERN}'}}
"""


def cli(*args: str) -> Result:
    """The CLI on a wide terminal: a console another test of this worker sized stays this wide."""
    from paramedic.cli import app

    saved = app.out._width
    app.out.width = 200
    try:
        return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})
    finally:
        app.out._width = saved


def fire(srv: Server, name: str, labels: dict[str, str], **extra: object) -> int:
    with srv.client() as c:
        r = c.post("/api/v1/alerts", json={"name": name, "labels": labels, **extra})
    assert r.status_code == 202, r.text
    return int(r.json()["alerts"][0]["incident_id"])


def test_markup_and_ansi_in_labels_are_printed_as_data(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(runbook(tmp_path))
    bad = fire(srv, "QueueStuck", {"instance": "mq-1[/]", "service": "queue"})
    loud = fire(
        srv,
        f"Unknown{ESC}[2J[bold]",
        {"instance": f"db-1{ESC}]0;pwned{ESC}\\", "service": "[red]db[/red]"},
        annotations={"summary": "[link=http://evil]click[/link]"},
    )

    listing = cli("incidents", "list", "--url", srv.url)
    assert listing.exit_code == 0, listing.output
    assert "mq-1[/]" in listing.output
    assert "Unknown\\x1b[2J[bold]" in listing.output
    assert ESC not in listing.output

    shown = cli("incidents", "show", str(bad), "--url", srv.url)
    assert shown.exit_code == 0, shown.output
    assert "mq-1[/]" in shown.output
    assert PATTERN in shown.output  # the refusal names the pattern whole, brackets included

    other = cli("incidents", "show", str(loud), "--url", srv.url)
    assert other.exit_code == 0, other.output
    assert ESC not in other.output
    assert "db-1\\x1b]0;pwned" in other.output
    assert "Unknown\\x1b[2J[bold]" in other.output


def test_approval_view_shows_plan_verify_and_expiry(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(runbook(tmp_path))
    iid = fire(srv, "QueueStuck", {"instance": "mq-1", "service": "queue"})
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["status"] == "awaiting_approval")

    shown = cli("incidents", "show", str(iid), "--url", srv.url)
    assert shown.exit_code == 0, shown.output
    assert "awaiting approval of plan" in shown.output
    assert f'step 0: shell.run {{"argv": ["touch", "{tmp_path / "fixed"}-mq-1"]}}' in shown.output
    assert f'verify: {{"command": {{"argv": ["test", "-f", "{tmp_path / "fixed"}-mq-1"]' in shown.output
    assert "expires at " in shown.output
    assert f"paramedic approve {iid} --run " in shown.output


def test_approve_while_paused_is_refused_and_stays_approvable(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    srv = make_server(runbook(tmp_path))
    iid = fire(srv, "QueueStuck", {"instance": "mq-1", "service": "queue"})
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["status"] == "awaiting_approval")

    assert cli("pause", "--url", srv.url).exit_code == 0
    refused = cli("approve", str(iid), "--url", srv.url)
    assert refused.exit_code == 1
    assert "automation is paused, so nothing was approved" in refused.output
    assert "`paramedic resume`, then approve again" in refused.output
    with srv.client() as c:
        assert c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["status"] == "awaiting_approval"

    assert cli("resume", "--url", srv.url).exit_code == 0
    approved = cli("approve", str(iid), "--url", srv.url)
    assert approved.exit_code == 0, approved.output
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{iid}").json()["runs"][0]["status"] == "succeeded")


def test_unknown_incident_is_404(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(runbook(tmp_path))
    for args in (["approve", "999"], ["deny", "999", "--reason", "no"], ["incidents", "show", "999"]):
        result = cli(*args, "--url", srv.url)
        assert result.exit_code == 1, args
        assert "404" in result.output, result.output
        assert "incident 999 does not exist" in result.output
