"""SQLite storage: readings, gaps, the request ledger, and what was published.

One file (standard-library ``sqlite3``), WAL journal, one connection guarded by one lock,
so any thread may call any method. Every write is committed before the method returns:
data fetched is on disk before anyone publishes it.

Tables (schema version in ``PRAGMA user_version``, upgraded at open by ``MIGRATIONS``):

* ``readings``        one row per (pdl, kind, resolution, UTC start): the repeated hour of
                      the October DST change survives as two distinct starts;
* ``gaps``            days that came back without data, with the attempts made so far;
* ``requests``        the request ledger behind the budgets (pruned after two days);
* ``pending_batches`` hourly batches not yet acknowledged by the broker, one per
                      (topic, local date): a newer batch for a day replaces the older one;
* ``retained``        the last retained payload of each topic, for republishing;
* ``announced``       meters whose Home Assistant discovery was published;
* ``stats_sync``      Home Assistant statistics that need importing again, from when;
* ``repairs``         days to fetch once more: when a store written before version 4 is
                      opened, every stored DST-change day whose load curve does not tile
                      the day exactly (interval count and instants), and every day holding
                      a value no meter produces, is listed here;
* ``tempo_days``      Tempo colours by the date their 06:00-06:00 day starts (NULL: not
                      known yet, asked again; a known colour is never replaced by NULL).
* ``contract_checks`` when each meter's contract was last asked and whether there was
                      one (a 404 is remembered too: asked again after
                      ``contract_refresh_days``).

Every :mod:`sqlite3` failure (disk full, read-only file, locked, corrupt) surfaces as a
:class:`StoreError` naming the file; a failed write is rolled back, never half-applied.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from linky2mqtt import plausible
from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.errors import Linky2MqttError
from linky2mqtt.model import (
    DAILY,
    PARIS,
    HourlyDay,
    HourTotals,
    Kind,
    Reading,
    Series,
    day_bounds,
    epoch_bounds,
    resolution_minutes,
    resolution_seconds,
    totals_of_rows,
)

__all__ = ["LEDGER_KEEP_SECONDS", "MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

# Ledger entries older than this are pruned: no budget window is longer than a day.
LEDGER_KEEP_SECONDS = 2 * 86400.0
_PRUNE_EVERY_SECONDS = 3600.0
BUSY_TIMEOUT_MS = 10_000
CACHE_KIB = 512  # SQLite page cache per connection (its default: 2,000 KiB)

# Ordered migrations: MIGRATIONS[i] brings the schema from version i to version i + 1.
# Append new ones at the end; never edit one that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: readings, gaps, request ledger
    (
        """CREATE TABLE readings (
            pdl TEXT NOT NULL,
            kind TEXT NOT NULL,
            resolution TEXT NOT NULL,
            start_utc INTEGER NOT NULL,
            value REAL NOT NULL,
            quality TEXT,
            peak_at INTEGER,
            fetched_at REAL NOT NULL,
            PRIMARY KEY (pdl, kind, resolution, start_utc)
        ) WITHOUT ROWID""",
        """CREATE TABLE gaps (
            pdl TEXT NOT NULL,
            kind TEXT NOT NULL,
            series TEXT NOT NULL,
            day TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            last_attempt REAL NOT NULL,
            PRIMARY KEY (pdl, kind, series, day)
        ) WITHOUT ROWID""",
        "CREATE TABLE requests (scope TEXT NOT NULL, at REAL NOT NULL)",
        "CREATE INDEX requests_scope_at ON requests (scope, at)",
    ),
    # 2: publication state
    (
        """CREATE TABLE pending_batches (
            topic TEXT NOT NULL,
            batch_key TEXT NOT NULL,
            payload BLOB NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (topic, batch_key)
        ) WITHOUT ROWID""",
        """CREATE TABLE retained (
            topic TEXT PRIMARY KEY,
            payload BLOB NOT NULL,
            updated REAL NOT NULL
        ) WITHOUT ROWID""",
        "CREATE TABLE announced (pdl TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID",
        """CREATE TABLE meter_status (
            pdl TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            updated REAL NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 3: Home Assistant statistics import
    (
        """CREATE TABLE stats_sync (
            statistic_id TEXT PRIMARY KEY,
            dirty_since INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 4: days to fetch once more (DST days an earlier version stored wrong)
    (
        """CREATE TABLE repairs (
            pdl TEXT NOT NULL,
            kind TEXT NOT NULL,
            series TEXT NOT NULL,
            day TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (pdl, kind, series, day)
        ) WITHOUT ROWID""",
    ),
    # 5: drop meter_status (created by 2, never read: the status lives in the retained
    # topics)
    ("DROP TABLE IF EXISTS meter_status",),
    # 6: Tempo colours (NULL: not known yet; never taken as blue)
    (
        """CREATE TABLE tempo_days (
            day TEXT PRIMARY KEY,
            colour TEXT,
            source TEXT,
            fetched_at REAL NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 7: when each meter's contract was last asked, and whether there was one (a contract
    # stored by an earlier version counts as asked when it was stored)
    (
        """CREATE TABLE contract_checks (
            pdl TEXT PRIMARY KEY,
            at REAL NOT NULL,
            found INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """INSERT OR REPLACE INTO contract_checks (pdl, at, found)
            SELECT substr(topic, length(topic) - 22, 14), updated, 1 FROM retained
            WHERE topic LIKE '%/contract'""",
    ),
)
# A store older than this may hold DST days with a missing or misplaced interval.
DST_CHECK_BEFORE = 4
SCHEMA_VERSION = len(MIGRATIONS)

_SELECT_READINGS = (
    "SELECT pdl, kind, resolution, start_utc, value, quality, peak_at FROM readings"
    " WHERE pdl = ? AND kind = ? AND start_utc >= ? AND start_utc < ?"
)
_SELECT_DAILY = _SELECT_READINGS + " AND resolution = ? ORDER BY start_utc"
# Curve rows: ``resolution <> 'P1D'`` alone cannot use the primary key past (pdl, kind)
# and scans every stored row of the meter (35,000 for 2 years of curve) for one day. The
# meter's resolutions are found by a skip-scan (one index probe each) and each is then an
# equality, so the start range uses the index.
_SELECT_CURVE = (
    "WITH RECURSIVE res(r) AS ("
    "SELECT MIN(resolution) FROM readings WHERE pdl = ?1 AND kind = ?2"
    " UNION ALL SELECT (SELECT MIN(resolution) FROM readings"
    " WHERE pdl = ?1 AND kind = ?2 AND resolution > res.r) FROM res WHERE res.r IS NOT NULL)"
    " SELECT pdl, kind, resolution, start_utc, value, quality, peak_at FROM readings"
    " WHERE pdl = ?1 AND kind = ?2 AND start_utc >= ?3 AND start_utc < ?4"
    " AND resolution IN (SELECT r FROM res WHERE r IS NOT NULL AND r <> ?5)"
    " ORDER BY start_utc, resolution"
)

_SELECT_CURVE_POINTS = _SELECT_CURVE.replace(
    "SELECT pdl, kind, resolution, start_utc, value, quality, peak_at FROM readings",
    "SELECT resolution, start_utc, value FROM readings")
# The curve resolutions a meter's series holds: the skip-scan of _SELECT_CURVE alone.
_SELECT_RESOLUTIONS = _SELECT_CURVE[:_SELECT_CURVE.index(" SELECT pdl, kind")].replace(
    "WHERE res.r IS NOT NULL)",
    "WHERE res.r IS NOT NULL) SELECT r FROM res WHERE r IS NOT NULL AND r <> ?3")
_INSERT_PENDING = ("INSERT OR REPLACE INTO pending_batches (topic, batch_key, payload, created)"
                   " VALUES (?, ?, ?, ?)")
_COUNT_RESOLUTION = ("SELECT COUNT(*) FROM readings WHERE pdl = ? AND kind = ?"
                     " AND resolution = ? AND start_utc >= ? AND start_utc < ?")
_COUNT_CURVE = _SELECT_CURVE.replace(
    "SELECT pdl, kind, resolution, start_utc, value, quality, peak_at FROM readings",
    "SELECT COUNT(*) FROM readings").replace(" ORDER BY start_utc, resolution", "")


class StoreError(Linky2MqttError):
    """The store cannot be opened, read or written; the message names the file."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"store {path}: {message}")
        self.path = path


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return int(moment.timestamp())


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _batch_key(payload: bytes) -> str:
    """Key of an hourly batch: its local ``date`` when the payload has one, else a hash."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        doc = None
    day = doc.get("date") if isinstance(doc, dict) else None
    if isinstance(day, str):
        return day
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def _key_and_payload(args: tuple[str | bytes, ...]) -> tuple[str, bytes]:
    if len(args) == 1 and isinstance(args[0], bytes | bytearray):
        return _batch_key(bytes(args[0])), bytes(args[0])
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], bytes | bytearray):
        return args[0], bytes(args[1])
    raise TypeError("expected (topic, payload: bytes) or (topic, key: str, payload: bytes)")


def _covers_day(intervals: list[tuple[int, int]], day_start: int, day_end: int) -> bool:
    """True when the union of ``[start, end)`` intervals covers the whole day."""
    reach = day_start
    for start, end in sorted(intervals):
        if start > reach:
            return False
        reach = max(reach, end)
        if reach >= day_end:
            return True
    return reach >= day_end


def _dst_days(first_year: int, last_year: int) -> list[date]:
    """The Europe/Paris DST change days (23 or 25 hours long) of the years given."""
    out = []
    for year in range(first_year, last_year + 1):
        for month in (3, 10):
            day = date(year, month, 31)
            day -= timedelta(days=(day.weekday() + 1) % 7)  # the last Sunday
            lo, hi = day_bounds(day)
            if hi - lo != timedelta(hours=24):
                out.append(day)
    return out


def _tiling_problem(rows: Sequence[tuple[int, str]], day_start: int,
                    day_end: int) -> str | None:
    """Why stored curve rows ``(start_utc, resolution)`` do not tile a day, or None."""
    reach = day_start
    for start, resolution in rows:
        seconds = 60 * resolution_minutes(resolution)
        if (start - day_start) % seconds:
            return f"interval at {_utc(start).isoformat()} off its {resolution} grid"
        if start < reach:
            return f"interval at {_utc(start).isoformat()} overlaps the one before"
        if start > reach:
            return f"no interval at {_utc(reach).isoformat()}"
        reach = start + seconds
    if reach < day_end:
        return f"no interval at {_utc(reach).isoformat()}"
    return None


class Store:
    """The SQLite store. Thread-safe; every method commits before it returns."""

    def __init__(self, path: str | Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        # rows of ``readings`` the read methods walked through (tests: no row read twice)
        self.reading_rows_read = 0
        self._last_prune = 0.0
        # (pdl, kind) -> the curve resolutions stored (see _curve_resolutions)
        self._resolutions: dict[tuple[str, str], set[str]] = {}
        self._conn: sqlite3.Connection | None = None
        self._check_writable()
        self._create_private()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # explicit transactions below
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot open: {self._describe(exc)}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() not in ("wal", "memory"):
                raise StoreError(self.path, f"cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            # A small page cache: the file is in the OS cache anyway; a poll that walks 2
            # years of curve should not keep 2 MiB of it (SQLite's default) in this process.
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            found = self._migrate(conn)
            if 0 < found < DST_CHECK_BEFORE:
                self._flag_for_repair(conn)
            # ``repairs`` is written only here, at open: once empty, no poll asks it again
            self._repairs_listed = conn.execute("SELECT 1 FROM repairs LIMIT 1").fetchone(
            ) is not None
            # Fail at start, not at the first fetch, when the file cannot be written.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(self.path, f"cannot open: {self._describe(exc)}") from exc
        except StoreError:
            conn.close()
            raise
        self._conn = conn

    # -- plumbing ------------------------------------------------------------------

    def _check_writable(self) -> None:
        """A clear error for a missing directory or a read-only file or directory
        (``os.access`` also sees read-only mounts, even for root)."""
        if self.path == ":memory:" or self.path.startswith("file:"):
            return
        file = Path(self.path)
        folder = file.parent
        if not folder.is_dir():
            raise StoreError(self.path, f"cannot open: directory {folder} does not exist")
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise StoreError(self.path, "cannot open: file is read-only")
        if not os.access(folder, os.W_OK | os.X_OK):
            # WAL needs the -wal and -shm files beside the database
            raise StoreError(self.path, f"cannot open: directory {folder} is read-only")

    def _create_private(self) -> None:
        """A new store file is created 0600 (SQLite gives its -wal and -shm files the
        same mode): it holds contract details (names, addresses)."""
        if self.path == ":memory:" or self.path.startswith("file:"):
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise StoreError(self.path, f"cannot create: {exc.strerror or exc}") from exc
        os.close(fd)

    def _migrate(self, conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
        """Upgrade the schema; return the version found."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                self.path,
                f"schema version {version} is newer than this linky2mqtt knows "
                f"({SCHEMA_VERSION}); upgrade linky2mqtt or use another store file",
            )
        for number in range(version + 1, target + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return version

    def _flag_for_repair(self, conn: sqlite3.Connection) -> None:
        """List in ``repairs`` what an earlier version may have stored wrong: every DST
        change day whose load curve does not tile the day exactly (an interval dropped or
        misplaced), and every day holding a value no meter produces (negative, or above
        :data:`plausible.NO_CONTRACT_VA`)."""
        flagged = self._broken_dst_days(conn) + self._implausible_days(conn)
        if not flagged:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO repairs (pdl, kind, series, day, reason)"
                " VALUES (?, ?, ?, ?, ?)", flagged)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for pdl, kind, series, day_text, why in flagged:
            _log.warning("store %s: %s %s %s of %s was stored wrong by an earlier version "
                         "(%s): it is fetched once more", self.path, pdl, kind,
                         "load curve" if series == "curve" else "daily value", day_text, why)

    @staticmethod
    def _broken_dst_days(conn: sqlite3.Connection) -> list[tuple[str, str, str, str, str]]:
        series = conn.execute(
            "SELECT pdl, kind, MIN(start_utc), MAX(start_utc) FROM readings"
            " WHERE resolution <> ? GROUP BY pdl, kind", (DAILY,)).fetchall()
        flagged: list[tuple[str, str, str, str, str]] = []
        for pdl, kind, lo, hi in series:
            for day in _dst_days(_utc(lo).year, _utc(hi).year):
                start, end = day_bounds(day)
                rows = conn.execute(
                    "SELECT start_utc, resolution FROM readings WHERE pdl = ? AND kind = ?"
                    " AND resolution <> ? AND start_utc >= ? AND start_utc < ?"
                    " ORDER BY start_utc", (pdl, kind, DAILY, _epoch(start), _epoch(end)),
                ).fetchall()
                if not rows:
                    continue
                why = _tiling_problem(rows, _epoch(start), _epoch(end))
                if why is not None:
                    flagged.append((pdl, kind, "curve", day.isoformat(), why))
        return flagged

    @staticmethod
    def _implausible_days(conn: sqlite3.Connection) -> list[tuple[str, str, str, str, str]]:
        # below this no value is implausible (250 kVA over 10 minutes); the check proper
        # is plausible.problem's
        floor = plausible.NO_CONTRACT_VA * 10 / 60
        rows = conn.execute(
            "SELECT pdl, kind, resolution, start_utc, value, quality, peak_at FROM readings"
            " WHERE value < 0 OR value > ?", (floor,)).fetchall()
        flagged: dict[tuple[str, str, str, str], str] = {}
        for row in rows:
            r = Store._reading(row)
            why = plausible.problem(r, plausible.NO_CONTRACT_VA)
            if why is not None:
                series = "daily" if r.is_daily else "curve"
                key = (r.pdl, str(r.kind), series, r.local_date.isoformat())
                flagged.setdefault(key, f"implausible: {why}")
        return [(*key, why) for key, why in flagged.items()]

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The lock held, the connection, and any sqlite3 error as a StoreError."""
        with self._lock:
            if self._conn is None:
                raise StoreError(self.path, "store is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(self.path, self._describe(exc)) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._connection() as conn:
            return fn(conn)

    @staticmethod
    def _describe(exc: sqlite3.Error) -> str:
        text = str(exc)
        lowered = text.lower()
        if "full" in lowered:
            return f"disk full, nothing written ({text})"
        if "readonly" in lowered or "read-only" in lowered:
            return f"file is read-only, nothing written ({text})"
        return text

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise StoreError."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._read(lambda c: int(c.execute("PRAGMA user_version").fetchone()[0]))

    @property
    def journal_mode(self) -> str:
        return self._read(lambda c: str(c.execute("PRAGMA journal_mode").fetchone()[0]))

    # -- readings ------------------------------------------------------------------

    def save_readings(self, readings: Iterable[Reading]) -> list[Reading]:
        """Store readings; return those that were new or whose value (or quality, or
        peak time) changed, in the order given. Committed on return."""
        return self.save_window(readings)[0]

    def save_window(self, readings: Iterable[Reading], *,
                    pending: Iterable[tuple[str, str, bytes]] = (),
                    span: tuple[int, int] | None = None) -> tuple[list[Reading], int | None]:
        """:meth:`save_readings`, with ``pending`` (topic, key, payload) rows kept pending
        (:meth:`add_pending_batches`) in the same transaction; and with ``span`` ([lo, hi)
        in epoch seconds) how many load-curve rows (every resolution) of the readings'
        meter and kind the store holds starting in it once committed, counted in the same
        transaction from the rows the save reads anyway (None when the readings are not
        all one meter and kind): what :meth:`curve_row_count` would answer, without a
        query of its own."""
        items = list(readings)
        rows_pending = self._pending_rows(pending)
        if not items:
            if rows_pending:
                with self._write() as conn:
                    conn.executemany(_INSERT_PENDING, rows_pending)
            return [], None
        now = self._clock.time()
        rows = [(r.pdl, str(r.kind), r.resolution, _epoch(r.start), float(r.value), r.quality,
                 None if r.peak_at is None else _epoch(r.peak_at), now) for r in items]
        groups: dict[tuple[str, str, str], list[int]] = {}
        for row in rows:
            groups.setdefault(row[:3], []).append(row[3])
        series = {key[:2] for key in groups}
        # the span counted: only for readings of one meter and kind
        counted = span if len(series) == 1 else None
        # what is held of these rows is read once (a range of the primary key per
        # series), compared here, and only the new or different rows are written
        select = ("SELECT start_utc, value, quality, peak_at FROM readings WHERE pdl = ?"
                  " AND kind = ? AND resolution = ? AND start_utc >= ? AND start_utc <= ?")
        upsert = (
            "INSERT INTO readings (pdl, kind, resolution, start_utc, value, quality, peak_at,"
            " fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (pdl, kind, resolution, start_utc) DO UPDATE SET"
            " value = excluded.value, quality = excluded.quality,"
            " peak_at = excluded.peak_at, fetched_at = excluded.fetched_at"
        )
        changed: list[Reading] = []
        in_span = 0
        with self._write() as conn:
            held: dict[tuple[str, str, str, int], tuple[Any, ...]] = {}
            for key, starts in groups.items():
                lo, hi = min(starts), max(starts)
                if counted is not None and key[2] != DAILY:
                    # the span read too: its rows are counted after the write below
                    lo, hi = min(lo, counted[0]), max(hi, counted[1] - 1)
                for start, *rest in conn.execute(select, (*key, lo, hi)):
                    held[(*key, start)] = tuple(rest)
            write = []
            for r, row in zip(items, rows, strict=True):
                state = row[4:7]
                if held.get(row[:4]) != state:
                    held[row[:4]] = state
                    changed.append(r)
                    write.append(row)
            conn.executemany(upsert, write)
            if rows_pending:
                conn.executemany(_INSERT_PENDING, rows_pending)
            if counted is not None:
                lo, hi = counted
                in_span = sum(1 for k in held if k[2] != DAILY and lo <= k[3] < hi)
                (pdl, kind), = series
                saved = {res for _, _, res in groups if res != DAILY}
                for res in sorted(self._curve_resolutions(conn, pdl, kind) - saved):
                    in_span += int(conn.execute(_COUNT_RESOLUTION,
                                                (pdl, kind, res, lo, hi)).fetchone()[0])
            for pdl, kind, res in groups:
                known = self._resolutions.get((pdl, kind))
                if known is not None and res != DAILY:
                    known.add(res)
        return changed, None if counted is None else in_span

    def _curve_resolutions(self, conn: sqlite3.Connection, pdl: str, kind: str) -> set[str]:
        """The load-curve resolutions held of a meter's ``kind`` (a skip-scan of the
        primary key the first time, then kept: every save adds to it; rows are only ever
        deleted one day at a time, so a resolution kept that has no row left any more
        costs one empty count, never a wrong one). The caller holds the lock."""
        known = self._resolutions.get((pdl, kind))
        if known is None:
            known = {r for (r,) in conn.execute(_SELECT_RESOLUTIONS, (pdl, kind, DAILY))}
            self._resolutions[pdl, kind] = known
        return known

    @staticmethod
    def _reading(row: Sequence[Any]) -> Reading:
        pdl, kind, resolution, start, value, quality, peak_at = row
        return Reading(
            pdl=pdl,
            kind=Kind(kind),
            resolution=resolution,
            start=_utc(start),
            value=value,
            quality=quality,
            peak_at=None if peak_at is None else _utc(peak_at),
        )

    def hourly_day(self, pdl: str, kind: Kind, day: date) -> HourlyDay:
        """The clock hours of one local day, aggregated from the stored load curve
        (23, 24 or 25 hours; ``complete`` when every interval of the day is held)."""
        return self.hourly_days(pdl, kind, [day])[day]

    def hourly_days(self, pdl: str, kind: Kind, days: Iterable[date]) -> dict[date, HourlyDay]:
        """:meth:`hourly_day` of each of ``days``, from one read of the load curve when
        the days are close together (a backfill window's days are contiguous).

        Aggregated straight from the rows (epoch seconds, no :class:`Reading` objects):
        the same result as :func:`~linky2mqtt.model.aggregate_hours` of the
        day's readings, at a fraction of the cost (the live path of a backfill)."""
        return {d: t.hourly_day() for d, t in self.hour_totals(pdl, kind, days).items()}

    def hour_totals(self, pdl: str, kind: Kind, days: Iterable[date]) -> dict[date, HourTotals]:
        """:meth:`hourly_days` without datetimes (what an hourly batch is built from)."""
        wanted = sorted(set(days))
        if not wanted:
            return {}
        if (wanted[-1] - wanted[0]).days >= 2 * len(wanted):  # sparse: day by day
            spans = [[d] for d in wanted]
        else:
            spans = [wanted]
        out: dict[date, HourTotals] = {}
        for span in spans:
            bounds = [(d, *epoch_bounds(d)) for d in span]
            rows = self._curve_points(pdl, kind, bounds[0][1], bounds[-1][2])
            starts = [r[1] for r in rows]
            for d, lo, hi in bounds:
                part = rows[bisect.bisect_left(starts, lo):bisect.bisect_left(starts, hi)]
                out[d] = totals_of_rows(part, d, lo, hi)
        return out

    def curve_row_count(self, pdl: str, kind: Kind, start: datetime, end: datetime) -> int:
        """How many load-curve rows (every resolution) start in ``[start, end)``: counted
        by SQLite, none read (the publisher checks that a window's fetched readings are
        all the store holds of those days before building their batches from them)."""
        args = (pdl, str(kind), _epoch(start), _epoch(end), DAILY)
        return self._read(lambda c: int(c.execute(_COUNT_CURVE, args).fetchone()[0]))

    def _curve_points(self, pdl: str, kind: Kind, lo: int, hi: int) -> list[tuple[str, int, float]]:
        """(resolution, start epoch, value) of the curve rows starting in [lo, hi)."""
        args = (pdl, str(kind), lo, hi, DAILY)
        # (TEXT, INTEGER, REAL columns: sqlite3 gives str, int, float already)
        rows: list[tuple[str, int, float]] = self._read(
            lambda c: self._counted(c.execute(_SELECT_CURVE_POINTS, args).fetchall()))
        return rows

    def _counted(self, rows: list[T]) -> list[T]:
        self.reading_rows_read += len(rows)  # the lock is held
        return rows

    def readings(
        self,
        pdl: str,
        kind: Kind | str,
        resolution_class: Series,
        start: datetime,
        end: datetime,
    ) -> list[Reading]:
        """Readings whose start is in ``[start, end)``, ordered by start.

        ``"daily"`` means resolution P1D; ``"curve"`` every other resolution.
        """
        if resolution_class == "daily":
            sql = _SELECT_DAILY
        elif resolution_class == "curve":
            sql = _SELECT_CURVE
        else:
            raise ValueError(f"resolution class must be daily or curve, not {resolution_class}")
        args = (pdl, str(kind), _epoch(start), _epoch(end), DAILY)
        rows = self._read(lambda c: self._counted(c.execute(sql, args).fetchall()))
        return [self._reading(row) for row in rows]

    def fetched_at(
        self, pdl: str, kind: Kind | str, resolution: str, start: datetime
    ) -> datetime | None:
        """When the stored reading at this key was last written, or None."""
        sql = (
            "SELECT fetched_at FROM readings WHERE pdl = ? AND kind = ? AND resolution = ?"
            " AND start_utc = ?"
        )
        args = (pdl, str(kind), resolution, _epoch(start))
        row = self._read(lambda c: c.execute(sql, args).fetchone())
        return None if row is None else _utc(row[0])

    def daily_values(self, pdl: str, kind: Kind | str, start: date, end: date) -> dict[date, float]:
        """Daily values of the local days in ``[start, end)`` (end exclusive)."""
        rows = self.readings(pdl, kind, "daily", day_bounds(start)[0], day_bounds(end)[0])
        return {r.local_date: r.value for r in rows}

    def daily_quality(self, pdl: str, kind: Kind | str, day: date) -> str | None:
        """The quality flag (``BRUT``, ``CORRIGE``...) of a day's daily value, if any."""
        sql = (
            "SELECT quality FROM readings WHERE pdl = ? AND kind = ? AND resolution = ?"
            " AND start_utc = ?"
        )
        args = (pdl, str(kind), DAILY, _epoch(day_bounds(day)[0]))
        row = self._read(lambda c: c.execute(sql, args).fetchone())
        return None if row is None or row[0] is None else str(row[0])

    def max_power_values(
        self, pdl: str, start: date, end: date
    ) -> dict[date, tuple[float, datetime | None]]:
        """Daily max power of the local days in ``[start, end)``: VA and when it peaked."""
        rows = self.readings(pdl, Kind.MAX_POWER, "daily", day_bounds(start)[0], day_bounds(end)[0])
        return {r.local_date: (r.value, r.peak_at) for r in rows}

    def days_with_daily(self, pdl: str, kind: Kind | str, start: date, end: date) -> set[date]:
        """Local days in ``[start, end)`` (end exclusive) that have a daily value."""
        sql = ("SELECT start_utc FROM readings WHERE pdl = ? AND kind = ? AND resolution = ?"
               " AND start_utc >= ? AND start_utc < ?")
        args = (pdl, str(kind), DAILY, _epoch(day_bounds(start)[0]), _epoch(day_bounds(end)[0]))
        rows = self._read(lambda c: self._counted(c.execute(sql, args).fetchall()))
        return {_utc(t).astimezone(PARIS).date() for (t,) in rows}

    def latest_daily_day(self, pdl: str, kind: Kind | str) -> date | None:
        """The most recent local day with a daily value, or None."""
        sql = "SELECT MAX(start_utc) FROM readings WHERE pdl = ? AND kind = ? AND resolution = ?"
        args = (pdl, str(kind), DAILY)
        row = self._read(lambda c: c.execute(sql, args).fetchone())
        if row is None or row[0] is None:
            return None
        return _utc(row[0]).astimezone(PARIS).date()

    def days_with_complete_curve(
        self, pdl: str, kind: Kind | str, start: date, end: date
    ) -> set[date]:
        """Local days in ``[start, end)`` whose load-curve intervals cover the whole day
        (46, 48 or 50 half-hours on the DST days; mixed steps are fine).

        The rows are walked once, in start order, one day's intervals in memory at a time:
        a poll of a meter holding 2 years of curve does not load 35,000 readings."""
        args = (pdl, str(kind), _epoch(day_bounds(start)[0]), _epoch(day_bounds(end)[0]), DAILY)

        def scan(c: sqlite3.Connection) -> set[date]:
            complete: set[date] = set()
            day: date | None = None
            lo = hi = 0
            intervals: list[tuple[int, int]] = []
            n = 0
            for resolution, begin, _value in c.execute(_SELECT_CURVE_POINTS, args):
                n += 1
                if day is None or begin >= hi:
                    if day is not None and _covers_day(intervals, lo, hi):
                        complete.add(day)
                    day = _utc(begin).astimezone(PARIS).date()
                    lo, hi = epoch_bounds(day)
                    intervals = []
                intervals.append((begin, begin + resolution_seconds(resolution)))
            if day is not None and _covers_day(intervals, lo, hi):
                complete.add(day)
            self.reading_rows_read += n
            return complete

        return self._read(scan)

    # -- Tempo ------------------------------------------------------------------------

    def save_tempo_days(self, days: dict[date, tuple[str | None, str]], at: float) -> list[date]:
        """Store ``{day: (colour or None, source)}``; the days whose known colour is new or
        changed (an unknown answer never replaces a known colour)."""
        changed: list[date] = []
        with self._write() as c:
            for day, (colour, source) in sorted(days.items()):
                row = c.execute("SELECT colour FROM tempo_days WHERE day = ?",
                                (day.isoformat(),)).fetchone()
                if colour is None and row is not None and row[0] is not None:
                    continue
                if colour is not None and (row is None or row[0] != colour):
                    changed.append(day)
                c.execute("INSERT OR REPLACE INTO tempo_days (day, colour, source, fetched_at)"
                          " VALUES (?, ?, ?, ?)", (day.isoformat(), colour, source, at))
        return changed

    def tempo_days(self, start: date, end: date) -> dict[date, tuple[str | None, str | None]]:
        """``{day: (colour or None, source)}`` of the stored days in ``[start, end)``."""
        sql = "SELECT day, colour, source FROM tempo_days WHERE day >= ? AND day < ?"
        rows = self._read(lambda c: c.execute(sql, (start.isoformat(), end.isoformat()))
                          .fetchall())
        return {date.fromisoformat(d): (colour, source) for d, colour, source in rows}

    # -- repairs ---------------------------------------------------------------------

    def repair_days(self, pdl: str, kind: Kind | str, series: Series) -> dict[date, str]:
        """Days listed to be fetched once more, with why."""
        if not self._repairs_listed:  # none listed when the store was opened
            return {}
        sql = "SELECT day, reason FROM repairs WHERE pdl = ? AND kind = ? AND series = ?"
        rows = self._read(lambda c: c.execute(sql, (pdl, str(kind), series)).fetchall())
        return {date.fromisoformat(d): str(why) for d, why in rows}

    def clear_repair(self, pdl: str, kind: Kind | str, series: Series, day: date) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM repairs WHERE pdl = ? AND kind = ? AND series = ?"
                         " AND day = ?", (pdl, str(kind), series, day.isoformat()))

    def replace_curve_day(self, pdl: str, kind: Kind | str, day: date,
                          keep: Iterable[Reading]) -> int:
        """Delete the day's stored curve rows that are not in ``keep`` (same start and
        resolution): what an earlier version put at a wrong instant. Returns the count."""
        start, end = day_bounds(day)
        wanted = {(_epoch(r.start), r.resolution) for r in keep}
        with self._write() as conn:
            rows = conn.execute(
                "SELECT start_utc, resolution FROM readings WHERE pdl = ? AND kind = ?"
                " AND resolution <> ? AND start_utc >= ? AND start_utc < ?",
                (pdl, str(kind), DAILY, _epoch(start), _epoch(end))).fetchall()
            stale = [(pdl, str(kind), res, s) for s, res in rows if (s, res) not in wanted]
            conn.executemany("DELETE FROM readings WHERE pdl = ? AND kind = ?"
                             " AND resolution = ? AND start_utc = ?", stale)
        return len(stale)

    # -- gaps ------------------------------------------------------------------------

    def record_gap(self, pdl: str, kind: Kind | str, series: Series, day: date, at: float,
                   *, counted_from: float | None = None) -> int:
        """Count one more attempt at a day that came back empty; return attempts so far.

        With ``counted_from`` (the start of the local day holding ``at``), an attempt made
        when the last one was at or after it is not counted again: one attempt per day,
        however many polls (late retries, a restarted bridge) asked that day.
        """
        sql = (
            "INSERT INTO gaps (pdl, kind, series, day, attempts, last_attempt)"
            " VALUES (?, ?, ?, ?, 1, ?)"
            " ON CONFLICT (pdl, kind, series, day) DO UPDATE SET"
            " attempts = attempts + (CASE WHEN last_attempt >= ? THEN 0 ELSE 1 END),"
            " last_attempt = excluded.last_attempt"
            " RETURNING attempts"
        )
        since = math.inf if counted_from is None else counted_from
        with self._write() as conn:
            row = conn.execute(sql, (pdl, str(kind), series, day.isoformat(), at, since)
                               ).fetchone()
        return int(row[0])

    def gap_attempts(self, pdl: str, kind: Kind | str, series: Series, day: date) -> int:
        sql = "SELECT attempts FROM gaps WHERE pdl = ? AND kind = ? AND series = ? AND day = ?"
        args = (pdl, str(kind), series, day.isoformat())
        row = self._read(lambda c: c.execute(sql, args).fetchone())
        return 0 if row is None else int(row[0])

    def gaps(self, pdl: str, kind: Kind | str, series: Series) -> dict[date, tuple[int, float]]:
        """Every recorded gap of a series: day -> (attempts, last attempt epoch)."""
        sql = (
            "SELECT day, attempts, last_attempt FROM gaps WHERE pdl = ? AND kind = ? AND series = ?"
        )
        args = (pdl, str(kind), series)
        rows = self._read(lambda c: c.execute(sql, args).fetchall())
        return {date.fromisoformat(d): (int(n), float(at)) for d, n, at in rows}

    def clear_gap(self, pdl: str, kind: Kind | str, series: Series, day: date) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM gaps WHERE pdl = ? AND kind = ? AND series = ? AND day = ?",
                (pdl, str(kind), series, day.isoformat()),
            )

    def clear_gaps(self, pdl: str, kind: Kind | str, series: Series,
                   days: Iterable[date]) -> None:
        """:meth:`clear_gap` of several days; no write at all when none of them was a gap
        (the common case: a day fetched at its first attempt)."""
        wanted = {d.isoformat() for d in days}
        if not wanted:
            return
        sql = ("SELECT day FROM gaps WHERE pdl = ? AND kind = ? AND series = ?"
               " AND day >= ? AND day <= ?")
        args = (pdl, str(kind), series, min(wanted), max(wanted))
        rows = self._read(lambda c: c.execute(sql, args).fetchall())
        held = [(pdl, str(kind), series, d) for (d,) in rows if d in wanted]
        if not held:
            return
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM gaps WHERE pdl = ? AND kind = ? AND series = ? AND day = ?", held)

    # -- request ledger (enedis.Ledger) ------------------------------------------------

    def record_request(self, scope: str, at: float) -> None:
        """Record one upstream request; entries older than two days are pruned."""
        with self._write() as conn:
            conn.execute("INSERT INTO requests (scope, at) VALUES (?, ?)", (scope, at))
            if at - self._last_prune >= _PRUNE_EVERY_SECONDS:
                conn.execute("DELETE FROM requests WHERE at < ?", (at - LEDGER_KEEP_SECONDS,))
                self._last_prune = at

    def request_times(self, scope: str, since: float) -> list[float]:
        """Times (epoch seconds, ascending) of the requests of ``scope`` at or after ``since``."""
        sql = "SELECT at FROM requests WHERE scope = ? AND at >= ? ORDER BY at"
        rows = self._read(lambda c: c.execute(sql, (scope, since)).fetchall())
        return [float(r[0]) for r in rows]

    # -- hourly batches awaiting PUBACK -------------------------------------------------

    @overload
    def add_pending_batch(self, topic: str, payload: bytes, /) -> None: ...
    @overload
    def add_pending_batch(self, topic: str, key: str, payload: bytes, /) -> None: ...

    def add_pending_batch(self, topic: str, *args: str | bytes) -> None:
        """Keep an hourly batch until the broker acknowledges it.

        ``add_pending_batch(topic, payload)`` keys the batch by the payload's ``date``;
        ``add_pending_batch(topic, key, payload)`` by ``key``. A batch with the same
        topic and key replaces the older one (consumers deduplicate by date).
        """
        key, payload = _key_and_payload(args)
        with self._write() as conn:
            conn.execute(_INSERT_PENDING, (topic, key, payload, self._clock.time()))

    def add_pending_batches(self, entries: Iterable[tuple[str, str, bytes]]) -> None:
        """:meth:`add_pending_batch` of each (topic, key, payload), in one transaction."""
        rows = self._pending_rows(entries)
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(_INSERT_PENDING, rows)

    def _pending_rows(self, entries: Iterable[tuple[str, str, bytes]]
                      ) -> list[tuple[str, str, bytes, float]]:
        now = self._clock.time()
        return [(topic, key, bytes(payload), now) for topic, key, payload in entries]

    def ack_batches(self, entries: Iterable[tuple[str, str, bytes]]) -> None:
        """:meth:`ack_batch` of each (topic, key, payload), in one transaction."""
        rows = [(topic, key, bytes(payload)) for topic, key, payload in entries]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM pending_batches WHERE topic = ? AND batch_key = ? AND payload = ?",
                rows)

    @overload
    def ack_batch(self, topic: str, payload: bytes, /) -> None: ...
    @overload
    def ack_batch(self, topic: str, key: str, payload: bytes, /) -> None: ...

    def ack_batch(self, topic: str, *args: str | bytes) -> None:
        """The broker acknowledged this exact payload: forget it. The ack of an older
        payload that has since been replaced leaves the newer one pending."""
        key, payload = _key_and_payload(args)
        with self._write() as conn:
            conn.execute(
                "DELETE FROM pending_batches WHERE topic = ? AND batch_key = ? AND payload = ?",
                (topic, key, payload),
            )

    def pending_batches(self) -> list[tuple[str, bytes]]:
        """(topic, payload) not yet acknowledged, oldest first."""
        return [(topic, payload) for topic, _, payload in self.pending_batch_entries()]

    def pending_batch_entries(self) -> list[tuple[str, str, bytes]]:
        """(topic, key, payload) not yet acknowledged, oldest first."""
        sql = (
            "SELECT topic, batch_key, payload FROM pending_batches"
            " ORDER BY created, topic, batch_key"
        )
        rows = self._read(lambda c: c.execute(sql).fetchall())
        return [(str(t), str(k), bytes(p)) for t, k, p in rows]

    # -- retained topics -----------------------------------------------------------------

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Remember the last retained payload of a topic (republished on reconnect)."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO retained (topic, payload, updated) VALUES (?, ?, ?)",
                (topic, bytes(payload), self._clock.time()),
            )

    def get_retained(self, topic: str) -> bytes | None:
        sql = "SELECT payload FROM retained WHERE topic = ?"
        row = self._read(lambda c: c.execute(sql, (topic,)).fetchone())
        return None if row is None else bytes(row[0])

    def retained_payload(self, topic: str) -> bytes | None:
        """Same as :meth:`get_retained`."""
        return self.get_retained(topic)

    def all_retained(self, prefix: str = "") -> list[tuple[str, bytes]]:
        """Remembered retained (topic, payload) by topic, only topics under ``prefix``."""
        sql = "SELECT topic, payload FROM retained ORDER BY topic"
        rows = self._read(lambda c: c.execute(sql).fetchall())
        return [(str(t), bytes(p)) for t, p in rows if str(t).startswith(prefix)]

    # -- contract checks -------------------------------------------------------------------

    def contract_checks(self) -> dict[str, tuple[float, bool]]:
        """PDL -> (when its contract was last asked, epoch seconds; whether there was one)."""
        rows = self._read(lambda c: c.execute(
            "SELECT pdl, at, found FROM contract_checks").fetchall())
        return {str(p): (float(at), bool(found)) for p, at, found in rows}

    def set_contract_check(self, pdl: str, at: float, found: bool) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO contract_checks (pdl, at, found) "
                         "VALUES (?, ?, ?)", (pdl, at, int(found)))

    # -- Home Assistant announcements -----------------------------------------------------

    def announced_meters(self) -> set[str]:
        rows = self._read(lambda c: c.execute("SELECT pdl FROM announced").fetchall())
        return {str(r[0]) for r in rows}

    def set_announced(self, pdl: str, announced: bool) -> None:
        with self._write() as conn:
            if announced:
                conn.execute(
                    "INSERT OR REPLACE INTO announced (pdl, at) VALUES (?, ?)",
                    (pdl, self._clock.time()),
                )
            else:
                conn.execute("DELETE FROM announced WHERE pdl = ?", (pdl,))

    # -- Home Assistant statistics sync ----------------------------------------------------

    def stats_mark_dirty(self, statistic_id: str, since: datetime) -> None:
        """Mark a statistic for import from ``since``; keeps the earliest mark."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO stats_sync (statistic_id, dirty_since) VALUES (?, ?)"
                " ON CONFLICT (statistic_id) DO UPDATE SET"
                " dirty_since = MIN(dirty_since, excluded.dirty_since)",
                (statistic_id, _epoch(since)),
            )

    def stats_dirty_since(self, statistic_id: str) -> datetime | None:
        sql = "SELECT dirty_since FROM stats_sync WHERE statistic_id = ?"
        row = self._read(lambda c: c.execute(sql, (statistic_id,)).fetchone())
        return None if row is None else _utc(row[0])

    def stats_mark_clean(self, statistic_id: str, upto: datetime | None = None) -> None:
        """Imported. With ``upto``, only a mark no later than it is cleared (a mark set
        while the import ran stays)."""
        with self._write() as conn:
            if upto is None:
                conn.execute("DELETE FROM stats_sync WHERE statistic_id = ?", (statistic_id,))
            else:
                conn.execute(
                    "DELETE FROM stats_sync WHERE statistic_id = ? AND dirty_since <= ?",
                    (statistic_id, _epoch(upto)),
                )
