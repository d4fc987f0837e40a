"""The bridge imports its hourly data into Home Assistant's long-term statistics: the real
bridge, a real mosquitto, the simulator over HTTP and a websocket server speaking Home
Assistant's protocol (tests/support/fake_ha.py). Hour values equal the simulator's, the
October DST day has 25 rows, sums run on without a restart at zero, and a restarted bridge
with nothing new imports nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind, local_iso
from linky2mqtt.simulator import Simulator
from tests.support.bridge import account_yaml, config_yaml, days_back, truth_hours
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.fake_ha import FakeHA

PDL = "22516914714270"
SID = f"linky2mqtt:{PDL}_consumption"
TOKEN = "ha-long-lived-TOKEN-for-the-test"
DAYS = 36  # back to 2026-10-24: the October DST day is in


@pytest.fixture
def ha() -> Iterator[FakeHA]:
    server = FakeHA(token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


def _bridge(broker: Mosquitto, sim: Simulator, ha: FakeHA, store: Path) -> Bridge:
    account = account_yaml("biz", "dataconnect", sim, [
        {"pdl": PDL, "steps": ["day", "hour"], "backfill_days": {"day": 2, "hour": DAYS}}],
        client_id="sim-client", client_secret="sim-secret")
    extra = "commands: false\n"  # keep the test about statistics only
    text = config_yaml(broker.url, store, [account], extra=extra).replace(
        "homeassistant:\n  discovery: false\n",
        f"homeassistant:\n  discovery: false\n  statistics:\n    url: {ha.url}\n"
        f"    token: {TOKEN}\n")
    return Bridge(load_text(text, env={}), stagger=0.0, clock=SUITE_CLOCK)


def _wait_rows(ha: FakeHA, count: int, timeout: float = 60.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = ha.rows(SID)
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(rows)} statistics rows, wanted {count}")
        time.sleep(0.1)


def test_hourly_data_lands_in_home_assistant_statistics_once(
        broker: Mosquitto, simulator: Simulator, ha: FakeHA, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    days = sorted(days_back(DAYS))
    expected = []
    for day in days:
        truth = truth_hours(simulator, PDL, Kind.CONSUMPTION, day)
        assert truth is not None
        expected.extend(truth)
    bridge = _bridge(broker, simulator, ha, store)
    bridge.start()
    try:
        rows = _wait_rows(ha, len(expected))
    finally:
        bridge.stop()

    assert len(rows) == len(expected) == DAYS * 24 + 1  # one 25-hour day (2026-10-25)
    running = 0.0
    for row, want in zip(rows, expected, strict=True):
        assert local_iso(row["start"]) == want["start"]  # type: ignore[arg-type]
        assert row["state"] == pytest.approx(want["value"], abs=1e-9)
        running += want["value"]
        assert row["sum"] == pytest.approx(running, abs=1e-6)
    october = [r for r in rows if local_iso(r["start"]).startswith("2026-10-25")]  # type: ignore[arg-type]
    assert len(october) == 25
    assert [local_iso(r["start"])[11:] for r in october[2:4]] == [  # type: ignore[arg-type]
        "02:00:00+02:00", "02:00:00+01:00"]
    first_run_rows = sum(c.rows for c in ha.import_calls)
    assert first_run_rows == len(expected)  # each hour written once

    # a restart with nothing new: no import at all, the rows stay as they are
    ha.reset_log()
    again = _bridge(broker, simulator, ha, store)
    again.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # give a wrongful import every chance to happen
            assert not ha.import_calls
            time.sleep(0.2)
    finally:
        again.stop()
    assert ha.rows(SID) == rows
    assert rows[-1]["start"] - rows[0]["start"] == timedelta(hours=DAYS * 24)  # type: ignore[operator]
