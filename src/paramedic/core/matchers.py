"""Alertmanager's label matchers (``severity=~"critical|page"``), parsed and evaluated as
Alertmanager does, so a matcher copied from a route or a silence means the same in a runbook.

The syntax is the one Alertmanager's configuration documents for ``matchers:``: a label name, one of
``=``, ``!=``, ``=~``, ``!~``, and a value that may be enclosed in double quotes. Inside the value,
``\\"`` is a double quote, ``\\n`` a line feed and ``\\\\`` a backslash; any other backslash is
literal. Whitespace around each token is dropped. A string may hold several matchers separated by
commas outside quotes, optionally wrapped in ``{…}``.

Evaluation follows Alertmanager too: an absent label has the value ``""`` (so ``team!="db"``
matches an alert without ``team``), and a regex is anchored at both ends.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class MatcherSyntaxError(ValueError):
    """A matcher string Alertmanager would refuse too; the message names the offending part."""


@lru_cache(maxsize=4096)
def _anchored(pattern: str) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern})")


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """One ``name op value`` condition on an alert's labels."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                object.__setattr__(self, "_regex", _anchored(self.value))
            except re.error as exc:
                raise MatcherSyntaxError(f"{self.name}{self.op}: regex does not compile: {exc}") from exc

    def matches(self, actual: str | None) -> bool:
        """Whether a label value satisfies this matcher (``None``: the label is absent, read as "")."""
        value = actual or ""
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op is MatchOp.REGEX else not hit

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.matches(labels.get(self.name))

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def _unescape(raw: str, original: str) -> str:
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    closed = not quoted
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                out.append("\n")
            elif ch in ('"', "\\"):
                out.append(ch)
            else:  # a spurious escape: the backslash is literal
                out.append("\\" + ch)
            continue
        if ch == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if closed or i < len(raw) - 1:
                raise MatcherSyntaxError(f"matcher value contains an unescaped double quote: {original}")
            closed = True
        else:
            out.append(ch)
    if not closed:
        raise MatcherSyntaxError(f"matcher value contains an unescaped double quote: {original}")
    return "".join(out)


def parse_matcher(text: str) -> LabelMatcher:
    """One matcher, ``name op value``; raises ``MatcherSyntaxError``."""
    m = _MATCHER.match(text)
    if m is None:
        raise MatcherSyntaxError(
            f"bad matcher format: {text.strip()!r} (expected name=value, name!=value, name=~regex or name!~regex)"
        )
    name, op, raw = m.groups()
    if raw == "":
        raise MatcherSyntaxError(f'matcher value is not present: {text.strip()!r} (write {name}{op}"" for empty)')
    return LabelMatcher(name, MatchOp(op), _unescape(raw, raw))


def _split(text: str) -> list[str]:
    tokens: list[str] = []
    token: list[str] = []
    inside = escaped = False
    for ch in text:
        if ch == "," and not inside:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if escaped:
                escaped = False
            else:
                inside = not inside
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    if last := "".join(token).strip():
        tokens.append(last)
    return tokens


def parse_matchers(text: str) -> list[LabelMatcher]:
    """A comma-separated list of matchers, optionally in braces: ``{foo="bar", dings!="bums"}``."""
    body = text.strip()
    body = body.removeprefix("{").removesuffix("}")
    return [parse_matcher(token) for token in _split(body)]


__all__ = ["LabelMatcher", "MatchOp", "MatcherSyntaxError", "parse_matcher", "parse_matchers"]
