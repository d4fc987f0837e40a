"""When each meter is due and which upstream calls a poll makes: pure functions.

Nothing here does I/O or reads a clock: callers pass ``today`` and ``now``.

* :func:`plan_windows` turns a set of missing days into the fewest calls the API accepts
  (at most ``max_days`` per call), newest first: the greedy cover from the newest missing
  day is optimal for points covered by fixed-length intervals, so a backfill of D
  contiguous days costs exactly ceil(D / max_days) calls and yesterday is always in the
  first one.
* :func:`wanted_days` is the window a meter keeps: ``backfill`` days up to yesterday.
* :func:`first_poll_of_day` picks the random minute of ``poll_window`` for a day.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from linky2mqtt.model import PARIS

CURVE_DAYS_PER_CALL = 7
DAILY_DAYS_PER_CALL = 365
# A day that came back empty is asked again on later days, this many times in all.
MAX_GAP_ATTEMPTS = 5
# Enedis publishes day D from about 08:00 (Europe/Paris) on D+1: not asked before.
PUBLISHED_FROM = time(8, 0)
# When yesterday is not there yet at the first poll: ask again later the same day.
LATE_RETRY_DELAYS = (2 * 3600.0, 4 * 3600.0)


def wanted_days(today: date, backfill: int) -> list[date]:
    """The days a series should hold: the ``backfill`` days before ``today``, newest first.

    ``backfill`` counts yesterday: 1 means yesterday only; 0 is treated as 1 (the latest
    day is always wanted).
    """
    n = max(1, backfill)
    return [today - timedelta(days=i) for i in range(1, n + 1)]


def plan_windows(missing: Iterable[date], max_days: int) -> list[tuple[date, date]]:
    """Fewest ``[start, end)`` windows of at most ``max_days`` covering ``missing``.

    Newest window first. Each window starts at the oldest missing day it covers, so no
    day older than needed is asked for.
    """
    days = sorted(set(missing), reverse=True)
    windows: list[tuple[date, date]] = []
    i = 0
    while i < len(days):
        newest = days[i]
        floor = newest - timedelta(days=max_days - 1)
        oldest = newest
        while i < len(days) and days[i] >= floor:
            oldest = days[i]
            i += 1
        windows.append((oldest, newest + timedelta(days=1)))
    return windows


def parse_window(spec: str) -> tuple[time, time]:
    """``"08:00-10:00"`` -> (08:00, 10:00)."""
    a, b = spec.split("-")
    return time.fromisoformat(a.strip()), time.fromisoformat(b.strip())


def first_poll_of_day(day: date, window: tuple[time, time], rng: random.Random) -> datetime:
    """A random minute of ``window`` on ``day`` (Europe/Paris), as an aware datetime."""
    start = datetime.combine(day, window[0], PARIS)
    end = datetime.combine(day, window[1], PARIS)
    span = max(0, int((end - start).total_seconds() // 60))
    return start + timedelta(minutes=rng.randint(0, max(0, span - 1)) if span else 0)


def next_regular_poll(
    now: datetime, refresh: int, window: tuple[time, time], rng: random.Random
) -> datetime:
    """The next poll once a meter holds yesterday's data.

    The first poll of a day falls at a random minute of ``poll_window``. ``refresh`` is the
    period between polls: 86400 (the default) polls every day, 172800 every other day.
    A ``refresh`` under a day cannot make data arrive sooner (Enedis publishes once a
    day); it only shortens the spacing of the same-day retries for late data
    (:func:`late_retry_delay`).
    """
    today = now.astimezone(PARIS).date()
    day = today + timedelta(days=max(1, refresh // 86400))
    return first_poll_of_day(day, window, rng)


def late_retry_delay(attempt: int, refresh: int) -> float | None:
    """Seconds before asking again the same day for data not there yet; None: give up.

    ``attempt`` counts the polls already made today that found yesterday missing.
    """
    if attempt < 1 or attempt > len(LATE_RETRY_DELAYS):
        return None
    return min(LATE_RETRY_DELAYS[attempt - 1], float(max(3600, refresh)))


def yesterday_published(now: datetime) -> bool:
    """Whether yesterday's data may be there at ``now`` (from 08:00 Paris time)."""
    return now.astimezone(PARIS).time() >= PUBLISHED_FROM
