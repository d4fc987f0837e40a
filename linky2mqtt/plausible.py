"""Values a meter cannot produce are not stored as truth.

A day is refused, whole, when one of its values is impossible:

* a negative energy (or max power);
* a load-curve interval whose average power (Wh x 60 / minutes) is above the limit;
* a daily energy whose average power over the day (Wh / the day's 23, 24 or 25 hours)
  is above the limit;
* a daily max power above the limit.

The limit is 1.5 x the contract's subscribed power (kVA -> VA; a watt never exceeds a
volt-ampere), or :data:`NO_CONTRACT_VA` when no contract is known. A refused day is
logged (PDL, day, value), not stored, and so stays missing and is asked again later.
(Two different values for one instant in one answer are refused by the parser.)
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Iterable
from datetime import date

from linky2mqtt.model import DAILY, Kind, Reading, day_bounds, resolution_minutes

__all__ = ["MARGIN", "NO_CONTRACT_VA", "power_limit_va", "problem", "screen"]

log = logging.getLogger(__name__)

MARGIN = 1.5
NO_CONTRACT_VA = 250_000.0


def power_limit_va(kva: float | None) -> float:
    return NO_CONTRACT_VA if kva is None else MARGIN * kva * 1000.0


def problem(r: Reading, limit: float) -> str | None:
    """Why ``r`` is impossible under ``limit`` (VA), or None when it is plausible."""
    if r.value < 0:
        return f"negative value {r.value:g}"
    if r.kind is Kind.MAX_POWER:
        return f"max power {r.value:g} VA above {limit:g} VA" if r.value > limit else None
    if r.is_daily:
        start, end = day_bounds(r.local_date)
        watts = r.value / ((end - start).total_seconds() / 3600)
        what = f"daily energy {r.value:g} Wh (average {watts:.0f} W)"
    else:
        watts = r.value * 60 / resolution_minutes(r.resolution)
        what = f"interval at {r.start.isoformat()} of {r.value:g} Wh (average {watts:.0f} W)"
    return f"{what} above {limit:g} VA" if watts > limit else None


_VALUE = operator.attrgetter("value")
_RESOLUTION = operator.attrgetter("resolution")
_KIND = operator.attrgetter("kind")
_SHORTEST_DAY_HOURS = 23.0
# below the bounds by far more than the roundings of problem()'s own arithmetic
_SAFE = 1.0 - 1e-9


def _surely_plausible(items: list[Reading], limit: float) -> bool:
    """True when :func:`problem` finds nothing in ``items``, shown without a Python call
    per reading: no value is negative and none reaches the lowest bound the answer's
    kinds and resolutions allow (a curve interval: limit x minutes / 60 Wh; a daily
    energy: limit x 23 h; a max power: limit). False only means "look at each"."""
    if not items:
        return True
    values: list[float] = list(map(_VALUE, items))
    if not min(values) >= 0:
        return False
    bound = limit if Kind.MAX_POWER in set(map(_KIND, items)) else math.inf
    for resolution in set(map(_RESOLUTION, items)):
        if resolution == DAILY:
            bound = min(bound, limit * _SHORTEST_DAY_HOURS)
        else:
            bound = min(bound, limit * resolution_minutes(resolution) / 60.0)
    return bool(max(values) < bound * _SAFE)


def screen(readings: Iterable[Reading], pdl: str, kva: float | None) -> list[Reading]:
    """``readings`` without the (kind, day, daily/curve) groups holding an impossible value."""
    items = list(readings)
    limit = power_limit_va(kva)
    if _surely_plausible(items, limit):
        return items
    refused: dict[tuple[Kind, date, bool], str] = {}
    for r in items:
        key = (r.kind, r.local_date, r.is_daily)
        if key in refused:
            continue
        why = problem(r, limit)
        if why is not None:
            refused[key] = why
    for (kind, day, daily), why in sorted(refused.items(), key=lambda kv: kv[0][1]):
        log.warning("%s: %s %s of %s refused: %s (limit: %s); stored as missing, asked "
                    "again later", pdl, kind.value, "day" if daily else "load curve", day,
                    why, "contract" if kva is not None else "no contract known")
    if not refused:
        return items
    return [r for r in items if (r.kind, r.local_date, r.is_daily) not in refused]
