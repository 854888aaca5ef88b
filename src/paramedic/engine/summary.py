"""The incident summary: one markdown text that every sink shows, so Slack, PagerDuty, e-mail and
the tickets all tell the on-call engineer the same story.

It answers, in order: why this message (the event), what fired (alert, labels, since when), what
the evidence shows (one line per collector), what paramedic did and why (runs, steps, guardrail
verdicts with their reasons), and where things stand (status, times, MTTR).

``gather`` reads the facts in one read transaction; ``compose`` is pure (facts and ``now`` in,
text out), so a summary can be tested and replayed without a database. Label and annotation values
are untrusted: they are shown as code spans or escaped text, never as markup or links.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from paramedic.core.durations import format_duration
from paramedic.enrich.base import fenced
from paramedic.enrich.logs import looks_like_error
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo
from paramedic.store.rows import IncidentRow, RunRow, StepRow
from paramedic.store.tables import evidence, verdicts

HEADINGS = {
    "escalated": "Needs a human",
    "approval_needed": "Approval needed",
    "mitigated": "Mitigated by paramedic",
    "resolved": "Resolved",
    "breaker_opened": "Circuit breaker opened",
    "assigned": "Assigned",
    "snooze_ended": "Still open after a snooze",
}
MAX_LABELS = 12
MAX_LINE = 300
EXCERPTS = 2  # log evidence rows whose excerpt a notification shows
EXCERPT_ERRORS = 5
EXCERPT_TAIL = 10


@dataclass(frozen=True, slots=True)
class EvidenceFact:
    id: int
    kind: str
    title: str
    status: str
    headline: str
    has_image: bool
    excerpt: tuple[str, ...] = ()  # for log evidence: the lines a ticket shows, errors first


@dataclass(frozen=True, slots=True)
class RunFact:
    run: RunRow
    steps: tuple[StepRow, ...]
    verdicts: Mapping[int, tuple[bool, str, Sequence[Mapping[str, Any]]]]  # step → (allowed, code, checks)


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    incident: IncidentRow
    runs: tuple[RunFact, ...] = ()
    evidence: tuple[EvidenceFact, ...] = ()


@dataclass(frozen=True, slots=True)
class Summary:
    """What a notification says. ``chart_id`` is the evidence row of ``image``."""

    title: str
    markdown: str
    severity: str = ""
    status: str = ""
    image: bytes | None = None
    chart_id: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    detected_at: datetime | None = None


def gather(conn: Connection, incident_id: int) -> tuple[IncidentFacts, bytes | None, int | None] | None:
    """The facts of one incident, and its first chart (PNG bytes and evidence id), if any."""
    row = inc_repo.get(conn, incident_id)
    if row is None:
        return None
    runs = []
    for r in runs_repo.for_incident(conn, incident_id):
        vs = conn.execute(select(verdicts).where(verdicts.c.run_id == r.id).order_by(verdicts.c.id))
        by_step = {int(v.step_idx): (bool(v.allowed), str(v.code or ""), list(v.checks or [])) for v in vs}
        runs.append(RunFact(r, tuple(runs_repo.steps_of(conn, r.id)), by_step))
    facts, image, chart_id = [], None, None
    for e in conn.execute(select(evidence).where(evidence.c.incident_id == incident_id).order_by(evidence.c.id)):
        body = str(e.body or "").strip()
        facts.append(
            EvidenceFact(
                int(e.id),
                e.kind,
                e.title,
                e.status,
                body.splitlines()[0] if body else "",
                bool(e.image),
                log_excerpt(e.data) if e.kind in ("logs", "kubernetes") and e.status == "ok" else (),
            )
        )
        if e.image and image is None and e.status == "ok":
            image, chart_id = base64.b64decode(e.image), int(e.id)
    return IncidentFacts(row, tuple(runs), tuple(facts)), image, chart_id


def build(
    conn: Connection, *, incident_id: int | None, event: str, payload: Mapping[str, Any], now: datetime
) -> Summary:
    """The summary of ``event`` for its incident (or a short note for an event without one)."""
    reason = str(payload.get("reason", ""))
    found = gather(conn, incident_id) if incident_id is not None else None
    if found is None:
        heading = HEADINGS.get(event, event.replace("_", " ").capitalize())
        text = f"**{heading}**" + (f"\n\n{escape(reason)}" if reason else "")
        return Summary(title=f"{heading} (paramedic)", markdown=text)
    facts, image, chart_id = found
    inc = facts.incident
    return Summary(
        title=title(facts, event),
        markdown=compose(
            facts,
            event=event,
            reason=reason,
            now=now,
            owner=str(payload.get("owner", "")),
            contact=str(payload.get("contact", "")),
        ),
        severity=inc.severity,
        status=inc.status,
        image=image,
        chart_id=chart_id,
        labels=dict(inc.labels),
        detected_at=inc.starts_at,
    )


# ---- composition (pure) ----------------------------------------------------------------------
def title(facts: IncidentFacts, event: str) -> str:
    inc = facts.incident
    heading = HEADINGS.get(event, event.replace("_", " ").capitalize())
    where = inc.labels.get("instance") or inc.service
    text = f"{heading}: {inc.alertname}" + (f" on {where}" if where else "") + f" (#{inc.id})"
    return _clip(no_mentions(text), 250)  # alert text: a sink shows it as is


def compose(facts: IncidentFacts, *, event: str, reason: str, now: datetime, owner: str = "", contact: str = "") -> str:
    inc = facts.incident
    heading = HEADINGS.get(event, event.replace("_", " ").capitalize())
    parts = [f"**{heading}** — incident #{inc.id}: {code(inc.alertname)}" + _where(inc)]
    if owner:
        reach = f" — contact: {escape(_clip(contact, 300), mentions=True)}" if contact else ""  # from the config
        parts.append(f"_Owner:_ {code(owner)}{reach}")
    else:
        parts.append("_Owner:_ unknown (no runbook matches and no `owners:` entry names this service)")
    if reason:
        parts.append(f"_Why this message:_ {escape(_clip(reason, 600))}")
    parts += ["**What fired**", *_fired(inc, now)]
    parts += ["**Evidence**", _evidence(facts.evidence)]
    parts += _excerpts(facts.evidence)
    parts += ["**What paramedic did**", _actions(facts, now)]
    parts += ["**Now**", _now(inc, now)]
    return "\n\n".join(p for p in parts if p)


def _where(inc: IncidentRow) -> str:
    instance = inc.labels.get("instance")
    bits = [f"on {code(instance)}" if instance else "", f"service {code(inc.service)}" if inc.service else ""]
    text = ", ".join(b for b in bits if b)
    return f" {text}" if text else ""


def _fired(inc: IncidentRow, now: datetime) -> list[str]:
    sev = f", severity **{escape(inc.severity)}**" if inc.severity else ""
    if inc.resolved_at is not None:
        when = f"fired at {_at(inc.starts_at)} and resolved {format_duration(inc.resolved_at - inc.starts_at)} later"
    else:
        when = f"firing since {_at(inc.starts_at)} ({format_duration(now - inc.starts_at)} ago)"
    lines = [
        f"{code(inc.alertname)} from {escape(inc.source)}{sev}, {when}"
        + (f", delivered {inc.deliveries} times" if inc.deliveries > 1 else "")
        + "."
    ]
    shown = [(k, v) for k, v in sorted(inc.labels.items()) if k != "alertname"][:MAX_LABELS]
    if shown:
        more = len(inc.labels) - 1 - len(shown)
        lines.append(
            "Labels: " + " ".join(code(f"{k}={v}") for k, v in shown) + (f" (+{more} more)" if more > 0 else "")
        )
    for key in ("summary", "description"):
        if inc.annotations.get(key):
            lines.append("> " + escape(_clip(inc.annotations[key], MAX_LINE)))
    if inc.generator_url.startswith(("http://", "https://")):
        lines.append(f"Source: <{inc.generator_url.replace('>', '%3E').replace(' ', '%20')}>")
    return ["\n".join(lines)]


def _evidence(items: Sequence[EvidenceFact]) -> str:
    if not items:
        return "_None collected yet._"
    lines = []
    for e in items:
        label = f"**{escape(_clip(e.title, 120))}**"
        if e.status == "ok":
            chart = " (chart attached)" if e.has_image else ""
            lines.append(f"- {label}: {_clip(e.headline, MAX_LINE)}{chart}")
        else:
            what = "timed out" if e.status == "timeout" else "failed"
            lines.append(f"- {label} — {what}: {escape(_clip(e.headline, MAX_LINE))}")
    return "\n".join(lines)


def log_excerpt(data: object, *, errors: int = EXCERPT_ERRORS, tail: int = EXCERPT_TAIL) -> tuple[str, ...]:
    """The lines of a log tail a ticket shows: the last ones that look like errors, then the last
    lines, each once, in order, trimmed (they are redacted already, when they were collected)."""
    lines = [str(x) for x in data.get("lines", [])] if isinstance(data, Mapping) else []
    keep = {i for i, line in enumerate(lines) if looks_like_error(line)}
    keep = set(sorted(keep)[-errors:]) | set(range(max(0, len(lines) - tail), len(lines)))
    return tuple(_clip(lines[i], 300) for i in sorted(keep))


def _excerpts(items: Sequence[EvidenceFact]) -> list[str]:
    out = []
    for e in [e for e in items if e.excerpt][:EXCERPTS]:
        out += [f"**Log excerpt: {escape(_clip(e.title, 120))}**", fenced(list(e.excerpt))]
    return out


def _actions(facts: IncidentFacts, now: datetime) -> str:
    inc = facts.incident
    if not facts.runs:
        if inc.runbooks:
            return (
                "Runbook(s) "
                + ", ".join(code(r) for r in inc.runbooks)
                + " matched but no plan could be made; nothing was done."
            )
        return "No runbook matches this alert, so nothing was done automatically; a human has to look."
    lines = []
    for rf in facts.runs:
        r = rf.run
        lines.append(f"- Runbook {code(r.runbook)} ({escape(r.mode)}): {_run_state(r, now)}")
        for s in rf.steps:
            lines.append(f"  {s.idx + 1}. {_step(s)}")
            verdict = rf.verdicts.get(s.idx)
            if verdict is not None:
                lines.append(f"     Guardrails: {_verdict(*verdict)}")
        refused = [(i, v) for i, v in rf.verdicts.items() if not v[0] and i not in {s.idx for s in rf.steps}]
        for i, v in refused:
            lines.append(f"  {i + 1}. not run. Guardrails: {_verdict(*v)}")
        if not rf.steps and not refused and r.plan.get("steps"):
            planned = ", ".join(code(str(s.get("action", "?"))) for s in r.plan["steps"])
            lines.append(f"  Planned: {planned}")
    return "\n".join(lines)


def _run_state(r: RunRow, now: datetime) -> str:
    reason = f": {escape(_clip(r.reason, MAX_LINE))}" if r.reason else ""
    if r.status == "awaiting_approval":
        until = f" until {_at(r.approval_expires_at)}" if r.approval_expires_at else ""
        return f"**waiting for approval**{until} — approve or deny in the UI, or `paramedic approve {r.incident_id}`"
    if r.status == "observed":
        return "observe mode: the plan was recorded as a suggestion, nothing ran"
    return f"**{escape(r.status)}**{reason}"


def _step(s: StepRow) -> str:
    args = " ".join(code(f"{k}={v}") for k, v in sorted(s.args.items()))
    when = f" at {_at(s.started_at)}" if s.started_at else ""
    outcome = s.summary or s.status
    if s.error:
        outcome = f"{s.status}: {s.error}"
    return f"{code(s.action)} {args} — {escape(_clip(outcome, MAX_LINE))}{when}".replace("  ", " ")


def _verdict(allowed: bool, refusal: str, checks: Sequence[Mapping[str, Any]]) -> str:
    def one(c: Mapping[str, Any]) -> str:
        return f"{'✓' if c.get('allowed') else '✗'} {escape(str(c.get('reason') or c.get('check', '')))}"

    head = "allowed" if allowed else f"**refused ({escape(refusal)})**"
    return head + (" — " + "; ".join(one(c) for c in checks) if checks else "")


def _now(inc: IncidentRow, now: datetime) -> str:
    times = [f"detected {_at(inc.starts_at)}"]
    for name, at in (
        ("acknowledged", inc.acknowledged_at),
        ("mitigated", inc.mitigated_at),
        ("escalated", inc.escalated_at),
        ("resolved", inc.resolved_at),
    ):
        if at is not None:
            times.append(f"{name} {_at(at)}")
    if inc.mitigated_at is not None:
        times.append(f"time to mitigate {format_duration(inc.mitigated_at - inc.starts_at)}")
    if inc.resolved_at is not None:
        mttr = f"MTTR **{format_duration(inc.resolved_at - inc.starts_at)}**"
    else:
        mttr = f"MTTR: still open ({format_duration(now - inc.starts_at)} so far)"
    handled = f" · handled by {escape(inc.handled_by)}" if inc.handled_by else ""
    return f"Status **{escape(inc.status)}**{handled} · " + " · ".join(times) + f" · {mttr}"


# ---- text helpers ------------------------------------------------------------------------------
def code(text: str) -> str:
    """Untrusted text as an inline code span (no markup, no links)."""
    return "`" + no_mentions(" ".join(str(text).split()).replace("`", "'")[:MAX_LINE]) + "`"


def escape(text: str, *, mentions: bool = False) -> str:
    """Untrusted text as plain markdown text on one line: markup characters escaped and, unless
    ``mentions`` (text from the config, such as an owner's contact), ``@`` mentions neutralised."""
    out = " ".join(str(text).split())
    for ch in "\\`*_[]<>#|":
        out = out.replace(ch, "\\" + ch)
    return out if mentions else no_mentions(out)


_MENTION = re.compile(r"@(?=[\w!^-])")


def no_mentions(text: str) -> str:
    """``@user``, ``@org/team``, ``@here``, ``@channel`` with a zero-width space after the ``@``: it
    reads the same, and GitHub, Slack and Jira no longer see a mention. (Slack's ``<!channel>``,
    ``<!here>``, ``<@U…>`` and ``<!subteam^…>`` need their ``<``, which every sink escapes.)"""
    return _MENTION.sub("@\u200b", text)


def _at(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "—"


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


STORM_LISTED = 50  # incidents named in a storm message; the rest are counted


def storm(
    members: Sequence[tuple[int, str, str]], *, event: str, interval: timedelta, group: str = ""
) -> tuple[str, str]:
    """The title and markdown of one message for many incidents of one alert group (an alert storm).
    ``members`` are (incident id, alertname, instance), the first one leading. Pure."""
    heading = HEADINGS.get(event, event.replace("_", " ").capitalize())
    n = len(members)
    names = sorted({a for _, a, _ in members})
    what = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} other alert(s)"
    head = no_mentions(f"{heading}: {n} incidents of {what} (storm, #{members[0][0]} and others)")
    lines = [
        f"**{heading}: {n} incidents at once** — alert {code(what)}"
        + (f", group {code(group)}" if group else "")
        + f", within {format_duration(interval)}. One message for all of them, so that the page"
        " that matters is not buried; each incident keeps its own page, evidence and timeline.",
        "",
    ]
    for iid, alertname, instance in members[:STORM_LISTED]:
        lines.append(f"- #{iid} {code(alertname)}" + (f" on {code(instance)}" if instance else ""))
    if n > STORM_LISTED:
        lines.append(f"- … and {n - STORM_LISTED} more")
    return _clip(head, 250), "\n".join(lines)
