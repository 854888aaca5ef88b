"""``supervisor.*`` actions against a real supervisord, plus the failures around it."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paramedic.actions.base import ActionRequest, Executor
from paramedic.actions.registry import build_registry
from paramedic.actions.supervisor import SupervisorExecutor, _rewrite
from paramedic.core.errors import PermanentError, RetryableError
from paramedic.lab.supervisord import SupervisorHarness
from tests.support import free_port, require_binary, wait_for

HOSTILE = ["; rm -rf /", "$(id)", "`id`", "web:web-1; id", "../../etc/passwd", "a:b:c", "", "web:*"]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _req(action: str, **args: Any) -> ActionRequest:
    return ActionRequest(action=f"supervisor.{action}", args=args, timeout=30.0)


def _info(h: SupervisorHarness, name: str) -> Any:
    with h.rpc() as proxy:
        info: Any = proxy.supervisor.getProcessInfo(name)
    return info


def _healthy(port: int, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


# -- without supervisord ---------------------------------------------------------------------


def test_declares_four_idempotent_actions() -> None:
    ex = SupervisorExecutor()
    assert isinstance(ex, Executor)
    specs = {s.name: s for s in ex.actions()}
    assert sorted(specs) == [f"supervisor.{v}" for v in ("restart", "scale", "start", "stop")]
    assert all(s.idempotent for s in specs.values())
    assert [p.name for p in specs["supervisor.scale"].params] == [
        "group", "desired", "step", "min", "max",
    ]  # fmt: skip


def test_factory_builds_it_from_the_config_section(tmp_path: Path) -> None:
    registry = build_registry({"supervisor": {"url": "unix:///tmp/x.sock", "timeout": 2}})
    assert "supervisor.restart" in registry.names()
    ex = registry.executor("supervisor.scale")
    assert isinstance(ex, SupervisorExecutor)
    assert ex.url == "unix:///tmp/x.sock"
    assert SupervisorExecutor.from_config({}).url == "http://127.0.0.1:9001/RPC2"


def test_a_url_of_another_scheme_is_a_config_error() -> None:
    with pytest.raises(PermanentError) as err:
        SupervisorExecutor(url="ftp://127.0.0.1/RPC2")
    assert err.value.reason == "config"


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_before_any_call(name: str) -> None:
    ex = SupervisorExecutor(url=f"http://127.0.0.1:{free_port()}/RPC2")  # nothing listens there
    for action in ("restart", "start", "stop"):
        with pytest.raises(PermanentError) as err:
            _run(ex.execute(_req(action, program=name)))
        assert err.value.reason == "bad_arguments"
    with pytest.raises(PermanentError) as err:
        _run(ex.describe(_req("scale", group=name, desired=2)))
    assert err.value.reason in {"bad_arguments", "config"}


def test_supervisord_not_running_is_retryable() -> None:
    ex = SupervisorExecutor(url=f"http://127.0.0.1:{free_port()}/RPC2", timeout=2)
    with pytest.raises(RetryableError) as err:
        _run(ex.execute(_req("restart", program="web:web-1")))
    assert err.value.reason == "unreachable"
    assert "unreachable" in str(err.value)


def test_missing_unix_socket_is_retryable(tmp_path: Path) -> None:
    ex = SupervisorExecutor(url=f"unix://{tmp_path}/nope.sock", timeout=2)
    with pytest.raises(RetryableError) as err:
        _run(ex.read_state(_req("restart", program="web:web-1")))
    assert err.value.reason == "unreachable"


def test_a_silent_supervisord_times_out_as_retryable() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        ex = SupervisorExecutor(url=f"http://127.0.0.1:{port}/RPC2", timeout=0.3)
        with pytest.raises(RetryableError) as err:
            _run(ex.known_targets({"service": "web"}))
    assert err.value.reason == "timeout"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[program:web]\nnumprocs=3\ncommand=x\n", "[program:web]\nnumprocs=5\n",
                     id="replaces"),
        pytest.param("[program:web]\ncommand=x\n", "[program:web]\nnumprocs=5\ncommand=x\n",
                     id="adds-when-absent"),
        pytest.param("[program:web]\nnumprocs = 3 ; note\n", "[program:web]\nnumprocs = 5 ; note\n",
                     id="keeps-spacing-and-comment"),
        pytest.param("[program:api]\nnumprocs=2\n[program:web]\nnumprocs=3\n",
                     "[program:api]\nnumprocs=2\n[program:web]\nnumprocs=5\n",
                     id="only-its-own-section"),
    ],
)  # fmt: skip
def test_rewrite_touches_only_numprocs_of_the_group(text: str, expected: str) -> None:
    assert _rewrite(text, "web", 5, "").startswith(expected)


def test_rewrite_keeps_one_step_marker() -> None:
    once = _rewrite("[program:web]\nnumprocs=3\n", "web", 4, "run-1#2")
    twice = _rewrite(once, "web", 5, "run-2#0")
    assert twice == "[program:web]\n; paramedic-scale run-2#0 numprocs=5\nnumprocs=5\n"


# -- against a real supervisord --------------------------------------------------------------


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[SupervisorHarness]:
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))
    with SupervisorHarness(tmp_path / "sv") as h:
        yield h


@pytest.fixture
def ex(harness: SupervisorHarness) -> SupervisorExecutor:
    return SupervisorExecutor.from_config(harness.executor_config())


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorHarness]:
    """One supervisord for the tests that must leave it exactly as they found it."""
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))
    with SupervisorHarness(tmp_path_factory.mktemp("shared")) as h:
        yield h


@pytest.fixture
def shared_ex(shared: SupervisorHarness) -> SupervisorExecutor:
    return SupervisorExecutor.from_config(shared.executor_config())


@pytest.mark.integration
def test_restart_clears_a_hang_with_a_new_pid(harness: SupervisorHarness, ex: SupervisorExecutor) -> None:
    port = harness.instances["web:web-1"]
    httpx.post(f"http://127.0.0.1:{port}/fault/hang", timeout=2)
    assert not _healthy(port, timeout=0.5)
    old = _info(harness, "web:web-1")["pid"]
    result = _run(ex.execute(_req("restart", program="web:web-1")))
    new = _info(harness, "web:web-1")["pid"]
    assert new not in (0, old)
    assert result.changed
    assert result.summary == f"restarted web:web-1: pid {old} → {new} (RUNNING)"
    assert (result.details["old_pid"], result.details["new_pid"]) == (str(old), str(new))
    wait_for(lambda: _healthy(port))


@pytest.mark.integration
def test_stop_then_start(harness: SupervisorHarness, ex: SupervisorExecutor) -> None:
    port = harness.instances["web:web-2"]
    stopped = _run(ex.execute(_req("stop", program="web:web-2")))
    assert stopped.changed
    assert stopped.summary.startswith("stopped web:web-2")
    assert _info(harness, "web:web-2")["statename"] == "STOPPED"
    assert not _healthy(port)
    state = _run(ex.read_state(_req("stop", program="web:web-2")))
    assert (state.healthy, state.fields["state"]) == (False, "STOPPED")
    again = _run(ex.execute(_req("stop", program="web:web-2")))
    assert not again.changed  # NOT_RUNNING is success: already where it should be

    started = _run(ex.execute(_req("start", program="web:web-2")))
    assert started.changed
    assert _info(harness, "web:web-2")["statename"] == "RUNNING"
    wait_for(lambda: _healthy(port))
    assert not _run(ex.execute(_req("start", program="web:web-2"))).changed  # ALREADY_STARTED
    assert _run(ex.read_state(_req("start", program="web:web-2"))).healthy is True


@pytest.mark.integration
def test_restart_of_a_crashed_process_starts_it(harness: SupervisorHarness, ex: SupervisorExecutor) -> None:
    port = harness.instances["web:web-3"]
    httpx.post(f"http://127.0.0.1:{port}/fault/crash", timeout=2)
    wait_for(lambda: _info(harness, "web:web-3")["statename"] == "EXITED")
    assert "would start web:web-3 (EXITED" in _run(ex.describe(_req("restart", program="web:web-3")))
    result = _run(ex.execute(_req("restart", program="web:web-3")))
    assert result.details["old_pid"] == "-"
    assert result.details["new_pid"] == str(_info(harness, "web:web-3")["pid"])
    wait_for(lambda: _healthy(port))


@pytest.mark.integration
def test_scale_up_by_one_adds_a_running_instance(harness: SupervisorHarness, ex: SupervisorExecutor) -> None:
    result = _run(ex.execute(_req("scale", group="web", desired=4, min=1, max=6)))
    assert result.summary == "scaled web 3 → 4"
    assert "numprocs=4" in harness.include_file.read_text().splitlines()
    assert _info(harness, "web:web-4")["statename"] == "RUNNING"
    wait_for(lambda: _healthy(harness.port_of(4)))
    assert len(harness.instances) == 4
    assert not _run(ex.execute(_req("scale", group="web", desired=4, max=6))).changed
    assert _run(ex.read_state(_req("scale", group="web"))).detail == "4/4 RUNNING"


@pytest.mark.integration
def test_scale_beyond_max_is_clamped(harness: SupervisorHarness, ex: SupervisorExecutor) -> None:
    preview = _run(ex.describe(_req("scale", group="web", desired=50, max=5)))
    assert "3 → 5 (asked for 50, held at max 5)" in preview
    result = _run(ex.execute(_req("scale", group="web", desired=50, max=5)))
    assert "held at max 5" in result.summary
    assert _run(ex.known_targets({"group": "web"})) == [f"web:web-{n}" for n in range(1, 6)]
    harness.wait_running(timeout=10)


@pytest.mark.integration
def test_scale_down_by_step(harness: SupervisorHarness, ex: SupervisorExecutor) -> None:
    result = _run(ex.execute(_req("scale", group="web", step=-1)))
    assert result.summary == "scaled web 3 → 2"
    assert _run(ex.known_targets({"service": "web"})) == ["web:web-1", "web:web-2"]
    harness.wait_running(timeout=10)


@pytest.mark.integration
def test_scaling_down_and_back_up_leaves_the_processes_that_stay_running(
    harness: SupervisorHarness, ex: SupervisorExecutor
) -> None:
    """The way back from an overload: 3 → 2 parks web-3, 2 → 3 starts it again; web-1 and web-2
    keep their pids throughout (supervisord cannot resize a group in place, so paramedic does not
    ask it to)."""
    pids = {n: _info(harness, f"web:web-{n}")["pid"] for n in (1, 2)}
    preview = _run(ex.describe(_req("scale", group="web", desired=2)))
    assert preview.endswith("stop web:web-3 (in place: the other processes keep running)")
    assert _run(ex.execute(_req("scale", group="web", desired=2))).summary == "scaled web 3 → 2"
    assert _info(harness, "web:web-3")["statename"] == "STOPPED"
    assert "numprocs=2" in harness.include_file.read_text().splitlines()
    assert _run(ex.known_targets({"group": "web"})) == ["web:web-1", "web:web-2"]
    assert _run(ex.read_state(_req("scale", group="web"))).detail == "2/2 RUNNING"
    assert not _run(ex.execute(_req("scale", group="web", desired=2))).changed

    assert _run(ex.execute(_req("scale", group="web", desired=3))).summary == "scaled web 2 → 3"
    assert _info(harness, "web:web-3")["statename"] == "RUNNING"
    assert {n: _info(harness, f"web:web-{n}")["pid"] for n in (1, 2)} == pids
    assert _run(ex.read_state(_req("scale", group="web"))).detail == "3/3 RUNNING"


@pytest.mark.integration
def test_repeating_a_step_of_the_same_run_does_not_step_twice(
    harness: SupervisorHarness, ex: SupervisorExecutor
) -> None:
    req = ActionRequest("supervisor.scale", {"group": "web", "step": 1, "max": 9}, 60.0, "run-7", 3)
    assert _run(ex.execute(req)).summary == "scaled web 3 → 4"
    assert not _run(ex.execute(req)).changed  # resumed after a crash: already done
    assert len(_run(ex.known_targets({"group": "web"}))) == 4
    other = ActionRequest("supervisor.scale", {"group": "web", "step": 1, "max": 9}, 60.0, "run-8", 0)
    assert _run(ex.execute(other)).summary == "scaled web 4 → 5"


@pytest.mark.integration
def test_unknown_program_or_group_is_not_found(shared: SupervisorHarness, shared_ex: SupervisorExecutor) -> None:
    for action in ("restart", "start", "stop"):
        with pytest.raises(PermanentError) as err:
            _run(shared_ex.execute(_req(action, program="web:nope")))
        assert err.value.reason == "not_found"
        assert "'web:nope'" in str(err.value)
    with pytest.raises(PermanentError) as err:
        _run(shared_ex.describe(_req("restart", program="ghost")))
    assert err.value.reason == "not_found"
    with pytest.raises(PermanentError) as err:
        _run(shared_ex.execute(_req("scale", group="ghost", desired=2)))
    assert err.value.reason == "not_found"


@pytest.mark.integration
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_touch_nothing(shared: SupervisorHarness, shared_ex: SupervisorExecutor, name: str) -> None:
    before = {n: _info(shared, n)["pid"] for n in shared.instances}
    with pytest.raises(PermanentError) as err:
        _run(shared_ex.execute(_req("restart", program=name)))
    assert err.value.reason in {"bad_arguments", "not_found"}
    assert {n: _info(shared, n)["pid"] for n in shared.instances} == before


@pytest.mark.integration
def test_describe_changes_nothing(shared: SupervisorHarness, shared_ex: SupervisorExecutor) -> None:
    before = {n: (_info(shared, n)["pid"], _info(shared, n)["statename"]) for n in shared.instances}
    conf = shared.include_file.read_text()
    restart = _run(shared_ex.describe(_req("restart", program="web:web-1")))
    pid = before["web:web-1"][0]
    assert restart.startswith(f"would restart web:web-1 (RUNNING, pid {pid}, up ")
    assert _run(shared_ex.describe(_req("stop", program="web:web-2"))).startswith("would stop web:web-2")
    assert "already RUNNING" in _run(shared_ex.describe(_req("start", program="web:web-3")))
    scale = _run(shared_ex.describe(_req("scale", group="web", desired=4, max=5)))
    assert "would scale group web 3 → 4" in scale
    assert "restarts its 3 processes" in scale
    assert "already at 3" in _run(shared_ex.describe(_req("scale", group="web", desired=3)))
    after = {n: (_info(shared, n)["pid"], _info(shared, n)["statename"]) for n in shared.instances}
    assert after == before
    assert shared.include_file.read_text() == conf


@pytest.mark.integration
def test_known_targets_list_group_members(shared: SupervisorHarness, shared_ex: SupervisorExecutor) -> None:
    members = ["web:web-1", "web:web-2", "web:web-3"]
    assert _run(shared_ex.known_targets({"service": "web"})) == members
    assert _run(shared_ex.known_targets({"group": "web"})) == members
    assert _run(shared_ex.known_targets({})) == members
    assert _run(shared_ex.known_targets({"group": "ghost"})) == []
    assert _run(shared_ex.known_targets({"team": "payments"})) is None  # cannot tell: never "all"


@pytest.mark.integration
def test_unix_socket_url(shared: SupervisorHarness) -> None:
    ex = SupervisorExecutor(url=shared.unix_url)
    state = _run(ex.read_state(_req("restart", program="web:web-1")))
    assert state.healthy is True
    assert state.fields["pid"] == str(_info(shared, "web:web-1")["pid"])


@pytest.mark.integration
def test_supervisord_gone_midway_is_retryable(tmp_path: Path) -> None:
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))
    with SupervisorHarness(tmp_path / "sv", numprocs=1) as h:
        ex = SupervisorExecutor.from_config(h.executor_config())
        assert _run(ex.read_state(_req("restart", program="web:web-1"))).healthy
    with pytest.raises(RetryableError) as err:
        _run(ex.execute(_req("restart", program="web:web-1")))
    assert err.value.reason == "unreachable"


@pytest.mark.integration
def test_credentials_are_sent_and_checked(tmp_path: Path) -> None:
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))
    with SupervisorHarness(tmp_path / "sv", numprocs=1, username="medic", password="s3:cr@t") as h:
        ex = SupervisorExecutor.from_config(h.executor_config())
        assert _run(ex.known_targets({})) == ["web:web-1"]
        wrong = SupervisorExecutor(url=h.url, username="medic", password="nope")
        with pytest.raises(PermanentError) as err:
            _run(wrong.known_targets({}))
        assert err.value.reason == "unauthorized"
        anonymous = SupervisorExecutor(url=h.url)
        with pytest.raises(PermanentError):
            _run(anonymous.known_targets({}))


@pytest.mark.integration
def test_natural_inverses_put_back_size_and_state(harness: SupervisorHarness, ex: SupervisorExecutor) -> None:
    """Against a real supervisord: the undo of a scale is the previous size, of a stop a start."""
    scale = _req("scale", group="web", desired=4, min=1, max=6)
    inverse = ex.inverse(scale, _run(ex.execute(scale)))
    assert inverse is not None
    assert (inverse.action, dict(inverse.args)) == (
        "supervisor.scale",
        {"group": "web", "desired": 3, "min": 1, "max": 6},
    )
    back = _run(ex.execute(_req(inverse.action.removeprefix("supervisor."), **inverse.args)))
    assert back.summary.startswith("scaled web 4 → 3")
    assert _run(ex.known_targets({"group": "web"})) == [f"web:web-{n}" for n in range(1, 4)]
    stop = _req("stop", program="web:web-2")
    inverse = ex.inverse(stop, _run(ex.execute(stop)))
    assert inverse is not None
    assert (inverse.action, dict(inverse.args)) == ("supervisor.start", {"program": "web:web-2"})
    _run(ex.execute(_req("start", **inverse.args)))
    assert _info(harness, "web:web-2")["statename"] == "RUNNING"
    assert ex.inverse(_req("restart", program="web:web-1"), back) is None  # a restart has no inverse
