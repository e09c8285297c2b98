"""Days and budget windows, in UTC: the days a usage report sums, and the window (a day, a month) a budget counts in."""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class Window:
    """A budget's window: `label` to put in its key ("2025-06-01", "2025-06"), `ends_in` seconds."""

    label: str
    ends_in: int


def day_of(at: float) -> str:
    """The UTC day of unix time `at`: "YYYY-MM-DD"."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def last_days(count: int, now: float | None = None) -> list[str]:
    """The last `count` days, today (UTC) included, oldest first."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(max(0, count) - 1, -1, -1)]


def week_so_far(now: float | None = None) -> list[str]:
    """The days of this week (UTC, from Monday) up to today, oldest first."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(today.weekday(), -1, -1)]


def month_so_far(now: float | None = None) -> list[str]:
    """The days of this month (UTC) up to today, oldest first."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return [today.replace(day=day).isoformat() for day in range(1, today.day + 1)]


def day_window(now: float | None = None) -> Window:
    """Today's window (UTC), for a daily budget."""
    at = time.time() if now is None else now
    day = day_of(at)
    return Window(day, max(1, math.ceil(day_end(day) - at)))


def month_window(now: float | None = None) -> Window:
    """This month's window (UTC), for a monthly budget."""
    at = time.time() if now is None else now
    today = datetime.fromtimestamp(at, UTC).date()
    last = calendar.monthrange(today.year, today.month)[1]
    end = day_end(today.replace(day=last).isoformat())
    return Window(today.strftime("%Y-%m"), max(1, math.ceil(end - at)))


def day_end(day: str) -> int:
    """Unix time of the end of `day` (the next day's UTC midnight)."""
    start = date.fromisoformat(day)
    return calendar.timegm(start.timetuple()) + DAY_SECONDS
