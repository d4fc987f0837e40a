"""The statistics thread: runs :meth:`StatisticsSink.sync` off the MQTT and account threads.

The account threads call :meth:`StatisticsWorker.notify` when a load curve changed in the
store; the worker waits until the notices settle (a backfill stores its windows one after
the other), then syncs; it also retries what is still dirty every :attr:`PERIOD` seconds.
:func:`store_hours` is the sink's source of hourly energy: the clock hours of the load
curve the SQLite store holds.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, datetime

from linky2mqtt.ha_statistics.sink import HoursSource, StatisticsSink
from linky2mqtt.model import Kind, Reading, aggregate_hours
from linky2mqtt.store import Store

log = logging.getLogger(__name__)


def store_hours(store: Store) -> HoursSource:
    """Hourly energy held for ``[start, end)``: what the statistics import sends."""

    def hours(pdl: str, kind: Kind, start: datetime,
              end: datetime) -> list[tuple[datetime, float]]:
        readings = store.readings(pdl, kind, "curve", start, end)
        by_day: dict[date, list[Reading]] = {}
        for r in readings:
            by_day.setdefault(r.local_date, []).append(r)
        out: list[tuple[datetime, float]] = []
        for day in sorted(by_day):
            for h in aggregate_hours(by_day[day], day).hours:
                if start <= h.start < end:
                    out.append((h.start, h.wh))
        return out

    return hours


class StatisticsWorker:
    """Runs the Home Assistant statistics import in its own thread, never blocking MQTT."""

    PERIOD = 600.0  # also retry what is still dirty this often
    # A backfill stores its hours window by window, newest first: wait until the notices
    # stop for SETTLE seconds (MAX_SETTLE at most) so that each hour is written once,
    # not once per window.
    SETTLE = 3.0
    MAX_SETTLE = 120.0

    def __init__(self, sink: StatisticsSink, stopping: threading.Event) -> None:
        self.sink = sink
        self.stopping = stopping
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ha-statistics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def notify(self, pdl: str, kind: Kind, since: datetime) -> None:
        self.sink.notify(pdl, kind, since)
        self.wake.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._settle()
            if self.stopping.is_set():
                break
            report = self.sink.sync()
            if report.error:  # the sink logged the failure itself, once per attempt
                log.debug("Home Assistant statistics: %s", report.error)
            self.wake.wait(self.PERIOD)

    def _settle(self) -> None:
        """Return once no notice came for SETTLE seconds (or after MAX_SETTLE)."""
        deadline = time.monotonic() + self.MAX_SETTLE
        while (not self.stopping.is_set() and self.wake.is_set()
               and time.monotonic() < deadline):
            self.wake.clear()
            self.wake.wait(self.SETTLE)

    def stop(self, timeout: float = 10.0) -> None:
        self.wake.set()
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.sink.close()
