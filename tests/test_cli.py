"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from paramedic.cli import main
from tests.support import FIXTURES

GOOD = """\
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {alertname: InstanceDown, labels: {service: web}}
    target: "{{ labels.instance }}"
    mode: auto
    guardrails:
      rate_limit: {max: 3, per: 1h, scope: target}
    steps:
      - action: http.request
        with: {url: "http://127.0.0.1:9/restart/{{ labels.instance }}", method: POST}
    verify:
      http: {url: "http://{{ labels.instance }}/healthz", within: 30s}
    params:
      instance: {pattern: '^[0-9.]+:[0-9]+$'}
"""


def write(tmp: Path, text: str) -> Path:
    p = tmp / "rb.yaml"
    p.write_text(text)
    return p


def test_validate_ok_and_error_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(write(tmp_path, GOOD))])
    assert ok.exit_code == 0, ok.output
    assert "0 error(s), 0 warning(s)" in ok.output
    bad = runner.invoke(main, ["validate", str(write(tmp_path, GOOD.replace("http.request", "http.reqest")))])
    assert bad.exit_code == 1
    assert "rb.yaml:11:17: error: unknown action 'http.reqest'" in bad.output
    assert "did you mean 'http.request'" in bad.output


def test_validate_missing_path_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such file or folder" in result.output
    assert "Traceback" not in result.output


def test_dry_run_against_the_real_alertmanager_payload(tmp_path: Path) -> None:
    rb = write(tmp_path, GOOD)
    result = CliRunner().invoke(
        main, ["test", str(rb), "--alert", str(FIXTURES / "alertmanager-0.25-firing.json"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    first = report["alerts"][0]["matches"][0]
    assert first["runbook"] == "restart-web"
    assert first["target"] == "127.0.0.1:18081"
    assert first["steps"][0]["would"] == "would send POST http://127.0.0.1:9/restart/127.0.0.1:18081 and expect 200"
    assert first["would_run"] is True


def test_dry_run_with_bad_payload_fails_cleanly(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text('{"alerts": [], "version": "3"}')
    result = CliRunner().invoke(main, ["test", str(write(tmp_path, GOOD)), "--alert", str(payload)])
    assert result.exit_code == 2
    assert "version" in result.output
    assert "Traceback" not in result.output


def test_actions_lists_the_first_executors() -> None:
    result = CliRunner().invoke(main, ["actions"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("shell.run", "http.request", "supervisor.restart"):
        assert name in result.output


def test_token_create_prints_token_and_its_hash() -> None:
    import hashlib

    result = CliRunner().invoke(main, ["token", "create", "bot", "--role", "responder"])
    assert result.exit_code == 0
    token = next(w for w in result.output.split() if w.startswith("pmd_"))
    assert hashlib.sha256(token.encode()).hexdigest() in result.output


def test_remote_command_without_server_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["incidents", "list", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "paramedic serve" in result.output
