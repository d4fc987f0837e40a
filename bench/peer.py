"""Figure 6, the peer's workload: one meter, 3 years of daily values and 2 years of curve.

One Data Connect meter with ``backfill_days: {day: 1095, hour: 730}`` starts on an empty
store (contract not stored) against the simulator (no quota, no latency), on the run's
pinned clock. The bridge runs in its own process (:mod:`bench.size_child`): wall time from
start to the end of its first cycle, peak RSS (its own ``VmHWM``) and the data requests the
simulator counted. Then the same bridge restarts on the store it filled (2 years of curve
held): its peak RSS, and every message it publishes from start to stop, counted by a
subscriber to ``linky2mqtt/#`` that was there before.

Against:

* the lower bound of data requests: ceil(F/365) daily + ceil(H/7) curve calls, F and H
  the days the bridge may ask at the pinned instant (yesterday is not asked before 08:00
  Paris); goal ratio 1.00;
* the peer's published figures for the same workload (:data:`PEER_WALL_S`,
  :data:`PEER_RSS_MB`, :data:`PEER_RESTART_MESSAGES`, measured side by side in the run
  issue 15 reports; see the analysis in RESULTS.md), goal: not worse (ratio >= 1);
* the first cycle itself for the restart: restart peak RSS <= first-cycle peak RSS
  (restart no heavier than the backfill).

A first cycle that stored no day raises :class:`bench.common.FetchedNothing`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import FetchedNothing, Row, broker, dataconnect_config, pdls, wait_until
from linky2mqtt.clock import SYSTEM_CLOCK
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind
from linky2mqtt.scheduler import yesterday_published
from linky2mqtt.simulator import SimOptions, Simulator
from linky2mqtt.store import Store

DAILY = "consommation_quotidienne"
CURVE = "courbe_de_charge_consommation"
DAYS, HOURS = 1095, 730
# The peer on this workload (1 PDL, 1,095 days daily + 730 days curve, fresh store), as
# measured side by side with linky2mqtt and published in issue 15 (see RESULTS.md).
PEER_WALL_S = 143.0
PEER_RSS_MB = 168.0
PEER_RESTART_MESSAGES = 1581


def _child(config: Path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-m", "bench.size_child", str(config)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"peer child failed: {proc.stderr[-2000:]}")
    got: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return got


class _Counter:
    """Counts every message under ``base/#`` from the moment it is subscribed."""

    def __init__(self, port: int, base: str) -> None:
        self.n = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-peer-count",
                                  protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "counter connect")
        self.client.subscribe(f"{base}/#", qos=1)
        if not self._subscribed.wait(10):
            raise RuntimeError("counter: no SUBACK")
        self.settle()
        with self._lock:
            self.n = 0  # retained messages delivered on subscribe are not the restart's

    def _on_message(self, client: paho.Client, userdata: object, msg: object) -> None:
        with self._lock:
            self.n += 1

    def count(self) -> int:
        with self._lock:
            return self.n

    def settle(self, quiet: float = 0.5, timeout: float = 10.0) -> int:
        """The count once no message arrived for ``quiet`` seconds (deadline ``timeout``)."""
        t0 = time.monotonic()
        last, since = self.count(), time.monotonic()
        while time.monotonic() - t0 < timeout:
            time.sleep(0.05)
            now = self.count()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure() -> dict[str, Any]:
    pdl = pdls(1, "3")[0]
    published = yesterday_published(SYSTEM_CLOCK.now())
    fetch_daily, fetch_curve = (DAYS, HOURS) if published else (DAYS - 1, HOURS - 1)
    with broker() as mqtt, tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        sim = Simulator(SimOptions(port=0))
        sim.start()
        try:
            text = dataconnect_config(
                mqtt_port=mqtt.port, sim_url=sim.url, store=Path(tmp) / "s.db",
                accounts={"dc": [pdl]}, backfill_day=DAYS, backfill_hour=HOURS,
                client_id="bench-peer")
            cfg = load_text(text)
            path = Path(tmp) / "config.yaml"
            path.write_text(text)
            first = _child(path)
            daily, curve = sim.count(endpoint=DAILY), sim.count(endpoint=CURVE)
            first_total = sim.stats()["total"]  # token and contract included
            with Store(cfg.store.path) as store:
                held = len(store.days_with_daily(pdl, Kind.CONSUMPTION, date(2000, 1, 1),
                                                 date(2100, 1, 1)))
                curve_days = len(store.days_with_complete_curve(
                    pdl, Kind.CONSUMPTION, date(2000, 1, 1), date(2100, 1, 1)))
            if not held:
                raise FetchedNothing("peer", "the 3-year backfill stored no day")
            counter = _Counter(mqtt.port, cfg.mqtt.base_topic)
            try:
                before = sim.stats()["total"]
                restart = _child(path)
                messages = counter.settle()
                restart_requests = sim.stats()["total"] - before
            finally:
                counter.close()
        finally:
            sim.stop()
    bound = math.ceil(fetch_daily / 365) + math.ceil(fetch_curve / 7)
    return {"first": first, "restart": restart, "requests": daily + curve, "bound": bound,
            "daily_days": held, "curve_days": curve_days, "messages": messages,
            "restart_requests": restart_requests, "first_total": first_total}


def run(quick: bool) -> list[Row]:
    got = measure()
    first, restart = got["first"], got["restart"]
    req, bound = int(got["requests"]), int(got["bound"])
    wall = float(first["wall"])
    rss = first["maxrss_kib"] / 1024
    rss_restart = restart["maxrss_kib"] / 1024
    msgs = int(got["messages"])
    held = f"{got['daily_days']} days daily, {got['curve_days']} days curve stored"
    return [
        Row("peer workload: data requests (1095 d daily + 730 d curve)", f"{req} req",
            f"{bound} req (bound)", bound / req if req else None, "ratio 1.00", req == bound,
            held),
        Row("peer workload: first cycle wall", f"{wall:.1f} s",
            f"{PEER_WALL_S:.0f} s (peer, published)", PEER_WALL_S / wall, ">= 1 (not slower)",
            wall <= PEER_WALL_S,
            f"fresh store, contract not stored; {got['first_total']} requests at Data "
            f"Connect's default 5/s: {got['first_total'] / 5:.1f} s floor"),
        Row("peer workload: first cycle peak RSS", f"{rss:.0f} MiB",
            f"{PEER_RSS_MB:.0f} MB (peer, published)", PEER_RSS_MB / rss,
            ">= 1 (not heavier)", rss <= PEER_RSS_MB),
        Row("peer workload: messages on restart", f"{msgs}",
            f"{PEER_RESTART_MESSAGES} (peer, published)",
            PEER_RESTART_MESSAGES / msgs if msgs else None, ">= 1 (not more)",
            msgs <= PEER_RESTART_MESSAGES,
            f"{got['restart_requests']} upstream requests on restart"),
        Row("restart peak RSS / first-cycle peak RSS (2 y curve stored)",
            f"{rss_restart:.1f} MiB", f"{rss:.1f} MiB (first cycle, same run)",
            rss / rss_restart, "restart <= first cycle", rss_restart <= rss,
            f"restart wall {float(restart['wall']):.1f} s"),
    ]
