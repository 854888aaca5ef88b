"""Alertmanager ``time_intervals`` as freeze windows, with Alertmanager's semantics.

The intervals and the instants inside and outside them are the cases of Alertmanager's own tests
(``timeinterval/timeinterval_test.go``: ``timeIntervalTestCases``, ``yamlUnmarshalTestCases``,
``completeTestCases``) and the examples of its configuration documentation ("time_interval");
instants are written as there (Go's RFC 822 with numeric zone).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from paramedic.core.freeze import active_freeze, next_end, parse_freeze_windows
from paramedic.core.timeintervals import (
    Range,
    TimeInterval,
    TimeIntervalError,
    parse_time_interval,
    parse_time_intervals,
)


def at(text: str) -> datetime:
    return datetime.strptime(text, "%d %b %y %H:%M %z")


BUSINESS = "- weekdays: ['monday:friday']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'\n"
LAST_WEEK_Q1 = """\
- weekdays: ['monday:friday', 'sunday']
  months: ['january:march']
  days_of_month: ['-7:-1']
  years: ['2020:2025', '2030:2035']
  times:
    - start_time: '09:00'
      end_time: '17:00'
"""
COMPLETE = """\
- weekdays: ['monday:wednesday', 'saturday', 'sunday']
  times:
    - start_time: '13:00'
      end_time: '15:00'
  days_of_month: ['1', '10', '20:-1']
  years: ['2020:2023']
  months: ['january:march']
"""
CASES = [
    pytest.param("- {}\n", ["02 Jan 06 15:04 +0000", "03 Jan 07 10:04 +0000"], [], id="empty-matches-all"),
    pytest.param(
        BUSINESS,
        ["04 May 20 15:04 +0000", "05 May 20 10:04 +0000", "09 Jun 20 09:04 +0000", "08 Jul 20 16:59 +0000"],
        ["03 May 20 15:04 +0000", "04 May 20 08:59 +0000", "05 May 20 05:00 +0000", "08 Jul 20 05:00 +0000"],
        id="business-hours",
    ),
    pytest.param(
        "- {days_of_month: ['4:6'], months: ['4'], years: ['2020']}\n",
        ["04 Apr 20 15:04 +0000", "05 Apr 20 00:00 +0000", "06 Apr 20 23:05 +0000"],
        ["03 May 18 15:04 +0000", "03 Apr 20 23:59 +0000", "06 Apr 19 23:59 +0000", "07 Apr 20 00:00 +0000"],
        id="easter-2020",
    ),
    pytest.param(
        "- {days_of_month: ['-3:-1']}\n",
        ["31 Jan 20 15:04 +0000", "29 Jan 20 15:04 +0000", "30 Jun 20 00:00 +0000", "29 Feb 20 23:05 +0000"],
        ["27 Jan 20 15:04 +0000", "07 Apr 20 00:00 +0000", "01 Mar 20 00:00 +0000"],
        id="last-three-days",
    ),
    pytest.param(
        BUSINESS + "  location: Australia/Sydney\n",
        ["06 Apr 21 13:00 +1000"],
        ["06 Apr 21 13:00 +0000"],
        id="location-sydney",
    ),
    pytest.param(
        BUSINESS + "  months: ['november']\n  location: Australia/Sydney\n",
        ["01 Nov 21 09:00 +1100", "31 Oct 21 22:00 +0000"],
        ["31 Oct 21 21:00 +0000"],
        id="location-daylight-saving",
    ),
    pytest.param(
        LAST_WEEK_Q1,
        ["27 Jan 21 09:00 +0000", "28 Jan 21 16:59 +0000", "31 Mar 25 13:00 +0000", "31 Jan 35 13:00 +0000"],
        ["30 Jan 21 13:00 +0000", "01 Apr 21 13:00 +0000", "30 Jan 26 13:00 +0000", "31 Jan 35 17:01 +0000"],
        id="last-week-of-q1",
    ),
    pytest.param(
        COMPLETE,
        ["10 Jan 21 13:00 +0000", "30 Jan 21 14:24 +0000"],
        ["09 Jan 21 13:00 +0000", "20 Jan 21 12:59 +0000", "02 Feb 21 13:00 +0000"],
        id="complete",
    ),
    pytest.param(
        "- {days_of_month: ['30:31'], years: ['2020:2023'], months: ['february']}\n",
        [],
        ["28 Feb 21 13:00 +0000"],
        id="no-broken-clamping",
    ),
    # the configuration documentation's example, unquoted as there (YAML 1.1 reads 20:00 as 1200)
    pytest.param(
        "- times:\n    - start_time: 20:00\n      end_time: 23:00\n"
        "  weekdays: ['monday:wednesday','saturday', 'sunday']\n",
        ["07 Dec 26 21:30 +0000", "05 Dec 26 20:00 +0000"],
        ["07 Dec 26 23:00 +0000", "10 Dec 26 21:00 +0000"],
        id="docs-unquoted-times",
    ),
]


@pytest.mark.parametrize(("text", "inside", "outside"), CASES)
def test_contains_like_alertmanager(text: str, inside: list[str], outside: list[str]) -> None:
    (window,) = parse_freeze_windows([{"name": "am", "time_intervals": yaml.safe_load(text)}])
    assert [s for s in inside if window.occurrence(at(s)) is None] == []
    assert [s for s in outside if window.occurrence(at(s)) is not None] == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"times": [{"start_time": "01:99", "end_time": "23:59"}]}, "01:99", id="bad-start"),
        pytest.param({"times": [{"start_time": "00:00", "end_time": "99:99"}]}, "99:99", id="bad-end"),
        pytest.param({"times": [{"start_time": "12:30", "end_time": "24:01"}]}, "24:01", id="end-past-24"),
        pytest.param({"times": [{"start_time": "17:31", "end_time": "17:31"}]}, "before end_time", id="same"),
        pytest.param({"times": [{"start_time": "09:30", "end_time": "07:41"}]}, "before end_time", id="backwards"),
        pytest.param({"times": [{"start_time": "14:03"}]}, "both start_time and end_time", id="no-end"),
        pytest.param({"weekdays": ["friday:monday"]}, "sunday to saturday", id="weekday-order"),
        pytest.param({"weekdays": ["blurgsday:flurgsday"]}, "blurgsday is not a valid weekday", id="weekday-name"),
        pytest.param({"weekdays": ["1:3"]}, "1 is not a valid weekday", id="weekday-number"),
        pytest.param({"weekdays": ["-2:-1"]}, "-2 is not a valid weekday", id="weekday-negative"),
        pytest.param({"days_of_month": ["0"]}, "0 is not a valid day of the month", id="day-zero"),
        pytest.param({"days_of_month": ["-50:-20"]}, "-50 is not a valid day of the month", id="day-low"),
        pytest.param({"days_of_month": ["1:50"]}, "50 is not a valid day of the month", id="day-high"),
        pytest.param({"days_of_month": ["-15:5"]}, "end day must be negative", id="day-sign"),
        pytest.param({"days_of_month": ["10:-25"]}, "end day -25 is always before start day 10", id="day-order"),
        pytest.param({"months": ["martius:june"]}, "martius is not a valid month", id="month-start"),
        pytest.param({"months": ["march:junius"]}, "junius is not a valid month", id="month-end"),
        pytest.param({"months": ["december:january"]}, "end month 1 is before start month 12", id="month-order"),
        pytest.param({"years": ["2022:2020"]}, "end year 2020 is before start year 2022", id="year-order"),
        pytest.param({"location": "Mars/Olympus"}, "unknown location", id="bad-location"),
    ],
)
def test_refuses_what_alertmanager_refuses(raw: dict[str, object], message: str) -> None:
    with pytest.raises(TimeIntervalError, match=message):
        parse_time_interval(raw)


def test_out_of_bound_days_are_clamped_to_the_month() -> None:
    """Alertmanager's test builds this interval directly (its parser refuses -31:31)."""
    june = TimeInterval(months=(Range(6, 6),), days_of_month=(Range(-31, 31),))
    assert [june.contains(at(s)) for s in ("30 Jun 20 00:00 +0000", "01 Jun 20 00:00 +0000")] == [True, True]
    assert [june.contains(at(s)) for s in ("31 May 20 00:00 +0000", "01 Jul 20 00:00 +0000")] == [False, False]


def test_accepted_forms_from_alertmanager_tests() -> None:
    assert parse_time_interval({"days_of_month": ["1:-1"]}).days_of_month[0].end == -1
    assert parse_time_interval({"months": ["January:december"]}).months[0].end == 12
    assert parse_time_interval({"years": ["2020:2022"], "location": "Australia/Sydney"}).location == "Australia/Sydney"
    assert parse_time_interval({"times": [{"start_time": "00:00", "end_time": "24:00"}]}).times == ((0, 1440),)


def test_a_config_error_names_the_entry_and_the_value() -> None:
    with pytest.raises(ValidationError, match="blurgsday is not a valid weekday"):
        parse_freeze_windows([{"name": "x", "time_intervals": [{"weekdays": ["blurgsday"]}]}])


def test_time_intervals_stand_alone() -> None:
    with pytest.raises(ValidationError, match="stands alone"):
        parse_freeze_windows([{"name": "x", "days": ["fri"], "time_intervals": [{}]}])


def test_the_freeze_ends_when_alertmanager_would_unmute() -> None:
    """next_end: Friday 16:30 in Sydney, business hours → the freeze lifts at 17:00 Sydney time."""
    windows = parse_freeze_windows(
        [{"name": "biz", "time_intervals": yaml.safe_load(BUSINESS + "  location: Australia/Sydney\n")}]
    )
    now = at("09 Apr 21 16:30 +1000")
    assert active_freeze(windows, now) is windows[0]
    assert next_end(windows, now) == at("09 Apr 21 17:00 +1000")


def test_adjacent_ranges_chain_across_midnight() -> None:
    raw = [
        {"weekdays": ["friday:saturday"]},
        {"weekdays": ["sunday"], "times": [{"start_time": "00:00", "end_time": "06:00"}]},
    ]
    windows = parse_freeze_windows([{"name": "weekend", "time_intervals": raw}])
    assert next_end(windows, at("04 Dec 26 10:00 +0000")) == at("06 Dec 26 06:00 +0000")


TIMES = [("00:00", "24:00"), ("09:00", "17:00"), ("23:30", "24:00"), ("01:30", "03:00")]
YEARS_2020S = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))
INTERVAL = st.fixed_dictionaries(
    {},
    optional={
        "weekdays": st.lists(st.sampled_from(["monday:friday", "saturday", "sunday", "tuesday:thursday"]), max_size=2),
        "days_of_month": st.lists(st.sampled_from(["1:5", "-3:-1", "10", "20:-1", "1:-1"]), max_size=2),
        "months": st.lists(st.sampled_from(["january:march", "may", "12", "2:11"]), max_size=2),
        "times": st.lists(
            st.sampled_from([{"start_time": a, "end_time": b} for a, b in TIMES]),
            max_size=2,
        ),
        "location": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"]),
    },
)


@given(
    st.lists(INTERVAL, min_size=1, max_size=3),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
)
def test_a_piece_is_frozen_throughout_and_the_end_is_not(raw: list[dict[str, object]], naive: datetime) -> None:
    """Safety over the schedule: every instant of a reported occurrence is inside the intervals,
    and the instant next_end returns is outside them."""
    intervals = parse_time_intervals(raw)
    now = naive.replace(tzinfo=UTC)
    span = intervals.occurrence(now)
    if span is None:
        assert not any(i.contains(now) for i in intervals.intervals)
        return
    start, end = span
    assert start <= now < end
    probe = now
    while probe < end:
        assert any(i.contains(probe) for i in intervals.intervals), probe
        probe += timedelta(minutes=29)
    windows = parse_freeze_windows([{"name": "x", "time_intervals": raw}])
    free = next_end(windows, now)
    assert free is None or not any(i.contains(free) for i in intervals.intervals)
