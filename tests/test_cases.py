"""`paramedic test` with runbook test cases: the format, readable differences and exit codes, and a
Python runbook that gives the same plan and verdicts as its YAML twin."""

from __future__ import annotations

import asyncio
import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from paramedic.cli import main
from paramedic.testing.cases import run_case, skeleton_for
from paramedic.testing.dryrun import DryRun
from tests.support import FIXTURES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "runbooks"
WORKER_CASES = sorted((EXAMPLES / "cases").glob("restart-hung-worker*.case.yaml"))

PY_TWIN = '''\
"""The Python twin of examples/runbooks/restart-hung-process.yaml: restart-hung-worker."""

from paramedic import Context, runbook


@runbook(
    match={"alertname": "WorkerHung", "labels": {"severity": ["warning", "critical", "page"]}},
    owner="team-platform",
    mode="approve",
    promote={"after": 10, "min_success_rate": 0.95},
    target="{{ labels.program }}",
    require={"firing_for": "1m"},
    guardrails={
        "rate_limit": {"max": 3, "per": "1h", "scope": "target"},
        "blast_radius": {"scope": ["service"], "max_concurrent": 1, "max_fraction": 0.34, "min_healthy": 1},
        "circuit_breaker": {"failures": 2, "window": "30m", "cooldown": "1h"},
    },
    enrich=[{"logs": {"program": "{{ labels.program }}", "lines": 200}}],
    params={
        "program": {"pattern": "^[a-z0-9_-]{1,64}(:[a-z0-9_-]{1,64})?$"},
        "instance": {"pattern": "^[a-z0-9.-]{1,253}:[0-9]{1,5}$"},
    },
)
async def restart_hung_worker(ctx: Context) -> None:
    """A hung worker: restart that one process and check its health endpoint."""
    await ctx.act("supervisor.restart", program=ctx.labels["program"])
    await ctx.verify.http(f"http://{ctx.labels['instance']}/healthz", expect_status=200, within="60s", stable_for="10s")
'''

RUNBOOK = """\
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {alertname: InstanceDown, labels: {service: web}}
    target: "{{ labels.instance }}"
    mode: auto
    require: {firing_for: 1m}
    guardrails:
      rate_limit: {max: 2, per: 1h, scope: target}
    steps:
      - action: http.request
        with: {url: "http://127.0.0.1:9/restart/{{ labels.instance }}", method: POST}
    verify:
      http: {url: "http://{{ labels.instance }}/healthz", within: 30s}
    params:
      instance: {pattern: '^[0-9.]+:[0-9]+$'}
"""


def folder(tmp: Path, text: str = RUNBOOK) -> Path:
    books = tmp / "runbooks"
    books.mkdir(exist_ok=True)
    (books / "web.yaml").write_text(text)
    return books


def case(tmp: Path, text: str, name: str = "web.case.yaml") -> Path:
    p = tmp / "runbooks" / name
    p.write_text(textwrap.dedent(text))
    return p


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})


# ---- Python and YAML give the same answer -------------------------------------------------------
@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    yaml_dir, py_dir = tmp_path / "yaml", tmp_path / "py"
    yaml_dir.mkdir()
    py_dir.mkdir()
    shutil.copy(EXAMPLES / "restart-hung-process.yaml", yaml_dir)
    (py_dir / "restart_hung_worker.py").write_text(PY_TWIN)
    return yaml_dir, py_dir


def test_the_python_twin_passes_the_yaml_runbooks_cases(twins: tuple[Path, Path]) -> None:
    assert len(WORKER_CASES) >= 4
    for books in twins:
        result = invoke("test", str(books), *(arg for c in WORKER_CASES for arg in ("--cases", str(c))))
        assert result.exit_code == 0, result.output
        assert f"{len(WORKER_CASES)} case(s): {len(WORKER_CASES)} passed, 0 failed" in result.output


@pytest.mark.parametrize("case_file", WORKER_CASES, ids=lambda p: p.name)
def test_python_and_yaml_give_the_same_plan_and_verdicts(twins: tuple[Path, Path], case_file: Path) -> None:
    yaml_dir, py_dir = twins
    reports, kinds = [], []
    for books in (yaml_dir, py_dir):
        result = asyncio.run(run_case(DryRun.load([books]), case_file))
        assert result.passed, result.mismatches
        assert result.report is not None
        match = dict(result.report["alerts"][0]["matches"][0])
        kinds.append(match.pop("kind"))
        reports.append(match)
    assert kinds == ["yaml", "python"]
    assert reports[0] == reports[1]  # plan, verify, evidence, every verdict and its reason, the mode


def test_python_twin_validates_strictly(twins: tuple[Path, Path]) -> None:
    result = invoke("validate", "--strict", str(twins[1]))
    assert result.exit_code == 0, result.output
    assert "1 runbook(s): 0 error(s), 0 warning(s)" in result.output


# ---- mismatches ----------------------------------------------------------------------------------
def test_a_mismatching_case_exits_1_with_a_readable_diff(tmp_path: Path) -> None:
    books = folder(tmp_path)
    shutil.copy(FIXTURES / "alertmanager-0.25-firing.json", books / "am.json")
    case(
        tmp_path,
        """\
        description: restart the first instance
        alert: am.json
        expect:
          - matches: [restart-web]
            plan:
              - action: http.request
                args: {url: "http://127.0.0.1:9/restart/127.0.0.1:18089", method: POST}
            verdicts: {rate_limit: rate_limited, data_quality: allowed}
            outcome: approval
          - matches: [restart-web, restart-db]
        """,
    )
    result = invoke("test", str(books))
    assert result.exit_code == 1
    out = result.output
    assert "FAIL web.case.yaml — restart the first instance" in out
    assert "alert 0 (InstanceDown): restart-web: plan differs (- expected, + got):" in out
    assert "-    url: http://127.0.0.1:9/restart/127.0.0.1:18089" in out
    assert "+    url: http://127.0.0.1:9/restart/127.0.0.1:18081" in out
    assert "restart-web: verdict rate_limit: expected rate_limited, got allowed (rate limit: 0 of 2" in out
    assert "restart-web: outcome: expected approval, got run" in out
    assert "alert 1 (InstanceDown): matches: expected ['restart-db', 'restart-web'], got ['restart-web']" in out
    assert "1 case(s): 0 passed, 1 failed" in out
    assert "Traceback" not in out


def test_a_passing_case_with_state_inline_payload_and_fixed_time(tmp_path: Path) -> None:
    books = folder(tmp_path)
    case(
        tmp_path,
        """\
        alert: {name: InstanceDown, labels: {service: web, instance: "10.0.0.7:80"}}
        now: 2024-05-01T12:00:00Z
        firing_for: 30s
        state:
          actions:
            - {runbook: restart-web, target: "10.0.0.7:80", ago: 10m}
            - {runbook: restart-web, target: "10.0.0.7:80", ago: 2m, outcome: in_flight}
        expect:
          matches: [restart-web]
          target: "10.0.0.7:80"
          verify: {http: {url: "http://10.0.0.7:80/healthz", within: 30s}}
          verdicts: {paused: allowed, data_quality: not_firing_long_enough, rate_limit: rate_limited}
          outcome: refused
          would_run: false
        """,
    )
    result = invoke("test", str(books), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data[0]["passed"] is True
    assert data[0]["report"]["now"] == "2024-05-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("alert: nope.json\nexpect: {matches: []}\n", "cannot read the payload", id="missing-payload"),
        pytest.param(
            "alert: {name: X}\nexpect: {verdicts: {rate_limit: maybe}}\n", "'maybe' is not one of", id="bad-verdict"
        ),
        pytest.param("alert: {name: X}\nexpect: {matchs: []}\n", "expect.matchs: Extra inputs", id="typo"),
        pytest.param("alert: [unclosed\n", "not valid YAML", id="yaml"),
    ],
)
def test_a_broken_case_fails_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    books = folder(tmp_path)
    case(tmp_path, text)
    result = invoke("test", str(books))
    assert result.exit_code == 1
    assert "FAIL web.case.yaml" in result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_flat_expectations_need_exactly_one_match(tmp_path: Path) -> None:
    books = folder(tmp_path, RUNBOOK + RUNBOOK.split("runbooks:\n", 1)[1].replace("restart-web", "restart-web-2"))
    case(tmp_path, "alert: {name: InstanceDown, labels: {service: web, instance: '1.2.3.4:5'}}\nexpect: {mode: auto}\n")
    result = invoke("test", str(books))
    assert result.exit_code == 1
    assert "need exactly one matching runbook (got 2); use runbooks: {name: {...}}" in result.output


def test_no_cases_found_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke("test", str(folder(tmp_path)))
    assert result.exit_code == 2
    assert "no test cases (*.case.yaml)" in result.output


def test_case_files_and_payloads_next_to_runbooks_are_not_runbooks(tmp_path: Path) -> None:
    books = folder(tmp_path)
    case(tmp_path, "alert: p.json\nexpect: {matches: []}\n")
    (books / "p.json").write_text("{}")
    result = invoke("validate", "--strict", str(books))
    assert result.exit_code == 0, result.output
    assert "1 runbook(s): 0 error(s), 0 warning(s)" in result.output


def test_single_payload_mode_shows_python_runbooks(twins: tuple[Path, Path]) -> None:
    payload = EXAMPLES / "cases" / "payloads" / "worker-hung.json"
    result = invoke("test", str(twins[1]), "--alert", str(payload), "--now", "2024-05-14T09:20:00Z", "--json")
    assert result.exit_code == 0, result.output
    match = json.loads(result.output)["alerts"][0]["matches"][0]
    assert match["kind"] == "python"
    assert match["steps"][0]["action"] == "supervisor.restart"
    assert match["outcome"] == "refused"  # no known peers: the blast radius refuses


def test_a_skeleton_from_a_dry_run_is_a_passing_case(tmp_path: Path) -> None:
    books = folder(tmp_path)
    payload = books / "20240501T120000Z-alertmanager-001.json"
    shutil.copy(FIXTURES / "alertmanager-0.25-firing.json", payload)
    text = asyncio.run(skeleton_for(payload, [books]))
    assert text.startswith("# expectations are what the runbooks do today")
    assert "source: alertmanager" in text
    (books / "20240501T120000Z-alertmanager-001.case.yaml").write_text(text)
    result = invoke("test", str(books))
    assert result.exit_code == 0, result.output
    assert "1 case(s): 1 passed, 0 failed" in result.output


def test_a_freeze_window_and_a_pause_are_refusals_a_case_can_state(tmp_path: Path) -> None:
    books = folder(tmp_path)
    case(
        tmp_path,
        """\
        description: Friday afternoon is frozen
        alert: {name: InstanceDown, labels: {service: web, instance: "10.0.0.7:80"}}
        now: 2024-05-03T15:00:00Z
        state:
          paused: true
          freeze: [{name: friday, days: [fri], start: "12:00", end: "23:59"}]
        expect:
          verdicts: {paused: paused, frozen: frozen, rate_limit: allowed}
          outcome: refused
        """,
    )
    result = invoke("test", str(books))
    assert result.exit_code == 0, result.output
