"""The embedded demo broker against the real paho-mqtt client (MQTT 3.1.1) and raw sockets."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from linky2mqtt.demo_broker import DemoBroker, topic_matches, valid_filter

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def demo() -> Iterator[DemoBroker]:
    with DemoBroker() as b:
        yield b


def wait_until(pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Client:
    """A paho 3.1.1 client that records messages; subscribe() waits for the SUBACK."""

    def __init__(self, broker: DemoBroker, client_id: str = "",
                 will: tuple[str, bytes, int, bool] | None = None, keepalive: int = 60,
                 protocol: MQTTProtocolVersion = mqtt.MQTTv311) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.granted: dict[int, list[int]] = {}
        self.connected = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=protocol)
        if will:
            self.c.will_set(will[0], will[1], qos=will[2], retain=will[3])
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.on_message = lambda _c, _u, msg: self.messages.append(msg)
        self.c.on_subscribe = self._on_subscribe
        self.c.connect(broker.host, broker.port, keepalive=keepalive)
        self.c.loop_start()
        assert self.connected.wait(5), "could not connect"

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        self.granted[mid] = [int(code.value) for code in codes]

    def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        mid = self.c.subscribe(topic, qos)[1]
        assert mid is not None
        granted: list[int] = wait_until(lambda: self.granted.get(mid), what="SUBACK")
        return granted

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def got(self, n: int) -> list[tuple[str, bytes, int, bool]]:
        wait_until(lambda: len(self.messages) >= n, what=f"{n} messages")
        return [(m.topic, bytes(m.payload), m.qos, bool(m.retain)) for m in self.messages]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(demo: DemoBroker) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**kw: Any) -> Client:
        made.append(Client(demo, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


def raw_connect(broker: DemoBroker, body: bytes) -> socket.socket:
    s = socket.create_connection((broker.host, broker.port), timeout=5)
    s.sendall(bytes([0x10, len(body)]) + body)
    return s


def connect_body(client_id: bytes, keepalive: int = 60, level: int = 4,
                 will: tuple[bytes, bytes] | None = None) -> bytes:
    flags = 0x02 | (0x04 if will else 0)
    body = b"\x00\x04MQTT" + bytes([level, flags]) + struct.pack("!H", keepalive)
    body += struct.pack("!H", len(client_id)) + client_id
    if will:
        body += b"".join(struct.pack("!H", len(x)) + x for x in will)
    return body


def test_publish_subscribe_qos0_and_qos1(clients: Callable[..., Client]) -> None:
    sub, pub = clients(), clients()
    assert sub.subscribe("a/b", qos=1) == [1]
    assert sub.subscribe("zero", qos=0) == [0]
    pub.publish("a/b", b"q0", qos=0)
    pub.publish("a/b", b"q1", qos=1)
    pub.publish("zero", b"down", qos=1)
    assert sub.got(3) == [("a/b", b"q0", 0, False), ("a/b", b"q1", 1, False),
                          ("zero", b"down", 0, False)]


def test_mqtt31_client_is_accepted(clients: Callable[..., Client]) -> None:
    old = clients(client_id="old-style", protocol=mqtt.MQTTv31)
    assert old.subscribe("v3/#") == [1]
    old.publish("v3/x", b"MQIsdp")
    assert old.got(1) == [("v3/x", b"MQIsdp", 1, False)]


def test_qos2_is_acknowledged_and_granted_qos_is_capped_at_1(
        clients: Callable[..., Client]) -> None:
    sub, pub = clients(), clients()
    assert sub.subscribe("q2", qos=2) == [1]
    pub.publish("q2", b"exactly", qos=2)  # waits for PUBREC/PUBREL/PUBCOMP
    assert sub.got(1) == [("q2", b"exactly", 1, False)]


def test_wildcards_and_dollar_topics(clients: Callable[..., Client]) -> None:
    sub, pub = clients(), clients()
    sub.subscribe("l2m/+/state")
    sub.subscribe("meters/#")
    sub.subscribe("#")
    for topic in ["l2m/x/state", "l2m/x/y/state", "meters", "meters/1/2", "$SYS/up", "other"]:
        pub.publish(topic, topic.encode())
    pub.publish("last", b"end")
    got = [t for t, *_ in sub.got(6)]
    assert got == ["l2m/x/state", "l2m/x/y/state", "meters", "meters/1/2", "other", "last"]


def test_retained_flag_and_deletion(clients: Callable[..., Client]) -> None:
    early, pub = clients(), clients()
    early.subscribe("r/#")
    pub.publish("r/kept", b"v1", qos=1, retain=True)
    pub.publish("r/gone", b"tmp", qos=0, retain=True)
    pub.publish("r/gone", b"", qos=1, retain=True)  # an empty retained payload deletes it
    assert early.got(3) == [("r/kept", b"v1", 1, False), ("r/gone", b"tmp", 0, False),
                            ("r/gone", b"", 1, False)]
    late = clients()
    late.subscribe("r/+", qos=0)
    late.subscribe("r/kept", qos=1)  # subscribing again re-sends the retained message
    assert late.got(2) == [("r/kept", b"v1", 0, True), ("r/kept", b"v1", 1, True)]
    pub.publish("end", b"")
    late.subscribe("end")
    assert len(late.messages) == 2


def test_will_on_abrupt_close(clients: Callable[..., Client]) -> None:
    watcher = clients()
    watcher.subscribe("l2m/bridge/state")
    dying = clients(client_id="bridge", will=("l2m/bridge/state", b"offline", 1, True))
    dying.c.loop_stop()
    sock = dying.c.socket()
    assert isinstance(sock, socket.socket)
    sock.close()
    assert watcher.got(1) == [("l2m/bridge/state", b"offline", 1, False)]
    later = clients()
    later.subscribe("l2m/#")
    assert later.got(1) == [("l2m/bridge/state", b"offline", 1, True)]


def test_no_will_after_disconnect(demo: DemoBroker, clients: Callable[..., Client]) -> None:
    watcher = clients()
    watcher.subscribe("#")
    polite = clients(client_id="polite", will=("w", b"offline", 0, False))
    polite.c.disconnect()
    polite.c.loop_stop()
    wait_until(lambda: "polite" not in demo._sessions, what="the broker to drop 'polite'")
    watcher.subscribe("ping")
    clients().publish("ping", b"1")
    assert watcher.got(1) == [("ping", b"1", 1, False)]


def test_keepalive_timeout_publishes_will(demo: DemoBroker,
                                          clients: Callable[..., Client]) -> None:
    watcher = clients()
    watcher.subscribe("silent/will")
    s = raw_connect(demo, connect_body(b"silent", keepalive=1, will=(b"silent/will", b"bye")))
    assert s.recv(4) == b"\x20\x02\x00\x00"
    started = time.monotonic()
    assert watcher.got(1) == [("silent/will", b"bye", 0, False)]
    assert 1.0 < time.monotonic() - started < 4.0
    assert s.recv(1) == b""  # the broker closed the silent connection
    s.close()


def test_mqtt5_client_is_refused(demo: DemoBroker) -> None:
    results: list[Any] = []
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        results.append(reason)
        done.set()

    c.on_connect = on_connect
    c.connect(demo.host, demo.port)
    c.loop_start()
    try:
        assert done.wait(5)
        assert results[0].is_failure
        assert str(results[0]) == "Unsupported protocol version"
    finally:
        c.loop_stop()
        c.disconnect()


def test_raw_level5_and_empty_id_without_clean_session(demo: DemoBroker) -> None:
    s = raw_connect(demo, connect_body(b"x", level=5))
    assert s.recv(4) == b"\x20\x02\x00\x01"
    assert s.recv(1) == b""
    s.close()
    body = connect_body(b"")
    s = raw_connect(demo, body[:7] + b"\x00" + body[8:])  # clean session 0, empty id
    assert s.recv(4) == b"\x20\x02\x00\x02"
    s.close()


@pytest.mark.parametrize("garbage", [
    b"\xff\xff\xff\xff\xff\x01",  # 5-byte remaining length
    b"\x30\x04\x00\x09ab",  # PUBLISH topic longer than the packet
    b"\x82\x02\x00\x01",  # SUBSCRIBE with wrong flags and no topics
    b"\x30\x06\x00\x02\xc3\x28xy",  # invalid UTF-8 topic
    b"\x30\x05\x00\x03a/#",  # wildcard in a PUBLISH topic
    b"\xf0\x00",  # reserved packet type
])
def test_malformed_packet_closes_only_that_connection(
        demo: DemoBroker, clients: Callable[..., Client], garbage: bytes) -> None:
    s = raw_connect(demo, connect_body(b"raw"))
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.sendall(garbage)
    assert s.recv(1) == b""
    s.close()
    s = socket.create_connection((demo.host, demo.port), timeout=5)
    s.sendall(b"\x10\x80\x80\x80\x01")  # CONNECT announcing 2 MiB: over the limit
    assert s.recv(1) == b""
    s.close()
    c = clients()
    c.subscribe("still/alive")
    c.publish("still/alive", b"yes")
    assert c.got(1) == [("still/alive", b"yes", 1, False)]


def test_bulk_messages_in_order(clients: Callable[..., Client]) -> None:
    sub, pub = clients(), clients()
    sub.subscribe("bulk/+")
    payloads = [bytes([i % 256]) * 50_000 for i in range(200)]
    infos = [pub.c.publish(f"bulk/{i % 3}", p, qos=1) for i, p in enumerate(payloads)]
    for info in infos:
        info.wait_for_publish(10)
    wait_until(lambda: len(sub.messages) >= 200, timeout=15, what="200 messages")
    assert [bytes(m.payload) for m in sub.messages] == payloads
    assert [m.topic for m in sub.messages] == [f"bulk/{i % 3}" for i in range(200)]


def test_port_in_use_and_stop() -> None:
    with DemoBroker() as first:
        assert first.port > 0
        with pytest.raises(OSError):
            DemoBroker(port=first.port).start()
        s = raw_connect(first, connect_body(b"open"))
        assert s.recv(4) == b"\x20\x02\x00\x00"
    assert s.recv(1) == b""  # stop() closes live connections
    s.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first.port), timeout=1)
    first.stop()  # idempotent


def test_topic_matching_rules() -> None:
    assert topic_matches("a/+/c", "a/b/c")
    assert topic_matches("a/#", "a")
    assert topic_matches("+/+", "/x")
    assert not topic_matches("a/+", "a/b/c")
    assert not topic_matches("+/x", "$SYS/x")
    assert topic_matches("$SYS/#", "$SYS/x")
    assert all(valid_filter(f) for f in ["#", "a/+/b", "+", "/", "a/#"])
    assert not any(valid_filter(f) for f in ["", "a#", "a/#/b", "a+/b", "a/b+"])
