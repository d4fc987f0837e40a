"""Upstream bodies -> provider-free :class:`~linky2mqtt.model.Reading` lists.

Both shapes are accepted, wrapped or bare:

* 2026 ``{"grandeur": [{"unite", "points": [{"v", "d", "p"}]}]}``;
* v5 ``{"meter_reading": {"reading_type": {"unit"}, "interval_reading": [{"value",
  "date", "interval_length"}]}}`` or the inner ``meter_reading`` object alone.

Load-curve stamps are the END of their interval in naive Europe/Paris time. The START
(stamp minus step) is converted to UTC; on the October change day the naive stamps
02:30 and 03:00 come twice: the first occurrence of a stamp is the earlier instant
(summer time, +02:00), the second the later one (+01:00), whatever order the points
come in. The March change day simply lacks 02:30 and 03:00. Energy of a point in Wh is
W x minutes / 60. Units ``kW``/``kWh``/``kVA`` are scaled to W/Wh/VA; values may be
strings; points without a value are gaps; zero is a real value.

Anything unusable raises :class:`~linky2mqtt.enedis.errors.BadResponse`, never another
exception.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from linky2mqtt.model import CURVE_RESOLUTIONS, DAILY, PARIS, Kind, Reading, day_bounds

from .errors import BadResponse

__all__ = ["parse_curve", "parse_daily", "parse_max_power", "series_points"]

log = logging.getLogger(__name__)

ENERGY_UNITS = {"wh": 1.0, "kwh": 1000.0}
POWER_UNITS = {"w": 1.0, "kw": 1000.0}
APPARENT_UNITS = {"va": 1.0, "kva": 1000.0}
STEP_RE = re.compile(r"PT(\d+)([MH])")
STAMP_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?"
)


class _Point:
    __slots__ = ("stamp", "step", "value")

    def __init__(self, stamp: str, value: Any, step: Any) -> None:
        self.stamp = stamp
        self.value = value
        self.step = step


def series_points(body: Any) -> tuple[list[_Point], str | None, list[str]]:
    """(points, unit, grandeurMetier values) of a 2026 or v5 body, wrapped or bare."""
    if not isinstance(body, Mapping):
        raise BadResponse(f"expected a JSON object, got {type(body).__name__}")
    if "grandeur" in body:
        return _points_2026(body["grandeur"])
    inner = body.get("meter_reading", body)
    if isinstance(inner, Mapping) and "interval_reading" in inner:
        return _points_v5(inner)
    keys = ", ".join(sorted(str(k) for k in body)[:8])
    raise BadResponse(f"unexpected body shape (keys: {keys or 'none'})")


def _points_2026(grandeurs: Any) -> tuple[list[_Point], str | None, list[str]]:
    if not isinstance(grandeurs, list):
        raise BadResponse("'grandeur' is not a list")
    points: list[_Point] = []
    units: set[str] = set()
    metiers: list[str] = []
    for g in grandeurs:
        if not isinstance(g, Mapping):
            raise BadResponse("'grandeur' entry is not an object")
        raw = g.get("points", [])
        if not isinstance(raw, list):
            raise BadResponse("'points' is not a list")
        if isinstance(g.get("unite"), str):
            units.add(g["unite"])
        if isinstance(g.get("grandeurMetier"), str):
            metiers.append(g["grandeurMetier"])
        for p in raw:
            if not isinstance(p, Mapping) or not isinstance(p.get("d"), str):
                raise BadResponse("a point has no date 'd'")
            points.append(_Point(p["d"], p.get("v"), p.get("p")))
    if len(units) > 1:
        raise BadResponse(f"mixed units in one answer: {sorted(units)}")
    return points, (units.pop() if units else None), metiers


def _points_v5(inner: Mapping[str, Any]) -> tuple[list[_Point], str | None, list[str]]:
    raw = inner.get("interval_reading")
    if not isinstance(raw, list):
        raise BadResponse("'interval_reading' is not a list")
    rt = inner.get("reading_type")
    unit = rt.get("unit") if isinstance(rt, Mapping) else None
    step = rt.get("interval_length") if isinstance(rt, Mapping) else None
    points: list[_Point] = []
    for p in raw:
        if not isinstance(p, Mapping) or not isinstance(p.get("date"), str):
            raise BadResponse("an interval_reading has no 'date'")
        points.append(_Point(p["date"], p.get("value"), p.get("interval_length", step)))
    return points, (unit if isinstance(unit, str) else None), []


def _scale(unit: str | None, table: Mapping[str, float], default: str) -> float:
    if unit is None or unit == "":
        return 1.0
    factor = table.get(unit.strip().lower())
    if factor is None:
        raise BadResponse(f"unexpected unit {unit!r} (expected {default} or k{default})")
    return factor


def _number(value: Any) -> float | None:
    """A point value as float; None for a missing value (a gap)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadResponse(f"value is not a number: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", "."))
        except ValueError:
            raise BadResponse(f"value is not a number: {value[:20]!r}") from None
    else:
        raise BadResponse(f"value is not a number: {type(value).__name__}")
    if not math.isfinite(number):
        raise BadResponse(f"value is not finite: {value!r}")
    return number


def _parse_stamp(stamp: str) -> tuple[datetime, bool, datetime | None]:
    """(naive local datetime, whether it has a time of day, UTC instant if it has an offset)."""
    m = STAMP_RE.fullmatch(stamp.strip())
    if m is None:
        raise BadResponse(f"unreadable date {stamp[:30]!r}")
    y, mo, d, hh, mm, ss, tz = m.groups()
    try:
        moment = datetime(  # noqa: DTZ001 - naive local on purpose, localised below
            int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0)
        )
        aware = None
        if tz:
            offset = datetime.strptime(tz.replace("Z", "+0000").replace(":", ""), "%z")
            aware = moment.replace(tzinfo=offset.tzinfo).astimezone(UTC)
            moment = aware.astimezone(PARIS).replace(tzinfo=None)
    except ValueError:
        raise BadResponse(f"invalid date {stamp[:30]!r}") from None
    return moment, hh is not None, aware


def _naive(stamp: str) -> tuple[datetime, bool]:
    """Naive local datetime of a stamp, and whether it carried a time of day."""
    moment, has_time, _ = _parse_stamp(stamp)
    return moment, has_time


def _step_minutes(step: Any) -> int | None:
    if step is None or step == "":
        return None
    m = STEP_RE.fullmatch(str(step).strip())
    if m is None:
        raise BadResponse(f"unexpected step {str(step)[:20]!r}")
    minutes = int(m.group(1)) * (60 if m.group(2) == "H" else 1)
    if minutes not in CURVE_RESOLUTIONS.values():
        raise BadResponse(f"unsupported step {step!r}")
    return minutes


def _day(stamp: str) -> date:
    return _naive(stamp)[0].date()


def _in_range(day: date, start: date | None, end: date | None) -> bool:
    return (start is None or day >= start) and (end is None or day < end)


def parse_daily(
    body: Any, pdl: str, kind: Kind, start: date | None = None, end: date | None = None
) -> list[Reading]:
    """Daily energy (Wh) per local day; days outside [start, end) are dropped."""
    points, unit, _ = series_points(body)
    factor = _scale(unit, ENERGY_UNITS, "Wh")
    by_day: dict[date, Reading] = {}
    for p in points:
        value = _number(p.value)
        day = _day(p.stamp)
        if value is None or not _in_range(day, start, end) or day in by_day:
            continue
        by_day[day] = Reading(pdl, kind, DAILY, day_bounds(day)[0], value * factor)
    return [by_day[d] for d in sorted(by_day)]


def _to_utc(naive: datetime, fold: int) -> datetime:
    return naive.replace(tzinfo=PARIS, fold=fold).astimezone(UTC)


def parse_max_power(
    body: Any, pdl: str, start: date | None = None, end: date | None = None
) -> list[Reading]:
    """Daily max power (VA) per local day, with the UTC time of the peak."""
    points, unit, _ = series_points(body)
    factor = _scale(unit, APPARENT_UNITS, "VA")
    by_day: dict[date, Reading] = {}
    for p in points:
        value = _number(p.value)
        naive, has_time, aware = _parse_stamp(p.stamp)
        day = naive.date()
        if value is None or not _in_range(day, start, end) or day in by_day:
            continue
        peak = (aware or _to_utc(naive, 0)) if has_time else None
        by_day[day] = Reading(
            pdl, Kind.MAX_POWER, DAILY, day_bounds(day)[0], value * factor, peak_at=peak
        )
    return [by_day[d] for d in sorted(by_day)]


def parse_curve(
    body: Any, pdl: str, kind: Kind, start: date | None = None, end: date | None = None
) -> list[Reading]:
    """Load-curve points -> one Reading per interval (UTC start, Wh), sorted by start.

    Intervals whose local start day is outside [start, end) are dropped.
    """
    points, unit, _ = series_points(body)
    factor = _scale(unit, POWER_UNITS, "W")
    parsed: list[tuple[datetime, int | None, float | None, datetime | None]] = []
    for p in points:
        naive, _, aware = _parse_stamp(p.stamp)
        parsed.append((naive, _step_minutes(p.step), _number(p.value), aware))
    fallback = _fallback_step([(n, s) for n, s, _, _ in parsed])
    seen: dict[datetime, int] = {}
    readings: dict[datetime, Reading] = {}
    for naive_end, step, value, aware_end in parsed:
        occurrence = seen.get(naive_end, 0)
        seen[naive_end] = occurrence + 1
        minutes = step or fallback
        if value is None:
            continue
        if minutes is None:
            raise BadResponse("curve points carry no step and no step can be inferred")
        if aware_end is not None:
            utc_start = aware_end - timedelta(minutes=minutes)
            occurrence = 0
        else:
            naive_start = naive_end - timedelta(minutes=minutes)
            utc_start = _to_utc(naive_start, min(occurrence, 1))
        if occurrence > 1 or utc_start in readings:
            log.warning("curve %s: duplicate point ending %s dropped", pdl, naive_end)
            continue
        if not _in_range(utc_start.astimezone(PARIS).date(), start, end):
            continue
        readings[utc_start] = Reading(
            pdl, kind, f"PT{minutes}M", utc_start, value * factor * minutes / 60.0
        )
    return [readings[t] for t in sorted(readings)]


def _fallback_step(parsed: list[tuple[datetime, int | None]]) -> int | None:
    """The step of points that carry none: the smallest gap between distinct stamps."""
    if all(step is not None for _, step in parsed):
        return None
    stamps = sorted({naive for naive, _ in parsed})
    gaps = {int((b - a).total_seconds() // 60) for a, b in itertools.pairwise(stamps)}
    candidates = sorted(g for g in gaps if g in CURVE_RESOLUTIONS.values())
    return candidates[0] if candidates else None
