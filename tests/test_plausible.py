"""Values a meter cannot produce are refused, not stored as truth (issue 12): negative
energy, an interval's average power or a day's average power above 1.5 x the subscribed
power (250 kVA when no contract is known). The day stays missing and is asked again."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linky2mqtt import plausible
from linky2mqtt.accounts import StoredKva, stored_subscribed_kva
from linky2mqtt.config import MeterConfig
from linky2mqtt.enedis import ProviderSettings
from linky2mqtt.model import Kind, Reading, Step, day_bounds
from linky2mqtt.poller import MeterPoller
from linky2mqtt.store import Store
from tests.support.upstream_client import one_try_client

PDL = "12345678901234"
DAY = date(2026, 11, 20)


def daily(day: date, wh: float, kind: Kind = Kind.CONSUMPTION) -> Reading:
    return Reading(PDL, kind, "P1D", day_bounds(day)[0], wh)


def half_hours(day: date, watts: list[float]) -> list[Reading]:
    start = day_bounds(day)[0]
    return [Reading(PDL, Kind.CONSUMPTION, "PT30M", start + timedelta(minutes=30 * i), w / 2)
            for i, w in enumerate(watts)]


def test_negative_day_refused_with_pdl_day_and_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    kept = plausible.screen([daily(DAY, -18654.0), daily(DAY + timedelta(days=1), 9000.0)],
                            PDL, None)
    assert [r.local_date for r in kept] == [DAY + timedelta(days=1)]
    (record,) = caplog.records
    text = record.getMessage()
    assert PDL in text and "2026-11-20" in text and "-18654" in text


def test_absurd_day_refused_without_contract() -> None:
    assert plausible.screen([daily(DAY, 1e15)], PDL, None) == []
    # 250 kVA for 24 h is 6 MWh: just under is kept, just over refused
    assert plausible.screen([daily(DAY, 5_999_000.0)], PDL, None) != []
    assert plausible.screen([daily(DAY, 6_001_000.0)], PDL, None) == []


def test_limits_follow_the_subscribed_power() -> None:
    # 9 kVA -> 13.5 kVA: 13 kW for half an hour is possible, 14 kW is not
    ok = half_hours(DAY, [13_000.0] * 48)
    assert plausible.screen(ok, PDL, 9.0) == ok
    bad = half_hours(DAY, [500.0] * 47 + [14_000.0])
    other = half_hours(DAY + timedelta(days=1), [500.0] * 48)
    assert plausible.screen(bad + other, PDL, 9.0) == other  # the whole day, only that day
    assert plausible.screen(bad, PDL, None) == bad  # no contract: 250 kVA
    # a day's energy over 24 h (13.5 kW x 24 h = 324 kWh)
    assert plausible.screen([daily(DAY, 323_000.0)], PDL, 9.0) != []
    assert plausible.screen([daily(DAY, 325_000.0)], PDL, 9.0) == []


def test_negative_hour_refuses_its_day() -> None:
    readings = half_hours(DAY, [400.0] * 10 + [-200.0] + [400.0] * 37)
    assert plausible.screen(readings, PDL, 6.0) == []


def test_zero_is_a_value() -> None:
    readings = [*half_hours(DAY, [0.0] * 48), daily(DAY, 0.0, Kind.PRODUCTION)]
    assert plausible.screen(readings, PDL, 6.0) == readings


def test_subscribed_power_from_the_stored_contract(tmp_path: Path) -> None:
    topic = f"l2m/{PDL}/contract"
    with Store(tmp_path / "s.db") as store:
        assert stored_subscribed_kva(store, topic) is None  # no contract
        store.set_retained(topic, json.dumps({"pdl": PDL, "subscribed_power_kva": 12.0,
                                               "tariff": None}).encode())
        assert stored_subscribed_kva(store, topic) == 12.0
        store.set_retained(topic, json.dumps({"pdl": PDL, "subscribed_power_kva": None}
                                             ).encode())
        assert stored_subscribed_kva(store, topic) is None  # the contract does not say
        store.set_retained(topic, json.dumps({"pdl": PDL, "subscribed_power_kva": 0}
                                             ).encode())
        assert stored_subscribed_kva(store, topic) is None  # not a subscribed power
        store.set_retained(topic, b"not json")
        assert stored_subscribed_kva(store, topic) is None



def test_each_poll_follows_the_stored_contract(tmp_path: Path) -> None:
    """The poller's view (parsed once per stored payload) changes with the payload."""
    topic = f"l2m/{PDL}/contract"
    with Store(tmp_path / "s.db") as store:
        kva = StoredKva(store, topic)
        assert kva() is None  # no contract
        for power in (6.0, 6.0, 9.0, None, 12.0):
            store.set_retained(topic, json.dumps({"pdl": PDL, "subscribed_power_kva": power}
                                                 ).encode())
            assert kva() == power
        store.set_retained(topic, b"not json")
        assert kva() is None
        store.close()
        assert kva() is None  # the store closed: no limit known, no exception

# -- through the poller: refused, not stored, asked again ---------------------------------


def _daily_body(points: list[tuple[date, str]]) -> dict[str, Any]:
    return {"meter_reading": {"reading_type": {"unit": "Wh"}, "interval_reading": [
        {"value": v, "date": d.isoformat()} for d, v in points]}}


def test_poller_refuses_impossible_days_and_asks_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    answers = [(DAY - timedelta(days=2), "8000"), (DAY - timedelta(days=1), "-18654")]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json=_daily_body(answers))

    client = one_try_client(ProviderSettings("myelectricaldata", token="t",
                                             base_url="http://upstream.test"), handler=handler)
    meter = MeterConfig(PDL, "m", steps=frozenset({Step.DAY}), backfill_day=2)
    now = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=10)
    caplog.set_level(logging.WARNING)
    with Store(tmp_path / "s.db") as store:
        poller = MeterPoller(meter, client, store, account="a")
        outcome = poller.poll(now)
        assert outcome.error is None, outcome.error
        held = store.daily_values(PDL, Kind.CONSUMPTION, DAY - timedelta(days=2), DAY)
        assert held == {DAY - timedelta(days=2): 8000.0}  # the negative day is not truth
        assert store.gap_attempts(PDL, Kind.CONSUMPTION, "daily", DAY - timedelta(days=1)) == 1
        assert any("-18654" in r.getMessage() and "2026-11-19" in r.getMessage()
                   for r in caplog.records)
        # asked again later (the next day), and stored once plausible
        answers[1] = (DAY - timedelta(days=1), "9100")
        poller.poll(now + timedelta(days=1))
        held = store.daily_values(PDL, Kind.CONSUMPTION, DAY - timedelta(days=2), DAY)
        assert held[DAY - timedelta(days=1)] == 9100.0
    client.close()
    assert len(asked) == 2


# -- screen() decides without looking at each reading only when nothing can be refused ---


_RESOLUTIONS = ["PT10M", "PT15M", "PT30M", "PT60M", "P1D"]


def _bound(resolution: str, kind: Kind, limit: float, day: date) -> float:
    """The value at which problem() starts refusing (computed here, from its rules)."""
    if kind is Kind.MAX_POWER:
        return limit
    if resolution == "P1D":
        start, end = day_bounds(day)
        return limit * (end - start).total_seconds() / 3600
    return limit * int(resolution[2:-1]) / 60


@settings(max_examples=500, deadline=None)
@given(
    kva=st.sampled_from([None, 3.0, 6.0, 9.0, 36.0]),
    picks=st.lists(st.tuples(
        st.sampled_from(_RESOLUTIONS), st.sampled_from(list(Kind)),
        st.sampled_from([date(2026, 3, 29), date(2026, 10, 25), DAY]),
        st.sampled_from([0.0, 0.5, 1 - 1e-12, 1 - 1e-16, 1.0, 1 + 1e-15, 1 + 1e-6, 2.0,
                         -1e-300, -1.0])), min_size=1, max_size=6),
)
def test_screen_refuses_exactly_what_problem_finds(
        kva: float | None, picks: list[tuple[str, Kind, date, float]]) -> None:
    """Readings at, just below and just above each bound (and negatives), mixed."""
    limit = plausible.power_limit_va(kva)
    items = [Reading(PDL, kind, resolution, day_bounds(day)[0] + timedelta(hours=i),
                     _bound(resolution, kind, limit, day) * factor)
             for i, (resolution, kind, day, factor) in enumerate(picks)]
    bad = {(r.kind, r.local_date, r.is_daily) for r in items
           if plausible.problem(r, limit) is not None}
    expected = [r for r in items if (r.kind, r.local_date, r.is_daily) not in bad]
    assert plausible.screen(items, PDL, kva) == expected
