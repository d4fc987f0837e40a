"""The Home Assistant statistics sink against a fake HA over a real websocket on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from linky2mqtt.ha_statistics import (
    MemorySyncState,
    StatisticsSink,
    build_rows,
    statistic_id,
    websocket_url,
)
from linky2mqtt.model import Kind, day_bounds, local_iso
from tests.support.clock import HeldClock
from tests.support.fake_ha import FakeHA

PDL = "12345678901234"
SID = "linky2mqtt:12345678901234_consumption"
TOKEN = "fake-long-lived-token"


class Hours:
    """The bridge's hourly data: UTC hour start -> Wh, served like the store would."""

    def __init__(self) -> None:
        self.wh: dict[tuple[str, Kind], dict[datetime, float]] = {}
        self.calls = 0

    def add_days(self, first: date, days: int, kind: Kind = Kind.CONSUMPTION) -> datetime:
        series = self.wh.setdefault((PDL, kind), {})
        start = day_bounds(first)[0]
        end = day_bounds(first + timedelta(days=days))[0]
        moment = start
        while moment < end:
            series[moment] = self.value(moment)
            moment += timedelta(hours=1)
        return start

    @staticmethod
    def value(moment: datetime) -> float:
        n = int(moment.timestamp() // 3600)
        return float(250 + (n * 37) % 900)  # 250..1149 Wh, deterministic

    def __call__(
        self, pdl: str, kind: Kind, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        self.calls += 1
        series = self.wh.get((pdl, kind), {})
        return sorted((t, v) for t, v in series.items() if start <= t < end)

    def total_kwh(self, kind: Kind = Kind.CONSUMPTION) -> float:
        return round(sum(self.wh[(PDL, kind)].values()) / 1000, 6)


@pytest.fixture
def fake_ha() -> Iterator[FakeHA]:
    server = FakeHA(token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock(datetime(2026, 11, 29, 7, 30, tzinfo=UTC))


def make_sink(
    fake: FakeHA, state: MemorySyncState, clock: HeldClock, hours: Hours, **kw: object
) -> StatisticsSink:
    kw.setdefault("backoff", (5.0, 60.0))
    kw.setdefault("timeout", 5.0)
    return StatisticsSink(fake.url, kw.pop("token", TOKEN), state, clock, hours_source=hours, **kw)  # type: ignore[arg-type]


def assert_consistent(fake: FakeHA, hours: Hours) -> list[dict[str, object]]:
    """Every row's state is the hour's kWh; sums start at the first state and add up."""
    rows = fake.rows(SID)
    series = hours.wh[(PDL, Kind.CONSUMPTION)]
    assert [r["start"] for r in rows] == sorted(series)
    running = 0.0
    for row in rows:
        start = row["start"]
        assert isinstance(start, datetime)
        assert row["state"] == series[start] / 1000
        running += series[start]
        assert row["sum"] == round(running / 1000, 6)
    sums = [r["sum"] for r in rows]
    assert sums == sorted(sums)  # monotonic
    assert rows[-1]["sum"] == hours.total_kwh()
    return rows


def test_first_import_of_seven_days(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    since = hours.add_days(date(2026, 11, 1), 7)
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, since)
    assert state.stats_dirty_since(SID) == since

    report = sink.sync()

    assert report.ok, report
    assert report.rows == {SID: 168}
    assert report.calls == 1
    rows = assert_consistent(fake_ha, hours)
    assert len(rows) == 168
    assert rows[0]["sum"] == rows[0]["state"]  # continues from 0: nothing earlier in HA
    assert state.stats_dirty_since(SID) is None
    call = fake_ha.import_calls[0]
    assert call.starts[0] == "2026-11-01T00:00:00+01:00"
    assert call.starts[-1] == "2026-11-07T23:00:00+01:00"
    meta = fake_ha.statistics[SID].metadata
    assert meta == {
        "source": "linky2mqtt",
        "statistic_id": SID,
        "name": "Linky 12345678901234 consumption",
        "unit_of_measurement": "kWh",
        "unit_class": "energy",
        "has_mean": False,
        "mean_type": 0,
        "has_sum": True,
    }
    sink.close()


def test_second_run_continues_the_sum(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 7))
    assert sink.sync().ok
    before = fake_ha.rows(SID)

    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 8), 1))
    report = sink.sync()

    assert report.rows == {SID: 24}
    assert [c.rows for c in fake_ha.import_calls] == [168, 24]
    rows = assert_consistent(fake_ha, hours)
    assert rows[:168] == before
    assert rows[168]["sum"] == round(before[-1]["sum"] + rows[168]["state"], 6)  # no restart at 0
    assert fake_ha.connections == 1  # the connection was reused
    sink.close()


def test_restart_continues_and_picks_up_dirty_marks(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    first = make_sink(fake_ha, state, clock, hours)
    first.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 7))
    assert first.sync().ok
    # new data stored and notified, then the process dies before syncing
    first.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 8), 2))
    first.close()

    second = make_sink(fake_ha, state, clock, hours, series=[(PDL, Kind.CONSUMPTION)])
    report = second.sync()

    assert report.rows == {SID: 48}
    rows = assert_consistent(fake_ha, hours)
    assert len(rows) == 216
    assert state.stats_dirty_since(SID) is None
    second.close()


def test_backfill_of_older_hours_rewrites_following_rows(
    fake_ha: FakeHA, clock: HeldClock
) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 5), 3))
    assert sink.sync().ok
    assert len(fake_ha.rows(SID)) == 72

    # the backfill brings four older days
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 4))
    report = sink.sync()

    assert report.rows == {SID: 168}  # the 96 new hours and the 72 shifted ones
    rows = assert_consistent(fake_ha, hours)
    assert len(rows) == 168
    assert rows[0]["sum"] == rows[0]["state"]


def test_correction_in_the_middle_keeps_earlier_rows(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 7))
    assert sink.sync().ok
    before = fake_ha.rows(SID)

    day4 = day_bounds(date(2026, 11, 4))[0]
    hours.wh[(PDL, Kind.CONSUMPTION)][day4 + timedelta(hours=5)] = 4321.0
    sink.notify(PDL, Kind.CONSUMPTION, day4 + timedelta(hours=5))
    report = sink.sync()

    assert report.rows == {SID: 168 - 72 - 5}
    rows = assert_consistent(fake_ha, hours)
    assert rows[: 72 + 5] == before[: 72 + 5]
    assert rows[77]["state"] == 4.321


def test_rerun_after_mark_dirty_rewrites_identical_rows(
    fake_ha: FakeHA, clock: HeldClock
) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    start = hours.add_days(date(2026, 11, 1), 7)
    sink.notify(PDL, Kind.CONSUMPTION, start)
    assert sink.sync().ok
    before = fake_ha.rows(SID)
    imports = [c for c in fake_ha.commands if c["type"] == "recorder/import_statistics"]
    first_payload = imports[-1]["stats"]

    state.stats_mark_dirty(SID, start)
    report = sink.sync()

    assert report.rows == {SID: 168}
    assert fake_ha.rows(SID) == before
    imports = [c for c in fake_ha.commands if c["type"] == "recorder/import_statistics"]
    assert len(imports) == 2
    assert imports[-1]["stats"] == first_payload


def test_dst_days_give_23_and_25_rows(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 3, 28), 2))
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 10, 24), 2))
    report = sink.sync()

    assert report.rows == {SID: 24 + 23 + 24 + 25}
    rows = assert_consistent(fake_ha, hours)
    starts = [local_iso(r["start"]) for r in rows]  # type: ignore[arg-type]
    assert len(set(starts)) == len(starts)
    march = [s for s in starts if s.startswith("2026-03-29")]
    october = [s for s in starts if s.startswith("2026-10-25")]
    assert len(march) == 23
    assert len(october) == 25
    assert march[:3] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    assert october[1:5] == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    sent = [s for call in fake_ha.import_calls for s in call.starts]
    assert sent == starts  # what went over the wire, offsets included


def test_nothing_dirty_sends_nothing(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours, series=[(PDL, Kind.CONSUMPTION)])
    assert sink.sync().calls == 0
    assert fake_ha.connections == 0  # not even connected

    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 7))
    assert sink.sync().calls == 1
    sent = len(fake_ha.commands)

    for _ in range(3):
        report = sink.sync()
        assert report.ok
        assert report.calls == 0
        assert report.rows == {}
    assert len(fake_ha.commands) == sent
    assert len(fake_ha.import_calls) == 1
    assert sum(c.rows for c in fake_ha.import_calls) == 168


def test_ha_down_keeps_dirty_then_imports(
    fake_ha: FakeHA, clock: HeldClock, caplog: pytest.LogCaptureFixture
) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    since = hours.add_days(date(2026, 11, 1), 7)
    sink.notify(PDL, Kind.CONSUMPTION, since)
    fake_ha.down()

    with caplog.at_level(logging.DEBUG, logger="linky2mqtt.ha_statistics"):
        report = sink.sync()
        assert report.pending == (SID,)
        assert report.error is not None
        assert state.stats_dirty_since(SID) == since
        clock.advance(1)
        assert sink.sync().error == "waiting before reconnecting"  # backoff: not even tried
        clock.advance(10)
        assert sink.sync().pending == (SID,)  # tried again, still down

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "Home Assistant unavailable" in warnings[0].getMessage()

    fake_ha.up()
    assert sink.sync().error == "waiting before reconnecting"  # second backoff step: 60 s
    clock.advance(61)
    report = sink.sync()
    assert report.ok, report
    assert report.rows == {SID: 168}
    assert_consistent(fake_ha, hours)
    assert state.stats_dirty_since(SID) is None


def test_dropped_connection_is_reopened(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 7))
    assert sink.sync().ok
    fake_ha.down()  # HA restarts: the idle connection dies
    fake_ha.up()

    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 8), 1))
    report = sink.sync()

    assert report.ok, report
    assert report.rows == {SID: 24}
    assert fake_ha.connections == 2
    assert_consistent(fake_ha, hours)


def test_auth_failure_is_clear_and_never_shows_the_token(
    fake_ha: FakeHA, clock: HeldClock, caplog: pytest.LogCaptureFixture
) -> None:
    hours, state = Hours(), MemorySyncState()
    secret = "s3cr3t-token-value-0123456789"
    sink = make_sink(fake_ha, state, clock, hours, token=secret)
    since = hours.add_days(date(2026, 11, 1), 1)
    sink.notify(PDL, Kind.CONSUMPTION, since)

    with caplog.at_level(logging.DEBUG):
        report = sink.sync()

    assert fake_ha.auth_failures == 1
    assert report.error == (
        "Home Assistant refused the access token: Invalid access token or password"
    )
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "statistics: Home Assistant refused the access token: Invalid access token or "
        "password; check homeassistant.statistics.token"
    ]
    assert secret not in caplog.text
    assert secret not in repr(report)
    assert state.stats_dirty_since(SID) == since
    assert fake_ha.import_calls == []


def test_chunked_writes(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours, chunk_size=50)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 7))

    report = sink.sync()

    assert report.calls == 4
    assert [c.rows for c in fake_ha.import_calls] == [50, 50, 50, 18]
    assert len(assert_consistent(fake_ha, hours)) == 168


def test_sum_found_beyond_the_lookback_window(fake_ha: FakeHA, clock: HeldClock) -> None:
    """A gap of weeks: the sum continues from the last row HA holds (month query)."""
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 9, 1), 2))
    assert sink.sync().ok
    last_september = fake_ha.rows(SID)[-1]["sum"]

    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 1))
    assert sink.sync().ok

    rows = fake_ha.rows(SID)
    assert rows[48]["start"] == day_bounds(date(2026, 11, 1))[0]
    assert rows[48]["sum"] == round(last_september + rows[48]["state"], 6)
    assert_consistent(fake_ha, hours)


def test_sum_found_earlier_in_the_same_month(fake_ha: FakeHA, clock: HeldClock) -> None:
    """HA reduces a month over all its hours: the month of ``since`` is read hour by hour."""
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 9, 1), 1))
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 2))
    assert sink.sync().ok
    before = fake_ha.rows(SID)

    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 20), 1))
    assert sink.sync().rows == {SID: 24}

    rows = assert_consistent(fake_ha, hours)
    assert rows[:72] == before
    assert rows[72]["sum"] == round(before[-1]["sum"] + rows[72]["state"], 6)

    # a re-run from there: the November month row now includes the rows being rewritten
    state.stats_mark_dirty(SID, day_bounds(date(2026, 11, 20))[0])
    assert sink.sync().rows == {SID: 24}
    assert fake_ha.rows(SID) == rows


def test_back_to_back_syncs_wait_for_queued_imports(clock: HeldClock) -> None:
    """HA answers an import before its recorder applied it: the sink waits to see it."""
    fake = FakeHA(token=TOKEN, lag=0.3).start()
    try:
        hours, state = Hours(), MemorySyncState()
        sink = make_sink(fake, state, clock, hours)
        for day in range(1, 4):
            sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, day), 1))
            assert sink.sync().rows == {SID: 24}
        assert len(assert_consistent(fake, hours)) == 72
        lagging = make_sink(fake, MemorySyncState(), clock, hours, confirm_timeout=0.05)
        hours.add_days(date(2026, 11, 4), 1)
        lagging.notify(PDL, Kind.CONSUMPTION, day_bounds(date(2026, 11, 4))[0])
        report = lagging.sync()
        assert report.pending == (SID,)  # not seen yet: kept dirty for the next run
        assert report.error is not None
        assert "not_confirmed" in report.error
    finally:
        fake.stop()


def test_production_and_consumption_are_separate(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours, name_for=lambda p, k: f"Home {k.value}")
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 1))
    sink.notify(PDL, Kind.PRODUCTION, hours.add_days(date(2026, 11, 1), 1, Kind.PRODUCTION))

    report = sink.sync()

    prod = "linky2mqtt:12345678901234_production"
    assert report.rows == {SID: 24, prod: 24}
    assert fake_ha.statistics[prod].metadata["name"] == "Home production"
    assert fake_ha.rows(prod)[-1]["sum"] == hours.total_kwh(Kind.PRODUCTION)


def test_notify_during_sync_is_not_lost(fake_ha: FakeHA, clock: HeldClock) -> None:
    hours, state = Hours(), MemorySyncState()
    later = day_bounds(date(2026, 11, 8))[0]

    def source(
        pdl: str, kind: Kind, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        out = hours(pdl, kind, start, end)
        if hours.calls == 1:  # the bridge stores and notifies a new day meanwhile
            hours.add_days(date(2026, 11, 8), 1)
            sink.notify(PDL, Kind.CONSUMPTION, later)
        return out

    sink = StatisticsSink(fake_ha.url, TOKEN, state, clock, hours_source=source)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 7))
    assert sink.sync().rows == {SID: 168}
    assert state.stats_dirty_since(SID) == later
    assert sink.sync().rows == {SID: 24}
    assert_consistent(fake_ha, hours)


def test_list_statistic_ids_and_ping(fake_ha: FakeHA, clock: HeldClock) -> None:
    from linky2mqtt.ha_statistics import HAConnection

    hours, state = Hours(), MemorySyncState()
    sink = make_sink(fake_ha, state, clock, hours)
    sink.notify(PDL, Kind.CONSUMPTION, hours.add_days(date(2026, 11, 1), 1))
    assert sink.sync().ok
    conn = HAConnection(websocket_url(fake_ha.url), TOKEN, timeout=5)
    try:
        listed = conn.call("recorder/list_statistic_ids", statistic_type="sum")
        assert listed == [
            {
                "statistic_id": SID,
                "display_unit_of_measurement": "kWh",
                "has_mean": False,
                "mean_type": 0,
                "has_sum": True,
                "name": "Linky 12345678901234 consumption",
                "source": "linky2mqtt",
                "statistics_unit_of_measurement": "kWh",
                "unit_class": "energy",
            }
        ]
        got = conn.call(
            "recorder/statistics_during_period",
            start_time="2026-11-01T00:00:00+01:00",
            end_time="2026-11-01T02:00:00+01:00",
            statistic_ids=[SID],
            period="hour",
            types=["sum", "state"],
        )
        first = day_bounds(date(2026, 11, 1))[0]
        assert got == {
            SID: [
                {
                    "start": int(first.timestamp() * 1000),
                    "end": int(first.timestamp() * 1000) + 3_600_000,
                    "state": Hours.value(first) / 1000,
                    "sum": Hours.value(first) / 1000,
                },
                {
                    "start": int(first.timestamp() * 1000) + 3_600_000,
                    "end": int(first.timestamp() * 1000) + 7_200_000,
                    "state": Hours.value(first + timedelta(hours=1)) / 1000,
                    "sum": round(
                        (Hours.value(first) + Hours.value(first + timedelta(hours=1))) / 1000, 6
                    ),
                },
            ]
        }
        with pytest.raises(Exception, match="Unknown command"):
            conn.call("recorder/nope")
    finally:
        conn.close()


def test_fake_rejects_what_home_assistant_rejects(fake_ha: FakeHA) -> None:
    from linky2mqtt.ha_statistics import HAConnection, HAError

    meta = {
        "source": "linky2mqtt",
        "statistic_id": SID,
        "name": "x",
        "unit_of_measurement": "kWh",
        "unit_class": "energy",
        "has_mean": False,
        "mean_type": 0,
        "has_sum": True,
    }
    conn = HAConnection(websocket_url(fake_ha.url), TOKEN, timeout=5)
    try:
        cases = [
            ({**meta, "source": "other"}, "2026-11-01T00:00:00+01:00", "Invalid source"),
            ({k: v for k, v in meta.items() if k != "mean_type"}, "2026-11-01T00:00:00+01:00",
             "mean_type"),
            (meta, "2026-11-01T00:30:00+01:00", "Invalid timestamp"),
            (meta, "2026-11-01T00:00:00", "Naive timestamp"),
        ]  # fmt: skip
        for metadata, start, message in cases:
            with pytest.raises(HAError, match=message):
                conn.call(
                    "recorder/import_statistics",
                    metadata=metadata,
                    stats=[{"start": start, "state": 1.0, "sum": 1.0}],
                )
    finally:
        conn.close()
    assert fake_ha.statistics == {}


def test_helpers() -> None:
    assert websocket_url("http://ha.local:8123") == "ws://ha.local:8123/api/websocket"
    assert websocket_url("https://ha.example.org/") == "wss://ha.example.org/api/websocket"
    assert websocket_url("ws://10.0.0.2:8123/api/websocket") == "ws://10.0.0.2:8123/api/websocket"
    with pytest.raises(ValueError):
        websocket_url("ftp://x")
    assert statistic_id(PDL, Kind.PRODUCTION) == "linky2mqtt:12345678901234_production"
    with pytest.raises(ValueError):
        statistic_id(PDL, Kind.MAX_POWER)
    t0 = datetime(2026, 11, 1, 0, tzinfo=UTC)
    rows = build_rows([(t0 + timedelta(hours=1), 200.0), (t0, 100.0)], t0, 5.0)
    assert rows == [
        {"start": "2026-11-01T01:00:00+01:00", "state": 0.1, "sum": 5.1},
        {"start": "2026-11-01T02:00:00+01:00", "state": 0.2, "sum": 5.3},
    ]
