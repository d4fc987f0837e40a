"""The store migration that lists DST days an earlier version stored wrong (issue 12):
checked by interval count and instants, once, when a pre-version-4 store is opened."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from linky2mqtt.config import MeterConfig
from linky2mqtt.enedis import ProviderSettings
from linky2mqtt.model import PARIS, Kind, Step, day_bounds
from linky2mqtt.poller import MeterPoller
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import SCHEMA_VERSION, Store
from tests.support.bridge import data_requests
from tests.support.old_store import ReadingRow, old_store
from tests.support.upstream_client import one_try_client

PDL = "12345678901234"
MARCH, OCTOBER, NORMAL = date(2026, 3, 29), date(2026, 10, 25), date(2026, 7, 14)


def _grid(days: dict[date, list[int]], minutes: int = 30) -> list[ReadingRow]:
    """For each day, the intervals at those indexes (UTC starts every ``minutes`` from the
    local midnight); an index may repeat (stored once) or be out of the day."""
    return [(PDL, "consumption", f"PT{minutes}M",
             int((day_bounds(day)[0] + timedelta(minutes=minutes * i)).timestamp()), 100.0)
            for day, indexes in days.items() for i in sorted(set(indexes))]


def test_broken_dst_days_are_listed_well_formed_ones_are_not(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_store(path, 3, _grid({
        MARCH: [i for i in range(46) if i != 3],  # a half-hour lost
        OCTOBER: list(range(50)),  # whole
        date(2025, 10, 26): list(range(49)),  # the last half-hour lost
        NORMAL: list(range(40)),  # not a DST day: the poller's usual business
    }))
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        listed = store.repair_days(PDL, Kind.CONSUMPTION, "curve")
    assert set(listed) == {MARCH, date(2025, 10, 26)}
    assert listed[MARCH] == "no interval at 2026-03-29T00:30:00+00:00"


def test_misplaced_interval_off_the_grid_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    start = day_bounds(OCTOBER)[0] + timedelta(minutes=45)  # between two half-hours
    old_store(path, 3, [*_grid({OCTOBER: list(range(50))}),
                        (PDL, "consumption", "PT30M", int(start.timestamp()), 1.0)])
    with Store(path) as store:
        assert set(store.repair_days(PDL, Kind.CONSUMPTION, "curve")) == {OCTOBER}


def test_the_check_runs_once_and_a_new_store_has_nothing_to_repair(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_store(path, 3, _grid({MARCH: list(range(45))}))
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
    rows: list[ReadingRow] = [
        (pdl, "consumption", "PT30M", int((end - timedelta(minutes=30)).timestamp()), w / 2)
        for end, w, _ in raw[:-1]]  # the last half-hour lost
    rows.append((pdl, "consumption", "PT30M", int((day_bounds(OCTOBER)[0]
                                                   + timedelta(minutes=45)).timestamp()),
                 999.0))  # and one off the grid
    old_store(path, 3, rows, gaps=[(pdl, "consumption", "curve", OCTOBER.isoformat(), 5)])
    client = one_try_client(
        ProviderSettings("myelectricaldata", token="t", base_url=simulator.url))
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
    days = [negative, absurd, hour_day]
    good = [d for d in (date(2026, 11, 19) + timedelta(days=i) for i in range(10))
            if d not in days]
    daily = [(d, float(simulator.daily_wh(pdl, Kind.CONSUMPTION, d) or 0)) for d in good]
    daily += [(negative, -18654.0), (absurd, 1e12),
              (hour_day, float(simulator.daily_wh(pdl, Kind.CONSUMPTION, hour_day) or 0))]
    rows: list[ReadingRow] = [(pdl, "consumption", "P1D", int(day_bounds(d)[0].timestamp()),
                               wh) for d, wh in daily]
    raw = simulator.curve(pdl, Kind.CONSUMPTION, hour_day)
    assert raw is not None
    curve = [(end - timedelta(minutes=30), w / 2) for end, w, _ in raw]
    rows += [(pdl, "consumption", "PT30M", int(t.timestamp()), -v if i == 7 else v)
             for i, (t, v) in enumerate(curve)]
    old_store(path, 3, rows)
    client = one_try_client(
        ProviderSettings("myelectricaldata", token="t", base_url=simulator.url))
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
