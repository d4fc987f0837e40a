"""A production-only delivery point (``consumption: false``) over the simulator.

PDL 24880057139941 produces and never consumes: configured ``consumption: false,
production: true``, the bridge never asks for its consumption (the simulator counts zero
such requests, so no ADAM-ERR0069 refusal and no warning), publishes its production day
values and hourly batches, and announces no consumption sensor to Home Assistant.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import linky2mqtt.bridge as bridge_module
from linky2mqtt import homeassistant as ha
from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind, Step
from linky2mqtt.poller import MeterSeries, meter_series
from linky2mqtt.simulator import Simulator
from linky2mqtt.simulator.app import TYPES_2026, TYPES_V5
from tests.support.bridge import (
    account_yaml,
    batches_by_date,
    config_yaml,
    days_back,
    latest_day,
    truth_day_kwh,
    truth_hours,
)
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.mqtt_client import Collector, Message

pytestmark = pytest.mark.timeout(120)

FARM = "24880057139941"  # production only (simulator sandbox)
BACKFILL_DAY = 3
BACKFILL_HOUR = 2
PREFIX = "homeassistant"


def _meter(**over: Any) -> dict[str, Any]:
    meter: dict[str, Any] = {"pdl": FARM, "name": "Solar farm",
                             "steps": ["day", "month", "hour"], "consumption": False,
                             "production": True,
                             "backfill_days": {"day": BACKFILL_DAY, "hour": BACKFILL_HOUR}}
    meter.update(over)
    return meter


def _config(sim: Simulator, broker: Mosquitto, tmp_path: Path, *, extra: str = "") -> str:
    account = account_yaml("farm", "conso", sim, [_meter()],
                           token=sim.make_conso_token([FARM]))
    return config_yaml(broker.url, tmp_path / "store.db", [account], discovery=True,
                       extra=extra)


# every data endpoint of the simulator (Conso API names and v5/myelectricaldata names)
ENDPOINT_KIND: dict[str, Kind] = {
    name: kind for name, (kind, _) in (*TYPES_2026.items(), *TYPES_V5.items())}


def _requests(sim: Simulator, *kinds: Kind) -> list[dict[str, Any]]:
    """The simulator's request counts for FARM on data endpoints of ``kinds``."""
    return [b for b in sim.stats()["by"]
            if b["pdl"] == FARM and ENDPOINT_KIND.get(b["endpoint"]) in kinds]


def test_meter_series_without_consumption() -> None:
    cfg = load_text(config_yaml("mqtt://localhost:1883", Path("/tmp/unused.db"), [
        "  - name: farm\n    provider: conso\n    token: t\n    meters:\n"
        f"      - pdl: \"{FARM}\"\n        consumption: false\n        production: true\n"
        "      - pdl: \"10284856584123\"\n        consumption: false\n"
        "        max_power: true\n"]))
    farm, peak = cfg.accounts[0].meters
    assert meter_series(farm) == [MeterSeries(Kind.PRODUCTION, "daily", 365),
                                  MeterSeries(Kind.PRODUCTION, "curve", 30)]
    # max power is asked for on its own flag only
    assert meter_series(peak) == [MeterSeries(Kind.MAX_POWER, "daily", 365)]


def test_statistics_series_leave_out_consumption(simulator: Simulator, broker: Mosquitto,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class RecordingSink:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.update(kwargs)

    monkeypatch.setattr(bridge_module, "StatisticsSink", RecordingSink)
    stats = "  statistics:\n    url: http://127.0.0.1:9\n    token: ha-token\n"
    text = _config(simulator, broker, tmp_path).replace(
        "  discovery: true\n", "  discovery: true\n" + stats)
    bridge = Bridge(load_text(text), clock=SUITE_CLOCK)
    assert list(seen["series"]) == [(FARM, Kind.PRODUCTION)]
    views = bridge.fleet.meter_views()
    assert (views[FARM].consumption, views[FARM].production) == (False, True)
    info = bridge.fleet.meter_info(bridge.fleet.state(FARM))
    assert (info.consumption, info.production, info.max_power) == (False, True, False)
    assert info.steps == frozenset(Step)


def test_production_only_meter_end_to_end(simulator: Simulator, broker: Mosquitto,
                                          tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = load_text(_config(simulator, broker, tmp_path))
    watcher = Collector(broker.host, broker.port, ["#"])
    bridge = Bridge(cfg, stagger=0.2, clock=SUITE_CLOCK)
    hour_days = days_back(BACKFILL_HOUR)
    latest = latest_day()
    day_topic = f"l2m/{FARM}/production/day"
    hour_topic = f"l2m/{FARM}/production/hour"
    config_topic = ha.discovery_topic(PREFIX, FARM)

    def done(msgs: list[Message]) -> bool:
        got = batches_by_date(msgs, hour_topic)
        return (all(d.isoformat() in got and got[d.isoformat()]["complete"]
                    for d in hour_days)
                and any(m.topic == day_topic and m.json().get("date") == latest.isoformat()
                        for m in msgs)
                and any(m.topic == config_topic and m.payload for m in msgs)
                and any(m.topic == f"l2m/{FARM}/status" for m in msgs))

    bridge.start()
    try:
        watcher.wait_for(done, timeout=60, what="production day, hours and discovery")
    finally:
        bridge.stop()
        watcher.close()
    msgs = watcher.messages

    # zero consumption-side requests upstream; production asked for, and never refused
    assert _requests(simulator, Kind.CONSUMPTION, Kind.MAX_POWER) == []
    production = _requests(simulator, Kind.PRODUCTION)
    assert {b["endpoint"] for b in production} == {
        "production_quotidienne", "courbe_de_charge_production"}, production
    farm_calls = [b for b in simulator.stats()["by"] if b["pdl"] == FARM]
    assert all(b["status"] == 200 for b in farm_calls), farm_calls

    # production published: the latest day exactly, and every hourly batch
    day_doc = [m for m in msgs if m.topic == day_topic][-1].json()
    assert (day_doc["pdl"], day_doc["date"], day_doc["unit"]) == (
        FARM, latest.isoformat(), "kWh")
    assert day_doc["value"] == truth_day_kwh(simulator, FARM, Kind.PRODUCTION, latest)
    batches = batches_by_date(msgs, hour_topic)
    for day in hour_days:
        assert batches[day.isoformat()]["points"] == truth_hours(
            simulator, FARM, Kind.PRODUCTION, day)
    # nothing about consumption anywhere
    assert not [m.topic for m in msgs if "/consumption/" in m.topic]

    # discovery: production sensors, no consumption component
    payload = [m for m in msgs if m.topic == config_topic and m.payload][-1].json()
    cmps = payload["cmps"]
    assert {"production_day", "production_month", "last_success", "last_error"} <= set(cmps)
    assert not [k for k in cmps if k.startswith("consumption")], sorted(cmps)
    assert payload["dev"]["name"] == "Solar farm"

    # no warning: the provider never had to refuse a wrong direction
    assert not [r for r in caplog.records if "ADAM-ERR0069" in r.getMessage()]
    assert not [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and FARM in r.getMessage()]
