"""EnedisClient against the real simulator over HTTP: exact values, DST days, steps, gaps,
the error table (retried or not, requests counted by the simulator), the conso budget."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from linky2mqtt.clock import FastClock
from linky2mqtt.enedis import (
    Budget,
    EnedisClient,
    MemoryLedger,
    Priority,
    ProviderSettings,
    RetryPolicy,
    default_windows,
    errors,
    no_sleep,
    subscribed_kva,
)
from linky2mqtt.model import Kind, aggregate_hours, day_bounds
from linky2mqtt.simulator import Simulator
from tests.support.clock import SUITE_CLOCK, SteppedClock

PROVIDERS = ["conso", "dataconnect", "myelectricaldata"]
SELF = "12655648759651"  # consumes and produces, 30-minute curve
GAPS = "42900589957123"  # gaps every Tuesday and Wednesday
NO_CURVE = "32320647321714"
REVOKED = "26584978546985"
OLD = "11453290002823"  # activated 2019-08-27
CONSUMER = "22516914714270"
STEPS = {10: "11111111111110", 15: "11111111111115", 30: "11111111111120", 60: "11111111111160"}
ALL = [SELF, GAPS, NO_CURVE, REVOKED, OLD, CONSUMER, *STEPS.values()]
MARCH, OCTOBER, NORMAL = date(2026, 3, 29), date(2026, 10, 25), date(2026, 10, 14)

MakeClient = Callable[..., EnedisClient]


@pytest.fixture
def make_client(simulator: Simulator) -> Any:
    made: list[EnedisClient] = []

    def make(provider: str, **kwargs: Any) -> EnedisClient:
        if provider == "dataconnect":
            settings = ProviderSettings(
                provider, client_id="sim-client", client_secret="sim-secret", base_url=simulator.url
            )
        else:
            token = simulator.make_conso_token(ALL) if provider == "conso" else "any-token"
            settings = ProviderSettings(provider, token=token, base_url=simulator.url)
        kwargs.setdefault("retry", RetryPolicy(attempts=4, sleep=no_sleep))
        # the provider's real windows, on a clock whose 1 s waits cost no real time
        kwargs.setdefault("budget", Budget(default_windows(provider), MemoryLedger(),
                                           SteppedClock(datetime(2026, 11, 29, 6, tzinfo=UTC))))
        client = EnedisClient(settings, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def truth_hours(sim: Simulator, pdl: str, kind: Kind, day: date) -> list[tuple[datetime, float]]:
    """(UTC hour start, Wh) of the simulator's ground-truth curve."""
    curve = sim.curve(pdl, kind, day)
    assert curve is not None
    first, _ = day_bounds(day)
    hours: dict[datetime, float] = {}
    for end, watts, minutes in curve:
        start = end - timedelta(minutes=minutes)
        hour = first + timedelta(hours=(start - first) // timedelta(hours=1))
        hours[hour] = hours.get(hour, 0.0) + watts * minutes / 60
    return sorted(hours.items())


# -- values per provider and kind -------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", [Kind.CONSUMPTION, Kind.PRODUCTION])
def test_daily_energy_exact(
    provider: str, kind: Kind, make_client: MakeClient, simulator: Simulator
) -> None:
    client = make_client(provider)
    result = client.daily(SELF, kind, date(2026, 10, 20), date(2026, 10, 28))
    days = [date(2026, 10, 20) + timedelta(days=i) for i in range(8)]
    assert [(r.local_date, r.value) for r in result.readings] == [
        (d, simulator.daily_wh(SELF, kind, d)) for d in days
    ]
    assert result.missing == []
    assert all(r.kind is kind and r.resolution == "P1D" for r in result.readings)
    assert result.readings[5].start == datetime(2026, 10, 24, 22, tzinfo=UTC)  # Oct 25


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_power_exact(provider: str, make_client: MakeClient, simulator: Simulator) -> None:
    client = make_client(provider)
    result = client.daily(SELF, Kind.MAX_POWER, date(2026, 3, 27), date(2026, 3, 31))
    expected = [simulator.max_power(SELF, date(2026, 3, d)) for d in range(27, 31)]
    assert [(r.value, r.peak_at) for r in result.readings] == [
        (float(va), at) for va, at in (e for e in expected if e is not None)
    ]
    assert {r.kind for r in result.readings} == {Kind.MAX_POWER}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", [Kind.CONSUMPTION, Kind.PRODUCTION])
@pytest.mark.parametrize(("day", "hours"), [(MARCH, 23), (OCTOBER, 25), (NORMAL, 24)])
def test_hourly_energy_exact_on_normal_and_dst_days(
    provider: str,
    kind: Kind,
    day: date,
    hours: int,
    make_client: MakeClient,
    simulator: Simulator,
) -> None:
    client = make_client(provider)
    result = client.curve(SELF, kind, day, day + timedelta(days=1))
    assert result.missing == []
    assert len(result.readings) == hours * 2
    hourly = aggregate_hours(result.readings, day)
    assert hourly.complete
    assert len(hourly.hours) == hours
    truth = truth_hours(simulator, SELF, kind, day)
    assert [h.start for h in hourly.hours] == [t for t, _ in truth]
    for hour, (_, wh) in zip(hourly.hours, truth, strict=True):
        assert round(hour.wh) == round(wh)  # to the Wh
        assert hour.wh == pytest.approx(wh, abs=1e-6)
    # the day's energy from the curve matches the daily value to the Wh
    assert round(sum(h.wh for h in hourly.hours)) == simulator.daily_wh(SELF, kind, day)


@pytest.mark.parametrize("minutes", [10, 15, 30, 60])
@pytest.mark.parametrize("provider", ["conso", "myelectricaldata"])
def test_every_step_length_over_a_week_with_both_kinds_of_dst(
    minutes: int, provider: str, make_client: MakeClient, simulator: Simulator
) -> None:
    pdl = STEPS[minutes]
    client = make_client(provider)
    for first in (date(2026, 3, 26), date(2026, 10, 22)):
        result = client.curve(pdl, Kind.CONSUMPTION, first, first + timedelta(days=7))
        assert result.missing == []
        assert {r.resolution for r in result.readings} == {f"PT{minutes}M"}
        for i in range(7):
            day = first + timedelta(days=i)
            hourly = aggregate_hours(result.readings, day)
            truth = truth_hours(simulator, pdl, Kind.CONSUMPTION, day)
            assert hourly.complete
            assert [(h.start, round(h.wh, 6)) for h in hourly.hours] == [
                (t, round(wh, 6)) for t, wh in truth
            ]
            expected = {MARCH: 23, OCTOBER: 25}.get(day, 24)
            assert len(hourly.hours) == expected


class ReshapingTransport(httpx.BaseTransport):
    """Real HTTP to the simulator, then the answer's points shuffled (repeated stamps
    keep their relative order) and, optionally, rewritten in kW/kWh as strings."""

    def __init__(self, kilo: bool, seed: int = 7) -> None:
        self.inner = httpx.HTTPTransport()
        self.kilo = kilo
        self.rng = random.Random(seed)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        if response.status_code != 200 or "grandeur" not in response.text:
            return response
        body = json.loads(response.content)
        for g in body["grandeur"]:
            points = g["points"]
            order = points[:]
            self.rng.shuffle(order)
            groups: dict[str, list[Any]] = {}
            for p in points:
                groups.setdefault(p["d"], []).append(p)
            g["points"] = [groups[p["d"]].pop(0) for p in order]
            if self.kilo:
                g["unite"] = "k" + g["unite"]
                for p in g["points"]:
                    p["v"] = str(int(p["v"]) / 1000)
        return httpx.Response(200, json=body)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("kilo", [False, True])
def test_unsorted_answers_and_kilo_units(
    kilo: bool, make_client: MakeClient, simulator: Simulator
) -> None:
    http = httpx.Client(transport=ReshapingTransport(kilo))
    client = make_client("dataconnect", http=http)
    result = client.curve(SELF, Kind.CONSUMPTION, date(2026, 10, 22), date(2026, 10, 29))
    for i in range(7):
        day = date(2026, 10, 22) + timedelta(days=i)
        hourly = aggregate_hours(result.readings, day)
        truth = truth_hours(simulator, SELF, Kind.CONSUMPTION, day)
        assert [h.start for h in hourly.hours] == [t for t, _ in truth]
        assert [h.wh for h in hourly.hours] == pytest.approx([wh for _, wh in truth], abs=1e-6)
    daily = client.daily(SELF, Kind.CONSUMPTION, date(2026, 10, 22), date(2026, 10, 29))
    assert [r.value for r in daily.readings] == pytest.approx(
        [simulator.daily_wh(SELF, Kind.CONSUMPTION, r.local_date) for r in daily.readings]
    )
    http.close()


# -- gaps, availability, contract ------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_gap_days_are_missing(provider: str, make_client: MakeClient) -> None:
    client = make_client(provider)
    week = (date(2026, 10, 19), date(2026, 10, 26))  # Monday .. Sunday
    gaps = [date(2026, 10, 20), date(2026, 10, 21)]  # Tuesday, Wednesday
    daily = client.daily(GAPS, Kind.CONSUMPTION, *week)
    assert daily.missing == gaps
    assert len(daily.readings) == 5
    curve = client.curve(GAPS, Kind.CONSUMPTION, *week)
    assert curve.missing == gaps
    assert {r.local_date for r in curve.readings} == {
        date(2026, 10, d) for d in (19, 22, 23, 24, 25)
    }


def test_load_curve_not_activated_is_missing_not_an_error(
    make_client: MakeClient, simulator: Simulator
) -> None:
    client = make_client("dataconnect")
    simulator.reset_stats()
    result = client.curve(NO_CURVE, Kind.CONSUMPTION, date(2026, 10, 1), date(2026, 10, 15))
    assert result.readings == []
    assert result.missing == [date(2026, 10, 1) + timedelta(days=i) for i in range(14)]
    assert simulator.count(provider="dataconnect", status=404) == 2  # one per 7-day call
    assert (
        len(client.daily(NO_CURVE, Kind.CONSUMPTION, date(2026, 10, 1), date(2026, 10, 2)).readings)
        == 1
    )


def test_yesterday_before_8_is_missing_and_today_is_never_asked(
    make_simulator: Callable[..., Simulator],
) -> None:
    clock = FastClock(datetime(2026, 11, 29, 6, 0, tzinfo=UTC))  # 07:00 in Paris
    sim = make_simulator(clock=clock)
    settings = ProviderSettings("conso", token=sim.make_conso_token([SELF]), base_url=sim.url)
    with EnedisClient(settings, clock=clock, retry=RetryPolicy(sleep=no_sleep)) as client:
        result = client.daily(SELF, Kind.CONSUMPTION, date(2026, 11, 26), date(2026, 12, 3))
    assert [r.local_date for r in result.readings] == [date(2026, 11, 26), date(2026, 11, 27)]
    assert result.missing == [date(2026, 11, 28)]
    assert sim.count(status=400) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_contract(provider: str, make_client: MakeClient) -> None:
    contract = make_client(provider).contract(CONSUMER)
    if provider == "conso":
        assert contract is None
    else:
        # Data Connect serves the 2026 array, MyElectricalData the v5 customers_upc shape
        assert contract is not None
        assert CONSUMER in json.dumps(contract.raw)
        assert subscribed_kva(contract) in (6.0, 9.0, 12.0)
        assert contract.consumer is not None and contract.consumer.segment == "C5"


def test_conso_token_covers_its_pdls(make_client: MakeClient) -> None:
    assert make_client("conso").covered_pdls() == ALL


# -- the error table over HTTP ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pdl", "kind", "series", "start", "exc", "code"),
    [
        (REVOKED, Kind.CONSUMPTION, "daily", date(2026, 10, 1), errors.AuthError, "ADAM-DC-0008"),
        (CONSUMER, Kind.PRODUCTION, "daily", date(2026, 10, 1), errors.BadRequest, "ADAM-ERR0069"),
        (OLD, Kind.CONSUMPTION, "daily", date(2019, 8, 1), errors.BadRequest, "ADAM-ERR0123"),
        (CONSUMER, Kind.CONSUMPTION, "curve", date(2024, 9, 1), errors.BadRequest, "ADAM-ERR0125"),
    ],
)
@pytest.mark.parametrize("provider", ["conso", "dataconnect"])
def test_refusals_are_not_retried(
    provider: str,
    pdl: str,
    kind: Kind,
    series: str,
    start: date,
    exc: type[errors.ApiError],
    code: str,
    make_client: MakeClient,
    simulator: Simulator,
) -> None:
    client = make_client(provider)
    simulator.reset_stats()
    fetch = client.daily if series == "daily" else client.curve
    with pytest.raises(exc) as info:
        fetch(pdl, kind, start, start + timedelta(days=2))
    assert info.value.code == code
    assert info.value.provider == provider
    assert simulator.count(provider=provider, pdl=pdl) == 1


@pytest.mark.parametrize(
    ("faults", "outcome", "requests"),
    [
        (["500", "500"], None, 3),
        (["503", "429", "drop"], None, 4),
        (["badjson", "html"], None, 3),
        (["html:502"], None, 2),
        (["500"] * 4, errors.ServerError, 4),
        (["503"] * 4, errors.ServerError, 4),
        (["429"] * 4, errors.QuotaError, 4),
        (["drop"] * 4, errors.TransportError, 4),
        (["badjson"] * 4, errors.BadResponse, 4),
        (["html"] * 4, errors.BadResponse, 4),
        (["403"], errors.AuthError, 1),
        (["401"], errors.AuthError, 1),
        (["404"], "missing", 1),
    ],
)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_faults_retried_or_not(
    provider: str,
    faults: list[str],
    outcome: Any,
    requests: int,
    make_client: MakeClient,
    simulator: Simulator,
) -> None:
    if provider == "dataconnect" and faults == ["401"]:
        outcome, requests = None, 2  # one token refresh, one retry (see the next test)
    client = make_client(provider)
    day = date(2026, 10, 14)
    simulator.script("quotidienne|daily_consumption", faults)
    simulator.reset_stats()
    if outcome is None:
        result = client.daily(SELF, Kind.CONSUMPTION, day, day + timedelta(days=1))
        assert [r.value for r in result.readings] == [
            simulator.daily_wh(SELF, Kind.CONSUMPTION, day)
        ]
    elif outcome == "missing":
        result = client.daily(SELF, Kind.CONSUMPTION, day, day + timedelta(days=1))
        assert result.readings == []
        assert result.missing == [day]
    else:
        with pytest.raises(outcome):
            client.daily(SELF, Kind.CONSUMPTION, day, day + timedelta(days=1))
    counted = simulator.count(provider=provider, pdl=SELF)
    assert counted == requests
    ledger = client.budget.ledger
    recorded = sum(len(ledger.request_times(s, 0)) for s in ("conso", "dataconnect:home"))
    if provider != "myelectricaldata":
        tokens = simulator.count(provider="dataconnect", endpoint="token")
        assert recorded == requests + tokens  # every attempt went through the budget


def test_dataconnect_401_refreshes_token_once(
    make_client: MakeClient, simulator: Simulator
) -> None:
    client = make_client("dataconnect")
    day = date(2026, 10, 14)
    simulator.script("quotidienne", ["401"])
    simulator.reset_stats()
    result = client.daily(SELF, Kind.CONSUMPTION, day, day + timedelta(days=1))
    assert len(result.readings) == 1
    assert simulator.count(provider="dataconnect", endpoint="token") == 2
    assert simulator.count(provider="dataconnect", pdl=SELF) == 2
    simulator.script("quotidienne", ["401", "401", "401"])
    simulator.reset_stats()
    with pytest.raises(errors.AuthError):
        client.daily(SELF, Kind.CONSUMPTION, day, day + timedelta(days=1))
    assert simulator.count(provider="dataconnect", pdl=SELF) == 2
    assert simulator.count(provider="dataconnect", endpoint="token") == 1


def test_dataconnect_bad_credentials(simulator: Simulator) -> None:
    settings = ProviderSettings(
        "dataconnect", client_id="sim-client", client_secret="wrong-secret", base_url=simulator.url
    )
    client = EnedisClient(settings, retry=RetryPolicy(sleep=no_sleep), clock=SUITE_CLOCK)
    with client, pytest.raises(errors.AuthError) as info:
        client.daily(SELF, Kind.CONSUMPTION, date(2026, 10, 1), date(2026, 10, 2))
    assert "wrong-secret" not in str(info.value)
    assert simulator.count(provider="dataconnect") == 1


def test_timeout_is_retried(make_client: MakeClient, simulator: Simulator) -> None:
    http = httpx.Client(timeout=0.2)
    client = make_client("conso", http=http, retry=RetryPolicy(attempts=2, sleep=no_sleep))
    simulator.script("quotidienne", ["slow:1", "slow:1"])
    with pytest.raises(errors.Timeout):
        client.daily(SELF, Kind.CONSUMPTION, date(2026, 10, 1), date(2026, 10, 2))
    http.close()


# -- the conso budget across a restart --------------------------------------------------


def test_conso_budget_80_per_12h_across_a_restart(
    make_client: MakeClient, simulator: Simulator
) -> None:
    budget_clock = SteppedClock(datetime(2026, 11, 29, 6, 0, tzinfo=UTC))  # 1/s waits are free
    ledger = MemoryLedger()
    client = make_client("conso", budget=Budget(default_windows("conso"), ledger, budget_clock))
    simulator.reset_stats()
    day = date(2026, 1, 1)
    done = 0
    with pytest.raises(errors.BudgetExhausted) as info:
        for i in range(100):
            d = day + timedelta(days=i)
            client.daily(SELF, Kind.CONSUMPTION, d, d + timedelta(days=1), Priority.FRESH)
            done += 1
            budget_clock.advance(60)
    assert done == 80
    first_request = datetime(2026, 11, 29, 6, 0, tzinfo=UTC).timestamp()
    assert info.value.retry_at == first_request + 12 * 3600
    # a restart: a new client and budget over the same ledger
    budget2 = Budget(default_windows("conso"), ledger, budget_clock)
    client2 = make_client("conso", budget=budget2)
    with pytest.raises(errors.BudgetExhausted):
        client2.daily(SELF, Kind.CONSUMPTION, day, day + timedelta(days=1))
    assert client2.next_allowed(SELF, Priority.BACKFILL) > budget_clock.time()
    assert simulator.count(provider="conso") == 80
    # the window slides: once the first requests are 12 h old, requests flow again
    budget_clock.t = first_request + 12 * 3600
    client2.daily(SELF, Kind.CONSUMPTION, day, day + timedelta(days=1))
    assert simulator.count(provider="conso") == 81
