"""Hourly energy from load-curve readings: one value per local clock hour of a day.

Hour boundaries are computed in UTC from :func:`~linky2mqtt.model.day_bounds` stepping one
hour, so a Europe/Paris day has 23 (March), 24 or 25 (October) hours. An interval belongs
to the hour containing its start; the energy of an hour is the sum of its intervals (Wh).
Only hours with at least one interval are listed; ``Hour.complete`` says whether the whole
hour is covered, ``HourlyDay.complete`` whether the whole day is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from linky2mqtt.model import Reading, day_bounds, resolution_minutes

__all__ = ["Hour", "HourlyDay", "aggregate_hours"]

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Hour:
    start: datetime  # UTC
    end: datetime  # UTC
    wh: float
    complete: bool = True  # every interval of this hour is present


@dataclass(frozen=True)
class HourlyDay:
    day: date
    hours: list[Hour]
    complete: bool  # every interval of the day is present


def aggregate_hours(readings: Iterable[Reading], day: date) -> HourlyDay:
    """Hourly energy of local ``day`` from curve readings (daily readings are ignored)."""
    day_start, day_end = day_bounds(day)
    hour_count = int((day_end - day_start) / HOUR)
    wh = [0.0] * hour_count
    covered = [0] * hour_count  # seconds covered in each hour
    seen = [False] * hour_count
    starts: set[datetime] = set()
    for r in readings:
        if r.is_daily or not day_start <= r.start < day_end or r.start in starts:
            continue
        starts.add(r.start)
        index = int((r.start - day_start) / HOUR)
        seen[index] = True
        wh[index] += r.value
        covered[index] += resolution_minutes(r.resolution) * 60
    hours = [
        Hour(
            start=day_start + i * HOUR,
            end=day_start + (i + 1) * HOUR,
            wh=round(wh[i], 6),
            complete=covered[i] >= 3600,
        )
        for i in range(hour_count)
        if seen[i]
    ]
    complete = len(hours) == hour_count and all(h.complete for h in hours)
    return HourlyDay(day=day, hours=hours, complete=complete)
