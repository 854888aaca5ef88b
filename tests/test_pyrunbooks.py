"""Python runbooks: loading and validation with file:line:col, lints, and planning by recording."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paramedic import Context, runbook
from paramedic.actions.registry import build_registry
from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.errors import TemplateError
from paramedic.core.loader import Problem
from paramedic.core.plan import build_plan
from paramedic.core.runbooks import Runbook
from paramedic.runbooks import loading as loader
from paramedic.runbooks.dsl import (
    Change,
    Escalation,
    PlanningError,
    PythonRunbook,
    changes_from,
    plan_for,
    record,
)
from paramedic.runbooks.pyloader import load_file

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
REGISTRY = build_registry({})

HEADER = "from datetime import timedelta\n\nfrom paramedic import Context, runbook\n\n\n"

RESTART = """\
@runbook(
    match={"alertname": "WorkerHung"},
    owner="team-payments",
    mode="auto",
    guardrails={"rate_limit": {"max": 3, "per": "1h", "scope": "target"}},
    params={"program": {"pattern": "^[a-z0-9_-]{1,64}$"}, "instance": {"pattern": "^[0-9.:]+$"}},
)
async def restart_hung_worker(ctx: Context) -> None:
    \"\"\"Restart a hung worker.

    Longer text that is not the description.\"\"\"
    await ctx.act("supervisor.restart", program=ctx.labels["program"])
    await ctx.verify.http(f"http://{ctx.labels['instance']}/healthz", within="30s")
"""


def write(tmp: Path, body: str, name: str = "rb.py") -> Path:
    p = tmp / name
    p.write_text(HEADER + textwrap.dedent(body))
    return p


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def alert(**labels: str) -> Alert:
    return Alert(
        source="generic",
        fingerprint="fp1",
        name="WorkerHung",
        status=AlertStatus.FIRING,
        starts_at=NOW - timedelta(minutes=5),
        labels={"alertname": "WorkerHung", "instance": "10.0.0.1:80", **labels},
    )


def load_one(tmp: Path, body: str) -> PythonRunbook:
    found, problems = load_file(write(tmp, body))
    assert [p for p in problems if p.severity == "error"] == []
    assert len(found) == 1
    rb = found[0].runbook
    assert isinstance(rb, PythonRunbook)
    return rb


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# ---- the public API ------------------------------------------------------------------------------
def test_decorator_is_exported_and_returns_the_function_unchanged() -> None:
    async def fn(ctx: Context) -> None:
        return None

    assert runbook(match={"alertname": "X"}, owner="o")(fn) is fn


# ---- loading -------------------------------------------------------------------------------------
def test_loads_a_runbook_with_declared_steps_and_docstring_description(tmp_path: Path) -> None:
    path = write(tmp_path, RESTART)
    found, problems = load_file(path)
    assert problems == []
    loc = found[0]
    rb = loc.runbook
    assert rb.name == "restart-hung-worker"
    assert rb.description == "Restart a hung worker."
    assert [s.action for s in rb.steps] == ["supervisor.restart"]
    assert dict(rb.steps[0].with_) == {"program": "{{ labels.program }}"}
    assert loc.verifies_in_code
    assert loc.reads == {"program", "instance"}
    assert (loc.file, loc.line) == (str(path), line_of(path, "@runbook("))


def test_unknown_action_and_argument_point_at_the_call(tmp_path: Path) -> None:
    body = RESTART.replace('"supervisor.restart", program=', '"supervisor.restrat", program=').replace(
        'ctx.verify.http(f"http', 'ctx.act("shell.run", argv=["true"], shell=True)\n    await ctx.verify.http(f"http'
    )
    path = write(tmp_path, body)
    result = loader.load([path], REGISTRY)
    messages = [str(p) for p in result.errors]
    act_line = line_of(path, "supervisor.restrat")
    assert any(
        f"rb.py:{act_line}:19: error: unknown action 'supervisor.restrat'" in m
        and "did you mean 'supervisor.restart'" in m
        for m in messages
    ), messages
    shell_line = line_of(path, "shell=True")
    assert any(f"rb.py:{shell_line}:" in m and "shell.run does not take 'shell'" in m for m in messages), messages


def test_declaration_errors_have_positions_and_hints(tmp_path: Path) -> None:
    body = RESTART.replace('    owner="team-payments",\n', "").replace('"per": "1h"', '"per": "1 hour"')
    path = write(tmp_path, body)
    _, problems = load_file(path)
    by_message = {p.message: p for p in problems}
    missing = by_message["owner is required"]
    assert missing.line == line_of(path, "@runbook(")
    assert "every runbook needs an owner" in missing.hint
    bad = next(p for p in problems if "1 hour" in p.message)
    assert bad.line == line_of(path, '"per": "1 hour"')
    assert "30s, 15m" in bad.hint


def test_a_runbook_must_be_async_and_take_the_context(tmp_path: Path) -> None:
    sync = RESTART.replace("async def restart_hung_worker(ctx: Context)", "def restart_hung_worker(ctx)")
    path = write(tmp_path, sync.replace("await ", ""))
    _, problems = load_file(path)
    assert len(errors(problems)) == 1
    assert errors(problems)[0].line == line_of(path, "def restart_hung_worker")
    assert "async def" in errors(problems)[0].message


@pytest.mark.parametrize(
    ("source", "needle", "message", "hint"),
    [
        pytest.param(
            "import os\n\nBROKEN = {}['missing']\n", "BROKEN", "cannot import: KeyError: 'missing'", "", id="raises"
        ),
        pytest.param(
            "import no_such_module_here\n",
            "import no_such",
            "ModuleNotFoundError: No module named 'no_such_module_here'",
            "install 'no_such_module_here'",
            id="missing-module",
        ),
        pytest.param(
            "from paramedic import runbok\n",
            "runbok",
            "cannot import name 'runbok'",
            "from paramedic import",
            id="typo",
        ),
        pytest.param("def broken(:\n    pass\n", "def broken", "not valid Python", "", id="syntax"),
        pytest.param(
            "@runbook(match={}, owner='o')\ndef helper(x):\n    return x\n\nhelper(1)(2)\n",
            "helper(1)(2)",
            "TypeError",
            "",
            id="error-at-a-later-line",
        ),
    ],
)
def test_an_import_error_names_the_file_and_line(
    tmp_path: Path, source: str, needle: str, message: str, hint: str
) -> None:
    path = tmp_path / "broken.py"
    path.write_text("from paramedic import Context, runbook\n\n" + source if "runbok" not in source else source)
    result = loader.load([tmp_path], REGISTRY)
    assert len(result.errors) == 1
    p = result.errors[0]
    assert p.file == str(path)
    assert p.line == line_of(path, needle)
    assert message in p.message
    assert hint in p.hint
    assert result.located == []


def test_a_file_without_runbooks_is_a_warning_and_helpers_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "_helpers.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "notes.py").write_text("X = 1\n")
    result = loader.load([tmp_path], REGISTRY)
    assert result.errors == []
    assert [p.message for p in result.problems] == ["this file declares no runbook"]


# ---- lints apply to Python runbooks too -----------------------------------------------------------
def lint_messages(tmp: Path, body: str) -> list[str]:
    return [p.message for p in loader.load([write(tmp, body)], REGISTRY).problems if p.severity == "warning"]


def test_lints_auto_without_verify_or_rate_limit_and_labels_without_params(tmp_path: Path) -> None:
    body = RESTART.replace('    guardrails={"rate_limit": {"max": 3, "per": "1h", "scope": "target"}},\n', "").replace(
        '    await ctx.verify.http(f"http://{ctx.labels[\'instance\']}/healthz", within="30s")\n', ""
    )
    body = body.replace('"program": {"pattern": "^[a-z0-9_-]{1,64}$"}, ', "")
    messages = lint_messages(tmp_path, body)
    assert "runbook 'restart-hung-worker' runs automatically but has no verify" in messages
    assert "runbook 'restart-hung-worker' runs automatically with no rate limit" in messages
    assert "templated label(s) program reach an action without a params pattern" in messages


def test_a_clean_python_runbook_has_no_lint_warnings(tmp_path: Path) -> None:
    assert lint_messages(tmp_path, RESTART) == []


def test_a_promote_rule_is_linted_like_auto(tmp_path: Path) -> None:
    body = RESTART.replace('mode="auto",', 'mode="approve", promote={"after": 10},').replace(
        '    guardrails={"rate_limit": {"max": 3, "per": "1h", "scope": "target"}},\n', ""
    )
    assert lint_messages(tmp_path, body) == [
        "runbook 'restart-hung-worker' can promote itself to auto with no rate limit"
    ]


def test_a_python_and_a_yaml_runbook_acting_on_the_same_target_overlap(tmp_path: Path) -> None:
    write(tmp_path, RESTART)
    (tmp_path / "restart.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: paramedic/v1
        runbooks:
          - name: restart-workers
            owner: team-payments
            match: {alertname: [WorkerHung, WorkerSlow], labels: {service: payments}}
            steps:
              - action: supervisor.restart
                with: {program: "{{ labels.program }}"}
            params: {program: {pattern: '^[a-z]+$'}, instance: {pattern: '^[0-9.:]+$'}}
        """)
    )
    messages = [p.message for p in loader.load([tmp_path], REGISTRY).problems]
    assert messages == [
        "runbooks 'restart-hung-worker' and 'restart-workers' can match the same alert and act on the same target"
    ]


def test_disjoint_matches_do_not_overlap(tmp_path: Path) -> None:
    write(
        tmp_path,
        RESTART.replace(
            'match={"alertname": "WorkerHung"}', 'match={"alertname": "~Worker.*", "labels": {"severity": "page"}}'
        ),
    )
    (tmp_path / "restart.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: paramedic/v1
        runbooks:
          - name: restart-quietly
            owner: team-payments
            match: {alertname: WorkerHung, labels: {severity: [warning, info]}}
            steps:
              - action: supervisor.restart
                with: {program: "{{ labels.program }}"}
            params: {program: {pattern: '^[a-z]+$'}, instance: {pattern: '^[0-9.:]+$'}}
        """)
    )
    assert [p.message for p in loader.load([tmp_path], REGISTRY).problems] == []


# ---- planning by recording -------------------------------------------------------------------------
def plan(rb: Runbook, a: Alert, changes: list[Change] | None = None) -> object:
    return asyncio.run(plan_for(rb, a, now=NOW, registry=REGISTRY, changes=changes_from(changes or [])))


def test_recording_makes_the_plan_yaml_would(tmp_path: Path) -> None:
    rb = load_one(tmp_path, RESTART)
    p = asyncio.run(record(rb, alert(program="worker", instance="10.0.0.1:80"), now=NOW, registry=REGISTRY)).plan
    assert p.runbook == "restart-hung-worker"
    assert p.target == "10.0.0.1:80"
    assert [(s.action, dict(s.args)) for s in p.steps] == [("supervisor.restart", {"program": "worker"})]
    assert p.verify == {
        "http": {
            "url": "http://10.0.0.1:80/healthz",
            "expect_status": 200,
            "within": 30.0,
            "every": 1.0,
            "stable_for": 0.0,
            "method": "GET",
        }
    }


def test_a_hostile_label_refuses_the_plan_even_if_the_code_catches_the_error(tmp_path: Path) -> None:
    rb = load_one(
        tmp_path,
        RESTART.replace(
            '    await ctx.act("supervisor.restart", program=ctx.labels["program"])\n',
            "    try:\n        ctx.labels['program']\n    except Exception:\n        pass\n",
        ),
    )
    with pytest.raises(TemplateError, match="does not match pattern"):
        plan(rb, alert(program="x; rm -rf /", instance="10.0.0.1:80"))


def test_a_missing_label_is_not_hostile_and_get_has_a_default(tmp_path: Path) -> None:
    rb = load_one(
        tmp_path,
        RESTART.replace('program=ctx.labels["program"]', 'program=ctx.labels.get("program", "default-worker")').replace(
            "if True", ""
        ),
    )
    p = plan(rb, alert(instance="10.0.0.1:80"))
    assert p.steps[0].args == {"program": "default-worker"}  # type: ignore[attr-defined]
    assert "program" not in dict(alert(instance="x").labels)


def test_escalation_and_exceptions_refuse_with_a_reason_and_a_line(tmp_path: Path) -> None:
    body = """\
    @runbook(match={"alertname": "WorkerHung"}, owner="o")
    async def decide(ctx: Context) -> None:
        if ctx.labels.get("mode") == "escalate":
            ctx.escalate("nothing safe to do")
        raise ValueError("bad luck")
    """
    path = write(tmp_path, body)
    rb = load_one(tmp_path, body)
    with pytest.raises(Escalation, match="escalated by the runbook: nothing safe to do"):
        plan(rb, alert(mode="escalate"))
    with pytest.raises(PlanningError) as info:
        plan(rb, alert())
    assert str(info.value) == f"the runbook raised ValueError at rb.py:{line_of(path, 'bad luck')}: bad luck"


def test_a_bad_action_call_is_refused_at_plan_time_with_its_line(tmp_path: Path) -> None:
    body = """\
    @runbook(match={"alertname": "WorkerHung"}, owner="o")
    async def bad(ctx: Context) -> None:
        name = "supervisor." + "restrat"
        await ctx.act(name, program="x")
    """
    path = write(tmp_path, body)
    rb = load_one(tmp_path, body)
    with pytest.raises(PlanningError, match=r"unknown action 'supervisor.restrat'.*\(rb.py:(\d+)\)") as info:
        plan(rb, alert())
    assert str(info.value).endswith(f"(rb.py:{line_of(path, 'ctx.act(name')})")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param('ctx.act("supervisor.restart")', "needs argument 'program'", id="missing-argument"),
        pytest.param('ctx.act("supervisor.restart", program=3)', "must be str", id="wrong-type"),
        pytest.param('ctx.act("supervisor.restart", program=ctx)', "a Context cannot go into a plan", id="not-json"),
        pytest.param('ctx.act("supervisor.restart", program="a\\x00b")', "control character", id="control-char"),
        pytest.param('ctx.verify.http("http://x", within="soon")', "ctx.verify.http: within", id="bad-verify"),
        pytest.param(
            "ctx.verify.alert_resolved()\n    await ctx.verify.alert_resolved()", "already recorded", id="verify-twice"
        ),
    ],
)
def test_invalid_recording_calls_are_refused(tmp_path: Path, call: str, message: str) -> None:
    body = f"""\
@runbook(match={{"alertname": "WorkerHung"}}, owner="o")
async def bad(ctx: Context) -> None:
    await {call}
"""
    rb = load_one(tmp_path, body)
    with pytest.raises(PlanningError, match=message):
        plan(rb, alert())


def test_planning_has_a_time_budget(tmp_path: Path) -> None:
    body = """\
    import asyncio


    @runbook(match={"alertname": "WorkerHung"}, owner="o", budget="0.2s")
    async def slow(ctx: Context) -> None:
        await asyncio.sleep(30)
    """
    rb = load_one(tmp_path, body)
    with pytest.raises(PlanningError, match=r"longer than the budget of 0\.2s; refused, nothing runs"):
        plan(rb, alert())


def test_budget_is_bounded_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, RESTART.replace('mode="auto",', 'mode="auto", budget="1m",'))
    _, problems = load_file(path)
    assert [p.message for p in problems] == ["budget must be above 0 and at most 10.0s"]
    assert problems[0].line == line_of(path, 'budget="1m"')


def test_changes_and_time_come_from_the_context(tmp_path: Path) -> None:
    body = """\
    @runbook(match={"alertname": "WorkerHung"}, owner="o", params={"service": {"pattern": "^[a-z]+$"}})
    async def rollback(ctx: Context) -> None:
        deploy = await ctx.changes.latest(kind="deploy", within="30m", before=ctx.alert.starts_at)
        if deploy is None:
            ctx.escalate(f"no deploy before {ctx.alert.starts_at:%H:%M}; now is {ctx.now:%H:%M}")
        ctx.log.info(f"suspect {deploy.version}")
        ctx.act("release.rollback", app=deploy.service)  # recorded even without await
        await ctx.evidence.add("changes", window="6h")
    """
    rb = load_one(tmp_path, body)
    a = alert(service="web")
    before = [
        Change(at=a.starts_at - timedelta(minutes=40), service="web", version="v1"),
        Change(at=a.starts_at - timedelta(minutes=10), service="web", version="v2"),
        Change(at=a.starts_at - timedelta(minutes=5), service="api", version="v9"),
        Change(at=a.starts_at + timedelta(minutes=2), service="web", version="v3-fix"),
    ]
    rec = asyncio.run(record(rb, a, now=NOW, registry=REGISTRY, changes=changes_from(before)))
    assert [(s.action, dict(s.args)) for s in rec.plan.steps] == [("release.rollback", {"app": "web"})]
    assert rec.log == ("info: suspect v2",)
    assert rec.plan.enrich == ({"changes": {"window": "6h"}},)
    with pytest.raises(Escalation, match="no deploy before 11:55; now is 12:00"):
        plan(rb, a, [before[0], before[3]])


def test_yaml_runbooks_plan_through_the_same_entry_point() -> None:
    rb = Runbook.model_validate(
        {
            "name": "r",
            "owner": "o",
            "match": {"alertname": "WorkerHung"},
            "steps": [{"action": "supervisor.restart", "with": {"program": "{{ labels.program }}"}}],
        }
    )
    a = alert(program="w", instance="10.0.0.1:80")
    assert plan(rb, a) == build_plan(rb, a)
