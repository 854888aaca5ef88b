"""``http.request``: one HTTP call with an expected status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from paramedic.actions.base import (
    ActionRequest,
    ActionResult,
    ActionSpec,
    ParamSpec,
    TargetState,
    truncate,
)
from paramedic.core.errors import PermanentError, RetryableError

REQUEST = ActionSpec(
    name="http.request",
    summary="Send one HTTP request; fails unless the response has the expected status.",
    params=(
        ParamSpec("url", "str", help="absolute http(s) URL"),
        ParamSpec("method", "str", required=False, default="POST"),
        ParamSpec("json", "dict", required=False, help="JSON body"),
        ParamSpec("headers", "dict", required=False),
        ParamSpec("expect_status", "int", required=False, default=200),
        ParamSpec("timeout", "float", required=False, default=10.0),
    ),
    idempotent=False,
    default_timeout=10.0,
)

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


class HttpExecutor:
    """Sends requests with one shared connection pool."""

    def __init__(self, *, client: httpx.AsyncClient | None = None) -> None:
        self._client = client

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> HttpExecutor:
        return cls()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    def actions(self) -> Sequence[ActionSpec]:
        return [REQUEST]

    @staticmethod
    def _method(args: Mapping[str, Any]) -> str:
        method = str(args.get("method", "POST")).upper()
        if method not in _METHODS:
            raise PermanentError(f"HTTP method {method!r} is not supported", reason="bad_arguments")
        url = str(args["url"])
        if not url.startswith(("http://", "https://")):
            raise PermanentError(f"url {url!r} must start with http:// or https://", reason="bad_arguments")
        return method

    async def execute(self, request: ActionRequest) -> ActionResult:
        args = request.args
        method = self._method(args)
        expect = int(args.get("expect_status", 200))
        try:
            resp = await self._http().request(
                method,
                str(args["url"]),
                json=args.get("json"),
                headers={str(k): str(v) for k, v in dict(args.get("headers") or {}).items()},
                timeout=float(args.get("timeout", request.timeout)),
            )
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{method} {args['url']} timed out", reason="timeout") from exc
        except httpx.ConnectError as exc:
            raise RetryableError(f"cannot connect to {args['url']}: {exc}", reason="unreachable") from exc
        except httpx.HTTPError as exc:
            raise RetryableError(f"{method} {args['url']} failed: {exc}", reason="http_error") from exc
        body = truncate(resp.text, 2048)
        if resp.status_code != expect:
            cls = RetryableError if resp.status_code >= 500 else PermanentError
            raise cls(
                f"{method} {args['url']} answered {resp.status_code}, expected {expect}",
                reason="unexpected_status",
            )
        return ActionResult(summary=f"{method} {args['url']} → {resp.status_code}", output=body)

    async def describe(self, request: ActionRequest) -> str:
        method = self._method(request.args)
        return f"would send {method} {request.args['url']} and expect {request.args.get('expect_status', 200)}"

    async def read_state(self, request: ActionRequest) -> TargetState:
        url = str(request.args["url"])
        try:
            resp = await self._http().get(url, timeout=5.0)
        except httpx.HTTPError as exc:
            return TargetState(target=url, healthy=False, detail=f"unreachable: {exc}")
        return TargetState(target=url, healthy=resp.status_code < 500, detail=f"HTTP {resp.status_code}")

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
