"""The SQLite store: readings (DST days included), gaps, ledger, batches, migrations,
concurrency, and clear errors for unwritable files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from linky2mqtt.model import DAILY, PARIS, Kind, Reading, day_bounds
from linky2mqtt.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError
from tests.support.clock import SteppedClock

PDL = "12345678901234"
MARCH_DST = date(2026, 3, 29)  # 23 h: 46 half-hours
OCTOBER_DST = date(2026, 10, 25)  # 25 h: 50 half-hours


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime.fromtimestamp(1_790_000_000.0, UTC))


@pytest.fixture
def store(tmp_path: Path, clock: SteppedClock) -> Iterator[Store]:
    s = Store(tmp_path / "linky2mqtt.db", clock=clock)
    yield s
    s.close()


def daily(day: date, wh: float, kind: Kind = Kind.CONSUMPTION, quality: str = "BRUT") -> Reading:
    return Reading(PDL, kind, DAILY, day_bounds(day)[0], wh, quality)


def curve(day: date, step: int = 30, value: float = 100.0, skip: int = -1) -> list[Reading]:
    start, end = day_bounds(day)
    n = int((end - start).total_seconds()) // (60 * step)
    return [
        Reading(PDL, Kind.CONSUMPTION, f"PT{step}M", start + timedelta(minutes=step * i), value + i)
        for i in range(n)
        if i != skip
    ]


# -- basics --------------------------------------------------------------------------------


def test_wal_mode_and_current_schema(store: Store, tmp_path: Path) -> None:
    assert store.journal_mode == "wal"
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    raw = sqlite3.connect(tmp_path / "linky2mqtt.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_readings_round_trip_ordered_with_peak_and_quality(store: Store) -> None:
    peak = datetime(2026, 11, 28, 11, 6, 20, tzinfo=UTC)
    saved = [
        daily(date(2026, 11, 28), 12345.0),
        daily(date(2026, 11, 27), 9876.0, quality="CORRIGE"),
        Reading(PDL, Kind.MAX_POWER, DAILY, day_bounds(date(2026, 11, 28))[0], 4638.0, None, peak),
    ]
    assert store.save_readings(saved) == saved
    got = store.readings(
        PDL, Kind.CONSUMPTION, "daily", *_span(date(2026, 11, 1), date(2026, 12, 1))
    )
    assert [(r.local_date, r.value, r.quality) for r in got] == [
        (date(2026, 11, 27), 9876.0, "CORRIGE"),
        (date(2026, 11, 28), 12345.0, "BRUT"),
    ]
    assert got[1] == saved[0]
    assert got[0].start.tzinfo is not None
    assert store.max_power_values(PDL, date(2026, 11, 28), date(2026, 11, 29)) == {
        date(2026, 11, 28): (4638.0, peak)
    }
    assert store.daily_quality(PDL, Kind.CONSUMPTION, date(2026, 11, 27)) == "CORRIGE"
    assert store.daily_quality(PDL, Kind.CONSUMPTION, date(2026, 11, 26)) is None
    assert store.fetched_at(PDL, Kind.CONSUMPTION, DAILY, day_bounds(date(2026, 11, 28))[0]) == (
        datetime.fromtimestamp(1_790_000_000.0, UTC)
    )
    # other kinds and PDLs do not leak in
    assert store.readings("99999999999999", Kind.CONSUMPTION, "daily", *_span()) == []
    assert store.readings(PDL, Kind.PRODUCTION, "daily", *_span()) == []


def _span(
    start: date = date(2026, 1, 1), end: date = date(2027, 1, 1)
) -> tuple[datetime, datetime]:
    return day_bounds(start)[0], day_bounds(end)[0]


def test_daily_values_latest_day_and_days_with_daily_end_exclusive(store: Store) -> None:
    store.save_readings([daily(date(2026, 11, d), 1000.0 * d) for d in (1, 2, 5, 28)])
    assert store.latest_daily_day(PDL, Kind.CONSUMPTION) == date(2026, 11, 28)
    assert store.latest_daily_day(PDL, Kind.PRODUCTION) is None
    assert store.days_with_daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 5)) == {
        date(2026, 11, 1),
        date(2026, 11, 2),
    }
    assert store.daily_values(PDL, Kind.CONSUMPTION, date(2026, 11, 2), date(2026, 12, 1)) == {
        date(2026, 11, 2): 2000.0,
        date(2026, 11, 5): 5000.0,
        date(2026, 11, 28): 28000.0,
    }


def test_daily_rows_on_dst_days_map_to_their_local_day(store: Store) -> None:
    store.save_readings([daily(MARCH_DST, 23.0), daily(OCTOBER_DST, 25.0)])
    assert store.daily_values(PDL, Kind.CONSUMPTION, date(2026, 3, 28), date(2026, 10, 27)) == {
        MARCH_DST: 23.0,
        OCTOBER_DST: 25.0,
    }


# -- load curve and DST ---------------------------------------------------------------------


def test_dst_days_keep_46_and_50_half_hours(store: Store) -> None:
    march, october = curve(MARCH_DST), curve(OCTOBER_DST)
    assert (len(march), len(october)) == (46, 50)
    assert store.save_readings(march + october) == march + october
    got_march = store.readings(PDL, Kind.CONSUMPTION, "curve", *day_bounds(MARCH_DST))
    got_october = store.readings(PDL, Kind.CONSUMPTION, "curve", *day_bounds(OCTOBER_DST))
    assert got_march == march
    assert got_october == october
    # the repeated 02:00-03:00 local hour of October is there twice, as distinct UTC starts
    local_two = [r for r in got_october if r.start.astimezone(PARIS).hour == 2]
    assert len(local_two) == 4
    assert len({r.start for r in local_two}) == 4
    assert store.days_with_complete_curve(PDL, Kind.CONSUMPTION, MARCH_DST, date(2026, 11, 1)) == {
        MARCH_DST,
        OCTOBER_DST,
    }
    # daily and curve classes stay apart
    assert store.readings(PDL, Kind.CONSUMPTION, "daily", *day_bounds(OCTOBER_DST)) == []


def test_complete_curve_needs_every_interval(store: Store) -> None:
    normal = date(2026, 11, 27)
    store.save_readings(curve(normal, skip=17))  # 47 of 48
    store.save_readings(curve(date(2026, 11, 28), step=60))  # 24 of 24, PT60M
    store.save_readings(curve(OCTOBER_DST, skip=49))  # 49 of 50: the last half-hour missing
    store.save_readings(curve(MARCH_DST, step=10))  # 138 of 138 at PT10M
    got = store.days_with_complete_curve(PDL, Kind.CONSUMPTION, date(2026, 3, 1), date(2026, 12, 1))
    assert got == {date(2026, 11, 28), MARCH_DST}
    # filling the hole completes the day
    store.save_readings(curve(normal))
    got = store.days_with_complete_curve(PDL, Kind.CONSUMPTION, normal, normal + timedelta(1))
    assert got == {normal}
    # end is exclusive
    assert store.days_with_complete_curve(PDL, Kind.CONSUMPTION, date(2026, 3, 1), normal) == {
        MARCH_DST
    }


def test_save_readings_returns_only_new_or_changed(store: Store, clock: SteppedClock) -> None:
    day = curve(date(2026, 11, 28))
    assert len(store.save_readings(day)) == 48
    clock.t += 60
    assert store.save_readings(day) == []
    changed = Reading(PDL, Kind.CONSUMPTION, "PT30M", day[5].start, 999.0)
    requalified = daily(date(2026, 11, 28), 5.0, quality="BRUT")
    assert store.save_readings([requalified]) == [requalified]
    corrected = daily(date(2026, 11, 28), 5.0, quality="CORRIGE")
    assert store.save_readings([*day, changed, corrected]) == [changed, corrected]
    assert store.readings(PDL, Kind.CONSUMPTION, "curve", day[5].start, day[6].start)[0].value == (
        999.0
    )
    # fetched_at moves only for rows actually written
    assert store.fetched_at(PDL, Kind.CONSUMPTION, "PT30M", day[0].start) == (
        datetime.fromtimestamp(1_790_000_000.0, UTC)
    )
    assert store.fetched_at(PDL, Kind.CONSUMPTION, "PT30M", day[5].start) == (
        datetime.fromtimestamp(1_790_000_060.0, UTC)
    )
    assert store.save_readings([]) == []


def test_naive_datetime_is_refused_and_nothing_written(store: Store) -> None:
    good = daily(date(2026, 11, 1), 1.0)
    naive = Reading(PDL, Kind.CONSUMPTION, DAILY, datetime(2026, 11, 2), 2.0)
    with pytest.raises(ValueError, match="naive"):
        store.save_readings([good, naive])
    assert store.latest_daily_day(PDL, Kind.CONSUMPTION) is None  # rolled back


# -- gaps, ledger ----------------------------------------------------------------------------


def test_gap_attempts(store: Store) -> None:
    day = date(2026, 11, 3)
    assert store.gap_attempts(PDL, Kind.CONSUMPTION, "curve", day) == 0
    assert store.record_gap(PDL, Kind.CONSUMPTION, "curve", day, 100.0) == 1
    assert store.record_gap(PDL, Kind.CONSUMPTION, "curve", day, 200.0) == 2
    assert store.record_gap(PDL, Kind.CONSUMPTION, "daily", day, 200.0) == 1
    assert store.record_gap(PDL, Kind.PRODUCTION, "curve", day, 200.0) == 1
    assert store.gap_attempts(PDL, Kind.CONSUMPTION, "curve", day) == 2
    assert store.gaps(PDL, Kind.CONSUMPTION, "curve") == {day: (2, 200.0)}
    store.clear_gap(PDL, Kind.CONSUMPTION, "curve", day)
    assert store.gap_attempts(PDL, Kind.CONSUMPTION, "curve", day) == 0
    assert store.gap_attempts(PDL, Kind.CONSUMPTION, "daily", day) == 1


def test_a_gap_asked_again_the_same_day_counts_once(store: Store) -> None:
    day = date(2026, 11, 3)
    # days begin at 1000 and 2000: asked at 1100, 1500 and 1900 (late retries, a
    # restart), then at 2100 the next day
    assert store.record_gap(PDL, Kind.CONSUMPTION, "curve", day, 1100.0,
                            counted_from=1000.0) == 1
    assert store.record_gap(PDL, Kind.CONSUMPTION, "curve", day, 1500.0,
                            counted_from=1000.0) == 1
    assert store.record_gap(PDL, Kind.CONSUMPTION, "curve", day, 1900.0,
                            counted_from=1000.0) == 1
    assert store.gaps(PDL, Kind.CONSUMPTION, "curve") == {day: (1, 1900.0)}
    assert store.record_gap(PDL, Kind.CONSUMPTION, "curve", day, 2100.0,
                            counted_from=2000.0) == 2
    assert store.gaps(PDL, Kind.CONSUMPTION, "curve") == {day: (2, 2100.0)}


def test_ledger_record_load_and_prune(tmp_path: Path) -> None:
    t0 = 1_790_000_000.0
    s = Store(tmp_path / "l.db")
    for dt in (0.0, 1.0, 2.5):
        s.record_request("conso", t0 + dt)
    s.record_request("dataconnect:metering", t0 + 1.0)
    assert s.request_times("conso", t0 + 1.0) == [t0 + 1.0, t0 + 2.5]
    assert s.request_times("conso", 0.0) == [t0, t0 + 1.0, t0 + 2.5]
    # three days later, recording prunes what is older than two days
    s.record_request("conso", t0 + 3 * 86400)
    assert s.request_times("conso", 0.0) == [t0 + 3 * 86400]
    assert s.request_times("dataconnect:metering", 0.0) == []
    s.close()
    # the ledger survives a restart
    s = Store(tmp_path / "l.db")
    assert s.request_times("conso", 0.0) == [t0 + 3 * 86400]
    s.close()


# -- publication state -----------------------------------------------------------------------


def _batch(day: str, value: float) -> bytes:
    return json.dumps({"pdl": PDL, "date": day, "points": [{"value": value}]}).encode()


def test_pending_batches_replace_by_date_and_ack(tmp_path: Path, clock: SteppedClock) -> None:
    topic = f"linky2mqtt/{PDL}/consumption/hour"
    s = Store(tmp_path / "b.db", clock=clock)
    old, new, other = _batch("2026-11-27", 1.0), _batch("2026-11-27", 2.0), _batch("2026-11-28", 3)
    s.add_pending_batch(topic, old)
    clock.t += 1
    s.add_pending_batch(topic, other)
    clock.t += 1
    s.add_pending_batch(topic, new)  # replaces `old`: same topic and date
    assert s.pending_batches() == [(topic, other), (topic, new)]
    s.ack_batch(topic, old)  # a late PUBACK of the replaced payload
    assert s.pending_batches() == [(topic, other), (topic, new)]
    s.close()
    s = Store(tmp_path / "b.db", clock=clock)  # survives a restart
    assert s.pending_batches() == [(topic, other), (topic, new)]
    s.ack_batch(topic, new)
    assert s.pending_batches() == [(topic, other)]
    s.ack_batch(topic, other)
    assert s.pending_batches() == []
    # explicit keys; a payload without a date is keyed by its hash
    s.add_pending_batch(topic, "2026-11-29", b"x")
    s.add_pending_batch(topic, b"not json")
    assert s.pending_batch_entries()[0] == (topic, "2026-11-29", b"x")
    s.ack_batch(topic, "2026-11-29", b"x")
    s.ack_batch(topic, b"not json")
    assert s.pending_batches() == []
    s.close()


def test_retained_announced_status(store: Store) -> None:
    store.set_retained("b/1/consumption/day", b'{"date":"2026-11-28"}')
    store.set_retained("b/bridge/info", b"{}")
    store.set_retained("b/1/consumption/day", b'{"date":"2026-11-29"}')
    assert store.get_retained("b/1/consumption/day") == b'{"date":"2026-11-29"}'
    assert store.all_retained() == [
        ("b/1/consumption/day", b'{"date":"2026-11-29"}'),
        ("b/bridge/info", b"{}"),
    ]
    assert store.all_retained("b/bridge/") == [("b/bridge/info", b"{}")]
    assert store.retained_payload("b/1/consumption/day") == b'{"date":"2026-11-29"}'

    assert store.announced_meters() == set()
    store.set_announced(PDL, True)
    store.set_announced("22516914714270", True)
    store.set_announced(PDL, True)
    store.set_announced("22516914714270", False)
    assert store.announced_meters() == {PDL}


def test_stats_sync_keeps_earliest_mark(store: Store) -> None:
    sid = "linky2mqtt:12345678901234_consumption"
    t1 = datetime(2026, 11, 27, 23, tzinfo=UTC)
    t2 = datetime(2026, 11, 28, 23, tzinfo=UTC)
    assert store.stats_dirty_since(sid) is None
    store.stats_mark_dirty(sid, t2)
    store.stats_mark_dirty(sid, t1)
    store.stats_mark_dirty(sid, t2)
    assert store.stats_dirty_since(sid) == t1
    store.stats_mark_clean(sid, upto=t1 - timedelta(hours=1))  # a newer mark stays
    assert store.stats_dirty_since(sid) == t1
    store.stats_mark_clean(sid)
    assert store.stats_dirty_since(sid) is None


# -- migrations ------------------------------------------------------------------------------


def test_older_schema_is_migrated_keeping_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute(
        "INSERT INTO readings VALUES (?, 'consumption', 'P1D', ?, 12345.0, 'BRUT', NULL, 1.0)",
        (PDL, int(day_bounds(date(2026, 11, 28))[0].timestamp())),
    )
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()

    s = Store(path)
    assert s.schema_version == SCHEMA_VERSION
    assert s.daily_values(PDL, Kind.CONSUMPTION, date(2026, 11, 28), date(2026, 11, 29)) == {
        date(2026, 11, 28): 12345.0
    }
    s.add_pending_batch("t", _batch("2026-11-28", 1.0))  # tables of later versions exist
    s.stats_mark_dirty("x", datetime(2026, 11, 28, tzinfo=UTC))
    assert s.pending_batches() == [("t", _batch("2026-11-28", 1.0))]
    s.close()
    s = Store(path)  # opening again is a no-op
    assert s.schema_version == SCHEMA_VERSION
    s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer") as err:
        Store(path)
    assert str(path) in str(err.value)


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_writers_from_threads_and_two_connections(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    a, b = Store(path), Store(path)  # e.g. the bridge and a `fetch` run
    errors: list[BaseException] = []
    n_threads, per_thread = 6, 50
    base = day_bounds(date(2026, 1, 1))[0]

    def work(i: int) -> None:
        s = a if i % 2 else b
        try:
            for j in range(per_thread):
                start = base + timedelta(minutes=30 * (i * per_thread + j))
                s.save_readings([Reading(PDL, Kind.CONSUMPTION, "PT30M", start, float(j))])
                s.record_request(f"scope{i}", 1_790_000_000.0 + j)
                s.record_gap(PDL, Kind.CONSUMPTION, "curve", date(2026, 1, 1), float(j))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    rows = a.readings(PDL, Kind.CONSUMPTION, "curve", base, base + timedelta(days=30))
    assert len(rows) == n_threads * per_thread
    assert all(len(a.request_times(f"scope{i}", 0.0)) == per_thread for i in range(n_threads))
    assert a.gap_attempts(PDL, Kind.CONSUMPTION, "curve", date(2026, 1, 1)) == (
        n_threads * per_thread
    )
    a.close()
    b.close()


# -- errors ----------------------------------------------------------------------------------


def test_missing_directory_is_a_store_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "linky2mqtt.db"
    with pytest.raises(StoreError) as err:
        Store(path)
    assert str(path) in str(err.value)
    assert "does not exist" in str(err.value)


def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    s = Store(tmp_path / "x.db")
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.latest_daily_day(PDL, Kind.CONSUMPTION)


def test_database_full_rolls_back_and_keeps_the_file_sound(tmp_path: Path) -> None:
    """A size limit on the database stands in for a full disk (portable)."""
    path = tmp_path / "full.db"
    s = Store(path)
    s.save_readings(curve(date(2026, 11, 1)))
    s._read(lambda c: c.execute("PRAGMA max_page_count = 20"))  # test-only hook
    with pytest.raises(StoreError, match="full") as err:
        for k in range(2, 29):
            s.save_readings(curve(date(2026, 11, k)))
    assert str(path) in str(err.value)
    held = s.days_with_complete_curve(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 12, 1))
    assert date(2026, 11, 1) in held
    s.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    # every day that is there is there whole: the failed write left nothing behind
    reopened = Store(path)
    stored = reopened.readings(PDL, Kind.CONSUMPTION, "curve", *_span())
    complete = reopened.days_with_complete_curve(
        PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 12, 1)
    )
    assert len(stored) == 48 * len(complete)
    reopened.close()


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real full disk, then a real read-only file system (root only)."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_real_full_disk_then_read_only_mount(small_mount: Path) -> None:
    path = small_mount / "linky2mqtt.db"
    s = Store(path)
    first = curve(date(2026, 1, 1))
    s.save_readings(first)
    with pytest.raises(StoreError) as err:
        for k in range(2, 400):
            s.save_readings(curve(date(2026, 1, 1) + timedelta(days=k)))
    assert str(path) in str(err.value)
    assert "disk full" in str(err.value)
    assert s.readings(PDL, Kind.CONSUMPTION, "curve", *day_bounds(date(2026, 1, 1))) == first
    s.close()

    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    with pytest.raises(StoreError, match="read-only") as err:
        Store(path)
    assert str(path) in str(err.value)
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()


def test_version_5_drops_the_unused_meter_status_table(tmp_path: Path) -> None:
    """A store written by version 4 (which had ``meter_status``) loses that table and
    keeps everything else."""
    path = tmp_path / "v4.db"
    with Store(path) as s:
        s.set_retained("b/bridge/info", b"{}")
    raw = sqlite3.connect(path)
    for table in ("tempo_days", "contract_checks"):  # versions 6 and 7: not in version 4
        raw.execute(f"DROP TABLE {table}")
    raw.execute("CREATE TABLE meter_status (pdl TEXT PRIMARY KEY, status TEXT NOT NULL, "
                "updated REAL NOT NULL) WITHOUT ROWID")
    raw.execute("INSERT INTO meter_status VALUES ('12345678901234', '{}', 0)")
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 7
        assert s.get_retained("b/bridge/info") is not None
    raw = sqlite3.connect(path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    raw.close()
    assert "meter_status" not in tables
    assert {"readings", "retained", "announced", "stats_sync", "repairs"} <= tables
