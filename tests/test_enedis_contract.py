"""enedis.contract: every known contract shape to the same facts; subscribed_kva()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linky2mqtt.enedis import Contract, ContractEntry, errors, parse_contract, subscribed_kva

RECORDED = Path(__file__).parent / "fixtures" / "recorded"


def _recorded(name: str) -> object:
    return json.loads((RECORDED / name).read_text("utf-8"))


def test_2026_self_consumption_array() -> None:
    contract = parse_contract(_recorded("dc2026_contract_selfconsumption.json"))
    assert [e.segment for e in contract.entries] == ["C5", "P4"]
    assert contract.consumer is contract.entries[0]
    assert contract.producer is contract.entries[1]
    assert subscribed_kva(contract) == 12.0  # {"unit": "kVA", "value": "12"}
    assert contract.producer is not None and subscribed_kva(contract.producer) is None
    assert all(set(raw) & {"person", "contact_data", "customer", "contractor"} == set()
               for raw in contract.raw)


def test_v5_customers_upc() -> None:
    contract = parse_contract(_recorded("med_contracts.json"))
    assert subscribed_kva(contract) == 9.0  # "9 kVA"
    assert contract.main.offpeak_hours == "HC (1H30-8H00;12H30-14H00)"
    assert contract.main.tariff == "BTINFMUDT"
    assert contract.producer is None


def test_production_only_and_odd_shapes() -> None:
    only = parse_contract([{"segment": "P4", "contract_type": "Contrat GRD-A"}])
    assert only.consumer is None and only.main.segment == "P4"
    assert subscribed_kva(only) is None
    assert subscribed_kva(parse_contract({"puissanceSouscrite": {"valeur": "6",
                                                                 "unite": "kVA"}})) == 6.0
    assert subscribed_kva(parse_contract({"subscribed_power": "9000 VA"})) == 9.0
    assert subscribed_kva(parse_contract({"customer": [{"usage_points": [
        {"contracts": {"subscribed_power": "36 kVA"}}]}]})) == 36.0
    assert subscribed_kva(parse_contract({"nothing": "here"})) is None
    assert subscribed_kva(None) is None
    assert subscribed_kva(ContractEntry(subscribed_kva=4.5)) == 4.5
    assert isinstance(parse_contract({}), Contract)
    # the published payload and raw answers work too (what part A reads from the store)
    assert subscribed_kva({"pdl": "1", "subscribed_power_kva": 12}) == 12.0
    assert subscribed_kva({"pdl": "1", "subscribed_power_kva": None}) is None
    assert subscribed_kva(_recorded("dc2026_contract_consumer.json")) == 12.0  # type: ignore[arg-type]
    assert subscribed_kva([1, 2]) is None


@pytest.mark.parametrize("body", [[], [1, 2], "text", 12, None])
def test_no_contract_is_a_bad_response(body: object) -> None:
    with pytest.raises(errors.BadResponse):
        parse_contract(body)
