"""A test-side MQTT subscriber that records every message and waits for conditions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    properties: Properties | None = None
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.payload)


class Collector:
    """Subscribes to ``topics`` and keeps every message, in order of arrival."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: list[str] | None = None,
        protocol: int = mqtt.MQTTv5,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        configure: Callable[[mqtt.Client], None] | None = None,
    ) -> None:
        """``configure`` adjusts the paho client before it connects (in-flight window,
        socket options)."""
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id,
            protocol=MQTTProtocolVersion(protocol)
        )
        self.topics = topics or ["#"]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._unacked: set[int] = set()  # SUBSCRIBEs the broker has not acknowledged yet
        if username is not None:
            self.client.username_pw_set(username, password)
        if configure is not None:
            configure(self.client)
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("test collector could not connect")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any = None) -> None:
        # ready once the broker acknowledged every subscription (SUBACK): a message
        # published right after the constructor returns is then never missed
        mids = (client.subscribe(t, qos=1)[1] for t in self.topics)
        self._unacked = {mid for mid in mids if mid is not None}

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                      props: Any = None) -> None:
        self._unacked.discard(mid)
        if not self._unacked:
            self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        with self._cond:
            self.messages.append(
                Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, props)
            )
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[Message]], Any], timeout: float = 30.0,
        what: str = "condition",
    ) -> Any:
        """Wait until ``predicate(messages)`` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(list(self.messages))
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = sorted({m.topic for m in self.messages})
                    raise TimeoutError(f"timed out waiting for {what}; topics seen: {topics}")
                self._cond.wait(min(left, 0.5))

    def on(self, topic: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Message | None:
        got = self.on(topic)
        return got[-1] if got else None

    def wait_topic(self, topic: str, timeout: float = 30.0,
                   where: Callable[[Message], bool] | None = None) -> Message:
        def pred(msgs: list[Message]) -> Message | None:
            for m in reversed(msgs):
                if m.topic == topic and (where is None or where(m)):
                    return m
            return None

        result: Message = self.wait_for(pred, timeout, what=f"message on {topic}")
        return result

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False,
                properties: Properties | None = None, *, wait: bool = True) -> None:
        """Publish; with ``wait``, until the broker has it (QoS 1: its PUBACK)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if wait:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
