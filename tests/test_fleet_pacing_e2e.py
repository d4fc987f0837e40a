"""No spread beyond the pacing: from 10 meters on, the first cycle of one account takes the
quota's own time (requests / allowed rate) within 10 %, with no 429.

Simulator over HTTP enforcing Data Connect's 5 requests a second, a real mosquitto, the
bridge in-process; both share a ``FastClock`` running at half speed, so that the machine's
own slowness (a loaded CI) weighs half as much against the simulated second.
"""

from __future__ import annotations

import random
import time
from datetime import date, datetime
from pathlib import Path

import pytest

from linky2mqtt import topics
from linky2mqtt.bridge import Bridge
from linky2mqtt.clock import FastClock
from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.store import Store
from tests.support.bridge import account_yaml, config_yaml, truth_day_kwh
from tests.support.broker import Mosquitto
from tests.support.mqtt_client import Collector
from tests.support.simulator import MakeSimulator

START = datetime(2026, 11, 20, 12, 0, tzinfo=PARIS)
YESTERDAY = date(2026, 11, 19)
RATE = 5  # Data Connect: 5 requests a second (the simulator enforces it, the budget paces)


@pytest.mark.parametrize("n", [10, 30])
def test_the_first_cycle_takes_the_quotas_time_and_no_more(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator, n: int) -> None:
    clock = FastClock(START, 0.5)
    sim = make_simulator(clock=clock, rate_per_second=RATE)
    pdls = [f"5200000{i:07d}" for i in range(1, n + 1)]
    meters = [{"pdl": p, "steps": ["day"], "backfill_days": {"day": 1}} for p in pdls]
    account = account_yaml("firm", "dataconnect", sim, meters, client_id="sim-client",
                           client_secret="sim-secret")
    store = tmp_path / "s.db"
    with Store(store, clock=clock) as s:  # contracts known, as after any first day
        for p in pdls:
            s.set_retained(topics.contract_topic("l2m", p), b'{"pdl":"%s"}' % p.encode())
            s.set_contract_check(p, clock.time(), True)
    cfg = load_text(config_yaml(broker.url, store, [account], extra="commands: false\n"))
    watcher = Collector(broker.host, broker.port, ["l2m/+/consumption/day"])
    bridge = Bridge(cfg, clock=clock, rng=random.Random(5))  # the default stagger (2 s)
    states = list(bridge.fleet.runners[0].meters.values())
    t0 = clock.time()
    bridge.start()
    try:
        deadline = time.monotonic() + 120
        while not all(s.last_poll is not None for s in states):
            assert time.monotonic() < deadline, "timed out waiting for the first cycle"
            time.sleep(0.005)
        wall = clock.time() - t0
        watcher.wait_for(lambda ms: len({m.topic for m in ms}) == n, timeout=30,
                         what="every meter's day")
    finally:
        bridge.stop()
        watcher.close()
    refused = sim.count(status=429)
    served = sim.stats()["total"] - refused
    limit = served / RATE
    print(f"{n} meters: first cycle {wall:.2f} simulated s, quota's time {limit:.2f} s "
          f"({served} requests / {RATE}/s): {wall / limit:.2f} x; {refused} answers 429")
    assert served == n + 1  # one day each, and the token
    assert refused == 0
    assert wall <= 1.1 * limit
    for m in watcher.messages:  # what was published is the simulator's day
        pdl = m.topic.split("/")[1]
        assert m.json()["value"] == truth_day_kwh(sim, pdl, Kind.CONSUMPTION, YESTERDAY)
