"""Change-freeze windows: one-off spans, weekly recurrences in a time zone, and their config."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from paramedic.core.freeze import (
    FreezeWindow,
    Once,
    Weekday,
    Weekly,
    active_freeze,
    next_end,
    parse_freeze_windows,
    parse_timezone,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def weekly(days: set[Weekday], start: time, end: time, tz: str = "UTC") -> FreezeWindow:
    return FreezeWindow(name="w", when=Weekly(days=frozenset(days), start=start, end=end, tz=tz))


FRI, SAT, SUN = Weekday.FRI, Weekday.SAT, Weekday.SUN
# 2024-05-03 is a Friday; Berlin is UTC+2 in May.
BERLIN_FRI_EVENING = weekly({FRI, SAT}, time(18), time(23, 59), "Europe/Berlin")
NIGHT = weekly({FRI}, time(22), time(5, 59), "+02:00")


@pytest.mark.parametrize(
    ("window", "now", "span"),
    [
        pytest.param(
            BERLIN_FRI_EVENING,
            utc(2024, 5, 3, 16, 0),
            (utc(2024, 5, 3, 16), utc(2024, 5, 3, 22)),
            id="starts-at-local-start",
        ),
        pytest.param(BERLIN_FRI_EVENING, utc(2024, 5, 3, 15, 59, 59), None, id="before-start"),
        pytest.param(
            BERLIN_FRI_EVENING,
            utc(2024, 5, 3, 21, 59, 30),
            (utc(2024, 5, 3, 16), utc(2024, 5, 3, 22)),
            id="end-minute-is-frozen",
        ),
        pytest.param(BERLIN_FRI_EVENING, utc(2024, 5, 3, 22), None, id="after-end-minute"),
        pytest.param(
            BERLIN_FRI_EVENING,
            utc(2024, 5, 4, 17),
            (utc(2024, 5, 4, 16), utc(2024, 5, 4, 22)),
            id="second-day",
        ),
        pytest.param(BERLIN_FRI_EVENING, utc(2024, 5, 5, 17), None, id="sunday-not-listed"),
        pytest.param(
            NIGHT,
            utc(2024, 5, 4, 1),
            (utc(2024, 5, 3, 20), utc(2024, 5, 4, 4)),
            id="crosses-midnight-into-saturday",
        ),
        pytest.param(NIGHT, utc(2024, 5, 5, 1), None, id="saturday-night-not-listed"),
        pytest.param(
            weekly({SUN}, time(1), time(4, 59), "Europe/Berlin"),
            utc(2024, 3, 31, 2, 30),
            (utc(2024, 3, 31, 0), utc(2024, 3, 31, 3)),
            id="daylight-saving-day",
        ),
        pytest.param(
            FreezeWindow(name="o", when=Once(start=utc(2024, 1, 1), end=utc(2024, 1, 2))),
            utc(2024, 1, 1, 12),
            (utc(2024, 1, 1), utc(2024, 1, 2)),
            id="once-active",
        ),
        pytest.param(
            FreezeWindow(name="o", when=Once(start=utc(2024, 1, 1), end=utc(2024, 1, 2))),
            utc(2024, 1, 2),
            None,
            id="once-end-is-exclusive",
        ),
    ],
)
def test_occurrence(window: FreezeWindow, now: datetime, span: tuple[datetime, datetime] | None) -> None:
    assert window.occurrence(now) == span
    assert (active_freeze([window], now) is window) is (span is not None)


def test_end_with_seconds_freezes_only_that_second() -> None:
    second = timedelta(seconds=1)
    w = FreezeWindow(
        name="w",
        when=Weekly(days=frozenset({FRI}), start=time(9), end=time(17), precision=second),
    )
    assert w.occurrence(utc(2024, 5, 3, 17, 0, 0)) is not None
    assert w.occurrence(utc(2024, 5, 3, 17, 0, 1)) is None


def test_active_freeze_prefers_the_window_that_ends_last() -> None:
    short = FreezeWindow(name="short", when=Once(start=utc(2024, 1, 1), end=utc(2024, 1, 2)))
    long = FreezeWindow(name="long", when=Once(start=utc(2024, 1, 1), end=utc(2024, 1, 9)))
    assert active_freeze([short, long], utc(2024, 1, 1, 12)) is long
    assert active_freeze([], utc(2024, 1, 1)) is None


def test_next_end_follows_chained_windows() -> None:
    friday_all_day = weekly({FRI}, time(0), time(23, 59))
    weekend = weekly({SAT, SUN}, time(0), time(23, 59))
    now = utc(2024, 5, 3, 12)
    assert next_end([friday_all_day, weekend], now) == utc(2024, 5, 6)
    assert next_end([friday_all_day], now) == utc(2024, 5, 4)
    assert next_end([weekend], now) == now  # nothing active: lifts at once


def test_a_freeze_without_end_is_reported_as_endless() -> None:
    always = weekly(set(Weekday), time(0), time(23, 59))
    assert next_end([always], utc(2024, 5, 3)) is None


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        pytest.param("UTC", timedelta(0), id="utc"),
        pytest.param("Z", timedelta(0), id="z"),
        pytest.param("+02:00", timedelta(hours=2), id="offset"),
        pytest.param("-0530", -timedelta(hours=5, minutes=30), id="compact-offset"),
        pytest.param("UTC+2", timedelta(hours=2), id="utc-plus"),
        pytest.param("Europe/Berlin", timedelta(hours=2), id="iana-summer"),
    ],
)
def test_parse_timezone(text: str, offset: timedelta) -> None:
    assert utc(2024, 5, 3).astimezone(parse_timezone(text)).utcoffset() == offset


@pytest.mark.parametrize("text", ["Mars/Olympus", "+15:00", "+02:75", "../etc/passwd"])
def test_bad_timezone(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timezone(text)


# ---- configuration ---------------------------------------------------------------------------

CONFIG = """
- {name: year-end, start: 2024-12-20T00:00:00Z, end: "2025-01-02T09:00:00+01:00", reason: holidays}
- {name: weekend-evenings, days: [fri, Saturday], start: "18:00", end: "23:59",
   timezone: Europe/Berlin}
- {name: nightly, days: sun, start: "22:00:00", end: "05:59:59", timezone: "-05:00"}
"""


def test_parse_from_yaml() -> None:
    year_end, evenings, nightly = parse_freeze_windows(yaml.safe_load(CONFIG))
    assert year_end.when == Once(start=utc(2024, 12, 20), end=utc(2025, 1, 2, 8))
    assert year_end.reason == "holidays"
    assert evenings.when == Weekly(
        days=frozenset({FRI, Weekday.SAT}), start=time(18), end=time(23, 59), tz="Europe/Berlin"
    )
    assert isinstance(nightly.when, Weekly)
    assert nightly.when.precision == timedelta(seconds=1)
    assert nightly.when.days == frozenset({SUN})
    assert nightly.occurrence(datetime(2024, 5, 6, 5, 59, 59, tzinfo=timezone(-timedelta(hours=5))))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            yaml.safe_load("{name: x, days: [fri], start: 18:00, end: '20:00'}"),
            "quote the time",
            id="yaml-sexagesimal-time",
        ),
        pytest.param(
            {"name": "x", "days": ["fry"], "start": "18:00", "end": "20:00"},
            "unknown day 'fry'",
            id="unknown-day",
        ),
        pytest.param(
            {"name": "x", "days": ["fri"], "start": "25:00", "end": "20:00"},
            "not a time of day",
            id="hour-out-of-range",
        ),
        pytest.param(
            {"name": "x", "days": ["fri"], "start": "6pm", "end": "20:00"},
            "write a clock time",
            id="not-a-clock-time",
        ),
        pytest.param(
            {"name": "x", "days": ["fri"], "start": "18:00", "end": "18:00"},
            "cannot start and end at the same time",
            id="empty-weekly",
        ),
        pytest.param(
            {"name": "x", "days": [], "start": "18:00", "end": "20:00"},
            "at least one day",
            id="no-days",
        ),
        pytest.param(
            {"name": "x", "days": ["fri"], "start": "18:00", "end": "20:00", "timezone": "Mars/X"},
            "unknown time zone",
            id="unknown-zone",
        ),
        pytest.param(
            {"name": "x", "start": "2024-12-20T00:00:00", "end": "2024-12-21T00:00:00Z"},
            "must carry a time zone",
            id="naive-datetime",
        ),
        pytest.param(
            {"name": "x", "start": "2024-12-21T00:00:00Z", "end": "2024-12-20T00:00:00Z"},
            "must end after it starts",
            id="end-before-start",
        ),
        pytest.param(
            {"name": "x", "start": "next friday", "end": "2024-12-20T00:00:00Z"},
            "write a date and time",
            id="not-a-datetime",
        ),
        pytest.param(
            {
                "name": "x",
                "start": "2024-12-20T00:00:00Z",
                "end": "2024-12-21T00:00:00Z",
                "timezone": "Europe/Berlin",
            },
            "timezone applies to weekly windows",
            id="timezone-on-absolute",
        ),
        pytest.param(
            {"name": "x", "start": "2024-12-20T00:00:00Z", "end": "2024-12-21T00:00:00Z", "x": 1},
            "Extra inputs are not permitted",
            id="unknown-key",
        ),
    ],
)
def test_bad_config(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_freeze_windows([entry])
