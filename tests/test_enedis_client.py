"""EnedisClient over httpx.MockTransport: requests, auth, splitting, errors, retries, budget."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from linky2mqtt import __version__
from linky2mqtt.enedis import (
    Budget,
    EnedisClient,
    MemoryLedger,
    Priority,
    ProviderSettings,
    RetryPolicy,
    Window,
    default_windows,
    errors,
    no_sleep,
)
from linky2mqtt.enedis.wire import HttpxWire, LeanWire
from linky2mqtt.model import Kind
from tests.support.clock import SUITE_CLOCK, SteppedClock
from tests.support.waiting import wait_until

PDL = "12345678901234"
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)  # today in Paris: 2026-11-29
SECRET = "s3cr3t-client-secret-value"
TOKEN_SECRET = "tok-ABCDEFGHIJKLMNOP"
ACCESS = "access-QRSTUVWXYZ123456"


def jwt(sub: Any) -> str:
    def part(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': sub, 'pad': TOKEN_SECRET})}.c2ln"


def daily_body(days: list[str], value: int = 1000) -> dict[str, Any]:
    return {"grandeur": [{"unite": "Wh", "points": [{"v": str(value), "d": d} for d in days]}]}


def curve_body(day: str) -> dict[str, Any]:
    return {
        "grandeur": [{"unite": "W", "points": [{"v": "600", "d": f"{day} 00:30:00", "p": "PT30M"}]}]
    }


Handler = Callable[[httpx.Request], httpx.Response]


class Fake:
    """A recording MockTransport; ``answers`` is a list consumed per request (last repeats)."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler or self.default
        self.answers: list[httpx.Response | Exception] = []
        self.token_answers: list[httpx.Response] = []
        self.tokens_issued = 0

    def default(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/v3/token":
            if self.token_answers:
                return self.token_answers.pop(0)
            self.tokens_issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"{ACCESS}-{self.tokens_issued}",
                    "token_type": "Bearer",
                    "expires_in": "12600",
                },
            )
        if self.answers:
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(answer, Exception):
                raise answer
            return answer
        start = request.url.params.get("dateDebut")
        if start is None:  # myelectricaldata path style
            start = request.url.path.split("/start/")[1][:10]
        if "courbe" in request.url.path or "load_curve" in request.url.path:
            return httpx.Response(200, json=curve_body(start))
        return httpx.Response(200, json=daily_body([start]))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def data_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/oauth2/v3/token"]


def make(
    provider: str = "conso",
    fake: Fake | None = None,
    *,
    budget: Budget | None = None,
    retry: RetryPolicy | None = None,
    clock: SteppedClock | None = None,
) -> tuple[EnedisClient, Fake, SteppedClock]:
    fake = fake or Fake()
    clock = clock or SteppedClock(NOW)
    settings = ProviderSettings(
        provider=provider,
        token=jwt([PDL, "22516914714270"]) if provider == "conso" else TOKEN_SECRET,
        client_id="my-client" if provider == "dataconnect" else None,
        client_secret=SECRET if provider == "dataconnect" else None,
        base_url="http://upstream.test",
        account="home",
    )
    client = EnedisClient(
        settings,
        budget=budget or Budget(default_windows(provider), MemoryLedger(), clock),
        retry=retry or RetryPolicy(attempts=4, sleep=no_sleep),
        http=httpx.Client(transport=httpx.MockTransport(fake)),
        clock=clock,
    )
    return client, fake, clock


# -- requests per provider --------------------------------------------------------------


def test_conso_request_shape() -> None:
    client, fake, _ = make("conso")
    result = client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 3))
    (req,) = fake.requests
    assert req.method == "GET"
    assert str(req.url).startswith("http://upstream.test/api/consommation_quotidienne?")
    assert dict(req.url.params) == {
        "pointId": PDL,
        "dateDebut": "2026-11-01",
        "dateFin": "2026-11-03",
    }
    assert req.headers["Authorization"] == f"Bearer {client.settings.token}"
    assert req.headers["User-Agent"] == (
        f"linky2mqtt/{__version__} (+https://github.com/linky2mqtt/linky2mqtt)"
    )
    assert [(r.local_date, r.value) for r in result.readings] == [(date(2026, 11, 1), 1000.0)]
    assert result.missing == [date(2026, 11, 2)]


@pytest.mark.parametrize(
    ("kind", "series", "path", "extra"),
    [
        (Kind.CONSUMPTION, "daily", "consommation_quotidienne", {}),
        (Kind.PRODUCTION, "daily", "production_quotidienne", {}),
        (
            Kind.MAX_POWER,
            "daily",
            "puissance_conso_max_quotidienne",
            {"mesuresPas": "P1D", "grandeurPhysique": "PMA"},
        ),
        (Kind.CONSUMPTION, "curve", "courbe_de_charge_consommation", {}),
        (Kind.PRODUCTION, "curve", "courbe_de_charge_production", {}),
    ],
)
def test_dataconnect_paths_and_oauth(
    kind: Kind, series: str, path: str, extra: dict[str, str]
) -> None:
    fake = Fake(lambda r: httpx.Response(200, json=daily_body([])))
    base = Fake()
    fake.handler = lambda r: (
        base.default(r)
        if r.url.path.endswith("token")
        else (httpx.Response(200, json={"grandeur": [{"points": []}]}))
    )
    client, fake, _ = make("dataconnect", fake)
    fetch = client.daily if series == "daily" else client.curve
    result = fetch(PDL, kind, date(2026, 11, 1), date(2026, 11, 2))
    token_req, data_req = fake.requests
    assert token_req.method == "POST"
    assert token_req.url.path == "/oauth2/v3/token"
    assert token_req.url.query == b""
    expected_basic = base64.b64encode(f"my-client:{SECRET}".encode()).decode()
    assert token_req.headers["Authorization"] == f"Basic {expected_basic}"
    form = dict(httpx.QueryParams(token_req.content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "my-client",
        "client_secret": SECRET,
    }
    assert data_req.url.path == f"/mesure_synchrone_auto/v2/{path}"
    assert dict(data_req.url.params) == {
        "pointId": PDL,
        "dateDebut": "2026-11-01",
        "dateFin": "2026-11-02",
        **extra,
    }
    assert data_req.headers["Authorization"] == f"Bearer {ACCESS}-1"
    assert result.readings == []
    assert result.missing == [date(2026, 11, 1)]


def test_myelectricaldata_path_style_and_raw_token() -> None:
    fake = Fake(
        lambda r: httpx.Response(
            200,
            json={
                "meter_reading": {
                    "reading_type": {"unit": "W"},
                    "interval_reading": [
                        {"value": "800", "date": "2026-11-01 00:30:00", "interval_length": "PT30M"}
                    ],
                }
            },
        )
    )
    client, fake, _ = make("myelectricaldata", fake)
    result = client.curve(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    (req,) = fake.requests
    assert req.url.path == f"/consumption_load_curve/{PDL}/start/2026-11-01/end/2026-11-02"
    assert req.url.query == b""
    assert req.headers["Authorization"] == TOKEN_SECRET
    assert [(r.start, r.value) for r in result.readings] == [
        (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), 400.0)
    ]


# -- splitting and clamping -------------------------------------------------------------


def test_curve_split_per_7_days_and_daily_per_365() -> None:
    client, fake, _ = make("dataconnect")
    client.curve(PDL, Kind.CONSUMPTION, date(2026, 10, 1), date(2026, 10, 16))
    spans = [(r.url.params["dateDebut"], r.url.params["dateFin"]) for r in fake.data_requests()]
    assert spans == [
        ("2026-10-01", "2026-10-08"),
        ("2026-10-08", "2026-10-15"),
        ("2026-10-15", "2026-10-16"),
    ]
    fake.requests.clear()
    client.daily(PDL, Kind.CONSUMPTION, date(2024, 11, 1), date(2026, 1, 1))
    spans = [(r.url.params["dateDebut"], r.url.params["dateFin"]) for r in fake.data_requests()]
    assert spans == [("2024-11-01", "2025-11-01"), ("2025-11-01", "2026-01-01")]
    assert len([r for r in fake.requests if r.url.path.endswith("token")]) == 0  # cached


def test_never_asks_beyond_today_in_paris() -> None:
    # 23:30 UTC on Nov 29 is already Nov 30 in Paris
    clock = SteppedClock(datetime(2026, 11, 29, 23, 30, tzinfo=UTC))
    client, fake, _ = make("conso", clock=clock)
    client.curve(PDL, Kind.CONSUMPTION, date(2026, 11, 25), date(2026, 12, 10))
    (req,) = fake.requests
    assert (req.url.params["dateDebut"], req.url.params["dateFin"]) == ("2026-11-25", "2026-11-30")
    fake.requests.clear()
    result = client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 30), date(2026, 12, 2))
    assert fake.requests == []
    assert result.readings == [] and result.missing == []


def test_404_no_data_marks_every_day_of_the_chunk_missing() -> None:
    fake = Fake()

    def handler(r: httpx.Request) -> httpx.Response:
        if r.url.params["dateDebut"] == "2026-10-08":
            return httpx.Response(
                404, json={"error": "no_data_found", "error_description": "No data"}
            )
        return httpx.Response(200, json=curve_body(r.url.params["dateDebut"]))

    fake.handler = handler
    client, fake, _ = make("conso", fake)
    result = client.curve(PDL, Kind.CONSUMPTION, date(2026, 10, 1), date(2026, 10, 16))
    assert len(fake.requests) == 3  # a 404 is not retried
    assert [r.local_date for r in result.readings] == [date(2026, 10, 1), date(2026, 10, 15)]
    assert result.missing == [date(2026, 10, d) for d in range(2, 15)]


# -- error table ------------------------------------------------------------------------

ENEDIS = "application/json"


def _enedis(code: str, description: str = "x") -> dict[str, str]:
    """An Enedis error body."""
    return {"error": code, "error_description": description}


Q3 = "Quota Q3 reached"


@pytest.mark.parametrize(("status", "body", "exc", "code", "requests"), [
    (400, _enedis("Invalid_request"), errors.BadRequest, "Invalid_request", 1),
    (400, _enedis("ADAM-ERR0123"), errors.BadRequest, "ADAM-ERR0123", 1),
    (400, _enedis("ADAM-DC-0016"), errors.BadRequest, "ADAM-DC-0016", 1),
    (400, _enedis("ADAM-DC-0015"), errors.BadRequest, "ADAM-DC-0015", 1),
    (400, _enedis("ADAM-ERR0069"), errors.BadRequest, "ADAM-ERR0069", 1),
    (403, _enedis("ADAM-DC-0008", "no consent"), errors.ConsentError, "ADAM-DC-0008", 1),
    (400, _enedis("ADAM-DC-0007", "Le client n'est pas titulaire"), errors.ConsentError,
     "ADAM-DC-0007", 1),
    (401, {"status": 401, "message": "Votre token est invalide"}, errors.AuthError, None, 1),
    # the body says "in one hour": beyond the retry bound, not retried now
    (429, _enedis(Q3, "Call threshold allowed on 1:00:00"), errors.QuotaError, Q3, 1),
    (429, _enedis(Q3, "Call threshold allowed on 0:00:02"), errors.QuotaError, Q3, 4),
    (500, _enedis("technical_error", "Technical error."), errors.ServerError,
     "technical_error", 4),
    (503, None, errors.ServerError, None, 4),
    (502, {"detail": "bad gateway"}, errors.ServerError, None, 4),
    (200, "<html>oops</html>", errors.BadResponse, None, 4),
    (200, {"unexpected": True}, errors.BadResponse, None, 4),
    (409, {"detail": "conflict"}, errors.ApiError, None, 1),
])
def test_error_table(
    status: int, body: Any, exc: type[Exception], code: str | None, requests: int
) -> None:
    if isinstance(body, str):
        answer = httpx.Response(status, text=body, headers={"Content-Type": "text/html"})
    elif body is None:
        answer = httpx.Response(status, text="")
    else:
        answer = httpx.Response(status, json=body)
    fake = Fake()
    fake.answers = [answer]
    client, fake, _ = make("conso", fake)
    with pytest.raises(exc) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    error = info.value
    assert type(error) is exc
    assert len(fake.requests) == requests
    assert isinstance(error, errors.EnedisError)
    assert error.provider == "conso"
    assert error.endpoint == "/api/consommation_quotidienne"
    assert error.status == (None if body == {"unexpected": True} else status)
    assert error.code == code
    assert client.budget.used("conso", 3600) == requests  # every attempt counted


def test_conso_passthrough_of_enedis_error() -> None:
    fake = Fake()
    enedis = {"error": "ADAM-DC-0008", "error_description": "No consent"}
    fake.answers = [
        httpx.Response(
            403,
            json={"status": 403, "message": "The Enedis API returned an error", "error": enedis},
        )
    ]
    client, _, _ = make("conso", fake)
    with pytest.raises(errors.AuthError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert (info.value.code, info.value.message) == ("ADAM-DC-0008", "No consent")
    assert str(info.value) == "conso /api/consommation_quotidienne: 403 ADAM-DC-0008: No consent"


def test_plain_404_is_not_mistaken_for_missing_data() -> None:
    fake = Fake()
    fake.answers = [httpx.Response(404, text="<html>Not Found</html>")]
    client, _, _ = make("conso", fake)
    with pytest.raises(errors.ApiError, match="check base_url") as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert not isinstance(info.value, errors.NoData)


def test_transport_errors_and_timeouts_are_retried() -> None:
    fake = Fake()
    fake.answers = [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=daily_body(["2026-11-01"])),
    ]
    client, fake, _ = make("conso", fake)
    result = client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert len(fake.requests) == 3
    assert result.readings[0].value == 1000.0
    fake.answers = [httpx.ReadTimeout("slow")]
    fake.requests.clear()
    with pytest.raises(errors.Timeout):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert len(fake.requests) == 4
    fake.answers = [httpx.RemoteProtocolError("dropped")]
    with pytest.raises(errors.TransportError, match="no answer"):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))


def test_backoff_exponential_and_retry_after_honoured() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, initial=2, maximum=5, jitter=0, sleep=slept.append)
    fake = Fake()
    fake.answers = [httpx.Response(500, json={"error": "technical_error"})]
    client, _, _ = make("conso", fake, retry=policy)
    with pytest.raises(errors.ServerError):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert slept == [2.0, 4.0, 5.0]
    slept.clear()
    fake.answers = [
        httpx.Response(429, json={"error": "Quota Q3 reached"}, headers={"Retry-After": "7"}),
        httpx.Response(200, json=daily_body(["2026-11-01"])),
    ]
    client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert slept == [7.0]


def test_jitter_is_bounded() -> None:
    policy = RetryPolicy(initial=1, maximum=8, jitter=0.5)
    waits = [policy.backoff(n, None) for n in (1, 2, 3, 4, 5) for _ in range(20)]
    assert all(1 <= w <= 8.5 for w in waits)
    assert len(set(waits)) > 10


def test_the_first_attempt_counts_in_the_total_time_bound() -> None:
    # the first attempt runs before tenacity's loop (a fast path): its duration must
    # still count. It takes 0.6 s; a 1.5 s wait would end at 2.1 s, past the 2 s bound:
    # no second attempt
    calls: list[float] = []

    def slow_then_fails() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(0.6)  # the duration under test (a slow upstream)
        raise errors.ServerError("503", status=503)

    slept: list[float] = []
    policy = RetryPolicy(attempts=4, max_time=2.0, initial=1.5, jitter=0, sleep=slept.append)
    with pytest.raises(errors.ServerError):
        policy.call(slow_then_fails)
    assert len(calls) == 1 and slept == []
    # a fast first attempt leaves room for the wait: tenacity's attempt 1 is that failure,
    # replayed, not run again (2 calls in all: a wait of 1.5 s, then 3 s would cross 2 s)
    def fails() -> None:
        calls.append(time.monotonic())
        raise errors.ServerError("503", status=503)

    calls.clear()
    with pytest.raises(errors.ServerError):
        policy.call(fails)
    assert len(calls) == 2 and slept == [1.5]


def test_total_time_bound_stops_retrying() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=10, max_time=10, sleep=slept.append)
    fake = Fake()
    fake.answers = [
        httpx.Response(429, json={"error": "Quota Q4 reached"}, headers={"Retry-After": "3600"})
    ]
    client, fake, _ = make("conso", fake, retry=policy)
    with pytest.raises(errors.QuotaError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert info.value.retry_after == 3600
    assert len(fake.requests) == 1
    assert slept == []
    slept.clear()
    fake.requests.clear()
    fake.answers = [httpx.Response(503)]
    policy2 = RetryPolicy(attempts=10, max_time=10, initial=3, jitter=0, sleep=slept.append)
    client2, _fake2, _ = make("conso", fake, retry=policy2)
    with pytest.raises(errors.ServerError):
        client2.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert slept == [3.0, 6.0]  # a third wait (12 s) would cross 10 s in total
    assert len(fake.requests) == 3


# -- dataconnect tokens -----------------------------------------------------------------


def test_token_cached_until_shortly_before_expiry() -> None:
    client, fake, clock = make("dataconnect")
    client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    clock.advance(12600 - 61)
    client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert fake.tokens_issued == 1
    clock.advance(2)
    client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert fake.tokens_issued == 2
    assert fake.data_requests()[-1].headers["Authorization"] == f"Bearer {ACCESS}-2"
    # token requests go through the budget too
    assert len(client.budget.ledger.request_times("dataconnect:home", 0)) == 5


@pytest.mark.parametrize("token", ["\u0080", "tok en", "", "a\r\nX-Evil: 1", "é"])
def test_a_token_a_header_cannot_carry_is_a_bad_answer(token: str) -> None:
    # found by tests/test_bad_input.py: an access token "\u0080" reached the request
    # builder and came out as a UnicodeEncodeError, not an Enedis error
    fake = Fake()
    fake.token_answers = [httpx.Response(200, json={"access_token": token, "expires_in": 3600})]
    client, fake, _ = make("dataconnect", fake, retry=RetryPolicy(attempts=1, sleep=no_sleep))
    with pytest.raises(errors.BadResponse, match="access_token a header cannot carry"):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert not fake.data_requests()


def test_401_refreshes_the_token_once_then_gives_up() -> None:
    fake = Fake()
    unauthorized = httpx.Response(401, json={"code": "900901", "message": "Invalid Credentials"})
    fake.answers = [unauthorized, httpx.Response(200, json=daily_body(["2026-11-01"]))]
    client, fake, _ = make("dataconnect", fake)
    result = client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert result.readings[0].value == 1000.0
    assert fake.tokens_issued == 2
    assert [r.headers["Authorization"] for r in fake.data_requests()] == [
        f"Bearer {ACCESS}-1",
        f"Bearer {ACCESS}-2",
    ]
    fake.requests.clear()
    fake.answers = [unauthorized]
    with pytest.raises(errors.AuthError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert info.value.code == "900901"
    assert len(fake.data_requests()) == 2  # one refresh, one retry, then no more
    assert fake.tokens_issued == 3


def test_bad_client_credentials_are_an_auth_error() -> None:
    fake = Fake()
    fake.token_answers = [
        httpx.Response(400, json={"error": "invalid_client", "error_description": "bad"})
    ]
    client, fake, _ = make("dataconnect", fake)
    with pytest.raises(errors.AuthError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert info.value.code == "invalid_client"
    assert info.value.endpoint == "/oauth2/v3/token"
    assert len(fake.requests) == 1


# -- conso token, contract, budget, lifecycle ------------------------------------------


def test_conso_covered_pdls_from_jwt_sub() -> None:
    client, fake, _ = make("conso")
    assert client.covered_pdls() == [PDL, "22516914714270"]
    with pytest.raises(errors.AuthError, match="not covered"):
        client.daily("99999999999999", Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert fake.requests == []
    single = ProviderSettings("conso", token=jwt(PDL))
    assert EnedisClient(single, http=httpx.Client(), clock=SUITE_CLOCK).covered_pdls() == [PDL]
    bad = EnedisClient(ProviderSettings("conso", token="not-a-jwt"), http=httpx.Client(),
                       clock=SUITE_CLOCK)
    with pytest.raises(errors.AuthError, match="not a JWT") as info:
        bad.covered_pdls()
    assert "not-a-jwt" not in str(info.value)
    other, _, _ = make("myelectricaldata")
    assert other.covered_pdls() is None


def test_contract_per_provider() -> None:
    client, fake, _ = make("conso")
    assert client.contract(PDL) is None
    assert fake.requests == []
    fake = Fake(lambda r: httpx.Response(200, json={"usage_point_id": PDL, "kva": 9}))
    client, fake, _ = make("myelectricaldata", fake)
    contract = client.contract(PDL)
    assert contract is not None and contract.raw == {"usage_point_id": PDL, "kva": 9}
    assert fake.requests[0].url.path == f"/contracts/{PDL}"
    fake = Fake()
    fake.answers = [httpx.Response(404, json={"error": "no_data_found"})]
    client, fake, _ = make("dataconnect", fake)
    assert client.contract(PDL) is None
    assert fake.data_requests()[0].url.path == f"/situation_contrat_auto/v1/{PDL}"


def test_budget_exhausted_instead_of_sleeping() -> None:
    clock = SteppedClock(NOW)
    budget = Budget({"conso": [Window(3600, 2)]}, MemoryLedger(), clock)
    fake = Fake()
    fake.answers = [httpx.Response(500, json={"error": "technical_error"})]
    client, fake, _ = make("conso", fake, budget=budget, clock=clock)
    with pytest.raises(errors.BudgetExhausted) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert len(fake.requests) == 2  # the retries stopped at the budget
    assert info.value.retry_at == NOW.timestamp() + 3600
    assert client.next_allowed(PDL, Priority.FRESH) == NOW.timestamp() + 3600


def test_invalid_arguments() -> None:
    client, _, _ = make("conso")
    with pytest.raises(ValueError, match="14 digits"):
        client.daily("123", Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    with pytest.raises(ValueError, match="no load curve"):
        client.curve(PDL, Kind.MAX_POWER, date(2026, 11, 1), date(2026, 11, 2))
    with pytest.raises(ValueError, match="unknown provider"):
        ProviderSettings("enedis")
    with pytest.raises(ValueError, match="client_id and client_secret"):
        ProviderSettings("dataconnect", client_id="x")
    with pytest.raises(ValueError, match="needs a token"):
        ProviderSettings("myelectricaldata")


def test_close_only_what_it_created() -> None:
    injected = httpx.Client()
    client = EnedisClient(ProviderSettings("myelectricaldata", token="t"), http=injected,
                          clock=SUITE_CLOCK)
    client.close()
    assert not injected.is_closed
    injected.close()
    own = EnedisClient(ProviderSettings("myelectricaldata", token="t"), clock=SUITE_CLOCK)
    with own:
        pass
    assert own.http is None  # its own: the lean wire, no httpx client
    assert isinstance(own._wire, LeanWire) and own._wire.closed


def test_a_proxy_in_the_environment_takes_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean wire knows no proxy: with one named in the environment, the client makes
    an httpx.Client (which honours it) and closes it."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    own = EnedisClient(ProviderSettings("myelectricaldata", token="t"), clock=SUITE_CLOCK)
    assert isinstance(own._wire, HttpxWire)
    assert own.http is not None
    with own:
        pass
    assert own.http.is_closed


def test_default_base_urls() -> None:
    assert ProviderSettings("conso", token="t").url == "https://conso.boris.sh"
    assert (
        ProviderSettings("dataconnect", client_id="a", client_secret="b").url
        == "https://gw.ext.prod.api.enedis.fr"
    )
    assert ProviderSettings("myelectricaldata", token="t").url == "https://www.myelectricaldata.fr"
    assert ProviderSettings("conso", token="t", base_url="http://x:1/").url == "http://x:1"


# -- secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["conso", "dataconnect", "myelectricaldata"])
def test_no_secret_in_logs_errors_or_reprs(provider: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = Fake()
    fake.answers = [
        httpx.Response(500, json={"error": "technical_error"}),
        httpx.Response(401, json={"code": "900901", "message": "Invalid Credentials"}),
    ]
    client, fake, _ = make(provider, fake)
    with pytest.raises(errors.AuthError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    secrets = [SECRET, TOKEN_SECRET, ACCESS, str(client.settings.token)]
    texts = [caplog.text, str(info.value), repr(info.value), repr(client.settings), repr(client)]
    assert "500 technical_error" in caplog.text  # the retry was logged
    assert "GET /api/" in caplog.text or "GET /" in caplog.text
    for text in texts:
        for secret in secrets:
            assert secret not in text
    for req in fake.requests:  # and never in a URL
        for secret in secrets:
            assert secret not in str(req.url)


def test_requests_reach_the_upstream_a_whole_window_apart_whatever_the_stall_before_sending(
) -> None:
    # The Conso API allows 1 request a second, counted when a request arrives. The thread
    # stalls 0.3 s between the budget's record and the send of the first request (a loaded
    # machine), then not at all: each request must still arrive a second or more after
    # the previous one.
    clock = SteppedClock(NOW)
    stalls = [0.3, 0.0, 0.2, 0.0]

    class Stalling(Budget):
        def acquire(self, scopes: Iterable[str], priority: Priority = Priority.FRESH) -> float:
            recorded = super().acquire(scopes, priority)
            clock.advance(stalls[len(arrivals)])
            return recorded

    arrivals: list[float] = []
    fake = Fake()
    answer = fake.default

    def arrive(request: httpx.Request) -> httpx.Response:
        arrivals.append(clock.t)
        clock.advance(0.1)  # the upstream's answer time is not charged to the next slot
        return answer(request)

    fake.handler = arrive
    budget = Stalling(default_windows("conso"), MemoryLedger(), clock)
    client, _, _ = make("conso", fake, clock=clock, budget=budget)
    for day in range(1, 5):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, day), date(2026, 11, day + 1))
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(arrivals)]
    assert gaps == [1.0, 1.2, 1.0], gaps  # a stall delays its own request, never the next


def test_exchanges_reuse_one_worker_and_an_abandoned_one_is_replaced() -> None:
    """No thread per request: one worker carries the exchanges one after the other; a
    worker left behind by the deadline does not hold the next exchange, and ends once
    its own exchange is over."""
    release = threading.Event()
    slow = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if slow.is_set():
            release.wait(30)  # bounded: set by the test below
        return fake.default(request)

    fake = Fake(handler)
    client, _, _ = make("conso", fake, retry=RetryPolicy(attempts=1, sleep=no_sleep))
    before = set(threading.enumerate())

    def workers() -> set[threading.Thread]:
        return {t for t in threading.enumerate()
                if t.name == "enedis-conso" and t not in before}

    for day in range(1, 6):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, day), date(2026, 11, day + 1))
    first = workers()
    assert len(first) == 1
    slow.set()
    client.deadline = 0.2
    with pytest.raises(errors.Timeout):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 6), date(2026, 11, 7))
    slow.clear()
    # the stuck worker still holds its exchange: the next one goes to a new worker
    result = client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 7), date(2026, 11, 8))
    assert [r.local_date for r in result.readings] == [date(2026, 11, 7)]
    assert len(workers()) == 2
    release.set()
    wait_until(lambda: len(workers()) == 1, 10, "the abandoned worker ends")
    assert workers().isdisjoint(first)
    client.close()
    wait_until(lambda: not workers(), 10, "close() ends the idle worker")
