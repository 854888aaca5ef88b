"""``paramedic backtest`` against a real Prometheus (Debian's) serving a back-filled history.

The lab's history (``paramedic.lab.history``) is written as OpenMetrics, turned into TSDB blocks by
the real ``promtool tsdb create-blocks-from openmetrics``, and served by a real ``prometheus``; the
backtest reads ``ALERTS`` with ``query_range`` and must report exactly the episodes written, and
the actions and refusals the guardrails' rules predict for that sequence (``EXPECTED``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from paramedic.cli import main
from paramedic.lab import history as lab
from paramedic.testing import history_prometheus
from paramedic.testing.history import Period
from tests.support import free_port, require_binary

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lab.HistoryPrometheus]:
    binary = require_binary("prometheus")
    promtool = require_binary("promtool")
    with lab.HistoryPrometheus(
        tmp_path_factory.mktemp("history"), port=free_port(), binary=binary, promtool=promtool
    ) as prom:
        yield prom


@pytest.fixture
def lab_files(tmp_path: Path) -> tuple[Path, Path]:
    rb = tmp_path / "runbooks"
    rb.mkdir()
    (rb / "lab.yaml").write_text(lab.RUNBOOKS)
    config = tmp_path / "paramedic.yaml"
    config.write_text(lab.CONFIG)
    return rb, config


def test_every_backfilled_episode_is_read_back_with_its_start_end_and_labels(
    prometheus: lab.HistoryPrometheus,
) -> None:
    episodes = history_prometheus.read(prometheus.url, Period(lab.START, lab.END), step=lab.STEP)
    got = sorted(
        (e.name, tuple(sorted((k, v) for k, v in e.labels.items() if k != "alertname")), e.starts_at, e.ends_at)
        for e in episodes
    )
    want = sorted((f.alertname, f.labels, lab.START + f.at, lab.START + f.at + f.lasted) for f in lab.EPISODES)
    assert got == want


def test_the_backtest_reports_the_actions_and_refusals_the_guardrails_predict(
    prometheus: lab.HistoryPrometheus, lab_files: tuple[Path, Path], tmp_path: Path
) -> None:
    rb, config = lab_files
    args = ["backtest", str(rb), "--from", f"prometheus:{prometheus.url}", "--since", "2d"]
    args += ["--until", lab.END.isoformat(), "--config", str(config), "--json", "--report", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["episodes"] == len(lab.EPISODES)
    by_name = {r["runbook"]: r for r in data["runbooks"]}
    got = {
        name: {
            "matched": r["episodes_matched"],
            "acted": r["runs_acted"],
            "refusals": r["refusal_codes"],
            "targets": r["targets_touched"],
            "weak": len(r["resolved_by_themselves_soon_after"]),
            **({"plan_errors": r["plan_errors"]} if r["plan_errors"] else {}),
            **({"failed": r["failed_verifications"]} if r["failed_verifications"] else {}),
        }
        for name, r in by_name.items()
    }
    assert got == lab.EXPECTED


def test_the_report_names_the_data_quality_problems_of_the_history(
    prometheus: lab.HistoryPrometheus, lab_files: tuple[Path, Path]
) -> None:
    rb, config = lab_files
    args = ["backtest", str(rb), "--from", f"prometheus:{prometheus.url}", "--since", "2d"]
    args += ["--until", lab.END.isoformat(), "--config", str(config), "--json"]
    quality = json.loads(CliRunner().invoke(main, args).stdout)["data_quality"]
    assert [(f["alertname"], f["labels"]["instance"], f["episodes"]) for f in quality["flapping"]] == [
        ("WebDown", "web-2", 6)
    ]
    assert [(m["runbook"], m["label"], m["problem"]) for m in quality["missing_labels"]] == [
        ("restart-web", "instance", "missing")
    ]
    # restart-api verifies on up{instance="api-1"}, a series the history never had
    assert [(a["runbook"], a["absent"], a["checked"]) for a in quality["absent_series"]] == [("restart-api", 4, 4)]


def test_a_coarser_step_finds_the_same_episodes_to_within_one_step(prometheus: lab.HistoryPrometheus) -> None:
    step = timedelta(seconds=30)
    episodes = history_prometheus.read(prometheus.url, Period(lab.START, lab.END), step=step)
    starts = sorted(e.starts_at for e in episodes)
    want = sorted(lab.START + f.at for f in lab.EPISODES)
    assert len(starts) == len(want)
    assert all(timedelta(0) <= got - expected < step for got, expected in zip(starts, want, strict=True))
