"""``linky2mqtt demo``: the real bridge against the built-in simulator, printing what it publishes.

Which broker: ``--broker URL`` when given (``--broker mosquitto`` / ``--broker amqtt``
force the fallbacks below, for a machine that already has a broker on 1883); otherwise
``localhost:1883`` when something answers there (the demo then uses the base topic
``linky2mqtt_demo`` and no Home Assistant discovery, so it cannot disturb a real
installation, and clears its retained topics when it stops); otherwise a private
``mosquitto`` from ``PATH`` on a free port; otherwise amqtt, a maintained Python MQTT
3.1.1 broker from the ``demo`` extra (``pip install 'linky2mqtt[demo]'``), in this
process on a free port.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.config import load_text

DEMO_BASE = "linky2mqtt_demo"
CONSUMER = "12345678901234"
PRODUCER = "12655648759651"  # self-consumption: consumes and produces
DATACONNECT_PDL = "22516914714270"
HOLES_PDL = "42900589957123"  # no data on Tuesdays and Wednesdays


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _broker(url: str | None, out: TextIO) -> Iterator[tuple[str, int, str, bool]]:
    """Yield (host, port, protocol, shared) for the broker the demo talks to.

    ``url`` may also be ``"mosquitto"`` (skip the probe of localhost:1883) or
    ``"amqtt"`` (go straight to the Python broker), to force a fallback.
    """
    force = url if url in ("mosquitto", "amqtt") else None
    url = None if force else url
    if url:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        yield (u.hostname or "localhost", u.port or 1883, "5", True)
        return
    if force is None and _answers("127.0.0.1", 1883):
        print("demo: using the broker on localhost:1883", file=out)
        yield ("127.0.0.1", 1883, "5", True)
        return
    exe = shutil.which("mosquitto")
    if force == "mosquitto" and not exe:
        raise DemoBrokerMissing("--broker mosquitto: no mosquitto on PATH")
    if exe and force != "amqtt":
        port = _free_port()
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp) / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                            "persistence false\nlog_type none\n")
            proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 10
                while not _answers("127.0.0.1", port) and time.monotonic() < deadline:
                    time.sleep(0.05)
                print(f"demo: started a private mosquitto on 127.0.0.1:{port}", file=out)
                yield ("127.0.0.1", port, "5", False)
            finally:
                proc.terminate()
                proc.wait(10)
        return
    with _amqtt_broker() as port:
        print(f"demo: no broker found; started amqtt on 127.0.0.1:{port}", file=out)
        yield ("127.0.0.1", port, "3.1.1", False)


class DemoBrokerMissing(RuntimeError):
    """No broker answers, no mosquitto, and amqtt (the ``demo`` extra) is not installed."""


@contextlib.contextmanager
def _amqtt_broker(timeout: float = 15.0) -> Iterator[int]:
    """An amqtt broker on 127.0.0.1 (a free port), on its own event-loop thread."""
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise DemoBrokerMissing(
            "no MQTT broker: nothing answers on localhost:1883, mosquitto is not on PATH "
            "and the demo's Python broker is not installed; run "
            "pip install 'linky2mqtt[demo]' (or install mosquitto, or give --broker URL)"
        ) from None
    import asyncio
    import logging

    logging.getLogger("amqtt").setLevel(logging.ERROR)  # its own chatter is not the demo's
    port = _free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                    {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="demo-amqtt", daemon=True)
    thread.start()

    async def start() -> Any:
        broker = Broker(config)
        await broker.start()
        return broker

    try:
        broker = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout)
        try:
            yield port
        finally:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()


def demo_config(sim_url: str, conso_token: str, host: str, port: int, *, protocol: str,
                store: str, base: str, discovery: bool) -> str:
    return f"""
mqtt:
  url: mqtt://{host}:{port}
  client_id: linky2mqtt-demo-{int(time.time())}
  base_topic: {base}
  protocol: "{protocol}"
homeassistant:
  discovery: {str(discovery).lower()}
store:
  path: {store}
log:
  level: warning
accounts:
  - name: home
    provider: conso
    token: {conso_token}
    base_url: {sim_url}
    meters:
      - pdl: "{CONSUMER}"
        name: House
        steps: [day, month, hour]
        max_power: true
        backfill_days: {{day: 60, hour: 40}}
      - pdl: "{PRODUCER}"
        name: Self-consumption
        steps: [day, month, hour]
        production: true
        backfill_days: {{day: 40, hour: 7}}
  - name: business
    provider: dataconnect
    client_id: sim-client
    client_secret: sim-secret
    base_url: {sim_url}
    meters:
      - pdl: "{DATACONNECT_PDL}"
        name: Workshop
        backfill_days: {{day: 40, hour: 40}}
  - name: gateway
    provider: myelectricaldata
    token: demo-token
    base_url: {sim_url}
    meters:
      - pdl: "{HOLES_PDL}"
        name: Cottage (gaps on Tue/Wed)
        steps: [day, month]
        backfill_days: {{day: 14, hour: 0}}
"""


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 3:
        return f"[{len(value)} days: {value[0]} .. {value[-1]}]"
    return json.dumps(value, ensure_ascii=False)


def describe(payload: bytes) -> str:
    """One readable line for a published message."""
    if not payload:
        return "(cleared)"
    try:
        doc: Any = json.loads(payload)
    except ValueError:
        return payload[:80].decode("utf-8", "replace")
    if not isinstance(doc, dict):
        return json.dumps(doc)[:100]
    if "points" in doc and isinstance(doc["points"], list):
        pts = doc["points"]
        total = sum(p.get("value", 0) for p in pts if isinstance(p, dict))
        return (f"date={doc.get('date')} {len(pts)} hours, total {total:.3f} "
                f"{doc.get('unit', '')} complete={doc.get('complete')}")
    keys = ("state", "date", "month", "value", "unit", "days", "complete", "missing",
            "last_error", "latest_day", "subscribed_power_kva", "tariff", "version")
    parts = [f"{k}={_short(doc[k])}" for k in keys if k in doc]
    if "cmps" in doc:
        parts.append(f"{len(doc['cmps'])} entities")
    return " ".join(parts) if parts else json.dumps(doc, ensure_ascii=False)[:100]


def run_demo(broker: str | None = None, seconds: float | None = None,
             out: TextIO | None = None, clock: Clock = SYSTEM_CLOCK) -> int:
    from linky2mqtt.bridge import Bridge
    from linky2mqtt.logs import setup_logging
    from linky2mqtt.simulator import SimOptions, Simulator

    stream = out or sys.stdout
    setup_logging("warning", "text")
    sim = Simulator(SimOptions(host="127.0.0.1", port=0, clock=clock))
    sim.start()
    print(f"demo: simulator serving Conso API, Data Connect and MyElectricalData at {sim.url}",
          file=stream)
    try:
        with _broker(broker, stream) as (host, port, protocol, shared), \
                tempfile.TemporaryDirectory() as tmp:
            base = DEMO_BASE if shared else "linky2mqtt"
            text = demo_config(sim.url, sim.make_conso_token([CONSUMER, PRODUCER]), host,
                               port, protocol=protocol, store=str(Path(tmp) / "demo.db"),
                               base=base, discovery=not shared)
            cfg = load_text(text)
            if shared:  # a previous demo's retained topics would be replayed as news
                stale = clear_retained(host, port, base)
                if stale:
                    print(f"demo: cleared {stale} retained topics left under {base}/ by an "
                          "earlier demo", file=stream)
            printer = _Printer(host, port, f"{base}/#", stream)
            bridge = Bridge(cfg, clock=clock, stagger=0.5)
            bridge.start()
            stop = threading.Event()
            try:
                stop.wait(seconds) if seconds is not None else _wait_forever(stop)
            except KeyboardInterrupt:
                pass
            finally:
                bridge.stop()
                printer.close()
                if shared:  # leave the shared broker as we found it
                    cleared = clear_retained(host, port, base)
                    print(f"demo: cleared its {cleared} retained topics under {base}/",
                          file=stream)
    finally:
        sim.stop()
    return 0


def clear_retained(host: str, port: int, base: str, *, quiet: float = 0.5,
                   timeout: float = 10.0) -> int:
    """Delete every retained message under ``base/``; return how many there were.

    Retained messages arrive right after subscribing; collecting stops once none came for
    ``quiet`` seconds (``timeout`` at most)."""
    topics: set[str] = set()
    lock = threading.Lock()
    last = [time.monotonic()]
    subscribed = threading.Event()

    def on_message(_client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            with lock:
                topics.add(msg.topic)
                last[0] = time.monotonic()

    def on_subscribe(*_args: Any) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.on_connect = lambda c, _u, _f, _rc, _p=None: c.subscribe(f"{base}/#", 1)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    try:
        client.connect(host, port)
    except OSError:
        return 0
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        subscribed.wait(timeout)
        while time.monotonic() < deadline and time.monotonic() - last[0] < quiet:
            time.sleep(0.05)
        client.unsubscribe(f"{base}/#")
        with lock:
            found = sorted(topics)
        infos = [client.publish(t, b"", qos=1, retain=True) for t in found]
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
    finally:
        client.loop_stop()
        client.disconnect()
    return len(found)


def _wait_forever(stop: threading.Event) -> None:
    while not stop.wait(3600):
        pass


class _Printer:
    """Subscribes to the demo's topics and prints one line per message."""

    def __init__(self, host: str, port: int, topic: str, out: TextIO) -> None:
        self.out = out
        self.topic = topic
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = lambda c, _u, _f, _rc, _p=None: c.subscribe(topic, 1)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _client: paho.Client, _userdata: Any,
                    msg: paho.MQTTMessage) -> None:
        flag = "R" if msg.retain else " "
        text = describe(bytes(msg.payload))
        line = f"{time.strftime('%H:%M:%S')} {flag} {msg.topic}  {text}"
        # the reader may go away (| head): never a traceback for that
        with self.lock, contextlib.suppress(BrokenPipeError, ValueError):
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
