"""What error bodies say beyond their status: when to come back, readable text, consent.

* ``retry_after`` (seconds) from every 429 form recorded in public: ``Call threshold allowed
  on 0:-30:-40`` and ``-1:-3:-13`` (Enedis, DomoticzLinky#84/#74: a duration, not a time of
  day), the gateway's ``nextAccessTime`` (Conso API, ha-linky#192, an instant compared with
  the client's injected clock), and a ``Retry-After`` header (seconds or an HTTP date),
  which wins when present;
* a MyElectricalData ``detail`` that is a list reads as text, in real UTF-8;
* ``ADAM-DC-0007`` (400) and ``ADAM-DC-0008`` (403), even inside a MyElectricalData
  ``detail`` text, are consent errors.

Expected values are computed by hand in the comments, never by the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from linky2mqtt.enedis import (
    EnedisClient,
    ProviderSettings,
    errors,
)
from linky2mqtt.enedis.providers import (
    detail_text,
    error_details,
    next_access_epoch,
    retry_hint,
    threshold_seconds,
)
from linky2mqtt.model import Kind
from tests.support.clock import SteppedClock
from tests.support.upstream_client import one_try_client

PDL = "12345678901234"
NOW = datetime(2026, 7, 18, 4, 51, tzinfo=UTC)  # 06:51 in Paris


@pytest.mark.parametrize(("text", "seconds"), [
    ("Quota Q4 reached. Call threshold allowed on 0:-30:-40", 30 * 60 + 40),   # 1840
    ("Quota Q3 reached. Call threshold allowed on -1:-3:-13", 3600 + 180 + 13),  # 3793
    ("Call threshold allowed on 0:00:01", 1),
    ("Call threshold allowed on 1:00:00", 3600),
    ("Call threshold allowed on 12:05:09", 12 * 3600 + 5 * 60 + 9),  # 43509
    ("Quota Q4 reached", None),
    ("allowed on soon", None),
])
def test_threshold_is_a_duration(text: str, seconds: float | None) -> None:
    assert threshold_seconds(text) == seconds


def test_next_access_time_forms() -> None:
    # 2026-07-18 05:00:00 UTC = 1 784 350 800 epoch seconds
    assert next_access_epoch("2026-Jul-18 05:00:00+0000 UTC") == 1_784_350_800.0
    assert next_access_epoch("2026-Jul-18 07:00:00+0200") == 1_784_350_800.0
    assert next_access_epoch("2021-Mar-30 05:51:00+0000 UTC") == datetime(
        2021, 3, 30, 5, 51, tzinfo=UTC).timestamp()
    assert next_access_epoch("2026-Foo-18 05:00:00+0000 UTC") is None
    assert next_access_epoch("tomorrow") is None


def test_retry_hint_from_bodies() -> None:
    now = NOW.timestamp()
    gateway = {"status": 429, "message": "The Enedis API returned an error", "error": {
        "code": "900804", "message": "Message throttled out",
        "description": "You have exceeded your quota .You can access API after "
                       "2026-Jul-18 05:00:00+0000 UTC",
        "nextAccessTime": "2026-Jul-18 05:00:00+0000 UTC"}}
    assert retry_hint(gateway, now) == 9 * 60  # 04:51 UTC -> 05:00 UTC
    assert retry_hint(gateway, now + 3600) == 0.0  # already past: no wait
    enedis = {"error": "429", "error_description": "Quota Q4 reached. "
                                                  "Call threshold allowed on 0:-30:-40"}
    assert retry_hint(enedis, now) == 1840
    fault = {"error": {"fault": {"code": 900807, "message": "Message throttled out",
                                 "description": "You have exceeded your quota"}}}
    assert retry_hint(fault, now) is None
    assert retry_hint(None, now) is None and retry_hint("text", now) is None


def _client(response: httpx.Response) -> EnedisClient:
    clock = SteppedClock(NOW)
    return one_try_client(
        ProviderSettings(provider="myelectricaldata", token="tok", base_url="http://up.test"),
        handler=lambda r: response, clock=clock)


def _error(response: httpx.Response) -> errors.EnedisError:
    with _client(response) as client, pytest.raises(errors.EnedisError) as info:
        client.daily(PDL, Kind.CONSUMPTION, datetime(2026, 7, 10).date(),
                     datetime(2026, 7, 12).date())
    return info.value


@pytest.mark.parametrize(("headers", "body", "expected"), [
    ({}, {"error": "429", "error_description": "Call threshold allowed on -1:-3:-13"}, 3793.0),
    ({"Retry-After": "7"}, {"error_description": "Call threshold allowed on 1:00:00"}, 7.0),
    ({"Retry-After": format_datetime(datetime(2026, 7, 18, 5, 1, tzinfo=UTC), usegmt=True)},
     {}, 600.0),  # 04:51 -> 05:01
    ({}, {"error": {"nextAccessTime": "2026-Jul-18 05:00:00+0000 UTC"}}, 540.0),
    ({}, {"detail": "Quota atteint"}, None),
])
def test_client_sets_retry_after(headers: dict[str, str], body: Any,
                                 expected: float | None) -> None:
    exc = _error(httpx.Response(429, json=body, headers=headers))
    assert isinstance(exc, errors.QuotaError)
    assert exc.retry_after == expected


def test_detail_list_reads_as_text() -> None:
    recorded = [["Erreur lors de la récupération des données d'Enedis, merci de réessayer "
                 "plus tard - ", "Code d'erreur : 500 (cf. F.A.Q pour les codes d'erreurs)"]]
    want = ("Erreur lors de la récupération des données d'Enedis, merci de réessayer plus "
            "tard - Code d'erreur : 500 (cf. F.A.Q pour les codes d'erreurs)")
    assert detail_text(recorded) == want
    assert detail_text(["Première", "étape"]) == "Première étape"
    fastapi = [{"loc": ["path", "pdl"], "msg": "le PDL doit avoir 14 chiffres", "type": "x"},
               {"loc": ["query"], "msg": "date invalide"}]
    assert detail_text(fastapi) == "le PDL doit avoir 14 chiffres; date invalide"
    exc = _error(httpx.Response(500, json={"detail": recorded}))
    assert isinstance(exc, errors.ServerError)
    assert exc.message == want
    assert "\\u00e9" not in str(exc) and "récupération" in str(exc)


def test_med_detail_text_holding_an_enedis_fault() -> None:
    body = {"detail": '{"fault":{"code":900901,"message":"Invalid Credentials",'
                      '"description":"Invalid Credentials. Make sure you have provided the '
                      'correct security credentials"}}'}
    assert error_details(body) == ("900901", "Invalid Credentials")


@pytest.mark.parametrize(("status", "body", "code"), [
    (400, {"status": 400, "message": "The Enedis API returned an error", "error": {
        "error": "ADAM-DC-0007",
        "error_description": "Le client n'est pas titulaire du point demandé."}},
     "ADAM-DC-0007"),
    (400, {"detail": "ADAM-DC-0007: Le client n'est pas titulaire du point demandé."},
     "ADAM-DC-0007"),
    (403, {"detail": "ADAM-DC-0008: No consent can be found"}, "ADAM-DC-0008"),
])
def test_lost_consent_is_a_consent_error(status: int, body: Any, code: str) -> None:
    exc = _error(httpx.Response(status, json=body))
    assert isinstance(exc, errors.ConsentError) and isinstance(exc, errors.AuthError)
    assert exc.code == code and exc.status == status


def test_a_bad_request_stays_a_bad_request() -> None:
    exc = _error(httpx.Response(400, json={"error": "ADAM-ERR0123",
                                           "error_description": "before activation"}))
    assert type(exc) is errors.BadRequest
