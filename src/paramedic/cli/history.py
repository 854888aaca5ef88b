"""``paramedic backtest`` and ``paramedic candidates``: the alert history, read offline.

Registered on the main group by ``cli.app``; the work is done in ``testing.backtest`` and
``testing.candidates``. Nothing here acts on anything.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import yaml
from rich.markup import escape
from rich.table import Table

from paramedic.cli.app import URL, _call, _load_config, err, fail, friendly, out
from paramedic.core.durations import format_duration, parse_duration
from paramedic.core.errors import ConfigError

_SOURCE_HELP = (
    "prometheus:URL (its ALERTS series), db or db:URL (paramedic's incidents), "
    "or a folder of payloads recorded by `paramedic record`"
)


def _duration(value: str, flag: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{flag} {value!r}: {exc}") from None


def _period(since: str, until: str | None, history_of: Any = None) -> Any:
    from paramedic.testing.history import Period

    now = datetime.now(UTC)
    end = None
    if until:
        try:
            end = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--until {until!r} is not an ISO 8601 time, like 2024-05-01T12:00:00Z")
        end = end if end is not None and end.tzinfo else end.replace(tzinfo=UTC) if end else None
    if since == "all":
        return Period(datetime(1970, 1, 2, tzinfo=UTC), end or now + timedelta(days=3650))
    return Period.since(since, now=now, until=end)


def _fit(period: Any, episodes: list[Any], since: str) -> Any:
    """``--since all``: the period the episodes span."""
    from paramedic.testing.history import Period

    if since != "all" or not episodes:
        return period
    start = min(e.starts_at for e in episodes)
    end = max(max((e.ends_at or e.seen_at) for e in episodes), max(e.seen_at for e in episodes))
    return Period(start, end + timedelta(seconds=1))


def _say_if_empty(episodes: list[Any], source: str, period: Any) -> None:
    if not episodes:
        err.print(
            f"[yellow]no alert episode in {escape(source)} from {period.start:%Y-%m-%d %H:%M} to "
            f"{period.end:%Y-%m-%d %H:%M} UTC; widen --since (recorded payloads: --since all)[/]",
            highlight=False,
        )


def _targets(path: str | None) -> list[tuple[dict[str, str], list[str]]]:
    """``--targets FILE``: ``[{scope: {service: web}, members: [a, b]}, …]``, as the config's ``targets:``."""
    if path is None:
        return []
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--targets {path}: cannot read: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(f"--targets {path}: expected a list of {{scope: {{label: value}}, members: [names]}}")
    found = []
    for i, item in enumerate(data):
        if not (
            isinstance(item, dict) and isinstance(item.get("scope"), dict) and isinstance(item.get("members"), list)
        ):
            raise ConfigError(f"--targets {path}: entry {i + 1} needs scope: {{label: value}} and members: [names]")
        found.append(({str(k): str(v) for k, v in item["scope"].items()}, [str(t) for t in item["members"]]))
    return found


@click.command()
@click.argument("runbooks", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--from", "source", required=True, help=_SOURCE_HELP)
@click.option("--since", default="30d", show_default=True, help="how far back (30d, 12h), an ISO time, or `all`")
@click.option("--until", help="end of the period (ISO 8601; default now)")
@click.option("--config", "-c", help="config file: freeze windows, flap default, database, prometheus_url")
@click.option("--step", default="15s", show_default=True, help="Prometheus: query step (the rule evaluation interval)")
@click.option("--delay", default="0s", show_default=True, help="Prometheus: delivery delay (Alertmanager group_wait)")
@click.option("--as-filed", is_flag=True, help="keep each runbook's own mode (default: replay all as if auto)")
@click.option(
    "--assume",
    type=click.Choice(["history", "success"]),
    default="history",
    show_default=True,
    help="an action is verified if the alert resolved within the verify window (history), or always",
)
@click.option(
    "--firing-for",
    "firing_for",
    type=click.Choice(["wait", "refuse"]),
    default="wait",
    show_default=True,
    help="a run whose alert is younger than require.firing_for waits (DESIGN §4) or is refused at once",
)
@click.option("--soon", default="5m", show_default=True, help="'resolved by itself soon after' the action")
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(exists=True, dir_okay=False),
    help="known targets besides the config's targets: (YAML list of {scope, members})",
)
@click.option("--prometheus", "prometheus_url", help="check the series verifications read (default: the source)")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="write report.html and PNG charts here")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--decisions", is_flag=True, help="with --json: every decision, one per runbook and episode")
@click.option(
    "--marks",
    "marks_file",
    type=click.Path(dir_okay=False),
    help="write the episodes acted on to this YAML file, for responders to mark right or wrong",
)
@friendly
def backtest(
    runbooks: tuple[str, ...],
    source: str,
    since: str,
    until: str | None,
    config: str | None,
    step: str,
    delay: str,
    as_filed: bool,
    assume: str,
    firing_for: str,
    soon: str,
    targets_file: str | None,
    prometheus_url: str | None,
    report_dir: str | None,
    as_json: bool,
    decisions: bool,
    marks_file: str | None,
) -> None:
    """Replay real alert history through RUNBOOKS and the guardrails, with the history's clock.

    Nothing runs. For each runbook: episodes matched, actions it would have taken, refusals by
    guardrail (rate limit, blast radius, flapping, firing_for, freeze, breaker), peak
    concurrency, targets touched, and the episodes it acted on that resolved by themselves soon
    after (a weak trigger). Also: data quality (flapping alerts, missing labels, absent series).

    \b
    paramedic backtest runbooks/ --from prometheus:http://127.0.0.1:9090 --since 30d --report out/
    paramedic backtest runbooks/ --from db --since 7d --json
    paramedic backtest runbooks/ --from recorded/ --since all
    """
    from paramedic.core.freeze import parse_freeze_windows
    from paramedic.testing import backtest as bt
    from paramedic.testing import data_quality, history_prometheus, sources
    from paramedic.testing.backtest_report import render_table, to_json, write_report

    cfg = _load_config(config)
    try:
        freeze = tuple(parse_freeze_windows(cfg.automation.freeze))
    except ValueError as exc:
        raise ConfigError(f"automation.freeze in the config: {exc}") from None
    where = sources.parse_source(source, database=cfg.database)
    step_td, delay_td = _duration(step, "--step"), _duration(delay, "--delay")
    period = _period(since, until)
    history = sources.read(where, period, step=step_td, delay=delay_td)
    period = _fit(period, history.episodes, since)
    for warning in history.warnings:
        err.print(f"[yellow]{escape(warning)}[/]", highlight=False)
    _say_if_empty(history.episodes, source, period)
    settings = bt.Settings(
        freeze=freeze,
        default_flap=cfg.automation.flap,
        as_auto=not as_filed,
        defer_firing_for=firing_for == "wait",
        outcome=bt.history_outcome if assume == "history" else bt.success_outcome,
        soon=_duration(soon, "--soon"),
    )
    replay = bt.Backtest.load(list(runbooks))
    declared = [(t.scope, t.members) for t in cfg.targets] + _targets(targets_file)
    settings = replace(settings, targets=bt.declared_targets(declared, replay.books))
    result = asyncio.run(replay.run(history.episodes, period, settings))
    prom = prometheus_url or where.prometheus_url or cfg.prometheus_url
    present = None
    if prom:

        def present(query: str, within: Any) -> bool:
            return history_prometheus.present(prom, query, within, step=step_td)

    quality = data_quality.assess(result, present=present)
    if as_json:
        click.echo(json.dumps(to_json(result, quality, decisions=decisions), indent=2))
    else:
        render_table(result, quality, out)
    command = "paramedic backtest " + " ".join([*runbooks, "--from", source, "--since", since])
    if marks_file:
        _write_marks(Path(marks_file), result, f"{command} ({period.start:%Y-%m-%d} to {period.end:%Y-%m-%d})")
        err.print(f"marks to fill in: {marks_file}; then `paramedic runbook mark-backtest {marks_file}`")
    if report_dir:
        path = write_report(result, quality, Path(report_dir), command=command)
        err.print(f"report: {path}", highlight=False)


def _write_marks(path: Path, result: Any, backtest_: str) -> None:
    from paramedic.testing.backtest import Kind

    by_key = {e.key: e for e in result.episodes}
    marks = []
    for d in result.decisions:
        if d.kind is not Kind.ACTED:
            continue
        ep = by_key[d.episode]
        marks.append(
            {
                "runbook": d.runbook,
                "episode": d.episode,
                "at": d.at.isoformat(),
                "alert": ep.name,
                "labels": dict(ep.labels),
                "would": f"{', '.join(d.actions)} on {d.target}",
                "then": d.reason,
                "right": None,
            }
        )
    head = (
        "# Backtested episodes a runbook would have acted on. Set right: true (that is what a responder\n"
        "# would have done) or right: false; leave right: null to skip. Then:\n"
        f"#   paramedic runbook mark-backtest {path.name}\n"
    )
    path.write_text(head + yaml.safe_dump({"backtest": backtest_, "marks": marks}, sort_keys=False, allow_unicode=True))


def mark_backtest_command(group: click.Group) -> None:
    """``paramedic runbook mark-backtest FILE`` on the runbook group."""

    @group.command("mark-backtest")
    @click.argument("marks_file", type=click.Path(exists=True, dir_okay=False))
    @URL
    @friendly
    def mark_backtest(marks_file: str, url: str) -> None:
        """Send the right/wrong marks of a backtest's episodes (from `paramedic backtest --marks FILE`).

        In observe, marked episodes count toward the runbook's promote rule as marked suggestions
        do; a promotion's audit entry says how many backtested episodes it was based on."""
        try:
            data = yaml.safe_load(Path(marks_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{marks_file}: cannot read: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("marks"), list) or not data.get("backtest"):
            raise ConfigError(f"{marks_file}: expected backtest: TEXT and marks: [...] (paramedic backtest --marks)")
        per: dict[str, list[dict[str, Any]]] = {}
        for i, m in enumerate(data["marks"]):
            if not isinstance(m, dict) or not m.get("runbook") or not m.get("episode"):
                raise ConfigError(f"{marks_file}: mark {i + 1} needs runbook and episode")
            if m.get("right") is None:
                continue
            if not isinstance(m["right"], bool):
                raise ConfigError(f"{marks_file}: mark {i + 1}: right must be true, false or null")
            per.setdefault(str(m["runbook"]), []).append(
                {"episode": str(m["episode"]), "right": m["right"], "reason": str(m.get("reason") or "")}
            )
        if not per:
            fail(f"{marks_file}: no episode is marked yet (set right: true or false)")
        for runbook, marks in per.items():
            body = {"backtest": str(data["backtest"])[:500], "marks": marks}
            answer = _call(url, "POST", f"/api/v1/runbooks/{runbook}/backtest-marks", json=body)
            out.print(
                f"{escape(runbook)}: {answer['marked']} marked ({answer['right']} right); mode {answer['mode']}",
                highlight=False,
            )


@click.command()
@click.option("--from", "source", default="db", show_default=True, help=_SOURCE_HELP)
@click.option("--since", default="30d", show_default=True, help="how far back (30d, 12h), an ISO time, or `all`")
@click.option("--until", help="end of the period (ISO 8601; default now)")
@click.option("--config", "-c", help="config file: database, runbooks, flap default")
@click.option("--runbooks", "runbook_paths", multiple=True, type=click.Path(exists=True), help="default: the config's")
@click.option("--step", default="15s", show_default=True, help="Prometheus: query step")
@click.option("--limit", default=20, show_default=True, help="rows to show")
@click.option("--json", "as_json", is_flag=True, help="print the ranking as JSON")
@friendly
def candidates(
    source: str,
    since: str,
    until: str | None,
    config: str | None,
    runbook_paths: tuple[str, ...],
    step: str,
    limit: int,
    as_json: bool,
) -> None:
    """Rank the failure modes worth automating first, from incident and alert history.

    Frequent, low-risk (one target at a time), easy to validate (the alert resolves), not
    flapping, costly in human time (acknowledge → resolve), and not automated yet rank first.
    Each row says why.
    """
    from paramedic.actions.registry import build_registry
    from paramedic.runbooks import loading as loader
    from paramedic.testing import sources
    from paramedic.testing.candidates import rank

    cfg = _load_config(config)
    where = sources.parse_source(source, database=cfg.database)
    period = _period(since, until)
    history = sources.read(where, period, step=_duration(step, "--step"))
    period = _fit(period, history.episodes, since)
    _say_if_empty(history.episodes, source, period)
    paths = list(runbook_paths) or [p for p in cfg.runbooks if Path(p).exists()]
    loaded = loader.load(paths, build_registry({}), lint=False)
    if loaded.errors:
        raise ConfigError("runbooks are invalid:\n" + "\n".join(str(p) for p in loaded.errors))
    rows = rank(history.episodes, loaded.runbooks, period, flap=cfg.automation.flap)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows[:limit]], indent=2))
        return
    days = (period.end - period.start) / timedelta(days=1)
    out.print(f"{len(history.episodes)} episode(s) over {days:.1f} days, {len(rows)} failure mode(s)", highlight=False)
    table = Table(show_lines=True)
    for col in ("#", "alert", "service", "episodes", "human time", "runbook", "why"):
        table.add_column(col)
    for i, r in enumerate(rows[:limit], 1):
        table.add_row(
            str(i),
            escape(r.alertname),
            escape(r.service),
            str(r.episodes),
            format_duration(r.human_total),
            escape(", ".join(f"{n} ({m})" for n, m in r.runbooks) or "-"),
            escape("; ".join(r.why)),
        )
    out.print(table)
