"""Tariffs applied to the store: the per-period split and cost of days, months and hours.

:mod:`linky2mqtt.tariffs` is pure; this module feeds it from the store for one meter at a
time. A meter's tariff and configured off-peak ranges come from its configuration
(``meter(pdl)``); the contract's ``offpeak_hours`` text from the retained contract
payload; Tempo colours from the store's ``tempo_days`` table (filled by
:mod:`linky2mqtt.tempo_worker`).

Only consumption is priced. A day is split from its load curve when the store holds the
whole day's curve (46, 48 or 50 half-hours); otherwise the day is "daily data only":
no split, and the payload says why (never a guess). The publisher, the ``read`` command
and the status all call the same functions, so they agree to the exact Wh and cent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

from linky2mqtt import topics
from linky2mqtt.model import PARIS, Kind, day_bounds, kwh, resolution_minutes
from linky2mqtt.store import Store
from linky2mqtt.tariffs import (
    OPTION_PERIODS,
    Breakdown,
    Colour,
    CurvePoint,
    OffpeakSchedule,
    Option,
    Tariff,
    attribute,
    breakdown_day,
    combine,
    period_at,
    price_at,
    resolve_offpeak,
)

__all__ = ["MeterTariff", "Pricing", "split_fields"]


class MeterTariff(Protocol):
    """What pricing needs of a meter's configuration (a ``config.MeterConfig``)."""

    @property
    def tariff(self) -> Tariff | None: ...

    @property
    def offpeak(self) -> OffpeakSchedule | None: ...


@dataclass(frozen=True)
class _Context:
    tariff: Tariff
    offpeak: OffpeakSchedule | None
    reason: str | None  # why there are no off-peak ranges (hphc only)


def split_fields(b: Breakdown, *, month: bool = False) -> dict[str, Any]:
    """The keys a day or month payload gains: ``periods`` (kWh per period, or null when
    no split), ``cost`` (or null), ``split_reason`` when something is missing, and for a
    month ``unsplit`` (kWh of days without a load curve)."""
    out: dict[str, Any] = {"periods": b.periods_payload(), "cost": b.cost_payload()}
    if month:
        out["unsplit"] = kwh(float(b.unsplit_wh))
    if b.reasons:
        out["split_reason"] = "; ".join(dict.fromkeys(b.reasons))
    return out


def _wh(value: float) -> Fraction:
    return Fraction(repr(round(value, 6)))


class Pricing:
    """Per-meter breakdowns over the store; thread-safe (the store is)."""

    def __init__(self, store: Store, base: str,
                 meter: Callable[[str], MeterTariff | None]) -> None:
        self.store = store
        self.base = base
        self.meter = meter
        self._memo_lock = threading.Lock()
        self._memo: tuple[tuple[str, Kind, datetime, datetime],
                          dict[str, list[tuple[datetime, float]]]] | None = None

    # ---- what applies to a meter -------------------------------------------------------

    def _context(self, pdl: str) -> _Context | None:
        m = self.meter(pdl)
        if m is None or m.tariff is None:
            return None
        if any(p.option is Option.HPHC for p in m.tariff.periods):
            schedule, reason = resolve_offpeak(m.offpeak, self.contract_offpeak(pdl))
            return _Context(m.tariff, schedule, reason)
        return _Context(m.tariff, m.offpeak, None)

    def priced(self, pdl: str, kind: Kind) -> bool:
        """Whether ``pdl``'s ``kind`` gets a split and a cost (a tariff, consumption)."""
        return kind is Kind.CONSUMPTION and self._context(pdl) is not None

    def contract_offpeak(self, pdl: str) -> str | None:
        body = self.store.get_retained(topics.contract_topic(self.base, pdl))
        if not body:
            return None
        try:
            text = json.loads(body).get("offpeak_hours")
        except (ValueError, AttributeError):
            return None
        return text if isinstance(text, str) else None

    def status(self, pdl: str) -> dict[str, Any] | None:
        """``B/<pdl>/status``'s ``tariff``: the option(s), the off-peak ranges in force,
        where they come from, and why there is no split (``problem``)."""
        ctx = self._context(pdl)
        if ctx is None:
            return None
        options = list(dict.fromkeys(str(p.option) for p in ctx.tariff.periods))
        return {
            "option": "/".join(options),
            "offpeak": None if ctx.offpeak is None else ctx.offpeak.describe(),
            "source": None if ctx.offpeak is None else str(ctx.offpeak.source),
            "problem": ctx.reason,
        }

    def colours(self, start: date, end: date) -> dict[date, Colour | None]:
        return {d: None if c is None else Colour(c)
                for d, (c, _) in self.store.tempo_days(start, end).items()}

    # ---- days and months ---------------------------------------------------------------

    def _curves(self, pdl: str, kind: Kind, start: date, end: date
                ) -> dict[date, list[CurvePoint]]:
        """The load curve of each day of ``[start, end)`` the store holds whole."""
        whole = self.store.days_with_complete_curve(pdl, kind, start, end)
        if not whole:
            return {}
        out: dict[date, list[CurvePoint]] = {d: [] for d in whole}
        seen: set[datetime] = set()
        for r in self.store.readings(pdl, kind, "curve", day_bounds(start)[0],
                                     day_bounds(end)[0]):
            if r.local_date in out and r.start not in seen:
                seen.add(r.start)
                out[r.local_date].append(
                    CurvePoint(r.start, resolution_minutes(r.resolution), _wh(r.value)))
        return out

    def days(self, pdl: str, kind: Kind, daily: Mapping[date, float]
             ) -> dict[date, Breakdown] | None:
        """The breakdown of each day of ``daily`` (Wh by day); None: not priced."""
        ctx = self._context(pdl)
        if kind is not Kind.CONSUMPTION or ctx is None:
            return None
        if not daily:
            return {}
        first, last = min(daily), max(daily)
        curves = self._curves(pdl, kind, first, last + timedelta(days=1))
        colours = self.colours(first - timedelta(days=1), last + timedelta(days=1))
        return {d: breakdown_day(d, ctx.tariff, curve=curves.get(d), daily_wh=_wh(wh),
                                 offpeak=ctx.offpeak, offpeak_reason=ctx.reason,
                                 colours=colours)
                for d, wh in sorted(daily.items())}

    def day(self, pdl: str, kind: Kind, day: date, wh: float) -> Breakdown | None:
        got = self.days(pdl, kind, {day: wh})
        return None if got is None else got[day]

    def month(self, pdl: str, kind: Kind, daily: Mapping[date, float]) -> Breakdown | None:
        """The days held combined (None: not priced, or no day held)."""
        got = self.days(pdl, kind, daily)
        return combine(list(got.values())) if got else None

    # ---- hours -------------------------------------------------------------------------

    def hour_labels(self, pdl: str, kind: Kind, day: date
                    ) -> dict[datetime, dict[str, Any]] | None:
        """For each clock hour of ``day`` holding curve intervals (by its UTC start):
        ``{"period": name}``, plus ``"periods": {name: kWh}`` when the hour straddles a
        boundary (``period`` is then the one in force at its start). None: not priced, or
        no tariff period covers the day, or off-peak hours are unknown."""
        ctx = self._context(pdl)
        if kind is not Kind.CONSUMPTION or ctx is None:
            return None
        period = ctx.tariff.at(day)
        if period is None or (period.option is Option.HPHC and ctx.offpeak is None):
            return None
        colours = self.colours(day - timedelta(days=1), day + timedelta(days=1))
        lo, hi = day_bounds(day)
        hours: dict[datetime, list[CurvePoint]] = {}
        seen: set[datetime] = set()
        for r in self.store.readings(pdl, kind, "curve", lo, hi):
            if r.start in seen:
                continue
            seen.add(r.start)
            hour = r.start.replace(minute=0, second=0, microsecond=0)
            hours.setdefault(hour, []).append(
                CurvePoint(r.start, resolution_minutes(r.resolution), _wh(r.value)))
        out: dict[datetime, dict[str, Any]] = {}
        for hour, points in hours.items():
            split = attribute(points, period.option, ctx.offpeak, colours)
            label: dict[str, Any] = {"period": period_at(hour, period.option, ctx.offpeak,
                                                         colours)}
            if len(split) > 1:
                label["periods"] = {k: kwh(float(v)) for k, v in split.items()}
            out[hour] = label
        return out

    def price_now(self, pdl: str, now: datetime) -> dict[str, Any] | None:
        """``B/<pdl>/price``: ``{"period", "price" (EUR/kWh or null), "unit"}``; None when
        the meter is not priced."""
        ctx = self._context(pdl)
        if ctx is None:
            return None
        today = now.astimezone(PARIS).date()
        colours = self.colours(today - timedelta(days=1), today + timedelta(days=1))
        got = price_at(now, ctx.tariff, ctx.offpeak, colours)
        period, price = got if got is not None else (None, None)
        return {"period": period, "price": None if price is None else float(price),
                "unit": "EUR/kWh"}

    # ---- Home Assistant statistics: one series per period and per period's cost ------

    def stat_parts(self, pdl: str, kind: Kind) -> tuple[str, ...]:
        """``("hp", "hc", "cost_hp", "cost_hc")`` (or the Tempo names) for a priced series."""
        ctx = self._context(pdl)
        if kind is not Kind.CONSUMPTION or ctx is None:
            return ()
        names = self._names(ctx.tariff)
        return (*names, *(f"cost_{n}" for n in names))

    @staticmethod
    def _names(tariff: Tariff) -> tuple[str, ...]:
        names: dict[str, None] = {}
        for period in tariff.periods:
            names.update(dict.fromkeys(OPTION_PERIODS[period.option]))
        return tuple(names)

    def stat_hours(self, pdl: str, kind: Kind, part: str, start: datetime, end: datetime
                   ) -> list[tuple[datetime, float]]:
        """Hourly values of one part in ``[start, end)``: Wh of a period, or thousandths
        of EUR of its cost (``cost_<period>``); every hour holding curve intervals on a
        day a tariff period covers gets a value (0 when the period had none)."""
        key = (pdl, kind, start, end)
        with self._memo_lock:
            if self._memo is None or self._memo[0] != key:
                self._memo = (key, self._stat_values(pdl, kind, start, end))
            values = self._memo[1]
        return values.get(part, [])

    def _stat_values(self, pdl: str, kind: Kind, start: datetime, end: datetime
                     ) -> dict[str, list[tuple[datetime, float]]]:
        ctx = self._context(pdl)
        if kind is not Kind.CONSUMPTION or ctx is None or not start < end:
            return {}
        names = self._names(ctx.tariff)
        first = start.astimezone(PARIS).date()
        last = end.astimezone(PARIS).date()
        colours = self.colours(first - timedelta(days=1), last + timedelta(days=1))
        hours: dict[datetime, list[CurvePoint]] = {}
        seen: set[datetime] = set()
        for r in self.store.readings(pdl, kind, "curve", start, end):
            if r.start not in seen:
                seen.add(r.start)
                hours.setdefault(r.start.replace(minute=0, second=0, microsecond=0), []).append(
                    CurvePoint(r.start, resolution_minutes(r.resolution), _wh(r.value)))
        out: dict[str, list[tuple[datetime, float]]] = {}
        for hour in sorted(hours):
            period = ctx.tariff.at(hour.astimezone(PARIS).date())
            if period is None or (period.option is Option.HPHC and ctx.offpeak is None):
                continue
            split = attribute(hours[hour], period.option, ctx.offpeak, colours)
            for name in names:
                wh = split.get(name, Fraction(0))
                price = period.prices.get(name)
                out.setdefault(name, []).append((hour, float(wh)))
                out.setdefault(f"cost_{name}", []).append(
                    (hour, float(wh * Fraction(price)) if price is not None else 0.0))
        return out

    def tempo_meters(self, pdls: Iterable[str]) -> list[str]:
        """The PDLs among ``pdls`` with a Tempo period in their tariff."""
        out = []
        for pdl in pdls:
            m = self.meter(pdl)
            if m is not None and m.tariff is not None and any(
                    p.option is Option.TEMPO for p in m.tariff.periods):
                out.append(pdl)
        return out

