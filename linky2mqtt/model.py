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
import operator
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import repeat
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


@functools.lru_cache(maxsize=64)  # pure; a store meets a handful of resolutions
def resolution_seconds(resolution: str) -> int:
    """:func:`resolution_minutes` in seconds."""
    return 60 * resolution_minutes(resolution)


@functools.lru_cache(maxsize=4096)  # pure, asked for the same few days over and over
def day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC start and end of a Europe/Paris calendar day (23, 24 or 25 hours long)."""
    start = datetime.combine(day, time(0), PARIS).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)
    return start, end


class LocalDays:
    """The Europe/Paris day of aware instants, asked one after the other: the bounds of
    the last day found answer the next instant when it falls in the same day (readings
    come in runs of one day), so the time zone is consulted once a day, not once an
    instant. ``LocalDays()(t) == t.astimezone(PARIS).date()`` for any aware ``t``."""

    __slots__ = ("_day", "_hi", "_lo")

    def __init__(self) -> None:
        self._lo = self._hi = datetime.min.replace(tzinfo=UTC)
        self._day = date.min

    def __call__(self, instant: datetime) -> date:
        if self._lo <= instant < self._hi:
            return self._day
        day = instant.astimezone(PARIS).date()
        self._day = day
        try:
            self._lo, self._hi = day_bounds(day)
        except OverflowError:  # the last day of the calendar: not kept
            self._lo = self._hi
        return day


def local_days(readings: Iterable[Reading]) -> set[date]:
    """``{r.local_date for r in readings}``, the time zone consulted once a day."""
    day_of = LocalDays()
    return {day_of(r.start) for r in readings}


@functools.lru_cache(maxsize=4096)  # pure; a backfill asks each day's once per window
def epoch_bounds(day: date) -> tuple[int, int]:
    """:func:`day_bounds` of ``day`` in epoch seconds."""
    start, end = day_bounds(day)
    return int(start.timestamp()), int(end.timestamp())


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
    # every Wh known to be a whole or half number (:func:`half_wh`) by whoever added them
    # up, so that a batch is written without checking again; False: not known
    half: bool = field(default=False, compare=False)

    def hourly_day(self) -> HourlyDay:
        utc = datetime.fromtimestamp
        return HourlyDay(day=self.day, hours=[
            Hour(start=utc(self.lo + 3600 * i, UTC), end=utc(self.lo + 3600 * (i + 1), UTC),
                 wh=wh, complete=full) for i, wh, full in self.hours], complete=self.complete)


def half_wh(values: Sequence[float]) -> bool:
    """Every value a whole or half number well within a float's exact integers (a PT30M
    point is W / 2 Wh, so are their sums): ``round(v, 6)`` is ``v`` for each, and so is
    ``round(v / 1000, 6)`` for ``v / 1000`` (at most 4 decimals). Checked with ``map``
    (no Python call per value): the roundings, half a microsecond each, can be skipped."""
    return all(map(float.is_integer, map(operator.mul, values, repeat(2.0)))) and (
        not values or max(map(abs, values)) < _HALF_WH_MAX)


_HALF_WH_MAX = 2.0**40


def totals_of_rows(rows: Sequence[tuple[str, int, float]], day: date, lo: int,
                   hi: int) -> HourTotals:
    """:func:`aggregate_hours` of one day's curve rows (resolution, start epoch, value),
    ordered by start then resolution, the day being [``lo``, ``hi``) in epoch seconds: an
    interval counts in the hour holding its start, a start counts once (its first row)."""
    count = (hi - lo) // 3600
    wh = [0.0] * count
    covered = [0] * count
    seen = [False] * count
    previous = None
    for resolution, start, value in rows:
        if start == previous:
            continue
        previous = start
        i = (start - lo) // 3600
        seen[i] = True
        wh[i] += value
        covered[i] += resolution_seconds(resolution)
    hours = [(i, round(wh[i], 6), covered[i] >= 3600) for i in range(count) if seen[i]]
    complete = len(hours) == count and all(full for _, _, full in hours)
    return HourTotals(day=day, lo=lo, count=count, hours=hours, complete=complete)


def readings_hour_totals(readings: Iterable[Reading], kind: Kind, days: Iterable[date]
                         ) -> tuple[dict[date, HourTotals], int]:
    """:func:`totals_of_rows` of each of ``days`` as a store holding exactly these
    readings' load curve of ``kind`` would add them up (one row per (resolution, start),
    the last of a repeated one winning, as a save does), and how many such rows start
    within the days' span (from the first day's start to the last day's end).

    A fetched window (one resolution, every interval in order) is added up hour by hour
    without a datetime per reading (:func:`_even_totals`); anything else goes through
    the rows a store would read."""
    wanted = sorted(set(days))
    if not wanted:
        return {}, 0
    seq = readings if isinstance(readings, list) else list(readings)
    bounds = [(d, *epoch_bounds(d)) for d in wanted]
    span_lo, span_hi = bounds[0][1], bounds[-1][2]
    even = _even_totals(seq, kind, bounds)
    if even is not None:
        return even
    keyed: dict[tuple[int, str], float] = {}
    for r in seq:
        if r.kind == kind and r.resolution != DAILY:
            keyed[int(r.start.timestamp()), r.resolution] = float(r.value)
    rows = [(resolution, at, value) for (at, resolution), value in sorted(keyed.items())]
    starts = [at for _, at, _ in rows]
    out = {d: totals_of_rows(rows[bisect_left(starts, lo):bisect_left(starts, hi)], d, lo, hi)
           for d, lo, hi in bounds}
    return out, bisect_left(starts, span_hi) - bisect_left(starts, span_lo)


_START = operator.attrgetter("start")
_VALUE = operator.attrgetter("value")
_KIND = operator.attrgetter("kind")
_RESOLUTION = operator.attrgetter("resolution")


def _even_totals(seq: list[Reading], kind: Kind, bounds: list[tuple[date, int, int]]
                 ) -> tuple[dict[date, HourTotals], int] | None:
    """:func:`readings_hour_totals` of readings of ``kind`` at one resolution, one
    interval apart, in order (a fetched window), else None. A day holding every interval
    is added up per hour with ``map`` (the same additions, in the same order, as
    :func:`totals_of_rows`), every such day of the window at once; a day held in part,
    interval by interval."""
    if not seq:
        return None
    resolution = seq[0].resolution
    if resolution not in CURVE_RESOLUTIONS:
        return None
    step = 60 * CURVE_RESOLUTIONS[resolution]
    starts = list(map(_START, seq))
    n = len(seq)
    # (list.count compares in C, identity first: members of Kind are singletons)
    if (list(map(_KIND, seq)).count(kind) != n
            or list(map(_RESOLUTION, seq)).count(resolution) != n
            or not all(map(operator.eq, map(operator.sub, starts[1:], starts[:-1]),
                           repeat(timedelta(seconds=step))))):
        return None
    first = int(starts[0].timestamp())
    values = list(map(_VALUE, seq))  # (each sum starts from 0.0: floats, as a store reads)
    per_hour = 3600 // step

    def index(at: int) -> int:  # position of the first reading at or after ``at``
        return min(n, max(0, -((first - at) // step)))

    # every interval from the first day's start to the last day's end held (a backfill
    # window): hour totals of the whole span in one pass, cut into days
    span_lo, span_hi = bounds[0][1], bounds[-1][2]
    whole: list[float] | None = None
    half = False
    if first == span_lo and first + n * step == span_hi and per_hour * step == 3600:
        whole, half = _hour_sums(values, 0, n, per_hour, (span_hi - span_lo) // 3600)
    out: dict[date, HourTotals] = {}
    for d, lo, hi in bounds:
        count = (hi - lo) // 3600
        if whole is not None:
            at = (lo - span_lo) // 3600
            out[d] = HourTotals(day=d, lo=lo, count=count, complete=True, hours=list(
                zip(range(count), whole[at:at + count], repeat(True))), half=half)
            continue
        a, b = index(lo), index(hi)
        if first + a * step == lo and first + b * step == hi:  # every interval held
            sums, exact = _hour_sums(values, a, b, per_hour, count)
            out[d] = HourTotals(day=d, lo=lo, count=count, complete=True, hours=list(
                zip(range(count), sums, repeat(True))), half=exact)
            continue
        wh = [0.0] * count
        held = [0] * count
        for j in range(a, b):
            i = (first + j * step - lo) // 3600
            wh[i] += values[j]
            held[i] += 1
        hours = [(i, round(wh[i], 6), held[i] * step >= 3600) for i in range(count) if held[i]]
        out[d] = HourTotals(day=d, lo=lo, count=count, hours=hours,
                            complete=len(hours) == count and all(h[2] for h in hours))
    return out, index(span_hi) - index(span_lo)


def _hour_sums(values: list[float], a: int, b: int, per_hour: int, hours: int
               ) -> tuple[list[float], bool]:
    """The Wh of ``hours`` clock hours from ``values[a:b]`` (every interval held,
    ``per_hour`` of them an hour), each added up from 0.0 in order as
    :func:`totals_of_rows` does, and rounded to 6 decimals unless every sum is a whole
    or half Wh (:func:`half_wh`, the second value: then the rounding changes nothing)."""
    wh = [0.0] * hours
    for j in range(per_hour):
        wh = list(map(operator.add, wh, values[a + j:b:per_hour]))
    half = half_wh(wh)
    return (wh if half else list(map(round, wh, repeat(6)))), half


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
