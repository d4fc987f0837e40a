"""The MQTT contract in one place: topic names, retain flags, QoS and payload builders.

Pure functions, no I/O. Builders return plain ``dict`` payloads exactly as SPEC §4 lists
them; :func:`dumps` turns one into the bytes that go on the wire (compact UTF-8 JSON).
Timestamps are ISO 8601 in Europe/Paris with their offset, energy is in kWh (Wh / 1000,
exact), power in VA (integers).

Topics (``B`` = ``mqtt.base_topic``)::

    B/bridge/state                    retained  {"state": "online" | "offline"}
    B/bridge/info                     retained  version, schema, meters, config
    B/bridge/request/<command>        (in)      commands
    B/bridge/response/<command>       -         answers
    B/<pdl>/consumption/day           retained  the latest day
    B/<pdl>/consumption/month         retained  that day's month, to date
    B/<pdl>/consumption/hour          -         one batch per local day
    B/<pdl>/production/{day,month,hour}         same, production
    B/<pdl>/max_power/day             retained  the latest day's peak
    B/<pdl>/contract                  retained  subscribed power, tariff, off-peak hours
    B/<pdl>/status                    retained  polls, errors, budget
"""

from __future__ import annotations

import calendar
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from typing import Any

from linky2mqtt.enedis.contract import Contract, parse_contract
from linky2mqtt.model import (
    HourlyDay,
    HourTotals,
    Kind,
    Step,
    day_bounds,
    half_wh,
    kwh,
    local_iso,
)

__all__ = [
    "OFFLINE",
    "ONLINE",
    "QOS",
    "SCHEMA",
    "bridge_info",
    "bridge_state",
    "command_from_topic",
    "contract_payload",
    "contract_topic",
    "day_payload",
    "dumps",
    "hour_body",
    "hour_payload",
    "info_topic",
    "max_power_payload",
    "max_power_topic",
    "meter_entry",
    "meter_retain",
    "meter_topic",
    "month_bounds",
    "month_payload",
    "request_subscription",
    "request_topic",
    "response_topic",
    "state_topic",
    "status_payload",
    "status_topic",
]

SCHEMA = 1
QOS = 1  # every message the bridge publishes
_METER_RETAIN = {Step.DAY: True, Step.MONTH: True, Step.HOUR: False}
ONLINE = "online"
OFFLINE = "offline"


# -- topics ------------------------------------------------------------------------------


def state_topic(base: str) -> str:
    return f"{base}/bridge/state"


def info_topic(base: str) -> str:
    return f"{base}/bridge/info"


def request_topic(base: str, command: str) -> str:
    return f"{base}/bridge/request/{command}"


def request_subscription(base: str) -> str:
    """The filter that receives every command."""
    return f"{base}/bridge/request/+"


def response_topic(base: str, command: str) -> str:
    return f"{base}/bridge/response/{command}"


def command_from_topic(base: str, topic: str) -> str | None:
    """``B/bridge/request/read`` -> ``"read"``; None for any other topic."""
    prefix = f"{base}/bridge/request/"
    if not topic.startswith(prefix):
        return None
    command = topic[len(prefix) :]
    return command if command and "/" not in command else None


def meter_topic(base: str, pdl: str, kind: Kind | str, step: Step | str) -> str:
    """``B/<pdl>/<kind>/<step>``: consumption/production day, month, hour; max_power day."""
    kind = Kind(kind)
    step = Step(step)
    if kind is Kind.MAX_POWER and step is not Step.DAY:
        raise ValueError("max_power is published per day only")
    return f"{base}/{pdl}/{kind}/{step}"


def meter_retain(step: Step | str) -> bool:
    """Retain flag of a meter series topic: day and month yes, hour batches no."""
    return _METER_RETAIN[Step(step)]


def max_power_topic(base: str, pdl: str) -> str:
    return meter_topic(base, pdl, Kind.MAX_POWER, Step.DAY)


def contract_topic(base: str, pdl: str) -> str:
    return f"{base}/{pdl}/contract"


def status_topic(base: str, pdl: str) -> str:
    return f"{base}/{pdl}/status"


# -- serialisation -----------------------------------------------------------------------


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one, not one a call


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, non-ASCII kept as is."""
    return _ENCODER.encode(payload).encode("utf-8")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else local_iso(moment)


# -- bridge ------------------------------------------------------------------------------


def bridge_state(online: bool) -> dict[str, Any]:
    return {"state": ONLINE if online else OFFLINE}


def meter_entry(
    pdl: str,
    *,
    name: str | None,
    account: str,
    steps: Iterable[Step | str],
    production: bool,
    max_power: bool,
    consumption: bool = True,
) -> dict[str, Any]:
    """One element of ``bridge/info``'s ``meters``; steps in day, month, hour order."""
    wanted = {Step(s) for s in steps}
    return {
        "pdl": pdl,
        "name": name,
        "account": account,
        "steps": [str(s) for s in (Step.DAY, Step.MONTH, Step.HOUR) if s in wanted],
        "consumption": consumption,
        "production": production,
        "max_power": max_power,
    }


def bridge_info(
    version: str, meters: Sequence[Mapping[str, Any]], config: Mapping[str, Any]
) -> dict[str, Any]:
    """``B/bridge/info``; ``config`` must already have its secrets removed."""
    return {
        "version": version,
        "schema": SCHEMA,
        "meters": [dict(m) for m in meters],
        "config": dict(config),
    }


# -- series --------------------------------------------------------------------------------


def day_payload(
    pdl: str, day: date, wh: float, quality: str | None, fetched_at: datetime | None
) -> dict[str, Any]:
    """``B/<pdl>/<kind>/day``: one local day's energy (23/24/25 h days included)."""
    start, end = day_bounds(day)
    return {
        "pdl": pdl,
        "date": day.isoformat(),
        "start": local_iso(start),
        "end": local_iso(end),
        "value": kwh(wh),
        "unit": "kWh",
        "quality": quality,
        "fetched_at": _iso(fetched_at),
    }


def month_bounds(month: str) -> tuple[date, date]:
    """``"2026-11"`` -> (first day, first day of the next month)."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if m is None:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    first = date(year, mon, 1)
    return first, first + timedelta(days=calendar.monthrange(year, mon)[1])


def month_payload(
    pdl: str, month: str, daily: Mapping[date, float], latest_day: date
) -> dict[str, Any]:
    """``B/<pdl>/<kind>/month``: the calendar month to date, summed from daily Wh values.

    ``days`` counts the days held (up to ``latest_day``), ``missing`` lists the days of the
    month up to ``latest_day`` that are absent, and ``complete`` is true once every day of
    the calendar month is held.
    """
    first, after = month_bounds(month)
    held = {d: v for d, v in daily.items() if first <= d < after and d <= latest_day}
    last = min(latest_day, after - timedelta(days=1))
    missing: list[str] = []
    d = first
    while d <= last:
        if d not in held:
            missing.append(d.isoformat())
        d += timedelta(days=1)
    month_days = (after - first).days
    return {
        "pdl": pdl,
        "month": month,
        "start": local_iso(day_bounds(first)[0]),
        "end": local_iso(day_bounds(after)[0]),
        "value": kwh(sum(held.values())),
        "unit": "kWh",
        "days": len(held),
        "complete": len(held) == month_days,
        "missing": missing,
    }


def hour_payload(pdl: str, hourly: HourlyDay | HourTotals) -> dict[str, Any]:
    """``B/<pdl>/<kind>/hour``: one local day's clock hours (23, 24 or 25 points)."""
    if isinstance(hourly, HourTotals):
        texts = _boundaries(hourly.day, hourly.lo, hourly.count)
        points = [{"start": texts[i], "end": texts[i + 1], "value": kwh(wh)}
                  for i, wh, _ in hourly.hours]
    else:
        iso = _hour_strings(hourly)
        points = [{"start": iso(h.start), "end": iso(h.end), "value": kwh(h.wh)}
                  for h in hourly.hours]
    return {
        "pdl": pdl,
        "date": hourly.day.isoformat(),
        "interval": "PT1H",
        "unit": "kWh",
        "complete": hourly.complete,
        "points": points,
    }


def hour_body(pdl: str, hourly: HourTotals) -> bytes:
    """``dumps(hour_payload(pdl, hourly))``, byte for byte, written straight from the
    totals: no point dicts, no datetimes, no JSON encoder walk (a backfill's batches are
    built at the broker's pace). A day of one UTC offset fills a cached template of its
    hours (one ``%`` for all the values); tests/test_topics.py compares the result with
    the payload for every day of 2025-2026."""
    day = hourly.day.isoformat()
    whs = list(map(_WH, hourly.hours))
    kwhs = map(operator.truediv, whs, repeat(1000.0))
    # kwh() of each hour, with map; whole or half Wh (PT30M points are W / 2) have at
    # most 4 decimals in kWh, so that the rounding to 6 changes nothing: skipped
    values = tuple(kwhs if hourly.half or half_wh(whs) else map(round, kwhs, repeat(6)))
    offset = _one_offset(hourly)
    if offset is not None and math.isfinite(sum(values)):  # NaN, infinities: as dumps()
        numbers = tuple(map(_NUMBER, hourly.hours))
        template = _TEMPLATES.get((offset, numbers))
        if template is None:
            if len(_TEMPLATES) >= _TEMPLATES_KEPT:
                _TEMPLATES.clear()
            template = _TEMPLATES[offset, numbers] = _points_template(offset, numbers)
        points = (template % values).replace("\0", day).replace(
            "\1", (hourly.day + timedelta(days=1)).isoformat())
    else:
        texts = _boundaries(hourly.day, hourly.lo, hourly.count)
        points = ",".join([
            f'{{"start":"{texts[i]}","end":"{texts[i + 1]}","value":{_number(value)}}}'
            for (i, _, _), value in zip(hourly.hours, values, strict=True)])
    complete = "true" if hourly.complete else "false"
    return (f'{{"pdl":{_ENCODER.encode(pdl)},"date":"{day}",'
            f'"interval":"PT1H","unit":"kWh","complete":{complete},"points":[{points}]}}'
            ).encode()


# hour_body's templates by (UTC offset in seconds, hour numbers present): a few offsets,
# and complete days share one; bounded all the same (partial days vary)
_TEMPLATES: dict[tuple[int, tuple[int, ...]], str] = {}
_TEMPLATES_KEPT = 64
_NUMBER, _WH = operator.itemgetter(0), operator.itemgetter(1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _one_offset(hourly: HourTotals) -> int | None:
    """The UTC offset (seconds) of a 24-hour day starting and ending at that same offset,
    from its epoch bounds; None for any other day (DST changes)."""
    if hourly.count != 24:
        return None
    offset = (hourly.day.toordinal() - _EPOCH_ORDINAL) * 86400 - hourly.lo
    return offset if offset % 60 == 0 and abs(offset) < 86400 else None


def _points_template(offset: int, numbers: tuple[int, ...]) -> str:
    """The points of a one-offset day as a ``%`` template: ``\\0`` the day's date, ``\\1``
    the next day's, ``%r`` each value."""
    sign = "-" if offset < 0 else "+"
    zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    texts = [f"\0T{i:02d}:00:00{zone}" for i in range(24)] + [f"\1T00:00:00{zone}"]
    return ",".join(f'{{"start":"{texts[i]}","end":"{texts[i + 1]}","value":%r}}'
                    for i in numbers)


def _number(value: float) -> str:
    """A float as :func:`dumps` writes it (``repr``; NaN and infinities its way)."""
    return repr(value) if math.isfinite(value) else _ENCODER.encode(value)


def _boundaries(day: date, lo: int, count: int) -> list[str]:
    """:func:`local_iso` of the ``count + 1`` hour boundaries of ``day`` (starting at epoch
    ``lo``): from the hour number on a day of one UTC offset, else one by one (DST)."""
    start = datetime.fromtimestamp(lo, UTC)
    offset = local_iso(start)[-6:]
    end = datetime.fromtimestamp(lo + 3600 * count, UTC)
    if count != 24 or local_iso(end)[-6:] != offset:
        return [local_iso(datetime.fromtimestamp(lo + 3600 * i, UTC)) for i in range(count + 1)]
    text = day.isoformat()
    texts = [f"{text}T{i:02d}:00:00{offset}" for i in range(24)]
    texts.append(f"{(day + timedelta(days=1)).isoformat()}T00:00:00{offset}")
    return texts


def _hour_strings(hourly: HourlyDay) -> Callable[[datetime], str]:
    """:func:`local_iso` for the hour boundaries of one day, cheaply: a day of 24 hours
    has one UTC offset, so its boundaries are written from their hour number (a
    backfill's batches are built at the broker's pace). A DST day asks :func:`local_iso`."""
    start, end = day_bounds(hourly.day)
    offset = local_iso(start)[-6:]
    if end - start != timedelta(hours=24) or local_iso(end)[-6:] != offset:
        return local_iso
    first = start.timestamp()
    day, after = hourly.day.isoformat(), (hourly.day + timedelta(days=1)).isoformat()
    texts = [f"{day}T{i:02d}:00:00{offset}" for i in range(24)]
    texts.append(f"{after}T00:00:00{offset}")

    def iso(moment: datetime) -> str:
        seconds = moment.timestamp() - first
        i = int(seconds // 3600)
        if seconds % 3600 or not 0 <= i <= 24:
            return local_iso(moment)  # not a boundary of the day: never in a batch
        return texts[i]
    return iso


def max_power_payload(pdl: str, day: date, va: float, peak_at: datetime | None) -> dict[str, Any]:
    """``B/<pdl>/max_power/day``: the day's peak apparent power and when it happened."""
    return {
        "pdl": pdl,
        "date": day.isoformat(),
        "value": round(va),
        "unit": "VA",
        "time": _iso(peak_at),
    }


def status_payload(  # noqa: PLR0917 - the positional order is the documented contract
    pdl: str,
    last_poll: datetime | None,
    last_success: datetime | None,
    last_error: str | None,
    latest_day: date | None,
    budget: Mapping[str, Any],
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``B/<pdl>/status``. ``extra`` adds keys (never replaces the contract's ones)."""
    payload: dict[str, Any] = {
        "pdl": pdl,
        "last_poll": _iso(last_poll),
        "last_success": _iso(last_success),
        "last_error": last_error,
        "latest_day": None if latest_day is None else latest_day.isoformat(),
        "budget": dict(budget),
    }
    for key, value in (extra or {}).items():
        payload.setdefault(key, value)
    return payload


# -- contract ------------------------------------------------------------------------------


def contract_payload(
    pdl: str, contract: Contract | Mapping[str, Any] | list[Any]
) -> dict[str, Any]:
    """``B/<pdl>/contract``: the consumer contract's facts, the producer's segment, the answer.

    ``subscribed_power_kva`` (number), ``tariff``, ``offpeak_hours``, ``segment``,
    ``contract_type`` and ``contract_start`` are null where the provider's answer does not
    say. ``producer`` is ``{"segment", "contract_type", "contract_start"}`` for a PDL that
    also produces (a second, producer contract), else null. ``raw`` keeps the answer as
    received, without its personal blocks (name, address, phone).
    """
    parsed = contract if isinstance(contract, Contract) else parse_contract(contract)
    main = parsed.main
    producer = parsed.producer
    return {
        "pdl": pdl,
        "subscribed_power_kva": main.subscribed_kva,
        "tariff": main.tariff,
        "offpeak_hours": main.offpeak_hours,
        "segment": main.segment,
        "contract_type": main.contract_type,
        "contract_start": main.start,
        "producer": None if producer is None or producer is main else {
            "segment": producer.segment,
            "contract_type": producer.contract_type,
            "contract_start": producer.start,
        },
        "raw": parsed.raw,
    }
