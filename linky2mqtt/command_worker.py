"""The command worker: requests in, answers out, off the paho network thread.

``B/bridge/request/<command>`` messages are queued (bounded: a flood is refused with an
error answer, never buffered without limit) and handled in order by one worker thread:

* validation first (:func:`commands.parse_request`): no invalid request ever reaches the
  upstream client;
* ``info`` and a ``read`` the store can answer are answered at once;
* a ``read`` that lacks days, and ``refresh``, are handed to the meter's account thread,
  which runs them after its due polls (command priority is below the daily polls) and
  answers when done; so a slow read never delays the next request's answer. At most
  :data:`UPSTREAM_LIMIT` of those wait at a time (more are refused with an error answer),
  and a read checks again what is missing right before it fetches;
* the clock hours of complete days are cached in memory (:class:`StoreReadSource`), so a
  month of hourly data is served in a few milliseconds.

The worker knows nothing of the bridge or of the account threads: it is given the meters
through the narrow :class:`Meters` protocol it declares here (implemented by
:class:`linky2mqtt.accounts.Fleet`), a read source, a function that publishes an answer
(:meth:`linky2mqtt.mqtt.MqttLink.publish`), the clock and the stop event.

Answers go to ``B/bridge/response/<command>`` (QoS 1, not retained) and, under MQTT 5,
also to the request's ResponseTopic with its CorrelationData and content type JSON, but
never to a ResponseTopic :func:`commands.response_topic_problem` refuses (inside the base
topic but ``B/bridge/response/``, under the discovery prefix, Home Assistant's status
topic, outside ``commands.response_topics``): such a request is refused, with an error
answer on ``B/bridge/response/<command>`` and a warning naming the topic.

Hostile input is bounded at every step:

* a payload over ``commands.max_payload`` is refused unread (by the MQTT link, before it
  is queued), its ``transaction`` found by :func:`commands.transaction_hint`;
* the link's inbox and this worker's queue are bounded by count and by bytes; a request
  that finds them full is refused at once ("too many requests are waiting"), with its
  transaction;
* answers published and not yet acknowledged by the broker are bounded (1,000, 4 MiB):
  beyond that the worker waits up to 5 s and refusals are not sent (a throttled warning
  counts them), so a broker slower than a flood never makes paho's queue grow unbounded;
* a retained request (the broker's stored copy, replayed at every connect) is ignored with
  a warning; the bridge never clears it (it is not the bridge's topic);
* user input in log lines is escaped and bounded (:func:`commands.shown`), and warnings
  about hostile requests are throttled (a few per minute, then a count).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Protocol

from linky2mqtt import commands
from linky2mqtt.clock import Clock
from linky2mqtt.config import CommandPolicy, HomeAssistantConfig
from linky2mqtt.model import PARIS, HourlyDay, Kind, Series, Step, day_bounds
from linky2mqtt.mqtt import Incoming, Overflow
from linky2mqtt.poller import PollOutcome
from linky2mqtt.pricing import Pricing
from linky2mqtt.store import Store
from linky2mqtt.tariffs import Breakdown

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256
QUEUE_BYTES = 2 * 1024 * 1024  # topics and payloads of the requests waiting, at most
# Answers published and not yet acknowledged by the broker (held by paho meanwhile): beyond
# either bound, the worker waits (up to ANSWER_WAIT seconds) and refusals are not sent
# (counted in the log): the broker is not taking answers as fast as requests come, and
# would drop them anyway.
ANSWER_BACKLOG = 1000
ANSWER_BYTES = 4 * 1024 * 1024
ANSWER_WAIT = 5.0
# Requests handed to account threads (reads that need upstream data, refreshes) and not
# answered yet; beyond this, new ones are refused at once rather than queued without limit.
UPSTREAM_LIMIT = 64


class Meters(Protocol):
    """What the command worker needs of the meters (:class:`linky2mqtt.accounts.Fleet`)."""

    def meter_views(self) -> dict[str, commands.MeterView]:
        """Every meter, by PDL, with the series it keeps (request validation)."""
        ...

    def pdls(self) -> list[str]:
        """Every meter's PDL, sorted."""
        ...

    def run_on_account(self, pdl: str, job: Callable[[], None]) -> None:
        """Run ``job`` on the thread of ``pdl``'s account, after its due polls."""
        ...

    def fetch_days(self, pdl: str, kind: Kind, series: Series, days: list[date],
                   now: datetime) -> PollOutcome:
        """Fetch exactly ``days`` of one series (run on the account's thread)."""
        ...

    def poll_now(self, pdl: str) -> None:
        """Poll one meter now (run on the account's thread)."""
        ...

    def info(self) -> dict[str, Any]:
        """``bridge/info`` with every meter's status: the ``info`` answer."""
        ...


class Publish(Protocol):
    """Publish one answer (QoS and retain as given); False when nothing was sent."""

    def __call__(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, *,
                 on_ack: Callable[[], None] | None = None,
                 properties: dict[str, Any] | None = None) -> bool: ...


class StoreReadSource:
    """:class:`commands.ReadSource` over the SQLite store.

    The clock hours of *complete* days are kept in memory (least recently used first out,
    at most ``cache_days`` days), so that reading a month of hourly data again costs no
    aggregation; :meth:`forget` drops days whose load curve changed in the store.
    """

    def __init__(self, store: Store, cache_days: int = 4096, *,
                 pricing: Pricing | None = None) -> None:
        self.store = store
        self.cache_days = cache_days
        self.pricing = pricing
        self._hours: OrderedDict[tuple[str, Kind, date], HourlyDay] = OrderedDict()
        self._lock = threading.Lock()

    def daily_values(self, pdl: str, kind: Kind, start: date, end: date) -> dict[date, float]:
        return self.store.daily_values(pdl, kind, start, end)

    def max_power_values(self, pdl: str, start: date,
                         end: date) -> dict[date, tuple[float, datetime]]:
        return {d: (va, at if at is not None else day_bounds(d)[0])
                for d, (va, at) in self.store.max_power_values(pdl, start, end).items()}

    def hourly(self, pdl: str, kind: Kind, day: date) -> HourlyDay | None:
        key = (pdl, kind, day)
        with self._lock:
            held = self._hours.get(key)
            if held is not None:
                self._hours.move_to_end(key)
                return held
        h = self.store.hourly_day(pdl, kind, day)
        if not h.hours:
            return None
        if h.complete:
            with self._lock:
                self._hours[key] = h
                while len(self._hours) > self.cache_days:
                    self._hours.popitem(last=False)
        return h

    def breakdowns(self, pdl: str, kind: Kind, daily: Mapping[date, float]
                   ) -> dict[date, Breakdown] | None:
        return None if self.pricing is None else self.pricing.days(pdl, kind, daily)

    def hour_labels(self, pdl: str, kind: Kind, day: date
                    ) -> dict[datetime, dict[str, Any]] | None:
        return None if self.pricing is None else self.pricing.hour_labels(pdl, kind, day)

    def forget(self, pdl: str, kind: Kind, since: date) -> None:
        """The load curve of ``pdl``/``kind`` changed in the store from ``since`` on."""
        with self._lock:
            for key in [k for k in self._hours if k[0] == pdl and k[1] is kind
                        and k[2] >= since]:
                del self._hours[key]


class Throttled:
    """A log line for events a client can repeat at will: at most ``burst`` lines per
    ``period`` seconds, then one line saying how many were left out."""

    def __init__(self, level: int, burst: int = 5, period: float = 60.0) -> None:
        self.level = level
        self.burst = burst
        self.period = period
        self._lock = threading.Lock()
        self._window = -period
        self._logged = 0
        self._skipped = 0

    def log(self, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._window >= self.period:
                skipped = self._skipped
                self._window, self._logged, self._skipped = now, 0, 0
                if skipped:
                    log.log(self.level, "%d more like the line above in the last %.0f s "
                            "(not logged)", skipped, self.period)
            if self._logged >= self.burst:
                self._skipped += 1
                return
            self._logged += 1
        log.log(self.level, message, *args)


class CommandWorker:
    """Handles the requests of ``B/bridge/request/<command>`` in order, in its own thread."""

    def __init__(self, meters: Meters, source: StoreReadSource, publish: Publish,
                 clock: Clock, stopping: threading.Event, *, base: str,
                 policy: CommandPolicy, homeassistant: HomeAssistantConfig) -> None:
        self.meters = meters
        self.source = source
        self.publish = publish
        self.clock = clock
        self.stopping = stopping
        self.base = base
        self.policy = policy
        self.ha = homeassistant
        self.queue: queue.Queue[tuple[Incoming, int]] = queue.Queue(QUEUE_LIMIT)
        self._queued_bytes = 0
        self._queue_lock = threading.Lock()
        self._upstream_lock = threading.Lock()
        self._upstream_pending = 0
        self._retained_log = Throttled(logging.WARNING)
        self._topic_log = Throttled(logging.WARNING)
        self._busy_log = Throttled(logging.WARNING, burst=1)
        self._refused_log = Throttled(logging.INFO, burst=20)
        self._dropped_log = Throttled(logging.WARNING, burst=1)
        self._out_lock = threading.Lock()
        self._out_count = 0  # answers published, not acknowledged yet, and their size
        self._out_bytes = 0
        self.thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def curve_changed(self, pdl: str, kind: Kind, since: date) -> None:
        """The store's load curve of ``pdl``/``kind`` changed from ``since`` on (a poll)."""
        self.source.forget(pdl, kind, since)

    def submit(self, msg: Incoming) -> None:
        """Queue one request (the MQTT link's worker), or refuse it at once."""
        if self._ignored(msg):
            return
        if len(msg.payload) > self.policy.max_payload:
            self.refuse(msg, "too large")
            return
        size = (len(msg.topic) + len(msg.payload) + len(msg.response_topic or "")
                + len(msg.correlation_data or b""))
        with self._queue_lock:
            room = self._queued_bytes == 0 or self._queued_bytes + size <= QUEUE_BYTES
            if room:
                try:
                    self.queue.put_nowait((msg, size))
                except queue.Full:
                    room = False
                else:
                    self._queued_bytes += size
        if not room:
            self.refuse(msg, "busy")

    def refuse(self, msg: Incoming, reason: Overflow) -> None:
        """Answer a request that is not queued: too large, or no room. Quick and bounded
        (it may run on paho's network thread): nothing of the payload is parsed but its
        ends, searched for the transaction."""
        command = msg.topic.rsplit("/", 1)[-1]
        if self._ignored(msg) or not command:  # (no command name: ignored, as in handle)
            return
        transaction = commands.transaction_hint(msg.payload)
        if reason == "too large":
            refusal = commands.too_large(command, len(msg.payload), self.policy.max_payload,
                                         transaction)
            self._refused_log.log("request %s refused: %s", commands.shown(command),
                                  refusal.error)
            answer = commands.rejection_answer(refusal)
        else:
            self._busy_log.log("too many requests are waiting (at most %d, %d KiB): "
                               "refusing more, e.g. %s", QUEUE_LIMIT, QUEUE_BYTES // 1024,
                               commands.shown(command))
            answer = commands.error(
                "too many requests are waiting; try again in a moment", transaction)
        self._answer(msg, command, answer, wait=False)

    def _ignored(self, msg: Incoming) -> bool:
        """A retained request: the broker's stored copy, replayed at every connect."""
        if not msg.retain:
            return False
        self._retained_log.log(
            "ignoring the retained request on %s: requests must not be retained (the broker "
            "replays them at every connect); the bridge leaves it alone, its publisher "
            "should clear it (an empty retained message on that topic)",
            commands.shown(msg.topic, 120))
        return True

    def _run(self) -> None:
        stop = self.stopping
        while not stop.is_set():
            try:
                msg, size = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._queue_lock:
                self._queued_bytes -= size
            try:
                self.handle(msg)
            except Exception:
                log.exception("command on %s failed", commands.shown(msg.topic))

    # ---- one request -----------------------------------------------------------------

    def handle(self, msg: Incoming) -> None:
        command = msg.topic.rsplit("/", 1)[-1]
        if not command:
            log.info("ignoring a request on %s: no command name", commands.shown(msg.topic))
            return
        today = self.clock.now().astimezone(PARIS).date()
        req = commands.parse_request(command, msg.payload, pdls=self.meters.meter_views(),
                                     today=today, max_payload=self.policy.max_payload)
        problem = self._response_topic_problem(msg)
        if problem is not None:
            assert msg.response_topic is not None
            self._topic_log.log("request %s refused: its MQTT 5 response topic %s is not "
                                "allowed: %s", commands.shown(command),
                                commands.shown(msg.response_topic), problem)
            self._answer(msg, command, commands.error(
                f"response topic {commands.shown(msg.response_topic)} refused: "
                f"{problem}", req.transaction))
        elif isinstance(req, commands.Rejection):
            self._refused_log.log("request %s refused: %s", commands.shown(command),
                                  req.error)
            self._answer(msg, command, commands.rejection_answer(req))
        elif isinstance(req, commands.InfoRequest):
            self._answer(msg, command, commands.ok(self.meters.info(),
                                                   req.transaction))
        elif isinstance(req, commands.ReadRequest):
            self._read(msg, req)
        else:
            self._refresh(msg, req)

    def _take_upstream_slot(self, msg: Incoming, command: str, transaction: object) -> bool:
        """Reserve room for one request handed to an account thread, or refuse it."""
        with self._upstream_lock:
            if self._upstream_pending < UPSTREAM_LIMIT:
                self._upstream_pending += 1
                return True
        self._answer(msg, command, commands.error(
            f"too many requests are waiting for upstream data ({UPSTREAM_LIMIT}); "
            "try again once they are answered", transaction))
        return False

    def _release_upstream_slot(self) -> None:
        with self._upstream_lock:
            self._upstream_pending -= 1

    def _read(self, msg: Incoming, req: commands.ReadRequest) -> None:
        if not commands.missing_days(req, self.source):
            data = commands.build_read_data(req, self.source, splits=self.source)
            self._answer(msg, "read", commands.ok(data, req.transaction))
            return
        if not self._take_upstream_slot(msg, "read", req.transaction):
            return

        def fetch_then_answer() -> None:
            try:
                answer = fetch()
            except Exception as exc:
                log.exception("read of %s failed", req.pdl)
                answer = commands.error(f"the read failed: {type(exc).__name__}",
                                        req.transaction)
            finally:
                self._release_upstream_slot()
            self._answer(msg, "read", answer)

        def fetch() -> dict[str, Any]:
            # an earlier request may have fetched some of these days meanwhile
            missing = commands.missing_days(req, self.source)
            if not missing:
                data = commands.build_read_data(req, self.source, splits=self.source)
                return commands.ok(data, req.transaction)
            now = self.clock.now()
            series: Series = "curve" if req.step is Step.HOUR else "daily"
            outcome = self.meters.fetch_days(req.pdl, req.kind, series, missing, now)
            for (kind, changed_series), changed in outcome.changed.items():
                if changed_series == "curve" and changed:
                    self.source.forget(req.pdl, kind, min(changed))
            message = None
            if outcome.budget_retry_at is not None:
                left = commands.missing_days(req, self.source)
                message = commands.read_message_when_budget_exhausted(
                    left, datetime.fromtimestamp(outcome.budget_retry_at, PARIS))
            elif outcome.error is not None:
                message = f"some days could not be fetched: {outcome.error}"
            data = commands.build_read_data(req, self.source, message=message,
                                                splits=self.source)
            return commands.ok(data, req.transaction)

        self.meters.run_on_account(req.pdl, fetch_then_answer)

    def _refresh(self, msg: Incoming, req: commands.RefreshRequest) -> None:
        pdls = [req.pdl] if req.pdl else self.meters.pdls()
        polled: list[str] = []
        lock = threading.Lock()
        left = [len(pdls)]

        def one(pdl: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    self.meters.poll_now(pdl)
                    with lock:
                        polled.append(pdl)
                finally:
                    with lock:
                        left[0] -= 1
                        done = left[0] == 0
                    if done:
                        self._release_upstream_slot()
                        self._answer(msg, "refresh", commands.ok(
                            {"polled": sorted(polled)}, req.transaction))
            return run

        if not pdls:
            self._answer(msg, "refresh", commands.ok({"polled": []}, req.transaction))
            return
        if not self._take_upstream_slot(msg, "refresh", req.transaction):
            return
        for pdl in pdls:
            self.meters.run_on_account(pdl, one(pdl))

    # ---- answers ---------------------------------------------------------------------

    def _response_topic_problem(self, msg: Incoming) -> str | None:
        if msg.response_topic is None:
            return None
        return commands.response_topic_problem(
            msg.response_topic, base_topic=self.base,
            discovery_prefix=self.ha.discovery_prefix, status_topic=self.ha.status_topic,
            allowed=self.policy.response_topics)

    def connected(self) -> None:
        """A new broker session: acknowledgements of earlier answers may never come."""
        with self._out_lock:
            self._out_count = self._out_bytes = 0

    def _backlog_full(self) -> bool:
        with self._out_lock:
            return self._out_count >= ANSWER_BACKLOG or self._out_bytes >= ANSWER_BYTES

    def _publish_answer(self, topic: str, body: bytes,
                        properties: dict[str, Any] | None = None) -> None:
        size = len(topic) + len(body)

        def acked() -> None:
            with self._out_lock:
                self._out_count = max(0, self._out_count - 1)
                self._out_bytes = max(0, self._out_bytes - size)

        with self._out_lock:  # counted first: the acknowledgement may come at once
            self._out_count += 1
            self._out_bytes += size
        if not self.publish(topic, body, qos=1, retain=False, on_ack=acked,
                            properties=properties):
            acked()  # not sent (not connected): nothing to wait for

    def _answer(self, msg: Incoming, command: str, answer: dict[str, Any], *,
                wait: bool = True) -> None:
        if self._backlog_full():
            deadline = time.monotonic() + (ANSWER_WAIT if wait else 0.0)
            while self._backlog_full() and time.monotonic() < deadline:
                self.stopping.wait(0.01)
            if self._backlog_full():
                self._dropped_log.log(
                    "%d answers (%d KiB) are waiting for the broker's acknowledgement: the "
                    "answer to %s is not sent", self._out_count, self._out_bytes // 1024,
                    commands.shown(command))
                return
        body = commands.encode(answer)
        self._publish_answer(commands.response_topic(self.base, command), body)
        if msg.response_topic and self._response_topic_problem(msg) is None:
            props: dict[str, Any] = {"content_type": "application/json"}
            if msg.correlation_data is not None:
                props["correlation_data"] = msg.correlation_data
            self._publish_answer(msg.response_topic, body, props)
