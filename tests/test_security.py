"""Security, for real: the bridge over TLS and with a broker password, secrets never shown
(logs at every level, exceptions, bridge/info, check-config, fetch), the command topic
confined to configured PDLs, and the Docker image's non-root user (checked statically:
no Docker engine here).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.enedis import EnedisClient, ProviderSettings, RetryPolicy, errors, no_sleep
from linky2mqtt.logs import RedactingFilter, setup_logging
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator
from tests.support.broker import Mosquitto, wait_port
from tests.support.cli import run_cli, saved_root_logging
from tests.support.clock import SUITE_CLOCK, bridge_command
from tests.support.fake_ha import FakeHA
from tests.support.mqtt_client import Collector, Message
from tests.support.simulator import MakeSimulator
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
PDL1, PDL2, PDL3, PDL4 = "12345678901234", "22516914714270", "30001234567890", "40001234567890"
UNCONFIGURED = "55501234567890"  # covered by the conso token, not configured

MQTT_USER = "linky"
MQTT_PASSWORD = "mqtt-PW-SECRET-7f3a91"
DC_SECRET = "dc-CLIENT-SECRET-5150aa"
DC_WRONG_SECRET = "dc-WRONG-SECRET-8675309"
MED_TOKEN = "med-TOKEN-SECRET-24601z"
HA_TOKEN = "ha-LLAT-SECRET-31337q"
NOT_JWT_TOKEN = "conso-NOTJWT-SECRET-4242"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with saved_root_logging():
        yield


# -- a broker with TLS and passwords ------------------------------------------------------


class SecureBroker:
    """mosquitto with three listeners: TLS + password (``tls_port``), plain + password
    (``auth_port``), and plain anonymous (``open_port``) for the test's own observer."""

    def __init__(self, m: Mosquitto, auth_port: int, open_port: int) -> None:
        self.m, self.tls_port, self.auth_port, self.open_port = m, m.port, auth_port, open_port

    def collector(self) -> Collector:
        return Collector("127.0.0.1", self.open_port, ["#"])


@pytest.fixture
def secure_broker(tmp_path: Path, pki: Path) -> Iterator[SecureBroker]:
    from tests.support.broker import free_port

    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), MQTT_USER, MQTT_PASSWORD],
                   check=True, capture_output=True)
    m = Mosquitto(tmp_path)
    auth_port, open_port = free_port(), free_port()
    m.extra_conf = (
        "per_listener_settings true\n"
        f"listener {m.port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\n"
        f"keyfile {pki / 'server.key'}\n"
        f"listener {auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
        f"listener {open_port} 127.0.0.1\nallow_anonymous true\n"
    )
    m.start()
    wait_port("127.0.0.1", auth_port)
    wait_port("127.0.0.1", open_port)
    try:
        yield SecureBroker(m, auth_port, open_port)
    finally:
        m.stop()


def _mqtt_yaml(url: str, *, ca: Path | None = None, insecure: bool = False,
               password: str = MQTT_PASSWORD, client_id: str = "l2m-sec") -> str:
    tls = ""
    if url.startswith("mqtts"):
        ca_text = json.dumps(str(ca)) if ca else "null"
        tls = f"  tls: {{ca_file: {ca_text}, insecure: {str(insecure).lower()}}}\n"
    return (f"mqtt:\n  url: '{url}'\n  username: {MQTT_USER}\n  password: '{password}'\n"
            f"  client_id: {client_id}\n{tls}")


def _med_account(sim: Simulator, pdl: str = PDL4) -> str:
    return ("accounts:\n  - name: med\n    provider: myelectricaldata\n"
            f"    token: '{MED_TOKEN}'\n    base_url: '{sim.url}'\n"
            f"    meters: [{{pdl: '{pdl}', steps: [day], backfill_days: {{day: 3, hour: 0}}}}]\n")


@pytest.fixture
def bridges() -> Iterator[list[Bridge]]:
    made: list[Bridge] = []
    yield made
    for b in made:
        b.stop()


def _start(bridges: list[Bridge], text: str) -> Bridge:
    bridge = Bridge(load_text(text, env={}), stagger=0.0, clock=SUITE_CLOCK)
    bridges.append(bridge)
    bridge.start()
    return bridge


def _online(col: Collector, base: str = "linky2mqtt") -> Callable[[list[Message]], Any]:
    def pred(msgs: list[Message]) -> Any:
        return any(m.topic == f"{base}/bridge/state"
                   and (b"true" in m.payload.lower() or b"online" in m.payload)
                   for m in msgs)
    return pred


def test_bridge_over_tls_with_password_connects_and_publishes(
    secure_broker: SecureBroker, pki: Path, simulator: Simulator, tmp_path: Path,
    bridges: list[Bridge], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    col = secure_broker.collector()
    text = (_mqtt_yaml(f"mqtts://127.0.0.1:{secure_broker.tls_port}", ca=pki / "ca.crt")
            + f"store: {{path: '{tmp_path / 'l.db'}'}}\n" + _med_account(simulator))
    bridge = _start(bridges, text)
    assert bridge.link.wait_connected(15)
    col.wait_for(_online(col), 15, "bridge/state online over TLS")
    info = col.wait_for(lambda ms: [m for m in ms if m.topic == "linky2mqtt/bridge/info"], 15,
                        "bridge/info")[0].json()
    assert info["config"]["mqtt"]["password"] == "***"
    assert info["config"]["mqtt"]["tls"] == {"ca_file": str(pki / "ca.crt"), "cert_file": None,
                                             "key_file": None, "insecure": False}
    assert any("MQTT connected to 127.0.0.1" in r.getMessage() and ", TLS" in r.getMessage()
               for r in caplog.records)
    assert "verification is DISABLED" not in caplog.text
    assert MQTT_PASSWORD not in caplog.text


@pytest.mark.parametrize("ca", ["other-ca.crt", None])
def test_bridge_with_a_wrong_ca_or_system_cas_never_connects(
    secure_broker: SecureBroker, pki: Path, simulator: Simulator, tmp_path: Path,
    bridges: list[Bridge], caplog: pytest.LogCaptureFixture, ca: str | None,
) -> None:
    caplog.set_level(logging.INFO, logger="linky2mqtt")
    col = secure_broker.collector()
    text = (_mqtt_yaml(f"mqtts://127.0.0.1:{secure_broker.tls_port}",
                       ca=pki / ca if ca else None)
            + f"store: {{path: '{tmp_path / 'l.db'}'}}\n" + _med_account(simulator))
    bridge = _start(bridges, text)
    wait_until(lambda: caplog.text.count("certificate verify failed") >= 2, 20,
               "two refused TLS handshakes")
    assert not bridge.link.connected
    assert not _online(col)(col.messages)
    assert not [m for m in col.messages if m.topic.startswith("linky2mqtt/")]


def test_insecure_true_is_the_only_way_to_skip_verification_and_warns(
    secure_broker: SecureBroker, simulator: Simulator, tmp_path: Path,
    bridges: list[Bridge], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="linky2mqtt")
    col = secure_broker.collector()
    text = (_mqtt_yaml(f"mqtts://127.0.0.1:{secure_broker.tls_port}", insecure=True)
            + f"store: {{path: '{tmp_path / 'l.db'}'}}\n" + _med_account(simulator))
    bridge = _start(bridges, text)
    assert bridge.link.wait_connected(15)
    col.wait_for(_online(col), 15, "bridge/state online")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "verification is DISABLED" in r.getMessage()]
    assert len(warnings) == 1
    # and insecure is refused on a plain mqtt:// URL (no silent half-TLS)
    with pytest.raises(Exception, match="tls"):
        load_text(_mqtt_yaml("mqtt://127.0.0.1:1883") + "  tls: {insecure: true}\n"
                  + f"store: {{path: '{tmp_path / 'x.db'}'}}\n" + _med_account(simulator),
                  env={})


def test_wrong_password_never_connects_and_is_never_logged(
    secure_broker: SecureBroker, simulator: Simulator, tmp_path: Path,
    bridges: list[Bridge], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "mqtt-WRONG-PW-0xdeadbeef"
    text = (_mqtt_yaml(f"mqtt://127.0.0.1:{secure_broker.auth_port}", password=wrong)
            + f"store: {{path: '{tmp_path / 'l.db'}'}}\n" + _med_account(simulator))
    bridge = _start(bridges, text)
    wait_until(lambda: "refused" in caplog.text, 15, "a refused connection")
    assert not bridge.link.connected
    assert wrong not in caplog.text
    right = _start(bridges, _mqtt_yaml(f"mqtt://127.0.0.1:{secure_broker.auth_port}",
                                       client_id="l2m-right")
                   + f"store: {{path: '{tmp_path / 'r.db'}'}}\n" + _med_account(simulator))
    assert right.link.wait_connected(15)


# -- redaction, everywhere ------------------------------------------------------------------


def _secret_parts(secrets: list[str]) -> list[str]:
    """Each secret, and for JWTs their payload and signature alone (a partial leak)."""
    out: list[str] = []
    for s in secrets:
        out.append(s)
        if s.count(".") == 2:
            out += [p for p in s.split(".")[1:] if len(p) >= 8]
    return out


def test_log_filter_masks_secrets_at_every_level() -> None:
    buf = io.StringIO()
    setup_logging("debug", "text", stream=buf, secrets=[MQTT_PASSWORD, DC_SECRET, HA_TOKEN])
    log = logging.getLogger("linky2mqtt.test_security")
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        log.log(level, "pw=%s secret=%s ha=%s auth=Authorization: Bearer abcdefghijklmnop",
                MQTT_PASSWORD, DC_SECRET, HA_TOKEN)
        try:
            raise RuntimeError(f"failed with {DC_SECRET}")
        except RuntimeError:
            log.log(level, "boom %s", HA_TOKEN, exc_info=True)
    text = buf.getvalue()
    for name in ("DEBUG", "INFO", "WARNING", "ERROR"):
        assert f" {name}" in text
    for s in (MQTT_PASSWORD, DC_SECRET, HA_TOKEN, "abcdefghijklmnop"):
        assert s not in text
    assert text.count("pw=*** secret=*** ha=***") == 4
    assert RedactingFilter([DC_SECRET]).redact(f"x {DC_SECRET} y") == "x *** y"


def test_exceptions_raised_with_bad_credentials_never_show_them(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(client_secret=DC_SECRET)
    expired = sim.make_conso_token([PDL1], lifetime=-3600)
    cases = [
        ProviderSettings(provider="conso", token=expired, base_url=sim.url, account="a"),
        ProviderSettings(provider="conso", token=NOT_JWT_TOKEN, base_url=sim.url, account="b"),
        ProviderSettings(provider="dataconnect", client_id="sim-client",
                         client_secret=DC_WRONG_SECRET, base_url=sim.url, account="c"),
        ProviderSettings(provider="myelectricaldata", token=MED_TOKEN,
                         base_url=sim.url + "/nowhere", account="d"),
    ]
    secrets = _secret_parts([expired, NOT_JWT_TOKEN, DC_WRONG_SECRET, MED_TOKEN])
    raised: list[BaseException] = []
    day = SUITE_CLOCK.now().astimezone(PARIS).date() - timedelta(days=5)
    end = day + timedelta(days=1)
    for s in cases:
        with EnedisClient(s, retry=RetryPolicy(attempts=1, sleep=no_sleep),
                          clock=SUITE_CLOCK) as client:
            calls: list[Callable[[], Any]] = [
                lambda: client.daily(PDL1, Kind.CONSUMPTION, day, end),
                lambda: client.curve(PDL1, Kind.CONSUMPTION, day, end),
                lambda: client.daily(PDL1, Kind.MAX_POWER, day, end),
                lambda: client.contract(PDL1),
                client.covered_pdls,
            ]
            for call in calls:
                try:
                    call()
                except errors.EnedisError as failure:
                    raised.append(failure)
            assert not any(p in repr(client) for p in secrets)
    assert len(raised) >= 10
    for exc in raised:
        shown = " ".join([str(exc), repr(exc), *map(str, exc.args),
                          json.dumps(vars(exc), default=str)])
        for p in secrets:
            assert p not in shown, (type(exc).__name__, shown)


def _full_config(tmp_path: Path, sim: Simulator, broker_port: int, ha: FakeHA,
                 good_conso: str, expired_conso: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
mqtt:
  url: mqtt://127.0.0.1:{broker_port}
  username: {MQTT_USER}
  password: ${{MQTT_PASSWORD}}
  client_id: l2m-redaction
homeassistant:
  discovery: true
  statistics: {{url: '{ha.url}', token: '{HA_TOKEN}'}}
store: {{path: '{tmp_path / "linky.db"}'}}
log: {{level: debug}}
accounts:
  - name: home
    provider: conso
    token: '{good_conso}'
    base_url: '{sim.url}'
    meters: [{{pdl: '{PDL1}', steps: [day, hour], backfill_days: {{day: 5, hour: 2}}}}]
  - name: expired
    provider: conso
    token: '{expired_conso}'
    base_url: '{sim.url}'
    meters: [{{pdl: '{PDL3}', steps: [day], backfill_days: {{day: 3, hour: 0}}}}]
  - name: notjwt
    provider: conso
    token: ${{NOT_JWT}}
    base_url: '{sim.url}'
    meters: auto
  - name: pro
    provider: dataconnect
    client_id: sim-client
    client_secret: '{DC_SECRET}'
    base_url: '{sim.url}'
    meters: [{{pdl: '{PDL2}', steps: [day], backfill_days: {{day: 3, hour: 0}}}}]
  - name: probad
    provider: dataconnect
    client_id: sim-client
    client_secret_file: dc_wrong_secret
    base_url: '{sim.url}'
    meters: [{{pdl: '30001234567891', steps: [day], backfill_days: {{day: 3, hour: 0}}}}]
  - name: med
    provider: myelectricaldata
    token: '{MED_TOKEN}'
    base_url: '{sim.url}'
    meters: [{{pdl: '{PDL4}', steps: [day], backfill_days: {{day: 3, hour: 0}}}}]
""")
    (tmp_path / "dc_wrong_secret").write_text(DC_WRONG_SECRET + "\n")
    return path


def test_no_secret_in_logs_info_topics_check_config_or_fetch(
    secure_broker: SecureBroker, make_simulator: MakeSimulator, tmp_path: Path,
) -> None:
    sim = make_simulator(client_secret=DC_SECRET)
    good = sim.make_conso_token([PDL1, UNCONFIGURED])
    expired = sim.make_conso_token([PDL3], lifetime=-3600)
    ha = FakeHA(token="the-right-ha-token").start()
    env = {"MQTT_PASSWORD": MQTT_PASSWORD, "NOT_JWT": NOT_JWT_TOKEN}
    secrets = _secret_parts([good, expired, MQTT_PASSWORD, DC_SECRET, DC_WRONG_SECRET,
                             MED_TOKEN, HA_TOKEN, NOT_JWT_TOKEN])
    try:
        config = _full_config(tmp_path, sim, secure_broker.auth_port, ha, good, expired)
        col = secure_broker.collector()
        proc = subprocess.Popen(bridge_command("run", "-c", str(config)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, **env}, cwd=REPO)
        try:
            col.wait_for(lambda ms: {m.topic for m in ms} >= {
                f"linky2mqtt/{p}/status" for p in (PDL1, PDL2, PDL3, PDL4)}, 40,
                "a status for every meter")
            col.wait_for(lambda ms: any(m.topic == f"linky2mqtt/{PDL2}/status"
                                        and m.json().get("last_success") for m in ms), 30,
                         "the dataconnect meter polled")
            col.client.publish("linky2mqtt/bridge/request/info", b"{}", qos=1)
            col.wait_for(lambda ms: any(m.topic == "linky2mqtt/bridge/response/info"
                                        for m in ms), 20, "the info answer")
            # the statistics import has tried the (wrong) Home Assistant token
            wait_until(lambda: ha.auth_failures > 0, 30, "the statistics import's attempt")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
        log = err.decode("utf-8", "replace")
        assert proc.returncode == 0, log[-2000:]
        levels = set(re.findall(r" (DEBUG|INFO|WARNING|ERROR) ", log))
        assert levels == {"DEBUG", "INFO", "WARNING", "ERROR"}, levels
        assert "credentials refused" in log or "refused" in log  # the bad ones were used
        for p in secrets:
            assert p not in log, p
        for m in col.messages:
            for p in secrets:
                assert p.encode() not in m.payload and p not in m.topic, (m.topic, p)
        info = [m for m in col.messages if m.topic == "linky2mqtt/bridge/info"][-1].json()
        assert info["config"]["mqtt"]["password"] == "***"
        assert info["config"]["homeassistant"]["statistics"]["token"] == "***"
        assert {a["name"]: (a.get("token"), a.get("client_secret"))
                for a in info["config"]["accounts"]}["pro"][1] == "***"

        rc, out, err_ = run_cli("check-config", "-c", str(config), env=env)
        assert rc == 0 and err_ == ""
        assert "home" in out and PDL1 in out
        for p in secrets:
            assert p not in out
        # invalid configurations that carry secrets in the wrong places
        bad = tmp_path / "bad.yaml"
        bad.write_text(config.read_text().replace(
            "  client_id: l2m-redaction\n",
            f"  client_id: l2m-redaction\n  passwrd: '{MQTT_PASSWORD}'\n").replace(
            f"    token: '{MED_TOKEN}'\n",
            f"    token: ['{MED_TOKEN}']\n    client_secret: '{DC_SECRET}'\n"))
        rc, out, err_ = run_cli("check-config", "-c", str(bad), env=env)
        assert rc == 2 and "Traceback" not in err_
        assert "mqtt.passwrd" in err_ and "accounts[5]" in err_
        for p in secrets:
            assert p not in out + err_, p

        # fetch with bad credentials: one line at info level, a traceback at debug level,
        # never a secret in either
        broken = config.read_text()
        for level in ("info", "debug"):
            cfg_path = tmp_path / f"fetch-{level}.yaml"
            cfg_path.write_text(broken.replace("log: {level: debug}", f"log: {{level: {level}}}"))
            for account_pdl in (PDL3, "30001234567891"):
                rc, out, err_ = run_cli(
                    "fetch", "-c", str(cfg_path), "--pdl", account_pdl, "--start",
                    str(_today() - timedelta(days=3)), "--end",
                    str(_today() - timedelta(days=1)), env=env)
                assert rc == 1 and out == "", (account_pdl, err_)
                # (the simulator runs in this process and logs through the same handler)
                lines = [ln for ln in err_.strip().splitlines()
                         if " linky2mqtt.simulator: " not in ln]
                if level == "info":
                    assert len(lines) == 1 and lines[0].startswith("linky2mqtt: error: "), err_
                else:
                    assert "Traceback" in err_
                for p in secrets:
                    assert p not in err_, (account_pdl, p)
    finally:
        ha.stop()


# -- the command topic never reaches an unconfigured PDL -------------------------------------


def test_commands_never_reach_an_unconfigured_pdl(
    secure_broker: SecureBroker, simulator: Simulator, tmp_path: Path, bridges: list[Bridge],
) -> None:
    token = simulator.make_conso_token([PDL1, UNCONFIGURED])
    col = secure_broker.collector()
    text = (_mqtt_yaml(f"mqtt://127.0.0.1:{secure_broker.auth_port}")
            + f"store: {{path: '{tmp_path / 'l.db'}'}}\nhomeassistant: {{discovery: false}}\n"
            + "accounts:\n  - name: home\n    provider: conso\n"
            + f"    token: '{token}'\n    base_url: '{simulator.url}'\n"
            + f"    meters: [{{pdl: '{PDL1}', steps: [day], "
            + "backfill_days: {day: 3, hour: 0}}]\n")
    bridge = _start(bridges, text)
    assert bridge.link.wait_connected(15)
    col.wait_for(lambda ms: any(m.topic == f"linky2mqtt/{PDL1}/status" for m in ms), 20,
                 "the configured meter's status")
    day = SUITE_CLOCK.now().astimezone(PARIS).date() - timedelta(days=10)
    requests = [
        ("read", {"pdl": UNCONFIGURED, "kind": "consumption", "step": "day",
                  "start": str(day), "end": str(day + timedelta(days=2)), "transaction": 1}),
        ("read", {"pdl": UNCONFIGURED, "kind": "consumption", "step": "hour",
                  "start": str(day), "end": str(day + timedelta(days=1)), "transaction": 2}),
        ("refresh", {"pdl": UNCONFIGURED, "transaction": 3}),
        ("read", {"pdl": "99999999999999", "kind": "consumption", "step": "day",
                  "start": str(day), "end": str(day + timedelta(days=1)), "transaction": 4}),
        ("read", {"pdl": "../../etc/passwd", "kind": "consumption", "step": "day",
                  "start": str(day), "end": str(day + timedelta(days=1)), "transaction": 5}),
    ]
    for command, body in requests:
        col.client.publish(f"linky2mqtt/bridge/request/{command}", json.dumps(body), qos=1)
    answers = col.wait_for(
        lambda ms: (a := [m.json() for m in ms if m.topic.startswith(
            "linky2mqtt/bridge/response/")]) and len(a) >= len(requests) and a, 20,
        "an answer to every request")
    assert sorted(a["transaction"] for a in answers) == [1, 2, 3, 4, 5]
    for a in answers:
        assert a["status"] == "error", a
        assert a["data"] == {}
    by_tx = {a["transaction"]: a for a in answers}
    assert by_tx[1]["error"].startswith(
        f"PDL {UNCONFIGURED} is not configured in this bridge (configured: ")
    assert simulator.count(pdl=UNCONFIGURED) == 0
    assert simulator.count(pdl="99999999999999") == 0
    assert simulator.count(pdl=PDL1) > 0


# -- the Docker image (static: no Docker engine in this environment) ----------------------


def test_dockerfile_runs_as_non_root_with_healthcheck_and_data_volume() -> None:
    lines = [ln.strip() for ln in (REPO / "Dockerfile").read_text().splitlines()]
    final_from = max(i for i, ln in enumerate(lines) if ln.startswith("FROM "))
    stage = lines[final_from:]
    users = [i for i, ln in enumerate(stage) if ln.startswith("USER ")]
    runs = [i for i, ln in enumerate(stage) if ln.startswith("RUN ")]
    assert users, "no USER in the final stage"
    user = stage[users[-1]].split()[1]
    assert user not in ("root", "0", "0:0") and not user.startswith("root:")
    assert users[-1] > max(runs), "a RUN comes after the last USER"
    stage_text = "\n".join(stage)
    assert re.search(rf"useradd[^\n]*--uid (\d+)[^\n]*{user}", stage_text.replace("\\\n", " "))
    uid = int(re.findall(r"--uid (\d+)", stage_text)[0])
    assert uid != 0
    assert 'VOLUME ["/data"]' in stage or "VOLUME /data" in stage
    health = "\n".join(stage[i] for i, ln in enumerate(stage) if ln.startswith("HEALTHCHECK"))
    assert health
    assert 'CMD ["linky2mqtt", "healthcheck"]' in stage_text
    # and the command it calls exists
    rc = subprocess.run([sys.executable, "-m", "linky2mqtt", "healthcheck", "--help"],
                        check=False, capture_output=True, text=True, cwd=REPO, timeout=30)
    assert rc.returncode == 0 and "-c CONFIG" in rc.stdout



def _today() -> date:
    return SUITE_CLOCK.now().astimezone(PARIS).date()
