"""Store.hourly_days: a window of days' clock hours from one read of the load curve; and
model.readings_hour_totals: the same hours from the readings just fetched.

The publisher's live path builds a backfill window's hourly batches from one query
(:meth:`Store.hourly_days`); each day must come out exactly as the per-day aggregation of
its readings (:func:`aggregate_hours`), DST days, mixed resolutions, a start stored at
two resolutions and holes included. One plain day is also checked against sums computed
here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from linky2mqtt.model import (
    DAILY,
    Kind,
    Reading,
    aggregate_hours,
    day_bounds,
    readings_hour_totals,
)
from linky2mqtt.store import Store, StoreError

PDL = "12345678901234"


def _curve(day: date, minutes: int, base: float) -> list[Reading]:
    start, end = day_bounds(day)
    out, t, i = [], start, 0
    while t < end:
        out.append(Reading(PDL, Kind.CONSUMPTION, f"PT{minutes}M", t, base + (i * 7) % 50))
        t += timedelta(minutes=minutes)
        i += 1
    return out


def test_hourly_days_equal_the_per_day_aggregation(tmp_path: Path) -> None:
    days = [date(2026, 3, 27) + timedelta(days=i) for i in range(5)]  # 29 March: 23 h
    days += [date(2026, 10, 23) + timedelta(days=i) for i in range(5)]  # 25 Oct: 25 h
    rows: list[Reading] = []
    for n, day in enumerate(days):
        rows += _curve(day, 10 if n % 3 == 0 else 30, 100.0 + n)
    # a start held at two resolutions, a hole, a daily value (ignored), another kind
    extra_at = day_bounds(days[1])[0] + timedelta(hours=5)
    rows.append(Reading(PDL, Kind.CONSUMPTION, "PT15M", extra_at, 999.0))
    hole = day_bounds(days[2])[0] + timedelta(hours=3)
    rows = [r for r in rows if not (r.start == hole and r.start.date() == hole.date())]
    rows.append(Reading(PDL, Kind.CONSUMPTION, DAILY, day_bounds(days[3])[0], 12345.0))
    rows += [Reading(PDL, Kind.PRODUCTION, "PT30M", r.start, 1.0) for r in _curve(days[4], 30, 0)]
    with Store(tmp_path / "s.db") as store:
        store.save_readings(rows)
        got = store.hourly_days(PDL, Kind.CONSUMPTION, days)
        assert sorted(got) == days
        for day in days:
            start, end = day_bounds(day)
            held = store.readings(PDL, Kind.CONSUMPTION, "curve", start, end)
            assert got[day] == aggregate_hours(held, day), day
            assert store.hourly_day(PDL, Kind.CONSUMPTION, day) == got[day]
        assert len(got[date(2026, 3, 29)].hours) == 23
        assert len(got[date(2026, 10, 25)].hours) == 25
        assert not got[days[2]].complete  # the hole
        # the start held at PT15M and PT30M counts once, as PT15M (first by resolution):
        # its hour is not covered
        assert not got[days[1]].complete
        assert all(got[d].complete for d in days if d not in (days[1], days[2]))
        # sparse days are read one by one, same answer
        sparse = store.hourly_days(PDL, Kind.CONSUMPTION, [days[0], days[-1]])
        assert sparse == {days[0]: got[days[0]], days[-1]: got[days[-1]]}
        assert store.hourly_days(PDL, Kind.CONSUMPTION, []) == {}
        empty = store.hourly_days(PDL, Kind.CONSUMPTION, [date(2025, 1, 1)])
        assert empty[date(2025, 1, 1)].hours == [] and not empty[date(2025, 1, 1)].complete


def test_a_plain_day_sums_its_half_hours(tmp_path: Path) -> None:
    day = date(2026, 11, 28)
    start = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # 00:00 Paris
    values = [float(10 * i) for i in range(48)]
    rows = [Reading(PDL, Kind.CONSUMPTION, "PT30M", start + timedelta(minutes=30 * i), v)
            for i, v in enumerate(values)]
    with Store(tmp_path / "s.db") as store:
        store.save_readings(rows)
        hourly = store.hourly_days(PDL, Kind.CONSUMPTION, [day])[day]
    assert hourly.complete
    assert [h.wh for h in hourly.hours] == [values[2 * i] + values[2 * i + 1] for i in range(24)]
    assert hourly.hours[0].start == start and hourly.hours[-1].end == start + timedelta(hours=24)


def _window(first: date, days: int, minutes: int, base: float) -> list[Reading]:
    out: list[Reading] = []
    for n in range(days):
        out += _curve(first + timedelta(days=n), minutes, base + 3.3 * n)
    return out


def test_hours_from_fetched_readings_equal_what_the_store_adds_up(tmp_path: Path) -> None:
    """What the publisher builds a batch from (the readings of a fetched window, when the
    store holds nothing else of those days) is what the store itself adds up: DST windows
    at every resolution, windows cut mid-day, holes, repeated starts (the last wins, as a
    save does), mixed resolutions, other series mixed in, any order."""
    march, october = date(2026, 3, 26), date(2026, 10, 22)  # windows over the DST days
    nov = date(2026, 11, 20)
    cases: dict[str, tuple[list[Reading], list[date]]] = {}
    for minutes in (10, 15, 30, 60):
        for first in (march, october, nov):
            days = [first + timedelta(days=i) for i in range(7)]
            cases[f"PT{minutes}M from {first}"] = (_window(first, 7, minutes, 80.0), days)
    full = _window(october, 7, 30, 80.0)
    days = [october + timedelta(days=i) for i in range(7)]
    cases["cut mid-day"] = (full[13:-29], days)
    cases["a hole"] = (full[:100] + full[103:], days)
    again = Reading(PDL, Kind.CONSUMPTION, "PT30M", full[49].start, 7.5)
    cases["a start twice"] = ([*full[:50], again, *full[50:]], days)
    finer = Reading(PDL, Kind.CONSUMPTION, "PT15M", full[60].start, 999.0)
    cases["two resolutions"] = ([*full, finer], days)
    cases["other series"] = (full + [Reading(PDL, Kind.PRODUCTION, "PT30M", r.start, 1.0)
                                     for r in full[:48]]
                             + [Reading(PDL, Kind.CONSUMPTION, DAILY, day_bounds(days[2])[0],
                                        5.0)], days)
    cases["reversed"] = (full[::-1], days)
    cases["some days asked"] = (full, [days[1], days[4]])
    cases["nothing fetched"] = ([], days)
    for n, (name, (readings, wanted)) in enumerate(sorted(cases.items())):
        with Store(tmp_path / f"{n}.db") as store:
            store.save_readings(readings)
            totals, held = readings_hour_totals(readings, Kind.CONSUMPTION, wanted)
            assert totals == store.hour_totals(PDL, Kind.CONSUMPTION, wanted), name
            start, end = day_bounds(min(wanted))[0], day_bounds(max(wanted))[1]
            assert held == store.curve_row_count(PDL, Kind.CONSUMPTION, start, end), name
    # the DST days come out with 23 and 25 hours, and complete
    totals, _ = readings_hour_totals(_window(march, 7, 30, 1.0) + _window(october, 7, 30, 1.0),
                                     Kind.CONSUMPTION, [date(2026, 3, 29), date(2026, 10, 25)])
    assert [len(t.hours) for t in totals.values()] == [23, 25]
    assert all(t.complete for t in totals.values())


def test_a_window_commit_counts_what_a_count_query_would(tmp_path: Path) -> None:
    """``Store.save_window`` counts the curve rows held over the window's span in the
    commit itself (from the rows the save reads anyway, and the meter's other
    resolutions): the same number as :meth:`Store.curve_row_count` asked afterwards,
    whatever was stored before (another resolution on those days, a start off the
    window's grid, rows just outside the span, another meter or kind)."""
    october = date(2026, 10, 22)
    days = [october + timedelta(days=i) for i in range(7)]  # holds the 25-hour day
    full = _window(october, 7, 30, 80.0)
    lo = int(day_bounds(days[0])[0].timestamp())
    hi = int(day_bounds(days[-1])[1].timestamp())
    before: dict[str, list[Reading]] = {
        "nothing": [],
        "the same rows": full,
        "another resolution": _curve(days[3], 15, 5.0)[:10],
        "another resolution, saved after a count": _curve(days[3], 15, 5.0)[:10],
        "off the grid": [Reading(PDL, Kind.CONSUMPTION, "PT30M",
                                 full[7].start + timedelta(minutes=10), 3.0)],
        "just outside": [*_curve(october - timedelta(days=1), 30, 1.0),
                         *_curve(days[-1] + timedelta(days=1), 10, 1.0)],
        "other series": [Reading(PDL, Kind.PRODUCTION, "PT30M", r.start, 1.0) for r in full]
        + [Reading("98765432109876", Kind.CONSUMPTION, "PT30M", r.start, 1.0) for r in full]
        + [Reading(PDL, Kind.CONSUMPTION, DAILY, day_bounds(days[2])[0], 5.0)],
    }
    windows: dict[str, list[Reading]] = {
        "whole": full, "cut mid-day": full[13:-29], "a hole": full[:100] + full[103:],
        "two resolutions": [*full, Reading(PDL, Kind.CONSUMPTION, "PT15M", full[60].start,
                                           9.0)],
        "with a daily value": [*full, Reading(PDL, Kind.CONSUMPTION, DAILY,
                                              day_bounds(days[1])[0], 5.0)],
    }
    n = 0
    for earlier, stored in before.items():
        for name, readings in windows.items():
            n += 1
            with Store(tmp_path / f"{n}.db") as store:
                if earlier.endswith("after a count"):
                    # the meter's resolutions are known (kept) before the PT15M rows come
                    store.save_window(full[:1], span=(lo, lo + 1800))
                store.save_readings(stored)
                _, counted = store.save_window(readings, span=(lo, hi))
                expected = store.curve_row_count(PDL, Kind.CONSUMPTION, day_bounds(days[0])[0],
                                                 day_bounds(days[-1])[1])
                assert counted == expected, (earlier, name, counted, expected)
    # not one meter and kind: nothing counted (the caller counts)
    with Store(tmp_path / "mixed.db") as store:
        mixed = [*full[:4], Reading(PDL, Kind.PRODUCTION, "PT30M", full[0].start, 1.0)]
        assert store.save_window(mixed, span=(lo, hi))[1] is None
        assert store.save_window([], span=(lo, hi)) == ([], None)
        assert store.save_window(full[:4])[1] is None  # no span asked


def test_a_window_commit_keeps_its_marks_with_the_readings_or_neither(tmp_path: Path) -> None:
    """The marks given to ``save_window`` (hourly batches to publish) are committed in the
    same transaction as the readings: both are there after it, and a commit that fails
    leaves neither."""
    day = date(2026, 11, 20)
    rows = _curve(day, 30, 10.0)
    topic = f"l2m/{PDL}/consumption/hour"
    with Store(tmp_path / "s.db") as store:
        store.save_window(rows, pending=[(topic, day.isoformat(), b"")])
        assert store.pending_batch_entries() == [(topic, day.isoformat(), b"")]
        assert len(store.readings(PDL, Kind.CONSUMPTION, "curve", *day_bounds(day))) == 48
        other = day + timedelta(days=1)
        bad: list[Any] = [(topic, other.isoformat(), b""), (None, "x", b"")]  # NOT NULL
        with pytest.raises(StoreError, match="NOT NULL"):
            store.save_window(_curve(other, 30, 10.0), pending=bad)
        assert store.pending_batch_entries() == [(topic, day.isoformat(), b"")]
        assert store.readings(PDL, Kind.CONSUMPTION, "curve", *day_bounds(other)) == []
        # marks alone (no readings) are written all the same
        store.save_window([], pending=[(topic, other.isoformat(), b"")])
        assert [k for _, k, _ in store.pending_batch_entries()] == [day.isoformat(),
                                                                     other.isoformat()]
