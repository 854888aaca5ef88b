"""Release executor on real files, real symlinks and a real service that it restarts.

The service is a tiny HTTP server that reads ``<root>/current/VERSION`` once at start-up, so a
new version is only served after a real restart; the restart argv stops it (by its pid file)
and starts a new one. Tests follow the symlink and call the service.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from paramedic.actions.base import ActionRequest
from paramedic.actions.registry import ExecutorRegistry
from paramedic.actions.release import HISTORY_FILE, ReleaseExecutor
from paramedic.core.errors import PermanentError
from tests.support import free_port

SERVICE = r"""
import os, signal, socket, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

mode, root, port, pidfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

if mode == "restart":
    if os.path.exists(pidfile):
        pid = int(open(pidfile).read())
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    if os.environ.get("FAIL_RESTART"):
        sys.exit(3)
    subprocess.Popen([sys.executable, __file__, "serve", root, str(port), pidfile],
                     start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            sys.exit(0)
        except OSError:
            time.sleep(0.02)
    sys.exit(1)

version = open(os.path.join(root, "current", "VERSION")).read().strip()

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 500 if version.startswith("broken") else 200
        body = version.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

server = HTTPServer(("127.0.0.1", port), H)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pidfile + ".tmp", pidfile)
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
server.serve_forever()
"""


def _alive(pid: int) -> bool:
    """Running and not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Site:
    root: Path
    url: str
    restart_argv: list[str]
    pidfile: Path

    def served(self) -> str:
        return httpx.get(self.url, timeout=5).text

    def linked(self) -> str:
        return Path(os.path.realpath(self.root / "current")).name


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "app"
    for version in ("v1", "v2", "v3", "broken-4"):
        (root / "releases" / version).mkdir(parents=True)
        (root / "releases" / version / "VERSION").write_text(version + "\n")
    os.symlink("releases/v1", root / "current")  # deployed before paramedic
    script = tmp_path / "svc.py"
    script.write_text(SERVICE)
    port = free_port()
    pidfile = tmp_path / "svc.pid"
    argv = [sys.executable, str(script), "restart", str(root), str(port), str(pidfile)]
    s = Site(root=root, url=f"http://127.0.0.1:{port}/", restart_argv=argv, pidfile=pidfile)
    try:
        subprocess.run(argv, check=True, timeout=20)
        yield s
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
            except ProcessLookupError:
                pass


def executor(site: Site, **extra: object) -> ReleaseExecutor:
    cfg = {"root": str(site.root), "restart_argv": site.restart_argv, "health_url": site.url}
    cfg.update(extra)
    ex = ReleaseExecutor.from_config({"apps": {"web": cfg}})
    ex._clock = Clock()  # deterministic timestamps in the history
    return ex


def req(action: str, **args: object) -> ActionRequest:
    return ExecutorRegistry([ReleaseExecutor()]).request(action, args, timeout=30)


def test_deploy_rollback_and_history_against_a_real_service(site: Site) -> None:
    ex = executor(site, health_timeout="10s", soak="30s")  # the test clock moves a minute per change
    assert site.served() == "v1"

    result = asyncio.run(ex.execute(req("release.deploy", version="v2")))
    assert result.summary == "deployed web to v2 (was v1)"
    assert site.linked() == "v2"
    assert os.readlink(site.root / "current") == "releases/v2"
    assert site.served() == "v2"

    asyncio.run(ex.execute(req("release.deploy", version="v3")))
    assert (site.linked(), site.served()) == ("v3", "v3")

    text = asyncio.run(ex.describe(req("release.rollback")))
    assert text.startswith(
        f"would switch {site.root}/current from releases/v3 to releases/v2 "
        "(previous known-good; v3 would be marked bad); then run ["
    )
    assert site.linked() == "v3"  # describe changes nothing

    result = asyncio.run(ex.execute(req("release.rollback")))
    assert result.summary == "rolled back web to v2 (was v3)"
    assert (site.linked(), site.served()) == ("v2", "v2")

    # v2 is now the bad one; the release live before paramedic's first deploy is still good.
    asyncio.run(ex.execute(req("release.rollback", app="web")))
    assert (site.linked(), site.served()) == ("v1", "v1")

    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("release.rollback")))
    assert err.value.reason == "no_previous_release"

    history = [(r.action, r.version, r.previous, r.status) for r in ex.history()]
    assert history == [
        ("deploy", "v2", "v1", "bad"),
        ("deploy", "v3", "v2", "bad"),
        ("rollback", "v2", "v3", "bad"),
        ("rollback", "v1", "v2", "known-good"),
    ]
    minutes = [r.at.minute for r in ex.history("web")]
    assert minutes == sorted(set(minutes))  # one record per change, in order
    on_disk = json.loads((site.root / HISTORY_FILE).read_text())
    assert on_disk["records"][0] == {
        "app": "web",
        "action": "deploy",
        "version": "v2",
        "previous": "v1",
        "at": "2024-05-01T12:01:00+00:00",
        "status": "bad",
    }

    state = asyncio.run(ex.read_state(req("release.rollback")))
    assert state.healthy is True
    assert state.fields["version"] == "v1"
    assert state.fields["rollback_to"] == ""


def test_deploy_is_idempotent(site: Site) -> None:
    ex = executor(site)
    asyncio.run(ex.execute(req("release.deploy", version="v2")))
    pid = site.pidfile.read_text()
    again = asyncio.run(ex.execute(req("release.deploy", version="v2")))
    assert not again.changed
    assert site.pidfile.read_text() == pid  # not restarted a second time
    assert asyncio.run(ex.describe(req("release.deploy", version="v2"))) == ("web is already at v2; nothing to do")
    assert len(ex.history()) == 1


def test_unhealthy_release_is_recorded_bad_and_rolled_back(site: Site) -> None:
    ex = executor(site, health_timeout="1s", soak="30s")
    asyncio.run(ex.execute(req("release.deploy", version="v2")))
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("release.deploy", version="broken-4")))
    assert err.value.reason == "unhealthy"
    assert site.linked() == "broken-4"
    assert ex.history()[-1].status == "bad"

    asyncio.run(ex.execute(req("release.rollback")))
    assert (site.linked(), site.served()) == ("v2", "v2")


def test_failed_restart_is_permanent(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = executor(site)
    monkeypatch.setenv("FAIL_RESTART", "1")
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("release.deploy", version="v2")))
    assert err.value.reason == "restart_failed"
    assert [(r.version, r.status) for r in ex.history()] == [("v2", "bad")]


def test_interrupted_rollback_is_finished_not_repeated(site: Site) -> None:
    ex = executor(site, soak="30s")
    asyncio.run(ex.execute(req("release.deploy", version="v2")))
    asyncio.run(ex.execute(req("release.deploy", version="v3")))
    # Simulate a crash after the switch and before the restart of a rollback to v2.
    hist = json.loads((site.root / HISTORY_FILE).read_text())
    hist["records"][-1]["status"] = "bad"
    hist["records"].append(
        {"app": "web", "action": "rollback", "version": "v2", "previous": "v3",
         "at": "2024-05-01T12:10:00+00:00", "status": "pending"}
    )  # fmt: skip
    (site.root / HISTORY_FILE).write_text(json.dumps(hist))
    os.replace(site.root / "current", site.root / "old")
    os.symlink("releases/v2", site.root / "current")

    assert asyncio.run(ex.describe(req("release.rollback"))).startswith(
        "would finish the interrupted rollback to v2 (already linked)"
    )
    result = asyncio.run(ex.execute(req("release.rollback")))
    assert result.summary == "rolled back web to v2 (was v3)"
    assert (site.linked(), site.served()) == ("v2", "v2")
    assert [(r.action, r.version, r.status) for r in ex.history()][-1] == (
        "rollback",
        "v2",
        "known-good",
    )


class StepClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def test_two_bad_deploys_in_a_row_roll_back_to_the_last_release_that_soaked(site: Site) -> None:
    """v2 ran healthy for an hour; then two releases (v3, then v1 redeployed) went out 1.7 s apart.
    The rollback skips the unproven v3 and goes to v2, the last release that soaked."""
    ex = executor(site, soak="10m")
    clock = StepClock()
    ex._clock = clock
    asyncio.run(ex.execute(req("release.deploy", version="v2")))
    clock.advance(hours=1)
    asyncio.run(ex.execute(req("release.deploy", version="v3")))
    clock.advance(seconds=1.7)
    asyncio.run(ex.execute(req("release.deploy", version="v1")))
    clock.advance(minutes=2)  # the alert fires: error rate up since the two deploys
    assert asyncio.run(ex.read_state(req("release.rollback"))).fields["rollback_to"] == "v2"
    result = asyncio.run(ex.execute(req("release.rollback")))
    assert result.summary == "rolled back web to v2 (was v1)"
    assert (site.linked(), site.served()) == ("v2", "v2")
    status = {r.version: r.status for r in ex.history()}
    assert status == {"v2": "healthy", "v3": "healthy", "v1": "bad"}  # v2 again unproven until it soaks


def test_a_rollback_is_never_good_by_itself_and_is_skipped_if_rolled_back_again_within_the_soak(
    site: Site,
) -> None:
    ex = executor(site, soak="10m")
    clock = StepClock()
    ex._clock = clock
    asyncio.run(ex.execute(req("release.deploy", version="v2")))
    clock.advance(hours=1)
    asyncio.run(ex.execute(req("release.deploy", version="v3")))
    clock.advance(minutes=1)
    asyncio.run(ex.execute(req("release.rollback")))  # to v2, which soaked: its verify then fails
    clock.advance(minutes=1)
    assert [(r.action, r.version, r.status) for r in ex.history()][-1] == ("rollback", "v2", "healthy")
    asyncio.run(ex.execute(req("release.rollback")))  # v2 is left bad; v1 ran before paramedic
    assert site.linked() == "v1"
    clock.advance(minutes=11)
    status = {r.version: r.status for r in ex.history()}
    assert status == {"v2": "bad", "v3": "bad", "v1": "known-good"}  # v1 has soaked since


def test_a_missing_known_good_release_says_what_known_good_means(site: Site) -> None:
    ex = executor(site, soak="10m")
    clock = StepClock()
    ex._clock = clock
    asyncio.run(ex.execute(req("release.deploy", version="v2")))
    clock.advance(seconds=5)
    asyncio.run(ex.execute(req("release.rollback")))  # back to v1 (before paramedic); v2 bad
    clock.advance(seconds=5)
    with pytest.raises(PermanentError, match="known-good once it stayed live and healthy for 600s") as err:
        asyncio.run(ex.execute(req("release.rollback")))
    assert err.value.reason == "no_previous_release"


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        pytest.param("v9", "not_found", id="unknown-version"),
        pytest.param("../v1", "bad_arguments", id="path-escape"),
    ],
)
def test_bad_versions(site: Site, version: str, reason: str) -> None:
    ex = executor(site)
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("release.deploy", version=version)))
    assert err.value.reason == reason
    assert site.linked() == "v1"


class _Restarts(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path}")
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_restart_by_url_and_app_selection(tmp_path: Path) -> None:
    for app in ("a", "b"):
        (tmp_path / app / "releases" / "1.0").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Restarts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/restart"
        ex = ReleaseExecutor.from_config(
            {"apps": {"a": {"root": str(tmp_path / "a"), "restart_url": url},
                      "b": {"root": str(tmp_path / "b")}}}
        )  # fmt: skip
        with pytest.raises(PermanentError) as err:
            asyncio.run(ex.execute(req("release.deploy", version="1.0")))
        assert err.value.reason == "bad_arguments"
        with pytest.raises(PermanentError) as err:
            asyncio.run(ex.execute(req("release.deploy", version="1.0", app="c")))
        assert err.value.reason == "not_found"

        result = asyncio.run(ex.execute(req("release.deploy", version="1.0", app="a")))
        assert result.summary == "deployed a to 1.0 (was nothing)"
        assert _Restarts.seen == ["POST /restart"]
        assert os.readlink(tmp_path / "a" / "current") == "releases/1.0"
        assert not (tmp_path / "b" / "current").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_not_configured_still_lists_actions() -> None:
    ex = ReleaseExecutor.from_config({})
    assert [s.name for s in ex.actions()] == ["release.deploy", "release.rollback"]
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("release.rollback")))
    assert err.value.reason == "not_configured"


def test_missing_root_is_not_found(tmp_path: Path) -> None:
    ex = ReleaseExecutor.from_config({"root": str(tmp_path / "nowhere")})
    for action, args in (("release.deploy", {"version": "v1"}), ("release.rollback", {})):
        with pytest.raises(PermanentError) as err:
            asyncio.run(ex.execute(req(action, **args)))
        assert err.value.reason == "not_found"
