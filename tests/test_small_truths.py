"""Small truths a new user meets first: the README's figures are the real ones, and a command
run in the wrong folder says so instead of creating an empty database and reporting on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from paramedic.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("command", ["validate --strict", "test"])
def test_readme_counts_are_what_the_commands_print(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    line = re.search(rf"^paramedic {re.escape(command)} examples/runbooks/\s+# (.+)$", README, re.M)
    assert line is not None, f"README shows `paramedic {command} examples/runbooks/` with its output"
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, [*command.split(), "examples/runbooks/"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert line.group(1).strip() in result.output


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["audit", "verify"], id="audit-verify"),
        pytest.param(["audit", "export"], id="audit-export"),
        pytest.param(["report"], id="report"),
    ],
)
def test_without_a_config_a_reading_command_says_so_and_creates_nothing(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARAMEDIC_CONFIG", raising=False)
    monkeypatch.delenv("PARAMEDIC_DATABASE", raising=False)
    result = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "no config here" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_config_naming_a_missing_database_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paramedic.yaml").write_text("database: sqlite:///gone.db\nrunbooks: []\n")
    result = CliRunner().invoke(main, ["audit", "verify"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "gone.db" in result.output
    assert not (tmp_path / "gone.db").exists()


def test_grafana_panel_image_and_values_are_kept_with_the_alert() -> None:
    """Grafana's webhook carries the panel screenshot (``imageURL``, when image rendering is on)
    and the expression results (``values``); both reach the incident as annotations."""
    import json

    from paramedic.ingest import grafana

    payload = json.loads((ROOT / "tests" / "fixtures" / "grafana-firing.json").read_text())
    payload["alerts"][0]["imageURL"] = "https://grafana.example.com/public/img/attachments/abc123.png"
    (alert,) = grafana.parse(payload)
    assert alert.annotations["image_url"] == "https://grafana.example.com/public/img/attachments/abc123.png"
    values = json.loads(alert.annotations["values"])
    assert values == payload["alerts"][0]["values"]
