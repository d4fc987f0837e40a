"""A day that comes late (a gap) is asked again on later days, and a restart of the bridge
changes nothing to that: the day is fetched once it is there, never given up because the
bridge was restarted while it waited. The poller over a MockTransport upstream and a real
store; a restart is a new poller (and client) on the same store."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx

from linky2mqtt.config import MeterConfig
from linky2mqtt.enedis import ProviderSettings
from linky2mqtt.model import PARIS, Kind, Step
from linky2mqtt.poller import MeterPoller
from linky2mqtt.store import Store
from tests.support.clock import SteppedClock
from tests.support.upstream_client import one_try_client

PDL = "12345678901234"
GAP = date(2026, 10, 21)  # there from 06:00 on D+3 instead of 08:00 on D+1
THERE_FROM = datetime.combine(GAP + timedelta(days=3), time(6), PARIS)


def _wh(day: date) -> int:
    return 9000 + day.day


def test_a_gap_day_waited_for_across_a_restart_is_fetched_once_there(tmp_path: Path) -> None:
    clock = SteppedClock(datetime.combine(GAP + timedelta(days=1), time(8, 10), PARIS))
    asked: list[tuple[str, date, date]] = []  # (poller, first day, end) of each request
    who = ["first"]

    def handler(request: httpx.Request) -> httpx.Response:
        m = re.search(r"/start/([\d-]+)/end/([\d-]+)", request.url.path)
        assert m is not None, request.url
        start, end = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        asked.append((who[0], start, end))
        days = [start + timedelta(days=i) for i in range((end - start).days)]
        there = [d for d in days if d != GAP or clock.now() >= THERE_FROM]
        body: dict[str, Any] = {"meter_reading": {"reading_type": {"unit": "Wh"},
                                                  "interval_reading": [
            {"value": str(_wh(d)), "date": d.isoformat()} for d in there]}}
        return httpx.Response(200, json=body)

    settings = ProviderSettings("myelectricaldata", token="t", base_url="http://up.test")
    meter = MeterConfig(PDL, "m", steps=frozenset({Step.DAY}), backfill_day=5)

    def at(day: date, hh: int, mm: int) -> datetime:
        moment = datetime.combine(day, time(hh, mm), PARIS)
        clock.t = moment.timestamp()
        return moment

    with Store(tmp_path / "s.db") as store:
        client = one_try_client(settings, handler=handler, clock=clock)
        poller = MeterPoller(meter, client, store, account="a")
        # D+1: the first poll and the two same-day retries for yesterday, not there
        for hh in (8, 10, 14):
            assert poller.poll(at(GAP + timedelta(days=1), hh, 10)).error is None
        # D+2: the morning poll brings D+1; the gap still is not there
        assert poller.poll(at(GAP + timedelta(days=2), 8, 10)).error is None
        client.close()
        held = store.daily_values(PDL, Kind.CONSUMPTION, GAP - timedelta(days=4),
                                  GAP + timedelta(days=2))
        assert GAP not in held and GAP + timedelta(days=1) in held

        # the bridge is killed and restarted that afternoon (D+2 15:00)
        who[0] = "restarted"
        client = one_try_client(settings, handler=handler, clock=clock)
        poller = MeterPoller(meter, client, store, account="a")
        assert poller.poll(at(GAP + timedelta(days=2), 15, 0)).error is None
        # D+3 morning: the gap is there, it is fetched with D+2
        assert poller.poll(at(GAP + timedelta(days=3), 8, 10)).error is None
        client.close()
        held = store.daily_values(PDL, Kind.CONSUMPTION, GAP - timedelta(days=4),
                                  GAP + timedelta(days=3))
    assert held.get(GAP) == _wh(GAP), (sorted(held), asked)  # not lost to the restart
    assert held == {GAP - timedelta(days=i): _wh(GAP - timedelta(days=i))
                    for i in range(-2, 5)}
    # asked once on D+1 (and on its two retries), once on D+2, once there on D+3; not
    # again by the restarted bridge on D+2: it was found empty that morning
    assert [(w, s, e) for w, s, e in asked if s <= GAP < e] == [
        ("first", GAP - timedelta(days=4), GAP + timedelta(days=1)),
        ("first", GAP, GAP + timedelta(days=1)),
        ("first", GAP, GAP + timedelta(days=1)),
        ("first", GAP, GAP + timedelta(days=2)),
        ("restarted", GAP, GAP + timedelta(days=3)),
    ]
