"""Store.hourly_days: a window of days' clock hours from one read of the load curve.

The publisher's live path builds a backfill window's hourly batches from one query
(:meth:`Store.hourly_days`); each day must come out exactly as the per-day aggregation of
its readings (:func:`aggregate_hours`), DST days, mixed resolutions, a start stored at
two resolutions and holes included. One plain day is also checked against sums computed
here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from linky2mqtt.model import DAILY, Kind, Reading, aggregate_hours, day_bounds
from linky2mqtt.store import Store

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
