"""Upstream bodies -> provider-free :class:`~linky2mqtt.model.Reading` lists.

Both shapes are accepted, wrapped or bare:

* 2026 ``{"grandeur": [{"unite", "points": [{"v", "d", "p"}]}]}``;
* v5 ``{"meter_reading": {"reading_type": {"unit"}, "interval_reading": [{"value",
  "date", "interval_length"}]}}`` or the inner ``meter_reading`` object alone.

Load-curve stamps are the END of their interval in naive Europe/Paris time. On the DST
change days two ways of writing them are met, and the answer itself says which one it
uses (never the configuration):

* wall-clock (the likely one, ``enedis-api.md``): each end instant in the wall-clock time
  in force at that instant. March runs ``01:30 03:00 03:30`` (no ``02:00``/``02:30``);
  October reads ``02:00 02:30 02:00 02:30 03:00`` (first summer time, then winter time);
* start-offset: the end instant written in the offset of the interval's START (naive
  end = naive start + step). March has ``02:00`` and no ``03:00``; October repeats
  ``02:30`` and ``03:00``.

Both conventions are tried on the naive stamps; the one under which every stamp has its
own place (no stamp in the skipped hour, none repeated more often than its local time
occurs) wins. The first occurrence of a repeated stamp is the earlier instant, whatever
order the points come in. A stamp with an explicit offset (``+02:00``, ``Z``) is its own
instant. A point that neither convention can place, or that they place differently when
both fit, is left out with a warning (the day stays incomplete and is asked again); a
point repeated with the same value is kept once; two different values for one instant
refuse the whole day. Energy of a point in Wh is W x minutes / 60. Units
``kW``/``kWh``/``kVA`` are scaled to W/Wh/VA; values may be strings; points without a
value are gaps; zero is a real value.

Anything unusable raises :class:`~linky2mqtt.enedis.errors.BadResponse`, never another
exception.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from linky2mqtt.model import (
    CURVE_RESOLUTIONS,
    DAILY,
    PARIS,
    Kind,
    LocalDays,
    Reading,
    day_bounds,
)

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
    # the shapes every answer uses (``2026-11-28 00:30:00``, ``2026-11-28``), read in C; any
    # other shape, or a value these cannot read, is read (or refused) by the pattern below
    if len(stamp) == 19 and stamp[10] in " T" and stamp[4] == stamp[7] == "-" and (
            stamp[13] == stamp[16] == ":"):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp), True, None
    elif len(stamp) == 10 and stamp[4] == stamp[7] == "-":
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp), False, None
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
    if isinstance(step, str):
        return _step_text_minutes(step)
    return _step_of(step)


def _step_of(step: Any) -> int:
    m = STEP_RE.fullmatch(str(step).strip())
    if m is None:
        raise BadResponse(f"unexpected step {str(step)[:20]!r}")
    minutes = int(m.group(1)) * (60 if m.group(2) == "H" else 1)
    if minutes not in CURVE_RESOLUTIONS.values():
        raise BadResponse(f"unsupported step {step!r}")
    return minutes


# pure; an answer repeats one step on every point
_step_text_minutes: Callable[[str], int] = functools.lru_cache(maxsize=64)(_step_of)


def _day(stamp: str) -> date:
    return _naive(stamp)[0].date()


def _in_range(day: date, start: date | None, end: date | None) -> bool:
    return (start is None or day >= start) and (end is None or day < end)


def _one_a_day(body: Any, pdl: str, start: date | None, end: date | None,
               reading: Callable[[date, float, str], Reading], *,
               units: Mapping[str, float], unit: str) -> list[Reading]:
    """One reading per local day in [start, end), made by ``reading(day, value in
    ``unit``, stamp)``; a day given two different values is refused (logged, left out)."""
    points, got_unit, _ = series_points(body)
    factor = _scale(got_unit, units, unit)
    by_day: dict[date, Reading] = {}
    refused: dict[date, str] = {}
    for p in points:
        value = _number(p.value)
        day = _day(p.stamp)
        if value is None or not _in_range(day, start, end):
            continue
        made = reading(day, value * factor, p.stamp)
        held = by_day.setdefault(day, made)
        if held.value != made.value:
            refused.setdefault(day, f"{held.value:g} and {made.value:g} {unit}")
    return [by_day[d] for d in sorted(by_day) if d not in _refuse(pdl, refused)]


def parse_daily(
    body: Any, pdl: str, kind: Kind, start: date | None = None, end: date | None = None
) -> list[Reading]:
    """Daily energy (Wh) per local day; days outside [start, end) are dropped."""
    return _one_a_day(body, pdl, start, end,
                      lambda day, wh, _: Reading(pdl, kind, DAILY, day_bounds(day)[0], wh),
                      units=ENERGY_UNITS, unit="Wh")


def _refuse(pdl: str, refused: Mapping[date, str]) -> Mapping[date, str]:
    """Log the days refused for two different values of one instant; return them."""
    for day, detail in sorted(refused.items()):
        log.warning("%s: day %s refused, two different values for one instant (%s); it "
                    "stays missing and is asked again later", pdl, day, detail)
    return refused


def _to_utc(naive: datetime, fold: int) -> datetime:
    return naive.replace(tzinfo=PARIS, fold=fold).astimezone(UTC)


def parse_max_power(
    body: Any, pdl: str, start: date | None = None, end: date | None = None
) -> list[Reading]:
    """Daily max power (VA) per local day, with the UTC time of the peak."""
    def reading(day: date, va: float, stamp: str) -> Reading:
        naive, has_time, aware = _parse_stamp(stamp)
        peak = (aware or _to_utc(naive, 0)) if has_time else None
        return Reading(pdl, Kind.MAX_POWER, DAILY, day_bounds(day)[0], va, peak_at=peak)
    return _one_a_day(body, pdl, start, end, reading, units=APPARENT_UNITS, unit="VA")


# The two ways a naive END stamp is written on the DST change days (see module docstring).
WALL_CLOCK = "wall-clock"  # the end instant in the wall-clock time in force at that instant
START_OFFSET = "start-offset"  # the end instant in the offset of the interval's start
CONVENTIONS = (WALL_CLOCK, START_OFFSET)


class _CurvePoint:
    __slots__ = ("aware", "index", "minutes", "naive", "stamp", "value")

    def __init__(self, index: int, stamp: str, naive: datetime, minutes: int,  # noqa: PLR0917
                 value: float | None, aware: datetime | None) -> None:
        self.index = index
        self.stamp = stamp
        self.naive = naive
        self.minutes = minutes
        self.value = value
        self.aware = aware

    @property
    def local_day(self) -> date:
        """The local day of the interval's start, as the stamp says it."""
        return (self.naive - timedelta(minutes=self.minutes)).date()


def _local_kind(naive: datetime) -> str:
    """``"normal"``, ``"ambiguous"`` (the repeated October hour) or ``"missing"`` (the
    skipped March hour) for a naive Europe/Paris time."""
    early = naive.replace(tzinfo=PARIS, fold=0)
    late = naive.replace(tzinfo=PARIS, fold=1)
    if early.utcoffset() == late.utcoffset():
        return "normal"
    back = early.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None)
    return "ambiguous" if back == naive else "missing"


class _Placement:
    """Where one convention puts the naive points: UTC starts (duplicates included,
    sharing their slot), the points it rules out (a time the day skips), those it cannot
    tell (``undetermined``: one of the repeated hour seen once), how many points share a slot
    with the same value (``same``) or with another value (``clash``)."""

    __slots__ = ("bad", "clash", "same", "starts", "undetermined")

    def __init__(self) -> None:
        self.starts: dict[int, datetime] = {}
        self.bad: list[_CurvePoint] = []
        self.undetermined: list[_CurvePoint] = []
        self.same = 0
        self.clash = 0

    @property
    def score(self) -> tuple[int, int]:
        return len(self.bad) + self.clash, self.same


def _place(points: list[_CurvePoint], convention: str) -> _Placement:
    """UTC starts of naive points when their stamps follow ``convention``.

    A point it cannot place: its reference local time does not exist that day, or falls
    in the repeated hour but comes once (its twin is missing: which one is it?). A point
    whose slot is already taken (a stamp repeated more often than its local time occurs)
    is a duplicate of the point there.
    """
    out = _Placement()
    refs = [p.naive if convention == WALL_CLOCK else p.naive - timedelta(minutes=p.minutes)
            for p in points]
    total: dict[datetime, int] = {}
    for ref in refs:
        total[ref] = total.get(ref, 0) + 1
    seen: dict[datetime, int] = {}
    taken: dict[datetime, _CurvePoint] = {}
    for p, ref in zip(points, refs, strict=True):
        step = timedelta(minutes=p.minutes)
        occurrence = seen.get(ref, 0)
        seen[ref] = occurrence + 1
        local = _local_kind(ref)
        if local == "missing":  # a time the day skips: this convention is not the one
            out.bad.append(p)
            continue
        if local == "ambiguous" and total[ref] == 1:
            # one of the repeated hour, seen once (its twin is missing): which of the two
            # instants it is, the answer does not say
            out.undetermined.append(p)
            continue
        instant = _to_utc(ref, min(occurrence, 1))
        start = instant - step if convention == WALL_CLOCK else instant
        other = taken.get(start)
        if other is None:
            taken[start] = p
        elif other.value == p.value and other.minutes == p.minutes:
            out.same += 1
        else:
            out.clash += 1
        out.starts[p.index] = start
    return out


UNIFORM_SPAN = timedelta(days=60)  # Paris changes offset twice a year, months apart


def _uniform_offset(points: list[_CurvePoint]) -> timedelta | None:
    """The one UTC offset of Europe/Paris from a day before the earliest stamp to a day
    after the latest (a step is at most a day), None when it changes in between (a DST
    change day: the conventions must be told apart) or when there are no points."""
    if not points:
        return None
    lo = min(p.naive for p in points) - timedelta(days=1)
    hi = max(p.naive for p in points) + timedelta(days=1)
    if hi - lo > UNIFORM_SPAN:
        return None
    first = lo.replace(tzinfo=PARIS).utcoffset()
    return first if first == hi.replace(tzinfo=PARIS).utcoffset() else None


def _decide(points: list[_CurvePoint]) -> tuple[str, dict[int, datetime], list[_CurvePoint]]:
    """The convention the stamps follow, the UTC start of every point it can place, and
    the points it cannot place.

    The convention under which every stamp has its own place wins (a skipped or repeated
    stamp tells them apart). When both fit equally well and still place a point
    differently (the points that would tell them apart are missing), that point cannot
    be placed.
    """
    offset = _uniform_offset(points)
    if offset is not None:
        # no DST change near these stamps: both conventions place every point alike, at
        # its naive end less the offset less its step (the common case, computed once)
        return WALL_CLOCK, {p.index: (p.naive - offset - timedelta(minutes=p.minutes)
                                      ).replace(tzinfo=UTC) for p in points}, []
    results = {c: _place(points, c) for c in CONVENTIONS}
    wall, other = results[WALL_CLOCK], results[START_OFFSET]
    if wall.score != other.score:
        chosen = WALL_CLOCK if wall.score < other.score else START_OFFSET
        return chosen, results[chosen].starts, results[chosen].bad + results[chosen].undetermined
    agreed = {i: t for i, t in wall.starts.items() if other.starts.get(i) == t}
    return WALL_CLOCK, agreed, [p for p in points if p.index not in agreed]


def parse_curve(
    body: Any, pdl: str, kind: Kind, start: date | None = None, end: date | None = None
) -> list[Reading]:
    """Load-curve points -> one Reading per interval (UTC start, Wh), sorted by start.

    Intervals whose local start day is outside [start, end) are dropped. A point the
    parser cannot place in time is left out with a warning naming the PDL, the day and
    the stamps (the day stays incomplete and is asked again later); two different values
    for one instant refuse that whole day (same warning, nothing of it returned).
    """
    points, unit, _ = series_points(body)
    factor = _scale(unit, POWER_UNITS, "W")
    raw: list[tuple[str, datetime, int | None, float | None, datetime | None]] = []
    for p in points:
        naive, _, aware = _parse_stamp(p.stamp)
        raw.append((p.stamp, naive, _step_minutes(p.step), _number(p.value), aware))
    fallback = _fallback_step([(n, s) for _, n, s, _, _ in raw])
    parsed: list[_CurvePoint] = []
    for i, (stamp, naive, step, value, aware) in enumerate(raw):
        minutes = step or fallback
        if minutes is None:
            if value is None:
                continue
            raise BadResponse("curve points carry no step and no step can be inferred")
        parsed.append(_CurvePoint(i, stamp, naive, minutes, value, aware))
    naive_points = [cp for cp in parsed if cp.aware is None]
    convention, starts, unplaced = _decide(naive_points)
    for cp in parsed:
        if cp.aware is not None:  # an explicit offset says the instant: honour it
            starts[cp.index] = cp.aware - timedelta(minutes=cp.minutes)
    if unplaced:
        _warn_unplaced(pdl, unplaced)
    by_start: dict[datetime, _CurvePoint] = {}
    day_of: dict[datetime, date] = {}  # local day of each start kept
    refused: dict[date, str] = {}
    day_of_start = LocalDays()
    for cp in parsed:  # in index order: built so
        if cp.index not in starts or cp.value is None:
            continue
        utc_start = starts[cp.index]
        day = day_of_start(utc_start)
        if not _in_range(day, start, end):
            continue
        held = by_start.get(utc_start)
        if held is None or held.value is None:
            by_start[utc_start] = cp
            day_of[utc_start] = day
        elif held.value != cp.value or held.minutes != cp.minutes:
            refused.setdefault(day, f"{held.stamp}={held.value:g}, {cp.stamp}={cp.value:g}")
        else:
            log.info("curve %s: point %s repeated with the same value, kept once", pdl,
                     cp.stamp)
    _refuse(pdl, refused)
    if convention != WALL_CLOCK:
        log.debug("curve %s: stamps written in the offset of their interval's start", pdl)
    readings: dict[datetime, Reading] = {}
    for utc_start, cp in by_start.items():
        if cp.value is None or day_of[utc_start] in refused:
            continue
        readings[utc_start] = Reading(
            pdl, kind, _RESOLUTION_NAMES[cp.minutes], utc_start,
            cp.value * factor * cp.minutes / 60.0)
    return [readings[t] for t in sorted(readings)]


# a point's minutes are those of a curve resolution (_step_of, _fallback_step)
_RESOLUTION_NAMES = {minutes: name for name, minutes in CURVE_RESOLUTIONS.items()}


def _warn_unplaced(pdl: str, unplaced: list[_CurvePoint]) -> None:
    by_day: dict[date, list[str]] = {}
    for p in unplaced:
        by_day.setdefault(p.local_day, []).append(p.stamp)
    for day, stamps in sorted(by_day.items()):
        log.warning("curve %s: day %s: cannot place the point(s) stamped %s in time (DST "
                    "stamps that fit neither convention); the day stays incomplete and is "
                    "asked again later", pdl, day, ", ".join(stamps))


def _fallback_step(parsed: list[tuple[datetime, int | None]]) -> int | None:
    """The step of points that carry none: the smallest gap between distinct stamps."""
    if all(step is not None for _, step in parsed):
        return None
    stamps = sorted({naive for naive, _ in parsed})
    gaps = {int((b - a).total_seconds() // 60) for a, b in itertools.pairwise(stamps)}
    candidates = sorted(g for g in gaps if g in CURVE_RESOLUTIONS.values())
    return candidates[0] if candidates else None
