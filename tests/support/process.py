"""External processes for tests: start, ready check, log tail on failure, stop the whole tree.

Every process started here carries a marker in its environment (``TESTS_PROCESS_TREE=<token>``),
which its children inherit even when they start a session of their own or are re-parented to
init (a supervisord and its programs, a step an executor detached, a daemonising HAProxy).
``stop`` ends every process holding the marker, plus any descendant by parent pid (for children
started with a cleaned environment), so nothing a test started outlives it.

The whole test session carries a marker of its own (``TESTS_SESSION_TREE``, set by
``conftest``): at the end of the run ``sweep_session`` ends whatever still holds it and names it,
a safety net for a test that started a process some other way and left it behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

TREE_VAR = "TESTS_PROCESS_TREE"
SESSION_VAR = "TESTS_SESSION_TREE"
START_TIMEOUT = 90.0  # a process that exits is seen at once; this bounds only a silent hang


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces; ppid is the 2nd field after it
    return int(stat.rpartition(")")[2].split()[1])


def _pids() -> list[int]:
    with contextlib.suppress(OSError):
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its parent's wait remains


def marked(var: str, token: str) -> list[int]:
    """Pids of live processes whose environment holds ``var=token`` (never this process)."""
    me = os.getpid()
    return [pid for pid in _pids() if pid != me and _environ(pid).get(var) == token and _alive(pid)]


def descendants(roots: Iterable[int]) -> set[int]:
    """Every live process below ``roots`` by parent pid."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid for pid in found if _alive(pid)}


def end(pids: Iterable[int], *, grace: float = 10.0) -> None:
    """SIGTERM ``pids``, wait up to ``grace`` seconds for them to end, SIGKILL what is left."""
    targets = set(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while (targets := {p for p in targets if _alive(p)}) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not targets:
            return


def sweep_session() -> list[str]:
    """End every process that still holds this session's marker; return their command lines."""
    token = os.environ.get(SESSION_VAR, "")
    if not token.startswith(f"{os.getpid()}-"):  # only the run that set the marker sweeps it
        return []
    left = marked(SESSION_VAR, token)
    names = []
    for pid in left:
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            names.append(f"{pid}: {b' '.join(argv).decode(errors='replace')}")
    end(left, grace=5.0)
    return names


class Process:
    """One external process of a test, started in a session of its own, its output in ``log``.

    ``ready`` is polled until it holds (a port answering, a file appearing); if the process exits
    first, or ``timeout`` passes, the test fails with the tail of the log. ``stop`` ends the whole
    tree; ``kill`` sends SIGKILL to the main process alone, as a crash would.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self.log_path = log
        self.token = uuid.uuid4().hex
        self._env = {**(os.environ if env is None else env), TREE_VAR: self.token}
        self._cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    # ---- start --------------------------------------------------------------------------------
    def start(self, ready: Callable[[], bool] | None = None, *, timeout: float = START_TIMEOUT) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
        if ready is not None:
            try:
                self.wait_until(ready, timeout=timeout, what="ready")
            except BaseException:
                self.stop()
                raise
        return self

    def __enter__(self) -> Self:
        return self if self.proc is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- state --------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, why: str) -> None:
        pytest.fail(f"{self.name} {why}; last lines of {self.log_path}:\n{self.tail()}", pytrace=False)

    def check(self) -> None:
        """Fail the test (with the log's tail) if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            self.fail(f"exited with status {self.proc.returncode}")

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05) -> None:
        """Poll ``predicate`` while the process lives; fail with the log's tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if predicate():
                return
            if time.monotonic() > deadline:
                self.fail(f"was not {what} within {timeout:g}s")
            time.sleep(every)

    def wait_exit(self, timeout: float) -> int:
        """The exit status, once the main process has ended by itself (a signal the test sent)."""
        assert self.proc is not None, f"{self.name} was not started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"did not exit within {timeout:g}s")
            raise

    # ---- stop ---------------------------------------------------------------------------------
    def tree(self) -> set[int]:
        """Every live process of this tree: the marked ones and their descendants by parent pid."""
        roots = set(marked(TREE_VAR, self.token))
        if self.running():
            roots.add(self.pid)
        return roots | descendants(roots)

    def kill(self) -> None:
        """SIGKILL the main process only (its children live on, as after a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole tree, SIGKILL what outlives ``grace``, reap the main process."""
        if self.proc is None:
            return
        end(self.tree(), grace=grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
