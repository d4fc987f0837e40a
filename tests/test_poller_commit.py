"""A fetched window is committed in one transaction with what the account thread asks to
keep with it (the marks of the hourly batches to publish), and the commit counts the
load-curve rows the store then holds over the window's days, for the publisher (which
then asks no count of its own). A real store; the upstream is a stand-in answering
fixed readings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

from linky2mqtt.config import MeterConfig
from linky2mqtt.enedis import EnedisClient, FetchResult
from linky2mqtt.enedis.providers import DAYS_PER_CALL
from linky2mqtt.model import DAILY, PARIS, Kind, Reading, Series, Step, day_bounds
from linky2mqtt.poller import MeterPoller
from linky2mqtt.store import Store

PDL = "12345678901234"
TODAY = date(2026, 11, 29)
NOW = datetime.combine(TODAY, time(9), PARIS)
TOPIC = f"l2m/{PDL}/consumption/hour"


def _curve(day: date, minutes: int = 30) -> list[Reading]:
    start, end = day_bounds(day)
    out, t, i = [], start, 0
    while t < end:
        out.append(Reading(PDL, Kind.CONSUMPTION, f"PT{minutes}M", t, 100.0 + i))
        t += timedelta(minutes=minutes)
        i += 1
    return out


@dataclass
class _Description:
    days_per_call: Any = None


class Upstream:
    """Answers every day asked with a whole day of 30-minute curve (or daily values)."""

    def __init__(self) -> None:
        self.description = _Description(DAYS_PER_CALL)

    def curve(self, pdl: str, kind: Kind, start: date, end: date, **_: Any) -> FetchResult:
        days = [start + timedelta(days=i) for i in range((end - start).days)]
        return FetchResult([r for d in days for r in _curve(d)], [])

    def daily(self, pdl: str, kind: Kind, start: date, end: date, **_: Any) -> FetchResult:
        days = [start + timedelta(days=i) for i in range((end - start).days)]
        return FetchResult([Reading(PDL, kind, DAILY, day_bounds(d)[0], 9000.0)
                            for d in days], [])


def _poller(store: Store, steps: set[Step]) -> tuple[MeterPoller, list[tuple[Any, ...]]]:
    meter = MeterConfig(PDL, "home", steps=frozenset(steps), backfill_day=3,
                        backfill_hour=3)
    poller = MeterPoller(meter, cast(EnedisClient, Upstream()), store, account="a")
    calls: list[tuple[Any, ...]] = []

    def before(kind: Kind, series: Series, days: set[date]) -> list[tuple[str, str, bytes]]:
        calls.append(("before", series, sorted(days), list(store.pending_batch_entries())))
        return [(TOPIC, d.isoformat(), b"") for d in sorted(days)] if series == "curve" else []

    def after(kind: Kind, series: Series, fetched: set[date], changed: set[date],
              now: datetime, readings: list[Reading], rows: int | None) -> None:
        span = day_bounds(min(fetched))[0], day_bounds(max(fetched))[1]
        calls.append(("after", series, sorted(fetched), list(store.pending_batch_entries()),
                      rows, store.curve_row_count(PDL, kind, *span)))

    poller.before_commit = before
    poller.after_commit = after
    return poller, calls


def test_the_marks_go_in_with_the_readings_and_the_commit_counts_the_days(
        tmp_path: Path) -> None:
    days = [TODAY - timedelta(days=i) for i in (3, 2, 1)]
    with Store(tmp_path / "s.db") as store:
        # another resolution held on one of the days (an older meter setting)
        store.save_readings(_curve(days[1], minutes=10)[:6])
        poller, calls = _poller(store, {Step.HOUR, Step.DAY})
        outcome = poller.poll(NOW)
    assert outcome.error is None
    curve = [c for c in calls if c[1] == "curve"]
    assert [c[0] for c in curve] == ["before", "after"]
    before, after = curve
    assert before[2] == days and before[3] == []  # nothing pending before the commit
    assert after[2] == days
    assert after[3] == [(TOPIC, d.isoformat(), b"") for d in days]  # committed with them
    # 3 days of 48 half-hours, and the 6 rows at 10 minutes: the commit's count is the
    # store's
    assert after[4] == after[5] == 3 * 48 + 6
    daily = [c for c in calls if c[1] == "daily"]
    assert [c[0] for c in daily] == ["before", "after"]
    assert daily[1][3] == daily[0][3]  # the daily window added no mark
    assert daily[1][4] is None  # and was not counted


def test_a_day_under_repair_is_not_counted_by_the_commit(tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    """A repair deletes rows after the commit: then the commit's count would be stale, so
    none is given (the publisher counts for itself)."""
    days = [TODAY - timedelta(days=i) for i in (3, 2, 1)]
    with Store(tmp_path / "s.db") as store:
        monkeypatch.setattr(store, "repair_days", lambda *_: {days[0]: "a test"})
        poller, calls = _poller(store, {Step.HOUR})
        assert poller.poll(NOW).error is None
    after = [c for c in calls if c[0] == "after"]
    assert len(after) == 1 and after[0][4] is None
    assert after[0][3] == [(TOPIC, d.isoformat(), b"") for d in days]
