"""The store migration that lists DST days an earlier version stored wrong (issue 12):
checked by interval count and instants, once, when a pre-version-4 store is opened."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

from linky2mqtt.config import MeterConfig
from linky2mqtt.enedis import (
    Budget,
    EnedisClient,
    MemoryLedger,
    ProviderSettings,
    RetryPolicy,
    default_windows,
    no_sleep,
)
from linky2mqtt.model import PARIS, Kind, Step, day_bounds
from linky2mqtt.poller import MeterPoller
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import MIGRATIONS, SCHEMA_VERSION, Store
from tests.support.bridge import data_requests
from tests.support.clock import SUITE_CLOCK

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


def test_poll_fetches_a_listed_day_once_and_drops_what_was_misplaced(
        tmp_path: Path, simulator: Simulator) -> None:
    """The repair through the poller, against the simulator: one request for the listed
    day (given up on long ago), the off-grid row gone, the day whole, the listing cleared."""
    pdl = "11111111111120"  # a 30-minute curve
    raw = simulator.curve(pdl, Kind.CONSUMPTION, OCTOBER)
    assert raw is not None
    path = tmp_path / "old.db"
    _old_store(path, {})
    conn = sqlite3.connect(path)
    rows = [(pdl, "PT30M", int((end - timedelta(minutes=30)).timestamp()), w / 2)
            for end, w, _ in raw[:-1]]  # the last half-hour lost
    rows.append((pdl, "PT30M", int((day_bounds(OCTOBER)[0] + timedelta(minutes=45))
                                   .timestamp()), 999.0))  # and one off the grid
    conn.executemany("INSERT INTO readings VALUES (?, 'consumption', ?, ?, ?, NULL, NULL, 0)",
                     rows)
    conn.execute("INSERT INTO gaps VALUES (?, 'consumption', 'curve', ?, 5, 0)",
                 (pdl, OCTOBER.isoformat()))
    conn.commit()
    conn.close()
    settings = ProviderSettings("myelectricaldata", token="t", base_url=simulator.url)
    client = EnedisClient(settings, budget=Budget(default_windows("myelectricaldata"),
                                                  MemoryLedger()),
                          retry=RetryPolicy(attempts=1, sleep=no_sleep), clock=SUITE_CLOCK)
    meter = MeterConfig(pdl, "m", steps=frozenset({Step.HOUR}), backfill_hour=1)
    now = datetime(2026, 11, 29, 10, 0, tzinfo=PARIS)
    with Store(path) as store:
        assert set(store.repair_days(pdl, Kind.CONSUMPTION, "curve")) == {OCTOBER}
        poller = MeterPoller(meter, client, store, account="a")
        before = data_requests(simulator, pdl)
        outcome = poller.poll(now)
        assert outcome.error is None
        # yesterday (the backfill) and the listed day: two windows, one request each
        assert data_requests(simulator, pdl) == before + 2
        assert OCTOBER in outcome.changed[(Kind.CONSUMPTION, "curve")]
        held = store.readings(pdl, Kind.CONSUMPTION, "curve", *day_bounds(OCTOBER))
        assert [(r.start, r.value) for r in held] == [
            (end - timedelta(minutes=30), w / 2) for end, w, _ in raw]
        assert store.repair_days(pdl, Kind.CONSUMPTION, "curve") == {}
        poller.poll(now + timedelta(hours=1))  # nothing more to ask
        assert data_requests(simulator, pdl) == before + 2
    client.close()


def test_impossible_values_an_earlier_version_stored_are_fetched_again(
        tmp_path: Path, simulator: Simulator) -> None:
    """A -18.654 kWh day, a 1e12 Wh day and a negative half-hour stored by an earlier
    version: listed at the upgrade, fetched once more, replaced by the true values."""
    pdl = "11111111111120"
    negative, absurd, hour_day = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
    path = tmp_path / "old.db"
    _old_store(path, {})
    conn = sqlite3.connect(path)
    days = [negative, absurd, hour_day]
    good = [d for d in (date(2026, 11, 19) + timedelta(days=i) for i in range(10))
            if d not in days]
    rows = [(pdl, "P1D", int(day_bounds(d)[0].timestamp()),
             float(simulator.daily_wh(pdl, Kind.CONSUMPTION, d) or 0)) for d in good]
    rows += [(pdl, "P1D", int(day_bounds(negative)[0].timestamp()), -18654.0),
             (pdl, "P1D", int(day_bounds(absurd)[0].timestamp()), 1e12),
             (pdl, "P1D", int(day_bounds(hour_day)[0].timestamp()),
              float(simulator.daily_wh(pdl, Kind.CONSUMPTION, hour_day) or 0))]
    raw = simulator.curve(pdl, Kind.CONSUMPTION, hour_day)
    assert raw is not None
    curve = [(end - timedelta(minutes=30), w / 2) for end, w, _ in raw]
    rows += [(pdl, "PT30M", int(t.timestamp()), -v if i == 7 else v)
             for i, (t, v) in enumerate(curve)]
    conn.executemany("INSERT INTO readings VALUES (?, 'consumption', ?, ?, ?, NULL, NULL, 0)",
                     rows)
    conn.commit()
    conn.close()
    settings = ProviderSettings("myelectricaldata", token="t", base_url=simulator.url)
    client = EnedisClient(settings, budget=Budget(default_windows("myelectricaldata"),
                                                  MemoryLedger()),
                          retry=RetryPolicy(attempts=1, sleep=no_sleep), clock=SUITE_CLOCK)
    meter = MeterConfig(pdl, "m", steps=frozenset({Step.DAY, Step.HOUR}), backfill_day=10,
                        backfill_hour=1)
    now = datetime(2026, 11, 29, 10, 0, tzinfo=PARIS)
    with Store(path) as store:
        assert set(store.repair_days(pdl, Kind.CONSUMPTION, "daily")) == {negative, absurd}
        assert set(store.repair_days(pdl, Kind.CONSUMPTION, "curve")) == {hour_day}
        outcome = MeterPoller(meter, client, store, account="a").poll(now)
        assert outcome.error is None
        held = store.daily_values(pdl, Kind.CONSUMPTION, negative, hour_day)
        assert held == {d: simulator.daily_wh(pdl, Kind.CONSUMPTION, d) for d in (negative,
                                                                                  absurd)}
        got = store.readings(pdl, Kind.CONSUMPTION, "curve", *day_bounds(hour_day))
        assert [(r.start, r.value) for r in got] == curve
        assert store.repair_days(pdl, Kind.CONSUMPTION, "daily") == {}
        assert store.repair_days(pdl, Kind.CONSUMPTION, "curve") == {}
    client.close()
