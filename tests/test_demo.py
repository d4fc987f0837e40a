"""``linky2mqtt demo`` on a machine without a broker: the embedded MQTT 3.1.1 broker.

This machine has a mosquitto on 1883, so ``--broker embedded`` forces the path taken
when nothing answers there (and no mosquitto binary exists).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

from tests.support.bridge import REPO


def test_demo_with_embedded_broker_prints_messages_within_30s() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "linky2mqtt", "demo", "--broker", "embedded"],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
        assert ok, "\n".join(lines[-20:])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(10)
    assert any("embedded" in line for line in lines[:3]), lines[:3]
    day = next(line for line in lines if "/consumption/day " in line)
    assert re.match(r"^\d\d:\d\d:\d\d [R ] linky2mqtt/\d{14}/consumption/day  "
                    r'date="\d{4}-\d\d-\d\d" value=[\d.]+ unit="kWh"$', day), day
    hour = next(line for line in lines if "/consumption/hour" in line)
    assert "hours, total" in hour
    assert rc == 0, rc
    print(f"first day and hour lines after {elapsed:.1f} s")
