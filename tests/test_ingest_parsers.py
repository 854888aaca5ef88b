"""Alert sources: the real Alertmanager 0.25 payloads and the generic format; malformed input
names the failing field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from paramedic.core.alerts import AlertStatus
from paramedic.core.errors import PayloadError
from paramedic.ingest import alertmanager, generic
from tests.support import FIXTURES

NOW = datetime(2026, 11, 23, 19, 10, tzinfo=UTC)


def load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def test_real_firing_payload() -> None:
    alerts = alertmanager.parse(load("alertmanager-0.25-firing.json"))
    assert [a.fingerprint for a in alerts] == ["d8233058e3850176", "db2bd1dadbee4c1d"]
    a = alerts[0]
    assert a.status is AlertStatus.FIRING
    assert a.ends_at is None
    assert a.starts_at == datetime(2026, 11, 23, 19, 6, 20, 632000, tzinfo=UTC)
    assert a.labels["instance"] == "127.0.0.1:18081"
    assert a.service == "web"
    assert a.group_key == '{}:{alertname="InstanceDown", service="web"}'


def test_real_partially_resolved_payload() -> None:
    alerts = alertmanager.parse(load("alertmanager-0.25-partially-resolved.json"))
    assert [str(a.status) for a in alerts] == ["resolved", "firing"]
    assert alerts[0].ends_at == datetime(2026, 11, 23, 19, 7, 36, 632000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda b: b.pop("alerts"), "alerts", id="no-alerts"),
        pytest.param(lambda b: b.__setitem__("version", "3"), "version", id="wrong-version"),
        pytest.param(lambda b: b["alerts"][0].__setitem__("startsAt", "yesterday"), "alerts[0].startsAt", id="time"),
        pytest.param(lambda b: b["alerts"][1]["labels"].pop("alertname"), "alerts[1].labels.alertname", id="name"),
        pytest.param(lambda b: b["alerts"][0].__setitem__("status", "exploded"), "alerts[0].status", id="status"),
        pytest.param(lambda b: b["alerts"][0]["labels"].__setitem__("x", ["list"]), "alerts[0].labels.x", id="label"),
    ],
)
def test_malformed_alertmanager_payload_names_the_field(mutate: object, field: str) -> None:
    body = load("alertmanager-0.25-firing.json")
    mutate(body)  # type: ignore[operator]
    with pytest.raises(PayloadError) as info:
        alertmanager.parse(body)
    assert info.value.field == field


def test_generic_single_and_list() -> None:
    one = generic.parse({"name": "DiskFull", "labels": {"host": "a"}}, now=NOW)
    assert one[0].starts_at == NOW
    assert one[0].labels["alertname"] == "DiskFull"
    many = generic.parse(
        [{"name": "A", "fingerprint": "fp1", "status": "resolved", "starts_at": "2026-11-23T19:00:00Z"}, {"name": "B"}],
        now=NOW,
    )
    assert many[0].fingerprint == "fp1"
    assert many[0].status is AlertStatus.RESOLVED


def test_generic_fingerprint_is_stable_and_label_order_free() -> None:
    a = generic.parse({"name": "A", "labels": {"x": "1", "y": "2"}}, now=NOW)[0]
    b = generic.parse({"name": "A", "labels": {"y": "2", "x": "1"}}, now=NOW)[0]
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"labels": {}}, "body.name", id="no-name"),
        pytest.param({"name": "A", "bogus": 1}, "body.bogus", id="unknown-field"),
        pytest.param([{"name": "A"}, {"name": 5}], "[1].name", id="bad-second"),
        pytest.param([], "body", id="empty-list"),
    ],
)
def test_generic_errors(body: object, field: str) -> None:
    with pytest.raises(PayloadError) as info:
        generic.parse(body, now=NOW)
    assert info.value.field == field
