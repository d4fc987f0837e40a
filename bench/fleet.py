"""Figure 2, fleet cycle at the quota limit: N Data Connect meters on one account.

The simulator enforces 5 requests/s and answers after 100 ms. Steady state: every meter
lacks only the latest day served (yesterday from 08:00 Paris, the day before until then:
:func:`bench.common.steady_window`) and its contract is already in the store, as after
any restart. The clock is the run's pinned clock (``--at``); a cycle after which no meter
holds the latest day is not a figure: it raises :class:`bench.common.FetchedNothing`. The
figure is the wall time from ``Bridge.start()`` until every meter holds yesterday,
against the limit: requests served / 5 per second. Ratio = limit / wall time (1.00:
exactly as fast as the quota allows); goal >= 1/1.1 (the cycle within 1.1 x the quota's
time) with no 429 answer. Two sizes: 10 meters (a small fleet: no start-up spread on top
of the budget's pacing) and N (100 quick, 1,000 full).

The account's hourly budget is raised to 10,000 (Data Connect v5's figure): the default
1,000/h would make a cycle of 1,000 meters (2,000 requests) wait an hour by design.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import (
    FetchedNothing,
    Row,
    broker,
    dataconnect_config,
    pdls,
    steady_window,
    wait_until,
)
from linky2mqtt import topics
from linky2mqtt.bridge import Bridge
from linky2mqtt.clock import SYSTEM_CLOCK
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind
from linky2mqtt.simulator import SimOptions, Simulator
from linky2mqtt.store import Store

RATE = 5
LATENCY = 0.1


def run(quick: bool) -> list[Row]:
    """A small fleet (10 meters: no start-up spread on top of the pacing) and a big one."""
    return [_cycle(10), _cycle(100 if quick else 1000)]


def _cycle(n: int) -> Row:
    meters = pdls(n, "8")
    backfill, latest = steady_window(SYSTEM_CLOCK.now())
    nxt = latest + timedelta(days=1)
    with broker() as mqtt, tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        sim = Simulator(SimOptions(port=0, rate_per_second=RATE, latency=LATENCY))
        sim.start()
        try:
            cfg = load_text(dataconnect_config(
                mqtt_port=mqtt.port, sim_url=sim.url, store=Path(tmp) / "s.db",
                accounts={"fleet": meters}, backfill_day=backfill, backfill_hour=backfill,
                per_hour=10000, client_id="bench-fleet"))
            with Store(cfg.store.path) as store:
                for pdl in meters:
                    store.set_retained(topics.contract_topic(cfg.mqtt.base_topic, pdl),
                                       b'{"pdl":"%s"}' % pdl.encode())
                    store.set_contract_check(pdl, SYSTEM_CLOCK.time(), True)
            bridge = Bridge(cfg)  # default stagger, as in production
            t0 = time.monotonic()
            bridge.start()
            try:
                states = list(bridge.fleet.runners[0].meters.values())

                def held() -> int:
                    return sum(1 for p in meters if latest in bridge.store.days_with_daily(
                        p, Kind.CONSUMPTION, latest, nxt))

                wait_until(lambda: all(s.last_poll is not None for s in states),
                           n * 2 / RATE * 3 + 60, "fleet cycle", period=0.01)
                wall = time.monotonic() - t0
                try:
                    wait_until(lambda: held() == n, 30, "fleet data in store")
                except TimeoutError:
                    got = held()
                    if got == 0:
                        raise FetchedNothing("fleet", f"no meter holds {latest}") from None
                    raise
            finally:
                bridge.stop()
            total = sim.stats()["total"]
            refused = sim.count(status=429)
        finally:
            sim.stop()
    served = total - refused
    limit = served / RATE
    ratio = limit / wall
    return Row(f"fleet: first cycle, {n} meters @5 req/s", f"{wall:.1f} s",
               f"{limit:.1f} s ({served} req / 5/s)", ratio,
               ">= 0.91 (wall <= 1.1 x limit), no 429", ratio >= 1 / 1.1 and refused == 0,
               note=f"{refused} answers 429")
