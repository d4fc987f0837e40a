"""The command topic at work: requests in, answers out, off the paho network thread.

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

Answers go to ``B/bridge/response/<command>`` (QoS 1, not retained) and, under MQTT 5,
also to the request's ResponseTopic with its CorrelationData and content type JSON.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from linky2mqtt import commands
from linky2mqtt.enedis import Priority
from linky2mqtt.model import PARIS, Kind, Step, day_bounds
from linky2mqtt.mqtt import Incoming
from linky2mqtt.poller import SeriesName
from linky2mqtt.store import Store

if TYPE_CHECKING:
    from linky2mqtt.bridge import Bridge

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256
# Requests handed to account threads (reads that need upstream data, refreshes) and not
# answered yet; beyond this, new ones are refused at once rather than queued without limit.
UPSTREAM_LIMIT = 64


HourlyDay = tuple[list[tuple[datetime, datetime, float]], bool]


class StoreReadSource:
    """:class:`commands.ReadSource` over the SQLite store.

    The clock hours of *complete* days are kept in memory (least recently used first out,
    at most ``cache_days`` days), so that reading a month of hourly data again costs no
    aggregation; :meth:`forget` drops days whose load curve changed in the store.
    """

    def __init__(self, store: Store, cache_days: int = 4096) -> None:
        self.store = store
        self.cache_days = cache_days
        self._hours: OrderedDict[tuple[str, Kind, date], list[tuple[datetime, datetime, float]]]
        self._hours = OrderedDict()
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
                return held, True
        h = self.store.hourly_day(pdl, kind, day)
        if not h.hours:
            return None
        hours = [(x.start, x.end, x.wh) for x in h.hours]
        if h.complete:
            with self._lock:
                self._hours[key] = hours
                while len(self._hours) > self.cache_days:
                    self._hours.popitem(last=False)
        return hours, h.complete

    def forget(self, pdl: str, kind: Kind, since: date) -> None:
        """The load curve of ``pdl``/``kind`` changed in the store from ``since`` on."""
        with self._lock:
            for key in [k for k in self._hours if k[0] == pdl and k[1] is kind
                        and k[2] >= since]:
                del self._hours[key]


class CommandService:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.base = bridge.base
        self.source = StoreReadSource(bridge.store)
        self.queue: queue.Queue[Incoming] = queue.Queue(QUEUE_LIMIT)
        self._upstream_lock = threading.Lock()
        self._upstream_pending = 0
        self.thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def curve_changed(self, pdl: str, kind: Kind, since: date) -> None:
        """The store's load curve of ``pdl``/``kind`` changed from ``since`` on (a poll)."""
        self.source.forget(pdl, kind, since)

    def submit(self, msg: Incoming) -> None:
        try:
            self.queue.put_nowait(msg)
        except queue.Full:
            command = msg.topic.rsplit("/", 1)[-1]
            self._answer(msg, command, commands.error(
                command, "too many requests are waiting; try again in a moment"))

    def _run(self) -> None:
        stop = self.bridge.stopping
        while not stop.is_set():
            try:
                msg = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.handle(msg)
            except Exception:
                log.exception("command on %s failed", msg.topic)

    # ---- one request -----------------------------------------------------------------

    def handle(self, msg: Incoming) -> None:
        command = msg.topic.rsplit("/", 1)[-1]
        if not command:
            log.info("ignoring a request on %s: no command name", msg.topic)
            return
        today = self.bridge.clock.now().astimezone(PARIS).date()
        req = commands.parse_request(command, msg.payload, pdls=self.bridge.meter_views(),
                                     today=today)
        if isinstance(req, commands.Rejection):
            log.info("request %s refused: %s", command, req.error)
            self._answer(msg, command, commands.rejection_answer(req))
        elif isinstance(req, commands.InfoRequest):
            self._answer(msg, command, commands.ok(command, self.bridge.info_with_status(),
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
            command, f"too many requests are waiting for upstream data ({UPSTREAM_LIMIT}); "
            "try again once they are answered", transaction))
        return False

    def _release_upstream_slot(self) -> None:
        with self._upstream_lock:
            self._upstream_pending -= 1

    def _read(self, msg: Incoming, req: commands.ReadRequest) -> None:
        if not commands.missing_days(req, self.source):
            data = commands.build_read_data(req, self.source)
            self._answer(msg, "read", commands.ok("read", data, req.transaction))
            return
        if not self._take_upstream_slot(msg, "read", req.transaction):
            return

        def fetch_then_answer() -> None:
            try:
                answer = fetch()
            except Exception as exc:
                log.exception("read of %s failed", req.pdl)
                answer = commands.error("read", f"the read failed: {type(exc).__name__}",
                                        req.transaction)
            finally:
                self._release_upstream_slot()
            self._answer(msg, "read", answer)

        def fetch() -> dict[str, Any]:
            # an earlier request may have fetched some of these days meanwhile
            missing = commands.missing_days(req, self.source)
            if not missing:
                return commands.ok("read", commands.build_read_data(req, self.source),
                                   req.transaction)
            now = self.bridge.clock.now()
            poller = self.bridge.poller_for(req.pdl)
            series: SeriesName = "curve" if req.step is Step.HOUR else "daily"
            outcome = poller.fetch_days(req.kind, series, missing, now, Priority.COMMAND)
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
            data = commands.build_read_data(req, self.source, message=message)
            return commands.ok("read", data, req.transaction)

        self.bridge.run_on_account(req.pdl, fetch_then_answer)

    def _refresh(self, msg: Incoming, req: commands.RefreshRequest) -> None:
        pdls = [req.pdl] if req.pdl else self.bridge.all_pdls()
        polled: list[str] = []
        lock = threading.Lock()
        left = [len(pdls)]

        def one(pdl: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    self.bridge.poll_meter_now(pdl)
                    with lock:
                        polled.append(pdl)
                finally:
                    with lock:
                        left[0] -= 1
                        done = left[0] == 0
                    if done:
                        self._release_upstream_slot()
                        self._answer(msg, "refresh", commands.ok(
                            "refresh", {"polled": sorted(polled)}, req.transaction))
            return run

        if not pdls:
            self._answer(msg, "refresh", commands.ok("refresh", {"polled": []},
                                                     req.transaction))
            return
        if not self._take_upstream_slot(msg, "refresh", req.transaction):
            return
        for pdl in pdls:
            self.bridge.run_on_account(pdl, one(pdl))

    # ---- answers ---------------------------------------------------------------------

    def _answer(self, msg: Incoming, command: str, answer: dict[str, Any]) -> None:
        body = commands.encode(answer)
        link = self.bridge.link
        link.publish(commands.response_topic(self.base, command), body, qos=1, retain=False)
        if msg.response_topic and not any(c in msg.response_topic for c in "+#\0"):
            props: dict[str, Any] = {"content_type": "application/json"}
            if msg.correlation_data is not None:
                props["correlation_data"] = msg.correlation_data
            link.publish(msg.response_topic, body, qos=1, retain=False, properties=props)
