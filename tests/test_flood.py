"""Floods against a running ``linky2mqtt run`` (a subprocess, the simulator upstream, a real
mosquitto): memory stays within 20 MB of idle and ``info`` is still answered at once.

Three floods, one after the other, each followed by an ``info``:

1. 10,000 junk requests (bad JSON, binary, unknown commands, long names, stray keys);
2. 1,500 requests of 1 MiB each (refused unread: over ``commands.max_payload``);
3. 5,000 Home Assistant birth messages (``online``): one rediscovery, no thread each.

RSS is the bridge's ``VmRSS`` (and ``VmHWM``, its peak) from ``/proc/<pid>/status``; every
figure is printed (``pytest -s``) and bounded generously where timing depends on a loaded
machine (the issue asks for 100 ms; the assertion allows 1 s and the report gives the
measured figures).
"""

from __future__ import annotations

import itertools
import json
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from linky2mqtt.simulator import Simulator
from tests.support.bridge import BridgeProcess, account_yaml, config_yaml
from tests.support.broker import Mosquitto
from tests.support.mqtt_client import Collector, Message

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

A = "12655648759651"
C = "12345678901234"
BASE = "l2m"
REQ = f"{BASE}/bridge/request"
RESP = f"{BASE}/bridge/response"
MB = 1024 * 1024
RSS_MARGIN = 20 * MB
INFO_BOUND = 1.0  # seconds; the target is 0.1 s, measured and printed
_tx = itertools.count(1)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (bytes) and Threads of a process."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out[key] = int(value)
    return out


class Flooder(Collector):
    """A fast MQTT 5 client: QoS 1 with a wide in-flight window, recording answers."""

    def __init__(self, broker: Mosquitto, topics: list[str]) -> None:
        super().__init__(broker.host, broker.port, topics, client_id=f"flood-{next(_tx)}",
                         configure=_fast)

    def flood(self, items: Iterator[tuple[str, bytes]]) -> int:
        last = None
        n = 0
        for topic, payload in items:
            last = self.client.publish(topic, payload, qos=1)
            n += 1
        assert last is not None
        last.wait_for_publish(300)
        return n

    def wait_for(self, predicate: Callable[[list[Message]], Any], timeout: float = 30.0,
                 what: str = "condition") -> Any:
        # the predicate reads the list itself (no copy per message: floods are long)
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.messages), timeout):
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            return predicate(self.messages)

    def info(self, timeout: float = 120.0) -> float | None:
        """Seconds from publishing an ``info`` to receiving its answer (None: no answer
        within ``timeout``, e.g. the broker dropped the request, its queue full)."""
        t = f"info-{next(_tx)}"
        started = time.monotonic()
        self.client.publish(f"{REQ}/info", json.dumps({"transaction": t}), qos=1)

        def answered(ms: list[Message]) -> float | None:
            for m in reversed(ms):
                if m.topic == f"{RESP}/info" and t.encode() in m.payload:
                    assert m.json()["status"] == "ok"
                    return m.received_at
            return None

        try:
            got: float = self.wait_for(answered, timeout, f"answer to {t}")
        except AssertionError:
            return None
        return got - started

    def settle(self, quiet: float = 0.5, timeout: float = 120.0) -> None:
        """Wait until nothing arrived for ``quiet`` seconds (the flood is over)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                seen = len(self.messages)
                self._cond.wait(quiet)
                if len(self.messages) == seen:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"still receiving after {timeout}s")

    def count(self, pred: Callable[[Message], bool]) -> int:
        with self._cond:
            return sum(1 for m in self.messages if pred(m))


def ms(seconds: float | None) -> str:
    return "no answer" if seconds is None else f"{seconds * 1000:.1f} ms"


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _fast(client: mqtt.Client) -> None:
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.on_socket_open = _no_delay  # latency measured, not Nagle's algorithm


def junk(n: int, seed: int = 13) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    kinds: list[Callable[[int], tuple[str, bytes]]] = [
        lambda i: (f"{REQ}/read", b"{not json " + str(i).encode()),
        lambda i: (f"{REQ}/read", bytes(rng.getrandbits(8) for _ in range(48))),
        lambda i: (f"{REQ}/nonsense{i % 97}", json.dumps({"transaction": i}).encode()),
        lambda i: (f"{REQ}/info", json.dumps({"transaction": i, "bogus": "x" * 100}).encode()),
        lambda i: (f"{REQ}/read", json.dumps({"pdl": "1" * 14, "transaction": i}).encode()),
        lambda i: (f"{REQ}/{'n' * 2000}", b"[]"),
        lambda i: (f"{REQ}/refresh", b'{"pdl": "' + b"9" * 3000 + b'"}'),
    ]
    for i in range(n):
        yield kinds[i % len(kinds)](i)


def big(n: int) -> Iterator[tuple[str, bytes]]:
    pad = b"x" * (MB - 64)
    for i in range(n):
        yield f"{REQ}/read", b'{"transaction": "big-%d", "pad": "' % i + pad + b'"}'


def births(n: int) -> Iterator[tuple[str, bytes]]:
    for _ in range(n):
        yield "homeassistant/status", b"online"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """mosquitto with TCP_NODELAY, as a latency-minded installation runs it."""
    m = Mosquitto(tmp_path)
    m.extra_conf = f"listener {m.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
    m.start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def running(tmp_path: Path, broker: Mosquitto, simulator: Simulator) -> Iterator[BridgeProcess]:
    meters = [{"pdl": p, "steps": ["day"], "backfill_days": {"day": 3, "hour": 0}}
              for p in (A, C)]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_yaml(
        broker.url, tmp_path / "flood.db",
        [account_yaml("home", "conso", simulator, meters,
                      token=simulator.make_conso_token([A, C]))],
        base=BASE, client_id="l2m-flood", discovery=True))
    bridge = BridgeProcess(cfg)
    try:
        yield bridge
    finally:
        bridge.close()


def test_floods_keep_memory_within_20_mb_of_idle_and_info_answered(
        broker: Mosquitto, running: BridgeProcess) -> None:
    pid = running.proc.pid
    c = Flooder(broker, [f"{RESP}/#", "homeassistant/device/#", f"{BASE}/+/status"])
    try:
        def polled(ms: list[Message]) -> bool:
            return {m.topic for m in ms if m.topic.endswith("/status")} >= {
                f"{BASE}/{A}/status", f"{BASE}/{C}/status"}

        c.wait_for(polled, 90, "first polls")
        for _ in range(20):  # warm up the command path
            assert c.info() is not None
        idle = proc_status(pid)
        print(f"\nidle: RSS {idle['VmRSS'] / MB:.1f} MB, peak so far {idle['VmHWM'] / MB:.1f}"
              f" MB, {idle['Threads']} threads; info {ms(c.info())}")
        discovery_topic = f"homeassistant/device/linky2mqtt_{A}/config"
        floods: list[tuple[str, Callable[[], Iterator[tuple[str, bytes]]]]] = [
            ("10k junk requests", lambda: junk(10_000)),
            ("1,500 x 1 MiB requests", lambda: big(1500)),
            ("5,000 birth messages", lambda: births(5000)),
        ]
        for name, items in floods:
            answers_before = c.count(lambda m: m.topic.startswith(RESP))
            discovery_before = c.count(lambda m: m.topic == discovery_topic)
            started = time.monotonic()
            sent = c.flood(items())
            sending = time.monotonic() - started
            now_info = c.info(timeout=30)  # behind what the flood left queued, if anything
            c.settle()
            answers = c.count(lambda m: m.topic.startswith(RESP)) - answers_before - 1
            settled = [c.info() for _ in range(5)]
            after = proc_status(pid)
            print(f"{name}: sent {sent} in {sending:.1f} s, {answers} answers; info sent "
                  f"right after it: {ms(now_info)}; once settled: "
                  f"{', '.join(ms(x) for x in settled)}; RSS {after['VmRSS'] / MB:.1f} MB "
                  f"(idle {idle['VmRSS'] / MB:.1f}), peak {after['VmHWM'] / MB:.1f} MB, "
                  f"{after['Threads']} threads")
            assert after["VmRSS"] <= idle["VmRSS"] + RSS_MARGIN, name
            assert after["VmHWM"] <= max(idle["VmHWM"], idle["VmRSS"] + RSS_MARGIN), name
            assert after["Threads"] <= idle["Threads"] + 1, name  # + the rediscovery thread
            assert all(x is not None and x < INFO_BOUND for x in settled), name
            if name.startswith("5,000"):
                def rediscovered(ms: list[Message], n: int = discovery_before) -> bool:
                    return sum(m.topic == discovery_topic for m in ms) > n

                c.wait_for(rediscovered, 30, "the rediscovery")
                c.settle(quiet=6.0)  # longer than the 1-5 s delay: a second run would show
                # one rediscovery per burst of births within its random 1-5 s delay
                got = c.count(lambda m: m.topic == discovery_topic) - discovery_before
                print(f"  rediscoveries: {got}")
                assert 1 <= got <= 2
        assert running.proc.poll() is None
        dropped = [line.split(": ", 1)[-1] for line in running.lines
                   if "not sent" in line or "more like the line above" in line]
        print("bridge: " + ("; ".join(dropped) if dropped else "no answer dropped"))
        notices = [line for line in broker.log.read_text().splitlines() if "dropped" in line]
        print("broker: " + ("; ".join(notices) if notices else "nothing dropped"))
    except BaseException:
        print("bridge log (tail):\n" + "\n".join(running.lines[-40:]))
        raise
    finally:
        c.close()
