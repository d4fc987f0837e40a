"""One failing account or meter never stops the others; the reason is in status and log.

Accounts: a conso token that does not cover one configured PDL and covers a PDL whose
consent was revoked; a Data Connect app with a wrong client secret; a MyElectricalData
gateway that works.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind
from linky2mqtt.simulator import Simulator
from tests.support.bridge import account_yaml, config_yaml, latest_day, truth_day_kwh
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.mqtt_client import Collector, Message

GOOD_CONSO = "12345678901234"
NOT_COVERED = "22516914714270"
REVOKED = "26584978546985"
BAD_SECRET_PDL = "11453290002823"
GOOD_MED = "42900589957124"


def _meter(pdl: str) -> dict[str, object]:
    return {"pdl": pdl, "steps": ["day", "month", "hour"],
            "backfill_days": {"day": 5, "hour": 2}}


def test_failing_accounts_and_meters_do_not_stop_the_others(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    accounts = [
        account_yaml("home", "conso", simulator,
                     [_meter(GOOD_CONSO), _meter(NOT_COVERED), _meter(REVOKED)],
                     token=simulator.make_conso_token([GOOD_CONSO, REVOKED])),
        account_yaml("business", "dataconnect", simulator, [_meter(BAD_SECRET_PDL)],
                     client_id="sim-client", client_secret="wrong-secret"),
        account_yaml("gateway", "myelectricaldata", simulator, [_meter(GOOD_MED)],
                     token="med-token"),
    ]
    cfg = load_text(config_yaml(broker.url, tmp_path / "s.db", accounts))
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    caplog.set_level(logging.INFO)
    bridge = Bridge(cfg, stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    latest = latest_day()

    def status(pdl: str, msgs: list[Message]) -> dict[str, object] | None:
        got = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/status"]
        return got[-1] if got else None

    def failing_reported(msgs: list[Message]) -> bool:
        return all((status(p, msgs) or {}).get("last_error")
                   for p in (NOT_COVERED, REVOKED, BAD_SECRET_PDL))

    def good_published(msgs: list[Message]) -> bool:
        return all(any(m.topic == f"l2m/{p}/consumption/hour" for m in msgs)
                   and any(m.topic == f"l2m/{p}/consumption/day" for m in msgs)
                   for p in (GOOD_CONSO, GOOD_MED))

    try:
        watcher.wait_for(good_published, timeout=30, what="the good meters published")
        watcher.wait_for(failing_reported, timeout=30, what="the failing meters' status")
    finally:
        bridge.stop()
        watcher.close()
    msgs = watcher.messages
    for pdl in (GOOD_CONSO, GOOD_MED):
        day = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/consumption/day"][-1]
        assert day["date"] == latest.isoformat()
        assert day["value"] == truth_day_kwh(simulator, pdl, Kind.CONSUMPTION, latest)
        st = status(pdl, msgs)
        assert st is not None and st["last_error"] is None
        assert st["latest_day"] == latest.isoformat()
    for pdl in (NOT_COVERED, REVOKED, BAD_SECRET_PDL):
        assert not [m for m in msgs if m.topic.startswith(f"l2m/{pdl}/consumption/")]
    errors = {p: str((status(p, msgs) or {})["last_error"])
              for p in (NOT_COVERED, REVOKED, BAD_SECRET_PDL)}
    print(errors)
    assert "not covered" in errors[NOT_COVERED]
    assert "ADAM-DC-0008" in errors[REVOKED] or "consent" in errors[REVOKED].lower()
    assert "credential" in errors[BAD_SECRET_PDL].lower() or "401" in errors[BAD_SECRET_PDL]
    text = caplog.text
    assert f"PDL {NOT_COVERED} is not covered" in text
    assert any(REVOKED in r.getMessage() and ("ADAM-DC-0008" in r.getMessage()
               or "consent" in r.getMessage().lower()) for r in caplog.records)
    assert any(BAD_SECRET_PDL in r.getMessage() and r.levelno >= logging.WARNING
               for r in caplog.records)
    assert "wrong-secret" not in text
