"""Tempo clients: over httpx MockTransport with the documented bodies (tests/fixtures/tempo,
provenance in its README), and over real HTTP against the simulator's Tempo stand-in."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from linky2mqtt.clock import FastClock
from linky2mqtt.simulator.server import ServerThread
from linky2mqtt.simulator.server import serve_tempo as serve
from linky2mqtt.simulator.tempo import TempoStandIn, colour_of
from linky2mqtt.tariffs import PARIS, Colour
from linky2mqtt.tempo import (
    COMMUNITY,
    RTE,
    RTE_CALENDAR_PATH,
    CommunityTempo,
    RteTempo,
    TempoApiError,
    TempoAuthError,
    TempoBadResponse,
    TempoDay,
    TempoSources,
    TempoTimeout,
    TempoTransportError,
    season_of,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tempo"
SECRET = "s3cr3t-value-never-shown"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- RTE, mocked


def rte_handler(seen: list[httpx.Request], calendar: Any = None,
                token: str = "tok-1") -> Callable[[httpx.Request], httpx.Response]:
    tokens = iter([token, "tok-2", "tok-3"])

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token/oauth/":
            return httpx.Response(200, json={**fixture("rte_token.json"),
                                             "access_token": next(tokens)})
        assert request.url.path == RTE_CALENDAR_PATH
        return httpx.Response(200, json=calendar or fixture("rte_calendar.json"))
    return handle


def test_rte_token_then_calendar_with_paris_offsets() -> None:
    seen: list[httpx.Request] = []
    with mock_client(rte_handler(seen)) as http:
        days = RteTempo(http, "my-id", SECRET).days(date(2021, 12, 31), date(2023, 3, 3))
    token_req, calendar_req, second_req = seen  # 428 days: two calls of at most 366
    assert token_req.method == "POST"
    assert token_req.headers["authorization"] == "Basic " + base64.b64encode(
        f"my-id:{SECRET}".encode()).decode()
    assert parse_qs(token_req.content.decode()) == {"grant_type": ["client_credentials"]}
    assert calendar_req.headers["authorization"] == "Bearer tok-1"
    assert calendar_req.url.params["start_date"] == "2021-12-31T00:00:00+01:00"
    assert calendar_req.url.params["end_date"] == "2023-01-01T00:00:00+01:00"
    assert second_req.url.params["start_date"] == "2023-01-01T00:00:00+01:00"
    assert second_req.url.params["end_date"] == "2023-03-03T00:00:00+01:00"
    assert second_req.headers["authorization"] == "Bearer tok-1"  # the token is reused
    assert days == {
        date(2023, 3, 2): TempoDay(date(2023, 3, 2), Colour.RED, RTE,
                                   datetime.fromisoformat("2023-03-01T10:20:00+01:00")),
        # the day RTE left without a value stays unknown (never blue)
        date(2022, 12, 28): TempoDay(date(2022, 12, 28), None, RTE,
                                     datetime.fromisoformat("2022-12-27T10:20:00+01:00")),
        date(2022, 1, 1): TempoDay(date(2022, 1, 1), Colour.BLUE, RTE,
                                   datetime.fromisoformat("2021-12-31T10:20:00+01:00")),
    }


def test_rte_summer_offset_and_token_reuse_then_renewal() -> None:
    seen: list[httpx.Request] = []
    clock = FakeClock()
    with mock_client(rte_handler(seen)) as http:
        rte = RteTempo(http, "id", SECRET, clock=clock)
        rte.days(date(2026, 7, 1), date(2026, 7, 3))
        rte.days(date(2026, 7, 1), date(2026, 7, 3))
        clock.now += 7200 - 59  # within the renewal margin
        rte.days(date(2026, 7, 1), date(2026, 7, 3))
    paths = [r.url.path for r in seen]
    assert paths == ["/token/oauth/", RTE_CALENDAR_PATH, RTE_CALENDAR_PATH, "/token/oauth/",
                     RTE_CALENDAR_PATH]
    assert seen[1].url.params["start_date"] == "2026-07-01T00:00:00+02:00"
    assert seen[4].headers["authorization"] == "Bearer tok-2"


def test_rte_renews_a_refused_token_once() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/token/oauth/":
            return httpx.Response(200, json={"access_token": f"t{len(seen)}", "expires_in": 7200})
        if request.headers["authorization"] == "Bearer t1":
            return httpx.Response(401, json={"error": "invalid_token"})
        return httpx.Response(200, json={"tempo_like_calendars": {"values": []}})
    with mock_client(handle) as http:
        assert RteTempo(http, "id", SECRET).days(date(2026, 7, 1), date(2026, 7, 2)) == {}
    assert seen == ["/token/oauth/", RTE_CALENDAR_PATH, "/token/oauth/", RTE_CALENDAR_PATH]


@pytest.mark.parametrize(("answer", "error", "text"), [
    (httpx.Response(401, json={"error": "invalid_client",
                               "error_description": "Client authentication failed"}),
     TempoAuthError, "rte /token/oauth/: 401 invalid_client: Client authentication failed"),
    (httpx.Response(400, json={"error": "invalid_client"}), TempoAuthError,
     "rte /token/oauth/: 400 invalid_client: Bad Request"),
    (httpx.Response(200, text="<html>maintenance</html>",
                    headers={"content-type": "text/html"}),
     TempoBadResponse, "rte /token/oauth/: 200: the body is not JSON (text/html, 24 bytes)"),
    (httpx.Response(200, json={"token_type": "Bearer"}), TempoBadResponse,
     "rte /token/oauth/: 200: the token answer has no access_token/expires_in"),
])
def test_rte_token_failures_never_show_the_secret(answer: httpx.Response,
                                                  error: type[Exception], text: str) -> None:
    with mock_client(lambda _: answer) as http, pytest.raises(error) as err:
        RteTempo(http, "id", SECRET).days(date(2026, 7, 1), date(2026, 7, 2))
    assert str(err.value) == text
    assert SECRET not in repr(err.value) and SECRET not in str(err.value.__dict__)


@pytest.mark.parametrize(("failure", "error", "text"), [
    (httpx.ReadTimeout("timed out"), TempoTimeout, "rte " + RTE_CALENDAR_PATH +
     ": no answer in time (ReadTimeout)"),
    (httpx.ConnectError("refused"), TempoTransportError, "rte " + RTE_CALENDAR_PATH +
     ": no answer (ConnectError)"),
    (httpx.Response(500, json={"error": "TMPLIKSUPPCON_TEMPOLIKECALENDARS_F05",
                               "error_description": "Internal error"}), TempoApiError,
     "rte " + RTE_CALENDAR_PATH + ": 500 TMPLIKSUPPCON_TEMPOLIKECALENDARS_F05: Internal error"),
    (httpx.Response(200, json={"tempo_like_calendars": {}}), TempoBadResponse,
     "rte " + RTE_CALENDAR_PATH + ": no tempo_like_calendars.values list"),
])
def test_rte_calendar_failures_map_to_the_tree(failure: Exception | httpx.Response,
                                               error: type[Exception], text: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token/oauth/":
            return httpx.Response(200, json=fixture("rte_token.json"))
        if isinstance(failure, Exception):
            raise failure
        return failure
    with mock_client(handle) as http, pytest.raises(error) as err:
        RteTempo(http, "id", SECRET).days(date(2026, 7, 1), date(2026, 7, 2))
    assert str(err.value) == text
    assert "REDACTED-EXAMPLE-TOKEN" not in str(err.value)


def test_rte_accepts_the_documented_list_shape() -> None:
    body = {"tempo_like_calendars": [fixture("rte_calendar.json")["tempo_like_calendars"]]}
    with mock_client(rte_handler([], calendar=body)) as http:
        rte = RteTempo(http, "id", SECRET)
        assert rte.days(date(2023, 3, 2), date(2023, 3, 3))[date(2023, 3, 2)].colour is Colour.RED


# ----------------------------------------------------------------------------- community, mocked


def test_community_day_shapes() -> None:
    answers = {"/api/jourTempo/2026-03-27": httpx.Response(200, json=fixture(
        "community_day_red.json")),
        "/api/jourTempo/2025-02-09": httpx.Response(200, json=fixture(
            "community_day_unknown.json")),
        "/api/jourTempo/2019-01-01": httpx.Response(404, json=fixture(
            "community_not_found.json")),
        "/api/jourTempo/2026-03-28": httpx.Response(200, json=fixture(
            "community_day_red.json"))}
    with mock_client(lambda r: answers[r.url.path]) as http:
        community = CommunityTempo(http)
        assert community.day(date(2026, 3, 27)) == TempoDay(date(2026, 3, 27), Colour.RED,
                                                            COMMUNITY)
        assert community.day(date(2025, 2, 9)).colour is None  # codeJour 0: never blue
        assert community.day(date(2019, 1, 1)).colour is None
        with pytest.raises(TempoBadResponse, match="asked 2026-03-28, answered 2026-03-27"):
            community.day(date(2026, 3, 28))


def test_community_season_and_a_range() -> None:
    seen: list[httpx.Request] = []
    rows = [{"dateJour": "2026-01-05", "codeJour": 3, "periode": "2025-2026"},
            {"dateJour": "2026-01-06", "codeJour": 2, "periode": "2025-2026"},
            {"dateJour": "2026-01-07", "codeJour": 9, "periode": "2025-2026"},
            {"dateJour": "2026-01-08", "codeJour": 1, "periode": "2025-2026"}]

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=rows)
    with mock_client(handle) as http:
        days = CommunityTempo(http).days(date(2026, 1, 5), date(2026, 1, 8))
    assert seen[0].url.params["periode"] == "2025-2026"
    assert {d: v.colour for d, v in days.items()} == {
        date(2026, 1, 5): Colour.RED, date(2026, 1, 6): Colour.WHITE, date(2026, 1, 7): None}
    assert season_of(date(2026, 8, 31)) == "2025-2026" and season_of(date(2026, 9, 1)) == \
        "2026-2027"


def test_sources_fall_back_for_failures_and_unknown_days() -> None:
    def rte_down(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    def community(request: httpx.Request) -> httpx.Response:
        day = request.url.path.rsplit("/", 1)[1]
        return httpx.Response(200, json={"dateJour": day, "codeJour": 3, "periode": "x"})
    with mock_client(rte_down) as a, mock_client(community) as b:
        sources = TempoSources([RteTempo(a, "id", SECRET), CommunityTempo(b)])
        days = sources.days(date(2026, 12, 1), date(2026, 12, 2))
        assert days == {date(2026, 12, 1): TempoDay(date(2026, 12, 1), Colour.RED, COMMUNITY)}
        assert [type(e) for e in sources.failures] == [TempoTimeout]
    with mock_client(rte_down) as a, mock_client(rte_down) as b, pytest.raises(TempoTimeout):
        TempoSources([RteTempo(a, "id", SECRET), CommunityTempo(b)]).days(
            date(2026, 12, 1), date(2026, 12, 2))


# ----------------------------------------------------------------------------- real HTTP


@pytest.fixture
def stand_in() -> Iterator[tuple[TempoStandIn, str]]:
    # 2026-12-01 09:00 Paris: tomorrow is not published yet (10:30)
    clock = FastClock(datetime(2026, 12, 1, 9, 0, tzinfo=PARIS))
    tempo = TempoStandIn(clock)
    server: ServerThread = serve(tempo)
    try:
        yield tempo, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_rte_over_http_against_the_stand_in(stand_in: tuple[TempoStandIn, str]) -> None:
    tempo, url = stand_in
    tempo.set_colour(date(2026, 11, 30), Colour.RED)
    tempo.unknown(date(2026, 11, 29), "rte")
    with httpx.Client(timeout=5) as http:
        rte = RteTempo(http, "sim-client", "sim-secret", base_url=url)
        days = rte.days(date(2026, 11, 27), date(2026, 12, 3))
    assert days[date(2026, 11, 30)].colour is Colour.RED
    assert days[date(2026, 11, 29)].colour is None  # published without a value
    assert days[date(2026, 11, 28)].colour is colour_of(date(2026, 11, 28))
    assert date(2026, 12, 2) not in days  # tomorrow: not before 10:30
    assert sorted(days) == [date(2026, 11, 27) + timedelta(days=i) for i in range(5)]
    assert tempo.count("rte", 200) == 2  # one token, one calendar


def test_rte_over_http_refuses_bad_credentials_and_far_ends(
        stand_in: tuple[TempoStandIn, str]) -> None:
    _, url = stand_in
    with httpx.Client(timeout=5) as http:
        with pytest.raises(TempoAuthError) as err:
            RteTempo(http, "sim-client", SECRET, base_url=url).days(date(2026, 11, 1),
                                                                    date(2026, 11, 2))
        assert str(err.value) == ("rte /token/oauth/: 401 invalid_client: "
                                  "Client authentication failed")
        assert SECRET not in repr(err.value)
        with pytest.raises(TempoApiError, match="400 TEMPO_BAD_PERIOD"):
            RteTempo(http, "sim-client", "sim-secret", base_url=url).days(
                date(2026, 12, 1), date(2026, 12, 5))


def test_community_over_http_unknown_and_tomorrow(stand_in: tuple[TempoStandIn, str]) -> None:
    tempo, url = stand_in
    tempo.set_colour(date(2026, 12, 1), Colour.RED)
    tempo.unknown(date(2026, 11, 30), "community")
    with httpx.Client(timeout=5) as http:
        community = CommunityTempo(http, base_url=url)
        assert community.day(date(2026, 12, 1)).colour is Colour.RED
        assert community.day(date(2026, 11, 30)).colour is None
        assert community.day(date(2026, 12, 2)).colour is None  # before 10:30
        raw = http.get(f"{url}/api/jourTempo/tomorrow").json()
        assert raw == {"dateJour": "2026-12-02", "codeJour": 0, "periode": "2026-2027",
                       "libCouleur": "Inconnu"}
        season = community.days(date(2026, 9, 1), date(2026, 12, 3))
    assert len(season) == 30 + 31 + 30 + 2 and season[date(2026, 12, 2)].colour is None
    assert season[date(2026, 12, 1)].colour is Colour.RED


def test_timeouts_and_drops_over_http_then_the_fallback(
        stand_in: tuple[TempoStandIn, str]) -> None:
    tempo, url = stand_in
    tempo.set_colour(date(2026, 11, 30), Colour.WHITE)
    with httpx.Client(timeout=0.5) as http:
        rte = RteTempo(http, "sim-client", "sim-secret", base_url=url)
        tempo.script("rte", ["slow:3"])
        with pytest.raises(TempoTimeout):
            rte.days(date(2026, 11, 30), date(2026, 12, 1))
        tempo.script("rte", ["drop"])
        with pytest.raises(TempoTransportError):
            rte.days(date(2026, 11, 30), date(2026, 12, 1))
        tempo.script("rte", ["slow:3"])
        sources = TempoSources([rte, CommunityTempo(http, base_url=url)])
        days = sources.days(date(2026, 11, 30), date(2026, 12, 1))
    assert days == {date(2026, 11, 30): TempoDay(date(2026, 11, 30), Colour.WHITE, COMMUNITY)}
    assert [type(e) for e in sources.failures] == [TempoTimeout]


def test_stand_in_colours_follow_the_tempo_rules() -> None:
    days = [date(2025, 9, 1) + timedelta(days=i) for i in range(365)]
    colours = {d: colour_of(d) for d in days}
    assert all(d.month in (11, 12, 1, 2, 3) and d.weekday() < 5
               for d, c in colours.items() if c is Colour.RED)
    assert all(d.weekday() != 6 for d, c in colours.items() if c is Colour.WHITE)
    assert 10 <= sum(c is Colour.RED for c in colours.values()) <= 40


def test_the_simulator_serves_tempo_beside_the_enedis_routes() -> None:
    """The simulator's App mounts the stand-in (``App.tempo``): Tempo paths answered by
    it, everything else (``/api/`` is the Conso API) by the App as before."""
    from linky2mqtt.simulator import SimOptions
    from linky2mqtt.simulator.app import App as MountedApp

    clock = FastClock(datetime(2026, 12, 1, 12, 0, tzinfo=PARIS))
    app = MountedApp(SimOptions(clock=clock))
    app.tempo.set_colour(date(2026, 12, 2), Colour.RED)
    server = ServerThread(app, "127.0.0.1", 0)
    server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(timeout=5) as http:
            assert CommunityTempo(http, base_url=url).day(date(2026, 12, 2)).colour is Colour.RED
            rte = RteTempo(http, "sim-client", "sim-secret", base_url=url)
            assert rte.days(date(2026, 12, 2), date(2026, 12, 3))[date(2026, 12, 2)].colour \
                is Colour.RED  # after 10:30: tomorrow is published
            conso = http.get(f"{url}/api/daily_consumption", params={"prm": "12345678901234"})
            assert conso.status_code == 401  # still the Conso API, asking for its token
            # the control endpoint: a day answered unknown, a colour forced
            ok = http.post(f"{url}/_sim/tempo", json={"unknown": ["2026-11-30"],
                                                      "set_colour": {"2026-11-27": "white"}})
            assert ok.status_code == 200
            community = CommunityTempo(http, base_url=url)
            assert community.day(date(2026, 11, 30)).colour is None
            assert community.day(date(2026, 11, 27)).colour is Colour.WHITE
            assert http.post(f"{url}/_sim/tempo", json={"unknown": ["x"]}).status_code == 400
    finally:
        server.stop()
