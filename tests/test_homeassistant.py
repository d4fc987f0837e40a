"""Home Assistant discovery (SPEC §6): golden payloads, the rules a real Home Assistant
2026.2 enforces, and every template rendered against the payload topics.py builds for
its state topic.

Regenerate the golden files after an intended change with
``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_homeassistant.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from linky2mqtt import homeassistant as ha
from linky2mqtt import topics
from linky2mqtt.model import Hour, HourlyDay, Kind, Step, day_bounds

PDL = "12345678901234"
B = "linky2mqtt"
PREFIX = "homeassistant"
VERSION = "1.2.3"
GOLDEN = Path(__file__).parent / "golden"

VARIANTS: dict[str, ha.MeterInfo] = {
    "discovery_consumption_only": ha.MeterInfo(pdl=PDL),
    "discovery_full": ha.MeterInfo(
        pdl=PDL, name="House", production=True, max_power=True, has_contract=True
    ),
    "discovery_day_only_producer": ha.MeterInfo(
        pdl="10284856584123", name="Toit", production=True, steps=frozenset({Step.DAY})
    ),
    # a production-only delivery point (consumption: false): no consumption components
    "discovery_production_only": ha.MeterInfo(
        pdl="24880057139941", name="Solar farm", consumption=False, production=True
    ),
}

# HA's units per device class (the subset we use); a unit outside it makes HA drop the
# component ("The unit of measurement `W` is not valid together with device class `energy`").
UNITS: dict[str, set[str | None]] = {
    "energy": {"Wh", "kWh", "MWh"},
    "apparent_power": {"VA"},
    "timestamp": {None},
}


def _check_golden(name: str, doc: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 once"
    assert json.loads(path.read_text(encoding="utf-8")) == doc, f"{path} differs"
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_golden(name: str) -> None:
    topic, payload = ha.discovery(PREFIX, B, VARIANTS[name], VERSION)
    _check_golden(name, {"topic": topic, "payload": payload})


def test_full_variant_component_ids_never_change() -> None:
    assert ha.component_ids(VARIANTS["discovery_full"]) == [
        "linky2mqtt_12345678901234_consumption_day",
        "linky2mqtt_12345678901234_consumption_month",
        "linky2mqtt_12345678901234_production_day",
        "linky2mqtt_12345678901234_production_month",
        "linky2mqtt_12345678901234_max_power",
        "linky2mqtt_12345678901234_subscribed_power",
        "linky2mqtt_12345678901234_last_success",
        "linky2mqtt_12345678901234_last_error",
    ]
    assert ha.component_ids(VARIANTS["discovery_consumption_only"]) == [
        "linky2mqtt_12345678901234_consumption_day",
        "linky2mqtt_12345678901234_consumption_month",
        "linky2mqtt_12345678901234_last_success",
        "linky2mqtt_12345678901234_last_error",
    ]


def test_production_only_variant_has_no_consumption_component() -> None:
    assert ha.component_ids(VARIANTS["discovery_production_only"]) == [
        "linky2mqtt_24880057139941_production_day",
        "linky2mqtt_24880057139941_production_month",
        "linky2mqtt_24880057139941_last_success",
        "linky2mqtt_24880057139941_last_error",
    ]
    only_max_power = ha.MeterInfo(pdl=PDL, consumption=False, max_power=True)
    assert [c.rsplit("_", 1)[-1] if "power" not in c else "max_power"
            for c in ha.component_ids(only_max_power)] == ["max_power", "success", "error"]


def test_topics_and_device() -> None:
    topic, payload = ha.discovery("ha", "home/linky", VARIANTS["discovery_full"], VERSION)
    assert topic == "ha/device/linky2mqtt_12345678901234/config"
    assert ha.removal("ha", PDL) == topic
    assert payload["dev"] == {
        "ids": ["linky2mqtt_12345678901234"],
        "name": "House",
        "mf": "Enedis",
        "mdl": "Linky",
        "sn": PDL,
        "sw": VERSION,
    }
    assert payload["o"] == {
        "name": "linky2mqtt",
        "sw": VERSION,
        "url": "https://github.com/linky2mqtt/linky2mqtt",
    }
    assert payload["availability"] == [
        {
            "topic": "home/linky/bridge/state",
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    for component in payload["cmps"].values():
        assert component["state_topic"].startswith("home/linky/12345678901234/")
    _, unnamed = ha.discovery(PREFIX, B, ha.MeterInfo(pdl=PDL), VERSION)
    assert unnamed["dev"]["name"] == "Linky 12345678901234"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_rules_home_assistant_enforces(name: str) -> None:
    meter = VARIANTS[name]
    _, payload = ha.discovery(PREFIX, B, meter, VERSION)
    assert payload["o"]["name"]  # without `o` HA drops the whole message
    assert payload["dev"]["sw"] == VERSION  # o.sw is not the device's version
    ids = []
    for key, c in payload["cmps"].items():
        assert c["p"] == "sensor"
        assert c["unique_id"] == f"linky2mqtt_{meter.pdl}_{key}"  # one missing drops all
        assert c["name"]
        ids.append(c["unique_id"])
        device_class = c.get("device_class")
        if device_class in UNITS:
            assert c.get("unit_of_measurement") in UNITS[device_class], key
        if "last_reset_value_template" in c:
            assert c["state_class"] == "total", key
        if device_class == "energy":
            assert c["unit_of_measurement"] == "kWh"
            if key.endswith("_day"):
                assert c["state_class"] == "total"
                assert c["last_reset_value_template"] == "{{ value_json.start }}"
                assert c["suggested_display_precision"] == 3
            else:  # month: display only, never counted twice
                assert "state_class" not in c
                assert "last_reset_value_template" not in c
    assert len(ids) == len(set(ids))


# -- templates against the real payloads --------------------------------------------------


def _samples(pdl: str, *, empty: bool = False) -> dict[str, dict[str, Any]]:
    """What topics.py publishes on each retained topic of a meter (the Nov 28 data)."""
    day = date(2026, 11, 28)
    fetched = datetime(2026, 11, 29, 7, 12, 3, tzinfo=UTC)
    out: dict[str, dict[str, Any]] = {}
    for kind in (Kind.CONSUMPTION, Kind.PRODUCTION):
        out[topics.meter_topic(B, pdl, kind, Step.DAY)] = topics.day_payload(
            pdl, day, 12345.0, "BRUT", fetched
        )
        daily = {date(2026, 11, d): 1000.0 for d in range(1, 29)}
        out[topics.meter_topic(B, pdl, kind, Step.MONTH)] = topics.month_payload(
            pdl, "2026-11", daily, day
        )
    out[topics.max_power_topic(B, pdl)] = topics.max_power_payload(
        pdl, day, 4638.0, datetime(2026, 11, 28, 11, 6, 20, tzinfo=UTC)
    )
    out[topics.contract_topic(B, pdl)] = topics.contract_payload(
        pdl, {} if empty else {"subscribed_power": "9 kVA", "distribution_tariff": "BTINFCUST"}
    )
    out[topics.status_topic(B, pdl)] = topics.status_payload(
        pdl,
        last_poll=None if empty else fetched,
        last_success=None if empty else fetched + timedelta(seconds=2),
        last_error="x" * 300 if empty else None,
        latest_day=None if empty else day,
        budget={},
    )
    return out


def _render(template: str, payload: dict[str, Any]) -> str:
    """Render like Home Assistant's MQTT entities: ``value_json`` is the decoded payload."""
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
    body = topics.dumps(payload)
    return env.from_string(template).render(value_json=json.loads(body), value=body.decode())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


CHECKS: dict[str, Callable[[str], bool]] = {
    "energy": _is_number,
    "apparent_power": _is_number,
    "timestamp": lambda s: datetime.fromisoformat(s).tzinfo is not None,
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_template_renders_from_the_real_payload(name: str) -> None:
    meter = VARIANTS[name]
    _, payload = ha.discovery(PREFIX, B, meter, VERSION)
    samples = _samples(meter.pdl)
    state = topics.bridge_state(True)
    avail = payload["availability"][0]
    assert avail["topic"] == topics.state_topic(B)
    assert _render(avail["value_template"], state) == avail["payload_available"]
    assert _render(avail["value_template"], topics.bridge_state(False)) == "offline"
    for key, c in payload["cmps"].items():
        # every state topic is one topics.py builds, and it is a retained one
        assert c["state_topic"] in samples, f"{key}: {c['state_topic']} is not published"
        step = c["state_topic"].rsplit("/", 1)[-1]
        if step in ("day", "month", "hour"):
            assert topics.meter_retain(step), key
        if "json_attributes_topic" in c:
            assert c["json_attributes_topic"] in samples, key
        sample = samples[c["state_topic"]]
        rendered = _render(c["value_template"], sample)
        check = CHECKS.get(c.get("device_class", ""))
        if check is not None:
            assert check(rendered), f"{key}: {rendered!r}"
        elif "unit_of_measurement" in c:
            assert _is_number(rendered), f"{key}: {rendered!r}"
        if "last_reset_value_template" in c:
            reset = _render(c["last_reset_value_template"], sample)
            assert datetime.fromisoformat(reset) == day_bounds(date(2026, 11, 28))[0]
        if "json_attributes_template" in c:
            attributes = json.loads(_render(c["json_attributes_template"], sample))
            assert isinstance(attributes, dict)


def test_rendered_values_are_the_published_numbers() -> None:
    _, payload = ha.discovery(PREFIX, B, VARIANTS["discovery_full"], VERSION)
    samples = _samples(PDL)
    got = {
        key: _render(c["value_template"], samples[c["state_topic"]])
        for key, c in payload["cmps"].items()
    }
    assert got == {
        "consumption_day": "12.345",
        "consumption_month": "28.0",
        "production_day": "12.345",
        "production_month": "28.0",
        "max_power": "4638",
        "subscribed_power": "9",
        "last_success": "2026-11-29T08:12:05+01:00",
        "last_error": "none",
    }
    contract = payload["cmps"]["subscribed_power"]
    attributes = _render(contract["json_attributes_template"], samples[contract["state_topic"]])
    assert json.loads(attributes) == {"tariff": "BTINFCUST", "offpeak_hours": None}


def test_templates_on_empty_status_and_contract() -> None:
    """Before the first success: HA reads "None" as unknown; errors fit a 255-char state."""
    _, payload = ha.discovery(PREFIX, B, VARIANTS["discovery_full"], VERSION)
    samples = _samples(PDL, empty=True)
    cmps = payload["cmps"]
    assert _render(
        cmps["last_success"]["value_template"], samples[topics.status_topic(B, PDL)]
    ) == ("None")
    assert _render(cmps["last_error"]["value_template"], samples[topics.status_topic(B, PDL)]) == (
        "x" * 255
    )
    assert _render(
        cmps["subscribed_power"]["value_template"], samples[topics.contract_topic(B, PDL)]
    ) == ("None")


def test_hour_batches_are_not_discovered() -> None:
    """Hour batches are not retained and carry many points: no sensor reads them."""
    day = date(2026, 11, 28)
    start = day_bounds(day)[0]
    batch = topics.hour_payload(
        PDL, HourlyDay(day, [Hour(start, start + timedelta(hours=1), 1.0)], False))
    assert batch["interval"] == "PT1H"
    _, payload = ha.discovery(PREFIX, B, VARIANTS["discovery_full"], VERSION)
    assert all(not c["state_topic"].endswith("/hour") for c in payload["cmps"].values())
