"""`linky2mqtt healthcheck` (the Docker HEALTHCHECK) and the bridge's heartbeat file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load
from linky2mqtt.health import MAX_AGE, MAX_DISCONNECTED, Heartbeat, check, health_path
from linky2mqtt.simulator import Simulator
from tests.support.broker import Mosquitto
from tests.support.cli import run_cli, saved_root_logging
from tests.support.clock import SUITE_CLOCK
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent


def healthcheck(config: Path) -> tuple[int, str, str]:
    return run_cli("healthcheck", "-c", str(config))


def write(path: Path, **body: Any) -> None:
    path.write_text(json.dumps(body))


# -- the check ------------------------------------------------------------------------------


def test_check_rules(tmp_path: Path) -> None:
    hb = tmp_path / "l.db.health"
    now = 1_800_000_000.0
    assert check(hb, now=now) == f"no heartbeat file {hb}: is the bridge running?"
    write(hb, time=now - 5, mqtt_connected=True, pid=1, disconnected_since=None)
    assert check(hb, now=now) is None
    assert check(hb, now=now - 5 + MAX_AGE) is None
    assert check(hb, now=now + MAX_AGE) == (
        f"heartbeat file {hb} is 125 s old (limit 120 s)")
    write(hb, time=now, mqtt_connected=False, pid=1, disconnected_since=now - 200)
    assert check(hb, now=now) is None  # a short broker outage is not unhealthy
    write(hb, time=now, mqtt_connected=False, pid=1, disconnected_since=now - 301)
    assert check(hb, now=now) == "MQTT disconnected for 301 s (limit 300 s)"
    hb.write_text("{not json")
    assert (check(hb, now=now) or "").startswith(f"heartbeat file {hb} unreadable: ")
    write(hb, pid=1)
    assert check(hb, now=now) == f"heartbeat file {hb} has no time"
    assert MAX_DISCONNECTED == 300.0 and MAX_AGE == 120.0


def test_heartbeat_records_disconnection_and_survives_write_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="linky2mqtt.health")
    clock = [1000.0]
    connected = [False]
    path = tmp_path / "x.db.health"
    hb = Heartbeat(path, lambda: connected[0], now=lambda: clock[0])
    hb.beat()
    doc = json.loads(path.read_text())
    assert doc == {"time": 1000.0, "mqtt_connected": False, "pid": os.getpid(),
                   "disconnected_since": 1000.0}
    connected[0], clock[0] = True, 1030.0
    hb.beat()
    assert json.loads(path.read_text())["disconnected_since"] is None
    connected[0], clock[0] = False, 1060.0
    hb.beat()
    clock[0] = 1090.0
    hb.beat()
    assert json.loads(path.read_text())["disconnected_since"] == 1060.0
    assert not list(tmp_path.glob("*.tmp"))
    broken = Heartbeat(tmp_path / "missing-dir" / "y.health", lambda: True)
    broken.beat()
    broken.beat()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "cannot write the heartbeat file" in errors[0].getMessage()
    assert health_path(":memory:") is None
    assert health_path("/data/linky.db") == Path("/data/linky.db.health")


# -- the bridge writes it, the CLI reads it -------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, broker: Mosquitto, simulator: Simulator) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"mqtt: {{url: '{broker.url}', client_id: l2m-health}}\n"
        f"store: {{path: '{tmp_path / 'linky.db'}'}}\n"
        "homeassistant: {discovery: false}\n"
        "accounts:\n  - name: med\n    provider: myelectricaldata\n    token: t-123456\n"
        f"    base_url: '{simulator.url}'\n"
        "    meters: [{pdl: '12345678901234', steps: [day], backfill_days: {day: 2, hour: 0}}]\n")
    return path


@pytest.fixture
def restore_logging() -> Iterator[None]:
    with saved_root_logging():
        yield


def test_bridge_heartbeat_drives_healthcheck(
    config: Path, tmp_path: Path, broker: Mosquitto, restore_logging: None
) -> None:
    hb = tmp_path / "linky.db.health"
    rc, out, err = healthcheck(config)
    assert (rc, out) == (1, "")
    assert err == f"unhealthy: no heartbeat file {hb}: is the bridge running?\n"

    bridge = Bridge(load(config), stagger=0.0, clock=SUITE_CLOCK)
    assert bridge.heartbeat is not None and bridge.heartbeat.path == hb
    bridge.heartbeat.interval = 0.1  # 30 s in production
    bridge.start()
    try:
        wait_until(lambda: hb.exists() and json.loads(hb.read_text())["mqtt_connected"], 15,
                   "a heartbeat saying MQTT is connected")
        doc = json.loads(hb.read_text())
        assert doc["pid"] == os.getpid() and doc["disconnected_since"] is None
        assert abs(doc["time"] - time.time()) < 10
        assert healthcheck(config) == (0, "healthy\n", "")

        broker.stop()
        wait_until(lambda: not json.loads(hb.read_text())["mqtt_connected"], 15,
                   "a heartbeat saying MQTT is disconnected")
        doc = json.loads(hb.read_text())
        assert doc["disconnected_since"] is not None
        assert healthcheck(config)[0] == 0  # a short outage is still healthy
        problem = check(hb, now=doc["disconnected_since"] + 301, max_age=10**6)
        assert problem is not None and problem.startswith("MQTT disconnected for 301 s")

        broker.start()
        wait_until(lambda: json.loads(hb.read_text())["mqtt_connected"], 20,
                   "a heartbeat saying MQTT is connected again")
        assert json.loads(hb.read_text())["disconnected_since"] is None
    finally:
        bridge.stop()
    assert not bridge.heartbeat._thread.is_alive()
    last = json.loads(hb.read_text())["time"]
    assert check(hb, now=last + 60) is None
    assert check(hb, now=last + 121) == f"heartbeat file {hb} is 121 s old (limit 120 s)"


def test_healthcheck_subprocess_exit_codes_and_one_line(config: Path, tmp_path: Path) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "linky2mqtt", "healthcheck", "-c",
                               str(config)], capture_output=True, text=True, timeout=30,
                              check=False, cwd=REPO)

    hb = tmp_path / "linky.db.health"
    write(hb, time=time.time() - 500, mqtt_connected=True, pid=1, disconnected_since=None)
    done = run()
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"unhealthy: heartbeat file {hb} is 50")
    write(hb, time=time.time(), mqtt_connected=True, pid=1, disconnected_since=None)
    done = run()
    assert (done.returncode, done.stdout, done.stderr) == (0, "healthy\n", "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt: [\n")
    done = subprocess.run([sys.executable, "-m", "linky2mqtt", "healthcheck", "-c", str(bad)],
                          check=False, capture_output=True, text=True, timeout=30, cwd=REPO)
    assert done.returncode == 1  # never 2: Docker reserves it
    assert done.stderr == f"unhealthy: invalid configuration {bad}\n"
