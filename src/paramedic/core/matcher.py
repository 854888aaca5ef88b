"""Which runbooks match an alert, through an index so that match time does not grow with the
number of runbooks.

Match values follow DESIGN §3: a plain string is equality, a list is "any of", ``~regex`` is a
full regex match and ``!value`` is "not equal". Alertmanager's matchers (``match.matchers``,
``core.matchers``) hold beside them. Every runbook with at least one plain equality (on
``alertname`` or a label, in either syntax) is reachable only through the index; the few without
one are checked on every alert.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from paramedic.core.alerts import Alert
from paramedic.core.matchers import LabelMatcher, MatchOp
from paramedic.core.runbooks import MatchValue, Runbook

_NAME_KEY = "\x00alertname"
_SOURCE_KEY = "\x00source"


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _plain(value: str) -> bool:
    return not value.startswith(("~", "!"))


def value_matches(expected: MatchValue, actual: str | None) -> bool:
    """Evaluate one match value against one actual value (``None`` when the label is absent)."""
    if isinstance(expected, list):
        return any(value_matches(v, actual) for v in expected)
    if expected.startswith("!"):
        return actual != expected[1:]
    if actual is None:
        return False
    if expected.startswith("~"):
        return _regex(expected[1:]).fullmatch(actual) is not None
    return actual == expected


def _equalities(expected: MatchValue) -> list[str] | None:
    """The plain values an index can key on, or ``None`` if the value is not pure equality."""
    values = expected if isinstance(expected, list) else [expected]
    return values if values and all(_plain(v) for v in values) else None


def label_value(alert: Alert, name: str) -> str | None:
    """The value a matcher on ``name`` reads: a label; ``alertname`` is the alert's name, which
    every source sets (the generic source may not repeat it among the labels)."""
    return alert.name if name == "alertname" else alert.labels.get(name)


def runbook_matches(runbook: Runbook, alert: Alert) -> bool:
    m = runbook.match
    if m.alertname is not None and not value_matches(m.alertname, alert.name):
        return False
    if m.source is not None and not value_matches(m.source, alert.source):
        return False
    if not all(lm.matches(label_value(alert, lm.name)) for lm in m.label_matchers):
        return False
    return all(value_matches(v, alert.labels.get(k)) for k, v in m.labels.items())


def pinned(matchers: Iterable[LabelMatcher]) -> dict[str, str]:
    """Labels that Alertmanager-style matchers pin to one non-empty value (``name="value"``)."""
    return {m.name: m.value for m in matchers if m.op is MatchOp.EQUAL and m.value}


@dataclass(frozen=True, slots=True)
class MatchIndex:
    """An immutable index over a set of runbooks; build once per runbook reload."""

    runbooks: tuple[Runbook, ...]
    _index: dict[str, dict[str, tuple[int, ...]]]
    _unindexed: tuple[int, ...]

    @classmethod
    def build(cls, runbooks: Iterable[Runbook]) -> MatchIndex:
        books = tuple(runbooks)
        index: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        unindexed: list[int] = []
        for pos, rb in enumerate(books):
            key, values = _best_key(rb)
            if key is None:
                unindexed.append(pos)
                continue
            for v in values:
                index[key][v].append(pos)
        frozen = {k: {v: tuple(p) for v, p in d.items()} for k, d in index.items()}
        return cls(books, frozen, tuple(unindexed))

    def candidates(self, alert: Alert) -> list[int]:
        found: set[int] = set(self._unindexed)
        for key, by_value in self._index.items():
            if key == _NAME_KEY:
                actual: str | None = alert.name
            elif key == _SOURCE_KEY:
                actual = alert.source
            else:
                actual = alert.labels.get(key)
            if actual is not None:
                found.update(by_value.get(actual, ()))
        return sorted(found)

    def match(self, alert: Alert) -> list[Runbook]:
        """Matching runbooks, highest ``priority`` first, then by name (stable and deterministic)."""
        hits = [self.runbooks[p] for p in self.candidates(alert)]
        hits = [rb for rb in hits if runbook_matches(rb, alert)]
        return sorted(hits, key=lambda rb: (-rb.priority, rb.name))

    def names(self) -> Sequence[str]:
        return [rb.name for rb in self.runbooks]


def _best_key(rb: Runbook) -> tuple[str | None, list[str]]:
    if rb.match.alertname is not None and (values := _equalities(rb.match.alertname)):
        return _NAME_KEY, values
    for label, expected in sorted(rb.match.labels.items()):
        if values := _equalities(expected):
            return label, values
    for label, value in sorted(pinned(rb.match.label_matchers).items()):
        return (_NAME_KEY if label == "alertname" else label), [value]
    if rb.match.source is not None and (values := _equalities(rb.match.source)):
        return _SOURCE_KEY, values
    return None, []
