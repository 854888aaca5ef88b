"""The web UI's forms for the human side of an incident: acknowledge, resolve with a reason, note,
assign to a person or a team, snooze. Same checks as every form post (``api.ui_forms``: CSRF first,
then a responder session), the same ``Paramedic.on_incident`` as the API and the CLI, and
post/redirect/get; a refusal shows the incident page again with the reason."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from paramedic.api import queries
from paramedic.api.auth import has_role
from paramedic.api.lifecycle import Assignment, Resolution, Snooze
from paramedic.api.lifecycle import Note as NoteBody
from paramedic.api.pages import error_page, local_path, render, ui_user
from paramedic.api.ui_forms import read_form, redirect
from paramedic.engine.service import OperationError, Paramedic
from paramedic.store import lifecycle

ACTIONS = ("acknowledge", "resolve", "note", "assign", "snooze")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return str(err["msg"]).removeprefix("Value error, ")


def mount(app: FastAPI, pm: Paramedic) -> None:
    async def again(request: Request, incident_id: int, status: int, message: str) -> Response:
        who = ui_user(request)
        data = await pm.read(queries.incident_detail, pm.runbooks, incident_id)
        if data is None:
            return error_page(request, 404, f"Incident {incident_id} does not exist.", user=who)
        return render(
            request,
            "incident.html",
            user=who,
            status_code=status,
            title=f"#{incident_id} {data['alertname']}",
            inc=data,
            banner=await pm.read(queries.banner),
            error=f"Not recorded: {message}.",
        )

    @app.post("/ui/incidents/{incident_id}/{action}", include_in_schema=False)
    async def human(request: Request, incident_id: int, action: str) -> Response:
        if action not in ACTIONS:
            return error_page(request, 404, f"There is no incident action {action!r}.", user=None)
        fields = await read_form(request)
        who = ui_user(request)
        if not has_role(who, "responder"):
            return error_page(
                request, 403, f"The {who.role} role cannot do this; it needs responder. Nothing changed.", user=who
            )
        back = local_path(fields.get("back"), f"/incidents/{incident_id}")
        try:
            if action == "acknowledge":
                await pm.on_incident(incident_id, lifecycle.acknowledge, by=who.name)
            elif action == "resolve":
                reason = Resolution(reason=fields.get("reason", "")).reason
                await pm.on_incident(incident_id, lifecycle.resolve, by=who.name, reason=reason)
            elif action == "note":
                text = NoteBody(text=fields.get("text", "")).text
                await pm.on_incident(incident_id, lifecycle.note, by=who.name, text=text)
            elif action == "assign":
                kind = fields.get("kind", "person")
                name = fields.get("to", "")
                body = Assignment(team=name) if kind == "team" else Assignment(person=name)
                to, as_kind = body.to
                await pm.on_incident(incident_id, lifecycle.assign, by=who.name, to=to, kind=as_kind)
            else:
                span = Snooze.model_validate({"for": fields.get("for", "")}).span
                await pm.on_incident(incident_id, lifecycle.snooze, by=who.name, until=pm.clock() + span)
        except ValidationError as exc:
            return await again(request, incident_id, 422, _first_error(exc))
        except OperationError as exc:
            if exc.status == 404:
                return error_page(request, 404, f"Incident {incident_id} does not exist.", user=who)
            return await again(request, incident_id, exc.status, str(exc))
        return redirect(back, action)
