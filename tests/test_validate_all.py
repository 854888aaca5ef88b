"""``paramedic validate`` reports every error at once, each with file:line:column and a hint;
config files and ``PARAMEDIC_*`` overrides the same way (the variable's name, did-you-mean)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from paramedic.cli import main
from paramedic.core.errors import ConfigError
from paramedic.engine.settings import load_config

RUNBOOK = """\
apiVersion: paramedic/v1
runbooks:
  - name: restart-worker
    owner: team-web
    match: {alertname: WorkerHung}
    guardrails:
      rate_limit: {max: 3, per: soon}
    steps:
      - action: supervisor.restrat
        with: {program: worker}
"""


def test_a_typo_in_an_action_shows_beside_the_schema_errors_above_it(tmp_path: Path) -> None:
    (tmp_path / "rb.yaml").write_text(RUNBOOK)
    result = CliRunner().invoke(main, ["validate", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if ": error:" in line]
    assert any(":7:" in line and "per" in line and "30s, 15m, 1h" in line for line in lines), lines
    assert any(":9:17:" in line and "supervisor.restrat" in line and "supervisor.restart" in line for line in lines)
    assert "2 error(s)" in result.output


CONFIG = """\
listen: 127.0.0.1:8080
databse: sqlite:///p.db
workers: many
runbooks: []
"""


def test_config_errors_all_at_once_with_line_column_and_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "paramedic.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{path}:2:10: unknown key databse")
    assert "did you mean 'database'?" in lines[0]
    assert lines[1].startswith(f"{path}:3:10: workers:")


def test_validate_counts_each_config_error(tmp_path: Path) -> None:
    (tmp_path / "paramedic.yaml").write_text(CONFIG)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "paramedic.yaml")], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "2 error(s)" in result.output


@pytest.mark.parametrize(
    ("env", "head", "hint"),
    [
        pytest.param({"PARAMEDIC_DATABSE": "sqlite:///x.db"}, "environment PARAMEDIC_DATABSE: unknown key databse",
                     "did you mean PARAMEDIC_DATABASE?", id="typo"),
        pytest.param({"PARAMEDIC_AUTOMATION__PASUED": "true"}, "environment PARAMEDIC_AUTOMATION__PASUED",
                     "did you mean PARAMEDIC_AUTOMATION__PAUSED?", id="nested-typo"),
        pytest.param({"PARAMEDIC_WORKERS": "many"}, "environment PARAMEDIC_WORKERS: workers:", "", id="bad-value"),
    ],
)  # fmt: skip
def test_an_override_error_names_the_variable(env: dict[str, str], head: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env=env)
    assert str(err.value).startswith(head)
    assert hint in str(err.value)
    assert "defaults:" not in str(err.value)


def test_validate_reads_freeze_windows_with_their_position(tmp_path: Path) -> None:
    """An Alertmanager time interval Alertmanager would refuse is a validate error, not a start failure."""
    (tmp_path / "paramedic.yaml").write_text(
        "runbooks: []\nautomation:\n  freeze:\n    - name: weekend\n"
        "      time_intervals: [{weekdays: ['saturday:sunday']}]\n"
    )
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "paramedic.yaml")], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "paramedic.yaml:4:7: automation.freeze[0]" in result.output
    assert "sunday to saturday" in result.output
