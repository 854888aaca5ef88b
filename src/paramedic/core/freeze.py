"""Change-freeze windows (DESIGN §4, second guardrail): while one is active, nothing runs.

A window is either a one-off span between two absolute instants (``Once``; the end is
exclusive) or a weekly recurrence (``Weekly``): on the named days, from a local start time to a
local end time in a time zone. A weekly ``end`` names the last frozen minute (or second, if
given with seconds), so ``"18:00"``-``"23:59"`` freezes through 23:59:59; an end earlier than
the start crosses midnight into the next day. Time zones are a UTC offset (``+02:00``) or an
IANA name (``Europe/Berlin``) read through ``zoneinfo``; daylight-saving changes follow the zone.

A third kind is an Alertmanager ``time_intervals`` list (``core.timeintervals``), with
Alertmanager's semantics, so a mute-time interval can be pasted as it is.

Configuration (``automation.freeze`` in ``paramedic.yaml``) is parsed by
``parse_freeze_windows``::

    - {name: year-end, start: 2024-12-20T00:00:00Z, end: 2025-01-02T09:00:00Z}
    - {name: weekend-evenings, days: [fri, sat], start: "18:00", end: "23:59",
       timezone: Europe/Berlin}
    - name: offhours                      # Alertmanager's time_interval, as in its config
      time_intervals:
        - weekdays: ['monday:friday']
          times: [{start_time: "18:00", end_time: "24:00"}]
          location: Europe/Berlin
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from paramedic.core.timeintervals import TimeIntervalError, TimeIntervals, parse_time_intervals


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEK = tuple(Weekday)  # in date.weekday() order: Monday is 0
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")


@lru_cache(maxsize=256)
def parse_timezone(text: str) -> tzinfo:
    """``UTC``, ``Z``, ``+02:00``, ``-0530``, ``UTC+2`` or an IANA name like ``Europe/Berlin``."""
    raw = text.strip()
    if raw.upper() in {"UTC", "Z", "GMT"}:
        return UTC
    m = _OFFSET.match(raw)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise ValueError(f"UTC offset {text!r} is out of range (-14:00 to +14:00)")
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {text!r}: give an offset like +02:00 or a name like Europe/Berlin"
        ) from exc


def _aware(at: datetime, what: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must carry a time zone, e.g. 2024-12-20T00:00:00Z")
    return at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Once:
    """A one-off freeze over ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware(self.start, "a freeze start"))
        object.__setattr__(self, "end", _aware(self.end, "a freeze end"))
        if self.end <= self.start:
            raise ValueError("a freeze window must end after it starts")

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        return (self.start, self.end) if self.start <= now < self.end else None


@dataclass(frozen=True, slots=True)
class Weekly:
    """Every week on ``days``, from ``start`` through ``end`` (inclusive, see module doc).

    ``precision`` is how much of the ``end`` clock reading is frozen: a minute for ``"23:59"``.
    """

    days: frozenset[Weekday]
    start: time
    end: time
    tz: str = "UTC"
    precision: timedelta = timedelta(minutes=1)
    _zone: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("a weekly freeze needs at least one day, e.g. days: [fri, sat]")
        if self.start == self.end:
            raise ValueError("a weekly freeze cannot start and end at the same time")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("give the time zone of a weekly freeze as tz, not on the times")
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "_zone", parse_timezone(self.tz))

    def _span(self, day: date) -> tuple[datetime, datetime]:
        """The UTC span of the occurrence that starts on local ``day``."""
        end_day = day if self.end > self.start else day + timedelta(days=1)
        start = datetime.combine(day, self.start, tzinfo=self._zone)
        end = datetime.combine(end_day, self.end, tzinfo=self._zone) + self.precision
        return start.astimezone(UTC), end.astimezone(UTC)

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        today = now.astimezone(self._zone).date()
        # An occurrence lasts at most a day, so it started today or yesterday (local time);
        # two days back covers a daylight-saving shift at the edge.
        for back in (0, 1, 2):
            day = today - timedelta(days=back)
            if _WEEK[day.weekday()] not in self.days:
                continue
            start, end = self._span(day)
            if start <= now < end:
                return start, end
        return None


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """A named change freeze; ``reason`` is shown to people whose action it stops."""

    name: str
    when: Once | Weekly | TimeIntervals
    reason: str = ""

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The ``(start, end)`` in UTC of the occurrence active at ``now``, if any."""
        return self.when.occurrence(_aware(now, "now"))


def active_freeze(windows: Iterable[FreezeWindow], now: datetime) -> FreezeWindow | None:
    """The active window that ends last (the one that explains the wait best), or ``None``."""
    best: tuple[datetime, FreezeWindow] | None = None
    for window in windows:
        span = window.occurrence(now)
        if span is not None and (best is None or span[1] > best[0]):
            best = (span[1], window)
    return best[1] if best else None


# Weekly windows can chain into each other; past this horizon the freeze counts as endless.
_HORIZON = timedelta(days=366)


def next_end(windows: Iterable[FreezeWindow], now: datetime) -> datetime | None:
    """The first instant at or after ``now`` with no window active.

    ``now`` itself when nothing is frozen; ``None`` when overlapping windows keep the freeze on
    for more than a year (a schedule that never lets anything run).
    """
    chosen = tuple(windows)
    at = _aware(now, "now")
    while at - now <= _HORIZON:
        ends = [span[1] for w in chosen if (span := w.occurrence(at)) is not None]
        if not ends:
            return at
        at = max(ends)
    return None


# ---- configuration ---------------------------------------------------------------------------

_DAY_NAMES = {d.value: d for d in Weekday} | {
    name: d
    for d, name in zip(
        Weekday,
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        strict=True,
    )
}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _clock(value: object, what: str) -> tuple[time, timedelta]:
    """A local clock time and its precision (a minute for HH:MM, a second for HH:MM:SS)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{what}: quote the time, e.g. '18:00' (YAML reads 18:00 as a number)")
    if isinstance(value, time):
        return value, timedelta(seconds=1) if value.second else timedelta(minutes=1)
    m = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{what}: write a clock time like '18:00' or '06:30:00', got {value!r}")
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{what}: {value!r} is not a time of day (00:00 to 23:59)")
    precision = timedelta(seconds=1) if m.group(3) is not None else timedelta(minutes=1)
    return time(hour, minute, second), precision


def _instant(value: object, what: str) -> datetime:
    if isinstance(value, datetime):
        return _aware(value, what)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{what}: write a date and time like 2024-12-20T18:00:00Z, got {value!r}") from exc
        return _aware(parsed, what)
    raise ValueError(f"{what}: write a date and time like 2024-12-20T18:00:00Z, got {value!r}")


class FreezeWindowConfig(BaseModel):
    """One entry of ``automation.freeze``: absolute ``start``/``end``, ``days`` + clock times, or
    Alertmanager's ``time_intervals``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    start: Any = None
    end: Any = None
    time_intervals: list[Any] | None = None
    days: list[Weekday] | None = None
    timezone: str = "UTC"
    reason: str = ""

    @field_validator("days", mode="before")
    @classmethod
    def _day_names(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return value
        out: list[Weekday] = []
        for item in value:
            day = _DAY_NAMES.get(str(item).strip().lower())
            if day is None:
                raise ValueError(f"unknown day {item!r}: use mon, tue, wed, thu, fri, sat or sun")
            out.append(day)
        return out

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @model_validator(mode="after")
    def _builds(self) -> FreezeWindowConfig:
        self.to_window()  # every problem surfaces at validation time, with its message
        return self

    def to_window(self) -> FreezeWindow:
        when: Once | Weekly | TimeIntervals
        if self.time_intervals is not None:
            if self.days is not None or self.start is not None or self.end is not None or self.timezone != "UTC":
                raise ValueError("time_intervals stands alone: put days, times and location inside it")
            try:
                when = parse_time_intervals(self.time_intervals)
            except TimeIntervalError as exc:
                raise ValueError(f"time_intervals: {exc}") from exc
            return FreezeWindow(name=self.name, when=when, reason=self.reason)
        if self.start is None or self.end is None:
            raise ValueError("a freeze needs start and end, or time_intervals (Alertmanager's form)")
        if self.days is None:
            if self.timezone != "UTC":
                raise ValueError("timezone applies to weekly windows; put the offset in start/end")
            when = Once(start=_instant(self.start, "start"), end=_instant(self.end, "end"))
        else:
            start, _ = _clock(self.start, "start")
            end, precision = _clock(self.end, "end")
            when = Weekly(
                days=frozenset(self.days),
                start=start,
                end=end,
                tz=self.timezone,
                precision=precision,
            )
        return FreezeWindow(name=self.name, when=when, reason=self.reason)


_CONFIGS: TypeAdapter[list[FreezeWindowConfig]] = TypeAdapter(list[FreezeWindowConfig])


def parse_freeze_windows(raw: Sequence[Mapping[str, object]]) -> tuple[FreezeWindow, ...]:
    """Freeze windows from configuration; raises pydantic's ``ValidationError`` naming the entry."""
    return tuple(c.to_window() for c in _CONFIGS.validate_python(list(raw)))
