"""Pricing over the store: which days are split, where off-peak hours come from, what the
status says, and what a payload gains (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from linky2mqtt import topics
from linky2mqtt.config import MeterConfig, load_text
from linky2mqtt.model import DAILY, Kind, Reading, day_bounds
from linky2mqtt.pricing import Pricing, split_fields
from linky2mqtt.store import Store

PDL = "12345678901234"
CONFIG = f"""
accounts:
  - name: a
    provider: conso
    token: t
    meters:
      - pdl: "{PDL}"
        tariffs:
          - {{from: 2026-11-01, option: hphc, prices: {{hp: 0.20, hc: 0.10}}, subscription: 15}}
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.db")
    try:
        yield s
    finally:
        s.close()


def _meter(offpeak: bool = False) -> MeterConfig:
    text = CONFIG + ('        offpeak_hours: ["22:00-06:00"]\n' if offpeak else "")
    return load_text(text).accounts[0].meters[0]


def _store_day(store: Store, day: date, watts: int, curve: bool) -> float:
    """One day at a constant ``watts``: its daily value, and its half-hours if ``curve``."""
    lo, hi = day_bounds(day)
    halves = int((hi - lo).total_seconds() // 1800)
    wh = watts * halves / 2
    readings = [Reading(PDL, Kind.CONSUMPTION, DAILY, lo, wh)]
    if curve:
        readings += [Reading(PDL, Kind.CONSUMPTION, "PT30M", lo + timedelta(minutes=30 * i),
                             watts / 2) for i in range(halves)]
    store.save_readings(readings)
    return wh


def test_contract_ranges_curve_days_split_daily_days_said_so(store: Store) -> None:
    meter = _meter()
    pricing = Pricing(store, "l2m", lambda pdl: meter if pdl == PDL else None)
    # no contract yet, no configured ranges: no split, and the status says why
    assert pricing.status(PDL) == {
        "option": "hphc", "offpeak": None, "source": None,
        "problem": "no off-peak hours: the contract gives none and the configuration names "
                   "none (set offpeak_hours)"}
    store.set_retained(topics.contract_topic("l2m", PDL), json.dumps(
        {"offpeak_hours": "HC (22H00-6H00)"}).encode())
    assert pricing.status(PDL) == {"option": "hphc", "offpeak": "22:00-06:00",
                                   "source": "contract", "problem": None}
    curve_day, daily_day = date(2026, 11, 2), date(2026, 11, 3)
    wh1 = _store_day(store, curve_day, 1000, curve=True)  # 24 kWh: 8 h HC, 16 h HP
    wh2 = _store_day(store, daily_day, 500, curve=False)
    days = pricing.days(PDL, Kind.CONSUMPTION, {curve_day: wh1, daily_day: wh2})
    assert days is not None
    one = split_fields(days[curve_day])
    assert one == {"periods": {"hp": 16.0, "hc": 8.0},
                   "cost": {"value": 4.5, "currency": "EUR",  # 3.20 + 0.80 + 15/30
                            "periods": {"hp": 3.2, "hc": 0.8}, "subscription": 0.5,
                            "complete": True}}
    two = split_fields(days[daily_day])
    assert two == {"periods": None, "cost": None,
                   "split_reason": "2026-11-03: daily data only (no load curve), so no hphc "
                                   "split"}
    month = pricing.month(PDL, Kind.CONSUMPTION, {curve_day: wh1, daily_day: wh2})
    assert month is not None
    fields = split_fields(month, month=True)
    assert fields["periods"] == {"hp": 16.0, "hc": 8.0} and fields["unsplit"] == 12.0
    assert fields["cost"]["complete"] is False and fields["cost"]["subscription"] == 1.0
    # configured ranges win over the contract's
    pricing = Pricing(store, "l2m", lambda pdl: _meter(offpeak=True))
    assert pricing.status(PDL)["source"] == "configuration"  # type: ignore[index]
    # hours: each labelled with its period
    labels = pricing.hour_labels(PDL, Kind.CONSUMPTION, curve_day)
    assert labels is not None and len(labels) == 24
    assert [labels[h]["period"] for h in sorted(labels)] == ["hc"] * 6 + ["hp"] * 16 + ["hc"] * 2


def test_not_priced_without_a_tariff_or_for_production(store: Store) -> None:
    meter = replace(_meter(), tariff=None)
    pricing = Pricing(store, "l2m", lambda pdl: meter)
    assert pricing.days(PDL, Kind.CONSUMPTION, {date(2026, 11, 2): 1.0}) is None
    assert pricing.status(PDL) is None
    pricing = Pricing(store, "l2m", lambda pdl: _meter())
    assert pricing.days(PDL, Kind.PRODUCTION, {date(2026, 11, 2): 1.0}) is None
    assert not pricing.priced(PDL, Kind.PRODUCTION)
    # a day before the first tariff period: no split, said so
    days = pricing.days(PDL, Kind.CONSUMPTION, {date(2026, 10, 31): 1000.0})
    assert days is not None
    assert split_fields(days[date(2026, 10, 31)])["split_reason"] == \
        "no tariff period covers 2026-10-31"
