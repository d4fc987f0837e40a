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
from collections.abc import Iterable
from datetime import date

from linky2mqtt.model import Kind, Reading, day_bounds, resolution_minutes

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


def screen(readings: Iterable[Reading], pdl: str, kva: float | None) -> list[Reading]:
    """``readings`` without the (kind, day, daily/curve) groups holding an impossible value."""
    items = list(readings)
    limit = power_limit_va(kva)
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
