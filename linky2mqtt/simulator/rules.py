"""Enedis' rules for a measure request, and the error bodies it answers with.

:func:`served_days` takes one request (PDL, kind, daily or curve, start included, end
excluded) and the simulator's "now", checks it in the order below, and returns the days
that have data, or raises :class:`EnedisError` carrying Enedis' status and body:

1. consent revoked                    403 ADAM-DC-0008
2. wrong direction                    400 ADAM-ERR0069
3. start not before end               400 Invalid_request
4. end after today (Paris)            400 Invalid_request
5. span: curve > 7 days               400 ADAM-DC-0015; daily > 365 days: 400 Invalid_request
6. start before the activation date   400 ADAM-ERR0123
7. start before the history limit     400 ADAM-ERR0125 (curve: 24 months + 15 days,
                                      daily and max power: 36 months + 15 days)
8. load curve not activated           404 no_data_found
9. no day with data in the range      404 no_data_found

Day D has data from 08:00 Paris on D+1; gap days and hidden days have none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import data

AVAILABLE_FROM_HOUR = 8
# The upstream's own limits, kept apart on purpose from the product's copy
# (linky2mqtt.enedis.providers.DAYS_PER_CALL): the simulator plays the upstream, so a
# client that drifted from them must be refused here.
CURVE_MAX_DAYS = 7
DAILY_MAX_DAYS = 365
CURVE_HISTORY_MONTHS = 24
DAILY_HISTORY_MONTHS = 36
HISTORY_EXTRA_DAYS = 15

TECHNICAL_ERROR = "Technical error. Please try later."


class Series(StrEnum):
    """The upstream's measure families (the product's notion is linky2mqtt.model.Series)."""

    DAILY = "daily"
    CURVE = "curve"


class EnedisError(Exception):
    """An Enedis error answer: HTTP status plus ``{"error","error_description"}``."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description}


def invalid(description: str) -> EnedisError:
    return EnedisError(400, "Invalid_request", description)


def no_data() -> EnedisError:
    return EnedisError(404, "no_data_found", "No measure found for the requested period.")


def technical(description: str = TECHNICAL_ERROR) -> EnedisError:
    return EnedisError(500, "technical_error", description)


def not_holder() -> EnedisError:
    """400 ADAM-DC-0007, as recorded in 2026 (bokub/ha-linky#202, bokub/conso-api#151)."""
    return EnedisError(400, "ADAM-DC-0007", "Le client n'est pas titulaire du point demandé.")


def consent_revoked() -> EnedisError:
    return EnedisError(
        403, "ADAM-DC-0008", "No consent can be found for this customer and this usage point."
    )


@dataclass(frozen=True, slots=True)
class Query:
    pdl: str
    kind: Kind
    series: Series
    start: date
    end: date  # excluded


def months_back(day: date, months: int) -> date:
    """``day`` minus ``months`` calendar months (day clamped to the month's length)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def history_limit(series: Series, today: date) -> date:
    months = CURVE_HISTORY_MONTHS if series is Series.CURVE else DAILY_HISTORY_MONTHS
    return months_back(today, months) - timedelta(days=HISTORY_EXTRA_DAYS)


def last_available_day(now: datetime) -> date:
    """Yesterday from 08:00 Paris time, the day before until then."""
    local = now.astimezone(PARIS)
    back = 1 if local.hour >= AVAILABLE_FROM_HOUR else 2
    return local.date() - timedelta(days=back)


Hidden = Callable[[str, Kind, date], bool]


def served_days(q: Query, now: datetime, hidden: Hidden) -> list[date]:
    """The days of ``q`` that have data, or EnedisError (see the module docstring)."""
    prof = data.profile(q.pdl)
    today = now.astimezone(PARIS).date()
    if not prof.consent:
        raise consent_revoked()
    if not data.has_direction(prof, q.kind):
        raise EnedisError(
            400,
            "ADAM-ERR0069",
            "The usage point does not measure this direction "
            f"({'production' if q.kind is Kind.PRODUCTION else 'consumption'}).",
        )
    if q.start >= q.end:
        raise invalid("The start date must be before the end date.")
    if q.end > today:
        raise invalid("The end date must not be later than the current date.")
    span = (q.end - q.start).days
    if q.series is Series.CURVE and span > CURVE_MAX_DAYS:
        raise EnedisError(
            400, "ADAM-DC-0015", "The requested period cannot be longer than 7 days."
        )
    if q.series is Series.DAILY and span > DAILY_MAX_DAYS:
        raise invalid("The requested period cannot be longer than 365 days.")
    if q.start < prof.activation:
        raise EnedisError(
            400,
            "ADAM-ERR0123",
            "The requested period cannot start before the meter's last activation date "
            f"({prof.activation.isoformat()}).",
        )
    limit = history_limit(q.series, today)
    if q.start < limit:
        raise EnedisError(
            400,
            "ADAM-ERR0125",
            f"The start date must be greater than the history limit ({limit.isoformat()}).",
        )
    if q.series is Series.CURVE and not prof.curve_enabled:
        raise no_data()
    last = last_available_day(now)
    days: list[date] = []
    day = q.start
    while day < q.end and day <= last:
        if not data.is_gap(prof, day) and not hidden(q.pdl, q.kind, day):
            days.append(day)
        day += timedelta(days=1)
    if not days:
        raise no_data()
    return days
