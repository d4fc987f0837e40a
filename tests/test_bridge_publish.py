"""End to end: three providers, five meters, a real mosquitto and the simulator over HTTP.

Every retained day and month value and every hourly batch is checked value by value
against the simulator's ground truth, the October DST day (25 points) included; the
upstream requests of the backfill are counted against their lower bound.
"""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind, day_bounds, kwh, local_iso
from linky2mqtt.simulator import Simulator
from tests.support.bridge import (
    account_yaml,
    batches_by_date,
    config_yaml,
    data_requests,
    days_back,
    latest_day,
    truth_day_kwh,
    truth_hours,
)
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.mqtt_client import Collector, Message

BACKFILL_DAY = 40
BACKFILL_HOUR = 40
SELF = "12655648759651"  # self-consumption (conso)
PRODUCER = "10284856584123"  # production only (conso)
DC_CONSUMER = "22516914714270"  # dataconnect
DC_BOTH = "30000000000013"  # ends in 3: consumes and produces (dataconnect)
MED_BOTH = "50000000000023"  # ends in 3 (myelectricaldata)
# which kinds each meter really has
KINDS = {
    SELF: [Kind.CONSUMPTION, Kind.PRODUCTION],
    PRODUCER: [Kind.PRODUCTION],
    DC_CONSUMER: [Kind.CONSUMPTION],
    DC_BOTH: [Kind.CONSUMPTION, Kind.PRODUCTION],
    MED_BOTH: [Kind.CONSUMPTION, Kind.PRODUCTION],
}
ISO_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def _meter(pdl: str, production: bool, max_power: bool = False) -> dict[str, Any]:
    return {"pdl": pdl, "name": f"m{pdl[-4:]}", "steps": ["day", "month", "hour"],
            "production": production, "max_power": max_power,
            "backfill_days": {"day": BACKFILL_DAY, "hour": BACKFILL_HOUR}}


def _config(sim: Simulator, broker: Mosquitto, tmp_path: Path) -> str:
    accounts = [
        account_yaml("home", "conso", sim,
                     [_meter(SELF, True, max_power=True), _meter(PRODUCER, True)],
                     token=sim.make_conso_token([SELF, PRODUCER])),
        account_yaml("business", "dataconnect", sim,
                     [_meter(DC_CONSUMER, False), _meter(DC_BOTH, True)],
                     client_id="sim-client", client_secret="sim-secret"),
        account_yaml("gateway", "myelectricaldata", sim, [_meter(MED_BOTH, True)],
                     token="med-token"),
    ]
    return config_yaml(broker.url, tmp_path / "store.db", accounts)


def _all_published(msgs: list[Message], wanted_days: list[date]) -> bool:
    """Every meter's status says the latest day and every hourly batch has arrived."""
    want = {d.isoformat() for d in wanted_days}
    for pdl, kinds in KINDS.items():
        for kind in kinds:
            got = batches_by_date(msgs, f"l2m/{pdl}/{kind.value}/hour")
            if not want <= set(got) or not all(got[d]["complete"] for d in want):
                return False
            if not any(m.topic == f"l2m/{pdl}/{kind.value}/month" and m.json().get(
                    "days") == latest_day().day for m in msgs):
                return False
    return True


def _check_day(sim: Simulator, doc: dict[str, Any], pdl: str, kind: Kind, day: date) -> None:
    start, end = day_bounds(day)
    assert set(doc) == {"pdl", "date", "start", "end", "value", "unit", "quality",
                        "fetched_at"}
    assert doc["pdl"] == pdl and doc["date"] == day.isoformat()
    assert doc["start"] == local_iso(start) and doc["end"] == local_iso(end)
    assert doc["value"] == truth_day_kwh(sim, pdl, kind, day), (pdl, kind, day)
    assert doc["unit"] == "kWh"
    assert ISO_OFFSET.match(doc["fetched_at"])


def _check_month(sim: Simulator, doc: dict[str, Any], pdl: str, kind: Kind,
                 latest: date) -> None:
    first = latest.replace(day=1)
    oldest = days_back(BACKFILL_DAY)[-1]
    held = [first + timedelta(days=i) for i in range((latest - first).days + 1)]
    held = [d for d in held if d >= oldest]
    missing = [(first + timedelta(days=i)).isoformat()
               for i in range((latest - first).days + 1)
               if first + timedelta(days=i) < oldest]
    wh = sum(sim.daily_wh(pdl, kind, d) or 0 for d in held)
    assert set(doc) == {"pdl", "month", "start", "end", "value", "unit", "days", "complete",
                        "missing"}
    assert doc == {
        "pdl": pdl, "month": f"{latest:%Y-%m}",
        "start": local_iso(day_bounds(first)[0]),
        "end": local_iso(day_bounds((first + timedelta(days=32)).replace(day=1))[0]),
        "value": kwh(wh), "unit": "kWh", "days": len(held), "complete": False,
        "missing": missing,
    }


def test_three_providers_publish_exact_values(simulator: Simulator, broker: Mosquitto,
                                              tmp_path: Path) -> None:
    cfg = load_text(_config(simulator, broker, tmp_path))
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = Bridge(cfg, stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    hour_days = days_back(BACKFILL_HOUR)
    try:
        watcher.wait_for(lambda msgs: _all_published(msgs, hour_days), timeout=90,
                         what="every meter published")
    finally:
        bridge.stop()
        watcher.close()
    latest = latest_day()
    assert hour_days[0] == latest
    msgs = watcher.messages

    # retained collector: what a newcomer would receive
    late = Collector(broker.host, broker.port, ["l2m/#"])
    try:
        expected = {f"l2m/{pdl}/{kind.value}/{step}" for pdl, kinds in KINDS.items()
                    for kind in kinds for step in ("day", "month")}
        expected |= {f"l2m/{pdl}/status" for pdl in KINDS}
        expected |= {"l2m/bridge/state", f"l2m/{SELF}/max_power/day"}
        retained = late.wait_for(
            lambda ms: {m.topic: m for m in ms if m.retain} if expected <= {
                m.topic for m in ms if m.retain} else None,
            timeout=10, what="retained topics")
    finally:
        late.close()
    assert retained["l2m/bridge/state"].json() == {"state": "offline"}

    for pdl, kinds in KINDS.items():
        for kind in kinds:
            # retained day value: the latest day, exact
            day_msg = retained[f"l2m/{pdl}/{kind.value}/day"]
            assert day_msg.qos == 1
            _check_day(simulator, day_msg.json(), pdl, kind, latest)
            _check_month(simulator, retained[f"l2m/{pdl}/{kind.value}/month"].json(), pdl,
                         kind, latest)
            # hourly: one batch per day, never retained, QoS 1, each point exact
            topic = f"l2m/{pdl}/{kind.value}/hour"
            assert topic not in retained
            live = [m for m in msgs if m.topic == topic]
            assert all(m.qos == 1 and not m.retain for m in live)
            got = batches_by_date(msgs, topic)
            for day in hour_days:
                doc = got[day.isoformat()]
                assert set(doc) == {"pdl", "date", "interval", "unit", "complete", "points"}
                assert (doc["pdl"], doc["interval"], doc["unit"], doc["complete"]) == (
                    pdl, "PT1H", "kWh", True)
                assert doc["points"] == truth_hours(simulator, pdl, kind, day), (pdl, day)
            dst = got["2026-10-25"]["points"]
            assert len(dst) == 25
            assert [p["start"] for p in dst[1:5]] == [
                "2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
            assert len(got["2026-10-26"]["points"]) == 24
        status = retained[f"l2m/{pdl}/status"].json()
        assert status["latest_day"] == latest.isoformat()
        assert ISO_OFFSET.match(status["last_success"])
    # max power: the day's peak and when it happened
    va, at = simulator.max_power(SELF, latest) or (0, None)
    assert retained[f"l2m/{SELF}/max_power/day"].json() == {
        "pdl": SELF, "date": latest.isoformat(), "value": va, "unit": "VA",
        "time": local_iso(at) if at else None}
    # the producer has no consumption
    assert f"l2m/{PRODUCER}/consumption/day" not in retained

    # requests: the lower bound, per kind and PDL
    by = simulator.stats()["by"]
    assert not [b for b in by if b["status"] != 200 and b["pdl"] != PRODUCER], by
    # the producer's consumption: refused once per series, then never asked again
    assert data_requests(simulator, PRODUCER, status=400) == 2
    assert data_requests(simulator, SELF, "max_power") == 1
    for pdl, kinds in KINDS.items():
        curve_calls = data_requests(simulator, pdl, "curve")
        daily_calls = data_requests(simulator, pdl, "daily")
        assert curve_calls == len(kinds) * math.ceil(BACKFILL_HOUR / 7), (pdl, by)
        assert daily_calls == len(kinds) * math.ceil(BACKFILL_DAY / 365), (pdl, by)
