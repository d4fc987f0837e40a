"""Tariffs: dated price periods, off-peak ranges, attribution of load-curve intervals, costs.

Pure: no I/O, no clock, no configuration or store access. The caller hands in the
tariff (parsed here from its configuration form), the off-peak ranges (from the
configuration, else from the contract text), the Tempo colours it knows and the
intervals of the stored load curve; this module answers, per day or per month, the
energy of every period (``hp``/``hc``, ``base`` or the six Tempo names) and its cost.

Rules (each one chosen so a user reading an EDF bill finds the same numbers):

* **Tariff periods** are dated: ``{from, to?, option, prices, subscription?}``. ``from``
  is the first day, ``to`` the first day NOT covered (exclusive; a period without ``to``
  runs until the next one starts). Periods may not overlap; a price change is a new
  period, so history is never recomputed with today's price. An interval is priced by the
  period in force on the Europe/Paris date of its START.
* **Off-peak ranges** are wall-clock ranges in Europe/Paris (``22:30-06:30`` crosses
  midnight). Configured ranges win over the contract's ``offpeak_hours`` text. They may
  be seasonal (the 2025-2027 reform): ``summer`` covers April 1 - October 31, ``winter``
  November 1 - March 31, by the Paris date of each instant.
* **Attribution** follows the true Europe/Paris timeline (23/25-hour days): every
  interval (UTC start, length, Wh) is cut at each UTC minute, each minute takes the class
  of its local wall-clock start, and energy is shared pro rata of time. So a range
  boundary inside an interval (22:36 in the 22:30-23:00 interval) splits that interval:
  6/30 of its energy HP, 24/30 HC. Enedis stamps are interval ENDS; this module receives
  STARTS (as the store keeps them).
* **Tempo**: HC 22:00-06:00, HP 06:00-22:00; a Tempo day runs 06:00 -> 06:00, so the
  hours 00:00-06:00 take the PREVIOUS date's colour. An unknown colour is never blue: its
  energy goes to the ``unknown`` period and gets no price.
* **Daily data only** (no load curve that day): no split, no per-period cost, and the
  result says why (``reasons``); a ``base`` tariff needs no split and is priced anyway.
* **Money**: energies are kept as exact fractions of a Wh and prices as exact decimals,
  so nothing is rounded on the way. Only displayed figures are rounded, each on its own,
  half-up to the cent: the total ``value`` is the rounded exact sum, so displayed period
  costs may differ from it by at most half a cent each. The subscription (EUR/month) is
  charged per day as ``monthly / days in that month``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "OPTION_PERIODS",
    "UNKNOWN",
    "Breakdown",
    "Colour",
    "Cost",
    "CurvePoint",
    "OffpeakError",
    "OffpeakRange",
    "OffpeakSchedule",
    "OffpeakSource",
    "Option",
    "Tariff",
    "TariffError",
    "TariffPeriod",
    "attribute",
    "breakdown_day",
    "combine",
    "parse_offpeak_config",
    "parse_offpeak_text",
    "parse_tariff",
    "period_at",
    "price_at",
    "resolve_offpeak",
    "round_cents",
    "tempo_date",
    "tempo_prices",
]

PARIS = ZoneInfo("Europe/Paris")
UNKNOWN = "unknown"
CENT = Decimal("0.01")
MAX_PRICE = Decimal(10)  # EUR/kWh: anything above is a unit mistake (c€ or €/MWh)
MAX_SUBSCRIPTION = Decimal(1000)  # EUR/month
TEMPO_DAY_START = 6 * 60  # 06:00, minutes of the day
TEMPO_HC = ((22 * 60, 6 * 60),)  # Tempo off-peak hours: 22:00-06:00
_MICROSECOND = timedelta(microseconds=1)


class Option(StrEnum):
    BASE = "base"
    HPHC = "hphc"
    TEMPO = "tempo"


class Colour(StrEnum):
    BLUE = "blue"
    WHITE = "white"
    RED = "red"


OPTION_PERIODS: dict[Option, tuple[str, ...]] = {
    Option.BASE: ("base",),
    Option.HPHC: ("hp", "hc"),
    Option.TEMPO: ("hp_blue", "hc_blue", "hp_white", "hc_white", "hp_red", "hc_red"),
}


class TariffError(ValueError):
    """A tariff configuration is invalid; ``problems`` lists every one, each with its path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class OffpeakError(ValueError):
    """Off-peak ranges that cannot be read; ``problems`` lists every one with its path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# ----------------------------------------------------------------------------- tariffs


@dataclass(frozen=True)
class TariffPeriod:
    start: date
    end: date | None  # exclusive; None: open (or until the next period's start)
    option: Option
    prices: Mapping[str, Decimal]  # EUR/kWh TTC per period name
    subscription: Decimal | None = None  # EUR/month TTC

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True)
class Tariff:
    """Dated periods in time order, never overlapping (see :func:`parse_tariff`)."""

    periods: tuple[TariffPeriod, ...]

    def at(self, day: date) -> TariffPeriod | None:
        """The period in force on the Europe/Paris date ``day`` (None: no tariff then)."""
        for period in self.periods:
            if period.covers(day):
                return period
        return None


def _date(value: Any, where: str, problems: list[str]) -> date | None:
    if isinstance(value, datetime):
        problems.append(f"{where}: expected a date (YYYY-MM-DD), got a date and time")
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.append(f"{where}: expected a date (YYYY-MM-DD), got {value!r}")
    return None


def _money(value: Any, where: str, unit: str, ceiling: Decimal,
           problems: list[str]) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        problems.append(f"{where}: expected a number in {unit}, got {value!r}")
        return None
    try:
        amount = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        problems.append(f"{where}: expected a number in {unit}, got {value!r}")
        return None
    if not amount.is_finite() or amount < 0:
        problems.append(f"{where}: expected a positive number in {unit}, got {value!r}")
        return None
    if amount > ceiling:
        problems.append(f"{where}: {value!r} {unit} is implausible (more than {ceiling}); "
                        f"prices are in EUR, not cents or EUR/MWh")
        return None
    return amount


def parse_tariff(raw: Any, path: str = "tariffs") -> Tariff:
    """A :class:`Tariff` from its configuration form; TariffError lists every problem.

    ``raw`` is a list of mappings ``{from, to?, option, prices, subscription?}``, e.g.
    ``[{"from": "2026-08-01", "option": "hphc", "prices": {"hp": 0.2142, "hc": 0.1589},
    "subscription": 15.86}]``. Messages name the dotted path (``tariffs[1].prices.hc``).
    """
    problems: list[str] = []
    if not isinstance(raw, list) or not raw:
        raise TariffError([f"{path}: expected a non-empty list of dated periods, got {raw!r}"])
    periods: list[TariffPeriod] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected a mapping with from, option and prices, "
                            f"got {item!r}")
            continue
        unknown = sorted(set(map(str, item)) - {"from", "to", "option", "prices",
                                                "subscription"})
        problems.extend(f"{where}.{key}: unknown key (expected from, to, option, prices, "
                        f"subscription)" for key in unknown)
        start = _date(item.get("from"), f"{where}.from", problems) if "from" in item else None
        if "from" not in item:
            problems.append(f"{where}.from: missing (the first day this price applies)")
        end = None
        if item.get("to") is not None:
            end = _date(item["to"], f"{where}.to", problems)
            if start is not None and end is not None and end <= start:
                problems.append(f"{where}.to: {end} is not after from ({start}); "
                                f"to is the first day no longer covered")
        option_raw = item.get("option")
        try:
            option = Option(str(option_raw).strip().lower())
        except ValueError:
            problems.append(f"{where}.option: expected one of base, hphc, tempo, "
                            f"got {option_raw!r}")
            continue
        names = OPTION_PERIODS[option]
        prices_raw = item.get("prices")
        prices: dict[str, Decimal] = {}
        if not isinstance(prices_raw, Mapping):
            problems.append(f"{where}.prices: expected a mapping {{{', '.join(names)}}} in "
                            f"EUR/kWh, got {prices_raw!r}")
        else:
            for key in sorted(set(map(str, prices_raw)) - set(names)):
                problems.append(f"{where}.prices.{key}: not a period of option {option} "
                                f"(expected {', '.join(names)})")
            for name in names:
                if name not in prices_raw:
                    problems.append(f"{where}.prices.{name}: missing (EUR/kWh)")
                    continue
                price = _money(prices_raw[name], f"{where}.prices.{name}", "EUR/kWh",
                               MAX_PRICE, problems)
                if price is not None:
                    prices[name] = price
        subscription = None
        if item.get("subscription") is not None:
            subscription = _money(item["subscription"], f"{where}.subscription",
                                  "EUR/month", MAX_SUBSCRIPTION, problems)
        if start is not None and len(prices) == len(names):
            periods.append(TariffPeriod(start, end, option, prices, subscription))
    if problems:
        raise TariffError(problems)
    order = sorted(range(len(periods)), key=lambda k: periods[k].start)
    closed: list[TariffPeriod] = []
    for rank, k in enumerate(order):
        period = periods[k]
        following = periods[order[rank + 1]] if rank + 1 < len(order) else None
        if following is not None:
            if following.start == period.start or (
                    period.end is not None and period.end > following.start):
                problems.append(f"{path}[{k}]: overlaps {path}[{order[rank + 1]}] (from "
                                f"{following.start}); a price change is a new period that "
                                f"starts where the previous one ends")
            elif period.end is None:
                period = TariffPeriod(period.start, following.start, period.option,
                                      period.prices, period.subscription)
        closed.append(period)
    if problems:
        raise TariffError(problems)
    return Tariff(tuple(closed))


# ----------------------------------------------------------------------------- off-peak


@dataclass(frozen=True)
class OffpeakRange:
    """A wall-clock range in minutes of the day; ``end <= start`` crosses midnight."""

    start: int  # 0..1439
    end: int  # 0..1439 (24:00 is stored as 0)

    def contains(self, minute: float) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:" \
               f"{self.end % 60:02d}"


class OffpeakSource(StrEnum):
    CONFIGURATION = "configuration"
    CONTRACT = "contract"


@dataclass(frozen=True)
class OffpeakSchedule:
    """Off-peak ranges: the same every day (``all_year``) or per season."""

    all_year: tuple[OffpeakRange, ...] = ()
    summer: tuple[OffpeakRange, ...] = ()  # April 1 - October 31
    winter: tuple[OffpeakRange, ...] = ()  # November 1 - March 31
    seasonal: bool = False
    source: OffpeakSource = OffpeakSource.CONFIGURATION

    def ranges_on(self, day: date) -> tuple[OffpeakRange, ...]:
        if not self.seasonal:
            return self.all_year
        return self.summer if 4 <= day.month <= 10 else self.winter

    def describe(self) -> str:
        if not self.seasonal:
            return ", ".join(map(str, self.all_year))
        return (f"summer {', '.join(map(str, self.summer))}; "
                f"winter {', '.join(map(str, self.winter))}")


_RANGE_RE = re.compile(
    r"(\d{1,2})\s*(?:[Hh:](\d{2})?|[Hh])?\s*(?:-|\u2013)\s*(\d{1,2})\s*(?:[Hh:](\d{2})?)?")


def _minutes(hours: str, minutes: str | None) -> int | None:
    h, m = int(hours), int(minutes or 0)
    if m >= 60 or h > 24 or (h == 24 and m):
        return None
    return (h * 60 + m) % 1440


def parse_offpeak_text(text: str, where: str = "offpeak_hours") -> tuple[OffpeakRange, ...]:
    """Ranges from the contract's free text, tolerantly; OffpeakError if none is readable.

    Accepts ``HC (22H00-6H00)``, ``HC (22H00-6H00;12h00-14h00)``,
    ``HC (02H00-07H00 + 13H00-16H00)``, ``HC (22H30-6H30), (13H00-15H00)``, ``22:36-06:36``
    (``H``, ``h`` or ``:``; minutes optional; separators ``;`` ``,`` ``+``). A range
    whose start equals its end (``0H00-0H00``) is refused: it names no hours.
    """
    problems: list[str] = []
    ranges: list[OffpeakRange] = []
    for match in _RANGE_RE.finditer(text):
        start = _minutes(match.group(1), match.group(2))
        end = _minutes(match.group(3), match.group(4))
        if start is None or end is None:
            problems.append(f"{where}: {match.group(0).strip()!r} is not a time range")
        elif start == end:
            problems.append(f"{where}: {match.group(0).strip()!r} starts where it ends")
        else:
            ranges.append(OffpeakRange(start, end))
    if not ranges and not problems:
        problems.append(f"{where}: no time range (like 22:30-06:30) in {text!r}")
    if problems:
        raise OffpeakError(problems)
    return tuple(ranges)


def _ranges_list(raw: Any, where: str, problems: list[str]) -> tuple[OffpeakRange, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: expected a list of ranges like [\"22:30-06:30\"], "
                        f"got {raw!r}")
        return ()
    ranges: list[OffpeakRange] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            problems.append(f"{where}[{i}]: expected a range like \"22:30-06:30\", "
                            f"got {item!r}")
            continue
        match = _RANGE_RE.fullmatch(item.strip())
        if match is None:
            problems.append(f"{where}[{i}]: expected a range like \"22:30-06:30\", "
                            f"got {item!r}")
            continue
        try:
            ranges.extend(parse_offpeak_text(item, f"{where}[{i}]"))
        except OffpeakError as exc:
            problems.extend(exc.problems)
    covered = [m for r in ranges for m in range(1440) if r.contains(m)]
    if len(covered) != len(set(covered)):
        problems.append(f"{where}: ranges overlap")
    return tuple(ranges)


def parse_offpeak_config(raw: Any, where: str = "offpeak_hours") -> OffpeakSchedule:
    """The configuration form: ``["22:30-06:30", "12:30-14:30"]`` or
    ``{"summer": [...], "winter": [...]}``; OffpeakError lists every problem."""
    problems: list[str] = []
    if isinstance(raw, Mapping):
        unknown = sorted(set(map(str, raw)) - {"summer", "winter"})
        problems.extend(f"{where}.{key}: unknown season (expected summer and winter)"
                        for key in unknown)
        for season in ("summer", "winter"):
            if season not in raw:
                problems.append(f"{where}.{season}: missing (a seasonal schedule names both)")
        summer = _ranges_list(raw.get("summer", []), f"{where}.summer", problems) \
            if "summer" in raw else ()
        winter = _ranges_list(raw.get("winter", []), f"{where}.winter", problems) \
            if "winter" in raw else ()
        if problems:
            raise OffpeakError(problems)
        return OffpeakSchedule(summer=summer, winter=winter, seasonal=True)
    ranges = _ranges_list(raw, where, problems)
    if problems:
        raise OffpeakError(problems)
    return OffpeakSchedule(all_year=ranges)


def resolve_offpeak(configured: OffpeakSchedule | None, contract_text: str | None
                    ) -> tuple[OffpeakSchedule | None, str | None]:
    """The schedule in force (configuration wins) and, when there is none, why."""
    if configured is not None:
        return configured, None
    if contract_text is None or not contract_text.strip():
        return None, ("no off-peak hours: the contract gives none and the configuration "
                      "names none (set offpeak_hours)")
    try:
        ranges = parse_offpeak_text(contract_text, "contract offpeak_hours")
    except OffpeakError as exc:
        return None, f"no off-peak hours: {exc} (set offpeak_hours)"
    return OffpeakSchedule(all_year=ranges, source=OffpeakSource.CONTRACT), None


# ----------------------------------------------------------------------------- attribution


@dataclass(frozen=True)
class CurvePoint:
    """One load-curve interval: aware START (any zone), length in minutes, energy in Wh."""

    start: datetime
    minutes: int
    wh: Fraction | Decimal | int | float


def tempo_date(local: datetime) -> date:
    """The Tempo day a Europe/Paris wall-clock instant belongs to (days start at 06:00)."""
    return (local.replace(tzinfo=None) - timedelta(minutes=TEMPO_DAY_START)).date()


def _exact(value: Fraction | Decimal | int | float) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


def _in_ranges(ranges: Iterable[OffpeakRange] | Iterable[tuple[int, int]],
               minute: float) -> bool:
    for item in ranges:
        r = item if isinstance(item, OffpeakRange) else OffpeakRange(*item)
        if r.contains(minute):
            return True
    return False


def _period_of(local: datetime, option: Option, offpeak: OffpeakSchedule | None,
               colours: Mapping[date, Colour | None]) -> str:
    minute = local.hour * 60 + local.minute + local.second / 60
    if option is Option.BASE:
        return "base"
    if option is Option.HPHC:
        assert offpeak is not None
        return "hc" if _in_ranges(offpeak.ranges_on(local.date()), minute) else "hp"
    colour = colours.get(tempo_date(local))
    if colour is None:
        return UNKNOWN
    return f"{'hc' if _in_ranges(TEMPO_HC, minute) else 'hp'}_{colour}"


def _edges(option: Option, offpeak: OffpeakSchedule | None) -> frozenset[int]:
    """Wall-clock minutes where the class may change (midnight: dates and seasons)."""
    if option is Option.BASE:
        return frozenset()
    edges = {0}
    if option is Option.TEMPO:
        edges |= {TEMPO_DAY_START, TEMPO_HC[0][0], TEMPO_HC[0][1]}
    elif offpeak is not None:
        for r in (*offpeak.all_year, *offpeak.summer, *offpeak.winter):
            edges |= {r.start, r.end}
    return frozenset(edges)


def _crosses(first: datetime, last: datetime, minutes: int, edges: frozenset[int]) -> bool:
    """Whether the interval from wall instant ``first`` (``minutes`` long, ``last`` its
    final microsecond) may contain a class change: an edge strictly inside, or a DST
    change (then the cautious minute-by-minute path is taken)."""
    if not edges:
        return False
    if first.utcoffset() != last.utcoffset() or minutes >= 1440:
        return True
    m0 = first.hour * 60 + first.minute + (first.second + first.microsecond / 1e6) / 60
    return any(m0 < e < m0 + minutes or m0 < e + 1440 < m0 + minutes for e in edges)


def attribute(points: Iterable[CurvePoint], option: Option,
              offpeak: OffpeakSchedule | None = None,
              colours: Mapping[date, Colour | None] | None = None) -> dict[str, Fraction]:
    """Exact Wh per period name for ``points`` (``unknown``: Tempo days without colour).

    Every interval is cut at each UTC minute; each piece takes the class of its
    Europe/Paris wall-clock start and a share of the energy pro rata of its duration,
    so the result sums exactly to the energy of ``points``. ``hphc`` needs ``offpeak``.
    """
    if option is Option.HPHC and offpeak is None:
        raise ValueError("the hphc option needs off-peak ranges")
    colours = colours or {}
    edges = _edges(option, offpeak)
    out: dict[str, Fraction] = {}
    for point in points:
        if point.start.tzinfo is None:
            raise ValueError(f"naive interval start {point.start!r}")
        if point.minutes <= 0:
            raise ValueError(f"interval length must be positive, got {point.minutes}")
        energy = _exact(point.wh)
        start = point.start.astimezone(UTC)
        end = start + timedelta(minutes=point.minutes)
        wall = start.astimezone(PARIS)
        if not _crosses(wall, (end - _MICROSECOND).astimezone(PARIS), point.minutes, edges):
            # the common case: no boundary inside, the whole interval has one class
            name = _period_of(wall, option, offpeak, colours)
            out[name] = out.get(name, Fraction(0)) + energy
            continue
        total = Fraction(point.minutes * 60)
        cursor = start
        while cursor < end:
            nxt = min(end, cursor.replace(second=0, microsecond=0) + timedelta(minutes=1))
            name = _period_of(cursor.astimezone(PARIS), option, offpeak, colours)
            share = Fraction((nxt - cursor) // _MICROSECOND, 1_000_000)
            out[name] = out.get(name, Fraction(0)) + energy * share / total
            cursor = nxt
    return out


def period_at(moment: datetime, option: Option, offpeak: OffpeakSchedule | None = None,
              colours: Mapping[date, Colour | None] | None = None) -> str:
    """The period name in force at an aware instant (``unknown``: Tempo without colour).

    For labels (an hourly point's period, the current period); energy is split with
    :func:`attribute`, which cuts an interval at every boundary.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive instant {moment!r}")
    if option is Option.HPHC and offpeak is None:
        raise ValueError("the hphc option needs off-peak ranges")
    return _period_of(moment.astimezone(PARIS), option, offpeak, colours or {})


def price_at(moment: datetime, tariff: Tariff, offpeak: OffpeakSchedule | None = None,
             colours: Mapping[date, Colour | None] | None = None
             ) -> tuple[str, Decimal | None] | None:
    """(period name, EUR/kWh) in force at ``moment``; the price is None for ``unknown``
    (or an hphc tariff without off-peak hours); None when no tariff period covers it."""
    period = tariff.at(moment.astimezone(PARIS).date())
    if period is None:
        return None
    if period.option is Option.HPHC and offpeak is None:
        return UNKNOWN, None
    name = period_at(moment, period.option, offpeak, colours)
    return name, period.prices.get(name)


def tempo_prices(tariff: Tariff, day: date, colour: Colour | None) -> dict[str, Decimal] | None:
    """``{"hp": EUR/kWh, "hc": EUR/kWh}`` of ``colour`` on ``day`` (None: unknown colour
    or no Tempo tariff that day), for the ``tempo/today``/``tempo/tomorrow`` payloads."""
    period = tariff.at(day)
    if colour is None or period is None or period.option is not Option.TEMPO:
        return None
    return {"hp": period.prices[f"hp_{colour}"], "hc": period.prices[f"hc_{colour}"]}


# ----------------------------------------------------------------------------- costs


def round_cents(amount: Fraction | Decimal) -> Decimal:
    """Half-up to the cent (the one rounding rule; applied to displayed figures only)."""
    if isinstance(amount, Fraction):
        amount = Decimal(amount.numerator) / Decimal(amount.denominator)
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _kwh(wh: Fraction) -> float:
    return round(float(wh) / 1000.0, 6)


@dataclass(frozen=True)
class Cost:
    """Exact EUR amounts; rounded only in :meth:`payload`."""

    periods: Mapping[str, Fraction]  # energy cost per priced period
    subscription: Fraction | None
    complete: bool = True  # False: some energy had no price (see the breakdown's reasons)

    @property
    def exact(self) -> Fraction:
        return sum(self.periods.values(), Fraction(0)) + (self.subscription or 0)

    @property
    def value(self) -> Decimal:
        return round_cents(self.exact)

    def payload(self) -> dict[str, Any]:
        return {
            "value": float(self.value),
            "currency": "EUR",
            "periods": {k: float(round_cents(v)) for k, v in self.periods.items()},
            "subscription": None if self.subscription is None
            else float(round_cents(self.subscription)),
            "complete": self.complete,
        }


@dataclass(frozen=True)
class Breakdown:
    """A day's (or a month's) energy per period and its cost, payload-ready.

    ``periods`` is None when no split was possible; ``unsplit_wh`` is the energy of days
    without a load curve (a month may mix both); ``reasons`` says what is missing.
    """

    start: date
    end: date  # exclusive
    total_wh: Fraction
    periods: Mapping[str, Fraction] | None
    cost: Cost | None
    unsplit_wh: Fraction = Fraction(0)
    reasons: tuple[str, ...] = field(default_factory=tuple)
    subscription: Fraction | None = None  # EUR, charged even on days without a split

    def periods_payload(self) -> dict[str, float] | None:
        """``{"hc": kWh, "hp": kWh}`` (or the Tempo names, ``unknown``), or None."""
        return None if self.periods is None else {k: _kwh(v) for k, v in self.periods.items()}

    def cost_payload(self) -> dict[str, Any] | None:
        return None if self.cost is None else self.cost.payload()


def _day_subscription(period: TariffPeriod, day: date) -> Fraction | None:
    if period.subscription is None:
        return None
    first_next = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    days_in_month = (first_next - day.replace(day=1)).days
    return Fraction(period.subscription) / days_in_month


def _ordered(periods: Mapping[str, Fraction], option: Option | None) -> dict[str, Fraction]:
    order = list(OPTION_PERIODS[option]) if option is not None else []
    names = [n for n in order if n in periods] + sorted(n for n in periods if n not in order)
    return {n: periods[n] for n in names}


def breakdown_day(day: date, tariff: Tariff | None, *,
                  curve: Sequence[CurvePoint] | None = None,
                  daily_wh: Fraction | Decimal | int | float | None = None,
                  offpeak: OffpeakSchedule | None = None, offpeak_reason: str | None = None,
                  colours: Mapping[date, Colour | None] | None = None) -> Breakdown:
    """The split and cost of one Europe/Paris ``day``.

    ``curve``: the day's intervals (those whose start falls on ``day``), or None when only
    the daily total is known (``daily_wh``). Tempo days need ``colours`` for ``day`` and
    for the day before (its colour runs until 06:00).
    """
    nxt = day + timedelta(days=1)
    period = tariff.at(day) if tariff is not None else None
    if curve is not None:
        for point in curve:
            if point.start.astimezone(PARIS).date() != day:
                raise ValueError(f"interval starting {point.start.isoformat()} is not on {day}")
        total = sum((_exact(p.wh) for p in curve), Fraction(0))
    elif daily_wh is not None:
        total = _exact(daily_wh)
    else:
        raise ValueError("a day needs its curve or its daily total")
    if tariff is None or period is None:
        why = "no tariff configured" if tariff is None else f"no tariff period covers {day}"
        return Breakdown(day, nxt, total, None, None, reasons=(why,))
    subscription = _day_subscription(period, day)
    if period.option is Option.BASE:
        base = {"base": total}
        cost = Cost({"base": total * Fraction(period.prices["base"]) / 1000}, subscription)
        return Breakdown(day, nxt, total, base, cost, subscription=subscription)
    if curve is None:
        why = f"{day}: daily data only (no load curve), so no {period.option} split"
        return Breakdown(day, nxt, total, None, None, unsplit_wh=total, reasons=(why,),
                         subscription=subscription)
    if period.option is Option.HPHC and offpeak is None:
        why = offpeak_reason or "no off-peak hours"
        return Breakdown(day, nxt, total, None, None, unsplit_wh=total, reasons=(why,),
                         subscription=subscription)
    split = _ordered(attribute(curve, period.option, offpeak, colours), period.option)
    priced = {k: v * Fraction(period.prices[k]) / 1000 for k, v in split.items() if k != UNKNOWN}
    reasons: tuple[str, ...] = ()
    if UNKNOWN in split:
        reasons = (f"{day}: Tempo colour unknown for part of the day; "
                   f"{_kwh(split[UNKNOWN])} kWh unpriced",)
    return Breakdown(day, nxt, total, split, Cost(priced, subscription, not reasons),
                     reasons=reasons, subscription=subscription)


def combine(days: Sequence[Breakdown]) -> Breakdown:
    """A month (or any span) from its days: sums of exact values, then one rounding."""
    if not days:
        raise ValueError("nothing to combine")
    total = sum((d.total_wh for d in days), Fraction(0))
    unsplit = sum((d.unsplit_wh for d in days), Fraction(0))
    periods: dict[str, Fraction] = {}
    costs: dict[str, Fraction] = {}
    subscription: Fraction | None = None
    any_split = any_cost = False
    complete = True
    for d in days:
        if d.periods is not None:
            any_split = True
            for k, v in d.periods.items():
                periods[k] = periods.get(k, Fraction(0)) + v
        if d.subscription is not None:
            subscription = (subscription or Fraction(0)) + d.subscription
        if d.cost is None:
            complete = False
            continue
        any_cost = True
        complete = complete and d.cost.complete
        for k, v in d.cost.periods.items():
            costs[k] = costs.get(k, Fraction(0)) + v
    reasons = tuple(r for d in days for r in d.reasons)
    option = next((o for o in Option if set(periods) <= set(OPTION_PERIODS[o])), None)
    return Breakdown(
        min(d.start for d in days), max(d.end for d in days), total,
        _ordered(periods, option) if any_split else None,
        Cost(_ordered(costs, option), subscription, complete) if any_cost else None,
        unsplit, reasons, subscription)
