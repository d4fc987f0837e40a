"""Simulator data: determinism, DST days, steps, daily/curve agreement, production shape."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from linky2mqtt.clock import FastClock
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator, data
from tests.support.simulator import MakeSimulator, dataconnect_token

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=PARIS)
NORMAL = "22516914714270"
SELF = "12655648759651"


@pytest.fixture
def sim(make_simulator: MakeSimulator) -> Simulator:
    return make_simulator(clock=FastClock(NOW))


def _curve_2026(sim: Simulator, pdl: str, start: str, end: str,
                kind: str = "consommation") -> list[dict[str, str]]:
    with httpx.Client(base_url=sim.url) as c:
        token = dataconnect_token(c)
        r = c.get(f"/mesure_synchrone_auto/v2/courbe_de_charge_{kind}",
                  params={"pointId": pdl, "dateDebut": start, "dateFin": end},
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    points: list[dict[str, str]] = r.json()["grandeur"][0]["points"]
    return points


def _daily_2026(sim: Simulator, pdl: str, start: str, end: str) -> dict[str, int]:
    with httpx.Client(base_url=sim.url) as c:
        token = dataconnect_token(c)
        r = c.get("/mesure_synchrone_auto/v2/consommation_quotidienne",
                  params={"pointId": pdl, "dateDebut": start, "dateFin": end},
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return {p["d"]: int(p["v"]) for p in r.json()["grandeur"][0]["points"]}


def test_march_dst_day_has_46_half_hours_and_daily_agrees(sim: Simulator) -> None:
    points = _curve_2026(sim, NORMAL, "2026-03-29", "2026-03-30")
    assert len(points) == 46
    stamps = [p["d"] for p in points]
    assert stamps[0] == "2026-03-29 00:30:00"
    assert stamps[-1] == "2026-03-30 00:00:00"
    # wall-clock (the default): the end instant in the time in force then
    assert "2026-03-29 02:00:00" not in stamps
    assert "2026-03-29 02:30:00" not in stamps
    assert stamps[2:5] == ["2026-03-29 01:30:00", "2026-03-29 03:00:00", "2026-03-29 03:30:00"]
    assert {p["p"] for p in points} == {"PT30M"}
    wh = round(sum(int(p["v"]) * 30 / 60 for p in points))
    assert _daily_2026(sim, NORMAL, "2026-03-29", "2026-03-30") == {"2026-03-29": wh}
    assert sim.daily_wh(NORMAL, Kind.CONSUMPTION, date(2026, 3, 29)) == wh


def test_october_dst_day_has_50_half_hours_with_repeated_stamps_in_order(
        sim: Simulator) -> None:
    points = _curve_2026(sim, NORMAL, "2026-10-25", "2026-10-26")
    assert len(points) == 50
    stamps = [p["d"][11:] for p in points]
    # wall-clock (the default), as Enedis' export: 02:00 and 02:30 twice
    assert stamps[:8] == ["00:30:00", "01:00:00", "01:30:00", "02:00:00",
                          "02:30:00", "02:00:00", "02:30:00", "03:00:00"]
    assert stamps[-1] == "00:00:00"
    wh = round(sum(int(p["v"]) * 30 / 60 for p in points))
    assert _daily_2026(sim, NORMAL, "2026-10-25", "2026-10-26") == {"2026-10-25": wh}
    truth = sim.curve(NORMAL, Kind.CONSUMPTION, date(2026, 10, 25))
    assert truth is not None
    ends = [end for end, _, _ in truth]
    assert ends == sorted(ends)
    assert ends[0] == datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # 00:30 CEST
    assert ends[-1] - ends[0] == timedelta(hours=24, minutes=30)


def test_start_offset_stamps_behind_the_option(sim: Simulator) -> None:
    sim.app.set(dst_stamps="start-offset")
    try:
        march = [p["d"][11:] for p in _curve_2026(sim, NORMAL, "2026-03-29", "2026-03-30")]
        october = [p["d"][11:] for p in _curve_2026(sim, NORMAL, "2026-10-25", "2026-10-26")]
    finally:
        sim.app.set(dst_stamps="wall-clock")
    assert march[2:5] == ["01:30:00", "02:00:00", "03:30:00"]
    assert october[3:8] == ["02:00:00", "02:30:00", "03:00:00", "02:30:00", "03:00:00"]


def test_normal_day_48_points_and_values_are_integer_strings(sim: Simulator) -> None:
    points = _curve_2026(sim, NORMAL, "2026-11-20", "2026-11-21")
    assert len(points) == 48
    assert points[0]["d"] == "2026-11-20 00:30:00"
    assert points[-1]["d"] == "2026-11-21 00:00:00"
    assert all(isinstance(p["v"], str) and p["v"].isdigit() for p in points)
    truth = sim.curve(NORMAL, Kind.CONSUMPTION, date(2026, 11, 20))
    assert truth is not None
    assert [str(w) for _, w, _ in truth] == [p["v"] for p in points]


@pytest.mark.parametrize(("pdl", "step", "count"), [
    ("50000000000015", 15, 96), ("50000000000060", 60, 24), ("50000000000010", 10, 144),
    ("50000000000011", 30, 48)])
def test_step_rule_by_last_two_digits(sim: Simulator, pdl: str, step: int,
                                      count: int) -> None:
    points = _curve_2026(sim, pdl, "2026-11-20", "2026-11-21")
    assert len(points) == count
    assert {p["p"] for p in points} == {f"PT{step}M"}
    first_end = datetime(2026, 11, 20, tzinfo=PARIS) + timedelta(minutes=step)
    assert points[0]["d"] == first_end.strftime("%Y-%m-%d %H:%M:%S")
    assert points[-1]["d"] == "2026-11-21 00:00:00"
    wh = round(sum(int(p["v"]) * step / 60 for p in points))
    assert _daily_2026(sim, pdl, "2026-11-20", "2026-11-21") == {"2026-11-20": wh}


def test_dst_with_15_minute_steps(sim: Simulator) -> None:
    assert len(_curve_2026(sim, "50000000000015", "2026-03-29", "2026-03-30")) == 92
    assert len(_curve_2026(sim, "50000000000015", "2026-10-25", "2026-10-26")) == 100


def test_production_bell_has_true_zeros_at_night(sim: Simulator) -> None:
    points = _curve_2026(sim, SELF, "2026-06-21", "2026-06-22", kind="production")
    values = [int(p["v"]) for p in points]
    assert len(values) == 48
    assert values[:8] == [0] * 8  # 00:00-04:00
    assert values[-4:] == [0] * 4  # 22:00-24:00
    assert max(values) > 1000
    noon = values[24:30]  # 12:00-15:00
    assert min(noon) > 0
    summer = sim.daily_wh(SELF, Kind.PRODUCTION, date(2026, 6, 21))
    winter = sim.daily_wh(SELF, Kind.PRODUCTION, date(2026, 12, 21))
    assert summer is not None and winter is not None and summer > winter


def test_consumption_is_realistic_with_evening_peak_and_seasons() -> None:
    pdl = "98765432109874"
    winter = data.daily_wh(pdl, Kind.CONSUMPTION, date(2026, 1, 15))
    summer = data.daily_wh(pdl, Kind.CONSUMPTION, date(2026, 7, 15))
    assert winter is not None and summer is not None
    assert 3000 < summer < winter < 80000
    curve = data.curve(pdl, Kind.CONSUMPTION, date(2026, 1, 14))
    assert curve is not None
    by_hour = {p.start.astimezone(PARIS).hour: p.watts for p in curve}
    assert by_hour[19] > by_hour[3]


def test_max_power_is_a_peak_in_va_within_the_day(sim: Simulator) -> None:
    day = date(2026, 11, 20)
    peak = sim.max_power(NORMAL, day)
    assert peak is not None
    va, at = peak
    assert at.astimezone(PARIS).date() == day
    curve = sim.curve(NORMAL, Kind.CONSUMPTION, day)
    assert curve is not None
    assert va >= max(w for _, w, _ in curve)
    assert va <= data.profile(NORMAL).kva * 1000


def test_determinism_two_instances_identical_bodies(make_simulator: MakeSimulator) -> None:
    a = make_simulator(clock=FastClock(NOW))
    b = make_simulator(clock=FastClock(NOW))
    paths = [
        "/daily_consumption/22516914714270/start/2026-10-01/end/2026-11-01",
        "/consumption_load_curve/12655648759651/start/2026-10-24/end/2026-10-27",
        "/production_load_curve/12655648759651/start/2026-10-24/end/2026-10-27",
        "/daily_consumption_max_power/33333333333333/start/2026-11-01/end/2026-11-08",
        "/contracts/22516914714270",
    ]
    with httpx.Client(headers={"Authorization": "tok"}) as client:
        for path in paths:
            bodies = []
            for sim in (a, b):
                r = client.get(sim.url + path)
                assert r.status_code == 200, (path, r.text)
                bodies.append(r.content)
            assert bodies[0] == bodies[1], path
    assert data.unit("x", 1) == data.unit("x", 1) != data.unit("x", 2)


def test_profiles_rules() -> None:
    assert data.profile("33333333333333").produces  # last digit 3: self-consumption
    assert data.profile("33333333333333").consumes
    assert not data.profile("33333333333334").produces
    assert data.profile("33333333333377").activation == date(2026, 6, 1)
    assert data.profile("11453290002823").activation == date(2019, 8, 27)
    assert data.profile("10284856584123").produces
    assert not data.profile("10284856584123").consumes
    assert not data.profile("24880057139941").consumes
    assert data.profile("22516914714270").tariff in ("BASE", "HC/HP")
