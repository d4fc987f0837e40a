"""Tariffs: parsing, attribution and costs, with expected values worked out by hand.

Every expected figure below is computed in the test itself (literal arithmetic on
explicit intervals, or an analytic wall-clock overlap that shares no code with the
minute-by-minute cutting of :mod:`linky2mqtt.tariffs`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linky2mqtt.tariffs import (
    UNKNOWN,
    Colour,
    CurvePoint,
    OffpeakError,
    OffpeakRange,
    OffpeakSchedule,
    OffpeakSource,
    Option,
    TariffError,
    attribute,
    breakdown_day,
    combine,
    parse_offpeak_config,
    parse_offpeak_text,
    parse_tariff,
    period_at,
    price_at,
    resolve_offpeak,
    tempo_date,
    tempo_prices,
)

PARIS = ZoneInfo("Europe/Paris")

# Regulated EDF prices of 2026-08-01 (../shared/tariffs.md section 3), and a made-up
# change on 2026-11-01 to prove that history keeps its own prices.
HPHC_TARIFF = [
    {"from": "2026-08-01", "to": "2026-11-01", "option": "hphc",
     "prices": {"hp": 0.2142, "hc": 0.1589}, "subscription": 15.86},
    {"from": date(2026, 11, 1), "option": "hphc",
     "prices": {"hp": "0.2200", "hc": "0.1600"}, "subscription": 16.00},
]
TEMPO_TARIFF = [
    {"from": "2026-08-01", "option": "tempo", "subscription": 15.59,
     "prices": {"hc_blue": 0.1356, "hp_blue": 0.1654, "hc_white": 0.1536,
                "hp_white": 0.1921, "hc_red": 0.1615, "hp_red": 0.7295}},
]


def cents(amount: Fraction | Decimal | float | str) -> Decimal:
    value = Decimal(str(amount)) if not isinstance(amount, Fraction) else (
        Decimal(amount.numerator) / Decimal(amount.denominator))
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def local(day: date, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), PARIS).replace(fold=fold)


def day_curve(day: date, wh: int | None = None, step: int = 30) -> list[CurvePoint]:
    """Every interval that starts on ``day`` (Paris), on the true UTC timeline."""
    start = datetime.combine(day, time(0), PARIS).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)
    points = []
    t, i = start, 0
    while t < end:
        points.append(CurvePoint(t, step, wh if wh is not None else 200 + 37 * (i % 13)))
        t += timedelta(minutes=step)
        i += 1
    return points


# ----------------------------------------------------------------------------- off-peak


@pytest.mark.parametrize(("text", "expected"), [
    ("HC (22H00-6H00)", ["22:00-06:00"]),
    ("HC (22H00-6H00;12h00-14h00)", ["22:00-06:00", "12:00-14:00"]),
    ("HC (1H30-8H00;12H30-14H00)", ["01:30-08:00", "12:30-14:00"]),
    ("HC (02H00-07H00 + 13H00-16H00)", ["02:00-07:00", "13:00-16:00"]),
    ("HC (22H30-6H30), (13H00-15H00)", ["22:30-06:30", "13:00-15:00"]),
    ("HC (23h00-7h30)", ["23:00-07:30"]),
    ("HC (22H36-6H36)", ["22:36-06:36"]),
    ("HC (1h34-7h34;12h34-14h34)", ["01:34-07:34", "12:34-14:34"]),
    ("00h50-7h20", ["00:50-07:20"]),
    ("22:30-06:30, 12:30-14:30", ["22:30-06:30", "12:30-14:30"]),
])
def test_contract_offpeak_text_is_read_tolerantly(text: str, expected: list[str]) -> None:
    assert [str(r) for r in parse_offpeak_text(text)] == expected


@pytest.mark.parametrize(("text", "message"), [
    ("HC (0H00-0H00)", "starts where it ends"),
    ("HC (25H00-6H00)", "is not a time range"),
    ("Heures creuses", "no time range"),
])
def test_unreadable_contract_offpeak_text_says_why(text: str, message: str) -> None:
    with pytest.raises(OffpeakError, match=message):
        parse_offpeak_text(text)


def test_configured_ranges_win_over_the_contract_and_none_gives_a_reason() -> None:
    configured = parse_offpeak_config(["22:30-06:30", "12:30-14:30"])
    schedule, why = resolve_offpeak(configured, "HC (22H00-6H00)")
    assert schedule is configured and why is None
    schedule, why = resolve_offpeak(None, "HC (22H00-6H00)")
    assert schedule is not None and schedule.source is OffpeakSource.CONTRACT
    assert schedule.describe() == "22:00-06:00"
    schedule, why = resolve_offpeak(None, None)
    assert schedule is None and why is not None and "set offpeak_hours" in why
    schedule, why = resolve_offpeak(None, "HC (0H00-0H00)")
    assert schedule is None and why is not None and "starts where it ends" in why


def test_seasonal_configuration_and_its_errors() -> None:
    schedule = parse_offpeak_config({"summer": ["11:00-17:00", "21:00-07:00"],
                                     "winter": ["21:00-07:00"]})
    assert [str(r) for r in schedule.ranges_on(date(2026, 4, 1))] == ["11:00-17:00",
                                                                      "21:00-07:00"]
    assert [str(r) for r in schedule.ranges_on(date(2026, 10, 31))] == ["11:00-17:00",
                                                                        "21:00-07:00"]
    assert [str(r) for r in schedule.ranges_on(date(2026, 11, 1))] == ["21:00-07:00"]
    with pytest.raises(OffpeakError) as err:
        parse_offpeak_config({"summer": ["11:00-17:00", 3], "autumn": []})
    assert err.value.problems == [
        "offpeak_hours.autumn: unknown season (expected summer and winter)",
        "offpeak_hours.winter: missing (a seasonal schedule names both)",
        "offpeak_hours.summer[1]: expected a range like \"22:30-06:30\", got 3",
    ]
    with pytest.raises(OffpeakError, match="ranges overlap"):
        parse_offpeak_config(["22:00-06:00", "05:00-07:00"])
    with pytest.raises(OffpeakError, match=r"offpeak_hours\[0\]"):
        parse_offpeak_config(["tonight"])


# ----------------------------------------------------------------------------- tariffs


def test_tariff_periods_are_dated_and_closed_by_the_next_one() -> None:
    tariff = parse_tariff(HPHC_TARIFF)
    assert tariff.at(date(2026, 7, 31)) is None
    october = tariff.at(date(2026, 10, 31))
    november = tariff.at(date(2026, 11, 1))
    assert october is not None and october.prices["hp"] == Decimal("0.2142")
    assert november is not None and november.prices["hc"] == Decimal("0.1600")
    open_ended = parse_tariff([{"from": "2026-02-01", "option": "base", "prices": {"base": 1}},
                               {"from": "2026-08-01", "option": "base",
                                "prices": {"base": 0.2001}}])
    first = open_ended.at(date(2026, 7, 31))
    assert first is not None and first.end == date(2026, 8, 1)


def test_every_tariff_problem_is_reported_with_its_path() -> None:
    with pytest.raises(TariffError) as err:
        parse_tariff([
            {"from": "2026-08-01", "option": "hphc", "prices": {"hp": 0.2142, "hx": 0.1}},
            {"from": "2026-13-01", "option": "tempo", "prices": {}},
            {"from": "2026-09-01", "to": "2026-08-01", "option": "bleu", "prices": {}},
            {"from": "2026-09-01", "option": "base", "prices": {"base": 15.89},
             "subscription": -1, "color": "red"},
        ], "meters[0].tariffs")
    problems = err.value.problems
    assert "meters[0].tariffs[0].prices.hx: not a period of option hphc (expected hp, hc)" \
        in problems
    assert "meters[0].tariffs[0].prices.hc: missing (EUR/kWh)" in problems
    assert "meters[0].tariffs[1].from: expected a date (YYYY-MM-DD), got '2026-13-01'" \
        in problems
    assert "meters[0].tariffs[1].prices.hc_red: missing (EUR/kWh)" in problems
    assert ("meters[0].tariffs[2].to: 2026-08-01 is not after from (2026-09-01); to is the "
            "first day no longer covered") in problems
    assert "meters[0].tariffs[2].option: expected one of base, hphc, tempo, got 'bleu'" \
        in problems
    assert any(p.startswith("meters[0].tariffs[3].prices.base: 15.89 EUR/kWh is implausible")
               for p in problems)
    assert "meters[0].tariffs[3].subscription: expected a positive number in EUR/month, " \
        "got -1" in problems
    assert any(p.startswith("meters[0].tariffs[3].color: unknown key") for p in problems)


def test_overlapping_periods_are_refused() -> None:
    with pytest.raises(TariffError, match=r"tariffs\[0\]: overlaps tariffs\[1\]"):
        parse_tariff([
            {"from": "2026-08-01", "to": "2026-09-02", "option": "base",
             "prices": {"base": 0.2}},
            {"from": "2026-09-01", "option": "base", "prices": {"base": 0.21}},
        ])
    with pytest.raises(TariffError, match="non-empty list"):
        parse_tariff({"option": "base"})


# ----------------------------------------------------------------------------- attribution


def test_a_boundary_inside_an_interval_splits_it_pro_rata() -> None:
    """HC 22:36-06:36; the interval 22:30-23:00 (600 Wh) is 6 min HP, 24 min HC."""
    offpeak = parse_offpeak_config(["22:36-06:36"])
    day = date(2026, 10, 12)
    points = [CurvePoint(local(day, 22, 0), 30, 400),   # all HP
              CurvePoint(local(day, 22, 30), 30, 600),  # 120 HP + 480 HC
              CurvePoint(local(day, 23, 30), 30, 300)]  # all HC
    assert attribute(points, Option.HPHC, offpeak) == {"hp": 400 + 120, "hc": 480 + 300}
    # 06:30-07:00 the next morning: 6 min HC (06:30-06:36), 24 min HP
    morning = [CurvePoint(local(day + timedelta(days=1), 6, 30), 30, 900)]
    assert attribute(morning, Option.HPHC, offpeak) == {"hc": 180, "hp": 720}


def test_half_hour_start_and_a_range_crossing_midnight() -> None:
    offpeak = parse_offpeak_config(["22:30-06:30", "12:30-14:30"])
    day = date(2026, 10, 12)
    points = [CurvePoint(local(day, 22, 0), 30, 100),   # HP
              CurvePoint(local(day, 22, 30), 30, 200),  # HC
              CurvePoint(local(day, 23, 30), 60, 300),  # HC across midnight (60-min step)
              CurvePoint(local(day, 12, 0), 30, 50),    # HP
              CurvePoint(local(day, 14, 30), 30, 70)]   # HP (end is exclusive)
    assert attribute(points, Option.HPHC, offpeak) == {"hp": 100 + 50 + 70, "hc": 200 + 300}


@pytest.mark.parametrize(("day", "hc_minutes", "hp_minutes", "intervals"), [
    (date(2026, 3, 29), 540, 840, 46),   # 23-hour day: 02:00-03:00 never happens
    (date(2026, 10, 25), 660, 840, 50),  # 25-hour day: 02:00-03:00 happens twice (HC)
    (date(2026, 10, 24), 600, 840, 48),
])
def test_dst_days_on_the_true_timeline(day: date, hc_minutes: int, hp_minutes: int,
                                       intervals: int) -> None:
    """1 kW all day (500 Wh per half-hour): each minute is 1000/60 Wh."""
    offpeak = parse_offpeak_config(["22:30-06:30", "12:30-14:30"])
    curve = day_curve(day, wh=500)
    assert len(curve) == intervals
    split = attribute(curve, Option.HPHC, offpeak)
    assert split == {"hc": Fraction(hc_minutes * 1000, 60), "hp": Fraction(hp_minutes * 1000, 60)}


def test_tempo_red_day_and_a_day_answered_unknown() -> None:
    """1 kW all day. 2026-11-30 white, 12-01 red, 12-02 unknown (never blue)."""
    tariff = parse_tariff(TEMPO_TARIFF)
    colours: dict[date, Colour | None] = {date(2026, 11, 30): Colour.WHITE,
                                          date(2026, 12, 1): Colour.RED,
                                          date(2026, 12, 2): None}
    red = breakdown_day(date(2026, 12, 1), tariff, curve=day_curve(date(2026, 12, 1), 500),
                        colours=colours)
    # 00:00-06:00 is still the white day (HC), 06:00-22:00 red HP, 22:00-24:00 red HC
    assert red.periods_payload() == {"hc_white": 6.0, "hp_red": 16.0, "hc_red": 2.0}
    subscription = Fraction("15.59") / 31  # December
    energy = Decimal("6") * Decimal("0.1536") + 16 * Decimal("0.7295") + 2 * Decimal("0.1615")
    assert energy == Decimal("12.9166")
    assert red.cost_payload() == {
        "value": float(cents(Fraction(energy) + subscription)),  # 13.42
        "currency": "EUR",
        "periods": {"hc_white": 0.92, "hp_red": 11.67, "hc_red": 0.32},
        "subscription": 0.5,
        "complete": True,
    }
    assert float(cents(Fraction(energy) + subscription)) == 13.42
    unknown = breakdown_day(date(2026, 12, 2), tariff,
                            curve=day_curve(date(2026, 12, 2), 500), colours=colours)
    assert unknown.periods_payload() == {"hc_red": 6.0, UNKNOWN: 18.0}
    payload = unknown.cost_payload()
    assert payload is not None
    assert payload["periods"] == {"hc_red": 0.97}  # 6 x 0.1615 = 0.969; unknown: no price
    assert payload["value"] == float(cents(Fraction("0.969") + subscription))  # 1.47
    assert payload["complete"] is False
    assert any("Tempo colour unknown" in r for r in unknown.reasons)


def test_tempo_day_starts_at_six() -> None:
    assert tempo_date(local(date(2026, 12, 2), 5, 59)) == date(2026, 12, 1)
    assert tempo_date(local(date(2026, 12, 2), 6, 0)) == date(2026, 12, 2)
    # a Tempo day with no colour at all (the source never answered) is unknown too
    split = attribute([CurvePoint(local(date(2026, 12, 3), 5, 0), 60, 700)], Option.TEMPO, None,
                      {})
    assert split == {UNKNOWN: 700}


# ----------------------------------------------------------------------------- costs


def test_price_change_on_the_first_keeps_history() -> None:
    """1 kW all day; HC 22:30-06:30 + 12:30-14:30 = 10 h, HP 14 h."""
    tariff = parse_tariff(HPHC_TARIFF)
    offpeak = parse_offpeak_config(["22:30-06:30", "12:30-14:30"])
    oct31 = breakdown_day(date(2026, 10, 31), tariff, curve=day_curve(date(2026, 10, 31), 500),
                          offpeak=offpeak)
    nov1 = breakdown_day(date(2026, 11, 1), tariff, curve=day_curve(date(2026, 11, 1), 500),
                         offpeak=offpeak)
    assert oct31.periods_payload() == {"hp": 14.0, "hc": 10.0}
    # 14 x 0.2142 + 10 x 0.1589 = 2.9988 + 1.589; subscription 15.86 / 31 days
    assert oct31.cost_payload() == {"value": 5.10, "currency": "EUR",
                                    "periods": {"hp": 3.0, "hc": 1.59},
                                    "subscription": 0.51, "complete": True}
    # 14 x 0.22 + 10 x 0.16 = 3.08 + 1.6; subscription 16.00 / 30 days = 0.5333...
    assert nov1.cost_payload() == {"value": 5.21, "currency": "EUR",
                                   "periods": {"hp": 3.08, "hc": 1.6},
                                   "subscription": 0.53, "complete": True}


def test_daily_data_only_gets_no_split_and_says_so() -> None:
    tariff = parse_tariff(HPHC_TARIFF)
    offpeak = parse_offpeak_config(["22:30-06:30"])
    day = breakdown_day(date(2026, 10, 5), tariff, daily_wh=12345, offpeak=offpeak)
    assert day.periods_payload() is None and day.cost_payload() is None
    assert day.reasons == ("2026-10-05: daily data only (no load curve), so no hphc split",)
    base = parse_tariff([{"from": "2026-08-01", "option": "base",
                          "prices": {"base": 0.2001}, "subscription": 15.86}])
    priced = breakdown_day(date(2026, 10, 5), base, daily_wh=12345)
    # 12.345 x 0.2001 = 2.4702345; + 15.86 / 31 = 0.511612... -> 2.981847 -> 2.98
    assert priced.cost_payload() == {"value": 2.98, "currency": "EUR", "periods": {"base": 2.47},
                                     "subscription": 0.51, "complete": True}
    none = breakdown_day(date(2026, 10, 5), None, daily_wh=1)
    assert none.reasons == ("no tariff configured",) and none.cost is None
    no_ranges = breakdown_day(date(2026, 10, 5), tariff, curve=day_curve(date(2026, 10, 5)),
                              offpeak=None, offpeak_reason="no off-peak hours: none given")
    assert no_ranges.periods is None and no_ranges.reasons == ("no off-peak hours: none given",)


def _wall_overlap(m0: int, length: int, ranges: list[tuple[int, int]]) -> int:
    """Minutes of [m0, m0+length) (wall clock, may pass 24:00) inside the ranges."""
    total = 0
    for a, b in ranges:
        end = b if a < b else b + 1440  # a range crossing midnight ends the next day
        for shift in (-1440, 0, 1440):
            total += max(0, min(m0 + length, end + shift) - max(m0, a + shift))
    return total


def test_thirty_days_with_a_dst_day_and_a_price_change() -> None:
    """2026-10-10 .. 2026-11-08: the 25-hour 2026-10-25 and new prices on 2026-11-01.

    HC 22:30-06:30 (crosses midnight, starts at a half hour) and 12:30-14:30. The
    expected energies come from an analytic overlap of each interval's wall-clock
    minutes with the ranges; the costs from those energies and the configured prices.
    """
    tariff = parse_tariff(HPHC_TARIFF)
    ranges = [(22 * 60 + 30, 6 * 60 + 30), (12 * 60 + 30, 14 * 60 + 30)]
    offpeak = OffpeakSchedule(all_year=tuple(OffpeakRange(a, b) for a, b in ranges))
    prices = {date(2026, 10, 1): (Fraction("0.2142"), Fraction("0.1589"), Fraction("15.86"), 31),
              date(2026, 11, 1): (Fraction("0.2200"), Fraction("0.1600"), Fraction("16"), 30)}
    days = [date(2026, 10, 10) + timedelta(days=i) for i in range(30)]
    results = []
    month_expect: dict[date, dict[str, Fraction]] = {}
    for day in days:
        curve = day_curve(day)
        hp = hc = Fraction(0)
        for p in curve:
            wall = p.start.astimezone(PARIS)
            m0 = wall.hour * 60 + wall.minute
            inside = _wall_overlap(m0, p.minutes, ranges)
            hc += Fraction(p.wh) * inside / p.minutes
            hp += Fraction(p.wh) * (p.minutes - inside) / p.minutes
        php, phc, sub, ndays = prices[day.replace(day=1)]
        result = breakdown_day(day, tariff, curve=curve, offpeak=offpeak)
        results.append(result)
        assert result.periods == {"hp": hp, "hc": hc}, day
        cost = hp * php / 1000 + hc * phc / 1000 + sub / ndays
        assert result.cost is not None and result.cost.exact == cost, day
        assert result.cost_payload() == {
            "value": float(cents(cost)), "currency": "EUR",
            "periods": {"hp": float(cents(hp * php / 1000)), "hc": float(cents(hc * phc / 1000))},
            "subscription": float(cents(sub / ndays)), "complete": True}, day
        acc = month_expect.setdefault(day.replace(day=1), {"hp": Fraction(0), "hc": Fraction(0),
                                                           "eur": Fraction(0)})
        acc["hp"] += hp
        acc["hc"] += hc
        acc["eur"] += cost
    assert len(day_curve(date(2026, 10, 25))) == 50
    for first, acc in month_expect.items():
        month = combine([r for r in results if r.start.replace(day=1) == first])
        assert month.periods == {"hp": acc["hp"], "hc": acc["hc"]}
        assert month.cost is not None
        assert month.cost.value == cents(acc["eur"])
        assert month.total_wh == acc["hp"] + acc["hc"]


def test_a_month_with_days_without_curve_keeps_them_apart() -> None:
    tariff = parse_tariff(HPHC_TARIFF)
    offpeak = parse_offpeak_config(["22:30-06:30", "12:30-14:30"])
    split = breakdown_day(date(2026, 10, 1), tariff, curve=day_curve(date(2026, 10, 1), 500),
                          offpeak=offpeak)
    daily = breakdown_day(date(2026, 10, 2), tariff, daily_wh=7000, offpeak=offpeak)
    month = combine([split, daily])
    assert month.periods_payload() == {"hp": 14.0, "hc": 10.0}
    assert month.unsplit_wh == 7000 and month.total_wh == 31000
    assert month.cost is not None and month.cost.complete is False
    # energy of the split day only, subscription of both days: 2 x 15.86 / 31
    assert month.cost.value == cents(Fraction("4.5878") + 2 * Fraction("15.86") / 31)  # 5.61
    assert month.reasons == ("2026-10-02: daily data only (no load curve), so no hphc split",)


# ----------------------------------------------------------------------------- property


_minute_ranges = st.lists(
    st.tuples(st.integers(0, 1439), st.integers(0, 1439)).filter(lambda r: r[0] != r[1]),
    min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    starts=st.lists(st.datetimes(min_value=datetime(2026, 3, 27), max_value=datetime(2026, 10, 27),
                                 timezones=st.just(UTC)), min_size=1, max_size=6),
    steps=st.lists(st.sampled_from([10, 15, 30, 60]), min_size=6, max_size=6),
    energies=st.lists(st.fractions(min_value=0, max_value=5000, max_denominator=7),
                      min_size=6, max_size=6),
    ranges=_minute_ranges,
    option=st.sampled_from([Option.HPHC, Option.TEMPO, Option.BASE]),
    colour=st.sampled_from([Colour.BLUE, Colour.WHITE, Colour.RED, None]),
)
def test_energy_is_conserved(starts: list[datetime], steps: list[int],
                             energies: list[Fraction], ranges: list[tuple[int, int]],
                             option: Option, colour: Colour | None) -> None:
    points = [CurvePoint(s, steps[i], energies[i]) for i, s in enumerate(starts)]
    offpeak = OffpeakSchedule(all_year=tuple(OffpeakRange(a, b) for a, b in ranges))
    colours = {s.date() + timedelta(days=d): colour for s in starts for d in (-1, 0, 1)}
    split = attribute(points, option, offpeak, colours)
    assert sum(split.values(), Fraction(0)) == sum(energies[: len(starts)], Fraction(0))
    assert all(v >= 0 for v in split.values())


# ----------------------------------------------------------------------------- labels


def test_current_period_price_and_tempo_prices() -> None:
    hphc = parse_tariff(HPHC_TARIFF)
    offpeak = parse_offpeak_config(["22:36-06:36"])
    day = date(2026, 10, 12)
    assert price_at(local(day, 22, 35), hphc, offpeak) == ("hp", Decimal("0.2142"))
    assert price_at(local(day, 22, 36), hphc, offpeak) == ("hc", Decimal("0.1589"))
    assert price_at(local(date(2026, 11, 1), 3, 0), hphc, offpeak) == ("hc", Decimal("0.1600"))
    assert price_at(local(date(2026, 7, 1), 3, 0), hphc, offpeak) is None
    assert price_at(local(day, 3, 0), hphc, None) == (UNKNOWN, None)
    # the repeated 02:30 of 2026-10-25, both times, is off-peak under 22:30-06:30
    wide = parse_offpeak_config(["22:30-06:30"])
    assert period_at(local(date(2026, 10, 25), 2, 30, fold=0), Option.HPHC, wide) == "hc"
    assert period_at(local(date(2026, 10, 25), 2, 30, fold=1), Option.HPHC, wide) == "hc"
    tempo = parse_tariff(TEMPO_TARIFF)
    colours = {date(2026, 12, 1): Colour.RED}
    assert price_at(local(date(2026, 12, 2), 5, 0), tempo, None, colours) == (
        "hc_red", Decimal("0.1615"))
    assert price_at(local(date(2026, 12, 2), 7, 0), tempo, None, colours) == (UNKNOWN, None)
    assert tempo_prices(tempo, date(2026, 12, 1), Colour.RED) == {
        "hp": Decimal("0.7295"), "hc": Decimal("0.1615")}
    assert tempo_prices(tempo, date(2026, 12, 2), None) is None
    assert tempo_prices(hphc, date(2026, 12, 1), Colour.RED) is None


def test_payloads_are_plain_json() -> None:
    import json

    tariff = parse_tariff(HPHC_TARIFF)
    offpeak = parse_offpeak_config(["22:30-06:30"])
    day = breakdown_day(date(2026, 10, 12), tariff, curve=day_curve(date(2026, 10, 12)),
                        offpeak=offpeak)
    text = json.dumps({"periods": day.periods_payload(), "cost": day.cost_payload()})
    assert json.loads(text)["cost"]["currency"] == "EUR"


@settings(max_examples=100, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 3, 28), max_value=datetime(2026, 10, 26),
                       timezones=st.just(UTC)).map(lambda d: d.replace(second=0, microsecond=0)),
    step=st.sampled_from([10, 15, 30, 60]),
    count=st.integers(1, 8),
    ranges=_minute_ranges,
    option=st.sampled_from([Option.HPHC, Option.TEMPO]),
)
def test_minute_pieces_give_the_same_split(start: datetime, step: int, count: int,
                                           ranges: list[tuple[int, int]], option: Option) -> None:
    """Cutting every interval into 1-minute intervals of equal energy changes nothing:
    the whole-interval shortcut and the pro rata path agree."""
    offpeak = OffpeakSchedule(all_year=tuple(OffpeakRange(a, b) for a, b in ranges))
    colours = {start.date() + timedelta(days=d): c
               for d, c in zip(range(-2, 3), [Colour.RED, None, Colour.WHITE, Colour.BLUE,
                                              Colour.RED], strict=True)}
    points = [CurvePoint(start + timedelta(minutes=step * i), step, 60 * (i + 1))
              for i in range(count)]
    minutes = [CurvePoint(p.start + timedelta(minutes=k), 1, Fraction(p.wh) / step)
               for p in points for k in range(step)]
    assert attribute(points, option, offpeak, colours) == attribute(minutes, option, offpeak,
                                                                     colours)
