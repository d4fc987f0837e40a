"""The statistics sink: dirty marks in, hour-exact external statistics out.

See the package docstring for the behaviour; this module holds :class:`StatisticsSink`,
the :class:`SyncState` protocol (the SQLite store implements it), :class:`MemorySyncState`
and the pure row builder :func:`build_rows`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from linky2mqtt.clock import Clock
from linky2mqtt.ha_statistics.client import (
    HAAuthError,
    HAConnection,
    HAError,
    HAUnavailable,
    describe,
    websocket_url,
)
from linky2mqtt.model import Kind, kwh, local_iso

log = logging.getLogger(__name__)

SOURCE = "linky2mqtt"
HOUR = timedelta(hours=1)
#: how far before a dirty hour the sum to continue from is first looked for
LOOKBACK = timedelta(days=3)
#: start of the fallback search for an older sum (``period: month``)
EPOCH_SEARCH = datetime(2000, 1, 1, tzinfo=UTC)

HoursSource = Callable[[str, Kind, datetime, datetime], list[tuple[datetime, float]]]
NameFor = Callable[[str, Kind], str]
# Tariff parts of a series (``hp``, ``hc``, ``cost_hp``...; see statistic_id) and their
# hourly values, in thousandths of the unit (Wh for energy, thousandths of EUR for costs)
PartsFor = Callable[[str, Kind], tuple[str, ...]]
PartsSource = Callable[[str, Kind, str, datetime, datetime], list[tuple[datetime, float]]]
COST = "cost_"


class SyncState(Protocol):
    """Where the dirty marks live (the SQLite store implements it)."""

    def stats_dirty_since(self, statistic_id: str) -> datetime | None: ...

    def stats_mark_dirty(self, statistic_id: str, since: datetime) -> None:
        """Mark dirty from ``since`` on; keeps the earliest mark."""
        ...

    def stats_mark_clean(self, statistic_id: str) -> None: ...


class MemorySyncState:
    """In-memory :class:`SyncState` (tests, or a bridge without a store)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirty: dict[str, datetime] = {}

    def stats_dirty_since(self, statistic_id: str) -> datetime | None:
        with self._lock:
            return self._dirty.get(statistic_id)

    def stats_mark_dirty(self, statistic_id: str, since: datetime) -> None:
        with self._lock:
            old = self._dirty.get(statistic_id)
            self._dirty[statistic_id] = since if old is None else min(old, since)

    def stats_mark_clean(self, statistic_id: str) -> None:
        with self._lock:
            self._dirty.pop(statistic_id, None)


@dataclass(frozen=True)
class SyncReport:
    """What one :meth:`StatisticsSink.sync` did."""

    rows: dict[str, int] = field(default_factory=dict)  # statistic_id -> rows written
    calls: int = 0  # recorder/import_statistics commands sent
    pending: tuple[str, ...] = ()  # statistic ids still dirty afterwards
    error: str | None = None  # why some work was left (never holds the token)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.pending


def statistic_id(pdl: str, kind: Kind, part: str = "") -> str:
    """``linky2mqtt:<pdl>_consumption`` (Home Assistant: ``<source>:<object_id>``); a tariff
    period's energy ``linky2mqtt:<pdl>_consumption_hc``, its cost ``linky2mqtt:<pdl>_cost_hc``."""
    if kind not in (Kind.CONSUMPTION, Kind.PRODUCTION):
        raise ValueError(f"no energy statistic for {kind}")
    if part.startswith(COST):
        return f"{SOURCE}:{pdl}_{part}"
    return f"{SOURCE}:{pdl}_{kind.value}" + (f"_{part}" if part else "")


def default_name(pdl: str, kind: Kind) -> str:
    return f"Linky {pdl} {kind.value}"


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def build_rows(
    hours: Iterable[tuple[datetime, float]], since: datetime, base_sum: float
) -> list[dict[str, Any]]:
    """Rows from ``since`` on: ``state`` the hour's kWh, ``sum`` ``base_sum`` + running kWh.

    The running total is accumulated in Wh and rounded once per row, so rewriting the same
    hours from the same base gives bit-identical rows.
    """
    by_start: dict[datetime, float] = {}
    for start, wh in hours:
        utc = start.astimezone(UTC)
        if utc < since:
            continue
        if utc != floor_hour(utc):
            log.warning("statistics: ignoring hour not on the hour: %s", utc.isoformat())
            continue
        by_start[utc] = float(wh)
    rows: list[dict[str, Any]] = []
    total_wh = 0.0
    for utc in sorted(by_start):
        total_wh += by_start[utc]
        rows.append(
            {
                "start": local_iso(utc),
                "state": kwh(by_start[utc]),
                "sum": round(base_sum + total_wh / 1000.0, 6),
            }
        )
    return rows


class StatisticsSink:
    """Imports hourly energy into Home Assistant as external long-term statistics.

    ``hours_source(pdl, kind, start_utc, end_utc)`` returns the hourly energy held for
    ``[start, end)`` as ``(start_utc, wh)`` pairs. ``series`` lists the (pdl, kind) the
    bridge handles, so marks left dirty by a previous process are picked up after a restart
    (:meth:`notify` and :meth:`track` add to it).
    """

    def __init__(
        self,
        url: str,
        token: str,
        state: SyncState,
        clock: Clock,
        *,
        hours_source: HoursSource,
        series: Iterable[tuple[str, Kind]] = (),
        chunk_size: int = 1000,
        name_for: NameFor = default_name,
        timeout: float = 30.0,
        confirm_timeout: float = 30.0,
        backoff: Sequence[float] = (5.0, 30.0, 120.0, 600.0),
        parts_for: PartsFor | None = None,
        parts_source: PartsSource | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if not token:
            raise ValueError("a Home Assistant access token is required")
        self._ws_url = websocket_url(url)
        self._token = token
        self._state = state
        self._clock = clock
        self._hours = hours_source
        self._chunk = chunk_size
        self._name_for = name_for
        self._timeout = timeout
        self._confirm_timeout = confirm_timeout
        self._backoff = tuple(backoff) or (0.0,)
        self._lock = threading.Lock()  # guards _series and _recent
        self._sync_lock = threading.Lock()  # one sync at a time
        self._parts_for = parts_for
        self._parts = parts_source
        self._series: dict[str, tuple[str, Kind, str]] = {}
        self._recent: dict[str, datetime] = {}  # notified while a sync runs
        self._conn: HAConnection | None = None
        self._failures = 0
        self._retry_at = 0.0
        for pdl, kind in series:
            self.track(pdl, kind)

    # -- bridge side -------------------------------------------------------------------

    def track(self, pdl: str, kind: Kind) -> list[str]:
        """Follow a series (and its tariff parts); its statistic ids."""
        parts = self._parts_for(pdl, kind) if self._parts_for and self._parts else ()
        sids = []
        with self._lock:
            for part in ("", *parts):
                sid = statistic_id(pdl, kind, part)
                self._series[sid] = (pdl, kind, part)
                sids.append(sid)
        return sids

    def notify(self, pdl: str, kind: Kind, since: datetime) -> None:
        """New or changed hourly data from ``since`` on: rewrite from there at next sync."""
        if since.tzinfo is None:
            raise ValueError("since must be an aware datetime")
        start = floor_hour(since)
        for sid in self.track(pdl, kind):
            with self._lock:
                self._state.stats_mark_dirty(sid, start)
                old = self._recent.get(sid)
                self._recent[sid] = start if old is None else min(old, start)

    def close(self) -> None:
        with self._sync_lock:
            self._disconnect()

    # -- the work ----------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Import every dirty statistic. Never raises; what fails stays dirty."""
        with self._sync_lock:
            try:
                return self._sync()
            except Exception as err:
                self._disconnect()
                message = f"unexpected error: {describe(err)}".replace(self._token, "***")
                log.exception("statistics: %s", message)
                return SyncReport(pending=self._pending(), error=message)

    def _sync(self) -> SyncReport:
        dirty = self._dirty()
        if not dirty:
            return SyncReport()
        if self._clock.time() < self._retry_at:
            log.debug("statistics: Home Assistant retry not due yet")
            return SyncReport(pending=tuple(dirty), error="waiting before reconnecting")
        rows_done: dict[str, int] = {}
        calls = 0
        error: str | None = None
        for sid in dirty:
            pdl, kind, part = self._series[sid]
            with self._lock:  # from here on, a notify() is remembered in _recent
                self._recent.pop(sid, None)
                marked = self._state.stats_dirty_since(sid)
            if marked is None:
                continue
            since = floor_hour(marked)
            while True:
                reused = self._conn is not None  # may have died while idle: retry once
                try:
                    written, sent = self._import_one(sid, pdl, kind, since, part)
                    break
                except HAUnavailable as err:
                    self._disconnect()
                    if not reused:
                        return self._down(str(err), rows_done, calls)
                except HAAuthError as err:
                    self._disconnect()
                    return self._down(str(err), rows_done, calls, auth=True)
                except HAError as err:
                    error = f"{sid}: {err}"
                    if err.code == "not_confirmed":
                        log.warning("statistics: %s; kept for the next run", error)
                    else:
                        log.error("statistics: Home Assistant rejected %s", error)
                    written = sent = -1
                    break
            if written < 0:
                continue
            calls += sent
            rows_done[sid] = written
            with self._lock:
                self._state.stats_mark_clean(sid)
                newer = self._recent.pop(sid, None)
                if newer is not None:
                    self._state.stats_mark_dirty(sid, newer)
            log.info("statistics: %s: %d rows written from %s", sid, written, local_iso(since))
        return SyncReport(rows=rows_done, calls=calls, pending=self._pending(), error=error)

    def _import_one(self, sid: str, pdl: str, kind: Kind, since: datetime,
                    part: str = "") -> tuple[int, int]:
        conn = self._connection()
        end = floor_hour(self._clock.now()) + HOUR
        source = self._hours
        if part and self._parts is not None:
            parts = self._parts
            source = lambda p, k, s, e: parts(p, k, part, s, e)  # noqa: E731
        hours = source(pdl, kind, since, end) if since < end else []
        base = self._sum_before(conn, sid, since)
        rows = build_rows(hours, since, base)
        cost = part.startswith(COST)
        name = self._name_for(pdl, kind)
        if part:
            label = part[len(COST):] if cost else part
            name = f"{name} {label.upper().replace('_', ' ')}" + (" (costs)" if cost else "")
        metadata = {
            "source": SOURCE,
            "statistic_id": sid,
            "name": name,
            "unit_of_measurement": "EUR" if cost else "kWh",
            "unit_class": None if cost else "energy",
            "has_mean": False,
            "mean_type": 0,
            "has_sum": True,
        }
        calls = 0
        for i in range(0, len(rows), self._chunk):
            conn.call(
                "recorder/import_statistics", metadata=metadata, stats=rows[i : i + self._chunk]
            )
            calls += 1
        if rows and not self._confirm(conn, sid, rows[-1]):
            raise HAError(
                "recorder/import_statistics", "not_confirmed",
                f"last row not readable after {self._confirm_timeout:g} s",
            )  # fmt: skip
        return len(rows), calls

    def _sum_before(self, conn: HAConnection, sid: str, since: datetime) -> float:
        """The ``sum`` of the last row Home Assistant holds before ``since`` (0 if none).

        First the hours of the last few days; if empty, monthly rows from 2000 on. Home
        Assistant reduces a month over all its hours, past ``end_time`` too, so the month
        holding ``since`` is searched hour by hour, and an older month gives its last sum.
        """
        rows = self._query(conn, sid, since - LOOKBACK, since, "hour")
        if rows:
            return float(rows[-1]["sum"])
        since_ms = since.timestamp() * 1000
        months = [r for r in self._query(conn, sid, EPOCH_SEARCH, since, "month")
                  if r["start"] < since_ms]  # fmt: skip
        if months and months[-1]["end"] > since_ms:
            month_start = datetime.fromtimestamp(months.pop()["start"] / 1000, UTC)
            rows = self._query(conn, sid, month_start, since, "hour")
            if rows:
                return float(rows[-1]["sum"])
        return float(months[-1]["sum"]) if months else 0.0

    def _query(
        self, conn: HAConnection, sid: str, start: datetime, end: datetime, period: str
    ) -> list[dict[str, Any]]:
        result = conn.call(
            "recorder/statistics_during_period",
            start_time=start.isoformat(),
            end_time=end.isoformat(),
            statistic_ids=[sid],
            period=period,
            types=["sum"],
            units={"energy": "kWh"},
        )
        rows = (result or {}).get(sid, [])
        return [r for r in rows if r.get("sum") is not None and r.get("start") is not None]

    def _confirm(self, conn: HAConnection, sid: str, last: dict[str, Any]) -> bool:
        """Wait until Home Assistant shows the last row written (its import is queued).

        The next sync continues from what Home Assistant holds, so a statistic is marked
        clean only once its newest row is readable with the sum just written.
        """
        start = datetime.fromisoformat(last["start"])
        deadline = time.monotonic() + self._confirm_timeout
        while True:
            rows = self._query(conn, sid, start, start + HOUR, "hour")
            if rows and abs(float(rows[-1]["sum"]) - last["sum"]) < 1e-6:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    # -- connection --------------------------------------------------------------------

    def _connection(self) -> HAConnection:
        if self._conn is None:
            self._conn = HAConnection(self._ws_url, self._token, timeout=self._timeout)
            if self._failures:
                log.info("statistics: Home Assistant reachable again")
            self._failures = 0
            self._retry_at = 0.0
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _down(
        self, reason: str, rows: dict[str, int], calls: int, *, auth: bool = False
    ) -> SyncReport:
        reason = reason.replace(self._token, "***")
        delay = self._backoff[min(self._failures, len(self._backoff) - 1)]
        if auth:
            delay = self._backoff[-1]
        self._failures += 1
        self._retry_at = self._clock.time() + delay
        if auth:
            log.error("statistics: %s; check homeassistant.statistics.token", reason)
        elif self._failures == 1:
            log.warning(
                "statistics: Home Assistant unavailable (%s); will retry, data kept", reason
            )
        else:
            log.debug("statistics: Home Assistant still unavailable (%s)", reason)
        return SyncReport(rows=rows, calls=calls, pending=self._pending(), error=reason)

    # -- dirty bookkeeping -------------------------------------------------------------

    def _dirty(self) -> dict[str, datetime]:
        with self._lock:
            ids = sorted(self._series)
        out: dict[str, datetime] = {}
        for sid in ids:
            since = self._state.stats_dirty_since(sid)
            if since is not None:
                out[sid] = floor_hour(since)
        return out

    def _pending(self) -> tuple[str, ...]:
        return tuple(self._dirty())
