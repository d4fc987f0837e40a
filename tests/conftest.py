"""Shared fixtures: a private mosquitto broker, the simulator, MQTT collectors.

The whole suite runs on one fixed timeline: every default clock (in this process and in
the bridges and simulators started as subprocesses, which inherit the variable) reads
2026-11-29 10:30 Paris when the suite starts and then runs at real speed. So the results
do not depend on the day or hour the suite runs: yesterday's data is always there (the
simulator serves day D from 08:00 on D+1) and both 2026 DST days are in the past.
"""

from __future__ import annotations

import os
import time

SUITE_START = "2026-11-29T10:30:00+01:00"
os.environ.setdefault("LINKY2MQTT_CLOCK", f"{SUITE_START}@{time.time()}")

pytest_plugins = ["tests.support.broker", "tests.support.pki", "tests.support.simulator"]
