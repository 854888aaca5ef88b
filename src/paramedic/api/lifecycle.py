"""The human side of an incident over HTTP: acknowledge, resolve (with a reason), note, assign to a
person or a team, snooze. Responder role; each change is audited (``store.lifecycle``) and answers
with the incident as ``GET /api/v1/incidents/{id}`` lists it. Unknown incident 404, resolved 409."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Self

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field, field_validator, model_validator

from paramedic.api import views
from paramedic.api.auth import Principal, require
from paramedic.core.durations import parse_duration
from paramedic.engine.service import Paramedic
from paramedic.store import lifecycle

MAX_SNOOZE = timedelta(hours=24)


def responder(request: Request) -> Principal:
    return require(request, "responder")


class Resolution(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why it is closed (kept in the audit trail)")

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a resolution needs a reason")
        return value.strip()


class Note(BaseModel):
    text: str = Field(min_length=1, max_length=4000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a note needs text")
        return value.strip()


class Assignment(BaseModel):
    person: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
    team: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.person is None) == (self.team is None):
            raise ValueError('give exactly one of "person" or "team"')
        return self

    @property
    def to(self) -> tuple[str, lifecycle.AssigneeKind]:
        if self.person is not None:
            return self.person.strip(), lifecycle.AssigneeKind.PERSON
        assert self.team is not None
        return self.team.strip(), lifecycle.AssigneeKind.TEAM


class Snooze(BaseModel):
    duration: str = Field(
        alias="for", max_length=32, description="how long, like 30m or 2h (at most 24h)", examples=["30m"]
    )

    @field_validator("duration")
    @classmethod
    def _parses(cls, value: str) -> str:
        span = parse_duration(value)  # ValueError names the format
        if not timedelta(0) < span <= MAX_SNOOZE:
            raise ValueError("a snooze lasts more than 0s and at most 24h")
        return value

    @property
    def span(self) -> timedelta:
        return parse_duration(self.duration)


def mount(app: FastAPI, pm: Paramedic) -> None:
    tags: list[str | Any] = ["incidents"]

    @app.post("/api/v1/incidents/{incident_id}/acknowledge", tags=tags, summary="Acknowledge: a human is on it")
    async def acknowledge(incident_id: int, who: Principal = Depends(responder)) -> dict[str, Any]:
        return views.incident(await pm.on_incident(incident_id, lifecycle.acknowledge, by=who.name))

    @app.post("/api/v1/incidents/{incident_id}/resolve", tags=tags, summary="Resolve by hand, with a reason")
    async def resolve(incident_id: int, body: Resolution, who: Principal = Depends(responder)) -> dict[str, Any]:
        row = await pm.on_incident(incident_id, lifecycle.resolve, by=who.name, reason=body.reason)
        return views.incident(row)

    @app.post("/api/v1/incidents/{incident_id}/notes", tags=tags, summary="Add a note to the timeline")
    async def add_note(incident_id: int, body: Note, who: Principal = Depends(responder)) -> dict[str, Any]:
        return views.incident(await pm.on_incident(incident_id, lifecycle.note, by=who.name, text=body.text))

    @app.post("/api/v1/incidents/{incident_id}/assign", tags=tags, summary="Assign to a person or a team")
    async def assign(incident_id: int, body: Assignment, who: Principal = Depends(responder)) -> dict[str, Any]:
        to, kind = body.to
        return views.incident(await pm.on_incident(incident_id, lifecycle.assign, by=who.name, to=to, kind=kind))

    @app.post("/api/v1/incidents/{incident_id}/snooze", tags=tags, summary="Acknowledge and remind again later")
    async def snooze(incident_id: int, body: Snooze, who: Principal = Depends(responder)) -> dict[str, Any]:
        until = pm.clock() + body.span
        return views.incident(await pm.on_incident(incident_id, lifecycle.snooze, by=who.name, until=until))
