"""Which sinks hear of an incident: a routing tree over owner, service and labels, modelled on
Alertmanager's ``route:`` (a root with a default receiver, child routes with ``matchers``, tried in
order, the first match wins unless it says ``continue: true``, a child without a receiver inherits
its parent's). A receiver here is a sink name, or a list of them.

The labels a route sees are the alert's, with ``owner`` and ``service`` set by paramedic: the owner
is the matching runbook's, else the one the ``owners:`` map gives the service, else empty. An
alert's own ``owner`` label is never trusted for routing (an alert must not page another team
by naming it). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from paramedic.core.matchers import LabelMatcher, MatcherSyntaxError, parse_matchers


class Owner(BaseModel):
    """A team that owns services: how to reach it, and which services are its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    contact: str = Field(default="", max_length=500, description="who to call: a channel, a rota, an address")
    services: list[str] = Field(default_factory=list)


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    receiver: str | list[str] | None = None
    matchers: list[str] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                parse_matchers(text)
            except MatcherSyntaxError as exc:
                raise ValueError(f"matcher {text!r}: {exc}") from None
        return value

    @property
    def receivers(self) -> list[str]:
        if self.receiver is None:
            return []
        return [self.receiver] if isinstance(self.receiver, str) else list(self.receiver)

    @property
    def parsed(self) -> list[LabelMatcher]:
        return [m for text in self.matchers for m in parse_matchers(text)]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name)) for m in self.parsed)

    def names(self) -> set[str]:
        """Every receiver named anywhere in the tree."""
        return {*self.receivers, *(n for r in self.routes for n in r.names())}


def route(tree: Route, labels: Mapping[str, str]) -> list[str]:
    """The receivers for ``labels``, in tree order without repeats (the root always matches)."""
    return list(dict.fromkeys(_walk(tree, labels, tree.receivers)))


def _walk(node: Route, labels: Mapping[str, str], inherited: Sequence[str]) -> list[str]:
    own = node.receivers or list(inherited)
    found: list[str] = []
    for child in node.routes:
        if child.matches(labels):
            found += _walk(child, labels, own)
            if not child.continue_:
                break
    return found or own


def owner_of_service(owners: Mapping[str, Owner], service: str) -> str:
    """The owner the ``owners:`` map names for ``service``, or ""."""
    for name, owner in owners.items():
        if service and service in owner.services:
            return name
    return ""


def routing_labels(labels: Mapping[str, str], *, owner: str, service: str) -> dict[str, str]:
    """The alert's labels with paramedic's own ``owner`` and ``service`` in place of any it carried."""
    return {**labels, "owner": owner, "service": service}
