"""Issue 13, "prove the untried cases": each over a real mosquitto and the simulator.

* the disk fills up during a backfill, then room comes back: nothing is lost;
* the wall clock jumps an hour back and forward (NTP): upstream requests go on at once;
* the broker refuses the password after a restart: the bridge keeps running, says so
  once, and reconnects when the password is right again;
* Home Assistant refuses the statistics token: MQTT goes on, one clear line, and the
  hours are imported once the token is accepted again;
* a consumer's persistent session (clean start false, QoS 1) receives the hourly
  batches published while it was away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import Store
from tests.support.bridge import (
    BridgeProcess,
    days_back,
    latest_day,
    truth_day_kwh,
    truth_hours,
    wait_until,
)
from tests.support.broker import Mosquitto, auth_broker, write_passwords
from tests.support.clock import SUITE_CLOCK, JumpClock
from tests.support.fake_ha import FakeHA
from tests.support.mqtt_client import Collector, Message

PDL = "12345678901234"
SID = f"linky2mqtt:{PDL}_consumption"


FAST_BUDGET = "{per_second: 50, per_12h: 10000, allow_above_default: true}"


def _yaml(broker: Mosquitto, store: Path, sim: Simulator, *, hour: int = 0, day: int = 3,
          extra: str = "", budget: str = FAST_BUDGET, mqtt_extra: str = "") -> str:
    steps = "[day, hour]" if hour else "[day]"
    return (
        f"mqtt:\n  url: {broker.url}\n  client_id: l2m-untried\n  base_topic: l2m\n"
        f"{mqtt_extra}"
        f"store:\n  path: {store}\n"
        f"{extra}"
        "accounts:\n  - name: home\n    provider: conso\n"
        f"    token: {json.dumps(sim.make_conso_token([PDL]))}\n    base_url: {sim.url}\n"
        f"    budget: {budget}\n"
        f"    meters:\n      - pdl: \"{PDL}\"\n        steps: {steps}\n"
        f"        backfill_days: {{day: {day}, hour: {hour or 1}}}\n"
    )


def _ask(c: Collector, command: str, body: dict[str, Any], timeout: float = 30) -> Any:
    tx = uuid.uuid4().hex
    c.publish(f"l2m/bridge/request/{command}", json.dumps({**body, "transaction": tx}))
    msg = c.wait_topic(f"l2m/bridge/response/{command}", timeout,
                       where=lambda m: m.json().get("transaction") == tx)
    return msg.json()


def _hour_batches(msgs: list[Message]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in msgs:
        if m.topic == f"l2m/{PDL}/consumption/hour":
            doc = m.json()
            out[doc["date"]] = doc
    return out


# -- the disk fills up during a backfill -------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only); skipped, saying why, when it cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          check=False, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True,
                       timeout=10)


def test_disk_full_during_a_backfill_loses_nothing_once_room_comes_back(
        small_fs: Path, broker: Mosquitto, simulator: Simulator,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    db = small_fs / "linky.db"
    hour_days = 30
    cfg = load_text(_yaml(broker, db, simulator, hour=hour_days), env={})
    Store(db).close()
    filler = small_fs / "filler"
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    with open(filler, "wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * max(0, free - 40 * 1024))  # room for a few windows only
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = Bridge(cfg, stagger=0.0, clock=SUITE_CLOCK)
    bridge.start()
    state = bridge.fleet.runners[0].meters[PDL]
    days = days_back(hour_days)
    try:
        wait_until(lambda: state.last_error and "disk full" in state.last_error, 60,
                   "a disk-full error mid-backfill")
        assert bridge.fleet.runners[0].thread.is_alive()
        batches = _hour_batches(watcher.messages)
        assert len(batches) < hour_days, "the backfill was not cut short"
        filler.unlink()  # room again; a refresh resumes at once (else: within the hour)
        answer = _ask(watcher, "refresh", {"pdl": PDL}, timeout=60)
        assert answer["status"] == "ok", answer
        watcher.wait_for(lambda ms: len(_hour_batches(ms)) >= hour_days, 60,
                         "every hourly batch")
        wait_until(lambda: state.last_error is None, 30, "the error cleared")
    finally:
        bridge.stop()
        watcher.close()
    batches = _hour_batches(watcher.messages)
    for d in days:
        assert batches[d.isoformat()]["points"] == truth_hours(simulator, PDL,
                                                               Kind.CONSUMPTION, d), d
    with Store(db) as store:
        held = store.days_with_complete_curve(PDL, Kind.CONSUMPTION, days[-1],
                                              days[0] + timedelta(days=1))
        assert held == set(days)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert any("disk full" in r.getMessage() for r in caplog.records
               if r.levelno == logging.ERROR)


# -- the wall clock jumps (NTP) ----------------------------------------------------------


def _read_day(c: Collector, day: date) -> Any:
    return _ask(c, "read", {"pdl": PDL, "kind": "consumption", "step": "day",
                            "start": day.isoformat(),
                            "end": (day + timedelta(days=1)).isoformat()})


def test_the_clock_jumping_an_hour_back_and_forward_does_not_stall_upstream(
        broker: Mosquitto, simulator: Simulator, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # Conso's own budget: one request per second (and 80 per 12 h)
    cfg = load_text(_yaml(broker, tmp_path / "s.db", simulator,
                          budget="{per_second: 1, per_12h: 80}"), env={})
    clock = JumpClock()
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = Bridge(cfg, clock=clock, stagger=0.0)
    bridge.start()
    latest = latest_day()
    try:
        watcher.wait_for(lambda ms: any(m.topic == f"l2m/{PDL}/consumption/day" for m in ms),
                         30, "the first day published")
        for jump, day in ((-3600.0, latest - timedelta(days=10)),
                          (+7200.0, latest - timedelta(days=12))):
            clock.jump(jump)
            began = time.monotonic()
            answer = _read_day(watcher, day)
            took = time.monotonic() - began
            assert answer["status"] == "ok", (jump, answer)
            assert answer["data"]["points"][0]["value"] == truth_day_kwh(
                simulator, PDL, Kind.CONSUMPTION, day)
            assert took < 10, f"a read {jump:+.0f} s after the jump took {took:.1f} s"
    finally:
        bridge.stop()
        watcher.close()
    assert "budget allows" not in caplog.text


# -- the broker refuses the password after a restart --------------------------------------


def test_broker_refusing_the_password_after_a_restart(
        simulator: Simulator, tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    broker = auth_broker(tmp_path, {"linky": "right-password-1"})
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_yaml(broker, tmp_path / "s.db", simulator, mqtt_extra=(
        "  username: linky\n  password: right-password-1\n")))
    proc = BridgeProcess(cfg)
    try:
        wait_until(lambda: "MQTT connected to" in proc.stderr, 30, "the first connection")
        broker.stop()
        # the broker's password changed meanwhile
        write_passwords(pwfile, {"linky": "changed-password-2"})
        broker.start()
        refused = "refused: Not authorized"
        wait_until(lambda: proc.stderr.count("MQTT retrying") >= 1
                   and refused in proc.stderr, 30, f"the refusal\n{proc.stderr}")
        wait_until(lambda: broker.log.read_text(errors="replace").count(
            "not authorised") >= 3, 60, "three refused attempts")
        assert proc.proc.poll() is None, proc.stderr  # still running
        lines = [ln for ln in proc.stderr.splitlines() if refused in ln]
        assert len(lines) == 1, lines  # said once, however many attempts
        assert "right-password-1" not in proc.stderr
        broker.stop()
        write_passwords(pwfile, {"linky": "right-password-1"})  # put right again
        broker.start()
        wait_until(lambda: "MQTT broker accepts the connection again" in proc.stderr, 90,
                   f"the reconnection\n{proc.stderr}")
        assert proc.stderr.count("MQTT connected to") == 2
        assert proc.terminate() == 0, proc.stderr
    finally:
        proc.close()
        broker.stop()


# -- Home Assistant refuses the statistics token -----------------------------------------


def test_home_assistant_refusing_the_statistics_token(
        broker: Mosquitto, simulator: Simulator, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The token was revoked in Home Assistant: MQTT goes on, one clear line, the hours
    stay due in the store; with the new token (a restart) they are imported, once."""
    caplog.set_level(logging.DEBUG)
    revoked, new = "ha-revoked-token-0123456789", "ha-new-token-9876543210"
    ha = FakeHA(token=new).start()

    def bridge_with(token: str) -> Bridge:
        extra = (f"homeassistant:\n  discovery: false\n  statistics:\n    url: {ha.url}\n"
                 f"    token: {token}\n")
        # conso's own budget: an opted-in raise would add its own warning to the log
        return Bridge(load_text(_yaml(broker, tmp_path / "s.db", simulator, hour=2,
                                      extra=extra, budget="{per_second: 1, per_12h: 80}"),
                                env={}), stagger=0.0, clock=SUITE_CLOCK)

    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = bridge_with(revoked)
    bridge.start()
    try:
        watcher.wait_for(lambda ms: len(_hour_batches(ms)) >= 2, 30, "the hourly batches")
        wait_until(lambda: ha.auth_failures >= 1, 30, "the refused import")
        assert ha.import_calls == []
    finally:
        bridge.stop()
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == ["statistics: Home Assistant refused the access token: Invalid "
                        "access token or password; check homeassistant.statistics.token"]
    assert revoked not in caplog.text and new not in caplog.text
    again = bridge_with(new)
    again.start()
    try:
        wait_until(lambda: len(ha.rows(SID)) >= 48, 30, "the import with the new token")
    finally:
        again.stop()
        watcher.close()
        ha.stop()
    expected = [p for d in sorted(days_back(2))
                for p in truth_hours(simulator, PDL, Kind.CONSUMPTION, d) or []]
    rows = ha.rows(SID)
    assert len(rows) == len(expected) == 48
    assert [r["state"] for r in rows] == pytest.approx([p["value"] for p in expected])
    assert sum(c.rows for c in ha.import_calls) == 48  # each hour written once


# -- a persistent session holds the batches published while the consumer was away -------


class PersistentConsumer:
    """MQTT 5, clean start false, session expiry 10 min, QoS 1 on the hourly topic."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        self.client.on_connect = self._on_connect
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any = None) -> None:
        if not flags.session_present:
            client.subscribe(f"l2m/{PDL}/consumption/hour", qos=1)
        else:
            self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain),
                                         msg.qos))

    def ready(self) -> None:
        if not self._subscribed.wait(10):
            raise TimeoutError("consumer not subscribed")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_persistent_session_receives_the_batches_published_while_away(
        broker: Mosquitto, simulator: Simulator, tmp_path: Path) -> None:
    consumer = PersistentConsumer(broker, "energy-dashboard")
    consumer.ready()
    consumer.close()  # away from now on
    hour_days = 5
    cfg = load_text(_yaml(broker, tmp_path / "s.db", simulator, hour=hour_days), env={})
    watcher = Collector(broker.host, broker.port, [f"l2m/{PDL}/consumption/hour"])
    bridge = Bridge(cfg, stagger=0.0, clock=SUITE_CLOCK)
    bridge.start()
    try:
        watcher.wait_for(lambda ms: len(_hour_batches(ms)) >= hour_days, 60,
                         "every batch published")
    finally:
        bridge.stop()  # the bridge is gone too when the consumer comes back
        watcher.close()
    back = PersistentConsumer(broker, "energy-dashboard")
    try:
        back.ready()
        wait_until(lambda: len(_hour_batches(back.messages)) >= hour_days, 30,
                   "the queued batches")
    finally:
        back.close()
    queued = [m for m in back.messages if not m.retain]
    assert queued and all(m.qos == 1 for m in queued)
    got = _hour_batches(back.messages)
    for d in days_back(hour_days):
        assert got[d.isoformat()]["points"] == truth_hours(simulator, PDL, Kind.CONSUMPTION,
                                                           d), d
