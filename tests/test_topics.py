"""The MQTT contract (SPEC §4): exact topics, retain flags and payloads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linky2mqtt import topics
from linky2mqtt.model import PARIS, Hour, HourlyDay, HourTotals, Kind, Step, day_bounds

PDL = "12345678901234"
B = "linky2mqtt"


def test_topic_names() -> None:
    assert topics.state_topic(B) == "linky2mqtt/bridge/state"
    assert topics.info_topic(B) == "linky2mqtt/bridge/info"
    assert topics.request_topic(B, "read") == "linky2mqtt/bridge/request/read"
    assert topics.response_topic(B, "read") == "linky2mqtt/bridge/response/read"
    assert topics.request_subscription(B) == "linky2mqtt/bridge/request/+"
    assert topics.meter_topic(B, PDL, Kind.CONSUMPTION, Step.DAY) == (
        "linky2mqtt/12345678901234/consumption/day"
    )
    assert topics.meter_topic(B, PDL, "production", "hour") == (
        "linky2mqtt/12345678901234/production/hour"
    )
    assert topics.meter_topic("home/linky", PDL, Kind.CONSUMPTION, "month") == (
        "home/linky/12345678901234/consumption/month"
    )
    assert topics.max_power_topic(B, PDL) == "linky2mqtt/12345678901234/max_power/day"
    assert topics.contract_topic(B, PDL) == "linky2mqtt/12345678901234/contract"
    assert topics.status_topic(B, PDL) == "linky2mqtt/12345678901234/status"
    with pytest.raises(ValueError, match="max_power"):
        topics.meter_topic(B, PDL, Kind.MAX_POWER, Step.MONTH)
    with pytest.raises(ValueError):
        topics.meter_topic(B, PDL, Kind.CONSUMPTION, "week")


def test_command_from_topic() -> None:
    assert topics.command_from_topic(B, "linky2mqtt/bridge/request/read") == "read"
    assert topics.command_from_topic(B, "linky2mqtt/bridge/request/") is None
    assert topics.command_from_topic(B, "linky2mqtt/bridge/request/a/b") is None
    assert topics.command_from_topic(B, "other/bridge/request/read") is None


def test_retain_and_qos_table() -> None:
    assert topics.QOS == 1
    assert topics.meter_retain(Step.DAY) is True
    assert topics.meter_retain("month") is True
    assert topics.meter_retain("hour") is False


def test_dumps_is_compact_utf8() -> None:
    body = topics.dumps({"last_error": "consentement révoqué", "value": 12.345, "n": None})
    assert body == '{"last_error":"consentement révoqué","value":12.345,"n":null}'.encode()
    assert isinstance(body, bytes)


def test_bridge_state_and_info() -> None:
    assert topics.dumps(topics.bridge_state(True)) == b'{"state":"online"}'
    assert topics.dumps(topics.bridge_state(False)) == b'{"state":"offline"}'
    meter = topics.meter_entry(
        PDL,
        name="House",
        account="home",
        steps=["hour", Step.DAY],
        production=False,
        max_power=True,
    )
    info = topics.bridge_info("0.1.0", [meter], {"mqtt": {"base_topic": B}})
    assert info == {
        "version": "0.1.0",
        "schema": 1,
        "meters": [
            {
                "pdl": PDL,
                "name": "House",
                "account": "home",
                "steps": ["day", "hour"],
                "consumption": True,
                "production": False,
                "max_power": True,
            }
        ],
        "config": {"mqtt": {"base_topic": B}},
    }


def test_day_payload_exact() -> None:
    fetched = datetime(2026, 11, 29, 7, 12, 3, 512000, tzinfo=UTC)
    got = topics.day_payload(PDL, date(2026, 11, 28), 12345.0, "BRUT", fetched)
    assert got == {
        "pdl": PDL,
        "date": "2026-11-28",
        "start": "2026-11-28T00:00:00+01:00",
        "end": "2026-11-29T00:00:00+01:00",
        "value": 12.345,
        "unit": "kWh",
        "quality": "BRUT",
        "fetched_at": "2026-11-29T08:12:03+01:00",
    }
    assert b'"value":12.345,' in topics.dumps(got)


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        (date(2026, 3, 29), "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        (date(2026, 10, 25), "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
        (date(2026, 7, 14), "2026-07-14T00:00:00+02:00", "2026-07-15T00:00:00+02:00"),
    ],
)
def test_day_payload_bounds_on_dst_days(day: date, start: str, end: str) -> None:
    got = topics.day_payload(PDL, day, 1.0, None, None)
    assert (got["start"], got["end"], got["value"], got["fetched_at"]) == (start, end, 0.001, None)


@given(st.integers(min_value=0, max_value=10**9))
def test_energy_is_exact_to_the_wh(wh: int) -> None:
    value = topics.day_payload(PDL, date(2026, 11, 28), float(wh), None, None)["value"]
    assert value == float(Decimal(wh) / 1000)
    text = topics.dumps({"v": value}).decode()[5:-1]  # the number as it goes on the wire
    assert Decimal(text) * 1000 == wh
    assert json.loads(text) == value


def test_month_payload_to_date_with_a_missing_day() -> None:
    daily = {date(2026, 11, d): 1000.0 * d + 1 for d in range(1, 29) if d != 3}
    daily[date(2026, 10, 31)] = 5.0  # another month: ignored
    got = topics.month_payload(PDL, "2026-11", daily, date(2026, 11, 28))
    expected_wh = sum(1000 * d + 1 for d in range(1, 29) if d != 3)
    assert got == {
        "pdl": PDL,
        "month": "2026-11",
        "start": "2026-11-01T00:00:00+01:00",
        "end": "2026-12-01T00:00:00+01:00",
        "value": expected_wh / 1000,
        "unit": "kWh",
        "days": 27,
        "complete": False,
        "missing": ["2026-11-03"],
    }
    assert got["value"] == 403.027


def test_month_payload_complete_when_the_last_day_arrives() -> None:
    daily = {date(2026, 10, d): 1.0 for d in range(1, 32)}
    got = topics.month_payload(PDL, "2026-10", daily, date(2026, 10, 31))
    assert (got["days"], got["complete"], got["missing"], got["value"]) == (31, True, [], 0.031)
    # October: the month starts in summer time and ends in winter time
    assert (got["start"], got["end"]) == ("2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00")
    # days after the latest day are not counted; a month without its first days says so
    partial = {date(2026, 10, d): 1.0 for d in (2, 3, 4, 20)}
    got = topics.month_payload(PDL, "2026-10", partial, date(2026, 10, 3))
    assert (got["days"], got["complete"], got["missing"]) == (2, False, ["2026-10-01"])
    # February of a non-leap year
    feb = {date(2027, 2, d): 1.0 for d in range(1, 29)}
    got = topics.month_payload(PDL, "2027-02", feb, date(2027, 2, 28))
    assert (got["days"], got["complete"], got["end"]) == (28, True, "2027-03-01T00:00:00+01:00")


def test_month_bounds_rejects_garbage() -> None:
    assert topics.month_bounds("2028-02") == (date(2028, 2, 1), date(2028, 3, 1))
    with pytest.raises(ValueError, match="YYYY-MM"):
        topics.month_bounds("2026-1")


def test_hour_payload_october_has_25_points_with_the_repeated_hour() -> None:
    day = date(2026, 10, 25)
    start, end = day_bounds(day)
    hours = [
        Hour(start + timedelta(hours=i), start + timedelta(hours=i + 1), 500.0 + i)
        for i in range(25)
    ]
    assert hours[-1].end == end
    got = topics.hour_payload(PDL, HourlyDay(day, hours, True))
    assert {k: v for k, v in got.items() if k != "points"} == {
        "pdl": PDL,
        "date": "2026-10-25",
        "interval": "PT1H",
        "unit": "kWh",
        "complete": True,
    }
    points = got["points"]
    assert len(points) == 25
    assert points[0] == {
        "start": "2026-10-25T00:00:00+02:00",
        "end": "2026-10-25T01:00:00+02:00",
        "value": 0.5,
    }
    assert points[2] == {
        "start": "2026-10-25T02:00:00+02:00",
        "end": "2026-10-25T02:00:00+01:00",
        "value": 0.502,
    }
    assert points[3] == {
        "start": "2026-10-25T02:00:00+01:00",
        "end": "2026-10-25T03:00:00+01:00",
        "value": 0.503,
    }
    assert points[-1]["end"] == "2026-10-26T00:00:00+01:00"


def test_hour_payload_march_partial() -> None:
    day = date(2026, 3, 29)
    start, _ = day_bounds(day)
    hours = [Hour(start + timedelta(hours=i), start + timedelta(hours=i + 1), 1234.0)
             for i in range(3)]
    got = topics.hour_payload(PDL, HourlyDay(day, hours, False))
    assert got["complete"] is False
    assert [p["start"] for p in got["points"]] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    assert [p["value"] for p in got["points"]] == [1.234, 1.234, 1.234]


def test_max_power_payload() -> None:
    peak = datetime(2026, 11, 28, 11, 6, 20, tzinfo=UTC)
    assert topics.max_power_payload(PDL, date(2026, 11, 28), 4638.0, peak) == {
        "pdl": PDL,
        "date": "2026-11-28",
        "value": 4638,
        "unit": "VA",
        "time": "2026-11-28T12:06:20+01:00",
    }
    assert topics.dumps(topics.max_power_payload(PDL, date(2026, 11, 28), 4638.0, None)) == (
        b'{"pdl":"12345678901234","date":"2026-11-28","value":4638,"unit":"VA","time":null}'
    )


def test_status_payload() -> None:
    got = topics.status_payload(
        PDL,
        last_poll=datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
        last_success=datetime(2026, 11, 29, 8, 0, 2, tzinfo=UTC),
        last_error=None,
        latest_day=date(2026, 11, 28),
        budget={"hour": {"used": 3, "limit": 1000}},
        extra={"next_poll": "2026-11-30T08:41:00+01:00", "pdl": "ignored"},
    )
    assert got == {
        "pdl": PDL,
        "last_poll": "2026-11-29T09:00:00+01:00",
        "last_success": "2026-11-29T09:00:02+01:00",
        "last_error": None,
        "latest_day": "2026-11-28",
        "budget": {"hour": {"used": 3, "limit": 1000}},
        "next_poll": "2026-11-30T08:41:00+01:00",
    }
    empty = topics.status_payload(PDL, None, None, "401", None, {})  # positional, as documented
    assert (empty["last_success"], empty["latest_day"], empty["last_error"]) == (None, None, "401")


def test_contract_payload_v5_shape() -> None:
    raw = {
        "customer": {
            "customer_id": "1358019319",
            "usage_points": [
                {
                    "usage_point": {"usage_point_id": PDL, "usage_point_status": "com"},
                    "contracts": {
                        "segment": "C5",
                        "subscribed_power": "9 kVA",
                        "distribution_tariff": "BTINFCUHP",
                        "offpeak_hours": "HC (22H00-6H00)",
                    },
                }
            ],
        }
    }
    got = topics.contract_payload(PDL, raw)
    assert got == {
        "pdl": PDL,
        "subscribed_power_kva": 9,
        "tariff": "BTINFCUHP",
        "offpeak_hours": "HC (22H00-6H00)",
        "segment": "C5",
        "contract_type": None,
        "contract_start": None,
        "producer": None,
        "raw": raw,
    }


def test_contract_payload_2026_shape_and_unknown_shapes() -> None:
    raw = {
        "idPrm": PDL,
        "situationContractuelle": {
            "puissanceSouscrite": {"valeur": "12", "unite": "kVA"},
            "optionTarifaire": "HC/HP",
            "plagesHeuresCreuses": "22h00-6h00",
        },
    }
    got = topics.contract_payload(PDL, raw)
    assert (got["subscribed_power_kva"], got["tariff"], got["offpeak_hours"]) == (
        12,
        "HC/HP",
        "22h00-6h00",
    )
    odd = topics.contract_payload(PDL, {"subscribed_power": "6000 VA", "tariff": None})
    assert (odd["subscribed_power_kva"], odd["tariff"], odd["offpeak_hours"]) == (6, None, None)
    half = topics.contract_payload(PDL, {"puissance_souscrite": "4,5 kVA"})
    assert half["subscribed_power_kva"] == 4.5
    nothing = topics.contract_payload(PDL, {"something": "else"})
    assert nothing == {
        "pdl": PDL,
        "subscribed_power_kva": None,
        "tariff": None,
        "offpeak_hours": None,
        "segment": None,
        "contract_type": None,
        "contract_start": None,
        "producer": None,
        "raw": {"something": "else"},
    }


def _reference_hour_body(pdl: str, totals: HourTotals) -> bytes:
    """The hourly batch as SPEC §4 writes it, computed here: every boundary through
    ``astimezone`` (Europe/Paris), the JSON by the standard library."""
    points = []
    for i, wh, _ in totals.hours:
        start = datetime.fromtimestamp(totals.lo + 3600 * i, UTC)
        points.append({"start": start.astimezone(PARIS).isoformat(),
                       "end": (start + timedelta(hours=1)).astimezone(PARIS).isoformat(),
                       "value": round(wh / 1000.0, 6)})
    return json.dumps({"pdl": pdl, "date": totals.day.isoformat(), "interval": "PT1H",
                       "unit": "kWh", "complete": totals.complete, "points": points},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_hour_body_is_the_payload_byte_for_byte_every_day_of_2025_and_2026() -> None:
    odd = [0.0, 0.0004, 1e-7, 123456789.123456, 1e24, -2.5, 1 / 3, float("nan"), float("inf")]
    day, n, seen = date(2025, 1, 1), 0, set()
    while day <= date(2026, 12, 31):
        lo, hi = (int(t.timestamp()) for t in day_bounds(day))
        count = (hi - lo) // 3600
        seen.add(count)
        # every hour, or holes (never the same ones), values plain and odd
        hours = [(i, odd[(n + i) % len(odd)] if (n + i) % 5 == 0 else 100.0 * i + n / 7,
                  (n + i) % 11 != 0)
                 for i in range(count) if n % 3 == 0 or (n + i) % 4 != 1]
        totals = HourTotals(day=day, lo=lo, count=count, hours=hours, complete=n % 3 == 0)
        body = topics.hour_body(PDL, totals)
        assert body == topics.dumps(topics.hour_payload(PDL, totals)), day
        assert body == topics.dumps(topics.hour_payload(PDL, totals.hourly_day())), day
        assert body == _reference_hour_body(PDL, totals), day
        day += timedelta(days=1)
        n += 1
    assert seen == {23, 24, 25} and n == 730
    # whole and half Wh (PT30M points are W / 2): written without rounding, same bytes
    halves = [0.0, -0.0, 0.5, 1.0, 2.5, 1e6 + 0.5, 2.0**40 - 0.5, 2.0**40, -(2.0**39) + 0.5]
    day, n = date(2025, 1, 1), 0
    while day <= date(2026, 12, 31):
        lo, hi = (int(t.timestamp()) for t in day_bounds(day))
        count = (hi - lo) // 3600
        hours = [(i, halves[(n + i) % len(halves)] if n % 4 == 0 else 150.5 * i + n,
                  True) for i in range(count)]
        totals = HourTotals(day=day, lo=lo, count=count, hours=hours, complete=True)
        assert topics.hour_body(PDL, totals) == _reference_hour_body(PDL, totals), day
        day += timedelta(days=1)
        n += 1
    # a delivery point identifier is written as JSON, whatever it holds
    totals = HourTotals(day=date(2026, 10, 25), lo=int(day_bounds(date(2026, 10, 25))[0]
                        .timestamp()), count=25, hours=[(3, 1.0, True)], complete=False)
    assert topics.hour_body('é"\\x', totals) == _reference_hour_body('é"\\x', totals)
