"""The lab's real supervisord: one program group of sample services, started and torn down whole.

``SupervisorHarness`` writes a ``supervisord.conf`` into a work dir, starts the real supervisord
(``python -m supervisor.supervisord -n``) in its own session, waits until every instance is
RUNNING and answers ``/healthz``, and on exit shuts it down so that no process is left behind —
also when a test fails, on interpreter exit (``atexit``) and on SIGTERM. The demo, the lab
scenarios and the integration tests use it; paramedic's ``SupervisorExecutor`` drives it.

Instance ports: supervisord cannot add numbers, so ``process_num`` is appended to a port prefix
(``--port 231%(process_num)02d`` gives 23101, 23102 …); the prefix is chosen at random below
Linux's ephemeral port range so that ``max_instances`` ports are free, which keeps two harnesses
apart.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from paramedic.actions.supervisor import ProcessInfo, make_proxy

_LIVE: set[SupervisorHarness] = set()
_HOOKS_INSTALLED = False
_NUMPROCS = re.compile(r"^\s*numprocs\s*[=:]\s*(\d+)", re.MULTILINE)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _esc(value: object) -> str:
    """Escape a value for supervisord's config, which expands ``%(name)s``."""
    return str(value).replace("%", "%%")


def _stop_all() -> None:
    for harness in list(_LIVE):
        harness.stop()


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(_stop_all)
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _processes_with(*markers: str) -> list[int]:
    """Pids whose command line holds every marker (Linux ``/proc``; empty elsewhere)."""
    found: list[int] = []
    wanted = [m.encode() for m in markers]
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = Path(entry.path, "cmdline").read_bytes()
                    if all(m in cmdline for m in wanted):
                        found.append(int(entry.name))
    return found


class SupervisorHarness:
    """A real supervisord with one program group; a sync and an async context manager."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        group: str = "web",
        numprocs: int = 3,
        autorestart: bool = False,
        startsecs: int = 0,
        stopwaitsecs: int = 2,
        max_instances: int = 9,
        username: str | None = None,
        password: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", group):
            raise ValueError(f"group name {group!r} must match [a-z][a-z0-9_-]*")
        if not 0 <= numprocs <= max_instances <= 99:
            raise ValueError("need 0 <= numprocs <= max_instances <= 99")
        self.workdir = Path(workdir).resolve()
        self.group = group
        self.numprocs = numprocs
        self.autorestart = autorestart
        self.startsecs = startsecs
        self.stopwaitsecs = stopwaitsecs
        self.max_instances = max_instances
        self.username = username
        self.password = password
        self.start_timeout = start_timeout
        self.include_dir = self.workdir / "conf.d"
        self.fault_dir = self.workdir / "faults"
        self.log_dir = self.workdir / "logs"
        self.conf_path = self.workdir / "supervisord.conf"
        self.output_path = self.workdir / "supervisord.out"
        self.rpc_port = 0
        self.port_prefix = 0
        self.socket_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}/RPC2"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def include_file(self) -> Path:
        return self.include_dir / f"{self.group}.conf"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def port_of(self, process_num: int) -> int:
        return self.port_prefix * 100 + process_num

    @property
    def instances(self) -> dict[str, int]:
        """``group:name`` → port, for the ``numprocs`` currently written in the include file."""
        found = _NUMPROCS.search(self.include_file.read_text())
        count = int(found.group(1)) if found else 1
        return {f"{self.group}:{self.group}-{n}": self.port_of(n) for n in range(1, count + 1)}

    def executor_config(self) -> dict[str, Any]:
        """The ``executors.supervisor`` config section that points paramedic at this harness."""
        cfg: dict[str, Any] = {"url": self.url, "include_dir": str(self.include_dir)}
        if self.username is not None:
            cfg.update(username=self.username, password=self.password or "")
        return cfg

    def rpc(self, timeout: float = 5.0) -> xmlrpc.client.ServerProxy:
        """A new XML-RPC proxy (use it in a ``with`` block so its connection is closed)."""
        auth = (self.username, self.password or "") if self.username is not None else None
        return make_proxy(self.url, timeout=timeout, auth=auth)

    # -- configuration ---------------------------------------------------------------------
    def _choose_ports(self) -> None:
        self.rpc_port = _free_port()
        for _ in range(200):
            prefix = random.randint(110, 326)  # 11000-32699: below Linux's ephemeral ports
            ports = [prefix * 100 + n for n in range(1, self.max_instances + 1)]
            if self.rpc_port not in ports and all(_port_free(p) for p in ports):
                self.port_prefix = prefix
                return
        raise RuntimeError("no free block of ports for the sample service instances")

    def _auth_lines(self) -> str:
        if self.username is None:
            return ""
        return f"username={_esc(self.username)}\npassword={_esc(self.password or '')}\n"

    def write_config(self) -> None:
        for d in (self.workdir, self.include_dir, self.fault_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._choose_ports()
        # A unix socket path must stay short (about 100 bytes), so it lives in its own temp dir.
        self.socket_path = Path(tempfile.mkdtemp(prefix="pm-sv-")) / "supervisor.sock"
        w = self.workdir
        self.conf_path.write_text(
            "[supervisord]\n"
            f"logfile={_esc(w / 'supervisord.log')}\npidfile={_esc(w / 'supervisord.pid')}\n"
            f"childlogdir={_esc(self.log_dir)}\nnodaemon=true\nloglevel=info\n"
            f"identifier=paramedic-lab-{self.rpc_port}\n\n"
            f"[inet_http_server]\nport=127.0.0.1:{self.rpc_port}\n{self._auth_lines()}\n"
            f"[unix_http_server]\nfile={_esc(self.socket_path)}\nchmod=0700\n"
            f"{self._auth_lines()}\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[include]\nfiles = {_esc(self.include_dir)}/*.conf\n"
        )
        command = (
            f"{_esc(sys.executable)} -m paramedic.lab.sample_service"
            f" --port {self.port_prefix}%(process_num)02d --name %(program_name)s-%(process_num)d"
            f" --fault-dir {_esc(self.fault_dir)}"
        )
        self.include_file.write_text(
            f"[program:{self.group}]\ncommand={command}\n"
            "process_name=%(program_name)s-%(process_num)d\n"
            f"numprocs={self.numprocs}\nnumprocs_start=1\ndirectory={_esc(w)}\n"
            f"autostart=true\nautorestart={str(self.autorestart).lower()}\n"
            f"startsecs={self.startsecs}\nstartretries=3\n"
            f"stopsignal=TERM\nstopwaitsecs={self.stopwaitsecs}\n"
            "stopasgroup=true\nkillasgroup=true\nredirect_stderr=true\n"
            f"stdout_logfile={_esc(self.log_dir)}/%(program_name)s-%(process_num)d.log\n"
            "stdout_logfile_maxbytes=1MB\nstdout_logfile_backups=0\n"
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> SupervisorHarness:
        """Write the config, start supervisord, and wait until every instance answers."""
        if self._proc is not None:
            return self
        self.write_config()
        _install_hooks()
        with self.output_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_path), "-n"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        _LIVE.add(self)
        try:
            self.wait_running(timeout=self.start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _group_states(self) -> dict[str, str] | None:
        try:
            with self.rpc(timeout=2.0) as proxy:
                raw: Any = proxy.supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return None
        infos = [ProcessInfo.parse(i) for i in raw]
        return {i.namespec: i.state for i in infos if i.group == self.group}

    @staticmethod
    def _answers(port: int) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def wait_running(self, timeout: float = 20.0) -> None:
        """Wait until every instance of the group is RUNNING and answers ``/healthz`` (processes a
        scale-down parked, beyond ``numprocs``, are stopped and not waited for)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"supervisord exited early; see {self.output_path}\n{self._tail()}")
            states = self._group_states()
            want = self.instances
            if (
                states is not None
                and set(want) <= set(states)
                and all(states[n] == "RUNNING" for n in want)
                and all(s in ("STOPPED", "EXITED", "FATAL") for n, s in states.items() if n not in want)
                and all(self._answers(port) for port in want.values())
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"supervisord group {self.group!r} not up in {timeout}s\n{self._tail()}")

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.output_path.read_text(errors="replace")[-2000:]
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Shut supervisord down (XML-RPC, then SIGTERM, then SIGKILL) and sweep stray children."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                errors = (OSError, xmlrpc.client.Error, http.client.HTTPException)
                with contextlib.suppress(*errors), self.rpc(timeout=2.0) as proxy:
                    proxy.supervisor.shutdown()
                for sig, wait in ((None, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                    if sig is not None:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(proc.pid, sig)
                    try:
                        proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            proc.wait()
        finally:
            # Instances run in their own process groups; any that outlived supervisord are killed.
            for pid in _processes_with(f"\0{self.fault_dir}\0", "\0paramedic.lab.sample_service\0"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
            if self.socket_path is not None:
                shutil.rmtree(self.socket_path.parent, ignore_errors=True)
            _LIVE.discard(self)

    def __enter__(self) -> SupervisorHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SupervisorHarness:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
