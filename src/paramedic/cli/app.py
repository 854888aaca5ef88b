"""The ``paramedic`` command line: a thin layer over the engine, the store and the HTTP API.

User mistakes end in one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paramedic import __version__
from paramedic.core.errors import ConfigError, ParamedicError
from paramedic.core.text import printable

F = TypeVar("F", bound=Callable[..., Any])
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False)
    sys.exit(code)


def friendly(fn: F) -> F:
    """Turn paramedic's own errors into one line on stderr."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ParamedicError as exc:
            fail(str(exc))
        except httpx.ConnectError as exc:
            fail(f"cannot reach the paramedic server ({exc}); is `paramedic serve` running? set --url")
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="paramedic")
def main() -> None:
    """paramedic: runbooks-as-code that fire on alerts and heal services inside guardrails.

    \b
    Start here:
      paramedic demo                 see it heal a hung and a crash-looping service
      paramedic validate runbooks/   check runbook files (exit 1 on errors)
      paramedic test runbooks/ --alert alert.json   dry run against a recorded alert
      paramedic test runbooks/       check the runbooks' test cases (*.case.yaml)
      paramedic serve                run the API, webhooks, UI and workers
    """


def _load_config(config: str | None, **overrides: Any) -> Any:
    from paramedic.engine.settings import config_path, load_config

    clean = {k: v for k, v in overrides.items() if v is not None}
    return load_config(config_path(config), overrides=clean)


# ---- serve ------------------------------------------------------------------------------------
@main.command()
@click.option("--config", "-c", help="config file (default: paramedic.yaml or $PARAMEDIC_CONFIG)")
@click.option("--listen", help="host:port to listen on (overrides the config)")
@friendly
def serve(config: str | None, listen: str | None) -> None:
    """Run the API, webhooks, web UI, probes and workers in one process."""
    import uvicorn

    from paramedic.api.app import create_app
    from paramedic.engine.logs import setup_logging
    from paramedic.engine.service import Paramedic
    from paramedic.engine.settings import config_path

    cfg = _load_config(config, listen=listen)
    setup_logging(cfg.log_format)
    pm = Paramedic.from_config(cfg)
    pm.config_file = config_path(config)
    pm.reload_on_sighup = True  # `kill -HUP` reloads runbooks and config, like `paramedic reload`
    err.print(
        f"paramedic {__version__} listening on http://{cfg.listen} ({len(pm.runbooks.by_name)} runbooks, "
        f"database {cfg.database.split('@')[-1]})"
    )
    uvicorn.run(create_app(pm), host=cfg.host, port=cfg.port, log_level="warning", access_log=False)


def _check_freeze(path: str, cfg: Any) -> None:
    """Freeze windows are read when the service starts; validate reads them too, with positions."""
    from pydantic import ValidationError

    from paramedic.core.freeze import parse_freeze_windows
    from paramedic.core.loader import yaml_with_positions

    try:
        parse_freeze_windows(cfg.automation.freeze)
    except ValidationError as exc:
        _, positions = yaml_with_positions(Path(path).read_text())
        lines = []
        for e in exc.errors():
            at: tuple[str | int, ...] = ("automation", "freeze", *e["loc"][:1])
            line, col = positions.get(at, positions.get(("automation", "freeze"), (1, 1)))
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"{path}:{line}:{col}: automation.freeze[{e['loc'][0] if e['loc'] else 0}]: {msg}")
        raise ConfigError("\n".join(lines)) from None


# ---- validate ---------------------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--strict", is_flag=True, help="treat lint warnings as errors")
@friendly
def validate(paths: tuple[str, ...], strict: bool) -> None:
    """Check runbook files (and paramedic.yaml files) and report every problem as file:line:col.

    Exits 0 when valid, 1 when anything is wrong (with --strict, also on warnings).
    """
    from paramedic.actions.registry import build_registry
    from paramedic.runbooks import loading as loader

    config_files = [p for p in paths if Path(p).name in ("paramedic.yaml", "paramedic.yml")]
    rb_paths = [p for p in paths if p not in config_files]
    bad = 0
    for cf in config_files:
        try:
            _check_freeze(cf, _load_config(cf))
        except ParamedicError as exc:
            err.print(escape(str(exc)), highlight=False)
            bad += max(1, len(str(exc).splitlines()))  # every problem is one line
    result = loader.load(rb_paths, build_registry({}))
    for p in result.problems:
        style = "red" if p.severity == "error" else "yellow"
        out.print(f"[{style}]{escape(str(p))}[/]", highlight=False)
    errors = len(result.errors) + bad
    warnings = len(result.problems) - len(result.errors)
    summary = f"{len(result.located)} runbook(s): {errors} error(s), {warnings} warning(s)"
    if errors or (strict and warnings):
        err.print(f"[red]{summary}[/]")
        sys.exit(1)
    out.print(f"[green]{summary}[/]")


# ---- test (dry run) ---------------------------------------------------------------------------
def _when(now: str | None) -> Any:
    from datetime import UTC, datetime

    if now is None:
        return None
    try:
        at = datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--now {now!r} is not an ISO 8601 time, like 2024-05-01T12:00:00Z")
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@main.command("test")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--alert",
    "alert_file",
    type=click.Path(exists=True, dir_okay=False),
    help="a recorded payload (Alertmanager, generic, …): show what the runbooks would do",
)
@click.option(
    "--cases",
    "case_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="a case file or a folder of *.case.yaml (default: the cases under PATH)",
)
@click.option("--now", help="with --alert: evaluate at this ISO 8601 time instead of now")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@friendly
def test_cmd(path: str, alert_file: str | None, case_paths: tuple[str, ...], now: str | None, as_json: bool) -> None:
    """Dry run of the runbooks under PATH: which runbooks match, the rendered plan, every guardrail
    verdict and the mode. Nothing is executed.

    \b
    With --alert: one recorded payload, shown (exit 0).
    Otherwise: test cases (*.case.yaml, docs/runbook-tests.md) from --cases or found under PATH,
    each checked against its expected outcome; exit 1 on any difference.
    """
    if alert_file is not None:
        from paramedic.testing.dryrun import dry_run, render_report

        report = asyncio.run(dry_run(path, Path(alert_file), now=_when(now)))
        if as_json:
            out.print_json(json.dumps(report))
            return
        render_report(report, out)
        return
    from paramedic.testing.cases import find_cases, render_results, run_cases
    from paramedic.testing.dryrun import DryRun

    roots = [Path(p) for p in case_paths] or [Path(path)]
    files = find_cases(roots) if case_paths or Path(path).is_dir() else []  # PATH, a runbook file, is no case
    if not files:
        fail(f"no test cases (*.case.yaml) under {', '.join(map(str, roots))}; pass --alert PAYLOAD.json or --cases")
    dry = DryRun.load([path])
    root = roots[0] if len(roots) == 1 and roots[0].is_dir() else None
    results = asyncio.run(run_cases(dry, files, root=root))
    if as_json:
        out.print_json(json.dumps([r.to_json() for r in results]))
    else:
        render_results(results, out)
    if any(not r.passed for r in results):
        sys.exit(1)


# ---- record -----------------------------------------------------------------------------------
@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="folder to write each payload into")
@click.option("--listen", default="127.0.0.1:9095", show_default=True, help="host:port to receive webhooks on")
@click.option(
    "--runbooks",
    "runbook_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="also write a case skeleton next to each payload, expectations from a dry run of these",
)
@click.option(
    "--skeleton",
    "skeleton_of",
    type=click.Path(exists=True, dir_okay=False),
    help="print a test case skeleton for this recorded payload and exit",
)
@friendly
def record(out_dir: str | None, listen: str, runbook_paths: tuple[str, ...], skeleton_of: str | None) -> None:
    """Record webhook payloads to files, to become runbook test cases.

    \b
    paramedic record --out cases/            receive on paramedic's webhook paths, write
                                             cases/<time>Z-<source>-NNN.json per delivery
    paramedic record --skeleton FILE.json [--runbooks runbooks/]
                                             print a case for a recorded payload
    Point Alertmanager (or curl) at http://HOST:PORT/api/v1/alerts/alertmanager. Nothing is acted on.
    """
    if skeleton_of is not None:
        from paramedic.testing.cases import skeleton_for

        click.echo(asyncio.run(skeleton_for(Path(skeleton_of), list(runbook_paths))), nl=False)
        return
    if out_dir is None:
        fail("give --out DIR to record payloads, or --skeleton FILE to print a case for one")
        return
    import ipaddress

    import uvicorn

    from paramedic.ingest.payloads import WEBHOOK_PATHS, parsers
    from paramedic.testing.recorder import Recorder, Saved

    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        fail(f"--listen {listen!r}: give host:port, like 127.0.0.1:9095")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        fail("the recorder takes payloads without authentication: listen on a loopback address")

    def saved(s: Saved) -> None:
        case = f" and {s.case.name}" if s.case else ""
        out.print(f"recorded {s.source} payload ({s.alerts} alert(s)) → {s.path}{case}", highlight=False)
        if s.warning:
            err.print(f"[yellow]{escape(s.warning)}[/]", highlight=False)

    def rejected(source: str, reason: str) -> None:
        err.print(f"[yellow]{source} payload not recorded: {escape(reason)}[/]", highlight=False)

    app = Recorder(Path(out_dir), runbooks=runbook_paths, on_saved=saved, on_rejected=rejected)
    known = parsers()
    for path_, source in WEBHOOK_PATHS.items():
        if source in known:
            err.print(f"recording {source:<12} at http://{listen}{path_}", highlight=False)
    err.print(f"writing to {out_dir}; Ctrl-C to stop")
    uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False, lifespan="off")


# ---- actions ----------------------------------------------------------------------------------
@main.command()
@friendly
def actions() -> None:
    """List every executor action with its parameters and whether it is idempotent."""
    from paramedic.actions.registry import build_registry

    table = Table(title="actions", show_lines=False)
    for col in ("action", "idempotent", "parameters", "what it does"):
        table.add_column(col)
    for spec in build_registry({}).specs():
        params = ", ".join(f"{p.name}{'' if p.required else '?'}: {p.type}" for p in spec.params)
        table.add_row(spec.name, "yes" if spec.idempotent else "no", escape(params), escape(spec.summary))
    out.print(table)
    out.print("A dry run (`paramedic test`) shows each action's own description of what it would change.")


# ---- remote operations ------------------------------------------------------------------------
def _client(url: str) -> httpx.Client:
    from paramedic.engine.settings import environment

    token = environment().get("PARAMEDIC_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=10)


def _call(url: str, method: str, path: str, **kwargs: Any) -> Any:
    if method != "GET":
        kwargs.setdefault("json", {})  # the server takes state changes as JSON only
    with _client(url) as c:
        r = c.request(method, path, **kwargs)
    if r.status_code >= 400:
        try:
            detail = r.json().get("error") or r.json().get("detail")
        except ValueError:
            detail = r.text
        if isinstance(detail, list):  # FastAPI's validation errors: say what is wrong, not the JSON
            msgs = [str(d.get("msg", d)) for d in detail if isinstance(d, dict)]
            detail = "; ".join(m.removeprefix("Value error, ") for m in msgs)
        hint = " (set PARAMEDIC_TOKEN)" if r.status_code == 401 else ""
        fail(f"{method} {path} → {r.status_code}: {detail}{hint}", 1)
    return r.json()


URL = click.option(
    "--url",
    envvar="PARAMEDIC_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="the paramedic server ($PARAMEDIC_URL)",
)


@main.group()
def incidents() -> None:
    """List and inspect incidents on a running server."""


@incidents.command("list")
@URL
@click.option("--status", help="open, resolved, escalated, mitigated, …")
@friendly
def incidents_list(url: str, status: str | None) -> None:
    """Incidents, newest first."""
    from paramedic.cli.render import incidents_table

    data = _call(url, "GET", "/api/v1/incidents", params={"status": status} if status else {})
    out.print(incidents_table(data["incidents"]))


@incidents.command("show")
@click.argument("incident_id", type=int)
@URL
@friendly
def incidents_show(incident_id: int, url: str) -> None:
    """One incident with its timeline: alerts, verdicts, actions, verification, approvals."""
    from paramedic.cli.render import render_incident

    render_incident(_call(url, "GET", f"/api/v1/incidents/{incident_id}"), out)


def _changed(data: dict[str, Any], what: str) -> None:
    from paramedic.cli.render import safe

    out.print(f"incident {data['id']}: {what} (status {safe(data['status'])})", highlight=False)


@incidents.command("ack")
@click.argument("incident_id", type=int)
@URL
@friendly
def incidents_ack(incident_id: int, url: str) -> None:
    """Acknowledge INCIDENT_ID: you are on it (responder role; audited)."""
    data = _call(url, "POST", f"/api/v1/incidents/{incident_id}/acknowledge")
    _changed(data, f"acknowledged by {data['acknowledged_by']}")


@incidents.command("resolve")
@click.argument("incident_id", type=int)
@click.option("--reason", required=True, help="why it is closed (kept in the audit trail)")
@URL
@friendly
def incidents_resolve(incident_id: int, reason: str, url: str) -> None:
    """Resolve INCIDENT_ID by hand; its MTTR counts until now. Actions still waiting are cancelled."""
    data = _call(url, "POST", f"/api/v1/incidents/{incident_id}/resolve", json={"reason": reason})
    _changed(data, f"resolved by {data['resolved_by']}, MTTR {data['mttr']}")


@incidents.command("note")
@click.argument("incident_id", type=int)
@click.argument("text")
@URL
@friendly
def incidents_note(incident_id: int, text: str, url: str) -> None:
    """Add TEXT to the timeline of INCIDENT_ID (what you saw, what you did by hand)."""
    data = _call(url, "POST", f"/api/v1/incidents/{incident_id}/notes", json={"text": text})
    _changed(data, "note added")


@incidents.command("assign")
@click.argument("incident_id", type=int)
@click.option("--to", "person", help="a person")
@click.option("--team", help="a team")
@URL
@friendly
def incidents_assign(incident_id: int, person: str | None, team: str | None, url: str) -> None:
    """Assign INCIDENT_ID to a person (--to) or a team (--team); the assignee is notified."""
    if (person is None) == (team is None):
        fail("give one of --to PERSON or --team TEAM")
    body = {"person": person} if person is not None else {"team": team}
    data = _call(url, "POST", f"/api/v1/incidents/{incident_id}/assign", json=body)
    _changed(data, f"assigned to {data['assignee_kind']} {data['assignee']}")


@incidents.command("snooze")
@click.argument("incident_id", type=int)
@click.option("--for", "duration", required=True, help="how long, like 30m or 2h (at most 24h)")
@URL
@friendly
def incidents_snooze(incident_id: int, duration: str, url: str) -> None:
    """Acknowledge INCIDENT_ID and be reminded when the snooze ends, if it is still open."""
    data = _call(url, "POST", f"/api/v1/incidents/{incident_id}/snooze", json={"for": duration})
    _changed(data, f"snoozed until {data['snoozed_until']}")


@main.command()
@click.argument("incident_id", type=int)
@click.option("--reason", default="", help="why (kept in the audit trail)")
@click.option("--run", "run_id", type=int, help="the run to approve (default: the one waiting)")
@click.option("--plan", "plan_digest", help="the plan digest you reviewed (`incidents show`); refused if it changed")
@URL
@friendly
def approve(incident_id: int, reason: str, run_id: int | None, plan_digest: str | None, url: str) -> None:
    """Approve the action waiting on INCIDENT_ID.

    Review it first with `paramedic incidents show INCIDENT_ID` (plan, verification, expiry).
    Refused while automation is paused: the run keeps waiting, approve it again after `resume`.
    """
    body: dict[str, Any] = {"reason": reason, "run_id": run_id, "plan_digest": plan_digest}
    data = _call(url, "POST", f"/api/v1/incidents/{incident_id}/approve", json=body)
    status = data["status"]
    more = " (another approver is needed)" if status == "awaiting_approval" else ""
    out.print(f"run {data['run_id']}: {status}{more}", highlight=False)


@main.command()
@click.argument("incident_id", type=int)
@click.option("--reason", required=True, help="why the action must not run")
@URL
@friendly
def deny(incident_id: int, reason: str, url: str) -> None:
    """Deny the action waiting on INCIDENT_ID."""
    data = _call(url, "POST", f"/api/v1/incidents/{incident_id}/deny", json={"reason": reason})
    out.print(f"run {data['run_id']}: {data['status']}")


@main.command()
@click.option("--reason", default="", help="why (kept in the audit trail)")
@URL
@friendly
def pause(reason: str, url: str) -> None:
    """Stop all automated actions until `paramedic resume`."""
    _call(url, "POST", "/api/v1/automation/pause", json={"reason": reason})
    out.print("automation paused: no action will run until `paramedic resume`")


@main.command()
@URL
@friendly
def resume(url: str) -> None:
    """Allow automated actions again."""
    _call(url, "POST", "/api/v1/automation/resume")
    out.print("automation resumed")


@main.command()
@URL
@friendly
def reload(url: str) -> None:
    """Reload the runbooks and the config's owners and route on a running server (admin role).

    Everything is validated first: a bad edit changes nothing and the error names every problem.
    `kill -HUP` on `paramedic serve` does the same.
    """
    from paramedic.cli.render import safe

    data = _call(url, "POST", "/api/v1/reload")
    parts = [
        f"{len(data['added'])} added",
        f"{len(data['changed'])} changed",
        f"{len(data['removed'])} removed",
        f"{data['unchanged']} unchanged",
    ]
    out.print(f"runbooks reloaded: {', '.join(parts)}", highlight=False)
    for name, (before, after) in data["changed"].items():
        out.print(f"  {safe(name)}: version {before} → {after}", highlight=False)
    if data["restart_needed_for"]:
        out.print(f"  needs a restart to take effect: {', '.join(data['restart_needed_for'])}", highlight=False)


@main.group()
def breaker() -> None:
    """Circuit breakers of runbooks on a running server."""


@breaker.command("reset")
@click.argument("runbook")
@URL
@friendly
def breaker_reset(runbook: str, url: str) -> None:
    """Close every circuit breaker of RUNBOOK by hand (admin role; kept in the audit trail)."""
    data = _call(url, "POST", f"/api/v1/runbooks/{runbook}/breaker/reset")
    opened = int(data["reset"])
    out.print(
        f"{runbook}: {opened} open breaker(s) closed" if opened else f"{runbook}: no breaker was open; all closed",
        highlight=False,
    )


@main.group("runbook")
def runbook_group() -> None:
    """A runbook's mode and its observed suggestions, on a running server."""


@runbook_group.command("mode")
@click.argument("name")
@click.argument("mode", type=click.Choice(["observe", "approve", "auto"]))
@click.option("--reason", default="", help="why (kept in the audit trail)")
@URL
@friendly
def runbook_mode(name: str, mode: str, reason: str, url: str) -> None:
    """Set runbook NAME's MODE by hand (admin role; audited). The mode in the runbook file is the
    ceiling: a higher MODE is refused; edit the file to raise it."""
    data = _call(url, "PUT", f"/api/v1/runbooks/{name}/mode", json={"mode": mode, "reason": reason})
    out.print(f"{escape(name)}: mode {data['mode']}", highlight=False)


@runbook_group.command("mark")
@click.argument("run_id", type=int)
@click.argument("verdict", type=click.Choice(["right", "wrong"]))
@click.option("--reason", default="", help="why (kept in the audit trail)")
@URL
@friendly
def runbook_mark(run_id: int, verdict: str, reason: str, url: str) -> None:
    """Mark observed run RUN_ID's suggestion right or wrong (responder role; audited). In observe
    mode, marks since the last mode change count toward the runbook's promote rule."""
    data = _call(url, "POST", f"/api/v1/runs/{run_id}/mark", json={"right": verdict == "right", "reason": reason})
    out.print(f"run {run_id} marked {verdict}; the runbook's mode is {data['mode']}", highlight=False)


# ---- audit (commands in cli/audit.py) ---------------------------------------------------------
DB = click.option("--config", "-c", help="config file (for its database)")
DB_URL = click.option("--database", help="database URL (overrides the config)")


def _db(config: str | None, database: str | None, *, must_exist: bool = True) -> Any:
    """The database of the config (or ``--database``). A command that reads refuses an SQLite file
    that does not exist rather than create an empty one and report on nothing."""
    from sqlalchemy.engine import make_url

    from paramedic.engine.settings import config_path
    from paramedic.store.db import Database, single_use_engine

    cfg = _load_config(config, database=database)
    if must_exist and cfg.database.startswith("sqlite"):
        name = make_url(cfg.database).database
        if name and name != ":memory:" and not Path(name).exists():
            found = config_path(config)
            if found is None and database is None:
                fail(
                    f"no config here (paramedic.yaml or $PARAMEDIC_CONFIG) and no database {name!r}: run this where"
                    " paramedic.yaml is, or pass --config FILE or --database URL"
                )
            fail(f"the database file {name!r} does not exist; check database: in {found or '--database'}")
    return Database(single_use_engine(cfg.database))


# ---- report -----------------------------------------------------------------------------------
@main.command()
@DB
@DB_URL
@click.option("--since", default="30d", show_default=True, help="the period: this long before --until")
@click.option("--until", "until_", help="end of the period, ISO 8601 (default: now)")
@click.option(
    "--by",
    "by",
    multiple=True,
    type=click.Choice(["runbook", "service", "owner"]),
    help="group by (repeat; default: all three)",
)
@click.option("--png", "png_path", type=click.Path(dir_okay=False), help="also write a chart (per the first --by)")
@friendly
def report(
    config: str | None, database: str | None, since: str, until_: str | None, by: tuple[str, ...], png_path: str | None
) -> None:
    """MTTR and automation figures per runbook, service and owner, automated vs human.

    \b
    Counts the incidents detected in the period; MTTR is resolved − detected (a human
    resolution counts), TTM is time to mitigate. Reads the database (--config or --database).
      paramedic report --since 7d --by runbook --png mttr.png
    """
    from datetime import UTC, datetime

    from paramedic.cli import report as rep
    from paramedic.core.durations import parse_duration

    try:
        span = parse_duration(since)
    except ValueError as exc:
        fail(f"--since {since!r}: {exc}")
    end = _when(until_) or datetime.now(UTC)
    groups: list[Any] = list(by) or ["runbook", "service", "owner"]
    handle = _db(config, database)
    try:
        with handle.read() as conn:
            data = rep.gather(conn, since=end - span, until=end)
    finally:
        handle.dispose()
    rep.render(data, out, by=groups)
    if png_path:
        Path(png_path).write_bytes(rep.png(data, groups[0]))
        out.print(f"chart written to {png_path}", highlight=False)


# ---- db / token -------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@DB
@DB_URL
@friendly
def db_upgrade(config: str | None, database: str | None) -> None:
    """Run migrations up to the latest schema (safe to run from several replicas at once)."""
    from paramedic.store import migrate

    handle = _db(config, database, must_exist=False)
    try:
        migrate.upgrade(handle)
        out.print(f"database at revision {migrate.current(handle)}")
    except ParamedicError:
        raise
    except Exception as exc:
        fail(f"migration failed: {exc}", 1)
    finally:
        handle.dispose()


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "sender", "responder", "admin"]),
    required=True,
    help="viewer: reads only; sender: posts alerts and changes only (Alertmanager, Grafana, CI/CD);"
    " responder: reads, approves, denies; admin: everything",
)
def token_create(name: str, role: str) -> None:
    """Print a new token once, and the config entry (its SHA-256) to add under auth.tokens."""
    from paramedic.api.auth import new_token, sha256_hex

    value = new_token()
    out.print(f"token (shown once, store it now): [bold]{value}[/]", highlight=False)
    out.print("add to paramedic.yaml under auth.tokens:")
    click.echo(f'  - {{name: {name}, role: {role}, sha256: "{sha256_hex(value)}"}}')


# ---- demo -------------------------------------------------------------------------------------
@main.command()
@click.option("--ui", is_flag=True, help="keep the web UI up after the scenarios (Ctrl-C to stop)")
@click.option("--port", default=8088, show_default=True, help="port for paramedic's API and UI")
@click.option("--workdir", type=click.Path(), help="where to keep the demo's files (default: a temp dir)")
@friendly
def demo(ui: bool, port: int, workdir: str | None) -> None:
    """Run the main job on SQLite: a sample service under supervisord, faults, live healing, MTTR.

    Starts three instances of a sample HTTP service under supervisord, paramedic with its own
    health probes, then hangs one instance and crash-loops another. Shows each incident live
    and ends with an MTTR table. Leaves no process behind, also after Ctrl-C.
    """
    from paramedic.lab.demo import run_demo

    code = run_demo(console=out, ui=ui, port=port, workdir=Path(workdir) if workdir else None)
    sys.exit(code)


# ---- lab --------------------------------------------------------------------------------------
@main.command()
@click.argument("scenario")
@click.option("--baseline", is_flag=True, help="also run each scenario without automation (and supervisord's own)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="write mttr.md, mttr.png, results.json here")
@friendly
def lab(scenario: str, baseline: bool, out_dir: str | None) -> None:
    """Run a lab scenario (or `all`) on real Prometheus, Alertmanager, HAProxy and supervisord.

    \b
    Scenarios: hung, crashloop, leak, bad-release, overload, unhealthy, flapping, unknown, worse.
    Each starts its own stack on loopback, injects its fault, measures detect, mitigate and
    recover, and stops everything again. Exit 1 when an outcome was not the expected one.
    """
    from paramedic.lab import scenarios
    from paramedic.lab.lab_report import run_lab

    if scenario == "all":
        which = list(scenarios.SCENARIOS)
    elif scenario in scenarios.BY_KEY:
        which = [scenarios.BY_KEY[scenario]]
    else:
        fail(f"unknown scenario {scenario!r}; choose one of: all, {', '.join(scenarios.BY_KEY)}")
    command = " ".join(
        ["paramedic lab", scenario, *(["--baseline"] if baseline else []), *(["--out", out_dir] if out_dir else [])]
    )
    code = run_lab(out, which=which, baseline=baseline, out=Path(out_dir) if out_dir else None, command=command)
    sys.exit(code)


# ---- backtest, candidates (cli/history.py) ------------------------------------------------------
from paramedic.cli.history import backtest, candidates, mark_backtest_command  # noqa: E402 - needs the above

main.add_command(backtest)
main.add_command(candidates)
mark_backtest_command(runbook_group)

# ---- audit (cli/audit.py) ---------------------------------------------------------------------
from paramedic.cli.audit import audit  # noqa: E402 - registers on ``main``, defined above

main.add_command(audit)

if __name__ == "__main__":  # pragma: no cover
    main()
