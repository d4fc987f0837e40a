"""Simulator faults, quotas, request counts, control endpoint, server lifecycle and CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from linky2mqtt.clock import FastClock
from linky2mqtt.model import PARIS
from linky2mqtt.simulator import Simulator
from tests.support.broker import free_port, wait_port
from tests.support.simulator import MakeSimulator, dataconnect_token

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=PARIS)
NORMAL = "22516914714270"
MED_PATH = f"/daily_consumption/{NORMAL}/start/2026-11-20/end/2026-11-21"
DC_PATH = "/mesure_synchrone_auto/v2/consommation_quotidienne"
DC_PARAMS = {"pointId": NORMAL, "dateDebut": "2026-11-20", "dateFin": "2026-11-21"}
MED_AUTH = {"Authorization": "tok"}


@pytest.fixture
def sim(make_simulator: MakeSimulator) -> Simulator:
    return make_simulator(clock=FastClock(NOW))


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        yield c


def test_scripted_status_faults_in_provider_envelopes(sim: Simulator,
                                                      client: httpx.Client) -> None:
    sim.script("/mesure_synchrone_auto/", ["500", "503", "429", "404", "403"])
    auth = {"Authorization": f"Bearer {dataconnect_token(client)}"}
    answers = [client.get(DC_PATH, params=DC_PARAMS, headers=auth) for _ in range(6)]
    assert [(r.status_code, r.json().get("error")) for r in answers] == [
        (500, "technical_error"), (503, "service_unavailable"), (429, "Quota Q3 reached"),
        (404, "no_data_found"), (403, "ADAM-DC-0008"), (200, None)]
    assert answers[0].json() == {"error": "technical_error",
                                 "error_description": "Technical error. Please try later."}
    assert answers[2].json() == {"error": "Quota Q3 reached",
                                 "error_description": "Call threshold allowed on 0:00:01"}
    token = sim.make_conso_token([NORMAL])
    sim.script("/api/", ["500"])
    r = client.get("/api/consommation_quotidienne", params=DC_PARAMS,
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 500
    assert r.json() == {"status": 500, "message": "The Enedis API returned an error",
                        "error": {"error": "technical_error",
                                  "error_description": "Technical error. Please try later."}}
    sim.script("^/daily_", ["500", "401"])
    r = client.get(MED_PATH, headers=MED_AUTH)
    assert (r.status_code, r.json()) == (500, {"detail": "technical_error: Technical error. "
                                                         "Please try later."})
    r = client.get(MED_PATH, headers=MED_AUTH)
    assert r.status_code == 401
    assert client.get(MED_PATH, headers=MED_AUTH).status_code == 200


def test_badjson_html_drop_slow(sim: Simulator, client: httpx.Client) -> None:
    sim.script("start/2026-11-20", ["badjson", "html", "html:502", "drop", "slow:0.3"])
    r = client.get(MED_PATH, headers=MED_AUTH)
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    r = client.get(MED_PATH, headers=MED_AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text.startswith("<!DOCTYPE html>")
    r = client.get(MED_PATH, headers=MED_AUTH)
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(MED_PATH, headers=MED_AUTH)
    started = time.monotonic()
    r = client.get(MED_PATH, headers=MED_AUTH)
    assert time.monotonic() - started >= 0.3
    assert r.status_code == 200
    assert r.json()["meter_reading"]["usage_point_id"] == NORMAL
    assert sim.count(endpoint="daily_consumption", status=0) == 1  # the dropped one


def test_script_only_hits_matching_paths_and_in_order(sim: Simulator,
                                                      client: httpx.Client) -> None:
    r = client.post("/_sim/script", json={"path": "consumption_load_curve", "faults": ["503"]})
    assert r.json() == {"ok": True, "pending": 1}
    assert client.get(MED_PATH, headers=MED_AUTH).status_code == 200
    curve = f"/consumption_load_curve/{NORMAL}/start/2026-11-20/end/2026-11-21"
    assert client.get(curve, headers=MED_AUTH).status_code == 503
    assert client.get(curve, headers=MED_AUTH).status_code == 200
    r = client.post("/_sim/script", json={"path": ".*", "faults": ["nonsense"]})
    assert r.status_code == 400
    r = client.post("/_sim/script", json={"path": "(", "faults": ["500"]})
    assert r.status_code == 400


def test_random_fault_rate_is_seeded(make_simulator: MakeSimulator) -> None:
    def statuses(sim: Simulator) -> list[int]:
        with httpx.Client(base_url=sim.url, headers=MED_AUTH) as c:
            out = []
            for _ in range(30):
                try:
                    out.append(c.get(MED_PATH).status_code)
                except httpx.RemoteProtocolError:
                    out.append(0)
            return out

    a = statuses(make_simulator(clock=FastClock(NOW), fault_rate=0.5, seed=7))
    b = statuses(make_simulator(clock=FastClock(NOW), fault_rate=0.5, seed=7))
    assert a == b
    assert 200 in a
    assert set(a) - {200}
    assert set(a) <= {200, 500, 503, 429, 0}
    all_bad = make_simulator(clock=FastClock(NOW))
    all_bad.set(fault_rate=1.0, fault_kinds=["503"])
    assert set(statuses(all_bad)) == {503}


def test_latency(sim: Simulator, client: httpx.Client) -> None:
    r = client.post("/_sim/config", json={"latency": 0.25})
    assert r.json()["latency"] == 0.25
    started = time.monotonic()
    assert client.get(MED_PATH, headers=MED_AUTH).status_code == 200
    assert time.monotonic() - started >= 0.25
    r = client.post("/_sim/config", json={"bogus": 1})
    assert r.status_code == 400


def test_quota_per_second_answers_429_and_slides(make_simulator: MakeSimulator) -> None:
    clock = FastClock(NOW, speed=5)  # one simulated second every 0.2 real s
    sim = make_simulator(clock=clock, rate_per_second=2)
    with httpx.Client(base_url=sim.url) as c:
        auth = {"Authorization": f"Bearer {dataconnect_token(c)}"}  # tokens are not counted
        first = clock.time()
        answers = [c.get(DC_PATH, params=DC_PARAMS, headers=auth) for _ in range(3)]
        if clock.time() - first < 1.0:  # all three in the same simulated second
            assert [r.status_code for r in answers] == [200, 200, 429]
            assert answers[2].json()["error"] == "Quota Q3 reached"
            assert answers[2].json()["error_description"].startswith(
                "Call threshold allowed on 0:00:0")
        deadline = time.monotonic() + 10
        while c.get(DC_PATH, params=DC_PARAMS, headers=auth).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_quota_per_hour_and_12h(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=FastClock(NOW), rate_per_hour=3)
    with httpx.Client(base_url=sim.url, headers=MED_AUTH) as c:
        assert [c.get(MED_PATH).status_code for _ in range(4)] == [200, 200, 200, 429]
        body = c.get(MED_PATH).json()
        assert re.fullmatch(r"Quota Q4 reached: Call threshold allowed on (0:59:5\d|1:00:00)",
                            body["detail"])
        # other providers have their own windows
        token = sim.make_conso_token([NORMAL])
        r = c.get("/api/consommation_quotidienne", params=DC_PARAMS,
                  headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        c.post("/_sim/config", json={"rate_per_hour": None, "rate_per_12h": 2})
        assert [c.get("/api/consommation_quotidienne", params=DC_PARAMS,
                      headers={"Authorization": f"Bearer {token}"}).status_code
                for _ in range(2)] == [200, 429]
        r = c.get("/api/consommation_quotidienne", params=DC_PARAMS,
                  headers={"Authorization": f"Bearer {token}"})
        assert r.json()["error"]["error"] == "Quota Q4 reached"
        assert re.fullmatch(r"Call threshold allowed on (11:59:\d\d|12:00:00)",
                            r.json()["error"]["error_description"])
    assert sim.count(status=429) == 4


def test_stats_count_requests(sim: Simulator, client: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {dataconnect_token(client)}"}
    for _ in range(3):
        client.get(DC_PATH, params=DC_PARAMS, headers=auth)
    client.get(DC_PATH, params=DC_PARAMS)
    client.get(MED_PATH, headers=MED_AUTH)
    client.get("/nowhere")
    stats = client.get("/_sim/stats").json()
    assert stats == sim.stats()
    assert stats["total"] == 7
    assert sorted(stats["by"], key=lambda e: (e["provider"], e["endpoint"], e["status"])) == [
        {"provider": "dataconnect", "pdl": NORMAL, "endpoint": "consommation_quotidienne",
         "status": 200, "count": 3},
        {"provider": "dataconnect", "pdl": NORMAL, "endpoint": "consommation_quotidienne",
         "status": 401, "count": 1},
        {"provider": "dataconnect", "pdl": None, "endpoint": "token", "status": 200,
         "count": 1},
        {"provider": "myelectricaldata", "pdl": NORMAL, "endpoint": "daily_consumption",
         "status": 200, "count": 1},
        {"provider": "unknown", "pdl": None, "endpoint": "unknown", "status": 404,
         "count": 1},
    ]
    assert sim.count(provider="dataconnect") == 5
    sim.reset_stats()
    assert client.get("/_sim/stats").json() == {"total": 0, "by": []}


def test_reset_restores_start_options(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=FastClock(NOW), latency=0.0)
    with httpx.Client(base_url=sim.url, headers=MED_AUTH) as c:
        sim.set(rate_per_hour=1, latency=0.01)
        sim.script(".*", ["500", "500"])
        sim.hide(NORMAL, datetime(2026, 11, 20).date())
        assert c.get(MED_PATH).status_code == 500
        assert c.post("/_sim/reset").json() == {"ok": True}
        config = c.get("/_sim/config").json()
        assert (config["rate_per_hour"], config["latency"], config["pending_faults"],
                config["hide"]) == (None, 0.0, 0, [])
        assert config["now"].startswith("2026-11-28T09:00")
        assert c.get(MED_PATH).status_code == 200
        assert c.get("/_sim/stats").json()["total"] == 1
        token = c.get("/_sim/conso_token", params={"pdl": NORMAL}).json()["token"]
        r = c.get("/api/consommation_quotidienne", params=DC_PARAMS,
                  headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200


def test_keep_alive_stop_and_restart_on_same_port(sim: Simulator) -> None:
    with httpx.Client(base_url=sim.url, headers=MED_AUTH) as c:
        r1 = c.get(MED_PATH)
        r2 = c.get(MED_PATH)
        assert r1.status_code == r2.status_code == 200
        assert r1.headers["content-length"] == str(len(r1.content))
        assert r1.http_version == "HTTP/1.1"
        assert sim.count() == 2
        port = sim.port
        sim.stop()
        with pytest.raises(httpx.TransportError):
            c.get(MED_PATH)
        sim.start()
        assert sim.port == port
        assert c.get(MED_PATH).status_code == 200


def test_cli_serves_until_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "linky2mqtt.simulator", "--port", str(port),
         "--now", "2026-11-28T09:00:00", "--rate-per-hour", "100"],
        stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_port("127.0.0.1", port)
        r = httpx.get(f"http://127.0.0.1:{port}{MED_PATH}", headers=MED_AUTH)
        assert r.status_code == 200
        config = httpx.get(f"http://127.0.0.1:{port}/_sim/config").json()
        assert config["rate_per_hour"] == 100
        assert config["now"].startswith("2026-11-28T09:0")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert f"GET {MED_PATH} -> 200 myelectricaldata/daily_consumption pdl={NORMAL}" in err
    assert "sim-secret" not in err


def test_cli_rejects_bad_options() -> None:
    from linky2mqtt.simulator.cli import main

    assert main(["simulator", "--port", "0", "--fault-rate", "2"]) == 2
