"""The shape of ``paramedic.yaml`` (DESIGN §5), validated with pydantic. Reading the file and
applying ``PARAMEDIC_*`` overrides happens in ``engine.settings``; this module is pure."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from paramedic.core.routing import Owner, Route
from paramedic.core.runbooks import Duration, Flap

Role = Literal["viewer", "sender", "responder", "admin"]
# What each role may do. Not a ladder: a ``sender`` (Alertmanager, Grafana, PagerDuty, CI/CD) posts
# alerts and changes and cannot read; a ``viewer`` reads and changes nothing, since a posted alert
# runs ``auto`` runbooks and a posted change steers rollback runbooks; ``admin`` may do everything.
ROLE_GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"viewer"}),
    "sender": frozenset({"sender"}),
    "responder": frozenset({"viewer", "responder"}),
    "admin": frozenset({"viewer", "sender", "responder", "admin"}),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Probe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    http: str | None = None
    tcp: str | None = None
    every: Duration = timedelta(seconds=5)
    timeout: Duration = timedelta(seconds=1)
    failures: int = Field(default=3, ge=1)
    successes: int = Field(default=1, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_target(self) -> Probe:
        if (self.http is None) == (self.tcp is None):
            raise ValueError("a probe takes exactly one of http (a URL) or tcp (host:port)")
        if "alertname" not in self.labels:
            raise ValueError("a probe needs labels.alertname: the alert it raises when failing")
        return self


class Token(_Strict):
    name: str
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class WebhookAuth(_Strict):
    """The older, shared webhook credentials: they serve every source without an entry of its own in
    ``auth.webhooks``. ``hmac_secret_env`` checks ``X-Hub-Signature-256``/``X-Paramedic-Signature``
    and PagerDuty's ``v1=`` signature, both over the body only."""

    bearer_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    hmac_secret_env: str | None = None
    hmac_secret: SecretStr | None = Field(default=None, exclude=True, repr=False)  # filled by engine.settings


WebhookSource = Literal["alertmanager", "grafana", "pagerduty", "generic", "changes"]


class WebhookCredential(_Strict):
    """One way one source authenticates. A source may have several (two PagerDuty subscriptions,
    each with its own secret; a rotation); a request passes when any of them holds.

    ``scheme``: ``bearer`` (``Authorization: Bearer``), ``basic`` (``username`` and password),
    ``standard`` (Standard Webhooks), ``pagerduty`` (``X-PagerDuty-Signature``), ``github``
    (``X-Hub-Signature-256: sha256=``), ``grafana`` (``X-Grafana-Alerting-Signature``, with
    ``timestamp_header`` when the contact point sets one). The secret (HMAC key, token or password)
    is named, never written here: ``secret_env`` (an environment variable) or ``secret_file`` (a
    file, e.g. a mounted Kubernetes Secret), read once when the config loads; a bearer token or a
    Basic password may instead be given as its ``sha256``.
    """

    source: WebhookSource
    scheme: Literal["bearer", "basic", "standard", "pagerduty", "github", "grafana"]
    secret_env: str | None = None
    secret_file: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    username: str | None = None
    header: str = "X-Grafana-Alerting-Signature"
    timestamp_header: str | None = None
    tolerance: Duration = timedelta(minutes=5)
    secret: SecretStr | None = Field(default=None, exclude=True, repr=False)  # filled by engine.settings

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookCredential:
        named = [k for k in ("secret_env", "secret_file", "sha256") if getattr(self, k)]
        if len(named) != 1:
            raise ValueError(
                f"a {self.scheme} credential for {self.source} takes exactly one of secret_env, secret_file"
                + (" or sha256" if self.scheme in ("bearer", "basic") else "")
                + f", not {', '.join(named) or 'none'}"
            )
        if self.sha256 and self.scheme not in ("bearer", "basic"):
            raise ValueError(
                f"a {self.scheme} signature needs the secret itself (secret_env or secret_file), not sha256"
            )
        if (self.scheme == "basic") != (self.username is not None):
            raise ValueError("username goes with scheme basic, and scheme basic needs a username")
        return self


class Auth(_Strict):
    tokens: list[Token] = Field(default_factory=list)
    webhook: WebhookAuth | None = None
    webhooks: list[WebhookCredential] = Field(default_factory=list)
    session_secret_env: str | None = None
    session_secret: SecretStr | None = Field(default=None, exclude=True, repr=False)  # filled by engine.settings


class Automation(_Strict):
    paused: bool = False
    freeze: list[dict[str, Any]] = Field(default_factory=list)
    flap: Flap = Flap()
    unknown_alerts: Literal["escalate", "ignore"] = "escalate"


class Silences(_Strict):
    """Silence an Alertmanager alert while paramedic remediates it (``engine.silences``)."""

    alertmanager_url: str = Field(pattern=r"^https?://")
    duration: Duration = timedelta(minutes=30)  # the longest a silence lasts if paramedic never expires it
    link: str = ""  # paramedic's public URL, for a link to the incident in the silence's comment


class DeclaredTargets(_Strict):
    """Targets of a blast-radius scope the config declares: the members of ``scope`` (exactly the
    runbook's ``blast_radius.scope`` labels; ``{}`` for the whole fleet) as runbooks name them."""

    scope: dict[str, str] = Field(default_factory=dict)
    members: list[str] = Field(min_length=1)


class AuditCheckpoints(_Strict):
    """Where signed checkpoints of the chain's head go: a file outside the database."""

    file: str
    every: Duration = timedelta(minutes=1)


class AuditSettings(_Strict):
    """The key of the audit chain (a file or an environment variable, never the database) and its
    checkpoints (``docs/audit.md``)."""

    key_file: str | None = None
    key_env: str | None = None
    checkpoints: AuditCheckpoints | None = None

    @model_validator(mode="after")
    def _key_for_checkpoints(self) -> AuditSettings:
        if self.key_file and self.key_env:
            raise ValueError("give the audit key once: key_file or key_env, not both")
        if self.checkpoints is not None and not (self.key_file or self.key_env):
            raise ValueError(
                "audit checkpoints are signed with the audit key: set audit.key_file (see `paramedic audit keygen`)"
            )
        return self


class SlackUser(_Strict):
    """The paramedic identity a Slack user acts as, and its role."""

    name: str = Field(min_length=1, max_length=128)
    role: Role


class SlackApprovals(_Strict):
    """Approve and deny from Slack's interactive messages (``api.slack``). Requests must carry
    Slack's v0 signature made with the app's signing secret, within ``window`` of now."""

    signing_secret_env: str = Field(min_length=1, description="the variable holding the app's signing secret")
    signing_secret: SecretStr | None = Field(default=None, exclude=True, repr=False)  # filled by engine.settings
    users: dict[str, SlackUser] = Field(default_factory=dict, description="Slack user id → paramedic identity")
    window: Duration = timedelta(minutes=5)


class Notifications(_Strict):
    """How a storm reaches humans. Rows of one sink, one event and one alert group (Alertmanager's
    ``groupKey``, else the alertname) pending at once, at least ``group_min`` of them created within
    ``group_interval``, go as one message with the count and the list. Each sink sends at most
    ``rate_limit`` messages per ``rate_per`` (counted in the database: across replicas and restarts);
    escalations and approval requests are sent before anything else."""

    group_min: int = Field(default=3, ge=2)
    group_interval: Duration = timedelta(minutes=1)
    rate_limit: int = Field(default=30, ge=1)
    rate_per: Duration = timedelta(minutes=1)


class Config(_Strict):
    listen: str = "127.0.0.1:8080"
    database: str = "sqlite:///paramedic.db"
    runbooks: list[str] = Field(default_factory=lambda: ["runbooks/"])
    auth: Auth | None = None
    automation: Automation = Automation()
    audit: AuditSettings = AuditSettings()
    probes: list[Probe] = Field(default_factory=list)
    targets: list[DeclaredTargets] = Field(default_factory=list)
    sinks: list[dict[str, Any]] = Field(default_factory=list)
    executors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    enrich_defaults: list[dict[str, Any]] = Field(default_factory=list)
    prometheus_url: str = ""  # default for verify.prometheus and metric evidence
    workers: int = Field(default=4, ge=1, le=64)
    lease: Duration = timedelta(seconds=30)
    # claims of one run (its first, plus resumes after crashes or lost leases) before it fails and escalates
    max_run_attempts: int = Field(default=3, ge=1, le=20)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)  # fits 10,000 alerts (MAX_ALERTS) of ~1.5 KB
    inline_alerts: int = Field(default=200, ge=1)  # larger deliveries: stored as received, recorded after the 202
    log_format: Literal["json", "text"] = "json"
    instance_name: str = ""
    silences: Silences | None = None
    owners: dict[str, Owner] = Field(default_factory=dict)  # team → contact and the services it owns
    slack: SlackApprovals | None = None  # approve from Slack: signing secret and user mapping
    notifications: Notifications = Notifications()
    route: Route | None = None  # which sinks hear of what (Alertmanager's routing tree); none: every sink

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("listen must be host:port, like 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @model_validator(mode="after")
    def _routes_name_sinks(self) -> Config:
        if self.route is None:
            return self
        if self.route.matchers:
            raise ValueError("route: the root route matches every incident; put matchers on its child routes")
        if not self.route.receivers:
            raise ValueError("route: the root route needs a receiver (the default for what no child route takes)")
        known = {str(s.get("name", s.get("type", ""))) for s in self.sinks} | {"log"}
        unknown = sorted(self.route.names() - known)
        if unknown:
            raise ValueError(
                f"route: receiver(s) {', '.join(unknown)} name no sink; sinks are: {', '.join(sorted(known))}"
            )
        return self

    @model_validator(mode="after")
    def _open_only_on_loopback(self) -> Config:
        if self.auth is None and not is_loopback(self.host):
            raise ValueError(
                f"no auth is configured, so paramedic may only listen on loopback, not {self.host};"
                " add an auth: section (see `paramedic token create`) or listen on 127.0.0.1"
            )
        return self


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
