"""The bridge as a process: SIGTERM and start again; SIGKILL and a broker outage mid-backfill.

* SIGTERM: ``{"state":"offline"}`` retained, exit 0; started again: ``online``, zero
  upstream requests (data and contract are in the store), retained values unchanged.
* SIGKILL mid-backfill, then start again: every hourly batch reaches a subscriber.
* The broker stopped and started again mid-backfill: the same, and every retained value
  right.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind
from linky2mqtt.simulator import Simulator
from tests.support.bridge import (
    BridgeProcess,
    SessionCollector,
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

CONSO = "12655648759651"  # consumes and produces
DC = "22516914714270"
MED = "30000000000023"


def _meter(pdl: str, *, production: bool = False, day: int = 10,
           hour: int = 10) -> dict[str, Any]:
    return {"pdl": pdl, "steps": ["day", "month", "hour"], "production": production,
            "backfill_days": {"day": day, "hour": hour}}


def _accounts(sim: Simulator, hour: int = 10) -> list[str]:
    return [
        account_yaml("home", "conso", sim, [_meter(CONSO, production=True, hour=hour)],
                     token=sim.make_conso_token([CONSO])),
        account_yaml("business", "dataconnect", sim, [_meter(DC, hour=hour)],
                     client_id="sim-client", client_secret="sim-secret"),
        account_yaml("gateway", "myelectricaldata", sim, [_meter(MED, hour=hour)],
                     token="med-token"),
    ]


SERIES = [(CONSO, Kind.CONSUMPTION), (CONSO, Kind.PRODUCTION), (DC, Kind.CONSUMPTION),
          (MED, Kind.CONSUMPTION)]


def _all_batches(msgs: list[Message], days: list[date]) -> bool:
    want = {d.isoformat() for d in days}
    return all(want <= set(batches_by_date(msgs, f"l2m/{p}/{k.value}/hour"))
               for p, k in SERIES)


def _missing(msgs: list[Message], days: list[date]) -> dict[str, list[str]]:
    want = {d.isoformat() for d in days}
    return {f"{p}/{k.value}": sorted(want - set(batches_by_date(msgs,
                                                               f"l2m/{p}/{k.value}/hour")))
            for p, k in SERIES}


def _statuses_after(msgs: list[Message], since: datetime) -> bool:
    """Every meter has published a status for a poll that ended after ``since``."""
    since = since.replace(microsecond=0)  # last_poll is given to the second
    for pdl in (CONSO, DC, MED):
        got = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/status"]
        if not got or not got[-1]["last_poll"] or datetime.fromisoformat(
                got[-1]["last_poll"]) < since or got[-1]["latest_day"] != latest_day(
                ).isoformat():
            return False
    return True


def _retained(broker: Mosquitto, must: set[str]) -> dict[str, bytes]:
    c = Collector(broker.host, broker.port, ["l2m/#"])
    try:
        # the retained value, or a newer one published live since we subscribed
        got: dict[str, bytes] = c.wait_for(
            lambda ms: {m.topic: m.payload for m in ms}
            if must <= {m.topic for m in ms} else None,
            timeout=10, what="retained topics")
        return got
    finally:
        c.close()


RETAINED = {f"l2m/{p}/{k.value}/{s}" for p, k in SERIES for s in ("day", "month")} | {
    f"l2m/{p}/contract" for p in (DC, MED)} | {  # Conso API has no contract
    f"l2m/{p}/status" for p in (CONSO, DC, MED)} | {"l2m/bridge/state", "l2m/bridge/info"}


def test_sigterm_then_restart_makes_no_upstream_request(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config_yaml(broker.url, tmp_path / "s.db", _accounts(simulator)))
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    first = BridgeProcess(cfg)
    try:
        started = SUITE_CLOCK.now()
        watcher.wait_for(lambda ms: _all_batches(ms, days_back(10))
                         and _statuses_after(ms, started), timeout=45,
                         what="first run published everything")
        before = simulator.stats()
        assert first.terminate() == 0, first.stderr
        watcher.wait_topic("l2m/bridge/state", 10,
                           where=lambda m: m.json() == {"state": "offline"})
        retained_before = _retained(broker, RETAINED)
        assert retained_before["l2m/bridge/state"] == b'{"state":"offline"}'
    finally:
        first.close()

    restarted_at = SUITE_CLOCK.now()
    n = len(watcher.messages)
    second = BridgeProcess(cfg)
    try:
        try:
            watcher.wait_for(lambda ms: _statuses_after(ms[n:], restarted_at), timeout=30,
                             what="second run polled every meter")
        except TimeoutError:
            raise AssertionError(second.stderr) from None
        assert next(m.json() for m in watcher.messages[n:]
                    if m.topic == "l2m/bridge/state") == {"state": "online"}
        after = simulator.stats()
        assert after == before, "the restart asked upstream again"
        retained_after = _retained(broker, RETAINED)
        assert second.terminate() == 0, second.stderr
    finally:
        second.close()
        watcher.close()
    for topic in RETAINED - {"l2m/bridge/state"} - {f"l2m/{p}/status" for p in (CONSO, DC, MED)}:
        assert retained_after[topic] == retained_before[topic], topic
    assert retained_after["l2m/bridge/state"] == b'{"state":"online"}'


def _check_values(sim: Simulator, msgs: list[Message], retained: dict[str, bytes],
                  days: list[date]) -> None:
    import json

    latest = latest_day()
    for pdl, kind in SERIES:
        got = batches_by_date(msgs, f"l2m/{pdl}/{kind.value}/hour")
        for d in days:
            assert got[d.isoformat()]["points"] == truth_hours(sim, pdl, kind, d), (pdl, d)
            assert got[d.isoformat()]["complete"] is True
        day = json.loads(retained[f"l2m/{pdl}/{kind.value}/day"])
        assert (day["date"], day["value"]) == (latest.isoformat(),
                                                truth_day_kwh(sim, pdl, kind, latest))


def _persistent_broker(tmp_path: Path) -> Mosquitto:
    """A mosquitto that keeps sessions across its own restart (persistence on)."""
    from tests.support.broker import free_port

    port = free_port()
    m = Mosquitto(tmp_path, port=port, extra_conf=(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {tmp_path}/\n"))
    m.start()
    return m


HOUR_BACKFILL = 28  # 4 curve calls per series: a few seconds with a slow simulator


def test_sigkill_mid_backfill_then_restart_delivers_every_batch(
        make_simulator: Any, tmp_path: Path) -> None:
    sim: Simulator = make_simulator(latency=0.4)
    broker = _persistent_broker(tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config_yaml(broker.url, tmp_path / "s.db",
                               _accounts(sim, hour=HOUR_BACKFILL)))
    days = days_back(HOUR_BACKFILL)
    consumer = SessionCollector(broker.host, broker.port, "l2m/#", "test-consumer")
    proc = BridgeProcess(cfg)
    try:
        consumer.wait_for(lambda ms: any(m.topic.endswith("/hour") for m in ms), 30,
                          "a first hourly batch")
        assert proc.kill() == -9
        assert not _all_batches(consumer.messages, days), "not mid-backfill"
        killed_after = sim.stats()["total"]
        proc = BridgeProcess(cfg)
        try:
            consumer.wait_for(lambda ms: _all_batches(ms, days), 60, "every hourly batch")
        except TimeoutError:
            raise AssertionError(f"{_missing(consumer.messages, days)}\n{proc.stderr}"
                                 ) from None
        retained = _retained(broker, RETAINED)
        assert proc.terminate() == 0, proc.stderr
    finally:
        proc.close()
        consumer.close()
        broker.stop()
    _check_values(sim, consumer.messages, retained, days)
    print(f"requests before the kill: {killed_after}, in all: {sim.stats()['total']}")


def test_broker_outage_mid_backfill_delivers_every_batch(
        make_simulator: Any, tmp_path: Path) -> None:
    sim: Simulator = make_simulator(latency=0.4)
    broker = _persistent_broker(tmp_path)
    cfg = load_text(config_yaml(broker.url, tmp_path / "s.db",
                                _accounts(sim, hour=HOUR_BACKFILL)))
    days = days_back(HOUR_BACKFILL)
    consumer = SessionCollector(broker.host, broker.port, "l2m/#", "test-consumer")
    bridge = Bridge(cfg, stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    try:
        consumer.wait_for(lambda ms: any(m.topic.endswith("/hour") for m in ms), 30,
                          "a first hourly batch")
        broker.stop()
        assert not _all_batches(consumer.messages, days), "not mid-backfill"
        broker.start()
        consumer.wait_for(lambda ms: _all_batches(ms, days), 60, "every hourly batch")
        retained = _retained(broker, RETAINED - {"l2m/bridge/state"})
    finally:
        bridge.stop()
        consumer.close()
        broker.stop()
    _check_values(sim, consumer.messages, retained, days)
