"""DST change days as Enedis may write them (issue 12): both stamp conventions, decided
from the answer, at every step, both body shapes, all three providers.

Expected values are computed here from true UTC intervals (or from the simulator's raw
intervals), never from the parser: an interval [start, start + step) is stamped with
its END, either in the wall-clock time in force at the end instant ("wall-clock") or in
the offset of its start ("start-offset": naive local start + step).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linky2mqtt.enedis.parse import parse_curve
from linky2mqtt.model import (
    PARIS,
    Kind,
    LocalDays,
    Reading,
    aggregate_hours,
    day_bounds,
    local_days,
)
from linky2mqtt.simulator import Simulator
from tests.test_enedis_sim import STEPS, MakeClient, make_client  # noqa: F401 - fixture

PDL = "12345678901234"
CONVENTIONS = ["wall-clock", "start-offset"]
DST_DAYS = [date(2025, 10, 26), date(2026, 3, 29), date(2026, 10, 25)]
HOURS = {date(2025, 10, 26): 25, date(2026, 3, 29): 23, date(2026, 10, 25): 25}
FMT = "%Y-%m-%d %H:%M:%S"


def intervals(day: date, minutes: int) -> list[datetime]:
    first, last = day_bounds(day)
    out, t = [], first
    while t < last:
        out.append(t)
        t += timedelta(minutes=minutes)
    return out


def end_stamp(start: datetime, minutes: int, convention: str) -> str:
    step = timedelta(minutes=minutes)
    if convention == "wall-clock":
        return (start + step).astimezone(PARIS).strftime(FMT)
    return (start.astimezone(PARIS).replace(tzinfo=None) + step).strftime(FMT)


def watts_at(i: int) -> int:
    return 500 + (i * 37) % 900


def body(day: date, minutes: int, convention: str, shape: str,
         drop: frozenset[int] = frozenset()) -> Any:
    starts = intervals(day, minutes)
    if shape == "2026":
        pts: list[dict[str, Any]] = [
            {"v": str(watts_at(i)), "d": end_stamp(t, minutes, convention), "p": f"PT{minutes}M"}
            for i, t in enumerate(starts) if i not in drop]
        return {"grandeur": [{"grandeurMetier": "CONS", "unite": "W", "points": pts}]}
    rows = [{"value": str(watts_at(i)), "date": end_stamp(t, minutes, convention),
             "interval_length": f"PT{minutes}M"} for i, t in enumerate(starts) if i not in drop]
    inner = {"reading_type": {"unit": "W"}, "interval_reading": rows}
    return {"meter_reading": inner} if shape == "v5" else inner


def test_the_stamps_are_what_the_api_notes_say() -> None:
    """The generator above, checked against enedis-api.md's quoted sequences."""
    march = [end_stamp(t, 30, "wall-clock")[11:16] for t in intervals(date(2020, 3, 29), 30)]
    assert march[1:5] == ["01:00", "01:30", "03:00", "03:30"]
    october = [end_stamp(t, 30, "wall-clock")[11:16] for t in intervals(date(2023, 10, 29), 30)]
    assert october[3:8] == ["02:00", "02:30", "02:00", "02:30", "03:00"]
    assert len(march) == 46 and len(october) == 50
    today = [end_stamp(t, 30, "start-offset")[11:16] for t in intervals(date(2026, 3, 29), 30)]
    assert "02:00" in today and "03:00" not in today
    today = [end_stamp(t, 30, "start-offset")[11:16] for t in intervals(date(2026, 10, 25), 30)]
    assert today.count("02:30") == 2 and today.count("03:00") == 2 and today.count("02:00") == 1


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("shape", ["2026", "v5", "v5-bare"])
@pytest.mark.parametrize("minutes", [10, 15, 30, 60])
@pytest.mark.parametrize("day", [*DST_DAYS, date(2026, 7, 14)])
def test_every_interval_at_its_true_instant(
    convention: str, shape: str, minutes: int, day: date, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    readings = parse_curve(body(day, minutes, convention, shape), PDL, Kind.CONSUMPTION)
    starts = intervals(day, minutes)
    assert [(r.start, r.value) for r in readings] == [
        (t, watts_at(i) * minutes / 60) for i, t in enumerate(starts)]
    hourly = aggregate_hours(readings, day)
    assert hourly.complete
    assert len(hourly.hours) == HOURS.get(day, 24)
    assert not caplog.records


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_unsorted_answer_keeps_repeated_stamps_in_their_order(convention: str) -> None:
    day = date(2026, 10, 25)
    b = body(day, 30, convention, "2026")
    points = b["grandeur"][0]["points"]
    points.sort(key=lambda p: p["d"], reverse=True)  # stable: twins keep their order
    readings = parse_curve(b, PDL, Kind.CONSUMPTION)
    assert [(r.start, r.value) for r in readings] == [
        (t, watts_at(i) * 30 / 60) for i, t in enumerate(intervals(day, 30))]


def test_explicit_offsets_are_honoured() -> None:
    """Enedis' own export writes ``02:00+02:00 ... 02:00+01:00``: the offset says it all,
    even written in the offset of the interval's start."""
    day = date(2026, 10, 25)
    starts = intervals(day, 30)
    pts = []
    for i, t in enumerate(starts):
        end = (t + timedelta(minutes=30)).astimezone(PARIS)
        if i % 2:  # in the start's offset: the same instant, written otherwise
            end = end.astimezone(timezone(t.astimezone(PARIS).utcoffset() or timedelta()))
        pts.append({"v": str(watts_at(i)), "d": end.isoformat(), "p": "PT30M"})
    readings = parse_curve({"grandeur": [{"unite": "W", "points": pts}]}, PDL, Kind.CONSUMPTION)
    assert [(r.start, r.value) for r in readings] == [
        (t, watts_at(i) / 2) for i, t in enumerate(starts)]


def test_enedis_export_lines_with_offsets() -> None:
    pts = [{"v": str(100 * (i + 1)), "d": f"2023-10-29T{s}", "p": "PT30M"} for i, s in enumerate(
        ["02:00:00+02:00", "02:30:00+02:00", "02:00:00+01:00", "02:30:00+01:00",
         "03:00:00+01:00"])]
    readings = parse_curve({"grandeur": [{"unite": "W", "points": pts}]}, PDL, Kind.CONSUMPTION)
    assert [r.start for r in readings] == [
        datetime(2023, 10, 28, 23, 30, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(5)]
    assert [r.value for r in readings] == [50.0, 100.0, 150.0, 200.0, 250.0]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_a_stamp_that_cannot_be_placed_leaves_the_day_incomplete_with_a_warning(
    convention: str, caplog: pytest.LogCaptureFixture
) -> None:
    """October, the first 02:00-02:30 summer-time interval missing: its twin (same
    stamp) comes once, and nothing says which of the two instants it is."""
    day = date(2026, 10, 25)
    starts = intervals(day, 30)
    first_summer = starts.index(datetime(2026, 10, 25, 0, 0, tzinfo=UTC))
    caplog.set_level(logging.WARNING)
    readings = parse_curve(body(day, 30, convention, "2026", frozenset({first_summer})),
                           PDL, Kind.CONSUMPTION)
    truth = {t: watts_at(i) / 2 for i, t in enumerate(starts) if i != first_summer}
    got = {r.start: r.value for r in readings}
    assert all(truth[t] == v for t, v in got.items())  # nothing misplaced
    twin = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    assert twin not in got  # the twin is not guessed
    assert not aggregate_hours(readings, day).complete
    text = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert PDL in text and "2026-10-25" in text and "2026-10-25 02:30:00" in text


def test_a_repeated_point_with_the_same_value_is_kept_once() -> None:
    day = date(2026, 7, 14)
    b = body(day, 30, "wall-clock", "2026")
    points = b["grandeur"][0]["points"]
    points.insert(10, dict(points[10]))
    readings = parse_curve(b, PDL, Kind.CONSUMPTION)
    assert len(readings) == 48
    assert aggregate_hours(readings, day).complete


def test_two_values_for_one_instant_refuse_the_day(caplog: pytest.LogCaptureFixture) -> None:
    day = date(2026, 7, 14)
    b = body(day, 30, "wall-clock", "2026")
    b["grandeur"][0]["points"] += body(date(2026, 7, 15), 30, "wall-clock", "2026")[
        "grandeur"][0]["points"]
    points = b["grandeur"][0]["points"]
    points.insert(11, dict(points[10], v="99999"))
    caplog.set_level(logging.WARNING)
    readings = parse_curve(b, PDL, Kind.CONSUMPTION)
    assert {r.local_date for r in readings} == {date(2026, 7, 15)}  # the other day is fine
    assert len(readings) == 48
    text = " ".join(r.getMessage() for r in caplog.records)
    assert PDL in text and "2026-07-14" in text and "99999" in text


# -- the client against the simulator, each convention ------------------------------------


def truth_hours(sim: Simulator, pdl: str, day: date) -> list[tuple[datetime, float]]:
    """(UTC hour start, Wh) from the simulator's raw intervals."""
    raw = sim.curve(pdl, Kind.CONSUMPTION, day)
    assert raw is not None
    first, _ = day_bounds(day)
    hours: dict[datetime, float] = {}
    for end, watts, minutes in raw:
        start = end - timedelta(minutes=minutes)
        hour = first + (start - first) // timedelta(hours=1) * timedelta(hours=1)
        hours[hour] = hours.get(hour, 0.0) + watts * minutes / 60
    return sorted(hours.items())


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("provider", ["conso", "dataconnect", "myelectricaldata"])
@pytest.mark.parametrize("minutes", [10, 15, 30, 60])
def test_client_hours_equal_the_simulator_intervals(
    convention: str, provider: str, minutes: int, make_client: MakeClient,  # noqa: F811
    simulator: Simulator, caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.app.set(dst_stamps=convention)
    pdl = STEPS[minutes]
    client = make_client(provider)
    caplog.set_level(logging.WARNING)
    for day in DST_DAYS:
        result = client.curve(pdl, Kind.CONSUMPTION, day, day + timedelta(days=1))
        assert result.missing == []
        hourly = aggregate_hours(result.readings, day)
        assert hourly.complete
        assert len(hourly.hours) == HOURS[day]
        assert [(h.start, round(h.wh, 6)) for h in hourly.hours] == [
            (t, round(wh, 6)) for t, wh in truth_hours(simulator, pdl, day)]
    assert not [r for r in caplog.records if r.name.startswith("linky2mqtt.enedis")]


def test_simulator_serves_each_convention(simulator: Simulator) -> None:
    pdl = STEPS[30]
    with httpx.Client(base_url=simulator.url) as http:
        token = simulator.make_conso_token([pdl])
        seen = {}
        for convention in CONVENTIONS:
            r = http.post("/_sim/config", json={"dst_stamps": convention})
            assert r.status_code == 200 and r.json()["dst_stamps"] == convention
            resp = http.get("/api/courbe_de_charge_consommation", params={
                "pointId": pdl, "dateDebut": "2026-03-29", "dateFin": "2026-03-30"},
                headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 200, resp.text
            seen[convention] = [p["d"][11:16] for p in resp.json()["grandeur"][0]["points"]]
        assert http.post("/_sim/config", json={"dst_stamps": "utc"}).status_code == 400
    assert seen["wall-clock"][2:5] == ["01:30", "03:00", "03:30"]
    assert seen["start-offset"][2:5] == ["01:30", "02:00", "03:30"]


def test_two_daily_values_for_one_day_refuse_it(caplog: pytest.LogCaptureFixture) -> None:
    from linky2mqtt.enedis.parse import parse_daily

    pts = [{"v": "1000", "d": "2026-07-14"}, {"v": "1000", "d": "2026-07-14"},
           {"v": "2000", "d": "2026-07-15"}, {"v": "2500", "d": "2026-07-15"}]
    caplog.set_level(logging.WARNING)
    readings = parse_daily({"grandeur": [{"unite": "Wh", "points": pts}]}, PDL,
                           Kind.CONSUMPTION)
    assert [(r.local_date, r.value) for r in readings] == [(date(2026, 7, 14), 1000.0)]
    text = " ".join(r.getMessage() for r in caplog.records)
    assert PDL in text and "2026-07-15" in text and "2500" in text


def test_simulator_cli_option(capsys: pytest.CaptureFixture[str]) -> None:
    from linky2mqtt.simulator.cli import _parser, main

    assert _parser().parse_args(["--dst-stamps", "start-offset"]).dst_stamps == "start-offset"
    assert _parser().parse_args([]).dst_stamps == "wall-clock"
    assert main(["simulator", "--port", "0", "--dst-stamps", "utc"]) == 2
    assert "--dst-stamps" in capsys.readouterr().err


# -- the local day of an instant, the time zone asked once a day -------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                             timezones=st.just(UTC)), max_size=40),
       st.booleans())
def test_local_days_equal_astimezone_in_any_order(instants: list[datetime],
                                                  ordered: bool) -> None:
    if ordered:
        instants.sort()
    day_of = LocalDays()
    assert [day_of(t) for t in instants] == [t.astimezone(PARIS).date() for t in instants]


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 28)])
def test_local_days_at_every_second_around_a_day(day: date) -> None:
    # every minute of the day and its edges, the DST change days included, both ways
    lo, hi = day_bounds(day)
    minutes = int((hi - lo).total_seconds() // 60)
    instants = [lo + timedelta(minutes=m) for m in range(-90, minutes + 90)]
    instants += [lo - timedelta(microseconds=1), lo, hi - timedelta(microseconds=1), hi]
    for order in (instants, instants[::-1]):
        day_of = LocalDays()
        assert [day_of(t) for t in order] == [t.astimezone(PARIS).date() for t in order]
    readings = [Reading("12345678901234", Kind.CONSUMPTION, "PT30M", t, 1.0)
                for t in instants]
    assert local_days(readings) == {r.local_date for r in readings}
