"""The supervisord harness: a real supervisord that starts, serves and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paramedic.lab.supervisord import SupervisorHarness
from tests.support import require_binary, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _supervisord() -> None:
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; its parent (init) reaps it soon.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _pids(h: SupervisorHarness) -> dict[str, int]:
    with h.rpc() as proxy:
        infos: Any = proxy.supervisor.getAllProcessInfo()
    return {f"{i['group']}:{i['name']}": int(i["pid"]) for i in infos}


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[SupervisorHarness]:
    with SupervisorHarness(tmp_path / "sv") as h:
        yield h


def test_starts_every_instance_and_they_answer(harness: SupervisorHarness) -> None:
    assert list(harness.instances) == ["web:web-1", "web:web-2", "web:web-3"]
    ports = list(harness.instances.values())
    assert len(set(ports)) == 3
    assert all(_healthy(p) for p in ports)
    with harness.rpc() as proxy:
        state: Any = proxy.supervisor.getState()
    assert state["statename"] == "RUNNING"
    assert set(_pids(harness)) == set(harness.instances)


def test_config_binds_loopback_and_includes_the_include_dir(harness: SupervisorHarness) -> None:
    conf = harness.conf_path.read_text()
    assert f"port=127.0.0.1:{harness.rpc_port}" in conf
    assert f"files = {harness.include_dir}/*.conf" in conf
    program = harness.include_file.read_text()
    for line in ("numprocs=3", "autorestart=false", "stopasgroup=true", "killasgroup=true",
                 "process_name=%(program_name)s-%(process_num)d"):  # fmt: skip
        assert line in program.splitlines()
    assert f"{sys.executable} -m paramedic.lab.sample_service" in program


def test_exit_leaves_no_process_behind(tmp_path: Path) -> None:
    with SupervisorHarness(tmp_path / "sv", numprocs=2) as h:
        supervisord = h.pid
        children = list(_pids(h).values())
    assert supervisord is not None
    assert not _alive(supervisord)
    assert not any(_alive(p) for p in children)
    assert h.pid is None


def test_a_failing_test_body_still_tears_everything_down(tmp_path: Path) -> None:
    seen: list[int] = []

    def failing_test() -> None:
        with SupervisorHarness(tmp_path / "sv") as h:
            seen.extend([h.pid or 0, *_pids(h).values()])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_test()
    assert len(seen) == 4
    assert not any(_alive(p) for p in seen)


def test_children_of_a_killed_supervisord_are_swept(tmp_path: Path) -> None:
    h = SupervisorHarness(tmp_path / "sv", numprocs=2).start()
    try:
        children = list(_pids(h).values())
        assert h.pid is not None
        os.killpg(h.pid, signal.SIGKILL)  # supervisord dies without stopping its children
        time.sleep(0.3)
        assert all(_alive(p) for p in children)
    finally:
        h.stop()
    wait_for(lambda: not any(_alive(p) for p in children), timeout=5)


def test_two_harnesses_run_side_by_side(tmp_path: Path) -> None:
    with (
        SupervisorHarness(tmp_path / "a", numprocs=2) as a,
        SupervisorHarness(tmp_path / "b", group="api", numprocs=2) as b,
    ):
        assert a.url != b.url
        assert not set(a.instances.values()) & set(b.instances.values())
        assert list(b.instances) == ["api:api-1", "api:api-2"]
        assert all(_healthy(p) for p in [*a.instances.values(), *b.instances.values()])


def test_usable_from_async_code(tmp_path: Path) -> None:
    async def main() -> tuple[int | None, bool]:
        async with SupervisorHarness(tmp_path / "sv", numprocs=1) as h:
            port = h.instances["web:web-1"]
            return h.pid, await asyncio.to_thread(_healthy, port)

    pid, healthy = asyncio.run(main())
    assert healthy
    assert pid is not None
    assert not _alive(pid)


def test_autorestart_baseline_lets_supervisord_restart_a_crash(tmp_path: Path) -> None:
    with SupervisorHarness(tmp_path / "sv", numprocs=1, autorestart=True) as h:
        port = h.instances["web:web-1"]
        before = _pids(h)["web:web-1"]
        httpx.post(f"http://127.0.0.1:{port}/fault/crash", timeout=2)
        wait_for(lambda: _pids(h)["web:web-1"] not in (0, before) and _healthy(port), timeout=10)


def test_without_autorestart_a_crash_stays_down(harness: SupervisorHarness) -> None:
    port = harness.instances["web:web-2"]
    httpx.post(f"http://127.0.0.1:{port}/fault/crash", timeout=2)
    wait_for(lambda: _pids(harness)["web:web-2"] == 0, timeout=10)
    time.sleep(0.5)
    with harness.rpc() as proxy:
        info: Any = proxy.supervisor.getProcessInfo("web:web-2")
    assert (info["statename"], info["exitstatus"]) == ("EXITED", 1)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="group name"):
        SupervisorHarness(tmp_path, group="we b")
    with pytest.raises(ValueError, match="numprocs"):
        SupervisorHarness(tmp_path, numprocs=12, max_instances=9)
