"""Home Assistant MQTT discovery payloads, as pure functions (no MQTT I/O here).

One device-based message per meter, retained, QoS 1, on
``<prefix>/device/linky2mqtt_<pdl>/config``: ``dev`` (the meter), ``o`` (this program),
availability bound to ``B/bridge/state``, and ``cmps``, one sensor per retained value the
bridge publishes for that meter. Component keys are spelled as SPEC §6 names them
(``unique_id``, ``device_class``, ``state_class``...); the top-level ``dev``/``o``/``cmps``/``p``
use Home Assistant's short forms, as the device-discovery documentation does.

Unique ids are ``linky2mqtt_<pdl>_<component>`` and never change: Home Assistant keys its
entity registry (names, areas, statistics) on them.

Day energy sensors are ``device_class: energy`` + ``state_class: total`` +
``last_reset_value_template`` (the day's local midnight), which the Energy dashboard
accepts: each day's energy is added when it arrives, the next morning. Month sensors
have no state class, so nothing is counted twice. With a tariff, the day also gets one
energy sensor per period (``consumption_day_hp``...) and cost sensors (``cost_day``,
``cost_day_<period>``: ``device_class: monetary``, ``state_class: total``, EUR), read
from the day payload's ``periods`` and ``cost``; a Tempo tariff adds ``tempo_today`` and
``tempo_tomorrow`` (``device_class: enum``; unknown is unknown, never blue).

An empty retained payload on :func:`removal`'s topic removes a meter from Home Assistant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from linky2mqtt import topics
from linky2mqtt.model import Kind, Step

__all__ = [
    "ORIGIN_URL",
    "MeterInfo",
    "component_ids",
    "device_id",
    "discovery",
    "discovery_topic",
    "removal",
]

ORIGIN_URL = "https://github.com/linky2mqtt/linky2mqtt"
DISCOVERY_QOS = 1
_ALL_STEPS = frozenset({Step.DAY, Step.MONTH, Step.HOUR})


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What discovery needs to know about one meter."""

    pdl: str
    name: str | None = None
    consumption: bool = True
    production: bool = False
    max_power: bool = False
    has_contract: bool = False
    steps: frozenset[Step] = field(default=_ALL_STEPS)
    periods: tuple[str, ...] = ()  # tariff period names (hp, hc, hp_blue...); () no tariff
    tempo: bool = False  # a Tempo tariff: the Tempo colour sensors

    @property
    def display_name(self) -> str:
        # the configuration defaults a meter's name to its PDL: say what the device is
        if not self.name or self.name == self.pdl:
            return f"Linky {self.pdl}"
        return self.name


def device_id(pdl: str) -> str:
    """The device identifier (also the discovery object id): ``linky2mqtt_<pdl>``."""
    return f"linky2mqtt_{pdl}"


def discovery_topic(prefix: str, pdl: str) -> str:
    return f"{prefix}/device/{device_id(pdl)}/config"


def removal(prefix: str, pdl: str) -> str:
    """Topic on which an empty retained payload removes the meter from Home Assistant."""
    return discovery_topic(prefix, pdl)


def _unique_id(pdl: str, component: str) -> str:
    return f"{device_id(pdl)}_{component}"


def _sensor(pdl: str, component: str, name: str, topic: str, template: str, *,
            attributes: bool = True, **fields: Any) -> dict[str, Any]:
    """One sensor of the device: its ``fields`` (device class, unit, icon...) between the
    name and the state topic; the JSON payload as attributes unless ``attributes`` is
    false. The key order is the golden files'."""
    sensor: dict[str, Any] = {"p": "sensor", "unique_id": _unique_id(pdl, component),
                              "name": name, **fields, "state_topic": topic,
                              "value_template": template}
    if attributes:
        sensor["json_attributes_topic"] = topic
    return sensor


def _energy(
    base: str, pdl: str, kind: Kind, step: Step, name: str, *, daily: bool
) -> dict[str, Any]:
    component = _sensor(pdl, f"{kind}_{step}", name, topics.meter_topic(base, pdl, kind, step),
                        "{{ value_json.value }}", device_class="energy",
                        unit_of_measurement="kWh", suggested_display_precision=3)
    if daily:
        component["state_class"] = "total"
        component["last_reset_value_template"] = "{{ value_json.start }}"
    else:
        # Display only: the Energy dashboard uses the day sensor; a state class here
        # would make Home Assistant count the same energy twice in statistics.
        component["icon"] = "mdi:calendar-month"
    return component


def _tariff_components(base: str, pdl: str, periods: tuple[str, ...]
                       ) -> dict[str, dict[str, Any]]:
    """Per-period day energy and the day's cost (total and per period), from the day
    payload's ``periods`` and ``cost``; ``None`` (unknown) on a day without split."""
    topic = topics.meter_topic(base, pdl, Kind.CONSUMPTION, Step.DAY)
    day = {"state_topic": topic, "state_class": "total",
           "last_reset_value_template": "{{ value_json.start }}"}

    def day_sensor(component: str, name: str, template: str, *, money: bool
                   ) -> dict[str, Any]:
        return {"p": "sensor", "unique_id": _unique_id(pdl, component), "name": name,
                "device_class": "monetary" if money else "energy",
                "unit_of_measurement": "EUR" if money else "kWh",
                "suggested_display_precision": 2 if money else 3, **day,
                "value_template": template}

    def label(p: str) -> str:
        return p.upper().replace("_", " ")

    cmps = {f"consumption_day_{p}": day_sensor(
        f"consumption_day_{p}", f"Consumption day {label(p)}",
        f"{{{{ value_json.periods.get('{p}', 0) if value_json.periods else None }}}}",
        money=False) for p in periods}
    cmps["cost_day"] = day_sensor(
        "cost_day", "Cost day", "{{ value_json.cost.value if value_json.cost else None }}",
        money=True)
    for p in periods:
        cmps[f"cost_day_{p}"] = day_sensor(
            f"cost_day_{p}", f"Cost day {label(p)}",
            f"{{{{ value_json.cost.periods.get('{p}', 0) if value_json.cost else None }}}}",
            money=True)
    return cmps


def _components(base: str, meter: MeterInfo) -> dict[str, dict[str, Any]]:
    pdl = meter.pdl
    cmps: dict[str, dict[str, Any]] = {}
    kinds = (([Kind.CONSUMPTION] if meter.consumption else [])
             + ([Kind.PRODUCTION] if meter.production else []))
    for kind in kinds:
        label = "Consumption" if kind is Kind.CONSUMPTION else "Production"
        if Step.DAY in meter.steps:
            cmps[f"{kind}_day"] = _energy(base, pdl, kind, Step.DAY, f"{label} day", daily=True)
        if Step.MONTH in meter.steps:
            cmps[f"{kind}_month"] = _energy(
                base, pdl, kind, Step.MONTH, f"{label} month", daily=False
            )
    if meter.periods and meter.consumption and Step.DAY in meter.steps:
        cmps.update(_tariff_components(base, pdl, meter.periods))
    if meter.periods and meter.consumption:
        cmps["current_price"] = _sensor(
            pdl, "current_price", "Current price", f"{base}/{pdl}/price",  # price_topic
            "{{ value_json.price if value_json.price is not none else None }}",
            unit_of_measurement="EUR/kWh", state_class="measurement",
            suggested_display_precision=4, icon="mdi:cash")
    if meter.tempo:
        for which in ("today", "tomorrow"):
            cmps[f"tempo_{which}"] = _sensor(
                pdl, f"tempo_{which}", f"Tempo {which}", f"{base}/tempo/{which}",
                # unknown stays unknown (never blue): "None" is HA's "no value"
                "{{ value_json.colour if value_json.colour else None }}",
                device_class="enum", options=["blue", "white", "red"], icon="mdi:palette")
    if meter.max_power:
        cmps["max_power"] = _sensor(
            pdl, "max_power", "Max power", topics.max_power_topic(base, pdl),
            "{{ value_json.value }}", device_class="apparent_power",
            unit_of_measurement="VA", state_class="measurement")
    if meter.has_contract:
        # No device class: apparent_power's accepted units vary across HA versions and
        # kVA is what the contract says. Without a device class HA takes the unit as is.
        cmps["subscribed_power"] = {
            **_sensor(pdl, "subscribed_power", "Subscribed power",
                      topics.contract_topic(base, pdl),
                      "{{ value_json.subscribed_power_kva }}", unit_of_measurement="kVA",
                      icon="mdi:gauge", entity_category="diagnostic"),
            "json_attributes_template": (
                "{{ {'tariff': value_json.tariff, 'offpeak_hours': value_json.offpeak_hours}"
                " | tojson }}"
            ),
        }
    status = topics.status_topic(base, pdl)
    cmps["last_success"] = _sensor(
        pdl, "last_success", "Last success", status, "{{ value_json.last_success }}",
        device_class="timestamp", entity_category="diagnostic")
    # HA states are at most 255 characters; "none" when all is well.
    cmps["last_error"] = _sensor(
        pdl, "last_error", "Last error", status,
        "{{ (value_json.last_error or 'none')[:255] }}", attributes=False,
        icon="mdi:alert-circle-outline", entity_category="diagnostic")
    return cmps


def discovery(
    prefix: str, base_topic: str, meter: MeterInfo, version: str
) -> tuple[str, dict[str, Any]]:
    """The device discovery message of one meter: (topic, payload). Publish it retained,
    QoS 1."""
    payload: dict[str, Any] = {
        "dev": {
            "ids": [device_id(meter.pdl)],
            "name": meter.display_name,
            "mf": "Enedis",
            "mdl": "Linky",
            "sn": meter.pdl,
            "sw": version,
        },
        "o": {"name": "linky2mqtt", "sw": version, "url": ORIGIN_URL},
        "availability": [
            {
                "topic": topics.state_topic(base_topic),
                "value_template": "{{ value_json.state }}",
                "payload_available": topics.ONLINE,
                "payload_not_available": topics.OFFLINE,
            }
        ],
        "qos": DISCOVERY_QOS,
        "cmps": _components(base_topic, meter),
    }
    return discovery_topic(prefix, meter.pdl), payload


def component_ids(meter: MeterInfo) -> list[str]:
    """The unique ids the meter's discovery declares (for tests and diagnostics)."""
    _, payload = discovery("homeassistant", "linky2mqtt", meter, "0")
    return [c["unique_id"] for c in payload["cmps"].values()]
