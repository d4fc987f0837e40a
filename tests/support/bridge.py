"""Helpers for the end-to-end bridge tests: configuration text, ground truth, a subprocess.

Ground truth comes from the simulator (``sim.daily_wh``, ``sim.curve``), computed here
independently of the product's own aggregation: a curve point ``(end_utc, W, minutes)``
carries ``W * minutes / 60`` Wh and belongs to the clock hour holding its start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from linky2mqtt.model import PARIS, Kind, day_bounds, kwh, local_iso
from linky2mqtt.simulator import Simulator
from tests.support.clock import SUITE_CLOCK, bridge_command
from tests.support.mqtt_client import Message

REPO = Path(__file__).resolve().parents[2]


def latest_day(now: datetime | None = None) -> date:
    """The newest day the simulator serves (yesterday, from 08:00 Paris)."""
    local = (now or SUITE_CLOCK.now()).astimezone(PARIS)
    return local.date() - timedelta(days=1 if local.hour >= 8 else 2)


def days_back(n: int, now: datetime | None = None) -> list[date]:
    """The ``n`` days a backfill of ``n`` wants, newest first (yesterday counts)."""
    local = (now or SUITE_CLOCK.now()).astimezone(PARIS).date()
    return [local - timedelta(days=i) for i in range(1, n + 1)]


def truth_day_kwh(sim: Simulator, pdl: str, kind: Kind, day: date) -> float | None:
    wh = sim.daily_wh(pdl, kind, day)
    return None if wh is None else kwh(wh)


def truth_hours(sim: Simulator, pdl: str, kind: Kind,
                day: date) -> list[dict[str, Any]] | None:
    """The expected ``points`` of the hourly batch of ``day`` (start, end, value)."""
    curve = sim.curve(pdl, kind, day)
    if curve is None:
        return None
    day_start, day_end = day_bounds(day)
    wh: dict[datetime, float] = {}
    for end, watts, minutes in curve:
        start = end - timedelta(minutes=minutes)
        assert day_start <= start < day_end
        hour = day_start + timedelta(hours=int((start - day_start).total_seconds() // 3600))
        wh[hour] = wh.get(hour, 0.0) + watts * minutes / 60
    return [{"start": local_iso(h), "end": local_iso(h + timedelta(hours=1)),
             "value": kwh(round(v, 6))} for h, v in sorted(wh.items())]


def retained_json(msgs: list[Message], topic: str) -> Any:
    """The last retained-or-live value seen on ``topic`` (None when none)."""
    got = [m for m in msgs if m.topic == topic]
    return got[-1].json() if got and got[-1].payload else None


def batches_by_date(msgs: list[Message], topic: str) -> dict[str, dict[str, Any]]:
    """Hourly batches on ``topic``, the last one of each date."""
    out: dict[str, dict[str, Any]] = {}
    for m in msgs:
        if m.topic == topic:
            doc = m.json()
            out[doc["date"]] = doc
    return out


def account_yaml(name: str, provider: str, sim: Simulator, meters: list[dict[str, Any]], *,
                 token: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None) -> str:
    lines = [f"  - name: {name}", f"    provider: {provider}", f"    base_url: {sim.url}"]
    if token is not None:
        lines.append(f"    token: {json.dumps(token)}")
    if client_id is not None:
        lines.append(f"    client_id: {client_id}")
    if client_secret is not None:
        lines.append(f"    client_secret: {json.dumps(client_secret)}")
    lines.append("    meters:")
    for m in meters:
        lines.append(f"      - pdl: \"{m['pdl']}\"")
        for key, value in m.items():
            if key != "pdl":
                lines.append(f"        {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def config_yaml(broker_url: str, store: Path, accounts: list[str], *, level: str = "info",
                base: str = "l2m", client_id: str = "l2m-test", discovery: bool = False,
                extra: str = "") -> str:
    return (
        f"mqtt:\n  url: {broker_url}\n  client_id: {client_id}\n  base_topic: {base}\n"
        f"homeassistant:\n  discovery: {str(discovery).lower()}\n"
        f"store:\n  path: {store}\n"
        f"log:\n  level: {level}\n"
        f"{extra}"
        "accounts:\n" + "".join(accounts)
    )


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               period: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(period)


class BridgeProcess:
    """``linky2mqtt run -c cfg`` on the suite's clock (``bridge_command``); stderr captured
    line by line."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            bridge_command("run", "-c", str(config)),
            cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream: Any, into: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        self.proc.kill()
        return self.wait(10)

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def endpoint_class(endpoint: str) -> str:
    """``daily``, ``curve``, ``max_power`` or ``other`` for a simulator stats endpoint."""
    e = endpoint.lower()
    if "max_power" in e or "puissance" in e or "max" in e:
        return "max_power"
    if "courbe" in e or "curve" in e:
        return "curve"
    if "quotidienne" in e or "daily" in e:
        return "daily"
    return "other"


def data_requests(sim: Simulator, pdl: str | None = None,
                  cls: str | None = None, status: int | None = 200) -> int:
    """Data requests counted by the simulator (contract/token calls excluded)."""
    return sum(
        b["count"] for b in sim.stats()["by"]
        if (pdl is None or b["pdl"] == pdl) and (status is None or b["status"] == status)
        and endpoint_class(b["endpoint"]) != "other"
        and (cls is None or endpoint_class(b["endpoint"]) == cls)
    )


class SessionCollector:
    """An MQTT 3.1.1 subscriber with a persistent session (clean_session False, QoS 1).

    With a broker that keeps sessions across its own restart, it receives every QoS 1
    message published while it was away: what a real consumer of hourly batches sees.
    """

    def __init__(self, host: str, port: int, topic: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self.topic = topic
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain),
                                         msg.qos))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Message]], Any], timeout: float,
                 what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = predicate(list(self.messages))
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
