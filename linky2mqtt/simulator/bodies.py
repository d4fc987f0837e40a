"""Response bodies in the shapes the providers send: Enedis 2026, v5 ``meter_reading``,
and contract descriptions. Values are strings, as upstream sends them."""

from __future__ import annotations

from datetime import date
from typing import Any

from linky2mqtt.model import Kind
from linky2mqtt.simulator import data
from linky2mqtt.simulator.rules import Query, Series

CONSENT_EXPIRATION = "2029-12-31"


def _grandeur_metier(kind: Kind) -> str:
    return "PROD" if kind is Kind.PRODUCTION else "CONS"


def _curve_points(q: Query, days: list[date]) -> list[data.Interval]:
    out: list[data.Interval] = []
    for day in days:
        out.extend(data.curve(q.pdl, q.kind, day) or ())
    return out


def body_2026(q: Query, days: list[date],
              dst_stamps: str = data.WALL_CLOCK) -> dict[str, Any]:
    """The Enedis "mesure synchrone v2" body for ``q`` over ``days``; load-curve stamps
    written as ``dst_stamps`` says (:data:`data.DST_STAMPS`)."""
    periode = {"dateDebut": q.start.isoformat(), "dateFin": q.end.isoformat()}
    metier = _grandeur_metier(q.kind)
    if q.series is Series.CURVE:
        points = [
            {"v": str(p.watts), "d": p.stamp_for(dst_stamps), "p": f"PT{p.minutes}M", "n": "B",
             "iv": "0", "ec": "0"}
            for p in _curve_points(q, days)
        ]
        return {
            "idPrm": q.pdl, "etapeMetier": "BRUT", "periode": periode, "modeCalcul": "MESURE",
            "grandeur": [{"grandeurMetier": metier, "grandeurPhysique": "PA", "unite": "W",
                          "points": points}],
        }
    if q.kind is Kind.MAX_POWER:
        daily_points = []
        for day in days:
            peak = data.max_power(q.pdl, day)
            if peak is not None:
                daily_points.append({"v": str(peak[0]), "d": data.local_stamp(peak[1])})
        physique, unite, mode = "PMA", "VA", "MAX"
    else:
        daily_points = [
            {"v": str(data.daily_wh(q.pdl, q.kind, day)), "d": day.isoformat()} for day in days
        ]
        physique, unite, mode = "EA", "Wh", "DIFF.INDEX"
    return {
        "idPrm": q.pdl, "etapeMetier": "BRUT", "periode": periode, "typeValeur": "GLOBALE",
        "modeCalcul": mode, "pas": "P1D",
        "grandeur": [{"grandeurMetier": metier, "grandeurPhysique": physique, "unite": unite,
                      "points": daily_points, "calendrier": []}],
        "contexte": [],
    }


def meter_reading(q: Query, days: list[date],
                  dst_stamps: str = data.WALL_CLOCK) -> dict[str, Any]:
    """The v5 inner ``meter_reading`` object (wrap it as ``{"meter_reading": ...}``)."""
    head: dict[str, Any] = {
        "usage_point_id": q.pdl, "start": q.start.isoformat(), "end": q.end.isoformat(),
        "quality": "BRUT",
    }
    if q.series is Series.CURVE:
        head["reading_type"] = {"unit": "W", "measurement_kind": "power",
                                "aggregate": "average"}
        head["interval_reading"] = [
            {"value": str(p.watts), "date": p.stamp_for(dst_stamps),
             "interval_length": f"PT{p.minutes}M", "measure_type": "B"}
            for p in _curve_points(q, days)
        ]
    elif q.kind is Kind.MAX_POWER:
        head["reading_type"] = {"unit": "VA", "measurement_kind": "power",
                                "aggregate": "maximum", "measuring_period": "P1D"}
        readings = []
        for day in days:
            peak = data.max_power(q.pdl, day)
            if peak is not None:
                readings.append({"value": str(peak[0]), "date": data.local_stamp(peak[1])})
        head["interval_reading"] = readings
    else:
        head["reading_type"] = {"unit": "Wh", "measurement_kind": "energy", "aggregate": "sum",
                                "measuring_period": "P1D"}
        head["interval_reading"] = [
            {"value": str(data.daily_wh(q.pdl, q.kind, day)), "date": day.isoformat()}
            for day in days
        ]
    return head


TARIFF_WORDS = {
    # the HC/HP wording is the one recorded by MyElectricalData; the BASE one is unverified
    "HC/HP": "Tarif BT<=36kVA Moyenne Utilisation heures pleines heures creuses associées "
             "à deux saisons",
    "BASE": "Tarif BT<=36kVA Courte Utilisation sans différenciation temporelle",
}


def situation_contrat(pdl: str) -> list[dict[str, Any]]:
    """``/situation_contrat_auto/v1/{pdl}``: the 2026 JSON **array**, one object per
    contract, as MyElectricalData recorded it (``situation_contrat_consommateur.json``,
    ``situation_contrat_autoconsommation.json``): a consumer ``C5`` contract with its
    subscribed power ``{"unit": "kVA", "value": "9"}`` and tariff in words, and a producer
    ``P4`` contract (no subscribed power) when the PDL produces. No off-peak hours (the
    recorded answers carry none). Personal blocks are served masked, as recorded."""
    prof = data.profile(pdl)
    personal = {
        "customer": {"customer": {"adress": {"line1": "<masque>", "line6": "<masque>"}}},
        "contact_data": {"landline": "<masque>"},
        "person": {"title": "<masque>", "lastname": "<masque>", "firstname": "<masque>"},
    }
    start = f"{prof.activation.isoformat()}T00:00:00+0100"
    out: list[dict[str, Any]] = []
    if prof.consumes:
        out.append({
            "usage_point_id": pdl, "contract_start": start, "contract_type": "Contrat GRD-F",
            "contractor": "<masque>", "distribution_tariff": TARIFF_WORDS[prof.tariff],
            "subscribed_power": {"unit": "kVA", "value": str(prof.kva)}, "segment": "C5",
            **personal,
        })
    if prof.produces:
        out.append({"usage_point_id": pdl, "contract_start": start,
                    "contract_type": "Contrat GRD-A", "segment": "P4", **personal})
    return out


def v5_contracts(pdl: str) -> dict[str, Any]:
    """The v5 ``customers_upc`` contracts shape (served by MyElectricalData)."""
    prof = data.profile(pdl)
    offpeak = f"HC ({prof.offpeak.replace('h', 'H')})" if prof.offpeak else None
    return {
        "customer": {
            "customer_id": f"1{int(data.unit(pdl, 'customer') * 1e9):09d}",
            "usage_points": [{
                "usage_point": {"usage_point_id": pdl, "usage_point_status": "com",
                                "meter_type": "AMM"},
                "contracts": {
                    "segment": "C5",
                    "subscribed_power": f"{prof.kva} kVA",
                    "last_activation_date": f"{prof.activation.isoformat()}+01:00",
                    "distribution_tariff": "BTINFCUHP" if prof.tariff == "HC/HP"
                    else "BTINFCUST",
                    "offpeak_hours": offpeak,
                    "contract_status": "SERVC",
                    "last_distribution_tariff_change_date":
                        f"{prof.activation.isoformat()}+01:00",
                },
            }],
        }
    }
