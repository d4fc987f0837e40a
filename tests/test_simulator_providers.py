"""Simulator over HTTP: every provider's endpoints, body shapes and authentication."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import date, datetime

import httpx
import pytest

from linky2mqtt.clock import FastClock
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator
from tests.support.simulator import SIM_CLIENT, MakeSimulator, dataconnect_token

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=PARIS)
NORMAL = "22516914714270"
SELF = "12655648759651"
CONSO_401 = "Votre token est invalide ou ne permet pas d'accéder à ce PRM"
DAY1, DAY2 = date(2026, 11, 20), date(2026, 11, 21)


@pytest.fixture
def sim(make_simulator: MakeSimulator) -> Simulator:
    return make_simulator(clock=FastClock(NOW))


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        yield c


def _wh(sim: Simulator, pdl: str, kind: Kind, day: date) -> str:
    return str(sim.daily_wh(pdl, kind, day))


def _wait_for_status(call: object, status: int, timeout: float = 10.0) -> httpx.Response:
    assert callable(call)
    deadline = time.monotonic() + timeout
    while True:
        resp: httpx.Response = call()
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.02)


# ----- Conso API -----------------------------------------------------------------------------


def test_conso_2026_daily_is_the_enedis_body(sim: Simulator, client: httpx.Client) -> None:
    token = sim.make_conso_token([NORMAL])
    r = client.get("/api/consommation_quotidienne",
                   params={"pointId": NORMAL, "dateDebut": "2026-11-20", "dateFin": "2026-11-22"},
                   headers={"Authorization": f"Bearer {token}", "User-Agent": "test/1"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "idPrm": NORMAL, "etapeMetier": "BRUT",
        "periode": {"dateDebut": "2026-11-20", "dateFin": "2026-11-22"},
        "typeValeur": "GLOBALE", "modeCalcul": "DIFF.INDEX", "pas": "P1D",
        "grandeur": [{"grandeurMetier": "CONS", "grandeurPhysique": "EA", "unite": "Wh",
                      "points": [{"v": _wh(sim, NORMAL, Kind.CONSUMPTION, DAY1),
                                  "d": "2026-11-20"},
                                 {"v": _wh(sim, NORMAL, Kind.CONSUMPTION, DAY2),
                                  "d": "2026-11-21"}],
                      "calendrier": []}],
        "contexte": [],
    }


def test_conso_legacy_type_and_params_answer_bare_meter_reading(
        sim: Simulator, client: httpx.Client) -> None:
    token = sim.make_conso_token([NORMAL, SELF])
    r = client.get("/api/daily_consumption",
                   params={"prm": NORMAL, "start": "2026-11-20", "end": "2026-11-21"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json() == {
        "usage_point_id": NORMAL, "start": "2026-11-20", "end": "2026-11-21", "quality": "BRUT",
        "reading_type": {"unit": "Wh", "measurement_kind": "energy", "aggregate": "sum",
                         "measuring_period": "P1D"},
        "interval_reading": [{"value": _wh(sim, NORMAL, Kind.CONSUMPTION, DAY1),
                              "date": "2026-11-20"}],
    }
    r = client.get("/api/production_load_curve",
                   params={"prm": SELF, "start": "2026-11-20", "end": "2026-11-21"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    body = r.json()
    assert body["reading_type"] == {"unit": "W", "measurement_kind": "power",
                                    "aggregate": "average"}
    assert body["interval_reading"][0] == {"value": "0", "date": "2026-11-20 00:30:00",
                                           "interval_length": "PT30M", "measure_type": "B"}
    assert len(body["interval_reading"]) == 48


@pytest.mark.parametrize(("kind", "metier", "physique", "unite"), [
    ("courbe_de_charge_consommation", "CONS", "PA", "W"),
    ("courbe_de_charge_production", "PROD", "PA", "W"),
    ("puissance_conso_max_quotidienne", "CONS", "PMA", "VA"),
    ("production_quotidienne", "PROD", "EA", "Wh"),
])
def test_conso_2026_types(sim: Simulator, client: httpx.Client, kind: str, metier: str,
                          physique: str, unite: str) -> None:
    token = sim.make_conso_token([SELF])
    r = client.get(f"/api/{kind}",
                   params={"pointId": SELF, "dateDebut": "2026-11-20", "dateFin": "2026-11-21"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    g = r.json()["grandeur"][0]
    assert (g["grandeurMetier"], g["grandeurPhysique"], g["unite"]) == (metier, physique, unite)
    assert g["points"]


def test_conso_auth(sim: Simulator, client: httpx.Client) -> None:
    params = {"pointId": NORMAL, "dateDebut": "2026-11-20", "dateFin": "2026-11-21"}
    url = "/api/consommation_quotidienne"
    expected = {"status": 401, "message": CONSO_401, "error": "Unauthorized"}
    assert client.get(url, params=params).json() == expected  # missing
    r = client.get(url, params=params, headers={"Authorization": "Bearer not-a-jwt"})
    assert (r.status_code, r.json()) == (401, expected)
    other = sim.make_conso_token(["12345678901234"])
    r = client.get(url, params=params, headers={"Authorization": f"Bearer {other}"})
    assert (r.status_code, r.json()) == (401, expected)
    # a forged JWT (any signature) whose sub lists the PDL is accepted: nobody checks it
    head = base64.urlsafe_b64encode(b'{"alg":"HS256"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(json.dumps({"sub": [NORMAL]}).encode()).rstrip(b"=")
    forged = f"{head}.{claims.decode()}.c2lnbmF0dXJl"
    r = client.get(url, params=params, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 200
    r = client.get(url, params={"pointId": NORMAL},
                   headers={"Authorization": f"Bearer {sim.make_conso_token([NORMAL])}"})
    assert r.status_code == 400
    assert r.json()["status"] == 400


def test_conso_expired_token(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=FastClock(NOW, speed=3600))
    token = sim.make_conso_token([NORMAL], lifetime=3600)  # one real second
    params = {"pointId": NORMAL, "dateDebut": "2026-11-20", "dateFin": "2026-11-21"}
    with httpx.Client(base_url=sim.url) as c:
        def call() -> httpx.Response:
            return c.get("/api/consommation_quotidienne", params=params,
                         headers={"Authorization": f"Bearer {token}"})
        assert call().status_code == 200
        r = _wait_for_status(call, 401)
    assert r.status_code == 401
    assert r.json()["message"] == CONSO_401


# ----- Data Connect ---------------------------------------------------------------------------


def test_token_endpoint(client: httpx.Client) -> None:
    form = {"grant_type": "client_credentials"}
    r = client.post("/oauth2/v3/token", data=form, auth=SIM_CLIENT)  # Basic only
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", "12600")
    both = {**form, "client_id": SIM_CLIENT[0], "client_secret": SIM_CLIENT[1]}
    assert client.post("/oauth2/v3/token", data=both).status_code == 200  # form only
    assert client.post("/oauth2/v3/token", data=both, auth=SIM_CLIENT).status_code == 200
    r = client.post("/oauth2/v3/token", data=form, auth=("sim-client", "wrong"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    r = client.post("/oauth2/v3/token", data=form)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    r = client.post("/oauth2/v3/token", params={"client_id": "sim-client",
                                                "client_secret": "sim-secret"}, data=form)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = client.post("/oauth2/v3/token", data={}, auth=SIM_CLIENT)
    assert r.status_code == 400


def test_custom_client_credentials(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(client_id="me", client_secret="s3cret")
    with httpx.Client(base_url=sim.url) as c:
        form = {"grant_type": "client_credentials"}
        assert c.post("/oauth2/v3/token", data=form, auth=SIM_CLIENT).status_code == 401
        assert c.post("/oauth2/v3/token", data=form, auth=("me", "s3cret")).status_code == 200


def test_dataconnect_2026_endpoints(sim: Simulator, client: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {dataconnect_token(client)}"}
    base = "/mesure_synchrone_auto/v2/"
    p = {"pointId": SELF, "dateDebut": "2026-11-20", "dateFin": "2026-11-21"}
    r = client.get(base + "courbe_de_charge_consommation", params=p, headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"idPrm", "etapeMetier", "periode", "modeCalcul", "grandeur"}
    assert body["modeCalcul"] == "MESURE"
    first = body["grandeur"][0]["points"][0]
    assert set(first) == {"v", "d", "p", "n", "iv", "ec"}
    assert (first["d"], first["p"], first["n"]) == ("2026-11-20 00:30:00", "PT30M", "B")
    r = client.get(base + "production_quotidienne", params=p, headers=auth)
    assert r.json()["grandeur"][0]["points"] == [
        {"v": _wh(sim, SELF, Kind.PRODUCTION, DAY1), "d": "2026-11-20"}]
    assert r.json()["grandeur"][0]["grandeurMetier"] == "PROD"
    r = client.get(base + "puissance_conso_max_quotidienne", params=p, headers=auth)
    assert r.status_code == 500  # mesuresPas / grandeurPhysique missing
    assert r.json()["error"] == "technical_error"
    r = client.get(base + "puissance_conso_max_quotidienne", headers=auth,
                   params={**p, "mesuresPas": "P1D", "grandeurPhysique": "PMA"})
    assert r.status_code == 200
    peak = sim.max_power(SELF, DAY1)
    assert peak is not None
    g = r.json()["grandeur"][0]
    assert (g["grandeurPhysique"], g["unite"]) == ("PMA", "VA")
    assert g["points"] == [{"v": str(peak[0]),
                            "d": peak[1].astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")}]
    assert client.get(base + "consommation_quotidienne", params={"pointId": SELF},
                      headers=auth).status_code == 500  # does not match the description
    r = client.get(base + "courbe_de_charge_production", params=p, headers=auth)
    assert r.json()["grandeur"][0]["grandeurMetier"] == "PROD"


@pytest.mark.parametrize(("prefix", "name", "unit"), [
    ("dc", "daily_consumption", "Wh"), ("clc", "consumption_load_curve", "W"),
    ("dcmp", "daily_consumption_max_power", "VA"), ("dp", "daily_production", "Wh"),
    ("plc", "production_load_curve", "W")])
def test_dataconnect_v5_endpoints(client: httpx.Client, prefix: str, name: str,
                                  unit: str) -> None:
    auth = {"Authorization": f"Bearer {dataconnect_token(client)}"}
    p = {"usage_point_id": SELF, "start": "2026-11-20", "end": "2026-11-21"}
    r = client.get(f"/metering_data_{prefix}/v5/{name}", params=p, headers=auth)
    assert r.status_code == 200, r.text
    reading = r.json()["meter_reading"]
    assert reading["usage_point_id"] == SELF
    assert reading["reading_type"]["unit"] == unit
    assert reading["interval_reading"]
    assert client.get(f"/metering_data_{prefix}/v5/{name}", params={"start": "2026-11-20"},
                      headers=auth).json()["error"] == "Invalid_request"


def test_dataconnect_auth_missing_forged_expired(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=FastClock(NOW, speed=10000))  # 12600 s = 1.26 real s
    invalid = {"code": "900901", "message": "Invalid Credentials"}
    url = "/mesure_synchrone_auto/v2/consommation_quotidienne"
    p = {"pointId": NORMAL, "dateDebut": "2026-11-20", "dateFin": "2026-11-21"}
    with httpx.Client(base_url=sim.url) as c:
        token = dataconnect_token(c)

        def call() -> httpx.Response:
            return c.get(url, params=p, headers={"Authorization": f"Bearer {token}"})

        assert call().status_code == 200
        for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": token}):
            r = c.get(url, params=p, headers=headers)
            assert r.status_code == 401
            assert {k: r.json()[k] for k in invalid} == invalid
        r = _wait_for_status(call, 401)
        assert r.status_code == 401
        assert r.json()["code"] == "900901"


def test_situation_contrat(client: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {dataconnect_token(client)}"}
    r = client.get(f"/situation_contrat_auto/v1/{NORMAL}", headers=auth)
    assert r.status_code == 200
    # the 2026 shape as recorded by MyElectricalData: a JSON array, one object per contract
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    (consumer,) = body
    assert consumer["usage_point_id"] == NORMAL and consumer["segment"] == "C5"
    assert consumer["subscribed_power"]["unit"] == "kVA"
    assert consumer["subscribed_power"]["value"] in ("6", "9", "12")
    assert consumer["distribution_tariff"].startswith("Tarif BT<=36kVA")
    assert consumer["contract_start"] == "2020-01-01T00:00:00+0100"
    assert "offpeak_hours" not in consumer  # the recorded answers carry none
    r = client.get(f"/situation_contrat_auto/v1/{SELF}", headers=auth)
    assert [c["segment"] for c in r.json()] == ["C5", "P4"]  # self-consumption
    assert "subscribed_power" not in r.json()[1]
    r = client.get("/situation_contrat_auto/v1", params={"pointId": NORMAL}, headers=auth)
    assert r.status_code == 500
    assert client.get(f"/situation_contrat_auto/v1/{NORMAL}").status_code == 401
    r = client.get("/situation_contrat_auto/v1/26584978546985", headers=auth)
    assert (r.status_code, r.json()["error"]) == (403, "ADAM-DC-0008")


# ----- MyElectricalData -----------------------------------------------------------------------


def test_myelectricaldata_data_endpoints(sim: Simulator, client: httpx.Client) -> None:
    auth = {"Authorization": "any-token"}
    r = client.get(f"/daily_consumption/{NORMAL}/start/2026-11-20/end/2026-11-21", headers=auth)
    assert r.status_code == 200
    assert r.json() == {"meter_reading": {
        "usage_point_id": NORMAL, "start": "2026-11-20", "end": "2026-11-21", "quality": "BRUT",
        "reading_type": {"unit": "Wh", "measurement_kind": "energy", "aggregate": "sum",
                         "measuring_period": "P1D"},
        "interval_reading": [{"value": _wh(sim, NORMAL, Kind.CONSUMPTION, DAY1),
                              "date": "2026-11-20"}]}}
    cached = client.get(f"/daily_consumption/{NORMAL}/start/2026-11-20/end/2026-11-21/cache",
                        headers=auth)
    assert cached.json() == r.json()
    for name in ("consumption_load_curve", "daily_consumption_max_power"):
        r = client.get(f"/{name}/{NORMAL}/start/2026-11-20/end/2026-11-21", headers=auth)
        assert r.status_code == 200
        assert r.json()["meter_reading"]["interval_reading"]
    for name in ("daily_production", "production_load_curve"):
        r = client.get(f"/{name}/{SELF}/start/2026-11-20/end/2026-11-21", headers=auth)
        assert r.status_code == 200
    r = client.get(f"/daily_consumption/{NORMAL}/start/2026-11-20/end/2026-11-21")
    assert r.status_code == 401
    assert set(r.json()) == {"detail"}
    r = client.get(f"/daily_production/{NORMAL}/start/2026-11-20/end/2026-11-21", headers=auth)
    assert r.status_code == 400
    assert r.json()["detail"].startswith("ADAM-ERR0069")


def test_myelectricaldata_contracts_and_valid_access(client: httpx.Client) -> None:
    auth = {"Authorization": "any-token"}
    r = client.get(f"/contracts/{NORMAL}", headers=auth)
    assert r.status_code == 200
    contracts = r.json()["customer"]["usage_points"][0]["contracts"]
    assert contracts["subscribed_power"] in ("6 kVA", "9 kVA", "12 kVA")
    r = client.get(f"/valid_access/{NORMAL}", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"valid", "consent_expiration_date", "call_number", "quota_reached",
                         "quota_limit", "quota_reset_at", "ban"}
    assert body["valid"] is True
    assert body["call_number"] == 1  # the contracts call
    assert client.get("/valid_access/26584978546985", headers=auth).json()["valid"] is False
    assert client.get(f"/contracts/{NORMAL}").status_code == 401
