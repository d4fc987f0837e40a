"""Simulator rules and sandbox PDLs over HTTP, with the real error bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from linky2mqtt.clock import FastClock
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator
from linky2mqtt.simulator.rules import Series, history_limit, months_back
from tests.support.simulator import MakeSimulator, dataconnect_token

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=PARIS)  # a Saturday
NORMAL = "22516914714270"
BASE = "/mesure_synchrone_auto/v2/"


class DC:
    """A tiny Data Connect caller: returns (status, json)."""

    def __init__(self, sim: Simulator) -> None:
        self.client = httpx.Client(base_url=sim.url, timeout=10)
        self.headers = {"Authorization": f"Bearer {dataconnect_token(self.client)}"}

    def get(self, kind: str, pdl: str, start: str, end: str,
            **extra: str) -> tuple[int, Any]:
        params = {"pointId": pdl, "dateDebut": start, "dateFin": end, **extra}
        if kind == "puissance_conso_max_quotidienne":
            params.update(mesuresPas="P1D", grandeurPhysique="PMA")
        r = self.client.get(BASE + kind, params=params, headers=self.headers)
        return r.status_code, r.json()

    def days(self, kind: str, pdl: str, start: str, end: str) -> list[str]:
        status, body = self.get(kind, pdl, start, end)
        assert status == 200, body
        return [p["d"][:10] for p in body["grandeur"][0]["points"]]


@pytest.fixture
def dc(make_simulator: MakeSimulator) -> Iterator[DC]:
    caller = DC(make_simulator(clock=FastClock(NOW)))
    yield caller
    caller.client.close()


def _err(code: str, status: int = 400) -> tuple[int, str]:
    return status, code


def _code(result: tuple[int, Any]) -> tuple[int, str]:
    return result[0], result[1]["error"]


def test_start_must_be_before_end(dc: DC) -> None:
    result = dc.get("consommation_quotidienne", NORMAL, "2026-11-20", "2026-11-20")
    assert _code(result) == _err("Invalid_request")
    assert set(result[1]) == {"error", "error_description"}


def test_end_may_be_today_never_later(dc: DC) -> None:
    assert dc.days("consommation_quotidienne", NORMAL, "2026-11-25", "2026-11-28") == [
        "2026-11-25", "2026-11-26", "2026-11-27"]
    result = dc.get("consommation_quotidienne", NORMAL, "2026-11-25", "2026-11-29")
    assert _code(result) == _err("Invalid_request")


def test_load_curve_seven_days_max(dc: DC) -> None:
    status, body = dc.get("courbe_de_charge_consommation", NORMAL, "2026-11-13", "2026-11-20")
    assert status == 200
    assert len(body["grandeur"][0]["points"]) == 7 * 48
    result = dc.get("courbe_de_charge_consommation", NORMAL, "2026-11-12", "2026-11-20")
    assert _code(result) == _err("ADAM-DC-0015")


def test_daily_365_days_max(dc: DC) -> None:
    assert len(dc.days("consommation_quotidienne", NORMAL, "2025-11-28", "2026-11-28")) == 365
    result = dc.get("consommation_quotidienne", NORMAL, "2025-11-27", "2026-11-28")
    assert _code(result) == _err("Invalid_request")


def test_history_limits(dc: DC) -> None:
    assert months_back(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert history_limit(Series.CURVE, date(2026, 11, 28)) == date(2024, 11, 13)
    assert history_limit(Series.DAILY, date(2026, 11, 28)) == date(2023, 11, 13)
    assert dc.get("courbe_de_charge_consommation", NORMAL, "2024-11-13", "2024-11-14")[0] == 200
    result = dc.get("courbe_de_charge_consommation", NORMAL, "2024-11-12", "2024-11-13")
    assert _code(result) == _err("ADAM-ERR0125")
    assert dc.get("consommation_quotidienne", NORMAL, "2023-11-13", "2023-11-20")[0] == 200
    result = dc.get("consommation_quotidienne", NORMAL, "2023-11-12", "2023-11-20")
    assert _code(result) == _err("ADAM-ERR0125")


def test_activation_date(dc: DC) -> None:
    result = dc.get("consommation_quotidienne", "11453290002823", "2019-08-20", "2019-09-01")
    assert _code(result) == _err("ADAM-ERR0123")
    recent = "44444444444477"  # last digits 77: activated 2026-06-01
    result = dc.get("consommation_quotidienne", recent, "2026-05-31", "2026-06-05")
    assert _code(result) == _err("ADAM-ERR0123")
    assert dc.days("consommation_quotidienne", recent, "2026-06-01", "2026-06-03") == [
        "2026-06-01", "2026-06-02"]


def test_wrong_direction(dc: DC) -> None:
    for kind, pdl in (("production_quotidienne", "12345678901234"),
                      ("courbe_de_charge_production", NORMAL),
                      ("consommation_quotidienne", "24880057139941"),
                      ("puissance_conso_max_quotidienne", "10284856584123")):
        assert _code(dc.get(kind, pdl, "2026-11-20", "2026-11-21")) == _err("ADAM-ERR0069")


def test_sandbox_consumer_and_producer_pair(dc: DC) -> None:
    assert dc.days("consommation_quotidienne", "12345678901234", "2026-11-20", "2026-11-21")
    assert dc.days("production_quotidienne", "10284856584123", "2026-11-20", "2026-11-21")
    assert dc.days("production_quotidienne", "24880057139941", "2026-11-20", "2026-11-21")


def test_self_consumption_has_both_curves(dc: DC) -> None:
    for kind in ("courbe_de_charge_consommation", "courbe_de_charge_production"):
        status, body = dc.get(kind, "12655648759651", "2026-11-20", "2026-11-21")
        assert status == 200
        assert len(body["grandeur"][0]["points"]) == 48


def test_no_load_curve_pdl(dc: DC) -> None:
    pdl = "32320647321714"
    result = dc.get("courbe_de_charge_consommation", pdl, "2026-11-20", "2026-11-21")
    assert _code(result) == _err("no_data_found", 404)
    assert dc.days("consommation_quotidienne", pdl, "2026-11-20", "2026-11-21") == ["2026-11-20"]


def test_gaps_every_tuesday_and_wednesday(dc: DC) -> None:
    pdl = "42900589957123"
    # 2026-11-23 Monday .. 2026-11-27 Friday
    assert dc.days("consommation_quotidienne", pdl, "2026-11-23", "2026-11-28") == [
        "2026-11-23", "2026-11-26", "2026-11-27"]
    status, body = dc.get("courbe_de_charge_consommation", pdl, "2026-11-23", "2026-11-28")
    assert status == 200
    stamps = [p["d"] for p in body["grandeur"][0]["points"]]
    assert len(stamps) == 3 * 48
    # a point stamped D+1 00:00:00 ends day D
    assert {s[:10] for s in stamps if not s.endswith(" 00:00:00")} == {
        "2026-11-23", "2026-11-26", "2026-11-27"}
    result = dc.get("consommation_quotidienne", pdl, "2026-11-24", "2026-11-26")
    assert _code(result) == _err("no_data_found", 404)


def test_consent_revoked(dc: DC) -> None:
    result = dc.get("consommation_quotidienne", "26584978546985", "2026-11-20", "2026-11-21")
    assert _code(result) == _err("ADAM-DC-0008", 403)


def test_yesterday_appears_at_eight(make_simulator: MakeSimulator) -> None:
    early = DC(make_simulator(clock=FastClock(datetime(2026, 11, 28, 7, 59, tzinfo=PARIS))))
    late = DC(make_simulator(clock=FastClock(datetime(2026, 11, 28, 8, 0, 1, tzinfo=PARIS))))
    try:
        assert early.days("consommation_quotidienne", NORMAL, "2026-11-26", "2026-11-28") == [
            "2026-11-26"]
        assert late.days("consommation_quotidienne", NORMAL, "2026-11-26", "2026-11-28") == [
            "2026-11-26", "2026-11-27"]
        result = early.get("consommation_quotidienne", NORMAL, "2026-11-27", "2026-11-28")
        assert _code(result) == _err("no_data_found", 404)
        status, body = late.get("courbe_de_charge_consommation", NORMAL, "2026-11-27",
                                "2026-11-28")
        assert status == 200
        assert body["grandeur"][0]["points"][-1]["d"] == "2026-11-28 00:00:00"
    finally:
        early.client.close()
        late.client.close()


def test_hidden_day_arrives_later(make_simulator: MakeSimulator) -> None:
    clock = FastClock(NOW, speed=3600)  # one simulated hour per real second
    sim = make_simulator(clock=clock)
    sim.hide(NORMAL, date(2026, 11, 27), until=NOW + timedelta(minutes=30))
    sim.set(hide=[{"pdl": NORMAL, "day": "2026-11-25", "until": None}])
    dc = DC(sim)
    try:
        assert dc.days("consommation_quotidienne", NORMAL, "2026-11-25", "2026-11-28") == [
            "2026-11-26"]
        deadline = time.monotonic() + 10
        while dc.days("consommation_quotidienne", NORMAL, "2026-11-26", "2026-11-28") != [
                "2026-11-26", "2026-11-27"]:
            assert time.monotonic() < deadline, "the hidden day never arrived"
            time.sleep(0.05)
        assert clock.now() >= NOW + timedelta(minutes=30)
        r = dc.client.post("/_sim/config", json={"unhide": True})
        assert r.json()["hide"] == []
        assert "2026-11-25" in dc.days("consommation_quotidienne", NORMAL, "2026-11-25",
                                       "2026-11-26")
    finally:
        dc.client.close()


def test_hide_by_kind_over_control_endpoint(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=FastClock(NOW))
    dc = DC(sim)
    try:
        r = dc.client.post("/_sim/config", json={"hide": [
            {"pdl": "12655648759651", "day": "2026-11-20", "kind": "production",
             "until": "2026-11-29T00:00:00+01:00"}]})
        assert r.status_code == 200
        assert r.json()["hide"][0]["until"] == "2026-11-29T00:00:00+01:00"
        assert dc.days("production_quotidienne", "12655648759651", "2026-11-20",
                       "2026-11-22") == ["2026-11-21"]
        assert dc.days("consommation_quotidienne", "12655648759651", "2026-11-20",
                       "2026-11-22") == ["2026-11-20", "2026-11-21"]
        assert sim.daily_wh("12655648759651", Kind.PRODUCTION, date(2026, 11, 20)) is not None
    finally:
        dc.client.close()


def test_errors_in_each_provider_envelope(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=FastClock(NOW))
    with httpx.Client(base_url=sim.url) as c:
        token = sim.make_conso_token(["26584978546985", NORMAL])
        r = c.get("/api/consommation_quotidienne",
                  params={"pointId": NORMAL, "dateDebut": "2026-11-20", "dateFin": "2026-11-12"},
                  headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 400
        assert r.json()["message"] == "The Enedis API returned an error"
        assert r.json()["error"]["error"] == "Invalid_request"
        r = c.get("/api/courbe_de_charge_consommation",
                  params={"pointId": "26584978546985", "dateDebut": "2026-11-20",
                          "dateFin": "2026-11-21"},
                  headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert r.json()["status"] == 403
        assert r.json()["error"]["error"] == "ADAM-DC-0008"
        r = c.get(f"/consumption_load_curve/{NORMAL}/start/2026-11-01/end/2026-11-20",
                  headers={"Authorization": "x"})
        assert r.status_code == 400
        assert r.json() == {"detail": "ADAM-DC-0015: The requested period cannot be longer "
                                      "than 7 days."}
