"""``POST /api/v1/reload`` (admin): load the runbooks and the config's ``owners`` and ``route``
again, validated first. A bad edit answers 422 naming every problem and keeps the running set."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request

from paramedic.api.auth import Principal, require
from paramedic.engine.service import Paramedic


def admin(request: Request) -> Principal:
    return require(request, "admin")


def mount(app: FastAPI, pm: Paramedic) -> None:
    @app.post("/api/v1/reload", tags=["runbooks"], summary="Reload runbooks and config, validated first (admin)")
    async def reload(who: Principal = Depends(admin)) -> dict[str, Any]:
        change = await pm.reload(actor=who.name)
        return {"reloaded": True, **change, "versions": dict(pm.runbooks.versions)}
