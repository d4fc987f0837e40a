"""The command protocol (SPEC §5) as pure logic: validation, answers, read assembly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linky2mqtt.commands import (
    MAX_PAYLOAD,
    NO_TRANSACTION,
    InfoRequest,
    MeterView,
    ReadRequest,
    RefreshRequest,
    Rejection,
    Request,
    build_read_data,
    encode,
    error,
    missing_days,
    ok,
    parse_request,
    read_message_when_budget_exhausted,
    rejection_answer,
    response_topic,
)
from linky2mqtt.model import Hour, HourlyDay, Kind, Step, day_bounds

HOUSE = "12345678901234"
SOLAR = "22222222222222"
PDLS = {HOUSE: MeterView(), SOLAR: MeterView(production=True, max_power=True)}
TODAY = date(2026, 11, 29)


def parse(command: str, body: object) -> Request | Rejection:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(command, raw, pdls=PDLS, today=TODAY)


def read_body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "pdl": HOUSE,
        "kind": "consumption",
        "step": "day",
        "start": "2026-11-01",
        "end": "2026-11-29",
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()


# ---------------------------------------------------------------------------- valid requests


@pytest.mark.parametrize(
    ("pdl", "kind", "step", "start", "end"),
    [
        (HOUSE, Kind.CONSUMPTION, Step.DAY, "2025-11-28", "2026-11-29"),  # 366 days
        (HOUSE, Kind.CONSUMPTION, Step.MONTH, "2026-01-01", "2026-11-29"),
        (HOUSE, Kind.CONSUMPTION, Step.HOUR, "2026-10-29", "2026-11-29"),  # 31 days
        (SOLAR, Kind.PRODUCTION, Step.DAY, "2026-11-28", "2026-11-29"),
        (SOLAR, Kind.PRODUCTION, Step.MONTH, "2026-06-15", "2026-07-15"),
        (SOLAR, Kind.PRODUCTION, Step.HOUR, "2026-03-29", "2026-03-30"),
        (SOLAR, Kind.MAX_POWER, Step.DAY, "2026-10-01", "2026-11-01"),
    ],
)
def test_valid_read(pdl: str, kind: Kind, step: Step, start: str, end: str) -> None:
    got = parse("read", read_body(pdl=pdl, kind=kind.value, step=step.value, start=start, end=end))
    assert got == ReadRequest(
        pdl, kind, step, date.fromisoformat(start), date.fromisoformat(end), NO_TRANSACTION
    )


@pytest.mark.parametrize("transaction", ["abc", 42, {"id": 7, "from": ["ha"]}, None, [1, 2], 1.5])
def test_transaction_of_any_json_type_is_kept(transaction: object) -> None:
    got = parse("read", read_body(transaction=transaction))
    assert isinstance(got, ReadRequest)
    assert got.transaction == transaction
    assert got.transaction is not NO_TRANSACTION


def test_refresh_and_info() -> None:
    assert parse("refresh", {}) == RefreshRequest(None)
    assert parse("refresh", {"pdl": SOLAR, "transaction": 3}) == RefreshRequest(SOLAR, 3)
    assert parse("refresh", {"pdl": None}) == RefreshRequest(None)
    assert parse("info", {}) == InfoRequest()
    assert parse("info", {"transaction": "t1"}) == InfoRequest("t1")
    # an empty payload (mosquitto_pub -n) counts as {}
    assert parse("info", b"") == InfoRequest()
    assert parse("refresh", b"  \n") == RefreshRequest(None)
    # a UTF-8 byte-order mark is tolerated
    assert parse("info", b"\xef\xbb\xbf{}") == InfoRequest()


# ---------------------------------------------------------------------------- rejections

REJECTIONS: list[tuple[str, object, str]] = [
    # payload level
    ("read", b"\xff\xfe{}", "payload is not UTF-8 text: got 4 bytes, bad byte 0xff at position 0"),
    (
        "read",
        b"{pdl:1}",
        'payload is not valid JSON: got 7 bytes "{pdl:1}": Expecting property name enclosed in '
        "double quotes at line 1 column 2",
    ),
    ("read", b'{"a":NaN}',
     'payload is not valid JSON: got 9 bytes "{\\"a\\":NaN}": NaN is not a JSON number'),
    ("read", b'{"a":1e999}',
     'payload is not valid JSON: got 11 bytes "{\\"a\\":1e999}": number 1e999 is too large'),
    ("read", b"[1,2]", "payload must be a JSON object such as {}, got an array"),
    ("read", b'"read"', "payload must be a JSON object such as {}, got a string"),
    ("read", b"null", "payload must be a JSON object such as {}, got null"),
    ("read", b"[" * 3000, "payload is nested too deeply (more than 64 levels)"),
    (
        "read",
        b'{"a":' * 70 + b"1" + b"}" * 70,
        "payload is nested too deeply (more than 64 levels)",
    ),
    # command
    ("Read", {}, 'unknown command "Read"; known commands: read, refresh, info'),
    ("", {}, 'unknown command ""; known commands: read, refresh, info'),
    # keys
    (
        "read",
        read_body(strat="2026-11-01"),
        'unknown key "strat" for command read; '
        "known keys: pdl, kind, step, start, end, split, cost, transaction",
    ),
    (
        "info",
        {"pdl": HOUSE, "x": 1},
        'unknown keys "pdl", "x" for command info; known keys: transaction',
    ),
    (
        "refresh",
        {"all": True},
        'unknown key "all" for command refresh; known keys: pdl, transaction',
    ),
    # pdl
    (
        "read",
        read_body(pdl=DROP),
        '"pdl" is required: the 14-digit number of the delivery point (PRM)',
    ),
    (
        "read",
        read_body(pdl=12345678901234),
        '"pdl" must be a string of 14 digits (in quotes), got a number',
    ),
    ("read", read_body(pdl="1234"), '"pdl" must be 14 digits, got "1234"'),
    ("read", read_body(pdl="1234567890123X"), '"pdl" must be 14 digits, got "1234567890123X"'),
    (
        "read",
        read_body(pdl="99999999999999"),
        "PDL 99999999999999 is not configured in this "
        "bridge (configured: 12345678901234, 22222222222222)",
    ),
    (
        "refresh",
        {"pdl": "99999999999999"},
        "PDL 99999999999999 is not configured in this "
        "bridge (configured: 12345678901234, 22222222222222)",
    ),
    # kind
    ("read", read_body(kind=DROP), '"kind" is required: one of consumption, production, max_power'),
    (
        "read",
        read_body(kind="conso"),
        '"kind" must be one of consumption, production, max_power, got "conso"',
    ),
    ("read", read_body(kind=1), '"kind" must be one of consumption, production, max_power, got 1'),
    (
        "read",
        read_body(kind="production"),
        "PDL 12345678901234 has no production data in this "
        "bridge (set production: true for this meter in the configuration)",
    ),
    (
        "read",
        read_body(kind="max_power"),
        "PDL 12345678901234 has no max_power data in this "
        "bridge (set max_power: true for this meter in the configuration)",
    ),
    # step
    ("read", read_body(step=DROP), '"step" is required: one of day, month, hour'),
    ("read", read_body(step="week"), '"step" must be one of day, month, hour, got "week"'),
    ("read", read_body(step=["day"]), '"step" must be one of day, month, hour, got an array'),
    (
        "read",
        read_body(pdl=SOLAR, kind="max_power", step="hour"),
        'max_power exists per day only: use "step": "day", not "hour"',
    ),
    (
        "read",
        read_body(pdl=SOLAR, kind="max_power", step="month"),
        'max_power exists per day only: use "step": "day", not "month"',
    ),
    # dates
    ("read", read_body(start=DROP), '"start" is required: a date as "YYYY-MM-DD"'),
    ("read", read_body(end=DROP), '"end" is required: a date as "YYYY-MM-DD"'),
    (
        "read",
        read_body(start="01/11/2026"),
        '"start" must be a date as "YYYY-MM-DD", got "01/11/2026"',
    ),
    ("read", read_body(start="20261101"), '"start" must be a date as "YYYY-MM-DD", got "20261101"'),
    ("read", read_body(end=20261129), '"end" must be a date as "YYYY-MM-DD", got 20261129'),
    ("read", read_body(start="2026-02-30"), '"start" is not a real date: "2026-02-30"'),
    ("read", read_body(end="2026-13-01"), '"end" is not a real date: "2026-13-01"'),
    (
        "read",
        read_body(start="2026-11-10", end="2026-11-10"),
        '"start" (2026-11-10) must be '
        'before "end" (2026-11-10); "end" is exclusive: one day is "start": "2026-11-10", '
        '"end": "2026-11-11"',
    ),
    (
        "read",
        read_body(start="2026-11-10", end="2026-11-01"),
        '"start" (2026-11-10) must be '
        'before "end" (2026-11-01); "end" is exclusive: one day is "start": "2026-11-10", '
        '"end": "2026-11-11"',
    ),
    (
        "read",
        read_body(end="2026-11-30"),
        '"end" (2026-11-30) is in the future: the latest "end" is today, 2026-11-29 '
        "(end is exclusive, and data stops at yesterday)",
    ),
    # range limits
    (
        "read",
        read_body(start="2025-11-27"),
        'range too long: 367 days from 2025-11-27 to 2026-11-29; at most 366 days for step "day"',
    ),
    (
        "read",
        read_body(step="month", start="2024-01-01"),
        "range too long: 1063 days from "
        '2024-01-01 to 2026-11-29; at most 366 days for step "month"',
    ),
    (
        "read",
        read_body(step="hour", start="2026-10-28"),
        'range too long: 32 days from 2026-10-28 to 2026-11-29; at most 31 days for step "hour"',
    ),
]


@pytest.mark.parametrize(("command", "body", "message"), REJECTIONS)
def test_rejection_message(command: str, body: object, message: str) -> None:
    got = parse(command, body)
    assert got == Rejection(command, message, NO_TRANSACTION)


def test_consumption_read_refused_on_a_production_only_meter() -> None:
    farm = "24880057139941"
    pdls = {**PDLS, farm: MeterView(production=True, consumption=False)}
    assert MeterView().consumption is True
    assert not pdls[farm].has(Kind.CONSUMPTION) and pdls[farm].has(Kind.PRODUCTION)
    for step in ("day", "month", "hour"):
        body = read_body(pdl=farm, step=step, transaction="t1")
        got = parse_request("read", json.dumps(body).encode(), pdls=pdls, today=TODAY)
        assert got == Rejection(
            "read", f"meter {farm} does not measure consumption (consumption: false)", "t1")
    production = parse_request("read", json.dumps(read_body(pdl=farm, kind="production"))
                               .encode(), pdls=pdls, today=TODAY)
    assert isinstance(production, ReadRequest)
    assert (production.pdl, production.kind) == (farm, Kind.PRODUCTION)


@pytest.mark.parametrize("transaction", ["abc", 42, {"id": 7}, None])
@pytest.mark.parametrize(
    ("command", "body", "message"),
    [r for r in REJECTIONS if isinstance(r[1], dict)],
)
def test_rejection_echoes_transaction(
    command: str, body: dict[str, object], message: str, transaction: object
) -> None:
    got = parse(command, {**body, "transaction": transaction})
    assert got == Rejection(command, message, transaction)
    answer = json.loads(encode(rejection_answer(got)))
    assert answer == {"status": "error", "error": message, "data": {}, "transaction": transaction}


def test_oversized_payload() -> None:
    body = json.dumps({"transaction": "x" * MAX_PAYLOAD}).encode()
    assert parse("read", body) == Rejection(
        "read", f"payload too large: {len(body)} bytes, at most 65536 (64 KiB)"
    )
    # a short transaction is still echoed in the refusal
    big = json.dumps({"transaction": "t-1", "pdl": "x" * MAX_PAYLOAD}).encode()
    assert parse("read", big) == Rejection(
        "read", f"payload too large: {len(big)} bytes, at most 65536 (64 KiB)", "t-1"
    )
    # exactly 64 KiB is still read
    padded = b'{"transaction":"' + b"x" * (MAX_PAYLOAD - 18) + b'"}'
    assert len(padded) == MAX_PAYLOAD
    assert parse("info", padded) == InfoRequest("x" * (MAX_PAYLOAD - 18))


def test_long_command_name_is_shortened_in_the_message() -> None:
    got = parse("x" * 100, {})
    assert got == Rejection(
        "x" * 100, f'unknown command "{"x" * 40}..."; known commands: read, refresh, info'
    )


# ---------------------------------------------------------------------------- answers


def test_answer_shapes() -> None:
    assert ok({"a": 1}, "t") == {"status": "ok", "data": {"a": 1}, "transaction": "t"}
    assert ok({"a": 1}) == {"status": "ok", "data": {"a": 1}}
    assert ok({}, None) == {"status": "ok", "data": {}, "transaction": None}
    assert error("bad", {"k": [1]}) == {
        "status": "error",
        "error": "bad",
        "data": {},
        "transaction": {"k": [1]},
    }
    assert error("bad") == {"status": "error", "error": "bad", "data": {}}
    assert encode(error("bad", 5)) == (
        b'{"status":"error","error":"bad","data":{},"transaction":5}'
    )
    assert response_topic("linky2mqtt", "read") == "linky2mqtt/bridge/response/read"


def test_encode_keeps_odd_strings_valid() -> None:
    got = parse("info", b'{"transaction":"\\ud800 caf\xc3\xa9"}')
    assert isinstance(got, InfoRequest)
    raw = encode(ok({}, got.transaction))
    raw.decode("utf-8")
    assert json.loads(raw)["transaction"] == "\ud800 café"


# ---------------------------------------------------------------------------- read assembly


def hours_of(day: date, wh: float) -> list[Hour]:
    start, end = day_bounds(day)
    out = []
    while start < end:
        out.append(Hour(start, start + timedelta(hours=1), wh))
        start += timedelta(hours=1)
    return out


@dataclass
class MemorySource:
    daily: dict[tuple[str, Kind, date], float] = field(default_factory=dict)
    peaks: dict[tuple[str, date], tuple[float, datetime]] = field(default_factory=dict)
    curves: dict[tuple[str, Kind, date], HourlyDay] = field(default_factory=dict)

    def daily_values(self, pdl: str, kind: Kind, start: date, end: date) -> dict[date, float]:
        return {
            d: v
            for (p, k, d), v in self.daily.items()
            if p == pdl and k == kind and start <= d < end
        }

    def max_power_values(
        self, pdl: str, start: date, end: date
    ) -> dict[date, tuple[float, datetime]]:
        return {d: v for (p, d), v in self.peaks.items() if p == pdl and start <= d < end}

    def hourly(self, pdl: str, kind: Kind, day: date) -> HourlyDay | None:
        return self.curves.get((pdl, kind, day))


def req(kind: Kind, step: Step, start: str, end: str, pdl: str = HOUSE) -> ReadRequest:
    return ReadRequest(pdl, kind, step, date.fromisoformat(start), date.fromisoformat(end))


def test_read_day() -> None:
    src = MemorySource(
        daily={
            (HOUSE, Kind.CONSUMPTION, date(2026, 3, 28)): 12345.0,
            (HOUSE, Kind.CONSUMPTION, date(2026, 3, 29)): 9001.0,
            (HOUSE, Kind.CONSUMPTION, date(2026, 3, 31)): 100.1,
            (HOUSE, Kind.PRODUCTION, date(2026, 3, 30)): 5.0,
            (SOLAR, Kind.CONSUMPTION, date(2026, 3, 30)): 5.0,
        }
    )
    r = req(Kind.CONSUMPTION, Step.DAY, "2026-03-28", "2026-04-01")
    assert build_read_data(r, src) == {
        "pdl": HOUSE,
        "kind": "consumption",
        "step": "day",
        "unit": "kWh",
        "points": [
            {
                "date": "2026-03-28",
                "start": "2026-03-28T00:00:00+01:00",
                "end": "2026-03-29T00:00:00+01:00",
                "value": 12.345,
            },
            {
                "date": "2026-03-29",
                "start": "2026-03-29T00:00:00+01:00",
                "end": "2026-03-30T00:00:00+02:00",
                "value": 9.001,
            },
            {
                "date": "2026-03-31",
                "start": "2026-03-31T00:00:00+02:00",
                "end": "2026-04-01T00:00:00+02:00",
                "value": 0.1001,
            },
        ],
        "missing": ["2026-03-30"],
    }
    assert missing_days(r, src) == [date(2026, 3, 30)]


def test_read_month_sums_days_within_range() -> None:
    daily = {
        (HOUSE, Kind.PRODUCTION, date(2026, 1, 1) + timedelta(days=i)): 1000.5 for i in range(59)
    }  # all of January and February
    del daily[(HOUSE, Kind.PRODUCTION, date(2026, 2, 10))]
    src = MemorySource(daily=daily)
    r = req(Kind.PRODUCTION, Step.MONTH, "2026-01-01", "2026-03-15")
    data = build_read_data(r, src)
    assert data["unit"] == "kWh"
    assert data["points"] == [
        {
            "month": "2026-01",
            "start": "2026-01-01T00:00:00+01:00",
            "end": "2026-02-01T00:00:00+01:00",
            "value": 31.0155,
            "days": 31,
            "complete": True,
        },
        {
            "month": "2026-02",
            "start": "2026-02-01T00:00:00+01:00",
            "end": "2026-03-01T00:00:00+01:00",
            "value": 27.0135,
            "days": 27,
            "complete": False,
        },
        {
            "month": "2026-03",
            "start": "2026-03-01T00:00:00+01:00",
            "end": "2026-03-15T00:00:00+01:00",
            "value": 0.0,
            "days": 0,
            "complete": False,
        },
    ]
    assert data["missing"] == ["2026-02-10"] + [f"2026-03-{d:02d}" for d in range(1, 15)]
    # a range starting mid-month: the month point covers only the days in range
    r2 = req(Kind.PRODUCTION, Step.MONTH, "2026-01-20", "2026-02-01")
    assert build_read_data(r2, src)["points"] == [
        {
            "month": "2026-01",
            "start": "2026-01-20T00:00:00+01:00",
            "end": "2026-02-01T00:00:00+01:00",
            "value": 12.006,
            "days": 12,
            "complete": False,
        },
    ]


def test_read_month_across_year_end() -> None:
    src = MemorySource(
        daily={
            (HOUSE, Kind.CONSUMPTION, date(2025, 12, 31)): 1.0,
            (HOUSE, Kind.CONSUMPTION, date(2026, 1, 1)): 2.0,
        }
    )
    points = build_read_data(req(Kind.CONSUMPTION, Step.MONTH, "2025-12-31", "2026-01-02"), src)[
        "points"
    ]
    assert [(p["month"], p["value"], p["days"]) for p in points] == [
        ("2025-12", 0.001, 1),
        ("2026-01", 0.002, 1),
    ]


def test_read_hour_dst_days() -> None:
    spring, autumn, plain = date(2026, 3, 29), date(2026, 10, 25), date(2026, 10, 26)
    src = MemorySource(
        curves={
            (HOUSE, Kind.CONSUMPTION, spring): HourlyDay(spring, hours_of(spring, 250.0), True),
            (HOUSE, Kind.CONSUMPTION, autumn): HourlyDay(autumn, hours_of(autumn, 1234.5), True),
            (HOUSE, Kind.CONSUMPTION, plain): HourlyDay(plain, hours_of(plain, 1.0)[:20], False),
        }
    )
    spring_data = build_read_data(req(Kind.CONSUMPTION, Step.HOUR, "2026-03-29", "2026-03-30"), src)
    pts = spring_data["points"]
    assert len(pts) == 23
    assert pts[1] == {
        "start": "2026-03-29T01:00:00+01:00",
        "end": "2026-03-29T03:00:00+02:00",
        "value": 0.25,
    }
    assert pts[-1]["end"] == "2026-03-30T00:00:00+02:00"
    assert spring_data["missing"] == []

    r = req(Kind.CONSUMPTION, Step.HOUR, "2026-10-24", "2026-10-27")
    data = build_read_data(r, src)
    pts = data["points"]
    assert len(pts) == 25 + 20
    autumn_pts = pts[:25]
    assert len({p["start"] for p in autumn_pts}) == 25
    assert [p["start"] for p in autumn_pts[1:5]] == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert all(p["value"] == 1.2345 for p in autumn_pts)
    assert pts[25] == {
        "start": "2026-10-26T00:00:00+01:00",
        "end": "2026-10-26T01:00:00+01:00",
        "value": 0.001,
    }
    # absent day and incomplete day are both missing
    assert data["missing"] == ["2026-10-24", "2026-10-26"]
    assert missing_days(r, src) == [date(2026, 10, 24), date(2026, 10, 26)]


def test_read_max_power() -> None:
    at = datetime(2026, 11, 28, 11, 6, 20, tzinfo=UTC)
    src = MemorySource(
        peaks={
            (SOLAR, date(2026, 11, 28)): (4638.0, at),
            (SOLAR, date(2026, 11, 26)): (512.5, at - timedelta(days=2)),
        }
    )
    r = req(Kind.MAX_POWER, Step.DAY, "2026-11-26", "2026-11-29", pdl=SOLAR)
    assert build_read_data(r, src) == {
        "pdl": SOLAR,
        "kind": "max_power",
        "step": "day",
        "unit": "VA",
        "points": [
            {
                "date": "2026-11-26",
                "start": "2026-11-26T00:00:00+01:00",
                "end": "2026-11-27T00:00:00+01:00",
                "value": 512.5,
                "time": "2026-11-26T12:06:20+01:00",
            },
            {
                "date": "2026-11-28",
                "start": "2026-11-28T00:00:00+01:00",
                "end": "2026-11-29T00:00:00+01:00",
                "value": 4638,
                "time": "2026-11-28T12:06:20+01:00",
            },
        ],
        "missing": ["2026-11-27"],
    }
    assert missing_days(r, src) == [date(2026, 11, 27)]


def test_read_with_budget_message() -> None:
    r = req(Kind.CONSUMPTION, Step.DAY, "2026-11-01", "2026-11-03")
    retry = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    msg = read_message_when_budget_exhausted(missing_days(r, MemorySource()), retry)
    assert msg == (
        "2 days not fetched (2026-11-01, 2026-11-02): the upstream request budget "
        "is used up; it allows them from 2026-11-29T14:00:00+01:00; ask again then"
    )
    data = build_read_data(r, MemorySource(), message=msg)
    assert data["message"] == msg
    assert data["missing"] == ["2026-11-01", "2026-11-02"]
    many = [date(2026, 10, 1) + timedelta(days=i) for i in range(31)]
    assert read_message_when_budget_exhausted(many, retry) == (
        "31 days not fetched (2026-10-01 to 2026-10-31): the upstream request budget is used "
        "up; it allows them from 2026-11-29T14:00:00+01:00; ask again then"
    )
    assert read_message_when_budget_exhausted([date(2026, 10, 1)], retry).startswith(
        "1 day not fetched (2026-10-01)"
    )


# ---------------------------------------------------------------------------- fuzz

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "pdl": st.sampled_from([HOUSE, SOLAR, "99999999999999", "123"]) | JSON,
        "kind": st.sampled_from(["consumption", "production", "max_power"]) | JSON,
        "step": st.sampled_from(["day", "month", "hour"]) | JSON,
        "start": st.dates().map(date.isoformat) | JSON,
        "end": st.dates().map(date.isoformat) | JSON,
        "transaction": JSON,
    },
)
COMMAND = st.sampled_from(["read", "refresh", "info"]) | st.text(max_size=30)


def check_outcome(command: str, got: object) -> None:
    assert isinstance(got, ReadRequest | RefreshRequest | InfoRequest | Rejection)
    if isinstance(got, Rejection):
        assert got.command == command
        raw = encode(rejection_answer(got))
    else:
        raw = encode(ok({}, got.transaction))
    json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    if isinstance(got, ReadRequest):
        assert got.pdl in PDLS
        assert got.start < got.end <= TODAY


@settings(max_examples=1000, deadline=None)
@given(COMMAND, st.binary(max_size=300))
def test_fuzz_bytes(command: str, payload: bytes) -> None:
    check_outcome(command, parse_request(command, payload, pdls=PDLS, today=TODAY))


@settings(max_examples=1000, deadline=None)
@given(COMMAND, st.dictionaries(st.text(max_size=10), JSON, max_size=6) | FIELDS)
def test_fuzz_objects(command: str, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    check_outcome(command, parse_request(command, raw, pdls=PDLS, today=TODAY))


# ---------------------------------------------------------------------------- cheap transaction

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(transaction=_JSONISH, others=st.dictionaries(
    st.text(max_size=6).filter(lambda k: k != "transaction"), _JSONISH, max_size=4),
    first=st.booleans(), pad=st.integers(0, 200_000))
def test_transaction_hint_finds_a_first_or_last_transaction(
        transaction: object, others: dict[str, object], first: bool, pad: int) -> None:
    from linky2mqtt.commands import transaction_hint

    body = {"pad": "x" * pad, **others}
    doc = {"transaction": transaction, **body} if first else {**body, "transaction": transaction}
    raw = json.dumps(doc).encode()
    assert transaction_hint(raw) == transaction


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=6000))
def test_transaction_hint_never_raises_and_reads_only_the_ends(raw: bytes) -> None:
    from linky2mqtt.commands import transaction_hint

    got = transaction_hint(raw)
    # a transaction in the middle of a large payload is not searched for
    middle = b'{"a": "' + b"y" * 5000 + b'", "transaction": 7, "b": "' + b"z" * 5000 + b'"}'
    assert transaction_hint(middle) is NO_TRANSACTION
    assert got is NO_TRANSACTION or json.dumps(got)
