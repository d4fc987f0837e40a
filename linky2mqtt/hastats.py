"""Home Assistant long-term statistics sink: hour-exact energy for the Energy dashboard.

MQTT sensors are recorded by Home Assistant when a value arrives, so yesterday's energy
lands in one lump this morning. This module places every hour where it belongs by writing
*external statistics* over Home Assistant's websocket API (``recorder/import_statistics``):

* one statistic per meter and kind: ``linky2mqtt:<pdl>_consumption`` / ``_production``,
  source ``linky2mqtt``, kWh, ``has_sum``, ``mean_type`` 0, ``unit_class`` ``energy``;
* one row per local clock hour (23 or 25 on DST days): ``start`` the local hour with its
  offset, ``state`` the hour's kWh, ``sum`` the running total in kWh.

It is incremental and idempotent. The bridge calls :meth:`StatisticsSink.notify` after it
stored new hourly data; that marks the statistic dirty from that hour on, persistently
(:class:`SyncState`, implemented by the SQLite store). :meth:`StatisticsSink.sync` then asks
Home Assistant for the running sum just before the dirty hour, recomputes every row from
there to the latest hour held, writes them in chunks (Home Assistant overwrites rows with
the same start) and marks the statistic clean. Sums therefore never restart at 0, stay
monotonic across runs, restarts and backfills, and nothing is sent when nothing is dirty.

``sync`` never raises and never touches MQTT: Home Assistant being down or refusing the
token leaves the statistic dirty for a later run (with a bounded backoff between
connection attempts). The access token never appears in logs or exception messages.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.sync.client import ClientConnection, connect

from linky2mqtt.clock import Clock
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


class HAError(Exception):
    """Home Assistant answered a command with ``success: false``."""

    def __init__(self, command: str, code: str, message: str) -> None:
        super().__init__(f"{command} failed: {code}: {message}")
        self.code = code


class HAAuthError(Exception):
    """Home Assistant refused the access token (``auth_invalid``)."""


class HAUnavailable(Exception):
    """Home Assistant could not be reached or the connection broke."""


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


def statistic_id(pdl: str, kind: Kind) -> str:
    """``linky2mqtt:<pdl>_consumption`` (Home Assistant: ``<source>:<object_id>``)."""
    if kind not in (Kind.CONSUMPTION, Kind.PRODUCTION):
        raise ValueError(f"no energy statistic for {kind}")
    return f"{SOURCE}:{pdl}_{kind.value}"


def default_name(pdl: str, kind: Kind) -> str:
    return f"Linky {pdl} {kind.value}"


def websocket_url(url: str) -> str:
    """``http(s)://host:port[/]`` -> ``ws(s)://host:port/api/websocket``; ws URLs as is."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        return url.strip()
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("Home Assistant URL must be http(s):// or ws(s)://")
    path = parts.path.rstrip("/") + "/api/websocket"
    return urllib.parse.urlunsplit(("ws" if scheme == "http" else "wss", parts.netloc, path, "", ""))


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


class HAConnection:
    """One authenticated websocket to Home Assistant, commands answered in order."""

    def __init__(self, ws_url: str, token: str, *, timeout: float) -> None:
        self._timeout = timeout
        self._next_id = 1
        try:
            self._ws: ClientConnection = connect(
                ws_url,
                open_timeout=timeout,
                close_timeout=2,
                max_size=None,
                proxy=None,
                compression=None,
                user_agent_header=f"{SOURCE} websockets",
            )
        except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as err:
            raise HAUnavailable(f"cannot connect to {_safe_url(ws_url)}: {_describe(err)}") from None
        try:
            first = self._recv()
            if first.get("type") != "auth_required":
                raise HAUnavailable(f"unexpected first message type {first.get('type')!r}")
            self._send({"type": "auth", "access_token": token})
            answer = self._recv()
            if answer.get("type") == "auth_invalid":
                message = str(answer.get("message", "")).replace(token, "***")
                raise HAAuthError(f"Home Assistant refused the access token: {message}")
            if answer.get("type") != "auth_ok":
                raise HAUnavailable(f"unexpected auth answer type {answer.get('type')!r}")
            self.ha_version = str(answer.get("ha_version", "?"))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            self._ws.close()
        except Exception:  # noqa: BLE001 - closing a broken socket may fail in many ways
            log.debug("statistics: error while closing the websocket", exc_info=True)

    def call(self, command: str, **payload: Any) -> Any:
        """Send one command, return its ``result``; HAError on ``success: false``."""
        mid = self._next_id
        self._next_id += 1
        self._send({"id": mid, "type": command, **payload})
        while True:
            msg = self._recv()
            if msg.get("id") != mid or msg.get("type") != "result":
                continue  # an event or a stale answer: not ours
            if not msg.get("success"):
                error = msg.get("error") or {}
                raise HAError(command, str(error.get("code")), str(error.get("message")))
            return msg.get("result")

    def _send(self, obj: dict[str, Any]) -> None:
        try:
            self._ws.send(json.dumps(obj, separators=(",", ":")))
        except (OSError, WebSocketException) as err:
            raise HAUnavailable(f"connection lost: {_describe(err)}") from None

    def _recv(self) -> dict[str, Any]:
        try:
            raw = self._ws.recv(timeout=self._timeout)
        except TimeoutError:
            raise HAUnavailable(f"no answer within {self._timeout:g} s") from None
        except (OSError, WebSocketException) as err:
            raise HAUnavailable(f"connection lost: {_describe(err)}") from None
        msg = json.loads(raw)
        if isinstance(msg, list):  # coalesced messages (never asked for; be tolerant)
            raise HAUnavailable("coalesced messages are not supported")
        if not isinstance(msg, dict):
            raise HAUnavailable("unexpected message")
        return msg


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
        backoff: Sequence[float] = (5.0, 30.0, 120.0, 600.0),
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
        self._backoff = tuple(backoff) or (0.0,)
        self._lock = threading.Lock()  # guards _series and _recent
        self._sync_lock = threading.Lock()  # one sync at a time
        self._series: dict[str, tuple[str, Kind]] = {}
        self._recent: dict[str, datetime] = {}  # notified while a sync runs
        self._conn: HAConnection | None = None
        self._failures = 0
        self._retry_at = 0.0
        for pdl, kind in series:
            self.track(pdl, kind)

    # -- bridge side -------------------------------------------------------------------

    def track(self, pdl: str, kind: Kind) -> str:
        sid = statistic_id(pdl, kind)
        with self._lock:
            self._series[sid] = (pdl, kind)
        return sid

    def notify(self, pdl: str, kind: Kind, since: datetime) -> None:
        """New or changed hourly data from ``since`` on: rewrite from there at next sync."""
        if since.tzinfo is None:
            raise ValueError("since must be an aware datetime")
        sid = self.track(pdl, kind)
        start = floor_hour(since)
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
            except Exception as err:  # noqa: BLE001 - must never raise into the bridge
                self._disconnect()
                message = f"unexpected error: {_describe(err)}".replace(self._token, "***")
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
        for sid, since in dirty.items():
            pdl, kind = self._series[sid]
            with self._lock:
                self._recent.pop(sid, None)
            while True:
                reused = self._conn is not None  # may have died while idle: retry once
                try:
                    written, sent = self._import_one(sid, pdl, kind, since)
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

    def _import_one(self, sid: str, pdl: str, kind: Kind, since: datetime) -> tuple[int, int]:
        conn = self._connection()
        end = floor_hour(self._clock.now()) + HOUR
        hours = self._hours(pdl, kind, since, end) if since < end else []
        base = self._sum_before(conn, sid, since)
        rows = build_rows(hours, since, base)
        metadata = {
            "source": SOURCE,
            "statistic_id": sid,
            "name": self._name_for(pdl, kind),
            "unit_of_measurement": "kWh",
            "unit_class": "energy",
            "has_mean": False,
            "mean_type": 0,
            "has_sum": True,
        }
        calls = 0
        for i in range(0, len(rows), self._chunk):
            conn.call("recorder/import_statistics", metadata=metadata, stats=rows[i : i + self._chunk])
            calls += 1
        return len(rows), calls

    def _sum_before(self, conn: HAConnection, sid: str, since: datetime) -> float:
        """The ``sum`` of the last row Home Assistant holds before ``since`` (0 if none)."""
        common: dict[str, Any] = {
            "end_time": since.isoformat(),
            "statistic_ids": [sid],
            "types": ["sum"],
            "units": {"energy": "kWh"},
        }
        for start, period in ((since - LOOKBACK, "hour"), (EPOCH_SEARCH, "month")):
            result = conn.call(
                "recorder/statistics_during_period",
                start_time=start.isoformat(),
                period=period,
                **common,
            )
            rows = [r for r in (result or {}).get(sid, []) if r.get("sum") is not None]
            if rows:
                return float(rows[-1]["sum"])
        return 0.0

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


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _safe_url(url: str) -> str:
    """The URL without userinfo or query (where a token could hide)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
