"""The incident summary (pure composition from facts) and its conversion to each sink's dialect."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paramedic.engine.summary import EvidenceFact, IncidentFacts, RunFact, compose, escape, title
from paramedic.notify.markdown import to_html, to_jira, to_plain, to_slack
from paramedic.store.rows import IncidentRow, RunRow, StepRow

T0 = datetime(2024, 5, 14, 9, 41, 20, tzinfo=UTC)


def incident(**kw: Any) -> IncidentRow:
    base: dict[str, Any] = {
        "id": 12,
        "source": "alertmanager",
        "fingerprint": "fp",
        "starts_at": T0,
        "group_key": "",
        "alertname": "WorkerHung",
        "service": "payments",
        "severity": "critical",
        "labels": {
            "alertname": "WorkerHung",
            "instance": "w-1",
            "service": "payments",
            "severity": "critical",
            "note": "<!channel> **bold** [x](http://evil)",
        },
        "annotations": {"summary": "Worker stopped answering health checks"},
        "status": "escalated",
        "runbooks": ["restart-hung-worker"],
        "handled_by": "human",
        "deliveries": 2,
        "first_seen_at": T0,
        "last_seen_at": T0,
        "acknowledged_at": T0 + timedelta(seconds=31),
        "mitigated_at": None,
        "escalated_at": T0 + timedelta(seconds=95),
        "resolved_at": None,
        "ends_at": None,
        "generator_url": "http://prom:9090/graph?g0.expr=up+%3D%3D+0",
    }
    return IncidentRow(**{**base, **kw})


def run(**kw: Any) -> RunRow:
    base: dict[str, Any] = {
        "id": 3,
        "incident_id": 12,
        "runbook": "restart-hung-worker",
        "mode": "auto",
        "status": "failed",
        "plan": {"steps": [{"action": "supervisor.restart"}]},
        "plan_digest": "d",
        "target": "w-1",
        "service": "payments",
        "current_step": 0,
        "phase": "done",
        "attempts": 1,
        "lease_owner": None,
        "lease_until": None,
        "reason": "verification failed: http://w-1/healthz answered 503 (gave up after 60s)",
        "created_at": T0,
        "updated_at": T0,
        "approval_expires_at": None,
        "finished_at": T0 + timedelta(seconds=95),
    }
    return RunRow(**{**base, **kw})


STEP = StepRow(
    id=1, run_id=3, idx=0, action="supervisor.restart", args={"program": "payments:w-1"}, idempotent=True,
    status="succeeded", attempts=1, started_at=T0 + timedelta(seconds=31), finished_at=T0 + timedelta(seconds=33),
    summary="restarted payments:w-1 (pid 4242 → 4318)", output="", error="", reason="",
)  # fmt: skip
CHECKS = [
    {"check": "pause", "allowed": True, "code": None, "reason": "automation is running (not paused)"},
    {"check": "rate_limit", "allowed": True, "code": None, "reason": "rate limit: 1 of 3 actions per 1h on w-1"},
]
EVIDENCE = (
    EvidenceFact(5, "metrics", "Health check failures", "ok", "now **1**, peak 1 at 09:41:00 UTC.", True),
    EvidenceFact(
        6, "logs", "Last 200 log lines of payments:w-1 (supervisord)", "timeout", "no answer within 5s", False
    ),
)


def test_the_summary_tells_what_fired_the_evidence_what_was_done_and_where_it_stands() -> None:
    facts = IncidentFacts(incident(), (RunFact(run(), (STEP,), {0: (True, "", CHECKS)}),), EVIDENCE)
    md = compose(
        facts, event="escalated", reason="restart-hung-worker: verification failed", now=T0 + timedelta(minutes=2)
    )
    assert md.split("\n\n")[0] == "**Needs a human** — incident #12: `WorkerHung` on `w-1`, service `payments`"
    assert "_Why this message:_ restart-hung-worker: verification failed" in md
    assert (
        "`WorkerHung` from alertmanager, severity **critical**, firing since 2024-05-14 09:41:20 UTC (2m00s ago), "
        "delivered 2 times." in md
    )
    assert "`note=<!channel> **bold** [x](http://evil)`" in md  # an untrusted label stays inside a code span
    assert "> Worker stopped answering health checks" in md
    assert "- **Health check failures**: now **1**, peak 1 at 09:41:00 UTC. (chart attached)" in md
    assert "- **Last 200 log lines of payments:w-1 (supervisord)** — timed out: no answer within 5s" in md
    assert (
        "- Runbook `restart-hung-worker` (auto): **failed**: verification failed: http://w-1/healthz answered 503" in md
    )
    assert (
        "  1. `supervisor.restart` `program=payments:w-1` — restarted payments:w-1 (pid 4242 → 4318) "
        "at 2024-05-14 09:41:51 UTC" in md
    )
    assert (
        "     Guardrails: allowed — ✓ automation is running (not paused); ✓ rate limit: 1 of 3 actions per 1h on w-1"
        in md
    )
    assert md.endswith(
        "Status **escalated** · handled by human · detected 2024-05-14 09:41:20 UTC · acknowledged 2024-05-14 "
        "09:41:51 UTC · escalated 2024-05-14 09:42:55 UTC · MTTR: still open (2m00s so far)"
    )
    assert title(facts, "escalated") == "Needs a human: WorkerHung on w-1 (#12)"


def test_a_refusal_shows_its_code_and_reason_and_a_resolved_incident_its_mttr() -> None:
    refused = [
        {"check": "pause", "allowed": True, "code": None, "reason": "automation is running (not paused)"},
        {"check": "rate_limit", "allowed": False, "code": "rate_limited", "reason": "rate limit: 3 of 3 per 1h on w-1"},
    ]
    inc = incident(status="resolved", resolved_at=T0 + timedelta(minutes=7, seconds=5))
    facts = IncidentFacts(
        inc, (RunFact(run(status="refused", reason="rate_limited: 3 of 3"), (), {0: (False, "rate_limited", refused)}),)
    )
    md = compose(facts, event="resolved", reason="", now=T0 + timedelta(minutes=8))
    assert "  1. not run. Guardrails: **refused (rate\\_limited)** — ✓ automation is running" in md
    assert "✗ rate limit: 3 of 3 per 1h on w-1" in md
    assert "fired at 2024-05-14 09:41:20 UTC and resolved 7m05s later" in md
    assert "MTTR **7m05s**" in md
    assert "_None collected yet._" in md


def test_no_runbook_and_waiting_for_approval() -> None:
    alone = compose(IncidentFacts(incident(runbooks=[])), event="escalated", reason="", now=T0)
    assert "No runbook matches this alert, so nothing was done automatically; a human has to look." in alone
    waiting = run(status="awaiting_approval", mode="approve", approval_expires_at=T0 + timedelta(minutes=15), reason="")
    md = compose(IncidentFacts(incident(), (RunFact(waiting, (), {}),)), event="approval_needed", reason="", now=T0)
    assert "(approve): **waiting for approval** until 2024-05-14 09:56:20 UTC" in md
    assert "`paramedic approve 12`" in md
    assert "  Planned: `supervisor.restart`" in md


@pytest.mark.parametrize(
    ("md", "slack"),
    [
        pytest.param("**Bold** and _it_ and `c<d>`", "*Bold* and _it_ and `c&lt;d&gt;`", id="inline"),
        pytest.param("x <!channel> & y", "x &lt;!channel&gt; &amp; y", id="mention"),
        pytest.param(escape("a*b_[c](d)"), "a*b_[c](d)", id="escapes"),
        pytest.param("Source: <https://p/x?a=1|2>", "Source: <https://p/x?a=1%7C2|https://p/x?a=1|2>", id="autolink"),
        pytest.param("- item\n  1. sub", "• item\n  1. sub", id="lists"),
        pytest.param("### Head", "*Head*", id="heading"),
        pytest.param("```\n<b>\n```", "```\n&lt;b&gt;\n```", id="fence"),
    ],
)
def test_slack_mrkdwn(md: str, slack: str) -> None:
    assert to_slack(md) == slack


def test_html_and_jira_and_plain() -> None:
    md = "**Now**\n\n- Runbook `r` <b>x</b>\n  1. `a=b` — ok\n\n> quote & more\n\n[link](https://e.x/a?b=1&c=2)"
    html = to_html(md)
    assert "<p><strong>Now</strong></p>" in html
    assert '<div style="margin-left:0px">• Runbook <code>r</code> &lt;b&gt;x&lt;/b&gt;</div>' in html
    assert '<div style="margin-left:16px">1. <code>a=b</code> — ok</div>' in html
    assert "quote &amp; more</blockquote>" in html
    assert '<a href="https://e.x/a?b=1&amp;c=2">link</a>' in html
    jira = to_jira(md)
    assert jira.splitlines()[0] == "*Now*"
    assert "* Runbook {{r}} <b>x</b>" in jira
    assert "** 1. {{a=b}} — ok" not in jira
    assert "** {{a=b}} — ok" in jira
    assert "bq. quote & more" in jira
    assert "[link|https://e.x/a?b=1&c=2]" in jira
    assert to_jira(escape("{code} *x* [y|z]")) == r"\{code\} \*x\* \[y\|z\]"
    assert to_plain(escape("a_b*c")) == "a_b*c"


HOSTILE = {
    "alertname": "Disk @org/payments-team",
    "instance": "<!channel> @here",
    "service": "web",
    "note": "cc @octocat <@U024BE7LH> <!subteam^SAZ94GDB8> <!here> [~admin] @channel",
}


def test_mentions_in_alert_text_are_neutralised_in_every_sink() -> None:
    """An annotation ``@org/team`` pinged that team from a GitHub issue; ``<!channel>`` in an alert's
    instance reached Slack's fallback ``text`` unescaped. Neither may notify anyone from alert text."""
    from paramedic.notify.base import Notification
    from paramedic.notify.slack import SlackConfig, SlackSink

    inc = incident(
        alertname=HOSTILE["alertname"],
        labels=HOSTILE,
        annotations={"summary": HOSTILE["note"], "description": "ping @payments-oncall"},
    )
    facts = IncidentFacts(incident=inc, runs=(), evidence=())
    md = compose(
        facts, event="escalated", reason="escalated by @mallory", now=T0, owner="team-web", contact="@web-oncall"
    )
    head = title(facts, "escalated")
    mention = re.compile(r"(?<![\w\u200b])@[\w-]")  # a live @mention: "@" directly followed by a name
    slack_special = re.compile(r"<[!@]")
    for text in (head, md, to_html(md), to_plain(md), to_jira(md)):
        assert not mention.search(text.replace("`@web-oncall`", "").replace("contact: @web-oncall", "")), text
    slack = SlackSink(SlackConfig(type="slack", name="slack"), webhook_url="http://slack.invalid", client=None)  # type: ignore[arg-type]
    message = slack.message(
        Notification(event="escalated", incident_id=inc.id, title=head, summary_markdown=md, severity="critical",
                     dedup_key="k", status="escalated", labels=dict(inc.labels))
    )  # fmt: skip
    rendered = [message["text"], *(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")]
    for text in rendered:
        assert not slack_special.search(text), text
        assert not mention.search(text.replace("contact: @web-oncall", "")), text
    assert "[~admin]" not in to_jira(md)
    assert "contact: @web-oncall" in md  # the owner's contact comes from the config: it still pings
    assert "\u200b" in head  # the text still reads the same
