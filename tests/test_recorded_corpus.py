"""Every recorded upstream answer (tests/fixtures/recorded/) through the real client path.

Each answer of ``INDEX.json`` is served by an httpx MockTransport with its recorded
status, content type and bytes, to a real :class:`EnedisClient` of every provider the
index lists for it. What the client returns is checked against the facts of the index:
interval count, first and last stamp, energy in Wh, days missing, contract fields, or the
error class, code, message, whether it is retried and when to come back. Those facts were
computed from the raw files by hand and by a few independent lines, never by the parser.
Where one source recorded a meter's curve and its daily values for the same days, the
hours built from the curve must sum to the recorded daily values.

The last test prints ``recorded corpus: N answers, M exact`` (visible with ``-q``).
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from linky2mqtt.enedis import (
    Budget,
    EnedisClient,
    FetchResult,
    MemoryLedger,
    ProviderSettings,
    RetryPolicy,
    default_windows,
    errors,
    is_transient,
    no_sleep,
    subscribed_kva,
)
from linky2mqtt.model import PARIS, Kind, aggregate_hours
from tests.support.clock import SteppedClock

HERE = Path(__file__).parent / "fixtures" / "recorded"
INDEX: dict[str, Any] = json.loads((HERE / "INDEX.json").read_text("utf-8"))
ANSWERS: list[dict[str, Any]] = INDEX["answers"]
BY_ID = {a["id"]: a for a in ANSWERS}
PDL = "12345678901234"
ATTEMPTS = 4
KINDS = {"consumption": Kind.CONSUMPTION, "production": Kind.PRODUCTION,
         "max_power": Kind.MAX_POWER}


def _jwt(sub: list[str]) -> str:
    def part(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': sub})}.c2ln"


@dataclass
class Served:
    answer: dict[str, Any]
    data_requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/v3/token":
            return httpx.Response(200, json={"access_token": "at", "token_type": "Bearer",
                                             "expires_in": "12600"})
        self.data_requests.append(request)
        body = (HERE / self.answer["file"]).read_bytes()
        ctype = self.answer.get("content_type", "application/json")
        return httpx.Response(self.answer["status"], content=body,
                              headers={"Content-Type": f"{ctype}; charset=utf-8"})


def _client(answer: dict[str, Any], provider: str) -> tuple[EnedisClient, Served]:
    clock = SteppedClock(datetime.fromisoformat(answer.get("clock", INDEX["default_clock"])))
    served = Served(answer)
    settings = ProviderSettings(
        provider=provider,
        token=_jwt([PDL]) if provider == "conso" else "med-token",
        client_id="app" if provider == "dataconnect" else None,
        client_secret="app-secret" if provider == "dataconnect" else None,
        base_url="http://upstream.test",
    )
    client = EnedisClient(
        settings,
        budget=Budget(default_windows(provider), MemoryLedger(), clock),
        retry=RetryPolicy(attempts=ATTEMPTS, sleep=no_sleep),
        http=httpx.Client(transport=httpx.MockTransport(served)),
        clock=clock,
    )
    return client, served


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _local(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")


def _fetch(client: EnedisClient, request: dict[str, Any]) -> FetchResult:
    start, end = _day(request["start"]), _day(request["end"])
    kind = KINDS[request["kind"]]
    if request["call"] == "curve":
        return client.curve(PDL, kind, start, end)
    return client.daily(PDL, kind, start, end)


def _check_data(answer: dict[str, Any], result: FetchResult) -> None:
    facts, request = answer["facts"], answer["request"]
    readings = sorted(result.readings, key=lambda r: r.start)
    assert len(readings) == facts["intervals"]
    if request["call"] == "max_power":
        got = {r.local_date.isoformat(): r.value for r in readings}
        assert got == {d: float(v) for d, v in facts["per_day_va"].items()}
        peaks = {r.local_date.isoformat(): _local(r.peak_at) for r in readings if r.peak_at}
        assert peaks == facts["peak_at_local"]
        return
    assert sum(r.value for r in readings) == pytest.approx(facts["energy_wh"], abs=1e-6)
    per_day: dict[str, float] = defaultdict(float)
    for r in readings:
        per_day[r.local_date.isoformat()] += r.value
    for day, wh in facts.get("per_day_wh", {}).items():
        assert per_day[day] == pytest.approx(wh, abs=1e-6), day
    if request["call"] == "curve":
        minutes = int(facts["step"][2:-1])
        assert {r.resolution for r in readings} == {facts["step"]}
        assert _local(readings[0].start + timedelta(minutes=minutes)) == facts["first_stamp"]
        assert _local(readings[-1].start + timedelta(minutes=minutes)) == facts["last_stamp"]
        if facts.get("complete_day") is False:
            day = readings[0].local_date
            assert not aggregate_hours(readings, day).complete
    else:
        assert readings[0].local_date.isoformat() == facts["first_stamp"]
        assert readings[-1].local_date.isoformat() == facts["last_stamp"]
    missing = [d.isoformat() for d in result.missing]
    assert missing == facts.get("missing_days", [])


def _check_contract(answer: dict[str, Any], client: EnedisClient) -> None:
    facts = answer["facts"]
    contract = client.contract(PDL)
    assert contract is not None
    assert len(contract.entries) == facts["contracts"]
    assert subscribed_kva(contract) == facts["subscribed_kva"]
    main = contract.main
    assert (main.segment, main.tariff, main.offpeak_hours, main.start) == (
        facts["segment"], facts["tariff"], facts["offpeak_hours"], facts["contract_start"])
    producer = contract.producer
    assert (producer.segment if producer else None) == facts["producer_segment"]
    if producer is not None:
        assert producer.subscribed_kva is None
        assert producer.contract_type == facts["producer_contract_type"]
    # personal blocks never leave the client
    text = json.dumps(contract.raw, ensure_ascii=False)
    assert '"person"' not in text and '"contact_data"' not in text


def _check_error(answer: dict[str, Any], client: EnedisClient, served: Served) -> None:
    facts = answer["facts"]
    if facts.get("outcome") == "missing":
        result = _fetch(client, answer["request"])
        assert result.readings == []
        assert [d.isoformat() for d in result.missing] == facts["missing_days"]
        assert len(served.data_requests) == 1  # a gap is not retried
        return
    with pytest.raises(errors.EnedisError) as info:
        _fetch(client, answer["request"])
    exc = info.value
    assert type(exc).__name__ == facts["error_class"]
    assert exc.status == answer["status"]
    assert exc.code == facts["code"]
    assert exc.message == facts["message"].strip()
    assert is_transient(exc) is facts["retried"]
    assert "\\u00" not in str(exc)  # real UTF-8, never JSON escapes
    if "retry_after_s" in facts:
        assert isinstance(exc, errors.ApiError)
        assert exc.retry_after == facts["retry_after_s"]
    if not facts["retried"]:
        assert len(served.data_requests) == facts.get("data_requests", 1)
    elif facts.get("retry_after_s") is None:
        assert len(served.data_requests) == ATTEMPTS


def run_case(answer: dict[str, Any], provider: str) -> None:
    client, served = _client(answer, provider)
    with client:
        call = answer["request"]["call"]
        if answer["status"] >= 400:
            _check_error(answer, client, served)
        elif call == "contract":
            _check_contract(answer, client)
        else:
            _check_data(answer, _fetch(client, answer["request"]))


CASES = [(a["id"], p) for a in ANSWERS for p in a["providers"]]


@pytest.mark.parametrize(("answer_id", "provider"), CASES, ids=[f"{a}-{p}" for a, p in CASES])
def test_recorded_answer(answer_id: str, provider: str) -> None:
    run_case(BY_ID[answer_id], provider)


def test_index_is_whole_and_honest() -> None:
    files = {p.name for p in HERE.iterdir() if p.name != "INDEX.json"}
    assert files == {a["file"] for a in ANSWERS}, "every file has one index line, and back"
    for a in ANSWERS:
        assert a["recording"] in {"verbatim", "pasted", "excerpt", "reconstructed"}
        src = a["source"]
        if src["kind"] == "repository":
            assert src["repository"] and src["path"] and len(src["commit"]) == 40
        else:
            assert src["url"].startswith("https://github.com/")
        assert a["api"] and a["endpoint"] and a["providers"]
    assert len(ANSWERS) >= 25


def test_hours_sum_to_the_recorded_daily_values() -> None:
    """Curve and daily values recorded by one source for the same meter and days: the
    hours built from the parsed curve sum to the daily value (as written in the index)."""
    twins = [a for a in ANSWERS if a["facts"].get("daily_twin")]
    assert len(twins) >= 3
    for curve in twins:
        daily = BY_ID[curve["facts"]["daily_twin"]]
        client, _ = _client(curve, curve["providers"][0])
        with client:
            result = _fetch(client, curve["request"])
        for day_text in curve["facts"]["per_day_wh"]:
            day = _day(day_text)
            hours = aggregate_hours(result.readings, day)
            assert hours.complete and len(hours.hours) == 24
            assert sum(h.wh for h in hours.hours) == pytest.approx(
                daily["facts"]["per_day_wh"][day_text], abs=1e-6)


def _outcomes() -> dict[str, bool]:
    exact: dict[str, bool] = {}
    for answer_id, provider in CASES:
        try:
            run_case(BY_ID[answer_id], provider)
            ok = True
        except AssertionError:
            ok = False
        exact[answer_id] = exact.get(answer_id, True) and ok
    return exact


def test_corpus_summary(capsys: pytest.CaptureFixture[str]) -> None:
    exact = _outcomes()
    line = f"recorded corpus: {len(exact)} answers, {sum(exact.values())} exact"
    with capsys.disabled():
        print(f"\n{line}")
    wrong = sorted(a for a, ok in exact.items() if not ok)
    assert not wrong, f"{line}; not exact: {', '.join(wrong)}"


