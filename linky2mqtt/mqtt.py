"""The MQTT link: the only module of linky2mqtt that touches paho-mqtt.

:class:`MqttLink` holds one persistent connection to the broker (paho-mqtt 2.x,
``CallbackAPIVersion.VERSION2``, MQTT 5 or 3.1.1, optional TLS and username/password).

Behaviour, in short:

* **Last will** ``will_topic``/``will_payload``, retained, QoS 1, set before connecting.
* **Sessions**: clean session (3.1.1) / clean start (5) on every connect. Nothing is kept
  broker-side for us: the bridge republishes what matters from its store on every
  (re)connect, and subscriptions are renewed by this module.
* **Keepalive** 60 s.
* **Reconnection** runs in the background forever, the first connection included (a broker
  that is down at start is not fatal). Delays grow exponentially with "equal jitter":
  attempt *n* waits a random time between half and all of
  ``min(reconnect_max, reconnect_min * 2**n)`` (defaults 1 s and 60 s); the counter is reset
  by a successful CONNACK.
* **Ready**: ``connected`` turns true, and ``on_connect`` is called, once the broker
  accepted the connection AND acknowledged every subscription made with ``subscribe()``
  (renewed on each connect), so requests are not missed from that point on.
* **Callbacks** (``on_connect``, ``on_message``, every ``on_ack``) never run on paho's
  network thread: they are queued, in order, to one worker thread, so a slow handler never
  stalls pings, acknowledgements or reconnection.
* **Bounded inbox**: messages waiting for ``on_message`` are bounded by count
  (``inbox_messages``) and by size (``inbox_bytes``, topic and payload counted); a payload
  over ``max_payload`` is never queued. A message that does not fit is handed at once to
  ``on_overflow(message, reason)`` (``reason`` "too large" or "busy") on paho's network
  thread, which must only do something quick (the bridge answers a refusal); without
  ``on_overflow`` it is dropped with a DEBUG line. So a flood of messages, however large,
  holds at most about ``inbox_bytes`` here.
* **publish()** returns ``False`` (and sends nothing) while disconnected; the caller resends
  from its own store after the next connect. ``on_ack`` is called once the broker
  acknowledged a QoS 1/2 message (PUBACK/PUBCOMP) or, for QoS 0, once it was written. If
  the connection drops before the acknowledgement, ``on_ack`` may never be called: paho
  retransmits in-flight messages after a reconnect and calls it then if the broker
  acknowledges, but nothing guarantees it; a caller that needs delivery resends unacked
  messages after each connect (duplicates are possible, never losses).
* **stop(final)** publishes ``final`` (retained, QoS 1), waits up to ``ack_timeout`` for its
  PUBACK, disconnects cleanly (so the broker does not send the will) and stops both threads.
* **Logging**: one line per connect, failure and disconnect, with the reason; a refusal
  is logged once per reason (repeats at debug) until the broker accepts again.
  The password is never logged; paho's own log goes to ``linky2mqtt.mqtt.paho`` at DEBUG
  (exceptions caught in callbacks at ERROR; they never stop the network loop).
* **TLS**: system CAs unless ``ca_file`` is given; ``insecure=True`` is the only way to
  skip certificate and host name verification, and logs a WARNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

Protocol = Literal["5", "3.1.1"]

KEEPALIVE = 60

#: ``publish(properties=...)`` keys and the MQTT 5 property each one sets.
PUBLISH_PROPERTIES = {
    "response_topic": "ResponseTopic",
    "correlation_data": "CorrelationData",
    "content_type": "ContentType",
    "message_expiry_interval": "MessageExpiryInterval",
    "payload_format_indicator": "PayloadFormatIndicator",
    "user_property": "UserProperty",
}


Overflow = Literal["too large", "busy"]


@dataclass(frozen=True)
class Incoming:
    """A message received on a subscribed topic (MQTT 5 properties are None under 3.1.1)."""

    topic: str
    payload: bytes
    response_topic: str | None = None
    correlation_data: bytes | None = None
    retain: bool = False


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed (for the log)."""

    last_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_error = exc
            raise


_STOP = object()
_paho_logger = logging.getLogger(f"{__name__}.paho")


_PAHO_LINE = 300


class _PahoLog(logging.Logger):
    """paho's own log (``enable_logger``): DEBUG, except exceptions caught in callbacks
    (ERROR). A line is written only when its level is enabled (paho's ``on_log`` would
    format every packet's line, a backfill's batches and PUBACKs included); paho's lines
    quote topics, which clients choose: escaped, and cut when long."""

    def __init__(self) -> None:
        super().__init__(_paho_logger.name)

    def log(self, level: int, msg: object, *args: object, **_kwargs: Any) -> None:
        caught = level >= logging.ERROR and str(msg).startswith("Caught exception")
        level = logging.ERROR if caught else logging.DEBUG
        if not _paho_logger.isEnabledFor(level):
            return
        buf = str(msg) % args if args else str(msg)
        if len(buf) > _PAHO_LINE:
            buf = f"{buf[:_PAHO_LINE]}... ({len(buf)} characters)"
        _paho_logger.log(level, "%s", json.dumps(buf)[1:-1])


class MqttLink:
    """One persistent MQTT connection with a will, resubscription and ordered callbacks."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        protocol: Protocol = "5",
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        insecure: bool = False,
        will_topic: str,
        will_payload: bytes,
        on_connect: Callable[[], None] | None = None,
        on_message: Callable[[Incoming], None] | None = None,
        on_overflow: Callable[[Incoming, Overflow], None] | None = None,
        inbox_messages: int = 256,
        inbox_bytes: int = 2 * 1024 * 1024,
        max_payload: int | None = None,
        reconnect_min: float = 1.0,
        reconnect_max: float = 60.0,
        ack_timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        if protocol not in ("5", "3.1.1"):
            raise ValueError('protocol must be "5" or "3.1.1"')
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.protocol: Protocol = protocol
        self.use_tls = use_tls
        self._on_connect = on_connect
        self._on_message = on_message
        self._on_overflow = on_overflow
        self._inbox_messages = inbox_messages
        self._inbox_bytes = inbox_bytes
        self._max_payload = max_payload
        self._inbox_lock = threading.Lock()
        self._inbox_count = 0  # messages queued for on_message, and their size
        self._inbox_size = 0
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._ack_timeout = ack_timeout
        self._rng = rng or random.Random()  # jitter only, not security

        self._v5 = protocol == "5"
        self._client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else True,
        )
        # paho's own log goes to DEBUG (it reports every failed reconnect as an ERROR; our
        # own lines say it better), except exceptions caught in our callbacks (bugs).
        self._client.suppress_exceptions = True  # never let a callback kill the network loop
        self._client.enable_logger(_PahoLog())
        if username is not None:
            self._client.username_pw_set(username, password)
        if use_tls:
            self._configure_tls(ca_file, cert_file, key_file, insecure)
        self._client.will_set(will_topic, will_payload, qos=1, retain=True)

        self._client.on_connect = self._handle_connect
        self._client.on_socket_open = _no_delay
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_publish = self._handle_publish
        self._client.on_subscribe = self._handle_subscribe

        self._lock = threading.Lock()
        self._acks: dict[int, Callable[[], None]] = {}
        # PUBACKed mids the worker has not resolved yet (network thread -> worker), and a
        # hook run once after each lot of acks (the publisher writes their store side in
        # one transaction: a backfill's acks do not cost a commit each)
        self._acked: list[int] = []
        self._acked_lock = threading.Lock()
        self.after_acks: Callable[[], None] | None = None
        self._subscriptions: dict[str, int] = {}
        self._connected = threading.Event()
        self._pending_subacks: dict[int, str] = {}  # network thread only
        self._failures = 0  # connection attempts failed since the last success
        self._refusals = 0  # CONNACK refusals since the last success ...
        self._refused_reason: str | None = None  # ... and the last one's reason
        self._started = False
        self._stopped = False
        # C-level queue (no Python Condition per put/get: a PUBACK lot costs the network
        # thread one cheap put); as bounded as before: a task per lot of acks, per inbox
        # message (bounded) and per connect
        self._tasks: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._worker = threading.Thread(
            target=self._work, name=f"mqtt-callbacks-{client_id}", daemon=True
        )

    # -- configuration -------------------------------------------------------------------

    def _configure_tls(
        self, ca_file: str | None, cert_file: str | None, key_file: str | None, insecure: bool
    ) -> None:
        self._client.tls_set(
            ca_certs=ca_file,
            certfile=cert_file,
            keyfile=key_file,
            cert_reqs=ssl.CERT_NONE if insecure else ssl.CERT_REQUIRED,
        )
        if insecure:
            self._client.tls_insecure_set(True)
            log.warning(
                "MQTT TLS certificate verification is DISABLED (insecure: true) for %s:%d; "
                "anyone on the path can impersonate the broker",
                self.host,
                self.port,
            )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the callback worker and the network loop; connect in the background."""
        if self._started:
            return
        self._started = True
        self._worker.start()
        self._client.connect_async(
            self.host,
            self.port,
            keepalive=KEEPALIVE,
            clean_start=True,  # MQTT 5; 3.1.1 uses clean_session=True from the constructor
        )
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected and subscribed; False after ``timeout`` seconds."""
        return self._connected.wait(timeout)

    def stop(self, final: tuple[str, bytes] | None = None) -> None:
        """Publish ``final`` (retained, QoS 1) and wait for its PUBACK, then disconnect."""
        if self._stopped:
            return
        self._stopped = True
        if final is not None and self._client.is_connected():
            topic, payload = final
            info = self._client.publish(topic, payload, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # not queued: not connected
                info.wait_for_publish(self._ack_timeout)
            if not info.is_published():
                log.warning("MQTT final message on %s was not acknowledged", topic)
        self._client.disconnect()
        if self._started:
            self._client.loop_stop()
            self._tasks.put(_STOP)
            if threading.current_thread() is not self._worker:
                self._worker.join(10)
                if self._worker.is_alive():
                    log.warning("MQTT callback worker still busy after stop")
        self._connected.clear()

    # -- operations ---------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        on_ack: Callable[[], None] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> bool:
        """Send one message; False (nothing sent) when not connected.

        ``properties`` (MQTT 5 only, ignored under 3.1.1): keys of ``PUBLISH_PROPERTIES``,
        e.g. ``{"response_topic": "...", "correlation_data": b"...",
        "content_type": "application/json"}``.
        """
        props = self._publish_properties(properties)
        if not self._client.is_connected():
            return False
        with self._lock:
            info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.debug("MQTT publish on %s not accepted: %s", topic, mqtt.error_string(info.rc))
                return False
            if on_ack is not None:
                self._acks[info.mid] = on_ack
        return True

    def awaiting_acks(self) -> int:
        """Messages published with an ``on_ack`` whose acknowledgement is not handled yet."""
        with self._lock:
            return len(self._acks)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        with self._lock:
            self._subscriptions[topic] = qos
        if self._client.is_connected():
            self._client.subscribe(topic, qos=qos)

    def _publish_properties(self, properties: dict[str, Any] | None) -> Properties | None:
        if not properties:
            return None
        unknown = set(properties) - set(PUBLISH_PROPERTIES)
        if unknown:
            raise ValueError(f"unknown MQTT publish properties: {sorted(unknown)}")
        if not self._v5:
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        for key, value in properties.items():
            if value is not None:
                setattr(props, PUBLISH_PROPERTIES[key], value)
        return props

    # -- the worker thread ----------------------------------------------------------------

    def _dispatch(self, task: Callable[[], None]) -> None:
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is _STOP:
                return
            try:
                task()  # type: ignore[operator]
            except Exception:
                log.exception("MQTT callback failed")

    def _run_acks(self) -> None:
        """The callbacks of every PUBACK received so far, then :attr:`after_acks` once."""
        with self._acked_lock:
            mids, self._acked = self._acked, []
        with self._lock:
            callbacks = [self._acks.pop(mid, None) for mid in mids]
        for callback in callbacks:
            if callback is not None:
                try:
                    callback()
                except Exception:
                    log.exception("MQTT ack callback failed")
        if self.after_acks is not None:
            self.after_acks()

    # -- paho callbacks: network thread, nothing slow here -------------------------------

    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            # one warning per refusal reason (a broker that now refuses the password is
            # refused at every attempt): the repeats go to debug
            name = reason.getName()
            self._refusals += 1
            first = name != self._refused_reason
            self._refused_reason = name
            log.log(logging.WARNING if first else logging.DEBUG,
                    "MQTT connection to %s:%d refused: %s%s", self.host, self.port, name,
                    "; retrying with back-off (at most every 60 s), repeats not logged"
                    if first else "")
            return
        if self._refusals:
            log.info("MQTT broker accepts the connection again, after %d refusal(s)",
                     self._refusals)
        self._refusals, self._refused_reason = 0, None
        self._failures = 0
        log.info(
            "MQTT connected to %s:%d (MQTT %s%s, client id %s)",
            self.host,
            self.port,
            self.protocol,
            ", TLS" if self.use_tls else "",
            self.client_id,
        )
        with self._lock:
            subscriptions = list(self._subscriptions.items())
        self._pending_subacks = {}
        for topic, qos in subscriptions:
            rc, mid = client.subscribe(topic, qos=qos)
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                self._pending_subacks[mid] = topic  # SUBACKs are handled on this thread
        if not self._pending_subacks:
            self._ready()

    def _ready(self) -> None:
        """Connected and every remembered subscription acknowledged."""
        self._connected.set()
        if self._on_connect is not None:
            self._dispatch(self._on_connect)

    def _handle_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        topic = self._pending_subacks.pop(mid, None)
        if topic is None:
            return
        for reason in reasons:
            if reason.is_failure:
                log.warning("MQTT subscription to %s refused: %s", topic, reason.getName())
        if not self._pending_subacks:
            self._ready()

    def _handle_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        error = self._client.last_error
        delay = self._next_delay()
        level = logging.WARNING if self._failures == 1 else logging.INFO
        log.log(
            level,
            "MQTT cannot connect to %s:%d: %s; retrying in %.2f s",
            self.host,
            self.port,
            error if error is not None else "unknown error",
            delay,
        )

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopped:
            log.info("MQTT disconnected from %s:%d", self.host, self.port)
            return
        delay = self._next_delay()
        why = reason.getName()
        if not flags.is_disconnect_packet_from_server and why == "Unspecified error":
            why = "connection closed"
        if was_connected:
            log.warning(
                "MQTT connection to %s:%d lost: %s; reconnecting in %.2f s",
                self.host,
                self.port,
                why,
                delay,
            )
        else:  # a refused CONNACK, already logged by _handle_connect
            log.log(logging.INFO if self._refusals <= 1 else logging.DEBUG,
                    "MQTT retrying %s:%d in %.2f s", self.host, self.port, delay)

    def _next_delay(self) -> float:
        """Set paho's next reconnect wait: exponential with equal jitter."""
        base = min(self._reconnect_max, self._reconnect_min * 2.0 ** min(self._failures, 30))
        self._failures += 1
        delay = base * self._rng.uniform(0.5, 1.0)
        # paho annotates these as int but computes with floats; it waits exactly
        # min_delay after a reset, which is what we want.
        self._client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]
        return delay

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            log.warning("MQTT message with a topic that is not UTF-8 ignored")
            return
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        incoming = Incoming(
            topic=topic,
            payload=bytes(msg.payload),
            response_topic=response_topic,
            correlation_data=bytes(correlation) if correlation is not None else None,
            retain=bool(msg.retain),
        )
        handler = self._on_message
        if handler is None:
            return
        size = (len(incoming.payload) + len(topic) + len(response_topic or "")
                + len(incoming.correlation_data or b""))
        reason: Overflow | None = None
        if self._max_payload is not None and len(incoming.payload) > self._max_payload:
            reason = "too large"
        else:
            with self._inbox_lock:
                if self._inbox_count and (self._inbox_count >= self._inbox_messages
                                          or self._inbox_size + size > self._inbox_bytes):
                    reason = "busy"
                else:
                    self._inbox_count += 1
                    self._inbox_size += size
        if reason is None:
            self._dispatch(lambda: self._deliver(handler, incoming, size))
        elif self._on_overflow is not None:
            self._on_overflow(incoming, reason)
        else:
            log.debug("MQTT message on %.80r dropped: %s", topic, reason)

    def _deliver(self, handler: Callable[[Incoming], None], incoming: Incoming,
                 size: int) -> None:
        with self._inbox_lock:
            self._inbox_count -= 1
            self._inbox_size -= size
        handler(incoming)

    def _handle_publish(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        _reason: ReasonCode,
        _properties: Properties,
    ) -> None:
        # Resolved on the worker: publish() registers the mid under self._lock right after
        # paho returns it, and the PUBACK may arrive before that.
        with self._acked_lock:
            first = not self._acked
            self._acked.append(mid)
        if first:  # one task for every ack that arrives before the worker gets to it
            self._dispatch(self._run_acks)


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Send small packets (acks, command answers) at once: no Nagle delay on our socket."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
