"""GitHub issues as incident tickets: one issue per incident, a comment per later event, closed
when the incident resolves.

Config::

    - {type: github, name: github, repo: acme/payments, token_env: GITHUB_TOKEN,
       api_url: "https://api.github.com", labels: [incident, paramedic], public_url: "https://paramedic.example.com",
       open_on: [escalated, approval_needed, breaker_opened]}

An event in ``open_on`` for an incident without an issue opens one: ``POST /repos/{owner}/{repo}/issues``
with ``title``, ``body`` (the markdown summary) and ``labels``; the issue number is remembered
(the ``settings`` row ``ticket:{sink name}:{incident id}``). Later events of that incident comment
on it (``POST /repos/{owner}/{repo}/issues/{number}/comments``); ``resolved`` first closes it
(``PATCH /repos/{owner}/{repo}/issues/{number}`` with ``state: closed, state_reason: completed``,
which is harmless to repeat) and then comments. Events for an incident without an issue and not in
``open_on`` are not sent (an incident that paramedic mitigated alone needs no ticket). Every request
sends ``Accept: application/vnd.github+json``, ``Authorization: Bearer <token>`` and
``X-GitHub-Api-Version: 2022-11-28``. The chart is embedded as an image only with ``public_url``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from paramedic.notify import http
from paramedic.notify.base import Notification, TicketStore, absolute

API_VERSION = "2022-11-28"


class GitHubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "github"
    name: str = "github"
    repo: str
    token: str = ""
    token_env: str = ""
    api_url: str = "https://api.github.com"
    labels: list[str] = ["incident", "paramedic"]
    public_url: str = ""
    open_on: tuple[str, ...] = ("escalated", "approval_needed", "breaker_opened")

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
            raise ValueError("repo must be owner/name")
        return value


def ticket_key(sink: str, incident_id: int) -> str:
    return f"ticket:{sink}:{incident_id}"[:64]


class GitHubSink:
    """Keeps one GitHub issue per incident up to date."""

    def __init__(self, cfg: GitHubConfig, *, token: str, client: httpx.AsyncClient, tickets: TicketStore) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self._token = token
        self._client = client
        self._tickets = tickets

    @property
    def _base(self) -> str:
        return f"{self.cfg.api_url.rstrip('/')}/repos/{self.cfg.repo}/issues"

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token}",
            "X-GitHub-Api-Version": API_VERSION,
        }

    def _body(self, note: Notification) -> str:
        image = absolute(self.cfg.public_url, note.image_path)
        chart = f"\n\n![Metrics around the alert]({image})" if image else ""
        return f"{note.summary_markdown}{chart}\n\n<!-- paramedic incident {note.incident_id} event {note.event} -->"

    async def _call(self, method: str, url: str, body: dict[str, Any], ok: tuple[int, ...]) -> httpx.Response:
        return await http.call(
            self._client, method, url, what=f"GitHub {self.name}", json=body, headers=self._headers(), ok=ok
        )

    async def send(self, note: Notification) -> None:
        if note.incident_id is None:
            return
        key = ticket_key(self.name, note.incident_id)
        number = await self._tickets.get(key)
        if number is None:
            if note.event not in self.cfg.open_on:
                return
            resp = await self._call(
                "POST",
                self._base,
                {"title": note.title[:256], "body": self._body(note), "labels": list(self.cfg.labels)},
                ok=(201,),
            )
            await self._tickets.put(key, str(int(resp.json()["number"])))
            return
        if note.event == "resolved":
            await self._call(
                "PATCH", f"{self._base}/{number}", {"state": "closed", "state_reason": "completed"}, ok=(200,)
            )
        await self._call("POST", f"{self._base}/{number}/comments", {"body": self._body(note)}, ok=(201,))
