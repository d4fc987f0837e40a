"""Shared fixtures: a private mosquitto broker, the simulator, MQTT collectors.

The whole suite runs on one fixed timeline, ``tests.support.clock.SUITE_CLOCK``: it reads
2026-11-29 10:30 Paris when the suite starts and then runs at real speed. So the results
do not depend on the day or hour the suite runs: yesterday's data is always there (the
simulator serves day D from 08:00 on D+1) and both 2026 DST days are in the past.
Production code reads no clock from the environment: tests pass ``SUITE_CLOCK`` explicitly
(the ``make_simulator`` fixture does it for simulators), and start bridge subprocesses
with ``tests.support.clock.bridge_command`` (the test-only ``tests.support.bridge_main``).
"""

from __future__ import annotations

pytest_plugins = ["tests.support.broker", "tests.support.pki", "tests.support.simulator"]


# ----------------------------------------------------------------------------- tiers
#
# The fast tier (`pytest -q -m "not e2e"`, well under a minute) runs the unit and
# component tests; the README's test command runs everything. A test is end-to-end when
# it starts a mosquitto (the `broker` fixture, or a module that starts its own
# `Mosquitto`), or lives in a module that drives whole processes over time (the soak,
# the demo).

import pytest  # noqa: E402

E2E_FIXTURES = frozenset({"broker"})
E2E_MODULES = frozenset({"test_soak", "test_demo"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        starts_broker = hasattr(getattr(item, "module", None), "Mosquitto")
        if fixtures & E2E_FIXTURES or module in E2E_MODULES or starts_broker:
            item.add_marker(pytest.mark.e2e)
