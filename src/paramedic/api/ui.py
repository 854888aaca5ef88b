"""The web UI: a minimal server-rendered page for now (the full UI builds on these routes)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from paramedic.engine.service import Paramedic

PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>paramedic</title></head><body><h1>paramedic</h1>
<p>The API is at <a href="/docs">/docs</a>; incidents at <a href="/api/v1/incidents">/api/v1/incidents</a>.</p>
</body></html>"""


def mount(app: FastAPI, pm: Paramedic) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return PAGE
