"""The lab's sample service, run as a real process: endpoints, metrics and every fault injector."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, wait_for


@dataclass
class Instance:
    port: int
    proc: subprocess.Popen[bytes]
    fault_dir: Path
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _spawn(port: int, fault_dir: Path, log: Path, name: str = "web-1") -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "paramedic.lab.sample_service", "--port", str(port),
             "--name", name, "--fault-dir", str(fault_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    port, fault_dir, log = free_port(), tmp_path / "faults", tmp_path / "stderr.log"
    proc = _spawn(port, fault_dir, log)
    inst = Instance(port, proc, fault_dir, log)
    try:
        wait_for(lambda: _answers(inst.url("/healthz")))
        yield inst
    finally:
        _reap(proc)


def _metrics(client: httpx.Client, inst: Instance) -> dict[str, float]:
    text = client.get(inst.url("/metrics")).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def test_healthz_and_index(instance: Instance) -> None:
    with httpx.Client(timeout=2) as client:
        health = client.get(instance.url("/healthz"))
        index = client.get(instance.url("/"))
        missing = client.get(instance.url("/nope"))
    assert (health.status_code, health.text) == (200, "ok\n")
    assert index.status_code == 200
    assert index.json()["name"] == "web-1"
    assert index.json()["pid"] == instance.proc.pid
    assert missing.status_code == 404


def test_logs_one_line_per_start(instance: Instance) -> None:
    lines = instance.log.read_text().splitlines()
    assert len(lines) == 1
    assert f"web-1 started pid={instance.proc.pid}" in lines[0]
    assert f"127.0.0.1:{instance.port}" in lines[0]


def test_metrics_parse_as_prometheus_exposition(instance: Instance) -> None:
    with httpx.Client(timeout=2) as client:
        for _ in range(3):
            client.get(instance.url("/"))
        samples = _metrics(client, instance)
    assert samples["http_requests_total{path=/}"] == 3
    assert samples["http_errors_total"] == 0
    assert samples["http_request_duration_seconds_count"] >= 4
    assert samples["http_request_duration_seconds_bucket{le=+Inf}"] >= 4
    assert samples["sample_memory_bytes"] > 1_000_000
    assert samples["sample_up"] == 1
    assert samples["sample_start_time_seconds"] <= time.time()


def test_errors_fault_answers_500_and_counts_them(instance: Instance) -> None:
    with httpx.Client(timeout=2) as client:
        assert client.post(instance.url("/fault/errors?rate=1")).status_code == 200
        assert [client.get(instance.url("/")).status_code for _ in range(4)] == [500] * 4
        assert client.get(instance.url("/healthz")).status_code == 200
        assert _metrics(client, instance)["http_errors_total"] == 4
        assert client.post(instance.url("/fault/errors?rate=2")).status_code == 400
        assert client.post(instance.url("/fault/clear")).status_code == 200
        assert client.get(instance.url("/")).status_code == 200


def test_slow_fault_delays_answers(instance: Instance) -> None:
    with httpx.Client(timeout=5) as client:
        client.post(instance.url("/fault/slow?ms=400"))
        begun = time.monotonic()
        assert client.get(instance.url("/")).status_code == 200
        assert time.monotonic() - begun >= 0.4
        assert "slow=400ms" in client.get(instance.url("/")).json()["faults"]


def test_leak_fault_grows_the_memory_gauge(instance: Instance) -> None:
    with httpx.Client(timeout=5) as client:
        before = _metrics(client, instance)["sample_memory_bytes"]
        client.post(instance.url("/fault/leak"))
        for _ in range(8):
            client.get(instance.url("/healthz"))
        after = _metrics(client, instance)["sample_memory_bytes"]
    assert after - before >= 6 * (1 << 20)


def test_hang_blocks_every_request_while_the_process_lives(instance: Instance) -> None:
    with httpx.Client(timeout=2) as client:
        assert client.post(instance.url("/fault/hang")).status_code == 200
    for path in ("/healthz", "/metrics"):
        with pytest.raises(httpx.TimeoutException):
            httpx.get(instance.url(path), timeout=0.5)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(instance.url("/fault/clear"), timeout=0.5)  # only a restart clears a hang
    assert instance.proc.poll() is None
    os.kill(instance.proc.pid, 0)  # still alive


def test_crash_exits_with_status_1_after_answering(instance: Instance) -> None:
    assert httpx.post(instance.url("/fault/crash"), timeout=2).status_code == 200
    assert instance.proc.wait(timeout=5) == 1


def test_crashloop_marker_makes_every_start_exit(instance: Instance) -> None:
    assert httpx.post(instance.url("/fault/crashloop"), timeout=2).status_code == 200
    assert instance.proc.wait(timeout=5) == 1
    marker = instance.fault_dir / "web-1.crashloop"
    assert marker.exists()
    for _ in range(2):  # each new start dies again, about 0.3 s in
        begun = time.monotonic()
        proc = _spawn(instance.port, instance.fault_dir, instance.log)
        try:
            assert proc.wait(timeout=5) == 1
        finally:
            _reap(proc)
        assert 0.2 <= time.monotonic() - begun < 4
    assert instance.log.read_text().count("crashloop marker present") == 2
    marker.unlink()
    proc = _spawn(instance.port, instance.fault_dir, instance.log)
    try:
        wait_for(lambda: _answers(instance.url("/healthz")))
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        _reap(proc)


def test_clear_removes_the_crashloop_marker(instance: Instance) -> None:
    instance.fault_dir.mkdir()
    marker = instance.fault_dir / "web-1.crashloop"
    marker.write_text("armed by hand\n")
    with httpx.Client(timeout=2) as client:
        assert "crashloop" in client.get(instance.url("/")).json()["faults"]
        assert client.post(instance.url("/fault/clear")).status_code == 200
        assert client.post(instance.url("/fault/bogus")).status_code == 404
    assert not marker.exists()


def test_refuses_a_name_that_could_escape_the_fault_dir(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paramedic.lab.sample_service", "--port", "0", "--name", "../x"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert b"--name must match" in done.stderr
