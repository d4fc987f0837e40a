"""Home Assistant discovery end to end (SPEC §6): a real bridge, mosquitto and the simulator.

A subscriber sees one retained device config per meter; a birth message (``online`` on
``homeassistant/status``, not retained, as Home Assistant sends it) makes the bridge send
discovery again after a random delay, then the retained states; a meter removed from the
configuration gets an empty retained config at the next start; ``discovery: false``
publishes nothing under the prefix. Every topic a discovery payload references is
published retained, and every template renders (jinja2, as Home Assistant does) on the
real payload.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import jinja2
import pytest

from linky2mqtt import topics
from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.simulator import Simulator
from tests.support.broker import Mosquitto as Broker
from tests.support.clock import SUITE_CLOCK
from tests.support.mqtt_client import Collector, Message

pytestmark = pytest.mark.timeout(120)

CONSUMER = "12345678901234"
PRODUCER = "12655648759651"  # consumes and produces
B = "linky2mqtt"
PREFIX = "homeassistant"
STATUS = "homeassistant/status"


class FixedDelay(random.Random):
    """An rng whose ``uniform`` always returns ``low + 0.5``: the re-send delay is known."""

    def uniform(self, a: float, b: float) -> float:
        return a + 0.5


def config(broker: Broker, sim: Simulator, store: Path, pdls: list[str], *,
           discovery: bool = True) -> str:
    """The consumer on a Conso API account (no contract there), the producer on a Data
    Connect account (which tells the contract)."""
    text = f"""
mqtt:
  url: mqtt://{broker.host}:{broker.port}
  client_id: linky2mqtt-ha-live
homeassistant:
  discovery: {str(discovery).lower()}
store:
  path: {store}
accounts:
  - name: home
    provider: conso
    token: {sim.make_conso_token([CONSUMER])}
    base_url: {sim.url}
    meters:
      - pdl: "{CONSUMER}"
        name: House
        steps: [day, month, hour]
        max_power: true
        backfill_days: {{day: 3, hour: 2}}
"""
    if PRODUCER in pdls:
        text += f"""
  - name: roof
    provider: dataconnect
    client_id: sim-client
    client_secret: sim-secret
    base_url: {sim.url}
    meters:
      - pdl: "{PRODUCER}"
        steps: [day, month]
        production: true
        backfill_days: {{day: 3, hour: 0}}
"""
    return text


def config_topic(pdl: str) -> str:
    return f"{PREFIX}/device/linky2mqtt_{pdl}/config"


def retained_snapshot(broker: Broker, wanted: list[str], timeout: float = 30) -> dict[str, Message]:
    """A fresh subscriber's view: the retained message of each of ``wanted``."""
    c = Collector(broker.host, broker.port, ["#"])
    try:
        def got(msgs: list[Message]) -> dict[str, Message] | None:
            seen = {m.topic: m for m in msgs if m.retain}
            return seen if all(t in seen for t in wanted) else None

        try:
            result: dict[str, Message] = c.wait_for(got, timeout, what="retained topics")
        except TimeoutError:
            seen = {m.topic for m in c.messages if m.retain}
            raise AssertionError(f"not retained: {sorted(set(wanted) - seen)}") from None
        return result
    finally:
        c.close()


@pytest.fixture
def collector(broker: Broker) -> Iterator[Collector]:
    c = Collector(broker.host, broker.port, ["#"])
    yield c
    c.close()


def _render(template: str, payload: bytes) -> str:
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value_json=json.loads(payload), value=payload)


def test_discovery_birth_states_and_removal(broker: Broker, simulator: Simulator,
                                            collector: Collector, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    cfg = load_text(config(broker, simulator, store, [CONSUMER, PRODUCER]))
    bridge = Bridge(cfg, rng=FixedDelay(), stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    try:
        day_c = topics.meter_topic(B, CONSUMER, "consumption", "day")
        day_p = topics.meter_topic(B, PRODUCER, "production", "day")
        # first the polls land (retained day values) and the contract is known
        collector.wait_topic(topics.contract_topic(B, PRODUCER), 60)
        collector.wait_topic(day_c, 60)
        collector.wait_topic(day_p, 60)
        collector.wait_topic(topics.status_topic(B, PRODUCER), 60)  # the end of each poll
        collector.wait_topic(topics.status_topic(B, CONSUMER), 60)

        # -- a fresh subscriber sees both device configs, retained ---------------------
        wanted = [config_topic(CONSUMER), config_topic(PRODUCER)]
        snap = retained_snapshot(broker, wanted)
        configs = {pdl: snap[config_topic(pdl)].json() for pdl in (CONSUMER, PRODUCER)}
        assert configs[CONSUMER]["dev"]["ids"] == [f"linky2mqtt_{CONSUMER}"]
        assert configs[CONSUMER]["dev"]["name"] == "House"
        assert configs[PRODUCER]["dev"]["name"] == f"Linky {PRODUCER}"
        assert sorted(configs[CONSUMER]["cmps"]) == [
            "consumption_day", "consumption_month", "last_error", "last_success",
            "max_power"]
        assert sorted(configs[PRODUCER]["cmps"]) == [
            "consumption_day", "consumption_month", "last_error", "last_success",
            "production_day", "production_month", "subscribed_power"]
        for pdl, doc in configs.items():
            for key, cmp in doc["cmps"].items():
                assert cmp["unique_id"] == f"linky2mqtt_{pdl}_{key}"

        # -- every referenced topic is retained and every template renders -------------
        referenced = {topics.state_topic(B)}
        for doc in configs.values():
            for cmp in doc["cmps"].values():
                referenced.add(cmp["state_topic"])
                referenced.add(cmp.get("json_attributes_topic", cmp["state_topic"]))
        snap = retained_snapshot(broker, sorted(referenced))
        for doc in configs.values():
            avail = doc["availability"][0]
            assert _render(avail["value_template"], snap[avail["topic"]].payload) == "online"
            for key, cmp in doc["cmps"].items():
                body = snap[cmp["state_topic"]].payload
                state = _render(cmp["value_template"], body)
                if key == "last_success":
                    assert datetime.fromisoformat(state).tzinfo is not None, state
                elif key == "last_error":
                    assert state == "none"
                else:
                    assert float(state) > 0, (key, state)
                if "last_reset_value_template" in cmp:
                    reset = datetime.fromisoformat(_render(cmp["last_reset_value_template"],
                                                           body))
                    assert (reset.hour, reset.minute) == (0, 0)
                    assert reset.date().isoformat() == json.loads(body)["date"]
                if "json_attributes_template" in cmp:
                    assert isinstance(json.loads(_render(cmp["json_attributes_template"],
                                                         body)), dict)
        last_success = json.loads(snap[topics.status_topic(B, CONSUMER)].payload)[
            "last_success"]
        day_value = json.loads(snap[day_c].payload)["value"]
        assert float(_render(configs[CONSUMER]["cmps"]["consumption_day"]["value_template"],
                             snap[day_c].payload)) == day_value

        # -- Home Assistant's birth: discovery again after the delay, then the states --
        n = len(collector.messages)
        sent_at = time.monotonic()
        collector.publish(STATUS, "online", qos=0, retain=False)

        def resent(msgs: list[Message]) -> list[Message] | None:
            later = msgs[n:]
            idx = [i for i, m in enumerate(later) if m.topic in wanted]
            if len({later[i].topic for i in idx}) < 2:
                return None
            after = later[max(idx) + 1:]
            return later if any(m.topic == day_c for m in after) and any(
                m.topic == day_p for m in after) else None

        later: list[Message] = collector.wait_for(resent, 30, what="discovery + states again")
        first = next(m for m in later if m.topic in wanted)
        assert first.received_at - sent_at >= 1.4  # FixedDelay: uniform(1, 5) -> 1.5 s
        assert json.loads(first.payload) == configs[
            CONSUMER if first.topic == wanted[0] else PRODUCER]
        assert not any(m.topic.startswith(f"{PREFIX}/") and m.topic != STATUS
                       and m.topic not in wanted for m in later)
    finally:
        bridge.stop()

    # -- restart with the producer removed: its discovery is cleared -------------------
    n = len(collector.messages)
    cfg = load_text(config(broker, simulator, store, [CONSUMER]))
    bridge = Bridge(cfg, rng=FixedDelay(), stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    try:
        cleared = collector.wait_for(
            lambda msgs: [m for m in msgs[n:] if m.topic == config_topic(PRODUCER)],
            30, what="the removed meter's discovery cleared")
        assert cleared[0].payload == b""
        collector.wait_for(
            lambda msgs: [m for m in msgs[n:] if m.topic == config_topic(CONSUMER)],
            30, what="the remaining meter's discovery")
        # the broker forgot the removed meter; the remaining one is still retained
        snap = retained_snapshot(broker, [config_topic(CONSUMER), topics.state_topic(B)])
        assert config_topic(PRODUCER) not in snap
        assert bridge.store.announced_meters() == {CONSUMER}
        # the restarted bridge keeps the last success (HA's "Last success" stays known)
        status = collector.wait_for(
            lambda msgs: [m for m in msgs[n:] if m.topic == topics.status_topic(B, CONSUMER)
                          and m.json()["last_poll"] is not None], 30, what="status after restart")
        assert status[-1].json()["last_success"] == last_success
    finally:
        bridge.stop()


def test_discovery_off_publishes_nothing_under_the_prefix(
        broker: Broker, simulator: Simulator, collector: Collector, tmp_path: Path) -> None:
    cfg = load_text(config(broker, simulator, tmp_path / "s.db", [CONSUMER], discovery=False))
    bridge = Bridge(cfg, rng=FixedDelay(), stagger=0.2, clock=SUITE_CLOCK)
    bridge.start()
    try:
        collector.wait_topic(topics.meter_topic(B, CONSUMER, "consumption", "day"), 60)
        collector.wait_topic(topics.status_topic(B, CONSUMER), 60)
        collector.publish(STATUS, "online", qos=0, retain=False)
        # absence check: a re-send would come 1.5 s after the birth (FixedDelay)
        with pytest.raises(TimeoutError):
            collector.wait_for(
                lambda msgs: [m for m in msgs if m.topic.startswith(f"{PREFIX}/")
                              and m.topic != STATUS], 3.0, what="anything under the prefix")
        assert bridge.store.announced_meters() == set()
    finally:
        bridge.stop()
