"""Provider-free readings: what every other module talks about.

A :class:`Reading` is one measured value of one delivery point (PDL):

* ``kind``        consumption, production (energy, Wh) or max_power (VA);
* ``resolution``  an ISO 8601 duration: ``P1D`` for daily values, ``PT10M``/``PT15M``/
  ``PT30M``/``PT60M`` for load-curve intervals;
* ``start``       the START of the interval, an aware UTC datetime (for ``P1D``: the
  local midnight of that day in Europe/Paris, converted to UTC);
* ``value``       Wh for energy (a load-curve point already converted: W x minutes / 60),
  VA for max power.

Keyed by (pdl, kind, resolution, start), the repeated hour of the October DST change
survives as two distinct UTC starts.

A meter's readings form *series*: :data:`Series` ``"daily"`` (resolution ``P1D``: day and
month values, max power) or ``"curve"`` (the load curve, every other resolution).

Hourly energy (:func:`aggregate_hours`): one value per local clock hour of a day. Hour
boundaries are computed in UTC from :func:`day_bounds` stepping one hour, so a
Europe/Paris day has 23 (March), 24 or 25 (October) hours. An interval belongs to the
hour containing its start; the energy of an hour is the sum of its intervals (Wh). Only
hours with at least one interval are listed; ``Hour.complete`` says whether the whole hour
is covered, ``HourlyDay.complete`` whether the whole day is. :class:`HourlyDay` is the one
hourly type: the store computes it, the command worker, the publisher and the topics read it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
PDL_RE = re.compile(r"^\d{14}$")


class Kind(StrEnum):
    CONSUMPTION = "consumption"
    PRODUCTION = "production"
    MAX_POWER = "max_power"


class Step(StrEnum):
    DAY = "day"
    MONTH = "month"
    HOUR = "hour"


Series = Literal["daily", "curve"]
"""A meter's series: ``"daily"`` (resolution P1D) or ``"curve"`` (the load curve)."""
SERIES: tuple[Series, ...] = ("daily", "curve")

DAILY = "P1D"
CURVE_RESOLUTIONS = {"PT10M": 10, "PT15M": 15, "PT30M": 30, "PT60M": 60}


@dataclass(frozen=True, slots=True)
class Reading:
    pdl: str
    kind: Kind
    resolution: str
    start: datetime
    value: float
    quality: str | None = None
    peak_at: datetime | None = None  # max power: when the peak happened (UTC)

    @property
    def is_daily(self) -> bool:
        return self.resolution == DAILY

    @property
    def local_date(self) -> date:
        """The Europe/Paris day the interval belongs to (by its start)."""
        return self.start.astimezone(PARIS).date()

    @property
    def end(self) -> datetime:
        if self.resolution == DAILY:
            return day_bounds(self.local_date)[1]
        return self.start + timedelta(minutes=resolution_minutes(self.resolution))


def resolution_minutes(resolution: str) -> int:
    """Minutes of a curve resolution (``PT30M`` -> 30); ValueError for anything else."""
    m = re.fullmatch(r"PT(\d+)M", resolution) or re.fullmatch(r"PT(\d+)H", resolution)
    if m is None:
        raise ValueError(f"not a curve resolution: {resolution!r}")
    n = int(m.group(1))
    return n * 60 if resolution.endswith("H") else n


@functools.lru_cache(maxsize=4096)  # pure, asked for the same few days over and over
def day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC start and end of a Europe/Paris calendar day (23, 24 or 25 hours long)."""
    start = datetime.combine(day, time(0), PARIS).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)
    return start, end


def local_iso(moment: datetime) -> str:
    """ISO 8601 in Europe/Paris with its offset: ``2026-11-28T00:00:00+01:00``."""
    return moment.astimezone(PARIS).isoformat(timespec="seconds")


def kwh(wh: float) -> float:
    """Wh -> kWh without float noise (exact to the mWh)."""
    return round(wh / 1000.0, 6)


def paris_today(now: datetime) -> date:
    return now.astimezone(PARIS).date()


# -- hourly energy --------------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class HourTotals:
    """One local day's clock hours by number from the day's start, as the store adds them
    up (no datetimes: a backfill's batches are built at the broker's pace); the same facts
    as :class:`HourlyDay`."""

    day: date
    lo: int  # epoch seconds of the day's start (UTC)
    count: int  # clock hours in the day: 23, 24 or 25
    hours: list[tuple[int, float, bool]]  # (hour number, Wh, every interval present)
    complete: bool

    def hourly_day(self) -> HourlyDay:
        utc = datetime.fromtimestamp
        return HourlyDay(day=self.day, hours=[
            Hour(start=utc(self.lo + 3600 * i, UTC), end=utc(self.lo + 3600 * (i + 1), UTC),
                 wh=wh, complete=full) for i, wh, full in self.hours], complete=self.complete)


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
