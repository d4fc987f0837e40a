"""``linky2mqtt demo`` on each broker it can use, all real.

The path through the broker on localhost:1883 (its own base topic, no discovery, its
retained topics cleared) is in test_first_run.py. This machine has a mosquitto on 1883,
so ``--broker mosquitto`` / ``--broker amqtt`` force the other two paths: a private
``mosquitto`` from PATH, and amqtt (the ``demo`` extra) when there is neither.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linky2mqtt import demo
from tests.support.bridge import REPO
from tests.support.clock import bridge_command

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")


def _demo_prints_day_and_hour(broker: str, path: str) -> list[str]:
    """Run the demo until it printed a consumption day and hour line (30 s at most)."""
    proc = subprocess.Popen(
        bridge_command("demo", "--broker", broker),
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", "PATH": path},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    seen = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            text = "\n".join(lines)
            if "/consumption/day" in text and "/consumption/hour" in text:
                seen.set()

    threading.Thread(target=pump, daemon=True).start()
    started = time.monotonic()
    try:
        ok = seen.wait(30)
        elapsed = time.monotonic() - started
        assert ok, "\n".join(lines[-20:]) + (proc.stderr.read() if proc.poll() is not None
                                             and proc.stderr else "")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(10)
    day = next(line for line in lines if "/consumption/day " in line)
    assert re.match(r"^\d\d:\d\d:\d\d [R ] linky2mqtt/\d{14}/consumption/day  "
                    r'date="\d{4}-\d\d-\d\d" value=[\d.]+ unit="kWh"$', day), day
    hour = next(line for line in lines if "/consumption/hour" in line)
    assert "hours, total" in hour
    assert rc == 0, rc
    print(f"first day and hour lines after {elapsed:.1f} s")
    return lines


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")
def test_demo_with_a_private_mosquitto_from_path() -> None:
    assert MOSQUITTO is not None
    path = os.pathsep.join([str(Path(MOSQUITTO).parent), os.environ.get("PATH", "")])
    lines = _demo_prints_day_and_hour("mosquitto", path)
    assert any("started a private mosquitto on 127.0.0.1:" in line for line in lines[:3]), \
        lines[:3]


def test_demo_with_amqtt_when_mosquitto_is_not_on_path() -> None:
    lines = _demo_prints_day_and_hour("amqtt", "/usr/bin:/bin")
    assert any("no broker found; started amqtt on 127.0.0.1:" in line
               for line in lines[:3]), lines[:3]


def test_without_broker_or_mosquitto_the_demo_starts_amqtt_and_it_carries_retained(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The automatic choice: nothing on 1883 and no mosquitto -> amqtt, a real broker."""
    monkeypatch.setattr(demo, "_answers", lambda host, port: False)
    monkeypatch.setenv("PATH", "/nonexistent")
    out = io.StringIO()
    with demo._broker(None, out) as (host, port, protocol, shared):
        assert (host, protocol, shared) == ("127.0.0.1", "3.1.1", False)
        assert f"started amqtt on 127.0.0.1:{port}" in out.getvalue()
        pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        pub.connect(host, port)
        pub.loop_start()
        pub.publish("demo/test", b"kept", qos=1, retain=True).wait_for_publish(10)
        got: list[tuple[str, bytes, bool]] = []
        arrived = threading.Event()

        def on_message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
            got.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            arrived.set()

        sub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("demo/#", 1)
        sub.on_message = on_message
        sub.connect(host, port)
        sub.loop_start()
        try:
            assert arrived.wait(10)
            assert got[0] == ("demo/test", b"kept", True)
        finally:
            for c in (sub, pub):
                c.loop_stop()
                c.disconnect()


def test_without_any_broker_the_demo_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "_answers", lambda host, port: False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # the demo extra not installed
    with pytest.raises(demo.DemoBrokerMissing, match=r"pip install 'linky2mqtt\[demo\]'"), \
            demo._broker(None, io.StringIO()):
        pass
    with pytest.raises(demo.DemoBrokerMissing, match="no mosquitto on PATH"), \
            demo._broker("mosquitto", io.StringIO()):
        pass
