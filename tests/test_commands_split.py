"""``read`` with ``split`` and ``cost`` (issue 16): what is accepted, what is refused."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from linky2mqtt.commands import MeterView, ReadRequest, Rejection, parse_request

PRICED, PLAIN = "12345678901234", "22516914714270"
PDLS = {PRICED: MeterView(production=True, tariff=True), PLAIN: MeterView()}
TODAY = date(2026, 11, 29)


def _parse(**body: Any) -> ReadRequest | Rejection:
    base = {"pdl": PRICED, "kind": "consumption", "step": "day", "start": "2026-11-01",
            "end": "2026-11-02"}
    got = parse_request("read", json.dumps({**base, **body}).encode(), pdls=PDLS, today=TODAY)
    assert isinstance(got, ReadRequest | Rejection)
    return got


def test_split_and_cost_flags() -> None:
    req = _parse(split=True, cost=True)
    assert isinstance(req, ReadRequest) and (req.split, req.cost) == (True, True)
    req = _parse()
    assert isinstance(req, ReadRequest) and (req.split, req.cost) == (False, False)
    assert isinstance(_parse(step="hour", split=True), ReadRequest)


def test_split_and_cost_refusals() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"split": "yes"}, '"split" must be true or false, got "yes"'),
        ({"pdl": PLAIN, "cost": True},
         f'"cost": meter {PLAIN} has no tariff (set tariffs for it in the configuration)'),
        ({"kind": "production", "split": True},
         '"split" is for consumption only (a tariff prices what is used)'),
        ({"step": "hour", "cost": True},
         '"cost" is given per day or month: use "step": "day" or "month"'),
    ]
    for body, message in cases:
        got = _parse(**body)
        assert isinstance(got, Rejection), body
        assert got.error == message
