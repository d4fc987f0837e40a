"""The Home Assistant add-on: options.json + the Supervisor -> the bridge's configuration.

The end-to-end tests start the real entry point (``python -m linky2mqtt``, no ``-c``) the
way the Supervisor does: ``SUPERVISOR_TOKEN`` set, options in ``options.json``, the broker
only known through ``/services/mqtt`` of a Supervisor stand-in (tests/support/supervisor.py)
and only reachable with the credentials it gives, Home Assistant only through its proxy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from linky2mqtt.addon import AddonOptionsError, load_addon_config
from linky2mqtt.model import Step
from linky2mqtt.simulator import Simulator
from tests.support.bridge import REPO, data_requests, wait_until
from tests.support.broker import Mosquitto
from tests.support.broker import auth_broker as start_auth_broker
from tests.support.cli import run_cli, saved_root_logging
from tests.support.clock import bridge_command
from tests.support.fake_ha import FakeHA
from tests.support.mqtt_client import Collector
from tests.support.supervisor import SUPERVISOR_TOKEN, Broker, SupervisorStandIn

PDL = "22516914714270"
PDL2 = "24880057139142"
HA_TOKEN = "the-supervisors-own-core-token"
MQTT_USER, MQTT_PASSWORD = "addons", "generated-by-mosquitto-addon"

ALL_OPTIONS: dict[str, Any] = {
    "accounts": [
        {"name": "home", "provider": "conso", "token": "conso-tok-${NOT_AN_ENV}",
         "base_url": "http://127.0.0.1:9999", "enabled": True, "budget_per_hour": 40,
         "budget_per_12h": 60, "budget_per_day": 90},
        {"name": "office", "provider": "dataconnect", "client_id": "app-id",
         "client_secret": "app-secret", "enabled": False},
    ],
    "meters": [
        {"pdl": PDL, "account": "home", "name": "House", "steps": "hour,day",
         "consumption": True, "production": True, "max_power": True, "refresh": 7200,
         "backfill_day": 10, "backfill_hour": 5, "enabled": True},
        {"pdl": PDL2, "account": "office"},
    ],
    "steps": "day,month", "backfill_day": 400, "backfill_hour": 20, "refresh": 43200,
    "statistics": True, "discovery": False, "discovery_prefix": "ha", "base_topic": "linky",
    "commands": False, "poll_window": "07:00-09:30", "mqtt_username": "me",
    "mqtt_password": "my-broker-password", "mqtt_protocol": "5", "log_level": "debug",
}


def _service(broker: dict[str, Any] | None, seen: list[str] | None = None,
             ) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(f"{request.url.path} {request.headers.get('Authorization')}")
        if broker is None:
            return httpx.Response(400, json={"result": "error", "message": "Service not enabled"})
        return httpx.Response(200, json={"result": "ok", "data": broker})

    return httpx.MockTransport(handle)


def _env(tmp_path: Path, options: Any) -> dict[str, str]:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options), encoding="utf-8")
    return {"SUPERVISOR_TOKEN": "sup-tok", "LINKY2MQTT_ADDON_OPTIONS": str(path),
            "LINKY2MQTT_SUPERVISOR_URL": "http://supervisor.test"}


# --------------------------------------------------------------------------- options -> config


def test_every_option_reaches_the_configuration(tmp_path: Path) -> None:
    seen: list[str] = []
    broker = {"host": "core-mosquitto", "port": 1884, "ssl": True, "username": "addons",
              "password": "gen", "protocol": "3.1.1", "addon": "core_mosquitto"}
    cfg = load_addon_config(_env(tmp_path, ALL_OPTIONS), transport=_service(broker, seen))
    assert seen == ["/services/mqtt Bearer sup-tok"]
    m = cfg.mqtt
    assert (m.url, m.host, m.port, m.use_tls) == ("mqtts://core-mosquitto:1884",
                                                  "core-mosquitto", 1884, True)
    # mqtt_username / mqtt_password / mqtt_protocol override what the service gave
    assert m.username == "me"
    assert m.password is not None and m.password.reveal() == "my-broker-password"
    assert (m.protocol, m.base_topic) == ("5", "linky")
    ha = cfg.homeassistant
    assert (ha.discovery, ha.discovery_prefix) == (False, "ha")
    assert ha.statistics is not None
    assert ha.statistics.url == "ws://supervisor.test/core/websocket"  # used as is
    assert ha.statistics.token.reveal() == "sup-tok"
    assert cfg.store.path == tmp_path / "linky2mqtt.db"
    assert (cfg.log.level, cfg.commands) == ("debug", False)
    assert [t.strftime("%H:%M") for t in cfg.poll_window] == ["07:00", "09:30"]
    home, office = cfg.accounts
    assert (home.name, home.provider, home.base_url, home.enabled) == (
        "home", "conso", "http://127.0.0.1:9999", True)
    assert home.token is not None and home.token.reveal() == "conso-tok-${NOT_AN_ENV}"
    assert home.budget is not None
    assert (home.budget.per_hour, home.budget.per_12h, home.budget.per_day) == (40, 60, 90)
    (house,) = home.meters
    assert (house.pdl, house.name, house.steps) == (PDL, "House", frozenset({Step.DAY, Step.HOUR}))
    assert (house.consumption, house.production, house.max_power) == (True, True, True)
    assert (house.refresh, house.backfill_day, house.backfill_hour, house.enabled) == (
        7200, 10, 5, True)
    assert (office.provider, office.client_id, office.enabled) == ("dataconnect", "app-id",
                                                                   False)
    assert office.client_secret is not None and office.client_secret.reveal() == "app-secret"
    (desk,) = office.meters
    # a meter without settings takes the top-level defaults
    assert (desk.pdl, desk.name, desk.steps) == (PDL2, PDL2, frozenset({Step.DAY, Step.MONTH}))
    assert (desk.refresh, desk.backfill_day, desk.backfill_hour) == (43200, 400, 20)
    assert (desk.consumption, desk.production, desk.max_power) == (True, False, False)


def test_the_default_options_give_the_mosquitto_addon_and_every_conso_pdl(
        tmp_path: Path) -> None:
    import yaml

    defaults = yaml.safe_load((REPO / "addon" / "config.yaml").read_text())["options"]
    defaults["accounts"][0]["token"] = "t0ken"
    broker = {"host": "core-mosquitto", "port": 1883, "ssl": False, "username": "addons",
              "password": "gen", "protocol": "3.1.1"}
    cfg = load_addon_config(_env(tmp_path, defaults), transport=_service(broker))
    assert (cfg.mqtt.url, cfg.mqtt.username, cfg.mqtt.protocol) == (
        "mqtt://core-mosquitto:1883", "addons", "3.1.1")
    assert cfg.mqtt.password is not None and cfg.mqtt.password.reveal() == "gen"
    (account,) = cfg.accounts
    assert (account.provider, account.auto_meters) == ("conso", True)
    assert (account.meter_defaults.backfill_day, account.meter_defaults.backfill_hour) == (365,
                                                                                          30)
    assert cfg.homeassistant.statistics is not None and cfg.homeassistant.discovery


def test_mqtt_url_option_means_the_supervisor_is_not_asked(tmp_path: Path) -> None:
    seen: list[str] = []
    options = {"accounts": [{"provider": "conso", "token": "t0ken"}],
               "mqtt_url": "mqtt://192.168.1.5:1883", "statistics": False}
    cfg = load_addon_config(_env(tmp_path, options), transport=_service(None, seen))
    assert seen == []
    assert (cfg.mqtt.url, cfg.mqtt.username, cfg.homeassistant.statistics) == (
        "mqtt://192.168.1.5:1883", None, None)


@pytest.mark.parametrize(("options", "expected"), [
    ({"accounts": [{"name": "home", "provider": "dataconnect", "client_id": "x"}],
      "meters": [{"pdl": "123456789012345", "account": "home"}, {"pdl": PDL, "account": "hom"}],
      "steps": "day,week", "backfill_day": 2000},
     ["steps: expected steps separated by commas among day, month, hour",
      "meters[1].account: no account named 'hom' (accounts: home)",
      "accounts[0].client_secret: required for provider dataconnect",
      "backfill_day: must be between 0 and 1110, got 2000",
      'meters[0].pdl: expected 14 digits, got "123456789012345"']),
    ({"accounts": [], "log_level": "info"},
     ["accounts: add at least one account (a provider and its token)"]),
    ({"accounts": [{"name": "a", "provider": "conso", "token": "t0ken"},
                   {"name": "b", "provider": "conso", "token": "t1ken"}],
      "meters": [{"pdl": PDL}], "colour": "blue"},
     ["colour: unknown option",
      "meters[0].account: required when there are several accounts (one of a, b)"]),
    ({"accounts": [{"name": "m", "provider": "myelectricaldata", "token": "t0ken"}]},
     ["meters (for account 'm')"]),
])
def test_wrong_options_give_one_line_naming_each_option(
        tmp_path: Path, options: dict[str, Any], expected: list[str]) -> None:
    options = {"mqtt_url": "mqtt://127.0.0.1:1", **options}
    with saved_root_logging():
        rc, out, err = run_cli("run", env=_env(tmp_path, options))
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("linky2mqtt: invalid add-on options: ")
    assert line.endswith("-- fix them in the add-on's Configuration tab, then restart it")
    for text in expected:
        assert text in line
    assert "_file" not in line  # the add-on has no *_file options: never suggest them
    assert "Traceback" not in err and out == ""


def test_no_broker_service_is_one_line_saying_to_install_mosquitto(tmp_path: Path) -> None:
    options = {"accounts": [{"provider": "conso", "token": "t0ken"}]}
    with pytest.raises(AddonOptionsError) as info:
        load_addon_config(_env(tmp_path, options), transport=_service(None))
    assert info.value.line == (
        "no MQTT broker from the Supervisor (HTTP 400: Service not enabled); install and "
        "start the Mosquitto broker add-on, or set mqtt_url (and mqtt_username/mqtt_password)")


def test_without_a_supervisor_the_entry_point_reads_the_yaml_as_before(tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"accounts": []}))
    env = {"LINKY2MQTT_ADDON_OPTIONS": str(options), "SUPERVISOR_TOKEN": ""}
    with saved_root_logging():
        rc, _, err = run_cli("check-config", "-c", str(tmp_path / "nope.yaml"), env=env)
    assert rc == 2 and "config: file not found" in err and "add-on" not in err
    # and with a Supervisor, an explicit -c still means that file
    env["SUPERVISOR_TOKEN"] = "sup-tok"
    with saved_root_logging():
        rc, _, err = run_cli("check-config", "-c", str(tmp_path / "nope.yaml"), env=env)
    assert rc == 2 and "config: file not found" in err and "add-on" not in err


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto that only lets the Supervisor's generated user in."""
    mq = start_auth_broker(tmp_path, {MQTT_USER: MQTT_PASSWORD})
    try:
        yield mq
    finally:
        mq.stop()


@pytest.fixture
def ha() -> Iterator[FakeHA]:
    server = FakeHA(token=HA_TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stand_in(auth_broker: Mosquitto, ha: FakeHA) -> Iterator[SupervisorStandIn]:
    sup = SupervisorStandIn(broker=Broker("127.0.0.1", auth_broker.port, MQTT_USER,
                                          MQTT_PASSWORD),
                            ha_url=ha.url, ha_token=HA_TOKEN).start()
    try:
        yield sup
    finally:
        sup.stop()


class Addon:
    """``python -m linky2mqtt`` as the Supervisor starts it (no arguments but ``run``)."""

    def __init__(self, data: Path, sup: SupervisorStandIn) -> None:
        env = {k: v for k, v in os.environ.items() if k != "LINKY2MQTT_CONFIG"}
        env.update(sup.env(), PYTHONUNBUFFERED="1",
                   LINKY2MQTT_ADDON_OPTIONS=str(data / "options.json"))
        self.proc = subprocess.Popen(bridge_command("run"), cwd=REPO,
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def test_addon_end_to_end_broker_statistics_and_store_through_the_supervisor(
        tmp_path: Path, simulator: Simulator, auth_broker: Mosquitto, ha: FakeHA,
        stand_in: SupervisorStandIn) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "options.json").write_text(json.dumps({
        "accounts": [{"name": "home", "provider": "conso", "base_url": simulator.url,
                      "token": simulator.make_conso_token([PDL])}],
        "meters": [{"pdl": PDL, "steps": "day,hour", "backfill_day": 3, "backfill_hour": 2}],
        "steps": "day,month,hour", "backfill_day": 365, "backfill_hour": 30,
        "statistics": True, "discovery": True, "log_level": "info"}))
    watcher = Collector(auth_broker.host, auth_broker.port, topics=["linky2mqtt/#"],
                        username=MQTT_USER, password=MQTT_PASSWORD)
    addon = Addon(data, stand_in)
    try:
        # the broker's address and credentials came from /services/mqtt only
        watcher.wait_for(lambda ms: any(m.topic == "linky2mqtt/bridge/state"
                                        and m.json() == {"state": "online"} for m in ms),
                         60, "bridge online on the Supervisor's broker")
        sid = f"linky2mqtt:{PDL}_consumption"
        rows = wait_until(lambda: len(ha.rows(sid)) >= 48 and ha.rows(sid), 90,
                          "statistics imported through the proxy")
        assert len(rows) == 48
        rc, err = addon.stop()
    finally:
        addon.kill()
    assert rc == 0, err
    assert stand_in.service_calls == [("/services/mqtt", True)]
    # the add-on authenticated to the proxy with the Supervisor token, only
    assert stand_in.ws_auth and set(stand_in.ws_auth) == {SUPERVISOR_TOKEN}
    assert "recorder/import_statistics" in stand_in.relayed
    assert ha.auth_failures == 0
    assert SUPERVISOR_TOKEN not in err and MQTT_PASSWORD not in err
    assert (data / "linky2mqtt.db").is_file()
    assert watcher.last("linky2mqtt/bridge/state").json() == {"state": "offline"}  # type: ignore[union-attr]
    fetched = data_requests(simulator)
    assert fetched > 0

    # restart: the store in /data keeps everything, nothing is fetched again
    imports_before = sum(c.rows for c in ha.import_calls)
    status = f"linky2mqtt/{PDL}/status"
    first_poll = watcher.last(status).json()["last_poll"]  # type: ignore[union-attr]
    again = Addon(data, stand_in)
    try:
        # the restarted bridge polled (a new last_poll) and found everything in the store
        watcher.wait_for(lambda ms: any(m.topic == status and m.payload
                                        and m.json()["last_poll"] != first_poll for m in ms),
                         60, "the restarted bridge's first poll")
        rc, err = again.stop()
    finally:
        again.kill()
        watcher.close()
    assert rc == 0, err
    assert data_requests(simulator) == fetched
    assert sum(c.rows for c in ha.import_calls) == imports_before
