"""``paramedic record``: a small webhook receiver that writes each payload it gets to a file, so
real alerts become runbook test cases (docs/runbook-tests.md).

It answers on paramedic's own webhook paths (``ingest.payloads.WEBHOOK_PATHS``), checks that
paramedic can parse the payload (a payload it cannot parse is answered 422 and not written), and
saves the body exactly as received under a name that carries the time and the source:
``20240501T120000Z-alertmanager-001.json``. With runbooks given it also writes a case skeleton
next to each payload, its expectations taken from a dry run. It never acts on an alert.

The receiver is a plain ASGI application, served by uvicorn from the command line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from paramedic.core.errors import ParamedicError, PayloadError
from paramedic.engine.clock import Clock, utcnow
from paramedic.ingest import payloads
from paramedic.testing.cases import skeleton_for

MAX_BODY = 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Saved:
    """One payload written to disk."""

    path: Path
    source: str
    alerts: int
    case: Path | None = None
    warning: str = ""


class Recorder:
    """Writes payloads into ``out``; ``on_saved`` and ``on_rejected`` report each delivery."""

    def __init__(
        self,
        out: Path,
        *,
        clock: Clock = utcnow,
        runbooks: Sequence[str] = (),
        limit: int = MAX_BODY,
        on_saved: Callable[[Saved], None] | None = None,
        on_rejected: Callable[[str, str], None] | None = None,
    ) -> None:
        self.out = out
        self.clock = clock
        self.runbooks = list(runbooks)
        self.limit = limit
        self.on_saved = on_saved
        self.on_rejected = on_rejected
        self._seq = 0
        out.mkdir(parents=True, exist_ok=True)

    def _write(self, source: str, body: bytes, now: datetime) -> Path:
        while True:  # exclusive create: never overwrite an earlier recording, even across runs
            self._seq += 1
            path = self.out / f"{now:%Y%m%dT%H%M%S}Z-{source}-{self._seq:03d}.json"
            try:
                with path.open("xb") as f:
                    f.write(body)
            except FileExistsError:
                continue
            return path

    async def save(self, source: str, body: bytes) -> Saved:
        """Check and write one payload; raises ``PayloadError`` if paramedic cannot parse it."""
        now = self.clock()
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"the body is not valid JSON: {exc}", field="body") from exc
        alerts = payloads.parse(data, now=now, source=source)
        path = await asyncio.to_thread(self._write, source, body, now)
        case, warning = None, ""
        if self.runbooks:
            try:
                text = await skeleton_for(path, self.runbooks)
            except ParamedicError as exc:  # the payload is kept; the runbooks need fixing first
                warning = f"no case skeleton: {exc}"
            else:
                case = path.with_name(path.stem + ".case.yaml")
                await asyncio.to_thread(case.write_text, text)
        saved = Saved(path, source, len(alerts), case, warning)
        if self.on_saved is not None:
            self.on_saved(saved)
        return saved

    # ---- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        if path == "/healthz" and method in ("GET", "HEAD"):
            await _reply(send, 200, {"status": "recording", "out": str(self.out)})
            return
        source = payloads.WEBHOOK_PATHS.get(path)
        if source is None or source not in payloads.parsers():
            await _reply(send, 404, {"error": f"no webhook at {path}", "paths": sorted(self._paths())})
            return
        if method != "POST":
            await _reply(send, 405, {"error": "POST the payload"})
            return
        body = await _body(receive, self.limit)
        if body is None:
            await _reply(send, 413, {"error": f"body over the limit of {self.limit} bytes"})
            return
        try:
            saved = await self.save(source, body)
        except PayloadError as exc:
            if self.on_rejected is not None:
                self.on_rejected(source, str(exc))
            await _reply(send, 422, {"error": str(exc), "field": exc.field})
            return
        await _reply(
            send,
            202,
            {"recorded": saved.path.name, "alerts": saved.alerts, "case": _name(saved.case), "warning": saved.warning},
        )

    @staticmethod
    def _paths() -> list[str]:
        known = payloads.parsers()
        return [p for p, s in payloads.WEBHOOK_PATHS.items() if s in known]


def _name(path: Path | None) -> str | None:
    return path.name if path is not None else None


async def _body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _reply(send: Send, status: int, data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
