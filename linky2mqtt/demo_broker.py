"""A tiny embedded MQTT 3.1.1 broker for ``linky2mqtt demo`` (standard library only).

Used only when no broker answers and no ``mosquitto`` is installed. Supports CONNECT
(levels 3 and 4; level 5 is refused with return code 0x01), keepalive (1.5x), last will,
PUBLISH at QoS 0/1/2, retained messages, SUBSCRIBE with ``+``/``#``, UNSUBSCRIBE, PINGREQ
and DISCONNECT. Sessions are never persisted (every session is clean). QoS 2 publishes are
acknowledged with PUBREC/PUBCOMP (delivered once, on PUBLISH) and forwarded at QoS 1 at
most: granted QoS is min(requested, 1). Outgoing QoS 1 is sent once, never redelivered.
Malformed packets close that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_PACKET = 1024 * 1024
CONNECT_TIMEOUT = 10.0
MAX_WRITE_BUFFER = 32 * 1024 * 1024  # a subscriber further behind than this is dropped
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = range(8, 15)


class ProtocolError(Exception):
    """The peer sent something that is not valid MQTT 3.1.1: close its connection."""


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class Session:
    client_id: str
    writer: asyncio.StreamWriter
    subs: dict[str, int] = field(default_factory=dict)
    will: Message | None = None
    qos2_pending: set[int] = field(default_factory=set)
    ids: itertools.cycle[int] = field(default_factory=lambda: itertools.cycle(range(1, 65536)))


def encode_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(ptype: int, body: bytes = b"", flags: int = 0) -> bytes:
    return bytes([ptype << 4 | flags]) + encode_length(len(body)) + body


def mqtt_str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def topic_matches(filt: str, topic: str) -> bool:
    """MQTT filter matching; ``$``-topics are not matched by a leading ``+`` or ``#``."""
    if topic.startswith("$") and filt[:1] in ("+", "#"):
        return False
    f, t = filt.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def valid_filter(filt: str) -> bool:
    levels = filt.split("/")
    return bool(filt) and "\0" not in filt and all(
        ("+" not in lv or lv == "+") and ("#" not in lv or (lv == "#" and i == len(levels) - 1))
        for i, lv in enumerate(levels)
    )


class Reader:
    """Cursor over one packet body; any overrun is a ProtocolError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("packet too short")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        try:
            s = self.binary().decode()
        except UnicodeDecodeError as e:
            raise ProtocolError("bad UTF-8") from e
        if "\0" in s:
            raise ProtocolError("NUL in string")
        return s

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, mult = 0, 1
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        length += (byte & 0x7F) * mult
        mult *= 128
        if not byte & 0x80:
            break
    else:
        raise ProtocolError("remaining length longer than 4 bytes")
    if length > MAX_PACKET:
        raise ProtocolError("packet too large")
    return first >> 4, first & 0x0F, await reader.readexactly(length)


class DemoBroker:
    """An in-process MQTT 3.1.1 broker on an asyncio loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._sessions: dict[str, Session] = {}
        self._retained: dict[str, Message] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._anon = itertools.count(1)

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        """Start listening; returns once the socket is bound (raises OSError if it cannot)."""
        if self._thread is not None:
            raise RuntimeError("demo broker already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[OSError] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self._port)
                )
            except OSError as e:
                errors.append(e)
                ready.set()
                loop.close()
                return
            self._port = int(server.sockets[0].getsockname()[1])
            ready.set()
            loop.run_forever()
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(server.wait_closed())
            loop.run_until_complete(asyncio.sleep(0))  # let transports finish closing
            loop.close()

        self._thread = threading.Thread(target=run, name="demo-mqtt-broker", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread = None
            raise errors[0]
        self._loop = loop

    def stop(self) -> None:
        """Close every connection and the listening socket; idempotent."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> DemoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connection handling (all below runs on the broker's loop) --

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session: Session | None = None
        clean_exit = False
        try:
            ptype, _, body = await asyncio.wait_for(read_packet(reader), CONNECT_TIMEOUT)
            if ptype != CONNECT:
                raise ProtocolError("first packet is not CONNECT")
            session, keepalive = self._connect(Reader(body), writer)
            if session is None:
                await writer.drain()
                return
            timeout = keepalive * 1.5 if keepalive else None
            while True:
                ptype, flags, body = await asyncio.wait_for(read_packet(reader), timeout)
                if ptype == DISCONNECT:
                    clean_exit = True
                    return
                self._dispatch(session, ptype, flags, Reader(body))
                await writer.drain()
        except (ProtocolError, asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        except asyncio.CancelledError:  # broker stopping: end quietly, no will
            clean_exit = True
        except Exception:  # a bug must cost one connection, never the broker
            log.exception("demo broker: connection dropped")
        finally:
            if session is not None and self._sessions.get(session.client_id) is session:
                del self._sessions[session.client_id]
            if session is not None and session.will is not None and not clean_exit:
                self._publish(session.will)
            writer.close()

    def _connect(self, r: Reader, writer: asyncio.StreamWriter) -> tuple[Session | None, int]:
        name, level = r.string(), r.u8()
        if (name, level) not in (("MQTT", 4), ("MQIsdp", 3)):
            if name not in ("MQTT", "MQIsdp"):
                raise ProtocolError("not MQTT")
            writer.write(packet(CONNACK, b"\x00\x01"))  # unacceptable protocol version
            return None, 0
        flags, keepalive, client_id = r.u8(), r.u16(), r.string()
        will_qos = (flags >> 3) & 3
        if flags & 1 or will_qos == 3 or (not flags & 4 and flags & 0x38):
            raise ProtocolError("bad CONNECT flags")
        will = None
        if flags & 4:
            will_topic = r.string()
            will = Message(will_topic, r.binary(), will_qos, bool(flags & 0x20))
            if not will_topic or set("+#") & set(will_topic):
                raise ProtocolError("bad will topic")
        if flags & 0x80:
            r.string()
        if flags & 0x40:
            r.binary()
        if not client_id:
            if not flags & 2:
                writer.write(packet(CONNACK, b"\x00\x02"))  # identifier rejected
                return None, 0
            client_id = f"demo-broker-{next(self._anon)}"
        old = self._sessions.get(client_id)
        if old is not None:  # session takeover: the older connection goes
            old.writer.close()
        session = Session(client_id, writer, will=will)
        self._sessions[client_id] = session
        writer.write(packet(CONNACK, b"\x00\x00"))
        return session, keepalive

    def _dispatch(self, s: Session, ptype: int, flags: int, r: Reader) -> None:
        if ptype in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) and flags != 2:
            raise ProtocolError("bad fixed-header flags")
        if ptype not in (PUBLISH, PUBREL, SUBSCRIBE, UNSUBSCRIBE) and flags:
            raise ProtocolError("bad fixed-header flags")
        if ptype == PUBLISH:
            self._on_publish(s, flags, r)
        elif ptype in (PUBACK, PUBREC, PUBCOMP):
            r.u16()  # acknowledgements of our sends: nothing is redelivered
        elif ptype == PUBREL:
            pid = r.u16()
            s.qos2_pending.discard(pid)
            s.writer.write(packet(PUBCOMP, struct.pack("!H", pid)))
        elif ptype == SUBSCRIBE:
            self._on_subscribe(s, r)
        elif ptype == UNSUBSCRIBE:
            pid = r.u16()
            if r.at_end():
                raise ProtocolError("UNSUBSCRIBE without topics")
            while not r.at_end():
                s.subs.pop(r.string(), None)
            s.writer.write(packet(UNSUBACK, struct.pack("!H", pid)))
        elif ptype == PINGREQ:
            s.writer.write(packet(PINGRESP))
        else:
            raise ProtocolError(f"unexpected packet type {ptype}")

    def _on_publish(self, s: Session, flags: int, r: Reader) -> None:
        qos = (flags >> 1) & 3
        topic = r.string()
        if qos == 3 or not topic or set("+#") & set(topic):
            raise ProtocolError("bad PUBLISH")
        pid = r.u16() if qos else 0
        msg = Message(topic, r.data[r.pos :], qos, bool(flags & 1))
        if qos == 2:
            s.writer.write(packet(PUBREC, struct.pack("!H", pid)))
            if pid in s.qos2_pending:
                return  # a resend before PUBREL: already delivered
            s.qos2_pending.add(pid)
        elif qos == 1:
            s.writer.write(packet(PUBACK, struct.pack("!H", pid)))
        self._publish(msg)

    def _on_subscribe(self, s: Session, r: Reader) -> None:
        pid = r.u16()
        granted, filters = bytearray(), []
        if r.at_end():
            raise ProtocolError("SUBSCRIBE without topics")
        while not r.at_end():
            filt, req = r.string(), r.u8()
            if req & 0xFC:
                raise ProtocolError("bad requested QoS")
            if valid_filter(filt):
                s.subs[filt] = min(req, 1)
                granted.append(min(req, 1))
                filters.append(filt)
            else:
                granted.append(0x80)
        s.writer.write(packet(SUBACK, struct.pack("!H", pid) + bytes(granted)))
        for msg in list(self._retained.values()):
            qos = max((s.subs[f] for f in filters if topic_matches(f, msg.topic)), default=-1)
            if qos >= 0:
                self._send(s, msg, min(qos, msg.qos), retain=True)

    def _publish(self, msg: Message) -> None:
        if msg.retain:
            if msg.payload:
                self._retained[msg.topic] = Message(msg.topic, msg.payload, msg.qos, True)
            else:
                self._retained.pop(msg.topic, None)
        for s in list(self._sessions.values()):
            qos = max((q for f, q in s.subs.items() if topic_matches(f, msg.topic)), default=-1)
            if qos >= 0:
                self._send(s, msg, min(qos, msg.qos), retain=False)

    def _send(self, s: Session, msg: Message, qos: int, retain: bool) -> None:
        if s.writer.is_closing():
            return
        if s.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            s.writer.close()  # a stuck subscriber must not eat the demo's memory
            return
        qos = min(qos, 1)
        pid = struct.pack("!H", next(s.ids)) if qos else b""
        body = mqtt_str(msg.topic) + pid + msg.payload
        with contextlib.suppress(OSError):
            s.writer.write(packet(PUBLISH, body, qos << 1 | int(retain)))
