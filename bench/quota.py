"""Figure 1, quota efficiency: upstream requests against the fewest the API allows.

* Backfill: one Data Connect meter with ``backfill_days: {day: D, hour: D}`` starts on an
  empty store; the simulator counts the data requests (token and contract calls are not
  data requests and are left out). Lower bound per kind: ceil(D/365) daily calls and
  ceil(D/7) curve calls.
* Steady week: the same kind of meter, already holding its history, runs for 7 simulated
  days on a :class:`~linky2mqtt.clock.FastClock` shared by the simulator and the bridge.
  Lower bound: one daily and one curve call per day, 14 in all.

Ratio = lower bound / requests made (1.00: not one request more than needed).
"""

from __future__ import annotations

import math
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

from bench.common import FetchedNothing, Row, broker, dataconnect_config, pdls, wait_until
from linky2mqtt.bridge import Bridge
from linky2mqtt.clock import SYSTEM_CLOCK, FastClock
from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.scheduler import yesterday_published
from linky2mqtt.simulator import SimOptions, Simulator

DAILY = "consommation_quotidienne"
CURVE = "courbe_de_charge_consommation"
SPEED = 30000.0  # simulated seconds per real second for the steady week


def _held(bridge: Bridge, pdl: str, day: date) -> bool:
    nxt = day + timedelta(days=1)
    return (day in bridge.store.days_with_daily(pdl, Kind.CONSUMPTION, day, nxt)
            and day in bridge.store.days_with_complete_curve(pdl, Kind.CONSUMPTION, day, nxt))


def backfill(days: int) -> list[Row]:
    pdl = pdls(1, "6")[0]
    fetchable = days if yesterday_published(SYSTEM_CLOCK.now()) else days - 1
    with broker() as mqtt, tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        sim = Simulator(SimOptions(port=0))
        sim.start()
        try:
            cfg = load_text(dataconnect_config(
                mqtt_port=mqtt.port, sim_url=sim.url, store=Path(tmp) / "s.db",
                accounts={"dc": [pdl]}, backfill_day=days, backfill_hour=days,
                client_id="bench-quota"))
            bridge = Bridge(cfg, stagger=0.0)
            bridge.start()
            try:
                state = bridge.fleet.runners[0].meters[pdl]
                wait_until(lambda: state.last_poll is not None, 120, "backfill poll")
                stored = len(bridge.store.days_with_daily(
                    pdl, Kind.CONSUMPTION, date(2000, 1, 1), date(2100, 1, 1)))
            finally:
                bridge.stop()
            daily, curve = sim.count(endpoint=DAILY), sim.count(endpoint=CURVE)
        finally:
            sim.stop()
    if not stored:
        raise FetchedNothing("quota", f"backfill of {days} d stored no day")
    lb_daily, lb_curve = math.ceil(fetchable / 365), math.ceil(fetchable / 7)
    return [
        Row(f"quota: backfill {days} d, day step", f"{daily} req", f"{lb_daily} req (bound)",
            lb_daily / daily if daily else None, "ratio 1.00", daily == lb_daily),
        Row(f"quota: backfill {days} d, hour step", f"{curve} req", f"{lb_curve} req (bound)",
            lb_curve / curve if curve else None, "ratio 1.00", curve == lb_curve),
    ]


def steady_week() -> list[Row]:
    pdl = pdls(1, "7")[0]
    start = datetime(2026, 11, 21, 12, 0, tzinfo=PARIS)
    clock = FastClock(start, speed=SPEED)
    last_day = start.date() + timedelta(days=6)  # fetched on the 7th morning
    with broker() as mqtt, tempfile.TemporaryDirectory(prefix="bench-week-") as tmp:
        sim = Simulator(SimOptions(port=0, clock=clock))
        sim.start()
        try:
            cfg = load_text(dataconnect_config(
                mqtt_port=mqtt.port, sim_url=sim.url, store=Path(tmp) / "s.db",
                accounts={"dc": [pdl]}, backfill_day=7, backfill_hour=7,
                client_id="bench-week"))
            bridge = Bridge(cfg, clock=clock, stagger=0.0)
            bridge.start()
            try:
                state = bridge.fleet.runners[0].meters[pdl]
                wait_until(lambda: state.last_poll is not None, 60, "initial backfill")
                before = sim.count(endpoint=DAILY) + sim.count(endpoint=CURVE)
                wait_until(lambda: _held(bridge, pdl, last_day), 7 * 86400 / SPEED + 60,
                           "a week of daily polls", period=0.01)
                after = sim.count(endpoint=DAILY) + sim.count(endpoint=CURVE)
            finally:
                bridge.stop()
        finally:
            sim.stop()
    made, bound = after - before, 2 * 7
    return [Row("quota: steady week (7 d, day+hour)", f"{made} req", f"{bound} req (bound)",
                bound / made if made else None, "ratio 1.00", made == bound)]


def run(quick: bool) -> list[Row]:
    return backfill(30 if quick else 90) + steady_week()
