"""Deterministic synthetic meter data: who a PDL is, and what it measured on a given day.

Everything here is a pure function of the PDL and the day (hash-based with BLAKE2b, never
Python's randomised ``hash()``), so two simulators, two runs or two machines give the
same values. No clock is read here: availability ("yesterday from 08:00") is a rule
applied by :mod:`linky2mqtt.simulator.rules`.

Profiles
    * sandbox PDLs (``SANDBOX``) behave as listed in ``enedis-api.md``;
    * any other 14-digit PDL consumes; one whose last digit is ``3`` also produces
      (self-consumption); its load-curve step is 10, 15 or 60 minutes when its last two
      digits are ``10``, ``15`` or ``60``, else 30 minutes; it was activated on
      2026-06-01 when its last two digits are ``77``, else on 2020-01-01.

Load-curve intervals are produced in true time order (UTC), each carried with the naive
Europe/Paris END stamps Enedis may give it (a normal day runs ``D 00:30:00`` ..
``D+1 00:00:00``; the March change day has 46 half-hours, the October one 50):

* ``stamp`` (wall-clock, the default served): the end instant in the wall-clock time in
  force at that instant. March: ``01:30 03:00 03:30`` (no ``02:00``/``02:30``); October:
  ``02:00 02:30 02:00 02:30 03:00``;
* ``start_stamp`` (start-offset, behind the ``dst_stamps`` option): the local START plus
  the step. March: ``01:30 02:00 03:30``; October: ``02:30 03:00 02:30 03:00``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from linky2mqtt.model import PARIS, Kind, day_bounds

DEFAULT_ACTIVATION = date(2020, 1, 1)
WALL_CLOCK = "wall-clock"
START_OFFSET = "start-offset"
DST_STAMPS = (WALL_CLOCK, START_OFFSET)  # how DST-day stamps are written; the first: default
RECENT_ACTIVATION = date(2026, 6, 1)


@dataclass(frozen=True, slots=True)
class Profile:
    """What a delivery point is: directions, step, activation, contract, quirks."""

    pdl: str
    consumes: bool
    produces: bool
    step: int  # load-curve minutes
    activation: date
    curve_enabled: bool = True
    consent: bool = True
    gap_weekdays: frozenset[int] = frozenset()  # Monday = 0
    kva: int = 9
    tariff: str = "BASE"  # "BASE" or "HC/HP"
    offpeak: str | None = None  # "22h00-6h00" for HC/HP


@dataclass(frozen=True, slots=True)
class Interval:
    """One load-curve point: true UTC bounds, Enedis' naive stamp, average watts."""

    start: datetime
    end: datetime
    stamp: str  # wall-clock end stamp
    watts: int
    minutes: int
    start_stamp: str = ""  # start-offset end stamp (local start + step)

    def stamp_for(self, convention: str) -> str:
        """The naive end stamp in one of :data:`DST_STAMPS`."""
        return self.start_stamp if convention == START_OFFSET else self.stamp


SANDBOX_NOTES: dict[str, str] = {
    "22516914714270": "consumption, load curve on, no gaps",
    "11453290002823": "consumption, activated 2019-08-27",
    "32320647321714": "consumption, load curve not activated (404 no_data_found)",
    "12345678901234": "a consumer",
    "10284856584123": "a producer (production only)",
    "42900589957123": "consumption, gaps every Tuesday and Wednesday",
    "24880057139941": "production only",
    "12655648759651": "self-consumption: consumption and production",
    "26584978546985": "consent revoked (403 ADAM-DC-0008)",
}


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) derived from ``parts`` (stable across runs)."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _contract(pdl: str) -> tuple[int, str, str | None]:
    kva = (6, 9, 9, 12)[int(unit(pdl, "kva") * 4)]
    if unit(pdl, "tariff") < 0.5:
        return kva, "HC/HP", "22h00-6h00"
    return kva, "BASE", None


def _rule_step(pdl: str) -> int:
    return {"10": 10, "15": 15, "60": 60}.get(pdl[-2:], 30)


_SANDBOX_CHANGES: dict[str, dict[str, object]] = {
    "22516914714270": {},
    "11453290002823": {"activation": date(2019, 8, 27)},
    "32320647321714": {"curve_enabled": False},
    "12345678901234": {},
    "10284856584123": {"consumes": False, "produces": True},
    "42900589957123": {"gap_weekdays": frozenset({1, 2})},
    "24880057139941": {"consumes": False, "produces": True},
    "12655648759651": {"produces": True},
    "26584978546985": {"consent": False},
}


@lru_cache(maxsize=4096)
def profile(pdl: str) -> Profile:
    """The profile of a 14-digit PDL (sandbox table first, then the documented rules)."""
    kva, tariff, offpeak = _contract(pdl)
    if pdl in _SANDBOX_CHANGES:
        base = Profile(pdl, True, False, 30, DEFAULT_ACTIVATION, kva=kva, tariff=tariff,
                       offpeak=offpeak)
        return replace(base, **_SANDBOX_CHANGES[pdl])  # type: ignore[arg-type]
    activation = RECENT_ACTIVATION if pdl.endswith("77") else DEFAULT_ACTIVATION
    return Profile(pdl, True, pdl.endswith("3"), _rule_step(pdl), activation, kva=kva,
                   tariff=tariff, offpeak=offpeak)


def has_direction(prof: Profile, kind: Kind) -> bool:
    """Whether the PDL measures ``kind`` at all (max power goes with consumption)."""
    return prof.produces if kind is Kind.PRODUCTION else prof.consumes


def is_gap(prof: Profile, day: date) -> bool:
    """A day the meter never reports (sandbox gaps) or before its activation."""
    return day < prof.activation or day.weekday() in prof.gap_weekdays


def _bump(hours: float, centre: float, width: float) -> float:
    return math.exp(-(((hours - centre) / width) ** 2))


def _consumption_watts(pdl: str, day: date, index: int, start: datetime, minutes: int) -> int:
    mid = (start + timedelta(minutes=minutes / 2)).astimezone(PARIS)
    hours = mid.hour + mid.minute / 60 + mid.second / 3600
    doy = mid.timetuple().tm_yday
    base = 150 + 350 * unit(pdl, "base")
    scale = 0.7 + 0.8 * unit(pdl, "scale")
    heating = unit(pdl, "heating") < 0.5
    winter = max(0.0, math.cos(2 * math.pi * (doy - 15) / 365.25))
    summer = max(0.0, -math.cos(2 * math.pi * (doy - 15) / 365.25))
    season = 1 + (1.2 if heating else 0.3) * winter + 0.1 * summer
    morning = 7.25 if mid.weekday() < 5 else 9.0
    load = base + scale * (
        900 * _bump(hours, morning, 0.9)
        + 350 * _bump(hours, 12.75, 1.3)
        + 1500 * _bump(hours, 19.75, 1.7)
    )
    if _contract(pdl)[1] == "HC/HP" and (hours >= 22.5 or hours < 1.5):
        load += 1200 * scale  # water heater on off-peak hours
    day_factor = 0.85 + 0.3 * unit(pdl, "day", day)
    noise = 0.8 + 0.4 * unit(pdl, "c", day, index)
    return max(1, round(load * season * day_factor * noise))


def _production_watts(pdl: str, day: date, index: int, start: datetime, minutes: int) -> int:
    mid = start + timedelta(minutes=minutes / 2)
    utc_hours = mid.hour + mid.minute / 60 + mid.second / 3600
    doy = mid.timetuple().tm_yday
    decl = math.sin(2 * math.pi * (doy - 80) / 365.25)
    half_day = 6.0 + 2.2 * decl
    offset = utc_hours - 11.8  # solar noon in France, UTC
    if abs(offset) >= half_day:
        return 0
    peak = 2500 + 4500 * unit(pdl, "pv")
    sky = 0.25 + 0.75 * unit(pdl, "sky", day)
    noise = 0.9 + 0.2 * unit(pdl, "p", day, index)
    shape: float = math.cos(math.pi / 2 * offset / half_day) ** 1.5
    return max(0, round(peak * (0.6 + 0.3 * decl) * sky * shape * noise))


def _start_offset_stamp(start: datetime, minutes: int) -> str:
    local_start = start.astimezone(PARIS).replace(tzinfo=None)
    return (local_start + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


@lru_cache(maxsize=8192)
def _raw_curve(pdl: str, kind: Kind, day: date) -> tuple[Interval, ...]:
    prof = profile(pdl)
    first, last = day_bounds(day)
    step = timedelta(minutes=prof.step)
    fn = _production_watts if kind is Kind.PRODUCTION else _consumption_watts
    out: list[Interval] = []
    start, index = first, 0
    while start < last:
        end = start + step
        watts = fn(pdl, day, index, start, prof.step)
        out.append(Interval(start, end, local_stamp(end), watts, prof.step,
                            _start_offset_stamp(start, prof.step)))
        start, index = end, index + 1
    return tuple(out)


def _energy_kind(kind: Kind | str) -> Kind:
    k = Kind(kind)
    if k is Kind.MAX_POWER:
        raise ValueError("a load curve is consumption or production, not max_power")
    return k


def curve(pdl: str, kind: Kind | str, day: date) -> tuple[Interval, ...] | None:
    """The day's load curve as measured, or None when the meter has none that day.

    Ignores the load-curve activation switch (32320647321714 still has an internal curve
    behind its daily values); the HTTP rules apply it.
    """
    k = _energy_kind(kind)
    prof = profile(pdl)
    if not has_direction(prof, k) or is_gap(prof, day):
        return None
    return _raw_curve(pdl, k, day)


def daily_wh(pdl: str, kind: Kind | str, day: date) -> int | None:
    """Wh of the day: round(sum of W x minutes / 60) over the day's curve intervals."""
    points = curve(pdl, kind, day)
    if points is None:
        return None
    total: float = sum(p.watts * p.minutes / 60 for p in points)
    return round(total)


def max_power(pdl: str, day: date) -> tuple[int, datetime] | None:
    """(VA, UTC instant of the peak) of the day, for a consuming PDL."""
    points = curve(pdl, Kind.CONSUMPTION, day)
    if points is None:
        return None
    best = max(points, key=lambda p: (p.watts, -p.start.timestamp()))
    prof = profile(pdl)
    va = min(prof.kva * 1000, round(best.watts * (1.15 + 0.5 * unit(pdl, "va", day))))
    offset = int(unit(pdl, "peak", day) * best.minutes * 60)
    at = (best.start + timedelta(seconds=offset)).astimezone(UTC)
    return va, at


def local_stamp(moment: datetime) -> str:
    """Naive Europe/Paris ``YYYY-MM-DD HH:MM:SS`` of an aware instant."""
    return moment.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")
