"""MqttLink against a real mosquitto: will, acks, threads, reconnection, MQTT 5, TLS, auth."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from linky2mqtt.mqtt import Incoming, MqttLink
from tests.support.broker import Mosquitto, free_port
from tests.support.broker import auth_broker as start_auth_broker
from tests.support.mqtt_client import Collector, Message

WILL_TOPIC = "l2m/bridge/state"
WILL = b'{"state":"offline"}'
ONLINE = b'{"state":"online"}'
PASSWORD = "s3cret-Pa55word-do-not-log"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Recorder:
    """Callback sink: what was called, with what, on which thread."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: list[tuple[str, Any, str]] = []

    def add(self, kind: str, value: Any = None) -> None:
        with self.cond:
            self.events.append((kind, value, threading.current_thread().name))
            self.cond.notify_all()

    def of(self, kind: str) -> list[Any]:
        with self.cond:
            return [v for k, v, _ in self.events if k == kind]

    def threads(self) -> set[str]:
        with self.cond:
            return {t for _, _, t in self.events}

    def wait(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [v for k, v, _ in self.events if k == kind]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{kind}: {len(got)} of {count} seen")
                self.cond.wait(left)


@pytest.fixture
def links() -> Iterator[list[MqttLink]]:
    made: list[MqttLink] = []
    yield made
    for link in made:
        link.stop()


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    made: list[Collector] = []
    yield made
    for c in made:
        c.close()


def make_link(
    made: list[MqttLink],
    host: str,
    port: int,
    rec: Recorder | None = None,
    *,
    online: bool = False,
    start: bool = True,
    subscribe: tuple[str, ...] = (),
    **kw: Any,
) -> MqttLink:
    rec = rec or Recorder()
    holder: list[MqttLink] = []

    def on_connect() -> None:
        rec.add("connect")
        if online:
            holder[0].publish(WILL_TOPIC, ONLINE, qos=1, retain=True)

    kw.setdefault("client_id", f"test-{uuid.uuid4().hex[:8]}")
    link = MqttLink(
        host,
        port,
        will_topic=WILL_TOPIC,
        will_payload=WILL,
        on_connect=on_connect,
        on_message=lambda m: rec.add("message", m),
        reconnect_min=0.05,
        reconnect_max=0.5,
        **kw,
    )
    holder.append(link)
    made.append(link)
    for topic in subscribe:
        link.subscribe(topic)
    if start:
        link.start()
    return link


def collector(made: list[Collector], b: Mosquitto, topics: list[str] | None = None,
              protocol: int = mqtt.MQTTv5) -> Collector:
    c = Collector(b.host, b.port, topics or ["#"], protocol=protocol)
    made.append(c)
    return c


def retained(made: list[Collector], b: Mosquitto, topic: str) -> Message:
    """What a new subscriber gets for ``topic`` (the retained message)."""
    c = collector(made, b, [topic])
    return c.wait_topic(topic, timeout=5)


# -- unit ------------------------------------------------------------------------------


def test_backoff_is_exponential_jittered_and_capped() -> None:
    link = MqttLink("127.0.0.1", 1, client_id="b", will_topic="w", will_payload=b"",
                    reconnect_min=1.0, reconnect_max=60.0, rng=random.Random(7))
    delays = [link._next_delay() for _ in range(10)]
    bases = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    for d, base in zip(delays, bases, strict=True):
        assert base / 2 <= d <= base
    assert len(set(delays)) == 10  # jittered, never two equal waits


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        MqttLink("h", 1, client_id="c", protocol="4", will_topic="w",  # type: ignore[arg-type]
                 will_payload=b"")
    link = MqttLink("h", 1, client_id="c", will_topic="w", will_payload=b"")
    with pytest.raises(ValueError):
        link.publish("t", b"", properties={"responsetopic": "x"})


# -- connection, will, online/offline --------------------------------------------------


def test_online_then_clean_stop_publishes_final_and_no_will(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector]
) -> None:
    watch = collector(collectors, broker, [WILL_TOPIC, "marker"])
    rec = Recorder()
    link = make_link(links, broker.host, broker.port, rec, online=True)
    assert link.wait_connected(10)
    assert watch.wait_topic(WILL_TOPIC).payload == ONLINE
    got = retained(collectors, broker, WILL_TOPIC)
    assert (got.payload, got.retain, got.qos) == (ONLINE, True, 1)

    final = b'{"state":"offline","final":true}'
    link.stop(final=(WILL_TOPIC, final))
    assert not link.connected
    watch.publish("marker", b"1")
    watch.wait_topic("marker")
    assert [m.payload for m in watch.on(WILL_TOPIC)] == [ONLINE, final]  # the will never came
    got = retained(collectors, broker, WILL_TOPIC)
    assert (got.payload, got.retain, got.qos) == (final, True, 1)


def test_will_is_published_retained_on_abrupt_loss_then_link_reconnects(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="linky2mqtt.mqtt")
    watch = collector(collectors, broker, [WILL_TOPIC])
    rec = Recorder()
    link = make_link(links, broker.host, broker.port, rec, online=True)
    assert link.wait_connected(10)
    watch.wait_topic(WILL_TOPIC, where=lambda m: m.payload == ONLINE)

    sock = link._client.socket()  # the test kills the TCP connection under paho's feet
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)

    watch.wait_topic(WILL_TOPIC, where=lambda m: m.payload == WILL)
    rec.wait("connect", 2)  # reconnected by itself, on_connect called again
    assert "lost: connection closed; reconnecting in" in caplog.text
    watch.wait_for(lambda ms: [m.payload for m in ms] == [ONLINE, WILL, ONLINE],
                   what="online, will, online")
    got = retained(collectors, broker, WILL_TOPIC)
    assert (got.payload, got.retain) == (ONLINE, True)


def test_first_connect_is_retried_until_the_broker_comes_up(
    tmp_path: Path, links: list[MqttLink]
) -> None:
    late = Mosquitto(tmp_path)
    rec = Recorder()
    link = make_link(links, late.host, late.port, rec)
    assert not link.wait_connected(0.3)
    assert link.publish("t", b"x") is False  # nothing sent while disconnected
    late.start()
    try:
        assert link.wait_connected(10)
        rec.wait("connect")
        assert link.publish("t", b"x") is True
    finally:
        link.stop()
        late.stop()


def test_stop_without_broker_returns_quickly(links: list[MqttLink]) -> None:
    link = make_link(links, "127.0.0.1", free_port())
    t0 = time.monotonic()
    link.stop(final=(WILL_TOPIC, WILL))
    assert time.monotonic() - t0 < 3


# -- publishing ---------------------------------------------------------------------------


def test_publish_retain_qos_and_ack_after_puback(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector]
) -> None:
    watch = collector(collectors, broker, ["l2m/#"])
    rec = Recorder()
    link = make_link(links, broker.host, broker.port, rec)
    assert link.wait_connected(10)

    assert link.publish("l2m/a/day", b'{"v":1}', qos=1, retain=True,
                        on_ack=lambda: rec.add("ack", "day"))
    assert link.publish("l2m/a/hour", b'{"h":1}', qos=1, retain=False,
                        on_ack=lambda: rec.add("ack", "hour"))
    assert link.publish("l2m/a/q0", b"zero", qos=0)
    assert rec.wait("ack", 2) == ["day", "hour"]

    day = watch.wait_topic("l2m/a/day")
    hour = watch.wait_topic("l2m/a/hour")
    q0 = watch.wait_topic("l2m/a/q0")
    assert (day.payload, day.qos) == (b'{"v":1}', 1)
    assert (hour.payload, hour.qos) == (b'{"h":1}', 1)
    assert (q0.payload, q0.qos) == (b"zero", 0)

    late = collector(collectors, broker, ["l2m/#", "marker"])
    got = late.wait_topic("l2m/a/day")
    assert (got.payload, got.retain) == (b'{"v":1}', True)
    late.publish("marker", b"1")
    late.wait_topic("marker")
    assert late.on("l2m/a/hour") == []  # not retained


def test_callbacks_run_in_order_on_one_worker_never_on_paho_thread(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector]
) -> None:
    release = threading.Event()
    rec = Recorder()

    def on_message(m: Incoming) -> None:
        rec.add("message", m.payload)
        if m.payload == b"0":
            release.wait(10)  # a slow handler

    client_id = "threads-test"
    link = MqttLink(broker.host, broker.port, client_id=client_id, will_topic=WILL_TOPIC,
                    will_payload=WILL, on_connect=lambda: rec.add("connect"),
                    on_message=on_message)
    links.append(link)
    link.subscribe("l2m/in/#")
    link.start()
    rec.wait("connect")
    out = collector(collectors, broker, ["l2m/out"])
    for i in range(5):
        out.publish("l2m/in/x", str(i).encode())
    rec.wait("message", 1)

    # the handler is stuck; the network loop is not: acks and messages still flow
    assert link.publish("l2m/out", b"while-blocked", on_ack=lambda: rec.add("ack"))
    assert out.wait_topic("l2m/out").payload == b"while-blocked"
    assert link.connected
    assert rec.of("message") == [b"0"] and rec.of("ack") == []

    release.set()
    assert rec.wait("message", 5) == [b"0", b"1", b"2", b"3", b"4"]
    rec.wait("ack")
    # connect, messages and ack all ran on the link's one worker thread
    assert rec.threads() == {f"mqtt-callbacks-{client_id}"}
    assert f"paho-mqtt-client-{client_id}" in {t.name for t in threading.enumerate()}


def test_a_failing_handler_is_logged_and_the_link_goes_on(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="linky2mqtt.mqtt")
    seen: list[bytes] = []
    done = threading.Event()

    def on_message(m: Incoming) -> None:
        seen.append(m.payload)
        if m.payload == b"boom":
            raise RuntimeError("handler bug")
        done.set()

    link = MqttLink(broker.host, broker.port, client_id="failing", will_topic=WILL_TOPIC,
                    will_payload=WILL, on_message=on_message)
    links.append(link)
    link.subscribe("l2m/in")
    link.start()
    assert link.wait_connected(10)
    c = collector(collectors, broker, ["x"])
    c.publish("l2m/in", b"boom")
    c.publish("l2m/in", b"fine")
    assert done.wait(10)
    assert seen == [b"boom", b"fine"]
    assert link.connected
    assert "MQTT callback failed" in caplog.text and "handler bug" in caplog.text


def test_resubscribes_after_broker_restart(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector]
) -> None:
    rec = Recorder()
    link = make_link(links, broker.host, broker.port, rec, subscribe=("l2m/bridge/request/#",))
    assert link.wait_connected(10)
    c = collector(collectors, broker, ["x"])
    c.publish("l2m/bridge/request/info", b"{}")
    assert rec.wait("message")[0].payload == b"{}"
    c.close()
    collectors.remove(c)

    broker.stop()
    wait_until(lambda: not link.connected, 10, "link to notice the broker is gone")
    assert link.publish("l2m/x", b"1") is False
    broker.start()
    assert link.wait_connected(10)
    rec.wait("connect", 2)

    c2 = collector(collectors, broker, ["x"])
    c2.publish("l2m/bridge/request/refresh", b'{"pdl":"1"}')
    got = rec.wait("message", 2)
    assert (got[1].topic, got[1].payload) == ("l2m/bridge/request/refresh", b'{"pdl":"1"}')


def test_subscribe_while_connected(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector]
) -> None:
    rec = Recorder()
    link = make_link(links, broker.host, broker.port, rec)
    assert link.wait_connected(10)
    link.subscribe("late/topic", qos=0)
    c = collector(collectors, broker, ["x"])

    def delivered() -> bool:  # the SUBACK is not observable: send until one arrives
        c.publish("late/topic", b"hi", qos=0)
        return bool(rec.of("message"))

    wait_until(delivered, 10, "a message on the late subscription")
    assert rec.of("message")[0].topic == "late/topic"


# -- MQTT 5 and 3.1.1 ----------------------------------------------------------------------


def test_mqtt5_response_topic_and_correlation_data_both_ways(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector]
) -> None:
    rec = Recorder()
    link = make_link(links, broker.host, broker.port, rec, protocol="5",
                     subscribe=("l2m/bridge/request/#",))
    assert link.wait_connected(10)
    watch = collector(collectors, broker, ["reply/#", "l2m/bridge/response/#"])

    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = "reply/me"
    props.CorrelationData = b"\x00corr-42"
    watch.publish("l2m/bridge/request/read", b'{"transaction":1}', properties=props)
    msg: Incoming = rec.wait("message")[0]
    assert msg == Incoming(topic="l2m/bridge/request/read", payload=b'{"transaction":1}',
                           response_topic="reply/me", correlation_data=b"\x00corr-42",
                           retain=False)

    assert link.publish(msg.response_topic or "", b'{"status":"ok"}', properties={
        "correlation_data": msg.correlation_data, "content_type": "application/json"})
    got = watch.wait_topic("reply/me")
    assert got.payload == b'{"status":"ok"}'
    assert got.properties is not None
    assert getattr(got.properties, "CorrelationData", None) == b"\x00corr-42"
    assert getattr(got.properties, "ContentType", None) == "application/json"

    assert link.publish("l2m/bridge/response/read", b"{}", properties={
        "response_topic": "reply/again", "correlation_data": b"c2"})
    got = watch.wait_topic("l2m/bridge/response/read")
    assert got.properties is not None
    assert getattr(got.properties, "ResponseTopic", None) == "reply/again"
    assert getattr(got.properties, "CorrelationData", None) == b"c2"


def test_protocol_311_works_and_ignores_v5_properties(
    broker: Mosquitto, links: list[MqttLink], collectors: list[Collector]
) -> None:
    rec = Recorder()
    link = make_link(links, broker.host, broker.port, rec, protocol="3.1.1", online=True,
                     subscribe=("l2m/bridge/request/#",))
    assert link.wait_connected(10)
    watch = collector(collectors, broker, ["l2m/#"], protocol=mqtt.MQTTv311)
    watch.publish("l2m/bridge/request/info", b"{}", retain=False)
    assert rec.wait("message")[0] == Incoming("l2m/bridge/request/info", b"{}", None, None,
                                              False)
    assert link.publish("l2m/bridge/response/info", b'{"ok":1}',
                        properties={"correlation_data": b"x"}, on_ack=lambda: rec.add("ack"))
    rec.wait("ack")
    assert watch.wait_topic("l2m/bridge/response/info").payload == b'{"ok":1}'
    got = retained(collectors, broker, WILL_TOPIC)
    assert (got.payload, got.retain) == (ONLINE, True)


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path)
    m.extra_conf = (
        f"user root\nlistener {m.port} 127.0.0.1\nallow_anonymous true\n"
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\n"
        f"keyfile {pki / 'server.key'}\n"
    )
    m.start()
    yield m
    m.stop()


def test_tls_verified_connection(
    tls_broker: Mosquitto, pki: Path, links: list[MqttLink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    link = make_link(links, "127.0.0.1", tls_broker.port, rec, use_tls=True,
                     ca_file=str(pki / "ca.crt"), online=True)
    assert link.wait_connected(10)
    assert link.publish("l2m/tls", b"ok", on_ack=lambda: rec.add("ack"))
    rec.wait("ack")
    assert "verification is DISABLED" not in caplog.text
    assert any("MQTT connected to 127.0.0.1" in r.getMessage() and "TLS" in r.getMessage()
               for r in caplog.records)


def test_tls_wrong_ca_or_system_cas_never_connect(
    tls_broker: Mosquitto, pki: Path, links: list[MqttLink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="linky2mqtt.mqtt")
    rec = Recorder()
    wrong = make_link(links, "127.0.0.1", tls_broker.port, rec, use_tls=True,
                      ca_file=str(pki / "other-ca.crt"))
    system = make_link(links, "127.0.0.1", tls_broker.port, rec, use_tls=True)
    wait_until(lambda: caplog.text.count("certificate verify failed") >= 4, 10,
               "two failed attempts per link")
    assert not wrong.connected and not system.connected
    assert rec.of("connect") == []
    assert wrong.publish("l2m/x", b"1") is False


def test_tls_insecure_connects_and_warns(
    tls_broker: Mosquitto, links: list[MqttLink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="linky2mqtt.mqtt")
    link = make_link(links, "127.0.0.1", tls_broker.port, use_tls=True, insecure=True)
    assert link.wait_connected(10)
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and "verification is DISABLED" in r.getMessage()]
    assert len(warnings) == 1


# -- username / password ------------------------------------------------------------------


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    m = start_auth_broker(tmp_path, {"linky": PASSWORD})
    yield m
    m.stop()


def test_right_password_connects_and_is_never_logged(
    auth_broker: Mosquitto, links: list[MqttLink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    link = make_link(links, auth_broker.host, auth_broker.port, rec, username="linky",
                     password=PASSWORD, online=True)
    assert link.wait_connected(10)
    assert link.publish("l2m/x", b"1", on_ack=lambda: rec.add("ack"))
    rec.wait("ack")
    link.stop(final=(WILL_TOPIC, WILL))
    assert caplog.records  # paho's debug log was captured too
    assert PASSWORD not in caplog.text
    assert not any(PASSWORD in str(r.args) for r in caplog.records)


def test_wrong_password_never_connects_and_is_never_logged(
    auth_broker: Mosquitto, links: list[MqttLink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    bad = PASSWORD + "-wrong"
    link = make_link(links, auth_broker.host, auth_broker.port, rec, username="linky",
                     password=bad)
    anonymous = make_link(links, auth_broker.host, auth_broker.port, rec)
    wait_until(lambda: caplog.text.count("refused: Not authorized") >= 4, 10,
               "two refusals per link")
    assert not link.connected and not anonymous.connected
    assert rec.of("connect") == []
    assert bad not in caplog.text and PASSWORD not in caplog.text
