"""Parsing of upstream bodies (both shapes) and hourly aggregation, incl. DST days."""

from __future__ import annotations

import contextlib
import itertools
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linky2mqtt.enedis.errors import BadResponse
from linky2mqtt.enedis.parse import parse_curve, parse_daily, parse_max_power
from linky2mqtt.model import PARIS, Kind, Reading, aggregate_hours, day_bounds

PDL = "12345678901234"


def stamps_for(day: date, minutes: int) -> list[tuple[datetime, str]]:
    """(UTC start, Enedis naive END stamp) of every interval of a local day."""
    first, last = day_bounds(day)
    out = []
    t = first
    while t < last:
        local = t.astimezone(PARIS).replace(tzinfo=None) + timedelta(minutes=minutes)
        out.append((t, local.strftime("%Y-%m-%d %H:%M:%S")))
        t += timedelta(minutes=minutes)
    return out


def wall_stamps_for(day: date, minutes: int) -> list[tuple[datetime, str]]:
    """(UTC start, END stamp in the wall-clock time in force at the end instant)."""
    return [(t, (t + timedelta(minutes=minutes)).astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S"))
            for t, _ in stamps_for(day, minutes)]


def body_2026(points: list[dict[str, Any]], unit: str = "W") -> dict[str, Any]:
    return {
        "idPrm": PDL,
        "grandeur": [{"grandeurMetier": "CONS", "unite": unit, "points": points}],
    }


def body_v5(points: list[dict[str, Any]], unit: str = "W", wrapped: bool = True) -> Any:
    inner = {"usage_point_id": PDL, "reading_type": {"unit": unit}, "interval_reading": points}
    return {"meter_reading": inner} if wrapped else inner


def curve_2026(day: date, minutes: int, watts: int = 1000) -> dict[str, Any]:
    pts = [
        {"v": str(watts + i), "d": s, "p": f"PT{minutes}M", "n": "B"}
        for i, (_, s) in enumerate(stamps_for(day, minutes))
    ]
    return body_2026(pts)


# -- daily ------------------------------------------------------------------------------


def test_daily_2026_body_from_the_docs() -> None:
    body = {
        "idPrm": "99999999999991",
        "pas": "P1D",
        "grandeur": [
            {
                "grandeurMetier": "CONS",
                "grandeurPhysique": "EA",
                "unite": "Wh",
                "points": [{"v": "33495", "d": "2026-09-29"}, {"v": "38022", "d": "2026-09-30"}],
            }
        ],
    }
    readings = parse_daily(body, PDL, Kind.CONSUMPTION)
    assert [(r.start, r.value, r.resolution) for r in readings] == [
        (datetime(2026, 9, 28, 22, tzinfo=UTC), 33495.0, "P1D"),
        (datetime(2026, 9, 29, 22, tzinfo=UTC), 38022.0, "P1D"),
    ]
    assert readings[0].local_date == date(2026, 9, 29)


@pytest.mark.parametrize("wrapped", [True, False])
def test_daily_v5_wrapped_or_bare(wrapped: bool) -> None:
    pts: list[dict[str, Any]] = [
        {"value": "11776", "date": "2023-04-01"},
        {"value": 14401, "date": "2023-04-02"},
    ]
    readings = parse_daily(body_v5(pts, "Wh", wrapped), PDL, Kind.PRODUCTION)
    assert [(r.local_date, r.value, r.kind) for r in readings] == [
        (date(2023, 4, 1), 11776.0, Kind.PRODUCTION),
        (date(2023, 4, 2), 14401.0, Kind.PRODUCTION),
    ]


def test_daily_kwh_unsorted_zero_and_missing_values() -> None:
    pts = [
        {"v": "2.5", "d": "2026-10-03"},
        {"v": "0", "d": "2026-10-01"},
        {"d": "2026-10-02"},  # no value: a gap
    ]
    readings = parse_daily(body_2026(pts, "kWh"), PDL, Kind.CONSUMPTION)
    assert [(r.local_date, r.value) for r in readings] == [
        (date(2026, 10, 1), 0.0),
        (date(2026, 10, 3), 2500.0),
    ]


def test_daily_drops_days_outside_the_asked_range() -> None:
    pts = [{"v": "1", "d": "2026-10-01"}, {"v": "2", "d": "2026-10-02"}]
    readings = parse_daily(body_2026(pts, "Wh"), PDL, Kind.CONSUMPTION, date(2026, 10, 2))
    assert [r.local_date for r in readings] == [date(2026, 10, 2)]


def test_daily_on_dst_days_starts_at_local_midnight() -> None:
    pts = [{"v": "10", "d": "2026-03-29"}, {"v": "20", "d": "2026-10-25"}]
    readings = parse_daily(body_2026(pts, "Wh"), PDL, Kind.CONSUMPTION)
    assert [r.start for r in readings] == [
        datetime(2026, 3, 28, 23, tzinfo=UTC),
        datetime(2026, 10, 24, 22, tzinfo=UTC),
    ]


# -- max power --------------------------------------------------------------------------


def test_max_power_va_and_peak_time() -> None:
    body = body_2026([{"v": "5890", "d": "2026-09-29 13:03:35"}], "VA")
    (r,) = parse_max_power(body, PDL)
    assert r.kind is Kind.MAX_POWER
    assert r.resolution == "P1D"
    assert r.value == 5890.0
    assert r.start == datetime(2026, 9, 28, 22, tzinfo=UTC)
    assert r.peak_at == datetime(2026, 9, 29, 11, 3, 35, tzinfo=UTC)


def test_max_power_v5_kva() -> None:
    pts = [{"value": "6.2", "date": "2023-01-10 19:00:00"}]
    (r,) = parse_max_power(body_v5(pts, "kVA"), PDL)
    assert r.value == 6200.0
    assert r.peak_at == datetime(2023, 1, 10, 18, tzinfo=UTC)


# -- load curve -------------------------------------------------------------------------


def test_curve_normal_day_half_hours() -> None:
    day = date(2026, 9, 29)
    readings = parse_curve(curve_2026(day, 30, 4078), PDL, Kind.CONSUMPTION)
    assert len(readings) == 48
    assert readings[0].start == datetime(2026, 9, 28, 22, tzinfo=UTC)
    assert readings[0].value == 2039.0  # 4078 W over 30 min
    assert readings[1].value == 2039.5  # 4079 W over 30 min
    assert readings[-1].start == datetime(2026, 9, 29, 21, 30, tzinfo=UTC)
    assert all(r.resolution == "PT30M" for r in readings)
    assert {r.local_date for r in readings} == {day}


@pytest.mark.parametrize("minutes", [10, 15, 30, 60])
@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25), date(2026, 7, 14)])
def test_curve_every_step_and_dst_day(minutes: int, day: date) -> None:
    expected = stamps_for(day, minutes)
    hours = {date(2026, 3, 29): 23, date(2026, 10, 25): 25}.get(day, 24)
    assert len(expected) == hours * 60 // minutes
    readings = parse_curve(curve_2026(day, minutes), PDL, Kind.CONSUMPTION)
    assert [r.start for r in readings] == [t for t, _ in expected]
    assert [r.value for r in readings] == [(1000 + i) * minutes / 60 for i in range(len(expected))]
    assert {r.resolution for r in readings} == {f"PT{minutes}M"}


def test_october_repeated_stamps_first_is_summer_time() -> None:
    pts = [
        {"v": "100", "d": "2026-10-25 02:30:00", "p": "PT30M"},
        {"v": "200", "d": "2026-10-25 03:00:00", "p": "PT30M"},
        {"v": "300", "d": "2026-10-25 02:30:00", "p": "PT30M"},
        {"v": "400", "d": "2026-10-25 03:00:00", "p": "PT30M"},
    ]
    readings = parse_curve(body_2026(pts), PDL, Kind.CONSUMPTION)
    assert [(r.start, r.value) for r in readings] == [
        (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 50.0),  # 02:00-02:30 +02:00
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 100.0),  # 02:30-03:00 +02:00
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 150.0),  # 02:00-02:30 +01:00
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), 200.0),  # 02:30-03:00 +01:00
    ]


def test_october_day_unsorted_keeps_both_occurrences() -> None:
    day = date(2026, 10, 25)
    body = curve_2026(day, 30)
    points = body["grandeur"][0]["points"]
    # sort by stamp text: the repeated stamps now sit side by side (in their order)
    points.sort(key=lambda p: p["d"])
    points.reverse()
    points.sort(key=lambda p: p["d"], reverse=True)  # stable: repeated pairs keep order
    readings = parse_curve(body, PDL, Kind.CONSUMPTION)
    assert len(readings) == 50
    assert [r.start for r in readings] == [t for t, _ in stamps_for(day, 30)]


def test_march_day_has_46_half_hours_without_0230_0300() -> None:
    body = curve_2026(date(2026, 3, 29), 30)
    stamps = [p["d"][11:16] for p in body["grandeur"][0]["points"]]
    assert "02:30" not in stamps
    assert "03:00" not in stamps
    readings = parse_curve(body, PDL, Kind.CONSUMPTION)
    assert len(readings) == 46
    starts = [r.start for r in readings]
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(starts))


def test_curve_unsorted_v5_kw_strings_zeros_and_gaps() -> None:
    pts: list[dict[str, Any]] = [
        {"value": "0", "date": "2026-07-14 01:00:00", "interval_length": "PT30M"},
        {"value": "1.5", "date": "2026-07-14 00:30:00", "interval_length": "PT30M"},
        {"value": None, "date": "2026-07-14 01:30:00", "interval_length": "PT30M"},
        {"value": 2, "date": "2026-07-14 02:30:00", "interval_length": "PT30M"},
    ]
    readings = parse_curve(body_v5(pts, "kW", wrapped=False), PDL, Kind.PRODUCTION)
    assert [(r.start, r.value) for r in readings] == [
        (datetime(2026, 7, 13, 22, 0, tzinfo=UTC), 750.0),
        (datetime(2026, 7, 13, 22, 30, tzinfo=UTC), 0.0),
        (datetime(2026, 7, 14, 0, 0, tzinfo=UTC), 1000.0),
    ]


def test_curve_step_from_reading_type_or_gap_when_points_lack_it() -> None:
    pts = [{"value": "600", "date": f"2026-07-14 0{h}:00:00"} for h in (1, 2, 3)]
    readings = parse_curve(body_v5(pts), PDL, Kind.CONSUMPTION)
    assert [(r.resolution, r.value) for r in readings] == [("PT60M", 600.0)] * 3
    body = body_v5(pts)
    body["meter_reading"]["reading_type"]["interval_length"] = "PT15M"
    readings = parse_curve(body, PDL, Kind.CONSUMPTION)
    assert [(r.resolution, r.value) for r in readings] == [("PT15M", 150.0)] * 3


def test_curve_duplicate_point_is_dropped_not_doubled() -> None:
    pts = [{"v": "100", "d": "2026-07-14 01:00:00", "p": "PT30M"}] * 2
    readings = parse_curve(body_2026(pts), PDL, Kind.CONSUMPTION)
    assert [r.value for r in readings] == [50.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON object"),
        ("<html>", "expected a JSON object"),
        ({"detail": "x"}, "unexpected body shape"),
        ({"grandeur": {}}, "'grandeur' is not a list"),
        ({"grandeur": [{"points": 3}]}, "'points' is not a list"),
        (body_2026([{"v": "1"}]), "no date"),
        (body_2026([{"v": "abc", "d": "2026-07-14 01:00:00", "p": "PT30M"}]), "not a number"),
        (body_2026([{"v": "NaN", "d": "2026-07-14 01:00:00", "p": "PT30M"}]), "not finite"),
        (body_2026([{"v": "1", "d": "14/07/2026", "p": "PT30M"}]), "unreadable date"),
        (body_2026([{"v": "1", "d": "2026-02-30 01:00:00", "p": "PT30M"}]), "invalid date"),
        (body_2026([{"v": "1", "d": "2026-07-14 01:00:00", "p": "PT7M"}]), "unsupported step"),
        (body_2026([{"v": "1", "d": "2026-07-14 01:00:00", "p": "P1D"}]), "unexpected step"),
        (body_2026([{"v": "1", "d": "2026-07-14 01:00:00", "p": "PT30M"}], "MW"), "unit"),
        (body_2026([{"v": "1", "d": "2026-07-14 01:00:00"}]), "no step"),
    ],
)
def test_garbage_is_bad_response(body: Any, message: str) -> None:
    with pytest.raises(BadResponse, match=message):
        parse_curve(body, PDL, Kind.CONSUMPTION)


# -- hourly aggregation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "count"), [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 7, 14), 24)]
)
@pytest.mark.parametrize("minutes", [10, 15, 30, 60])
def test_hours_of_a_day(day: date, count: int, minutes: int) -> None:
    readings = parse_curve(curve_2026(day, minutes, 600), PDL, Kind.CONSUMPTION)
    hourly = aggregate_hours(readings, day)
    assert hourly.complete
    assert len(hourly.hours) == count
    first, last = day_bounds(day)
    assert hourly.hours[0].start == first
    assert hourly.hours[-1].end == last
    per_hour = 60 // minutes
    for i, hour in enumerate(hourly.hours):
        watts = [600 + i * per_hour + k for k in range(per_hour)]
        assert hour.wh == sum(w * minutes / 60 for w in watts)
        assert hour.end - hour.start == timedelta(hours=1)
    assert sum(h.wh for h in hourly.hours) == sum(r.value for r in readings)


def test_october_hours_both_two_o_clocks() -> None:
    day = date(2026, 10, 25)
    hourly = aggregate_hours(parse_curve(curve_2026(day, 30), PDL, Kind.CONSUMPTION), day)
    local = [h.start.astimezone(PARIS).isoformat() for h in hourly.hours[1:5]]
    assert local == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_hours_with_gaps_are_incomplete_and_only_present_hours_listed() -> None:
    day = date(2026, 7, 14)
    readings = parse_curve(curve_2026(day, 30), PDL, Kind.CONSUMPTION)
    del readings[10:12]  # hour 5 (both halves) missing
    del readings[5]  # half of hour 2 missing
    hourly = aggregate_hours(readings, day)
    assert not hourly.complete
    assert len(hourly.hours) == 23
    assert [h.complete for h in hourly.hours].count(False) == 1
    assert hourly.hours[2].wh == 1004 / 2
    assert not hourly.hours[2].complete
    assert aggregate_hours([], day).hours == []


# -- properties -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
POINT_VALUE = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["0", "12.5", "1e3", "", "  7 "]),
)
STAMP = st.one_of(
    st.text(max_size=25),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S")
    ),
    st.sampled_from(["2026-10-25 02:30:00", "2026-10-25 03:00:00", "2026-03-29 02:30:00"]),
)
STEP = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["PT10M", "PT15M", "PT1H"]))
POINT = st.fixed_dictionaries({}, optional={"v": POINT_VALUE, "d": STAMP, "p": STEP})


def _curve(body: Any) -> list[Reading]:
    return parse_curve(body, PDL, Kind.CONSUMPTION)


def _daily(body: Any) -> list[Reading]:
    return parse_daily(body, PDL, Kind.CONSUMPTION)


def _max_power(body: Any) -> list[Reading]:
    return parse_max_power(body, PDL)


PARSERS = (_curve, _daily, _max_power)


@settings(max_examples=300, deadline=None)
@given(body=JSON)
def test_property_arbitrary_bodies_never_crash(body: Any) -> None:
    for parse in PARSERS:
        with contextlib.suppress(BadResponse):
            parse(body)


@settings(max_examples=300, deadline=None)
@given(points=st.lists(POINT, max_size=12), unit=st.sampled_from(["W", "kW", "x", None]))
def test_property_arbitrary_points_never_crash(points: list[dict[str, Any]], unit: Any) -> None:
    body = {"grandeur": [{"unite": unit, "points": points}]}
    for parse in PARSERS:
        try:
            readings = parse(body)
        except BadResponse:
            continue
        for r in readings:
            assert r.start.tzinfo is not None
            aggregate_hours(readings, r.local_date)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    day=st.sampled_from([date(2026, 3, 29), date(2026, 10, 25), date(2026, 1, 5)]),
    minutes=st.sampled_from([10, 15, 30, 60]),
    seed=st.integers(0, 2**32),
    kilo=st.booleans(),
    wall=st.booleans(),
)
def test_property_energy_conserved_curve_to_hours(
    day: date, minutes: int, seed: int, kilo: bool, wall: bool
) -> None:
    rng = random.Random(seed)
    intervals = wall_stamps_for(day, minutes) if wall else stamps_for(day, minutes)
    points = []
    truth: dict[datetime, float] = {}
    for start, stamp in intervals:
        if rng.random() < 0.1:
            continue  # a missing point
        watts = rng.choice([0, rng.randint(0, 12000)])
        truth[start] = watts * minutes / 60
        value: Any = str(watts / 1000) if kilo else rng.choice([watts, str(watts)])
        points.append({"v": value, "d": stamp, "p": f"PT{minutes}M"})
    # shuffle, but keep the relative order of repeated stamps (their meaning)
    order = list(range(len(points)))
    rng.shuffle(order)
    shuffled = [points[i] for i in order]
    by_stamp: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        by_stamp.setdefault(p["d"], []).append(p)
    cursor = {k: 0 for k in by_stamp}
    for i, p in enumerate(shuffled):
        shuffled[i] = by_stamp[p["d"]][cursor[p["d"]]]
        cursor[p["d"]] += 1
    readings = parse_curve(body_2026(shuffled, "kW" if kilo else "W"), PDL, Kind.CONSUMPTION)
    got = {r.start: r.value for r in readings}
    assert len(got) == len(readings)
    # every interval given is where it belongs with its value...
    for start, wh in got.items():
        assert wh == pytest.approx(truth[start], abs=1e-6)
    # ...and one is left out only when missing neighbours leave its DST stamp ambiguous
    for start in set(truth) - set(got):
        local = start.astimezone(PARIS)
        assert day in (date(2026, 3, 29), date(2026, 10, 25)) and 1 <= local.hour <= 3
    hourly = aggregate_hours(readings, day)
    assert sum(h.wh for h in hourly.hours) == pytest.approx(sum(got.values()), abs=1e-3)
    assert hourly.complete == (len(got) == len(intervals))
    assert len(hourly.hours) <= len(intervals) * minutes // 60


# -- the common stamp shapes are read in C; the result is the pattern's, byte for byte -----


@pytest.mark.parametrize("stamp", [
    "2026-11-28 00:30:00", "2026-11-28T23:59:59", "2026-03-29 02:30:00", "2026-10-25 02:00:00",
    "2026-11-28", "2024-02-29", "2026-02-29", "2026-02-30 00:00:00", "2026-11-28 24:00:00",
    "2026-11-28 00:60:00", "2026-13-01", "2026-1a-28", "2026-11-28x00:30:00",
    "2026-11-28 00:30:0Z", "2026-11-28 00:30", "2026-11-28 00:30:00Z",
    "2026-11-28 00:30:00+01:00", "2026-11-28T00:30:00.000", "\u0662026-11-28 00:30:00",
    "2026-11-28 0\u0663:30:00", "2026-11-28\u00a000:30:00", "abcd-ef-gh",
])
def test_stamp_fast_path_reads_what_the_pattern_reads(stamp: str) -> None:
    """``" " + stamp`` never takes the fast path (its length differs): the pattern reads
    it after stripping, so both must agree, or both refuse."""
    from linky2mqtt.enedis.parse import _parse_stamp

    def read(text: str) -> object:
        try:
            return _parse_stamp(text)
        except BadResponse:
            return BadResponse

    assert read(stamp) == read(" " + stamp)
