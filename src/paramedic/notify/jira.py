"""Jira issues as incident tickets (REST API v2, Jira Cloud and Data Center).

Config::

    - {type: jira, name: jira, url: "https://acme.atlassian.net", project: OPS, issue_type: Incident,
       email: paramedic@acme.com, api_token_env: JIRA_API_TOKEN,      # Cloud: basic auth
       # token_env: JIRA_PAT,                                          # Data Center: a personal access token
       labels: [paramedic], resolve_transition: Done, open_on: [escalated, approval_needed, breaker_opened]}

An event in ``open_on`` for an incident without an issue creates one: ``POST /rest/api/2/issue``
with ``fields: {project: {key}, summary, description, issuetype: {name}, labels}`` (the summary in
Jira wiki markup); the issue key is remembered (``settings`` row ``ticket:{sink name}:{incident
id}``) and the chart is attached (``POST /rest/api/2/issue/{key}/attachments``, multipart field
``file``, header ``X-Atlassian-Token: no-check``). Later events add a comment
(``POST /rest/api/2/issue/{key}/comment``); ``resolved`` first moves the issue through the
transition named ``resolve_transition`` (``GET``, then ``POST /rest/api/2/issue/{key}/transitions``),
then comments. When that transition is not offered (a human closed the issue already, or the
workflow names it differently) the comment is still posted and the mismatch is logged.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from paramedic.core.errors import ActionError
from paramedic.notify import http
from paramedic.notify.base import Notification, TicketStore
from paramedic.notify.github import ticket_key
from paramedic.notify.markdown import to_jira

log = logging.getLogger("paramedic.notify.jira")


class JiraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "jira"
    name: str = "jira"
    url: str
    project: str
    issue_type: str = "Task"
    email: str = ""
    api_token: str = ""
    api_token_env: str = ""
    token: str = ""
    token_env: str = ""
    labels: list[str] = ["paramedic"]
    resolve_transition: str = "Done"
    open_on: tuple[str, ...] = ("escalated", "approval_needed", "breaker_opened")


class JiraSink:
    """Keeps one Jira issue per incident up to date."""

    def __init__(self, cfg: JiraConfig, *, auth: str, client: httpx.AsyncClient, tickets: TicketStore) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self._auth = auth  # the whole Authorization header value
        self._client = client
        self._tickets = tickets

    @classmethod
    def authorization(cls, *, email: str, api_token: str, token: str) -> str:
        if token:
            return f"Bearer {token}"
        return "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode()

    def _url(self, path: str) -> str:
        return f"{self.cfg.url.rstrip('/')}/rest/api/2/{path}"

    async def _call(self, method: str, path: str, body: dict[str, Any] | None, ok: tuple[int, ...]) -> httpx.Response:
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        return await http.call(
            self._client, method, self._url(path), what=f"Jira {self.name}", json=body, headers=headers, ok=ok
        )

    async def send(self, note: Notification) -> None:
        if note.incident_id is None:
            return
        key_name = ticket_key(self.name, note.incident_id)
        key = await self._tickets.get(key_name)
        text = to_jira(note.summary_markdown)
        if key is None:
            if note.event not in self.cfg.open_on:
                return
            fields = {
                "project": {"key": self.cfg.project},
                "summary": " ".join(note.title.split())[:255],
                "description": text,
                "issuetype": {"name": self.cfg.issue_type},
                "labels": list(self.cfg.labels),
            }
            resp = await self._call("POST", "issue", {"fields": fields}, ok=(201,))
            key = str(resp.json()["key"])
            await self._tickets.put(key_name, key)
            if note.image:
                await self._attach(key, note.image)
            return
        if note.event == "resolved":
            await self._transition(key)
        await self._call("POST", f"issue/{key}/comment", {"body": text}, ok=(201,))

    async def _attach(self, key: str, image: bytes) -> None:
        headers = {"Authorization": self._auth, "X-Atlassian-Token": "no-check", "Accept": "application/json"}
        try:
            await http.call(
                self._client,
                "POST",
                self._url(f"issue/{key}/attachments"),
                what=f"Jira {self.name} attachment",
                files={"file": ("incident-chart.png", image, "image/png")},
                headers=headers,
                ok=(200,),
            )
        except ActionError as exc:  # the issue exists and says everything; the chart is a bonus
            log.warning("could not attach the chart to %s: %s", key, exc)

    async def _transition(self, key: str) -> None:
        resp = await self._call("GET", f"issue/{key}/transitions", None, ok=(200,))
        wanted = self.cfg.resolve_transition.lower()
        available = resp.json().get("transitions", [])
        for t in available:
            names = {str(t.get("name", "")).lower(), str((t.get("to") or {}).get("name", "")).lower()}
            if wanted in names:
                await self._call("POST", f"issue/{key}/transitions", {"transition": {"id": str(t["id"])}}, ok=(204,))
                return
        # Already closed by a human, or a workflow without that transition: the comment still
        # tells the story, so it is posted; the mismatch is logged for whoever configures Jira.
        offered = ", ".join(str(t.get("name")) for t in available) or "none"
        log.warning("Jira issue %s has no transition %r (available: %s)", key, self.cfg.resolve_transition, offered)
