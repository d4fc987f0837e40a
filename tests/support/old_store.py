"""A store file as an earlier release left it: the first migrations only, and rows
written straight into its tables (what the release stored, right or wrong)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from linky2mqtt.store import MIGRATIONS

# (pdl, kind, resolution, start_utc, value): quality and peak_at NULL, fetched_at 0
ReadingRow = tuple[str, str, str, int, float]
# (pdl, kind, series, day ISO, attempts): last_attempt 0
GapRow = tuple[str, str, str, str, int]


def old_store(path: Path, version: int, readings: Iterable[ReadingRow] = (),
              gaps: Iterable[GapRow] = ()) -> None:
    """Create ``path`` at schema ``version`` (MIGRATIONS[:version]) holding ``readings``
    and ``gaps``; opening it with :class:`~linky2mqtt.store.Store` migrates it."""
    conn = sqlite3.connect(path)
    try:
        for statements in MIGRATIONS[:version]:
            for sql in statements:
                conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.executemany(
            "INSERT INTO readings (pdl, kind, resolution, start_utc, value, quality, peak_at,"
            " fetched_at) VALUES (?, ?, ?, ?, ?, NULL, NULL, 0)", readings)
        conn.executemany(
            "INSERT INTO gaps (pdl, kind, series, day, attempts, last_attempt)"
            " VALUES (?, ?, ?, ?, ?, 0)", gaps)
        conn.commit()
    finally:
        conn.close()
