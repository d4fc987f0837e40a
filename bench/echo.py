"""The peer of figure 4: a bare MQTT round trip (publish -> echo) on a private mosquitto.

An echo client (paho-mqtt, MQTT 5) republishes at QoS 1 every message it receives on
``bench/ping`` to ``bench/pong``; the requester publishes at QoS 1 and times until its
own message comes back, one at a time, with a payload the size of a ``read`` request.
``nodelay=True`` runs it as the ``read`` headline does (mosquitto ``set_tcp_nodelay true``
and TCP_NODELAY on both clients); ``False`` with mosquitto's and paho's defaults (Nagle's
algorithm on: small replies can wait for a delayed ACK, about 40 ms a hop on Linux).
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.common import broker


def _client(name: str, port: int, topic: str, on_message: Any, nodelay: bool) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name,
                    protocol=MQTTProtocolVersion.MQTTv5)
    ready = threading.Event()

    def on_connect(cl: paho.Client, *_: Any) -> None:
        sock = cl.socket()
        if nodelay and isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cl.subscribe(topic, qos=1)

    c.on_connect = on_connect
    c.on_subscribe = lambda *_: ready.set()
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not ready.wait(10):
        raise TimeoutError(f"{name} could not subscribe")
    return c


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def round_trips(n: int, nodelay: bool = True) -> dict[str, float]:
    """p50/p99 (ms) of ``n`` bare round trips (after 10 unmeasured ones)."""
    got: dict[bytes, float] = {}
    cond = threading.Condition()

    def pong(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with cond:
            got[bytes(msg.payload)] = time.perf_counter()
            cond.notify_all()

    with broker(nodelay) as mqtt:
        echo = _client("bench-echo", mqtt.port, "bench/ping",
                       lambda c, u, m: c.publish("bench/pong", m.payload, qos=1), nodelay)
        req = _client("bench-ping", mqtt.port, "bench/pong", pong, nodelay)
        try:
            times: list[float] = []
            for i in range(n + 10):
                body = (b'{"pdl":"22516914714270","kind":"consumption","step":"hour",'
                        b'"start":"2026-10-28","end":"2026-11-28","transaction":"%d"}' % i)
                t0 = time.perf_counter()
                req.publish("bench/ping", body, qos=1)
                with cond:
                    while body not in got:
                        if not cond.wait(10):
                            raise TimeoutError("no echo")
                    t1 = got.pop(body)
                if i >= 10:  # warm-up
                    times.append((t1 - t0) * 1000)
        finally:
            for c in (echo, req):
                c.loop_stop()
                c.disconnect()
    return {"p50_ms": statistics.median(times), "p99_ms": percentile(times, 0.99)}
