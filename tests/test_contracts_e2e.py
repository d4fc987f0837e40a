"""Contracts off the data path, end to end: simulator over HTTP, a real mosquitto, the bridge
in-process, sharing one ``FastClock`` (an hour of budget passes in seconds).

A meter's contract is asked after the day's data, at the lowest priority, within what the
request budget leaves; what was asked (a contract, or none: a 404) is remembered for
``contract_refresh_days`` and not asked again at the next start.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from linky2mqtt.bridge import Bridge
from linky2mqtt.clock import FastClock
from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator
from tests.support.bridge import account_yaml, config_yaml, truth_day_kwh
from tests.support.broker import Mosquitto
from tests.support.mqtt_client import Collector, Message
from tests.support.simulator import MakeSimulator

START = datetime(2026, 11, 20, 12, 0, tzinfo=PARIS)
YESTERDAY = date(2026, 11, 19)
CONTRACT = "situation_contrat_auto"  # the simulator's name of the contract endpoint
DAY = 86400.0


@dataclass(frozen=True)
class Seen:
    at: float  # simulated epoch seconds
    real: float  # time.monotonic() when the simulator answered
    pdl: str | None
    endpoint: str
    status: int


class Requests:
    """Every request the simulator answers, stamped with both clocks."""

    def __init__(self, sim: Simulator, clock: FastClock) -> None:
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        record = sim.app.stats.record

        def recording(provider: str, pdl: str | None, endpoint: str, status: int) -> None:
            with self.lock:
                self.seen.append(Seen(clock.time(), time.monotonic(), pdl, endpoint, status))
            record(provider, pdl, endpoint, status)

        sim.app.stats.record = recording  # type: ignore[method-assign]

    def contracts(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.endpoint == CONTRACT]

    def data(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.endpoint not in (CONTRACT, "token")]


def _pdls(n: int) -> list[str]:
    return [f"5100000{i:07d}" for i in range(1, n + 1)]


def _bridge(broker: Mosquitto, sim: Simulator, store: Path, clock: FastClock,
            pdls: list[str]) -> Bridge:
    meters: list[dict[str, Any]] = [{"pdl": p, "steps": ["day"], "backfill_days": {"day": 1}}
                                    for p in pdls]
    account = account_yaml("firm", "dataconnect", sim, meters, client_id="sim-client",
                           client_secret="sim-secret")
    # Data Connect's default budget: 5 a second, 1,000 an hour
    cfg = load_text(config_yaml(broker.url, store, [account], extra="commands: false\n"))
    return Bridge(cfg, clock=clock, rng=random.Random(3))


def _days(msgs: list[Message]) -> dict[str, Message]:
    return {m.topic.split("/")[1]: m for m in msgs if m.topic.endswith("/consumption/day")}


def test_a_thousand_meters_publish_every_day_before_the_first_contract_request(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator) -> None:
    clock = FastClock(START, 300)  # an hour of budget in 12 real seconds
    sim = make_simulator(clock=clock)
    seen = Requests(sim, clock)
    pdls = _pdls(1000)
    watcher = Collector(broker.host, broker.port, ["l2m/+/consumption/day", "l2m/+/contract"])
    bridge = _bridge(broker, sim, tmp_path / "s.db", clock, pdls)
    t0 = clock.time()
    bridge.start()
    try:
        watcher.wait_for(lambda ms: len(_days(ms)) == len(pdls), timeout=300,
                         what="every meter's day")
        watcher.wait_for(lambda ms: sum(m.topic.endswith("/contract") for m in ms) >= 5,
                         timeout=300, what="the first contracts, once the budget allows")
    finally:
        bridge.stop()
        watcher.close()
    days = _days(watcher.messages)
    for p in (pdls[0], pdls[499], pdls[-1]):  # values computed by the simulator
        assert days[p].json()["date"] == YESTERDAY.isoformat()
        assert days[p].json()["value"] == truth_day_kwh(sim, p, Kind.CONSUMPTION, YESTERDAY)
    contracts = seen.contracts()
    first = contracts[0]
    last_day = max(m.received_at for m in days.values())
    data = seen.data()
    print(f"1,000 meters: first contract request "
          f"{(first.at - t0) / 60:.0f} simulated min after the start, last data request "
          f"{(max(s.at for s in data) - t0) / 60:.0f} min; {len(data)} data requests")
    assert len(data) == len(pdls)  # one data request per meter, none for contracts
    assert all(s.status == 200 for s in data)
    # every day value was published (and received) before the first contract request
    assert last_day < first.real
    assert max(s.at for s in data) < first.at
    # the contracts came from the budget the data left: the first once the hour had room
    assert first.at - t0 >= 3600 * 0.5
    assert all(s.status == 200 for s in contracts)


def test_a_contract_or_its_absence_is_remembered_across_restarts_for_a_week(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator) -> None:
    with_contract, without = _pdls(2)
    store = tmp_path / "s.db"

    def run(start: datetime, expected: int) -> list[Seen]:
        clock = FastClock(start, 600)
        sim = make_simulator(clock=clock)
        sim.script(f"situation_contrat_auto/v1/{without}", ["404"])
        seen = Requests(sim, clock)
        watcher = Collector(broker.host, broker.port, ["l2m/+/status"])
        bridge = _bridge(broker, sim, store, clock, [with_contract, without])
        bridge.start()
        try:
            watcher.wait_for(lambda ms: len({m.topic for m in ms}) >= 2, timeout=60,
                             what="both statuses")
            deadline = time.monotonic() + 30
            while len(seen.contracts()) < expected:
                assert time.monotonic() < deadline, "timed out waiting for the contracts"
                time.sleep(0.05)
            # and no more: 10 simulated minutes more ask nothing else
            until = clock.time() + 600
            while clock.time() < until:
                time.sleep(0.05)
        finally:
            bridge.stop()
            watcher.close()
        assert len(seen.contracts()) == expected
        return seen.contracts()

    asked = run(START, 2)
    assert {(s.pdl, s.status) for s in asked} == {(with_contract, 200), (without, 404)}
    assert run(START.replace(hour=15), 0) == []  # a restart: neither asked, the 404 neither
    asked = run(datetime.fromtimestamp(START.timestamp() + 7 * DAY + 3600, PARIS), 2)
    assert {(s.pdl, s.status) for s in asked} == {(with_contract, 200), (without, 404)}
