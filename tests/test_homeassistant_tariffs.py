"""Home Assistant discovery with a tariff: per-period energy, costs, Tempo colours."""

from __future__ import annotations

from datetime import date

from linky2mqtt.accounts import tariff_info
from linky2mqtt.homeassistant import MeterInfo, discovery
from linky2mqtt.tariffs import parse_tariff

PDL = "12345678901234"
TEMPO = {"hc_blue": 0.1356, "hp_blue": 0.1654, "hc_white": 0.1536, "hp_white": 0.1921,
         "hc_red": 0.1615, "hp_red": 0.7295}


def _cmps(**info: object) -> dict[str, dict[str, object]]:
    _, payload = discovery("homeassistant", "l2m", MeterInfo(PDL, **info), "1.0")  # type: ignore[arg-type]
    cmps: dict[str, dict[str, object]] = payload["cmps"]
    return cmps


def test_hphc_meter_gets_period_energy_and_cost_sensors() -> None:
    tariff = parse_tariff([{"from": date(2026, 8, 1), "option": "hphc",
                            "prices": {"hp": 0.2142, "hc": 0.1589}}])
    info = tariff_info(tariff)
    assert info == {"periods": ("hp", "hc"), "tempo": False}
    cmps = _cmps(**info)
    hc = cmps["consumption_day_hc"]
    assert hc == {
        "p": "sensor", "unique_id": f"linky2mqtt_{PDL}_consumption_day_hc",
        "name": "Consumption day HC", "device_class": "energy",
        "unit_of_measurement": "kWh", "suggested_display_precision": 3,
        "state_topic": f"l2m/{PDL}/consumption/day", "state_class": "total",
        "last_reset_value_template": "{{ value_json.start }}",
        "value_template": "{{ value_json.periods.get('hc', 0) if value_json.periods "
                          "else None }}"}
    cost = cmps["cost_day"]
    assert (cost["device_class"], cost["state_class"], cost["unit_of_measurement"]) == (
        "monetary", "total", "EUR")
    assert cost["value_template"] == "{{ value_json.cost.value if value_json.cost else None }}"
    assert cmps["cost_day_hp"]["value_template"] == (
        "{{ value_json.cost.periods.get('hp', 0) if value_json.cost else None }}")
    assert "tempo_today" not in cmps
    price = cmps["current_price"]
    assert (price["state_topic"], price["unit_of_measurement"], price["state_class"]) == (
        f"l2m/{PDL}/price", "EUR/kWh", "measurement")
    # no tariff: nothing of this
    plain = _cmps()
    assert not [k for k in plain if k.startswith(("cost", "consumption_day_", "tempo",
                                                  "current_price"))]


def test_tempo_meter_gets_six_periods_and_colour_sensors() -> None:
    tariff = parse_tariff([
        {"from": "2026-08-01", "to": "2026-11-01", "option": "hphc",
         "prices": {"hp": 0.2142, "hc": 0.1589}},
        {"from": "2026-11-01", "option": "tempo", "prices": TEMPO}])
    info = tariff_info(tariff)
    assert info["periods"] == ("hp", "hc", "hp_blue", "hc_blue", "hp_white", "hc_white",
                               "hp_red", "hc_red")
    cmps = _cmps(**info)
    today = cmps["tempo_today"]
    assert today["device_class"] == "enum" and today["options"] == ["blue", "white", "red"]
    assert today["state_topic"] == "l2m/tempo/today"
    assert today["value_template"] == ("{{ value_json.colour if value_json.colour "
                                       "else None }}")
    assert cmps["tempo_tomorrow"]["state_topic"] == "l2m/tempo/tomorrow"
    assert len([k for k in cmps if k.startswith("cost_day")]) == 9
