"""Round-trip time of a ``read`` command: 31 days of hourly data from the store, loopback.

A bridge (Data Connect account, one meter, 32 days of hourly backfill) runs against the
simulator and a private mosquitto. Once the backfill is stored, a paho-mqtt (MQTT 5)
client sends ``read`` requests for the last 31 complete days at step ``hour`` (about 744
points, ~60 KB of JSON per answer), one at a time, and times each from publish to the
answer carrying its transaction. The requester sets TCP_NODELAY (as MQTT.js in Node-RED
does); the figures of a client that does not are reported beside (``nagle_client_*``).
Upstream is never asked during the measurement (checked
at the simulator). Goal: p50 under 20 ms.

``python -m bench.command_latency [--quick]`` prints the figures; :func:`run` returns them.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.common import broker, dataconnect_config, quiet_logs, wait_until
from linky2mqtt.bridge import Bridge
from linky2mqtt.clock import SYSTEM_CLOCK
from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import SimOptions, Simulator
from tests.support.broker import Mosquitto

PDL = "22516914714270"
BASE = "linky2mqtt"
GOAL_P50_MS = 20.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class _Requester:
    """Sends one request at a time and waits for the answer with its transaction."""

    def __init__(self, host: str, port: int, nodelay: bool) -> None:
        self.answers: dict[str, bytes] = {}
        self.cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-requester-{int(nodelay)}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        ready = threading.Event()

        def on_connect(c: paho.Client, *_: Any) -> None:
            sock = c.socket()
            if nodelay and isinstance(sock, socket.socket):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.subscribe(f"{BASE}/bridge/response/read", qos=1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("requester could not subscribe")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        tx = json.loads(msg.payload).get("transaction")
        with self.cond:
            self.answers[str(tx)] = bytes(msg.payload)
            self.cond.notify_all()

    def ask(self, body: dict[str, Any], tx: str, timeout: float = 10.0) -> tuple[float, bytes]:
        payload = json.dumps({**body, "transaction": tx})
        t0 = time.perf_counter()
        self.client.publish(f"{BASE}/bridge/request/read", payload, qos=1)
        with self.cond:
            if not self.cond.wait_for(lambda: tx in self.answers, timeout):
                raise TimeoutError(f"no answer to {tx}")
            answer = self.answers.pop(tx)
        return time.perf_counter() - t0, answer

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(quick: bool) -> dict[str, Any]:
    """Measure; returns the figures with a broker set to ``set_tcp_nodelay true`` (the
    headline: ``p50_ms``, ``p99_ms``...) and with mosquitto's default settings
    (``default_broker``), each also for a client with Nagle's algorithm on."""
    n = 60 if quick else 400
    with broker(nodelay=True) as mqtt:
        best = _measure(mqtt, n)
    with broker() as mqtt:
        default = _measure(mqtt, n // 2)
    return {**best, "goal_p50_ms": GOAL_P50_MS, "met": best["p50_ms"] < GOAL_P50_MS,
            "default_broker": default}


def _measure(mqtt: Mosquitto, n: int) -> dict[str, Any]:
    today = SYSTEM_CLOCK.now().astimezone(PARIS).date()  # pinned (--at)
    end = today - timedelta(days=1)  # yesterday may not be served before 08:00
    start = end - timedelta(days=31)
    with tempfile.TemporaryDirectory(prefix="bench-cmd-") as tmp:
        sim = Simulator(SimOptions(port=0))
        sim.start()
        cfg = load_text(dataconnect_config(
            mqtt_port=mqtt.port, sim_url=sim.url, store=Path(tmp) / "bridge.db",
            accounts={"bench": [PDL]}, backfill_day=2, backfill_hour=33,
            client_id="bench-commands", commands=True), env={})
        bridge = Bridge(cfg, stagger=0.0)
        bridge.start()
        requester = _Requester(mqtt.host, mqtt.port, nodelay=True)
        plain = _Requester(mqtt.host, mqtt.port, nodelay=False)
        try:
            wait_until(lambda: _held(bridge, start, end) == 31, 120, "hourly backfill")
            body = {"pdl": PDL, "kind": "consumption", "step": "hour",
                    "start": start.isoformat(), "end": end.isoformat()}
            _, first = requester.ask(body, "warm-0")
            data = json.loads(first)["data"]
            assert data["missing"] == [], data["missing"]
            for i in range(1, 10):
                requester.ask(body, f"warm-{i}")
            upstream_before = sim.stats()["total"]
            times = [requester.ask(body, f"m-{i}")[0] * 1000 for i in range(n)]
            plain_times = [plain.ask(body, f"p-{i}")[0] * 1000 for i in range(n // 2)]
            upstream_during = sim.stats()["total"] - upstream_before
        finally:
            requester.close()
            plain.close()
            bridge.stop()
            sim.stop()
    return {
        "n": n,
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(_percentile(times, 0.99), 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "max_ms": round(max(times), 2),
        "points": len(data["points"]),
        "answer_bytes": len(first),
        "upstream_requests_during": upstream_during,
        # a client that leaves Nagle's algorithm on (paho's default): its small request
        # can wait for the broker's delayed ACK of its previous PUBACK
        "nagle_client_p50_ms": round(statistics.median(plain_times), 2),
        "nagle_client_p99_ms": round(_percentile(plain_times, 0.99), 2),
    }


def _held(bridge: Bridge, start: date, end: date) -> int:
    return len(bridge.store.days_with_complete_curve(PDL, Kind.CONSUMPTION, start, end))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quiet_logs()
    result = run(args.quick)
    print(json.dumps(result, indent=2))
    default = result["default_broker"]
    print(f"read of 31 days hourly from the store: p50 {result['p50_ms']} ms "
          f"(goal < {GOAL_P50_MS} ms, ratio {GOAL_P50_MS / result['p50_ms']:.2f}), "
          f"p99 {result['p99_ms']} ms; with mosquitto's default (Nagle on): "
          f"p50 {default['p50_ms']} ms, p99 {default['p99_ms']} ms")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
