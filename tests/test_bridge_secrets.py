"""No secret in any MQTT payload or log line (debug level); check-config and fetch.

The bridge runs as a process at ``log.level: debug`` with a conso token, a Data Connect
client secret, a MyElectricalData token and an MQTT password; every message on ``#`` and
every stderr line is searched for them.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

from linky2mqtt.model import Kind
from tests.support.bridge import (
    REPO,
    BridgeProcess,
    account_yaml,
    config_yaml,
    latest_day,
    truth_day_kwh,
    truth_hours,
)
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK, bridge_command
from tests.support.mqtt_client import Collector, Message
from tests.support.simulator import MakeSimulator

CONSO = "12345678901234"
DC = "22516914714270"
MED = "42900589957123"
REVOKED = "26584978546985"
DC_SECRET = "dc-secret-8f3a1c77"
MED_TOKEN = "med-token-5e7b2d41"
MQTT_PASSWORD = "mqtt-pass-91c3e0aa"


def _config(sim_url_sim: object, broker: Mosquitto, tmp_path: Path, conso_token: str,
            level: str = "debug") -> Path:
    sim = sim_url_sim
    meters = [{"pdl": CONSO, "steps": ["day", "month", "hour"], "max_power": True,
               "backfill_days": {"day": 3, "hour": 2}}]
    accounts = [
        account_yaml("home", "conso", sim, [  # type: ignore[arg-type]
            *meters,
            {"pdl": REVOKED, "steps": ["day"], "backfill_days": {"day": 2, "hour": 0}}],
            token=conso_token),
        account_yaml("business", "dataconnect", sim,  # type: ignore[arg-type]
                     [{"pdl": DC, "backfill_days": {"day": 3, "hour": 2}}],
                     client_id="sim-client", client_secret=DC_SECRET),
        account_yaml("gateway", "myelectricaldata", sim,  # type: ignore[arg-type]
                     [{"pdl": MED, "steps": ["day"], "backfill_days": {"day": 3, "hour": 0}}],
                     token=MED_TOKEN),
    ]
    text = config_yaml(broker.url, tmp_path / "s.db", accounts, level=level)
    text = text.replace("  client_id: l2m-test\n",
                        f"  client_id: l2m-test\n  username: bridge\n"
                        f"  password: {MQTT_PASSWORD}\n")
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def _secrets(conso_token: str) -> list[str]:
    signature = conso_token.rsplit(".", maxsplit=1)[-1]
    return [conso_token, signature, DC_SECRET, MED_TOKEN, MQTT_PASSWORD]


def test_no_secret_in_payloads_or_debug_logs(make_simulator: MakeSimulator,
                                             broker: Mosquitto, tmp_path: Path) -> None:
    sim = make_simulator(client_secret=DC_SECRET)
    token = sim.make_conso_token([CONSO, REVOKED])
    cfg = _config(sim, broker, tmp_path, token)
    everything = Collector(broker.host, broker.port, ["#"])
    proc = BridgeProcess(cfg)
    started = SUITE_CLOCK.now().replace(microsecond=0)

    def done(msgs: list[Message]) -> bool:
        for pdl in (CONSO, DC, MED, REVOKED):
            st = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/status"]
            if not st or not st[-1]["last_poll"] or datetime.fromisoformat(
                    st[-1]["last_poll"]) < started:
                return False
        return any(m.topic == f"l2m/{CONSO}/consumption/hour" for m in msgs)

    try:
        everything.wait_for(done, 40, "every meter polled")
        assert proc.terminate() == 0, proc.stderr
    finally:
        proc.close()
        everything.close()
    log = proc.stderr
    assert " DEBUG " in log  # the debug level really was on
    assert "contract" in log
    for secret in _secrets(token):
        assert secret not in log, f"secret in the log: {secret[:6]}..."
        for m in everything.messages:
            assert secret.encode() not in m.payload, (m.topic, secret[:6])
    info = next(m.json() for m in everything.messages if m.topic == "l2m/bridge/info")
    assert info["config"]["accounts"][0]["name"] == "home"
    latest = latest_day()
    day = [m.json() for m in everything.messages if m.topic == f"l2m/{DC}/consumption/day"][-1]
    assert day["value"] == truth_day_kwh(sim, DC, Kind.CONSUMPTION, latest)
    revoked = [m.json() for m in everything.messages if m.topic == f"l2m/{REVOKED}/status"][-1]
    assert "ADAM-DC-0008" in revoked["last_error"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bridge_command(*args), check=False,
                          cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_check_config_hides_secrets_and_exits_0_or_2(make_simulator: MakeSimulator,
                                                    broker: Mosquitto,
                                                    tmp_path: Path) -> None:
    sim = make_simulator(client_secret=DC_SECRET)
    token = sim.make_conso_token([CONSO])
    cfg = _config(sim, broker, tmp_path, token, level="info")
    ok = _cli("check-config", "-c", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert CONSO in ok.stdout and DC in ok.stdout
    for secret in _secrets(token):
        assert secret not in ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace(f'"{DC}"', '"1234"').replace(
        "  base_topic: l2m\n", "  base_topic: l2m\n  colour: blue\n"))
    ko = _cli("check-config", "-c", str(bad))
    assert ko.returncode == 2
    assert "accounts[1].meters[0].pdl" in ko.stderr and "mqtt.colour" in ko.stderr
    for secret in _secrets(token):
        assert secret not in ko.stdout + ko.stderr


def test_fetch_prints_read_data_and_fails_in_one_line(make_simulator: MakeSimulator,
                                                      broker: Mosquitto,
                                                      tmp_path: Path) -> None:
    sim = make_simulator(client_secret=DC_SECRET)
    token = sim.make_conso_token([CONSO, REVOKED])
    cfg = _config(sim, broker, tmp_path, token, level="info")
    # March, with its 23-hour DST day: a command-sized read instead of a long backfill
    got = _cli("fetch", "-c", str(cfg), "--pdl", DC, "--step", "hour",
               "--start", "2026-03-28", "--end", "2026-03-30")
    assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)
    assert (data["pdl"], data["kind"], data["step"], data["unit"]) == (
        DC, "consumption", "hour", "kWh")
    assert data["missing"] == []
    march29 = [p for p in data["points"] if p["start"].startswith("2026-03-29")]
    assert len(march29) == 23
    assert march29[1]["start"] == "2026-03-29T01:00:00+01:00"
    assert march29[2]["start"] == "2026-03-29T03:00:00+02:00"
    assert march29 == truth_hours(sim, DC, Kind.CONSUMPTION, datetime(2026, 3, 29).date())
    day = _cli("fetch", "-c", str(cfg), "--pdl", CONSO, "--start", "2026-11-01",
               "--end", "2026-11-03")
    assert day.returncode == 0, day.stderr
    points = json.loads(day.stdout)["points"]
    assert [p["value"] for p in points] == [
        truth_day_kwh(sim, CONSO, Kind.CONSUMPTION, datetime(2026, 11, d).date())
        for d in (1, 2)]
    bad = _cli("fetch", "-c", str(cfg), "--pdl", REVOKED, "--start", "2026-11-01",
               "--end", "2026-11-03")
    assert bad.returncode == 1
    assert bad.stdout == ""
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert "ADAM-DC-0008" in lines[0] and "Traceback" not in bad.stderr
    assert token not in bad.stderr
