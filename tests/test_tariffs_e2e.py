"""Must demonstrate (issue 16): per-period energy and cost, end to end.

A bridge (in this process) against the simulator over HTTP (Conso API and both Tempo
sources) and a real mosquitto, for the 36 days from 2026-10-24 to 2026-11-28, which hold:
the October DST day (25 hours), a price change on November 1, an off-peak range starting
at a half hour and crossing midnight (22:30-06:30) and one with odd minutes (12:36-14:06,
so half-hours are split pro rata), a Tempo day forced red (2026-11-17) and a day both
Tempo sources answer unknown (2026-11-10).

Every period's energy and cost is computed here from the simulator's raw intervals
(``(end, W, minutes)``) and the configured prices, minute by minute on the Europe/Paris
wall clock: a different walk from the product's (which cuts intervals only at
boundaries). The day payload, the month payloads and ``read`` (day and month steps, with
``split`` and ``cost``) are checked against it: energies to the half Wh, costs to the cent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator
from linky2mqtt.simulator.tempo import colour_of
from tests.support.bridge import (
    account_yaml,
    batches_by_date,
    config_yaml,
    days_back,
    wait_until,
)
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.fake_ha import FakeHA
from tests.support.mqtt_client import Collector, Message

HPHC = "12345678901234"
TEMPO = "22516914714270"
DAYS = sorted(days_back(36))  # 2026-10-24 .. 2026-11-28 on the suite's clock
RED_DAY = date(2026, 11, 17)
UNKNOWN_DAY = date(2026, 11, 10)
PRICE_CHANGE = date(2026, 11, 1)

OCT_PRICES = {"hp": "0.2142", "hc": "0.1589"}
NOV_PRICES = {"hp": "0.2250", "hc": "0.1650"}
OCT_SUB, NOV_SUB = "15.86", "16.10"
TEMPO_PRICES = {"hc_blue": "0.1356", "hp_blue": "0.1654", "hc_white": "0.1536",
                "hp_white": "0.1921", "hc_red": "0.1615", "hp_red": "0.7295"}
TEMPO_SUB = "16.20"


# ------------------------------------------------------------------ the independent truth


def _hphc_class(local: datetime) -> str:
    m = local.hour * 60 + local.minute
    off = m >= 22 * 60 + 30 or m < 6 * 60 + 30 or 12 * 60 + 36 <= m < 14 * 60 + 6
    return "hc" if off else "hp"


def _tempo_colour(day: date) -> str | None:
    if day == UNKNOWN_DAY:
        return None
    if day == RED_DAY:
        return "red"
    return str(colour_of(day))


def _tempo_class(local: datetime) -> str:
    m = local.hour * 60 + local.minute
    colour = _tempo_colour((local.replace(tzinfo=None) - timedelta(hours=6)).date())
    if colour is None:
        return "unknown"
    return f"{'hc' if m >= 22 * 60 or m < 6 * 60 else 'hp'}_{colour}"


def _truth_day(sim: Simulator, pdl: str, day: date,
               classify: Callable[[datetime], str]) -> dict[str, Fraction]:
    """Wh per period: each interval's energy shared equally among its minutes, each
    minute classed by its Paris wall-clock time."""
    curve = sim.curve(pdl, Kind.CONSUMPTION, day)
    assert curve is not None, (pdl, day)
    out: dict[str, Fraction] = {}
    for end, watts, minutes in curve:
        per_minute = Fraction(watts * minutes, 60) / minutes
        for k in range(minutes):
            local = (end - timedelta(minutes=minutes - k)).astimezone(PARIS)
            name = classify(local)
            out[name] = out.get(name, Fraction(0)) + per_minute
    return out


def _cents(x: Fraction) -> float:
    return float((Decimal(x.numerator) / Decimal(x.denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP))


def _days_in_month(day: date) -> int:
    nxt = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (nxt - day.replace(day=1)).days


def _prices(pdl: str, day: date) -> tuple[dict[str, str], str]:
    if pdl == TEMPO:
        return TEMPO_PRICES, TEMPO_SUB
    return (NOV_PRICES, NOV_SUB) if day >= PRICE_CHANGE else (OCT_PRICES, OCT_SUB)


def _expected(sim: Simulator, pdl: str, days: list[date]) -> dict[str, Any]:
    """Exact Wh and EUR per period, and the subscription, over ``days``."""
    classify = _tempo_class if pdl == TEMPO else _hphc_class
    wh: dict[str, Fraction] = {}
    eur: dict[str, Fraction] = {}
    sub = Fraction(0)
    for day in days:
        prices, monthly = _prices(pdl, day)
        sub += Fraction(Decimal(monthly)) / _days_in_month(day)
        for name, energy in _truth_day(sim, pdl, day, classify).items():
            wh[name] = wh.get(name, Fraction(0)) + energy
            if name != "unknown":
                eur[name] = eur.get(name, Fraction(0)) + energy * Fraction(
                    Decimal(prices[name])) / 1000
    return {"wh": wh, "eur": eur, "sub": sub}


def _check(got_periods: dict[str, float], got_cost: dict[str, Any],
           want: dict[str, Any], what: str) -> None:
    assert set(got_periods) == set(want["wh"]), (what, got_periods)
    for name, energy in want["wh"].items():
        assert abs(Fraction(str(got_periods[name])) * 1000 - energy) <= Fraction(1, 2), (
            what, name, got_periods[name], float(energy))
    assert got_cost["currency"] == "EUR"
    assert got_cost["periods"] == {k: _cents(v) for k, v in want["eur"].items()}, what
    assert got_cost["subscription"] == _cents(want["sub"]), what
    total = sum(want["eur"].values(), Fraction(0)) + want["sub"]
    assert got_cost["value"] == _cents(total), what
    assert got_cost["complete"] is ("unknown" not in want["wh"]), what


# ------------------------------------------------------------------ the bridge


def _tariffs(pdl: str) -> list[dict[str, Any]]:
    if pdl == TEMPO:
        return [{"from": "2026-09-01", "option": "tempo", "prices": TEMPO_PRICES,
                 "subscription": TEMPO_SUB}]
    return [{"from": "2026-09-01", "option": "hphc", "prices": OCT_PRICES,
             "subscription": OCT_SUB},
            {"from": "2026-11-01", "option": "hphc", "prices": NOV_PRICES,
             "subscription": NOV_SUB}]


def _config(sim: Simulator, broker: Mosquitto, tmp_path: Path, ha: FakeHA) -> str:
    meters = [{"pdl": pdl, "steps": ["day", "month", "hour"],
               "backfill_days": {"day": len(DAYS), "hour": len(DAYS)},
               "tariffs": _tariffs(pdl)} for pdl in (HPHC, TEMPO)]
    meters[0]["offpeak_hours"] = ["22:30-06:30", "12:36-14:06"]
    account = account_yaml("home", "conso", sim, meters,
                           token=sim.make_conso_token([HPHC, TEMPO]))
    tempo = (f"tempo:\n  rte:\n    client_id: sim-client\n    client_secret: sim-secret\n"
             f"  community: true\n  base_url: {sim.url}\n")
    return config_yaml(broker.url, tmp_path / "store.db", [account], extra=tempo).replace(
        "homeassistant:\n  discovery: false\n",
        f"homeassistant:\n  discovery: false\n  statistics:\n    url: {ha.url}\n"
        f"    token: {ha.token}\n")


def _read(watch: Collector, pdl: str, step: str, days: tuple[date, date] | None = None
          ) -> dict[str, Any]:
    tx = uuid.uuid4().hex
    start, end = days or (DAYS[0], DAYS[-1] + timedelta(days=1))
    watch.publish("l2m/bridge/request/read", json.dumps({
        "pdl": pdl, "kind": "consumption", "step": step, "start": start.isoformat(),
        "end": end.isoformat(), "split": True, "cost": step != "hour", "transaction": tx}))
    msg = watch.wait_for(lambda ms: next((m for m in ms if m.topic == "l2m/bridge/response/read"
                                          and m.json().get("transaction") == tx), None),
                         timeout=60, what=f"read answer {pdl} {step}")
    doc: dict[str, Any] = msg.json()
    assert doc["status"] == "ok", doc
    data: dict[str, Any] = doc["data"]
    return data


def _stats_done(ha: FakeHA, pdl: str, want: dict[str, Any]) -> bool:
    """The cost statistics of every priced period hold the 36 days' cost."""
    for name, eur in want["eur"].items():
        rows = ha.rows(f"linky2mqtt:{pdl}_cost_{name}")
        if not rows or abs(rows[-1]["sum"] - float(eur)) >= 0.005:
            return False
    return True


def _last_month(msgs: list[Message], pdl: str, month: str) -> dict[str, Any] | None:
    got = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/consumption/month"
           and m.payload and m.json().get("month") == month]
    return got[-1] if got else None


def _settled(msgs: list[Message]) -> bool:
    """Every batch arrived, and the Tempo meter's November month knows the red day."""
    want = {d.isoformat() for d in DAYS}
    for pdl in (HPHC, TEMPO):
        if not want <= set(batches_by_date(msgs, f"l2m/{pdl}/consumption/hour")):
            return False
    nov = _last_month(msgs, TEMPO, "2026-11")
    oct_ = _last_month(msgs, TEMPO, "2026-10")
    return bool(nov and oct_ and nov.get("periods") and "hp_red" in nov["periods"]
                and oct_.get("periods") and "unknown" not in oct_["periods"]
                and _last_month(msgs, HPHC, "2026-11") and _last_month(msgs, HPHC, "2026-10"))


def test_periods_and_costs_match_an_independent_computation(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path) -> None:
    assert DAYS[0] == date(2026, 10, 24) and DAYS[-1] == date(2026, 11, 28)
    assert RED_DAY.weekday() < 5 and colour_of(RED_DAY) != "red"  # forced, not by chance
    with httpx.Client(timeout=10) as http:
        assert http.post(f"{simulator.url}/_sim/tempo", json={
            "set_colour": {RED_DAY.isoformat(): "red"},
            "unknown": [UNKNOWN_DAY.isoformat()]}).status_code == 200
    ha = FakeHA().start()
    cfg = load_text(_config(simulator, broker, tmp_path, ha))
    watch = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = Bridge(cfg, stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    totals = {pdl: _expected(simulator, pdl, DAYS) for pdl in (HPHC, TEMPO)}
    try:
        watch.wait_for(_settled, timeout=150, what="batches and Tempo-priced months")
        reads = {(pdl, step): _read(watch, pdl, step)
                 for pdl in (HPHC, TEMPO) for step in ("day", "month")}
        dst_hours = _read(watch, HPHC, "hour", (date(2026, 10, 25), date(2026, 10, 26)))
        # Home Assistant statistics: one per period and one per period's cost, whose
        # final sums are the 36 days' energy and cost (the subscription is not hourly)
        wait_until(lambda: all(_stats_done(ha, pdl, totals[pdl]) for pdl in totals),
                   timeout=120, what="statistics per period")
    finally:
        bridge.stop()
        ha.stop()
    msgs = watch.messages
    watch.close()
    for pdl, want in totals.items():
        for name, energy in want["wh"].items():
            if name == "unknown":
                assert not ha.rows(f"linky2mqtt:{pdl}_consumption_unknown")
                continue
            rows = ha.rows(f"linky2mqtt:{pdl}_consumption_{name}")
            assert abs(Fraction(str(rows[-1]["sum"])) * 1000 - energy) <= Fraction(1, 2)
            cost = ha.rows(f"linky2mqtt:{pdl}_cost_{name}")
            assert abs(cost[-1]["sum"] - float(want["eur"][name])) < 0.005, (pdl, name)
            assert len(rows) == len(cost) == 36 * 24 + 1  # every hour, the DST day's 25
        meta = ha.statistics[f"linky2mqtt:{pdl}_cost_{'hc' if pdl == HPHC else 'hp_red'}"]
        assert (meta.metadata["unit_of_measurement"], meta.metadata["unit_class"],
                meta.metadata["has_sum"]) == ("EUR", None, True)

    for pdl in (HPHC, TEMPO):
        # read, step day: every one of the 36 days
        points = reads[(pdl, "day")]["points"]
        assert [p["date"] for p in points] == [d.isoformat() for d in DAYS]
        for point in points:
            day = date.fromisoformat(point["date"])
            _check(point["periods"], point["cost"], _expected(simulator, pdl, [day]),
                   f"read day {pdl} {day}")
        # read, step month, and the month topics: the same figures
        months = {p["month"]: p for p in reads[(pdl, "month")]["points"]}
        for month, days in (("2026-10", [d for d in DAYS if d.month == 10]),
                            ("2026-11", [d for d in DAYS if d.month == 11])):
            want = _expected(simulator, pdl, days)
            _check(months[month]["periods"], months[month]["cost"], want,
                   f"read month {pdl} {month}")
            topic = _last_month(msgs, pdl, month)
            assert topic is not None
            _check(topic["periods"], topic["cost"], want, f"topic month {pdl} {month}")
            assert topic["periods"] == months[month]["periods"]
            assert topic["cost"] == months[month]["cost"]
            assert topic["unsplit"] == 0.0
        # the retained day: the latest day, as read gives it
        day_doc = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/consumption/day"][-1]
        assert day_doc["date"] == DAYS[-1].isoformat()
        assert (day_doc["periods"], day_doc["cost"]) == (points[-1]["periods"],
                                                         points[-1]["cost"])

    # the unknown Tempo day: its energy under "unknown", unpriced, the cost incomplete
    tempo_days = {p["date"]: p for p in reads[(TEMPO, "day")]["points"]}
    unknown = tempo_days[UNKNOWN_DAY.isoformat()]
    assert "unknown" in unknown["periods"] and unknown["cost"]["complete"] is False
    assert "unknown" not in unknown["cost"]["periods"]
    assert "Tempo colour unknown" in unknown["split_reason"]
    # the next day's 00:00-06:00 belongs to the unknown day too
    assert "unknown" in tempo_days[(UNKNOWN_DAY + timedelta(days=1)).isoformat()]["periods"]
    before = colour_of(RED_DAY - timedelta(days=1))  # 00:00-06:00 is the day before's
    assert set(tempo_days[RED_DAY.isoformat()]["periods"]) == {f"hc_{before}", "hp_red",
                                                                "hc_red"}

    # read at hour step with split, the DST day: 25 hours, each split like the truth
    assert len(dst_hours["points"]) == 25
    want_hours: dict[str, dict[str, Fraction]] = {}
    for end, watts, minutes in simulator.curve(HPHC, Kind.CONSUMPTION,  # type: ignore[union-attr]
                                               date(2026, 10, 25)):
        for k in range(minutes):
            local = (end - timedelta(minutes=minutes - k)).astimezone(PARIS)
            hour = local.replace(minute=0).isoformat()
            name = _hphc_class(local)
            by = want_hours.setdefault(hour, {})
            by[name] = by.get(name, Fraction(0)) + Fraction(watts, 60)
    assert [p["start"] for p in dst_hours["points"]] == list(want_hours)
    for point in dst_hours["points"]:
        want = want_hours[point["start"]]
        assert set(point["periods"]) == set(want), point
        for name, wh in want.items():
            assert abs(Fraction(str(point["periods"][name])) * 1000 - wh) <= Fraction(1, 2)

    # hourly points carry their period; 12:00-13:00 straddles 12:36 and is split
    batches = batches_by_date(msgs, f"l2m/{HPHC}/consumption/hour")
    dst = batches["2026-10-25"]["points"]
    assert len(dst) == 25
    noon = next(p for p in batches["2026-11-20"]["points"]
                if p["start"] == "2026-11-20T12:00:00+01:00")
    assert noon["period"] == "hp" and set(noon["periods"]) == {"hp", "hc"}
    assert abs(sum(noon["periods"].values()) - noon["value"]) < 1e-6
    night = next(p for p in batches["2026-11-20"]["points"]
                 if p["start"] == "2026-11-20T23:00:00+01:00")
    assert night["period"] == "hc" and "periods" not in night

    # Tempo topics, as a newcomer receives them (retained): the colour and its prices
    late = Collector(broker.host, broker.port, ["l2m/tempo/#", "l2m/+/price"])
    try:
        got = late.wait_for(lambda ms: {m.topic: m for m in ms if m.retain} if len(
            {m.topic for m in ms if m.retain}) == 4 else None, timeout=10, what="tempo")
    finally:
        late.close()
    # the price in force when the bridge stopped (the suite's clock runs at real speed)
    stopped = SUITE_CLOCK.now().astimezone(PARIS)
    period = _hphc_class(stopped)
    assert got[f"l2m/{HPHC}/price"].json() == {
        "period": period, "price": float(NOV_PRICES[period]), "unit": "EUR/kWh"}
    tempo_period = _tempo_class(stopped)
    assert got[f"l2m/{TEMPO}/price"].json() == {
        "period": tempo_period, "price": float(TEMPO_PRICES[tempo_period]), "unit": "EUR/kWh"}
    for which, day in (("today", date(2026, 11, 29)), ("tomorrow", date(2026, 11, 30))):
        doc = got[f"l2m/tempo/{which}"].json()
        colour = str(colour_of(day))  # the suite's clock is past 10:30: tomorrow is out
        assert doc == {"date": day.isoformat(), "colour": colour, "source": "rte",
                       "prices": {"hp": float(TEMPO_PRICES[f"hp_{colour}"]),
                                  "hc": float(TEMPO_PRICES[f"hc_{colour}"])},
                       "error": None}
    status = [m.json() for m in msgs if m.topic == f"l2m/{HPHC}/status"][-1]
    assert status["tariff"] == {"option": "hphc", "offpeak": "22:30-06:30, 12:36-14:06",
                                "source": "configuration", "problem": None}
