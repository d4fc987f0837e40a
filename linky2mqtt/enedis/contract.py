"""A PDL's contract, whatever the provider's shape: :func:`parse_contract`.

Three shapes are known:

* Data Connect 2026 ``/situation_contrat_auto/v1/{pdl}``: a JSON **array**, one object per
  contract. A self-consumption PDL has two: the consumer (segment ``C5``, with
  ``subscribed_power`` ``{"unit": "kVA", "value": "12"}`` and ``distribution_tariff`` in
  words) and the producer (segment ``P4``, no subscribed power). Recorded by
  MyElectricalData (its fixtures ``situation_contrat_*.json``).
* v5 ``customers_upc`` (MyElectricalData ``/contracts/{pdl}``):
  ``{"customer": {"usage_points": [{"usage_point": {...}, "contracts": {...}}]}}`` with
  ``"subscribed_power": "9 kVA"`` and ``"offpeak_hours": "HC (22H00-6H00)"``.
* anything else that is a JSON object: read as one contract, its facts looked up by their
  usual names (``puissanceSouscrite``, ``optionTarifaire``, ...) at any depth.

The personal blocks of a 2026 contract (``customer`` address, ``contact_data``,
``person``, ``contractor``) are left out of :attr:`Contract.raw`: they are never needed and
the contract is published on MQTT.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadResponse

__all__ = ["Contract", "ContractEntry", "parse_contract", "subscribed_kva"]

PERSONAL_KEYS = frozenset({"customer", "contact_data", "person", "contractor"})

_POWER_KEYS = ("subscribed_power", "puissance_souscrite", "puissancesouscrite")
_TARIFF_KEYS = (
    "distribution_tariff",
    "tariff",
    "tarif",
    "formule_tarifaire_acheminement",
    "formuletarifaireacheminement",
    "option_tarifaire",
    "optiontarifaire",
    "fta",
)
_OFFPEAK_KEYS = (
    "offpeak_hours",
    "off_peak_hours",
    "heures_creuses",
    "heurescreuses",
    "plage_heures_creuses",
    "plageheurescreuses",
    "plages_heures_creuses",
    "plagesheurescreuses",
)
_SEGMENT_KEYS = ("segment",)
_TYPE_KEYS = ("contract_type", "type_contrat")
_START_KEYS = ("contract_start", "last_activation_date", "date_activation")
_STATUS_KEYS = ("contract_status", "etat_contractuel")


@dataclass(frozen=True)
class ContractEntry:
    """One contract of a PDL. Every field is None where the provider does not say."""

    segment: str | None = None  # "C5" (consumer), "P4" (producer), ...
    subscribed_kva: float | None = None
    tariff: str | None = None
    offpeak_hours: str | None = None
    contract_type: str | None = None
    start: str | None = None
    status: str | None = None

    @property
    def producer(self) -> bool:
        return bool(self.segment) and str(self.segment).upper().startswith("P")


@dataclass(frozen=True)
class Contract:
    """What a contract answer says: its contracts and the answer (personal data removed)."""

    entries: tuple[ContractEntry, ...]
    raw: Any

    @property
    def consumer(self) -> ContractEntry | None:
        """The consumption contract: a non-producer segment, the one with a subscribed
        power first; None for a production-only PDL."""
        candidates = [e for e in self.entries if not e.producer]
        with_power = [e for e in candidates if e.subscribed_kva is not None]
        best = with_power or candidates
        return best[0] if best else None

    @property
    def producer(self) -> ContractEntry | None:
        return next((e for e in self.entries if e.producer), None)

    @property
    def main(self) -> ContractEntry:
        """The consumer contract, else the first one (a production-only PDL)."""
        return self.consumer or self.entries[0]


def subscribed_kva(
    contract: Contract | ContractEntry | Mapping[str, Any] | list[Any] | None,
) -> float | None:
    """Subscribed power in kVA of a contract (its consumer contract), or None (also for
    a power that is not a positive number).

    ``contract`` is a parsed :class:`Contract` (what ``EnedisClient.contract`` returns),
    one :class:`ContractEntry`, the ``B/<pdl>/contract`` payload the bridge keeps in its
    store (``{"subscribed_power_kva": ...}``), or a provider's raw answer.
    """
    if contract is None:
        return None
    if isinstance(contract, Mapping | list) and not isinstance(contract, Contract):
        if isinstance(contract, Mapping) and "subscribed_power_kva" in contract:
            value = contract["subscribed_power_kva"]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return float(value) if ok and value > 0 else None
        try:
            contract = parse_contract(contract)
        except BadResponse:
            return None
    entry = contract if isinstance(contract, ContractEntry) else contract.consumer
    if entry is None or entry.subscribed_kva is None or entry.subscribed_kva <= 0:
        return None
    return float(entry.subscribed_kva)


def parse_contract(body: Any) -> Contract:
    """The :class:`Contract` of an answer; :class:`BadResponse` if it holds none."""
    if isinstance(body, list):
        if not body or not all(isinstance(item, Mapping) for item in body):
            raise BadResponse("contract answer is an array without contract objects")
        raw = [{k: v for k, v in item.items() if k not in PERSONAL_KEYS} for item in body]
        return Contract(tuple(_entry(item) for item in raw), raw)
    if not isinstance(body, Mapping):
        raise BadResponse(f"contract answer is not a JSON object or array "
                          f"({type(body).__name__})")
    v5 = _v5_contracts(body)
    if v5:
        return Contract(tuple(_entry(c) for c in v5), dict(body))
    return Contract((_entry(body),), dict(body))


def _v5_contracts(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``contracts`` objects of a v5 ``customer.usage_points`` answer."""
    customer = body.get("customer")
    if isinstance(customer, list):  # some gateways wrap customers in a list
        customer = customer[0] if customer and isinstance(customer[0], Mapping) else None
    if not isinstance(customer, Mapping):
        return []
    points = customer.get("usage_points")
    if not isinstance(points, list):
        return []
    out: list[Mapping[str, Any]] = []
    for point in points:
        if not isinstance(point, Mapping):
            continue
        contracts = point.get("contracts")
        if isinstance(contracts, Mapping):
            out.append(contracts)
        elif isinstance(contracts, list):
            out.extend(c for c in contracts if isinstance(c, Mapping))
    return out


def _entry(doc: Mapping[str, Any]) -> ContractEntry:
    return ContractEntry(
        segment=_str(_find(doc, _SEGMENT_KEYS)),
        subscribed_kva=_kva(_find(doc, _POWER_KEYS)),
        tariff=_str(_text(_find(doc, _TARIFF_KEYS))),
        offpeak_hours=_str(_text(_find(doc, _OFFPEAK_KEYS))),
        contract_type=_str(_find(doc, _TYPE_KEYS)),
        start=_str(_find(doc, _START_KEYS)),
        status=_str(_find(doc, _STATUS_KEYS)),
    )


def _norm(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _find(doc: Any, keys: tuple[str, ...]) -> Any:
    """First value (depth first) whose key, snake-cased, is one of ``keys``."""
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            named = isinstance(key, str) and (_norm(key) in keys or key.lower() in keys)
            if named and value not in (None, "", [], {}):
                return value
        for value in doc.values():
            found = _find(value, keys)
            if found is not None:
                return found
    elif isinstance(doc, list):
        for item in doc:
            found = _find(item, keys)
            if found is not None:
                return found
    return None


def _kva(value: Any) -> float | None:
    """``"9 kVA"``, ``9``, ``{"value": "12", "unit": "kVA"}``, ``"9000 VA"`` -> 9.0."""
    unit = "kva"
    if isinstance(value, Mapping):
        unit = str(value.get("unite") or value.get("unit") or "kVA").lower()
        value = value.get("valeur", value.get("value"))
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        m = re.search(r"(\d+(?:[.,]\d+)?)\s*(k?va)?", str(value), re.IGNORECASE)
        if m is None:
            return None
        number = float(m.group(1).replace(",", "."))
        if m.group(2):
            unit = m.group(2).lower()
    if unit == "va":
        number /= 1000.0
    return int(number) if number.is_integer() else number


def _text(value: Any) -> Any:
    if isinstance(value, Mapping):
        for key in ("libelle", "label", "code", "valeur", "value"):
            if isinstance(value.get(key), str):
                return value[key]
    return value


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    return str(value)
