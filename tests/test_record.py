"""`paramedic record`: payloads written as received, named by time and source, checked by the real
parsers; case skeletons; and the command as a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from paramedic.cli import main
from paramedic.testing.recorder import Recorder, Saved
from tests.support import FIXTURES, free_port

AM = (FIXTURES / "alertmanager-0.25-firing.json").read_bytes()
AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

RUNBOOK = """\
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {alertname: InstanceDown, labels: {service: web}}
    mode: approve
    steps:
      - action: http.request
        with: {url: "http://127.0.0.1:9/restart/{{ labels.instance }}", method: POST}
    params:
      instance: {pattern: '^[0-9.]+:[0-9]+$'}
"""


def post(app: Recorder, path: str, body: bytes, method: str = "POST") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://recorder") as c:
            return await c.request(method, path, content=body)

    return asyncio.run(go())


def recorder(out: Path, **kwargs: Any) -> tuple[Recorder, list[Saved], list[str]]:
    saved: list[Saved] = []
    rejected: list[str] = []
    app = Recorder(
        out, clock=lambda: AT, on_saved=saved.append, on_rejected=lambda s, r: rejected.append(f"{s}: {r}"), **kwargs
    )
    return app, saved, rejected


def test_payloads_are_written_as_received_named_by_time_and_source(tmp_path: Path) -> None:
    app, saved, _ = recorder(tmp_path / "rec")
    r = post(app, "/api/v1/alerts/alertmanager", AM)
    assert r.status_code == 202
    assert r.json()["recorded"] == "20240501T120000Z-alertmanager-001.json"
    assert r.json()["alerts"] == 2
    generic = b'{"name": "DiskFull", "labels": {"instance": "db-1"}}'
    assert post(app, "/api/v1/alerts/", generic).status_code == 202
    files = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert files == ["20240501T120000Z-alertmanager-001.json", "20240501T120000Z-generic-002.json"]
    assert (tmp_path / "rec" / files[0]).read_bytes() == AM
    assert [(s.source, s.alerts) for s in saved] == [("alertmanager", 2), ("generic", 1)]


def test_a_second_recorder_never_overwrites_an_earlier_recording(tmp_path: Path) -> None:
    for _ in range(2):
        app, _, _ = recorder(tmp_path)
        assert post(app, "/api/v1/alerts/alertmanager", AM).status_code == 202
    assert len(list(tmp_path.glob("*-alertmanager-*.json"))) == 2


@pytest.mark.parametrize(
    ("path", "method", "body", "status"),
    [
        pytest.param("/api/v1/alerts/alertmanager", "POST", b"{not json", 422, id="not-json"),
        pytest.param("/api/v1/alerts/alertmanager", "POST", b'{"version": "3", "alerts": []}', 422, id="unparseable"),
        pytest.param("/api/v1/alerts", "POST", b'{"labels": {}}', 422, id="generic-without-name"),
        pytest.param("/api/v1/nope", "POST", b"{}", 404, id="unknown-path"),
        pytest.param("/api/v1/alerts", "GET", b"", 405, id="not-post"),
        pytest.param("/api/v1/alerts", "POST", b"[" + b" " * 2048 + b"]", 413, id="too-big"),
    ],
)
def test_what_paramedic_would_refuse_is_not_written(
    tmp_path: Path, path: str, method: str, body: bytes, status: int
) -> None:
    app, saved, rejected = recorder(tmp_path, limit=1024)
    r = post(app, path, body, method)
    assert r.status_code == status
    assert "error" in r.json()
    assert list(tmp_path.iterdir()) == []
    assert saved == []
    assert len(rejected) == (1 if status == 422 else 0)


def test_health_endpoint(tmp_path: Path) -> None:
    app, _, _ = recorder(tmp_path)
    assert post(app, "/healthz", b"", "GET").json()["status"] == "recording"


def test_with_runbooks_each_payload_gets_a_passing_case(tmp_path: Path) -> None:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "web.yaml").write_text(RUNBOOK)
    out = tmp_path / "cases"
    app, saved, _ = recorder(out, runbooks=[str(books)])
    assert post(app, "/api/v1/alerts/alertmanager", AM).json()["case"] == "20240501T120000Z-alertmanager-001.case.yaml"
    assert saved[0].case is not None
    text = saved[0].case.read_text()
    assert "alert: 20240501T120000Z-alertmanager-001.json" in text
    assert "matches:\n  - restart-web" in text
    result = CliRunner().invoke(main, ["test", str(books), "--cases", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 case(s): 1 passed, 0 failed" in result.output


def test_skeleton_without_runbooks_and_usage_errors(tmp_path: Path) -> None:
    payload = tmp_path / "20240501T120000Z-generic-001.json"
    payload.write_text('{"name": "X"}')
    result = CliRunner().invoke(main, ["record", "--skeleton", str(payload)])
    assert result.exit_code == 0, result.output
    assert "alert: 20240501T120000Z-generic-001.json\nsource: generic" in result.output
    assert "expect:\n  matches: []" in result.output
    assert CliRunner().invoke(main, ["record"]).exit_code == 2
    remote = CliRunner().invoke(main, ["record", "--out", str(tmp_path), "--listen", "0.0.0.0:9999"])
    assert remote.exit_code == 2
    assert "loopback" in remote.output


def test_record_command_runs_a_real_server(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "rec"
    exe = Path(sys.executable).parent / "paramedic"
    proc = subprocess.Popen(
        [str(exe), "record", "--out", str(out), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.ConnectError:
                pass
            assert time.monotonic() < deadline, "paramedic record did not start"
            time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager", content=AM)
        assert r.status_code == 202
        assert (out / r.json()["recorded"]).read_bytes() == AM
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
    assert b"recorded alertmanager payload (2 alert(s))" in stdout
    assert b"recording alertmanager" in stderr


@pytest.mark.parametrize(
    ("path", "fixture", "source", "alerts"),
    [
        pytest.param("/api/v1/alerts/grafana", "grafana-firing.json", "grafana", 1, id="grafana"),
        pytest.param("/api/v1/alerts/pagerduty", "pagerduty-incident-triggered.json", "pagerduty", 1, id="pagerduty"),
    ],
)
def test_grafana_and_pagerduty_payloads_are_recorded_and_replayed(
    tmp_path: Path, path: str, fixture: str, source: str, alerts: int
) -> None:
    body = (Path(__file__).parent / "fixtures" / fixture).read_bytes()
    app, saved, _ = recorder(tmp_path)
    r = post(app, path, body)
    assert r.status_code == 202, r.text
    assert r.json()["recorded"] == f"20240501T120000Z-{source}-001.json"
    assert (saved[0].source, saved[0].alerts) == (source, alerts)
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "web.yaml").write_text(RUNBOOK)
    result = CliRunner().invoke(main, ["test", str(books), "--alert", str(saved[0].path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"matches": []' in result.output
