"""The benchmark's action target: a loopback HTTP server that stamps when each action arrives.

It runs as its own process (``python -m bench.receiver --port N``), so its clock readings are not
delayed by the load generator's event loop. ``POST /hit`` with ``{"id": ...}`` records
``time.monotonic_ns()`` for that id (CLOCK_MONOTONIC is one clock for every process on Linux, so
the load generator can subtract its own send time). ``GET /hits`` returns every stamp so far.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ReceiverApp:
    """A bare ASGI app: no framework between the socket and the timestamp."""

    def __init__(self) -> None:
        self.arrivals: dict[str, int] = {}
        self.repeats = 0

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
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        arrived = time.monotonic_ns()
        if scope["method"] == "POST" and scope["path"] == "/hit":
            key = str(json.loads(b"".join(chunks) or b"{}").get("id", ""))
            if key in self.arrivals:
                self.repeats += 1
            else:
                self.arrivals[key] = arrived
            await _reply(send, 200, b"ok")
        elif scope["method"] == "GET" and scope["path"] == "/hits":
            await _reply(send, 200, json.dumps({"arrivals": self.arrivals, "repeats": self.repeats}).encode())
        else:
            await _reply(send, 404, b"not found")


async def _reply(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(ReceiverApp(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
