"""A lost consent answered 400 ADAM-DC-0007, and the 2026 contract array, end to end.

Real mosquitto, real simulator, real bridge:

* a Conso API meter whose every request is answered ``400 ADAM-DC-0007`` ("le client
  n'est pas titulaire du point", as recorded in 2026) stops polling after one request,
  its status says why and what to do in readable UTF-8, and no gap is recorded (the days
  will be asked again once the consent is back); the other meter of the account goes on;
* a Data Connect self-consumption PDL, whose contract answer is the 2026 JSON array (a
  ``C5`` consumer and a ``P4`` producer), gets its contract on ``B/<pdl>/contract``
  with the consumer's subscribed power and the producer's segment; nothing is logged as
  "contract not available".
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.simulator import Simulator, data
from linky2mqtt.simulator.bodies import TARIFF_WORDS
from tests.support.bridge import account_yaml, config_yaml, latest_day
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.mqtt_client import Collector, Message

LOST = "22516914714270"
GOOD = "12345678901234"
SELF = "12655648759651"  # self-consumption: consumes and produces


def _meter(pdl: str, **extra: object) -> dict[str, object]:
    return {"pdl": pdl, "steps": ["day", "month"], "backfill_days": {"day": 3}, **extra}


def _status(msgs: list[Message], pdl: str) -> dict[str, object] | None:
    got = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/status"]
    return got[-1] if got else None


def test_adam_dc_0007_stops_the_meter_with_an_actionable_status(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path) -> None:
    simulator.script(LOST, ["0007"] * 20)
    store = tmp_path / "s.db"
    accounts = [account_yaml("home", "conso", simulator, [_meter(LOST), _meter(GOOD)],
                             token=simulator.make_conso_token([LOST, GOOD]))]
    cfg = load_text(config_yaml(broker.url, store, accounts))
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = Bridge(cfg, stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()

    def settled(msgs: list[Message]) -> bool:
        lost, good = _status(msgs, LOST), _status(msgs, GOOD)
        return bool(lost and lost.get("last_error") and good and good.get("latest_day"))

    try:
        watcher.wait_for(settled, timeout=30, what="both meters' status")
    finally:
        bridge.stop()
        watcher.close()
    msgs = watcher.messages
    lost = _status(msgs, LOST)
    assert lost is not None
    error = str(lost["last_error"])
    assert "400 ADAM-DC-0007" in error
    assert "Le client n'est pas titulaire du point demandé." in error
    assert "consent" in error and "give it again" in error
    raw = [m.payload for m in msgs if m.topic == f"l2m/{LOST}/status"][-1]
    assert "demandé".encode() in raw and b"\\u00e9" not in raw  # real UTF-8 on the wire
    # one request, refused for good: not retried, not asked day by day
    assert simulator.count(provider="conso", pdl=LOST) == 1
    assert not [m for m in msgs if m.topic.startswith(f"l2m/{LOST}/consumption/")]
    with sqlite3.connect(store) as db:
        gaps = db.execute("SELECT count(*) FROM gaps WHERE pdl = ?", (LOST,)).fetchone()[0]
    assert gaps == 0  # the days are not recorded as missing: they come back with consent
    good = _status(msgs, GOOD)
    assert good is not None and good["last_error"] is None
    assert good["latest_day"] == latest_day().isoformat()


def test_2026_contract_array_published(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    accounts = [account_yaml("business", "dataconnect", simulator, [_meter(SELF)],
                             client_id="sim-client", client_secret="sim-secret")]
    cfg = load_text(config_yaml(broker.url, tmp_path / "s.db", accounts))
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    caplog.set_level(logging.INFO)
    bridge = Bridge(cfg, stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    topic = f"l2m/{SELF}/contract"
    try:
        watcher.wait_for(lambda msgs: any(m.topic == topic for m in msgs), timeout=30,
                         what="the contract")
    finally:
        bridge.stop()
        watcher.close()
    late = Collector(broker.host, broker.port, [topic])  # subscribes after: the retained copy
    try:
        late.wait_for(bool, timeout=30, what="the retained contract")
    finally:
        late.close()
    msg = late.messages[-1]
    assert msg.retain
    payload = msg.json()
    profile = data.profile(SELF)  # what the stand-in serves, independently of the bridge
    assert payload["subscribed_power_kva"] == profile.kva
    assert payload["tariff"] == TARIFF_WORDS[profile.tariff]
    assert payload["segment"] == "C5"
    assert payload["contract_type"] == "Contrat GRD-F"
    assert payload["producer"] == {"segment": "P4", "contract_type": "Contrat GRD-A",
                                   "contract_start": "2020-01-01T00:00:00+0100"}
    assert payload["offpeak_hours"] is None
    assert [c["segment"] for c in payload["raw"]] == ["C5", "P4"]
    assert "person" not in msg.payload.decode() and "<masque>" not in msg.payload.decode()
    assert "contract not available" not in caplog.text
    assert f"contract found: PDL {SELF} - {profile.kva} kVA" in caplog.text
    assert simulator.count(endpoint="situation_contrat_auto") == 1  # no retry of a bad body
