"""The command topic at work: requests in, answers out, off the paho network thread.

``B/bridge/request/<command>`` messages are queued (bounded: a flood is refused with an
error answer, never buffered without limit) and handled in order by one worker thread:

* validation first (:func:`commands.parse_request`): no invalid request ever reaches the
  upstream client;
* ``info`` and a ``read`` the store can answer are answered at once;
* a ``read`` that lacks days, and ``refresh``, are handed to the meter's account thread,
  which runs them after its due polls (command priority is below the daily polls) and
  answers when done; so a slow read never delays the next request's answer.

Answers go to ``B/bridge/response/<command>`` (QoS 1, not retained) and, under MQTT 5,
also to the request's ResponseTopic with its CorrelationData and content type JSON.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from linky2mqtt import commands
from linky2mqtt.enedis import Priority, aggregate_hours
from linky2mqtt.model import PARIS, Kind, Step, day_bounds
from linky2mqtt.mqtt import Incoming
from linky2mqtt.poller import SeriesName
from linky2mqtt.store import Store

if TYPE_CHECKING:
    from linky2mqtt.bridge import Bridge

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256


class StoreReadSource:
    """:class:`commands.ReadSource` over the SQLite store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def daily_values(self, pdl: str, kind: Kind, start: date, end: date) -> dict[date, float]:
        return self.store.daily_values(pdl, kind, start, end)

    def max_power_values(self, pdl: str, start: date,
                         end: date) -> dict[date, tuple[float, datetime]]:
        return {d: (va, at if at is not None else day_bounds(d)[0])
                for d, (va, at) in self.store.max_power_values(pdl, start, end).items()}

    def hourly(self, pdl: str, kind: Kind,
               day: date) -> tuple[list[tuple[datetime, datetime, float]], bool] | None:
        start, end = day_bounds(day)
        readings = self.store.readings(pdl, kind, "curve", start, end)
        if not readings:
            return None
        h = aggregate_hours(readings, day)
        return [(x.start, x.end, x.wh) for x in h.hours], h.complete


class CommandService:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.base = bridge.base
        self.source = StoreReadSource(bridge.store)
        self.queue: queue.Queue[Incoming] = queue.Queue(QUEUE_LIMIT)
        self.thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self.thread.start()

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

    def _read(self, msg: Incoming, req: commands.ReadRequest) -> None:
        missing = commands.missing_days(req, self.source)
        if not missing:
            data = commands.build_read_data(req, self.source)
            self._answer(msg, "read", commands.ok("read", data, req.transaction))
            return

        def fetch_then_answer() -> None:
            now = self.bridge.clock.now()
            poller = self.bridge.poller_for(req.pdl)
            series: SeriesName = "curve" if req.step is Step.HOUR else "daily"
            outcome = poller.fetch_days(req.kind, series, missing, now, Priority.COMMAND)
            message = None
            if outcome.budget_retry_at is not None:
                left = commands.missing_days(req, self.source)
                message = commands.read_message_when_budget_exhausted(
                    left, datetime.fromtimestamp(outcome.budget_retry_at, PARIS))
            elif outcome.error is not None:
                message = f"some days could not be fetched: {outcome.error}"
            data = commands.build_read_data(req, self.source, message=message)
            self._answer(msg, "read", commands.ok("read", data, req.transaction))

        self.bridge.run_on_account(req.pdl, fetch_then_answer)

    def _refresh(self, msg: Incoming, req: commands.RefreshRequest) -> None:
        pdls = [req.pdl] if req.pdl else self.bridge.all_pdls()
        polled: list[str] = []
        lock = threading.Lock()
        left = [len(pdls)]

        def one(pdl: str) -> Callable[[], None]:
            def run() -> None:
                self.bridge.poll_meter_now(pdl)
                with lock:
                    polled.append(pdl)
                    left[0] -= 1
                    done = left[0] == 0
                if done:
                    self._answer(msg, "refresh", commands.ok(
                        "refresh", {"polled": sorted(polled)}, req.transaction))
            return run

        if not pdls:
            self._answer(msg, "refresh", commands.ok("refresh", {"polled": []},
                                                     req.transaction))
        for pdl in pdls:
            self.bridge.run_on_account(pdl, one(pdl))

    # ---- answers ---------------------------------------------------------------------

    def _answer(self, msg: Incoming, command: str, answer: dict[str, Any]) -> None:
        body = commands.encode(answer)
        link = self.bridge.link
        link.publish(commands.response_topic(self.base, command), body, qos=1, retain=False)
        if msg.response_topic:
            props: dict[str, Any] = {"content_type": "application/json"}
            if msg.correlation_data is not None:
                props["correlation_data"] = msg.correlation_data
            link.publish(msg.response_topic, body, qos=1, retain=False, properties=props)
