"""Log evidence: the tail of a log file, or of a supervisord program's log over XML-RPC.

Specs::

    - logs: {file: /var/log/web/error.log, lines: 200}
    - logs: {program: "web:{{ labels.program }}", lines: 200, stream: stdout}

Every line is passed through ``core.audit.redact_text`` (bearer tokens, passwords in URLs,
``password=…``) and a JSON-style ``"token": "…"`` pass before it is stored or sent anywhere: a log
tail ends up in Slack and in tickets. A file path must be absolute and may not contain ``..``,
because a path can be rendered from alert labels. It must also stay, once every symlink is resolved,
inside the allowed folders ``settings.log_dirs`` of ``enrich_defaults``; without that setting no
part of the path may be a symlink. So a symlink ``/var/log/web/error.log -> /etc/shadow`` (or a
symlinked folder that leads elsewhere) is refused; the file is opened at its resolved path with
``O_NOFOLLOW`` so it cannot be swapped for a link between the check and the read. The supervisord
connection comes from the engine (a factory over ``actions.supervisor.make_proxy`` and
``executors.supervisor``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import stat
import xmlrpc.client
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from paramedic.core.audit import REDACTED, redact_text
from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, EvidenceStatus, fenced, option_int

ProxyFactory = Callable[[], xmlrpc.client.ServerProxy]

MAX_BYTES = 256 * 1024
SHOWN = 20  # lines in the markdown body; the evidence data keeps them all
ERRORS_SHOWN = 10  # lines that look like errors, shown first
BAD_NAME, NO_FILE = 10, 20
_PROGRAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}(:[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127})?")
_ERRORS = re.compile(r"(?i)\b(error|exception|traceback|fatal|panic|critical|refused|timed? ?out|killed)\b")
_KEYED_SECRET = re.compile(
    r"""(?i)(["']?(?:pass(?:word|wd)?|secret|token|api[_-]?key|authorization)["']?\s*[:=]\s*["']?)([^"'\s,;}]+)"""
)


def looks_like_error(line: str) -> bool:
    return _ERRORS.search(line) is not None


def redact_line(line: str) -> str:
    return _KEYED_SECRET.sub(lambda m: m.group(1) + REDACTED, redact_text(line))


class LogsCollector:
    """Tails files and supervisord program logs; at most ``lines`` lines, at most 256 KiB read."""

    kind = "logs"

    def __init__(
        self, *, supervisor: ProxyFactory | None = None, supervisor_url: str = "", allowed: Sequence[str] = ()
    ) -> None:
        self._supervisor = supervisor
        self._supervisor_url = supervisor_url
        self._allowed = tuple(allowed)  # folders a log file may resolve into; empty: the spec's own folder

    def title(self, request: EnrichRequest) -> str:
        o = request.options
        what = f"{o['program']} (supervisord)" if o.get("program") else str(o.get("file", "(no file or program)"))
        return str(o.get("title") or f"Last {o.get('lines', 100)} log lines of {what}")

    async def collect(self, request: EnrichRequest) -> Evidence:
        o = request.options
        count = option_int(o, "lines", 100, low=1, high=5000)
        if bool(o.get("file")) == bool(o.get("program")):
            raise CollectError("a logs spec takes exactly one of file (a path) or program (a supervisord name)")
        if o.get("file"):
            path = _check_path(str(o["file"]))
            real = _inside(path, self._allowed)
            text, source = await asyncio.to_thread(_tail_file, real, count), path
        else:
            name = str(o["program"])
            if not _PROGRAM.fullmatch(name):
                raise CollectError(f"{name!r} is not a supervisord process name")
            stream = str(o.get("stream", "stdout"))
            if stream not in ("stdout", "stderr"):
                raise CollectError("stream must be stdout or stderr")
            text = await asyncio.to_thread(self._tail_program, name, stream)
            source = f"supervisord {name} {stream}"
        lines = [redact_line(line) for line in text.splitlines()[-count:]]
        return log_evidence(self.title(request), source, lines)

    def _tail_program(self, name: str, stream: str) -> str:
        if self._supervisor is None:
            raise CollectError("no supervisord is configured (executors.supervisor.url)")
        try:
            with self._supervisor() as proxy:
                call = proxy.supervisor.tailProcessStdoutLog
                if stream == "stderr":
                    call = proxy.supervisor.tailProcessStderrLog
                result: Any = call(name, 0, MAX_BYTES)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == BAD_NAME:
                raise CollectError(f"supervisord has no process {name!r}") from None
            if fault.faultCode == NO_FILE:
                raise CollectError(f"{name} has no {stream} log file (stdout_logfile is NONE?)") from None
            raise CollectError(f"supervisord refused to tail {name}: {fault.faultString}") from None
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            where = f" at {self._supervisor_url}" if self._supervisor_url else ""
            raise CollectError(f"cannot reach supervisord{where}: {exc}") from None
        text = str(result[0]) if isinstance(result, list) and result else ""
        if isinstance(result, list) and len(result) > 2 and result[2] and "\n" in text:
            text = text.split("\n", 1)[1]  # the first line was cut by the byte limit
        return text


def log_evidence(title: str, source: str, lines: list[str], *, kind: str = "logs") -> Evidence:
    """Evidence of redacted log lines: a headline, the lines that look like errors first, then the
    tail. The data keeps every line, for the UI."""
    errors = [line for line in lines if _ERRORS.search(line)]
    data: dict[str, Any] = {"source": source, "lines": lines, "error_lines": len(errors)}
    if not lines:
        return Evidence(kind, title, EvidenceStatus.OK, f"{source} is empty.", data)
    count_text = f"{len(lines)} line{'s' if len(lines) != 1 else ''}"
    if errors:
        look = "looks" if len(errors) == 1 else "look"
        head = f"{count_text}, {len(errors)} {look} like errors; last: `{_inline(errors[-1])}`"
    else:
        head = f"{count_text}, none look like errors; last: `{_inline(lines[-1])}`"
    return Evidence(kind, title, EvidenceStatus.OK, "\n\n".join([head, *excerpt_blocks(lines)]), data)


def excerpt_blocks(lines: list[str]) -> list[str]:
    """Markdown blocks of a log tail: the lines that look like errors first (when any), then the tail."""
    errors = [line for line in lines if _ERRORS.search(line)]
    parts = []
    if errors:
        shown = errors[-ERRORS_SHOWN:]
        parts += [f"Lines that look like errors (last {len(shown)}):", fenced(shown)]
        parts.append(f"Last {min(len(lines), SHOWN)} lines:")
    parts.append(fenced(lines[-SHOWN:]))
    return parts


def _check_path(raw: str) -> str:
    path = PurePosixPath(raw)
    if not path.is_absolute() or ".." in path.parts:
        raise CollectError(f"log file {raw!r} must be an absolute path without '..'")
    return str(path)


def _inside(path: str, allowed: Sequence[str]) -> str:
    """The resolved path of ``path`` if it lies in one of the ``allowed`` folders, every symlink
    followed; with no folders configured, ``path`` itself when no part of it is a symlink. Else
    ``CollectError``."""
    real = os.path.realpath(path)
    if not allowed:
        if real != path:
            raise CollectError(
                f"log file {path} goes through a symlink (to {real}); not read. List the folders logs may"
                " lie in as settings.log_dirs of enrich_defaults to allow links inside them"
            )
        return real
    for folder in allowed:
        root = os.path.realpath(folder)
        if os.path.commonpath([root, real]) == root and real != root:
            return real
    raise CollectError(
        f"log file {path} resolves to {real}, outside the allowed folders ({', '.join(allowed)}); not read"
    )


def _tail_file(path: str, count: int) -> str:
    """The last ``count`` lines, reading backwards in blocks, at most ``MAX_BYTES``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CollectError(f"{path} is not a regular file")
            end = f.seek(0, os.SEEK_END)
            pos, chunks, newlines = end, [], 0
            while pos > 0 and newlines <= count and end - pos < MAX_BYTES:
                size = min(8192, pos, MAX_BYTES - (end - pos))
                pos -= size
                f.seek(pos)
                chunk = f.read(size)
                chunks.append(chunk)
                newlines += chunk.count(b"\n")
    except FileNotFoundError:
        raise CollectError(f"{path} does not exist") from None
    except PermissionError:
        raise CollectError(f"paramedic may not read {path}") from None
    except IsADirectoryError:
        raise CollectError(f"{path} is a directory") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink after the check
            raise CollectError(f"{path} is a symlink; not read") from None
        raise CollectError(f"cannot read {path}: {exc.strerror}") from None
    data = b"".join(reversed(chunks))
    if pos > 0 and b"\n" in data:
        data = data.split(b"\n", 1)[1]  # drop the partial first line
    return data.decode("utf-8", errors="replace")


def _inline(line: str, limit: int = 160) -> str:
    text = line.strip().replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"
