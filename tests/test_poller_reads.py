"""A poll reads each stored row at most once (issue 15: a restart lighter than the backfill).

A meter holding a year of daily values and of 30-minute curve up to yesterday restarts:
its poll must find nothing to ask for, without any upstream call, and walk each stored
row of ``readings`` at most once (the store counts the rows its read methods walk:
``Store.reading_rows_read``). Before the fix, every stored curve row was loaded twice per
poll (the days wanted, then "is yesterday still missing?").
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from linky2mqtt.config import MeterConfig
from linky2mqtt.enedis import EnedisClient, FetchResult, provider
from linky2mqtt.model import DAILY, PARIS, Kind, Reading, Step, day_bounds
from linky2mqtt.poller import MeterPoller
from linky2mqtt.store import Store

PDL = "12345678901234"
YESTERDAY = date(2026, 11, 28)
DAYS = 365


class NoUpstream:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the poll called upstream ({name}) with nothing missing")


def _fill(store: Store) -> int:
    rows: list[Reading] = []
    for i in range(DAYS):
        day = YESTERDAY - timedelta(days=i)
        start, end = day_bounds(day)
        rows.append(Reading(PDL, Kind.CONSUMPTION, DAILY, start, 1000.0 + i))
        t = start
        while t < end:
            rows.append(Reading(PDL, Kind.CONSUMPTION, "PT30M", t, 250.0))
            t += timedelta(minutes=30)
    store.save_readings(rows)
    return len(rows)


def test_a_poll_with_everything_stored_reads_each_row_at_most_once(tmp_path: Path) -> None:
    meter = MeterConfig(PDL, "home", steps=frozenset({Step.DAY, Step.HOUR}),
                        backfill_day=DAYS, backfill_hour=DAYS)
    with Store(tmp_path / "s.db") as store:
        stored = _fill(store)
        poller = MeterPoller(meter, cast(EnedisClient, NoUpstream()), store, account="dc")
        store.reading_rows_read = 0
        outcome = poller.poll(datetime(2026, 11, 29, 14, 0, tzinfo=PARIS))
        read = store.reading_rows_read
    assert outcome.error is None and outcome.requests_windows == 0
    assert not outcome.yesterday_missing
    assert outcome.left == 0
    assert 0 < read <= stored, (read, stored)


def test_yesterday_missing_is_still_seen(tmp_path: Path) -> None:
    """The shortcut keeps the answer: yesterday's curve absent -> yesterday_missing."""
    meter = MeterConfig(PDL, "home", steps=frozenset({Step.HOUR}), backfill_hour=2)
    with Store(tmp_path / "s.db") as store:
        start, end = day_bounds(YESTERDAY - timedelta(days=1))
        t, rows = start, []
        while t < end:
            rows.append(Reading(PDL, Kind.CONSUMPTION, "PT30M", t, 250.0))
            t += timedelta(minutes=30)
        store.save_readings(rows)
        poller = MeterPoller(meter, cast(EnedisClient, NoUpstream()), store, account="dc")
        # 07:00 Paris: yesterday is not published yet, so nothing is asked
        outcome = poller.poll(datetime(2026, 11, 29, 7, 0, tzinfo=PARIS))
    assert outcome.requests_windows == 0
    assert outcome.yesterday_missing


class YesterdayUpstream:
    """Answers yesterday's daily value and ``points`` half-hours of its curve."""

    def __init__(self, points: int) -> None:
        self.description = provider("dataconnect")
        self.points = points

    def daily(self, pdl: str, kind: Kind, start: date, end: date, **_: Any) -> FetchResult:
        assert (start, end) == (YESTERDAY, YESTERDAY + timedelta(days=1))
        return FetchResult([Reading(pdl, kind, DAILY, day_bounds(start)[0], 5000.0)], [])

    def curve(self, pdl: str, kind: Kind, start: date, end: date, **_: Any) -> FetchResult:
        assert (start, end) == (YESTERDAY, YESTERDAY + timedelta(days=1))
        begin = day_bounds(start)[0]
        return FetchResult([Reading(pdl, kind, "PT30M", begin + timedelta(minutes=30 * i),
                                    100.0) for i in range(self.points)], [])


def test_yesterday_fetched_by_the_poll_is_not_looked_up_again(tmp_path: Path) -> None:
    """The poll that stores yesterday knows from its own commit whether it is whole: the
    end of the poll reads none of its rows again (48 curve rows + 1 daily row, read once
    by the window's gap check); an incomplete yesterday is still seen as missing."""
    meter = MeterConfig(PDL, "home", steps=frozenset({Step.DAY, Step.HOUR}),
                        backfill_day=1, backfill_hour=1)
    now = datetime(2026, 11, 29, 14, 0, tzinfo=PARIS)
    for points, missing in ((48, False), (40, True)):
        with Store(tmp_path / f"s{points}.db") as store:
            poller = MeterPoller(meter, cast(EnedisClient, YesterdayUpstream(points)), store,
                                 account="dc")
            store.reading_rows_read = 0
            outcome = poller.poll(now)
            read = store.reading_rows_read
        assert outcome.error is None and outcome.requests_windows == 2
        assert outcome.yesterday_missing is missing
        if not missing:
            assert read == 48 + 1, read  # before: 2 x (48 + 1)
