"""The web UI's form posts: sign in and out, approve and deny, pause and resume, breaker reset.

Every post passes ``api.csrf.check`` (Origin and token) before anything else, then needs a session
with the role the action needs (the same roles as the API), then calls the same ``Paramedic``
operation as the API and the CLI, and answers with a redirect (post/redirect/get). A refusal
renders a page that says why, with the HTTP status the API would give.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paramedic.api import csrf, queries
from paramedic.api.auth import LOGOUT, Principal, has_role, principal_for, sha256_hex
from paramedic.api.errors import Id
from paramedic.api.pages import (
    current_user,
    error_page,
    local_path,
    render,
    secure_cookie,
    session_id,
    set_csrf_cookie,
    ui_user,
)
from paramedic.api.session import CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL, SessionCodec, new_csrf_cookie
from paramedic.engine.service import OperationError, Paramedic
from paramedic.store import audit as audit_repo
from paramedic.store import runs as runs_repo
from paramedic.store import seen

log = logging.getLogger("paramedic.api.ui")
MAX_FORM_BYTES = 16 * 1024


class FormError(Exception):
    """A malformed form (HTTP 400)."""


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (text only, small), after the CSRF checks passed; else CsrfRefused."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormError(f"the form is over {MAX_FORM_BYTES} bytes")
    async with request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM_BYTES) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    csrf.check(request, token=fields.get("csrf_token", ""), sid=session_id(request))
    return fields


def redirect(path: str, done: str) -> RedirectResponse:
    base = path.split("?", 1)[0].split("#", 1)[0]
    return RedirectResponse(f"{base}?done={done}", status_code=303)


def mount(app: FastAPI, pm: Paramedic) -> None:
    @app.exception_handler(FormError)
    async def _form(request: Request, exc: FormError) -> Response:
        return error_page(request, 400, str(exc), user=None)

    async def authorised(request: Request, role: str) -> tuple[dict[str, str], Principal | Response]:
        """CSRF first (a forged post learns nothing), then the session and its role."""
        fields = await read_form(request)
        who = ui_user(request)
        if not has_role(who, role):
            return fields, error_page(
                request, 403, f"The {who.role} role cannot do this; it needs {role}. Nothing changed.", user=who
            )
        return fields, who

    # ---- sign in / out ------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request, next: str = "/") -> Response:
        target = local_path(next)
        if app.state.config.auth is None or current_user(request) is not None:
            return RedirectResponse(target, status_code=303)
        return render(request, "login.html", user=None, title="Sign in", next=target, error="")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        fields = await read_form(request)
        target = local_path(fields.get("next"))
        config = app.state.config
        if config.auth is None:
            return RedirectResponse(target, status_code=303)
        token = fields.get("token", "").strip()
        who = principal_for(config, token) if token else None
        if who is None:
            log.warning("UI sign-in refused: unknown token from %s", request.client.host if request.client else "?")
            return render(
                request,
                "login.html",
                user=None,
                status_code=401,
                title="Sign in",
                next=target,
                error="That token is not valid. Paste a token made with `paramedic token create`.",
            )
        if not has_role(who, "viewer"):
            return render(
                request,
                "login.html",
                user=None,
                status_code=403,
                title="Sign in",
                next=target,
                error=f"That is a {who.role} token: it posts alerts and cannot sign in. Use a viewer,"
                " responder or admin token.",
            )
        codec: SessionCodec = app.state.sessions
        now = pm.clock()
        cookie = codec.issue(name=who.name, role=who.role, token_sha256=sha256_hex(token), now=now)
        await pm.write(audit_repo.append, at=now, kind="ui.signed_in", actor=who.name, data={"role": who.role})
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=secure_cookie(request),
            path="/",
        )
        set_csrf_cookie(request, response, new_csrf_cookie())  # a fresh binding for the new session
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        await read_form(request)
        codec: SessionCodec = app.state.sessions
        now = pm.clock()
        session = codec.read(request.cookies.get(SESSION_COOKIE), now=now)
        if session is not None:
            # end it on the server too: a copy of the cookie (another tab, a stolen one) stops working
            until = datetime.fromtimestamp(session.expires, tz=UTC)
            await pm.write(seen.claim, kind=LOGOUT, key=session.sid, expires_at=until, now=now)
            await pm.write(audit_repo.append, at=now, kind="ui.signed_out", actor=session.name, data={})
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        response.delete_cookie(CSRF_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # ---- approvals ----------------------------------------------------------------------------
    async def decide(request: Request, incident_id: int, *, approve: bool) -> Response:
        fields, who = await authorised(request, "responder")
        if isinstance(who, Response):
            return who
        back = local_path(fields.get("back"), f"/incidents/{incident_id}")
        reason = fields.get("reason", "").strip()[:2000]
        digest = fields.get("plan_digest") or None
        run_id = fields.get("run_id", "")
        if not run_id.isdigit():
            raise FormError("the form does not say which run it decides on (run_id)")
        runs = await pm.read(runs_repo.for_incident, incident_id)
        if not any(r.id == int(run_id) for r in runs):
            return error_page(request, 404, f"Run {run_id} is not part of incident {incident_id}.", user=who)
        if not approve and not reason:
            return await refused(
                request, who, incident_id, 422, "A denial needs a reason (it goes to the audit trail)."
            )
        try:
            await pm.decide(int(run_id), actor=who.name, approve=approve, reason=reason, digest=digest)
        except OperationError as exc:
            return await refused(request, who, incident_id, exc.status, str(exc))
        return redirect(back, "approve" if approve else "deny")

    async def refused(request: Request, who: Principal, incident_id: int, status: int, message: str) -> Response:
        """The incident page again, saying why the decision was not recorded."""
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

    @app.post("/ui/incidents/{incident_id}/approve", include_in_schema=False)
    async def approve(request: Request, incident_id: Id) -> Response:
        return await decide(request, incident_id, approve=True)

    @app.post("/ui/incidents/{incident_id}/deny", include_in_schema=False)
    async def deny(request: Request, incident_id: Id) -> Response:
        return await decide(request, incident_id, approve=False)

    # ---- admin: pause switch and breakers -----------------------------------------------------
    @app.post("/ui/automation/pause", include_in_schema=False)
    async def pause(request: Request) -> Response:
        fields, who = await authorised(request, "admin")
        if isinstance(who, Response):
            return who
        await pm.set_paused(True, actor=who.name, reason=fields.get("reason", "").strip()[:2000])
        return redirect(local_path(fields.get("back"), "/runbooks"), "pause")

    @app.post("/ui/automation/resume", include_in_schema=False)
    async def resume(request: Request) -> Response:
        fields, who = await authorised(request, "admin")
        if isinstance(who, Response):
            return who
        await pm.set_paused(False, actor=who.name)
        return redirect(local_path(fields.get("back"), "/runbooks"), "resume")

    @app.post("/ui/runbooks/{name}/breaker/reset", include_in_schema=False)
    async def breaker_reset(request: Request, name: str) -> Response:
        fields, who = await authorised(request, "admin")
        if isinstance(who, Response):
            return who
        try:
            await pm.reset_breaker(name, actor=who.name)
        except OperationError as exc:
            return error_page(request, exc.status, str(exc), user=who)
        return redirect(local_path(fields.get("back"), "/runbooks"), "reset")
