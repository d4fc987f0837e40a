"""The store migration that lists DST days an earlier version stored wrong (issue 12):
checked by interval count and instants, once, when a pre-version-4 store is opened."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

from linky2mqtt.model import Kind, day_bounds
from linky2mqtt.store import MIGRATIONS, SCHEMA_VERSION, Store

PDL = "12345678901234"
MARCH, OCTOBER, NORMAL = date(2026, 3, 29), date(2026, 10, 25), date(2026, 7, 14)


def _old_store(path: Path, days: dict[date, list[int]], minutes: int = 30) -> None:
    """A schema-3 store holding, for each day, the intervals at those indexes (UTC starts
    every ``minutes`` from the local midnight); an index may repeat or be out of the day."""
    conn = sqlite3.connect(path)
    for statements in MIGRATIONS[:3]:
        for sql in statements:
            conn.execute(sql)
    conn.execute("PRAGMA user_version = 3")
    for day, indexes in days.items():
        start = day_bounds(day)[0]
        for i in set(indexes):
            at = start + timedelta(minutes=minutes * i)
            conn.execute("INSERT INTO readings VALUES (?, 'consumption', ?, ?, 100.0, NULL,"
                         " NULL, 0)", (PDL, f"PT{minutes}M", int(at.timestamp())))
    conn.commit()
    conn.close()


def test_broken_dst_days_are_listed_well_formed_ones_are_not(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path, {
        MARCH: [i for i in range(46) if i != 3],  # a half-hour lost
        OCTOBER: list(range(50)),  # whole
        date(2025, 10, 26): list(range(49)),  # the last half-hour lost
        NORMAL: list(range(40)),  # not a DST day: the poller's usual business
    })
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        listed = store.repair_days(PDL, Kind.CONSUMPTION, "curve")
    assert set(listed) == {MARCH, date(2025, 10, 26)}
    assert listed[MARCH] == "no interval at 2026-03-29T00:30:00+00:00"


def test_misplaced_interval_off_the_grid_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path, {OCTOBER: list(range(50))})
    conn = sqlite3.connect(path)
    start = day_bounds(OCTOBER)[0] + timedelta(minutes=45)  # between two half-hours
    conn.execute("INSERT INTO readings VALUES (?, 'consumption', 'PT30M', ?, 1.0, NULL, NULL,"
                 " 0)", (PDL, int(start.timestamp())))
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert set(store.repair_days(PDL, Kind.CONSUMPTION, "curve")) == {OCTOBER}


def test_the_check_runs_once_and_a_new_store_has_nothing_to_repair(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path, {MARCH: list(range(45))})
    with Store(path) as store:
        assert set(store.repair_days(PDL, Kind.CONSUMPTION, "curve")) == {MARCH}
        store.clear_repair(PDL, Kind.CONSUMPTION, "curve", MARCH)
    with Store(path) as store:  # version 4 now: not scanned again
        assert store.repair_days(PDL, Kind.CONSUMPTION, "curve") == {}
    with Store(tmp_path / "new.db") as store:
        assert store.repair_days(PDL, Kind.CONSUMPTION, "curve") == {}
