"""How evidence collection is configured, and the shape of a collector spec.

A spec is one mapping ``{kind: {options}}`` — ``{prometheus: {query: …, range: 30m}}`` — in a
runbook's ``enrich`` list or in ``enrich_defaults``. One ``enrich_defaults`` entry may be
``{settings: {prometheus_url, budget, timeout}}`` instead: it configures collection rather than
adding a collector. Parsing is pure; a malformed entry is a ``ConfigError`` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paramedic.core.durations import parse_duration
from paramedic.core.errors import ConfigError

SETTINGS_KEYS = frozenset(
    {"prometheus_url", "budget", "timeout", "traces_url", "traces_backend", "loki_url", "alert_expression", "log_dirs"}
)


@dataclass(frozen=True, slots=True)
class EnrichSettings:
    """How evidence is collected (from the ``settings`` entry of ``enrich_defaults``)."""

    budget: float = 10.0  # seconds for all collectors of one incident together
    timeout: float = 5.0  # seconds per collector, unless its spec says ``timeout``
    prometheus_url: str | None = None
    traces_url: str | None = None  # Tempo or Jaeger, for ``traces`` specs without a url
    traces_backend: str = "tempo"
    loki_url: str | None = None  # for ``loki`` specs without a url
    # run the PromQL of an alert's ``generatorURL`` (``g0.expr``) against ``prometheus_url``: off unless
    # the operator turns it on, since that URL is alert text, and whoever can post an alert would
    # otherwise choose the query paramedic runs against its Prometheus
    alert_expression: bool = False
    log_dirs: tuple[str, ...] = ()  # folders a ``logs`` file may resolve into (default: its own folder)
    defaults: tuple[Mapping[str, Any], ...] = ()  # enrich_defaults as given (settings entries too)

    @classmethod
    def from_config(cls, entries: Sequence[Mapping[str, Any]]) -> EnrichSettings:
        """Raises ``ConfigError`` for a malformed entry."""
        found: dict[str, Any] = {}
        for i, entry in enumerate(entries):
            kind, options = split_spec(entry, where=f"enrich_defaults[{i}]")
            if kind != "settings":
                continue
            unknown = set(options) - SETTINGS_KEYS
            if unknown:
                raise ConfigError(f"enrich_defaults[{i}].settings: unknown key(s) {', '.join(sorted(unknown))}")
            found.update(options)
        try:
            budget = parse_duration(found.get("budget", 10)).total_seconds()
            timeout = parse_duration(found.get("timeout", 5)).total_seconds()
        except ValueError as exc:
            raise ConfigError(f"enrich_defaults settings: {exc}") from None
        for key in ("prometheus_url", "traces_url", "loki_url"):
            url = found.get(key)
            if url is not None and not str(url).startswith(("http://", "https://")):
                raise ConfigError(f"enrich_defaults settings.{key} must be an http(s) URL")
        alert_expression = found.get("alert_expression", False)
        if not isinstance(alert_expression, bool):
            raise ConfigError("enrich_defaults settings.alert_expression must be true or false")
        log_dirs = found.get("log_dirs", [])
        if not isinstance(log_dirs, list) or not all(isinstance(d, str) and d.startswith("/") for d in log_dirs):
            raise ConfigError("enrich_defaults settings.log_dirs must be a list of absolute folder paths")
        backend = str(found.get("traces_backend", "tempo"))
        if backend not in {"tempo", "jaeger"}:
            raise ConfigError(f"enrich_defaults settings.traces_backend must be tempo or jaeger, not {backend!r}")
        return cls(
            budget=budget,
            timeout=min(timeout, budget),
            prometheus_url=str(found["prometheus_url"]) if found.get("prometheus_url") else None,
            traces_url=str(found["traces_url"]) if found.get("traces_url") else None,
            traces_backend=backend,
            loki_url=str(found["loki_url"]) if found.get("loki_url") else None,
            alert_expression=alert_expression,
            log_dirs=tuple(log_dirs),
            defaults=tuple(dict(e) for e in entries),
        )


def split_spec(spec: Mapping[str, Any], *, where: str = "enrich") -> tuple[str, Mapping[str, Any]]:
    """``{kind: {options}}`` → (kind, options); ``ConfigError`` for any other shape."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(f"{where}: each entry is one mapping like {{prometheus: {{query: ...}}}}")
    ((kind, options),) = spec.items()
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}.{kind}: options must be a mapping")
    return str(kind), options


def spec_key(kind: str, options: Mapping[str, Any]) -> str:
    return json.dumps({kind: options}, sort_keys=True, default=str)
