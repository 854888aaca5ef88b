"""Sinks from the ``sinks:`` section of ``paramedic.yaml``.

Each entry is ``{type: slack|pagerduty|webhook|email|github|jira, name: ..., ...}``; ``name``
defaults to the type, must be unique, and is the outbox's sink name (renaming a sink orphans its
pending rows). Secrets are given either inline (``webhook_url``, ``routing_key``, ``secret``,
``password``, ``token``, ``api_token``) or, better, as the name of an environment variable that
holds them (the same key with ``_env``), read once here at start-up. ``validate`` checks the
section without building anything (``Paramedic.from_config`` calls it, so a bad entry fails at
start-up with a ``ConfigError`` naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from paramedic.core.errors import ConfigError
from paramedic.notify.base import Sink, TicketStore
from paramedic.notify.email import EmailConfig, EmailSink
from paramedic.notify.github import GitHubConfig, GitHubSink
from paramedic.notify.jira import JiraConfig, JiraSink
from paramedic.notify.pagerduty import PagerDutyConfig, PagerDutySink
from paramedic.notify.slack import SlackConfig, SlackSink
from paramedic.notify.webhook import WebhookConfig, WebhookSink

MODELS: dict[str, type[BaseModel]] = {
    "slack": SlackConfig,
    "pagerduty": PagerDutyConfig,
    "webhook": WebhookConfig,
    "email": EmailConfig,
    "github": GitHubConfig,
    "jira": JiraConfig,
}
# the secrets of each type: (field, required)
SECRETS: dict[str, tuple[tuple[str, bool], ...]] = {
    "slack": (("webhook_url", True),),
    "pagerduty": (("routing_key", True),),
    "webhook": (("secret", False),),
    "email": (("password", False),),
    "github": (("token", True),),
    "jira": (("api_token", False), ("token", False)),
}


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One validated entry with its secrets resolved."""

    type: str
    name: str
    model: BaseModel
    secrets: Mapping[str, str]


def sink_name(spec: Mapping[str, Any]) -> str:
    return str(spec.get("name") or spec.get("type") or "")


def validate(specs: Sequence[Mapping[str, Any]], env: Mapping[str, str]) -> list[SinkConfig]:
    """Validate every entry and resolve its secrets (``*_env`` looked up in ``env``, which the
    caller reads once at start-up from ``engine.settings``); ``ConfigError`` names the first bad one."""
    out: list[SinkConfig] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        kind = str(spec.get("type", ""))
        where = f"sinks[{i}]"
        if kind not in MODELS:
            raise ConfigError(f"{where}: type must be one of {', '.join(MODELS)}, not {kind!r}")
        name = sink_name(spec)
        if name == "log" or name in seen:
            raise ConfigError(f"{where}: sink name {name!r} is {'reserved' if name == 'log' else 'used twice'}")
        seen.add(name)
        try:
            model = MODELS[kind].model_validate({**spec, "name": name})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{where} ({name}).{loc}: {first['msg']}") from None
        secrets: dict[str, str] = {}
        for field, required in SECRETS[kind]:
            value = str(getattr(model, field) or "")
            var = str(getattr(model, f"{field}_env") or "")
            if not value and var:
                value = env.get(var, "")
                if not value:
                    raise ConfigError(f"{where} ({name}): environment variable {var} ({field}) is not set")
            if required and not value:
                raise ConfigError(f"{where} ({name}): give {field} or {field}_env")
            secrets[field] = value
        if kind == "jira" and not secrets["token"] and not (secrets["api_token"] and getattr(model, "email", "")):
            raise ConfigError(f"{where} ({name}): give token(_env), or email and api_token(_env)")
        out.append(SinkConfig(kind, name, model, secrets))
    return out


def build_sinks(
    specs: Sequence[Mapping[str, Any]],
    *,
    client: httpx.AsyncClient,
    tickets: TicketStore,
    env: Mapping[str, str],
) -> list[Sink]:
    """Every configured sink, ready to send. Raises ``ConfigError``."""
    builders: dict[str, Callable[[SinkConfig], Sink]] = {
        "slack": lambda c: SlackSink(_m(c, SlackConfig), webhook_url=c.secrets["webhook_url"], client=client),
        "pagerduty": lambda c: PagerDutySink(
            _m(c, PagerDutyConfig), routing_key=c.secrets["routing_key"], client=client
        ),
        "webhook": lambda c: WebhookSink(_m(c, WebhookConfig), secret=c.secrets["secret"], client=client),
        "email": lambda c: EmailSink(_m(c, EmailConfig), password=c.secrets["password"]),
        "github": lambda c: GitHubSink(_m(c, GitHubConfig), token=c.secrets["token"], client=client, tickets=tickets),
        "jira": lambda c: JiraSink(
            _m(c, JiraConfig),
            auth=JiraSink.authorization(
                email=_m(c, JiraConfig).email, api_token=c.secrets["api_token"], token=c.secrets["token"]
            ),
            client=client,
            tickets=tickets,
        ),
    }
    return [builders[c.type](c) for c in validate(specs, env)]


M = TypeVar("M", bound=BaseModel)


def _m(c: SinkConfig, cls: type[M]) -> M:
    assert isinstance(c.model, cls)
    return c.model
