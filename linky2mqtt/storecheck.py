"""Is the store damaged, and recovering what SQLite can still read from a damaged one.

:func:`check` runs ``PRAGMA quick_check`` (every page and record is read; indexes are not
compared with their tables, which ``integrity_check`` would do at several times the
cost): the bridge runs it at every start and refuses a damaged store (exit 1, the file
left as it is), and ``linky2mqtt store check`` prints its verdict.

:func:`repair` (``linky2mqtt store repair``) copies every row SQLite can still read into
a fresh store, table by table: each table is read row by row in key order from its
first row and, backwards, from its last; at a damaged page a pass seeks past it and
goes on. Only the rows held by damaged pages are lost: a damaged inner page of a
table's b-tree loses the rows below it (and the separator rows of its parent page).
The fresh store replaces the damaged one, which is kept beside it as
``<store>.broken-<UTC timestamp>`` (with its ``-wal`` file, if any).
Whatever is lost, the bridge fetches again from upstream within the backfill limits.
No ``sqlite3`` command-line tool is needed: this is the Python standard library.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from linky2mqtt.clock import Clock
from linky2mqtt.errors import Linky2MqttError
from linky2mqtt.store import Store, StoreError
from linky2mqtt.storelock import StoreLock

__all__ = ["RepairReport", "StoreDamaged", "check", "is_damage", "open_checked", "repair"]



class StoreDamaged(Linky2MqttError):
    """``PRAGMA quick_check`` found damage; the message says what to do."""

    def __init__(self, path: str, problems: list[str]) -> None:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        first = problems[0][:200] if problems else "?"
        super().__init__(
            f"store {path} is damaged (PRAGMA quick_check: {count}, first: {first}); it was "
            "left as it is: stop here, keep a copy, then run `linky2mqtt store repair` with "
            f"the same -c (or --store {path}) to recover what can be read into a fresh store")
        self.path = path
        self.problems = problems


def check(path: str | os.PathLike[str]) -> list[str]:
    """``PRAGMA quick_check``'s problems (empty: the store is sound, or does not exist)."""
    text = str(path)
    if text == ":memory:" or text.startswith("file:") or not Path(text).exists():
        return []
    if Path(text).stat().st_size == 0:
        return []  # created empty (0600) and not yet initialised: a new store
    try:
        conn = sqlite3.connect(text, timeout=10)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):  # permissions, a lock...: not a verdict on the contents
            raise StoreError(text, f"cannot check: {exc}") from exc
        return [str(exc)]
    problems = [line.strip() for r in rows for line in str(r[0]).splitlines()
                if line.strip() and not line.startswith("*** in database")]
    return [] if problems == ["ok"] else problems


def open_checked(path: str | Path, clock: Clock) -> tuple[StoreLock, Store]:
    """A bridge's store, on the bridge's ``clock``: its lock taken
    (:class:`~linky2mqtt.storelock.StoreInUse` when another bridge runs), opened
    (:class:`StoreError`: missing, read-only...) and checked
    (:class:`StoreDamaged`). On any failure nothing stays open or locked."""
    lock = StoreLock.acquire(path)
    store: Store | None = None
    try:
        try:
            store = Store(path, clock=clock)
        except StoreError as exc:
            if exc.__cause__ is not None and is_damage(exc.__cause__):
                raise StoreDamaged(str(path), [str(exc.__cause__)]) from None
            raise
        if lock.path is not None and not lock.held:
            raise StoreError(str(path), f"cannot create its lock file {lock.path}: "
                                        f"{lock.error}")
        problems = check(path)
        if problems:
            raise StoreDamaged(str(path), problems)
    except BaseException:
        if store is not None:
            store.close()
        lock.release()
        raise
    return lock, store


def is_damage(exc: BaseException) -> bool:
    """True when an sqlite3 error says the file's contents are damaged."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "corrupt", "disk i/o"))


@dataclass
class RepairReport:
    store: str
    kept_as: str
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    damaged: list[str] = field(default_factory=list)  # tables where reading stopped early

    def line(self) -> str:
        copied = ", ".join(f"{n} {t}" for t, n in self.rows.items())
        partial = (f"; rows on damaged pages of {', '.join(self.damaged)} are lost (the "
                   "bridge fetches missing days again within its backfill limits)"
                   if self.damaged else "")
        return (f"repaired: store {self.store}: copied {copied}{partial}; the damaged file "
                f"is kept as {self.kept_as}")


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                        " AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
    return [str(r[0]) for r in rows]


def _key(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[str]]:
    """The table's columns, and its key columns in key order (``rowid`` if none)."""
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    columns = [str(r[1]) for r in info]
    keyed = sorted((int(r[5]), str(r[1])) for r in info if int(r[5]) > 0)
    return columns, [name for _, name in keyed] or ["rowid"]


def _names(key: list[str]) -> str:
    return ", ".join(k if k == "rowid" else f'"{k}"' for k in key)


def _select(conn: sqlite3.Connection, table: str, columns: list[str], key: list[str], *,
            where: str, args: tuple[object, ...], descending: bool,
            limit: int | None = None) -> Iterator[tuple[object, ...]]:
    """Rows in key order from a seek point; raises sqlite3.DatabaseError at damage."""
    cols = ", ".join(f'"{c}"' for c in [*columns, *[k for k in key if k == "rowid"]])
    order = ", ".join(f"{k} DESC" if descending else k for k in _names(key).split(", "))
    clause = f" WHERE ({_names(key)}) {where} ({', '.join('?' for _ in key)})" if where else ""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    # names from our own schema, never from input
    cursor = conn.execute(
        f'SELECT {cols} FROM "{table}"{clause} ORDER BY {order}{tail}', args)  # noqa: S608
    for row in cursor:  # row by row: a batch would lose its rows read before the damage
        yield tuple(row)


def _scan(conn: sqlite3.Connection, table: str, columns: list[str],
          key: list[str]) -> tuple[dict[tuple[object, ...], tuple[object, ...]], bool]:
    """Every row SQLite can still read: (rows by key, whether damage was met).

    Two passes, one from each end of the table in key order. When a pass meets a damaged
    page it seeks again just past the last key it read, then further and further (the
    key's last column, when a number, plus 1, 2, 4...) until a seek succeeds, and goes on
    from there; the other pass, coming from the other end, reads back down to the damage.
    """
    width = len(columns)
    rows: dict[tuple[object, ...], tuple[object, ...]] = {}
    index = [([*columns, "rowid"] if k == "rowid" else columns).index(k) for k in key]
    damaged = False

    def one_pass(descending: bool) -> None:
        nonlocal damaged
        op, sign = ("<", -1) if descending else (">", 1)
        bound: tuple[object, ...] | None = None
        step = 0
        while True:
            last = bound
            read = 0
            try:
                for row in _select(conn, table, columns, key, where=op if bound else "",
                                   args=bound or (), descending=descending):
                    k = tuple(row[i] for i in index)
                    rows[k] = row[:width]
                    last = k
                    read += 1
                return
            except sqlite3.DatabaseError:
                damaged = True
            tip = last[-1] if last is not None else None
            if last is None or not isinstance(tip, int | float) or isinstance(tip, bool):
                return  # nothing to seek from: the other pass reads from the other end
            step = 0 if read else max(1, step * 2)  # no progress: seek further
            while abs(step) < 2 ** 62:
                candidate = (*last[:-1], tip + sign * step)
                try:
                    list(_select(conn, table, columns, key, where=op, args=candidate,
                                 descending=descending, limit=1))
                    break
                except sqlite3.DatabaseError:
                    step = max(1, step * 2)
            else:
                return
            bound = candidate

    one_pass(descending=False)
    one_pass(descending=True)
    return rows, damaged


def repair(path: str | os.PathLike[str], *, now: datetime | None = None) -> RepairReport:
    """Copy what can be read of the store at ``path`` into a fresh store that replaces it.

    The caller holds the store's lock (no bridge runs). Raises StoreError when nothing
    can be done (the damaged file cannot even be opened, or the fresh one not written).
    """
    src = Path(path)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    kept = src.with_name(f"{src.name}.broken-{stamp}")
    fresh = src.with_name(f"{src.name}.repair-tmp")
    for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
        leftover.unlink(missing_ok=True)
    try:
        old = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(str(src), f"cannot open the damaged store: {exc}") from exc
    report = RepairReport(store=str(src), kept_as=str(kept))
    try:
        try:
            old_tables = set(_tables(old))
        except sqlite3.DatabaseError as exc:
            raise StoreError(str(src), f"its table list is unreadable ({exc}); nothing can "
                             "be recovered: start from a fresh store") from exc
        new_store = Store(fresh)  # the current schema, 0600
        new_store.close()
        new = sqlite3.connect(fresh, isolation_level=None)
        try:
            new.execute("BEGIN")
            for table in _tables(new):
                if table not in old_tables:
                    continue
                columns, key = _key(new, table)
                found, broke = _scan(old, table, columns, key)
                if broke:
                    report.damaged.append(table)
                marks = ", ".join("?" for _ in columns)
                cols = ", ".join(f'"{c}"' for c in columns)
                copied = 0
                for row in found.values():
                    with contextlib.suppress(sqlite3.DatabaseError):  # a garbage row
                        cur = new.execute(
                            f'INSERT OR IGNORE INTO "{table}" ({cols}) VALUES ({marks})',  # noqa: S608
                            row)
                        copied += cur.rowcount
                report.rows[table] = copied
            new.execute("COMMIT")
            new.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            new.close()
    finally:
        old.close()
    problems = check(fresh)
    if problems:
        raise StoreError(str(fresh), f"the repaired copy fails its check: {problems[0]}")
    for suffix in ("", "-wal", "-shm"):
        moved = Path(f"{src}{suffix}")
        if moved.exists():
            os.replace(moved, Path(f"{kept}{suffix}"))
    os.replace(fresh, src)
    for suffix in ("-wal", "-shm"):
        Path(f"{fresh}{suffix}").unlink(missing_ok=True)
    return report
