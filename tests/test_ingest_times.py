"""Alert times: RFC 3339 with any offset and a fraction of up to nine digits is read as the right instant.

Senders write times differently: Alertmanager (Go) in UTC with nanoseconds, Grafana in the server's
local offset with microseconds (its documented webhook example), PagerDuty in UTC with ``Z``. A time
read two hours off makes ``firing_for``, ``max_age`` and MTTR wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paramedic.core.errors import PayloadError
from paramedic.ingest import grafana
from paramedic.ingest.common import parse_time

# Grafana's webhook notifier documentation, "Webhook JSON payload" (first alert, abridged to what
# the parser reads): the start time is written in the server's offset, +02:00, with microseconds.
GRAFANA_DOC_EXAMPLE = {
    "receiver": "My Super Webhook",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        }
    ],
    "groupLabels": {"alertname": "High memory usage"},
    "commonLabels": {"team": "blue"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": '{}:{alertname="High memory usage"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:2]  (blue)",
    "state": "alerting",
    "message": "**Firing**",
}


def test_grafana_documented_example_keeps_its_offset() -> None:
    (alert,) = grafana.parse(GRAFANA_DOC_EXAMPLE)
    assert alert.starts_at == datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("2021-10-12T09:51:03.157076+02:00", datetime(2021, 10, 12, 7, 51, 3, 157076), id="grafana-doc"),
        pytest.param("2021-10-12T09:51:00.123-05:00", datetime(2021, 10, 12, 14, 51, 0, 123000), id="millis-negative"),
        pytest.param("2026-11-23T19:06:20.632987654Z", datetime(2026, 11, 23, 19, 6, 20, 632987), id="go-nanos"),
        pytest.param("2026-11-23t19:06:20.5z", datetime(2026, 11, 23, 19, 6, 20, 500000), id="lower-case"),
        pytest.param("2026-11-23T19:06:20+05:45", datetime(2026, 11, 23, 13, 21, 20), id="nepal-no-fraction"),
        pytest.param("2026-11-23T19:06:20", datetime(2026, 11, 23, 19, 6, 20), id="no-offset-is-utc"),
    ],
)
def test_examples(raw: str, expected: datetime) -> None:
    assert parse_time(raw, "t") == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    ["yesterday", "2026-13-01T00:00:00Z", "2026-11-23T25:06:20Z", "0001-01-01T00:00:00+02:00", "", "1700000000"],
)
def test_malformed_times_name_the_field(raw: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_time(raw, "alerts[0].startsAt")
    assert info.value.field == "alerts[0].startsAt"


offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)
instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC))


def _offset(minutes: int) -> str:
    if minutes == 0:
        return "Z"
    sign = "+" if minutes > 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@given(instant=instants, nanos=st.integers(0, 999_999_999), digits=st.integers(0, 9), offset=offsets)
def test_any_offset_and_fraction_is_the_same_instant(instant: datetime, nanos: int, digits: int, offset: int) -> None:
    """Write an instant in any offset with a fraction of 0–9 digits: it reads back as that instant,
    the fraction cut (never rounded) to microseconds."""
    instant = instant.replace(microsecond=0)
    fraction = f"{nanos:09d}"[:digits]
    local = instant.astimezone(timezone(timedelta(minutes=offset)))
    raw = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + _offset(offset)
    micros = int(fraction.ljust(9, "0")[:6]) if digits else 0
    assert parse_time(raw, "t") == instant + timedelta(microseconds=micros)


@given(instant=instants, offset=offsets)
def test_isoformat_round_trips(instant: datetime, offset: int) -> None:
    local = instant.astimezone(timezone(timedelta(minutes=offset)))
    parsed = parse_time(local.isoformat(), "t")
    assert parsed == instant
    assert parsed.utcoffset() == timedelta(0)
