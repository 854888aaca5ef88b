"""The indexed matcher: DESIGN §3 match semantics, and the index agrees with a full scan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.matcher import MatchIndex, runbook_matches, value_matches
from paramedic.core.runbooks import Runbook

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rb(name: str, match: dict[str, object], priority: int = 0) -> Runbook:
    return Runbook.model_validate({"name": name, "owner": "t", "match": match, "priority": priority})


def alert(name: str, **labels: str) -> Alert:
    return Alert(
        source="generic",
        fingerprint="f",
        name=name,
        status=AlertStatus.FIRING,
        starts_at=T0,
        labels={"alertname": name, **labels},
    )


@pytest.mark.parametrize(
    ("expected", "actual", "result"),
    [
        pytest.param("web", "web", True, id="equal"),
        pytest.param("web", "db", False, id="not-equal"),
        pytest.param(["a", "b"], "b", True, id="list-any-of"),
        pytest.param(["a", "b"], "c", False, id="list-none"),
        pytest.param("~web-[0-9]+", "web-12", True, id="regex-full"),
        pytest.param("~web", "web-12", False, id="regex-is-anchored"),
        pytest.param("!prod", "staging", True, id="not-value"),
        pytest.param("!prod", "prod", False, id="not-value-equal"),
        pytest.param("!prod", None, True, id="not-value-absent"),
        pytest.param("web", None, False, id="absent-label"),
    ],
)
def test_value_semantics(expected: str | list[str], actual: str | None, result: bool) -> None:
    assert value_matches(expected, actual) is result


def test_index_finds_by_alertname_label_and_unindexed() -> None:
    books = [
        rb("by-name", {"alertname": "WorkerHung"}),
        rb("by-label", {"labels": {"service": "payments"}}),
        rb("regex-only", {"alertname": "~Disk.*"}),
        rb("other", {"alertname": "Other"}),
    ]
    idx = MatchIndex.build(books)
    assert [r.name for r in idx.match(alert("WorkerHung", service="payments"))] == ["by-label", "by-name"]
    assert [r.name for r in idx.match(alert("DiskFull"))] == ["regex-only"]
    assert idx.match(alert("Nothing")) == []


def test_priority_orders_matches() -> None:
    idx = MatchIndex.build([rb("low", {"alertname": "A"}), rb("high", {"alertname": "A"}, priority=5)])
    assert [r.name for r in idx.match(alert("A"))] == ["high", "low"]


def test_candidates_do_not_grow_with_unrelated_runbooks() -> None:
    books = [rb(f"rb-{i}", {"alertname": f"Alert{i}"}) for i in range(5000)]
    idx = MatchIndex.build(books)
    assert idx.candidates(alert("Alert42")) == [42]


names = st.sampled_from(["A", "B", "C"])
values = st.sampled_from(["x", "y", "z"])
match_value = st.one_of(
    values,
    st.lists(values, min_size=1, max_size=2),
    values.map(lambda v: "!" + v),
    values.map(lambda v: "~" + v + "|q"),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), names, names.map(lambda n: "~" + n)),
            st.dictionaries(st.sampled_from(["service", "env"]), match_value, max_size=2),
        ),
        min_size=1,
        max_size=12,
    ),
    names,
    st.dictionaries(st.sampled_from(["service", "env"]), values, max_size=2),
)
def test_index_agrees_with_full_scan(
    specs: list[tuple[str | None, dict[str, object]]], name: str, labels: dict[str, str]
) -> None:
    books = []
    for i, (alertname, lbls) in enumerate(specs):
        m: dict[str, object] = {"labels": lbls}
        if alertname is not None:
            m["alertname"] = alertname
        books.append(rb(f"rb-{i}", m))
    a = alert(name, **labels)
    expected = sorted(r.name for r in books if runbook_matches(r, a))
    assert sorted(r.name for r in MatchIndex.build(books).match(a)) == expected
