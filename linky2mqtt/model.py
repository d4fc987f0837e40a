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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
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
