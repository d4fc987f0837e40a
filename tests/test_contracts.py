"""When an account asks its meters' contracts (AccountRunner._contracts), with an httpx
MockTransport upstream and a manual clock: after the data, within the budget, each answer
(a contract, a 404) remembered for contract_refresh, a failure retried later.
The end-to-end proof (1,000 meters, simulator, mosquitto) is tests/test_contracts_e2e.py."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, time
from pathlib import Path

import httpx

from linky2mqtt import topics
from linky2mqtt.accounts import CONTRACT_RETRY, AccountParts, AccountRunner
from linky2mqtt.config import AccountConfig, MeterConfig
from linky2mqtt.enedis import (
    Budget,
    MemoryLedger,
    ProviderSettings,
    default_windows,
)
from linky2mqtt.mqtt import MqttLink
from linky2mqtt.publisher import Publisher
from linky2mqtt.simulator import bodies
from linky2mqtt.store import Store
from tests.support.clock import SteppedClock
from tests.support.upstream_client import one_try_client

FOUND, NONE, DOWN = "51000000000011", "51000000000012", "51000000000013"
WEEK = 7 * 86400.0


class Upstream:
    """Data Connect: a token, then the contract of FOUND, a 404 for NONE, 503 for DOWN."""

    def __init__(self) -> None:
        self.contracts: list[str] = []
        self.down = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/v3/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer",
                                             "expires_in": "12600"})
        pdl = request.url.path.rsplit("/", 1)[-1]
        self.contracts.append(pdl)
        if pdl == NONE:
            return httpx.Response(404, json={"error": "no_data_found"})
        if pdl == DOWN and self.down:
            return httpx.Response(503, text="maintenance")
        return httpx.Response(200, json=bodies.situation_contrat(pdl))


def _runner(tmp_path: Path, clock: SteppedClock, upstream: Upstream,
            budget: Budget) -> tuple[AccountRunner, Store]:
    store = Store(tmp_path / "s.db", clock=clock)
    link = MqttLink("127.0.0.1", 1, client_id="never-connected", will_topic="l2m/bridge/state",
                    will_payload=b"")  # not started: publishing only fills the store
    found = threading.Event()
    parts = AccountParts(
        store=store, publisher=Publisher(link, store, "l2m"), budget=budget, clock=clock,
        stopping=threading.Event(), rng=random.Random(1), base="l2m",
        poll_window=(time(8), time(10)), curve_changed=lambda *_: None,
        contract_found=found.set, contract_refresh=WEEK)
    settings = ProviderSettings(provider="dataconnect", client_id="c", client_secret="s",
                                base_url="http://upstream.test", account="firm")
    client = one_try_client(settings, handler=upstream, budget=budget, clock=clock)
    account = AccountConfig(name="firm", provider="dataconnect")
    meters = [MeterConfig(pdl=p, name=p) for p in (FOUND, NONE, DOWN)]
    runner = AccountRunner(parts, account, client, meters, stagger=2.0)
    for state in runner.meters.values():  # the day's data is polled: next poll tomorrow
        state.next_due = clock.time() + 86400
    return runner, store


def test_contracts_are_asked_once_remembered_and_retried_after_a_failure(
        tmp_path: Path) -> None:
    clock = SteppedClock(datetime(2026, 11, 20, 11, 0, tzinfo=UTC))
    upstream = Upstream()
    budget = Budget(default_windows("dataconnect"), MemoryLedger(), clock)
    runner, store = _runner(tmp_path, clock, upstream, budget)
    t0 = clock.time()
    again = runner._contracts()
    assert sorted(upstream.contracts) == sorted([FOUND, NONE, DOWN])
    body = store.get_retained(topics.contract_topic("l2m", FOUND))
    assert body is not None and json.loads(body)["pdl"] == FOUND
    assert store.get_retained(topics.contract_topic("l2m", NONE)) is None
    checks = store.contract_checks()
    assert checks[FOUND] == (t0, True) and checks[NONE] == (t0, False)
    assert DOWN not in checks  # a failure is not an answer: asked again in an hour
    assert again is not None and t0 + CONTRACT_RETRY <= again < t0 + CONTRACT_RETRY + 5
    # nothing more to ask before then
    upstream.contracts.clear()
    clock.advance(CONTRACT_RETRY - 60)
    runner._contracts()
    assert upstream.contracts == []
    # an hour later the failed one only; a new runner (a restart) then asks nothing
    upstream.down = False
    clock.advance(120)
    runner._contracts()
    assert upstream.contracts == [DOWN]
    upstream.contracts.clear()
    restarted, _ = _runner(tmp_path, clock, upstream, budget)
    assert restarted._contracts() is not None
    assert upstream.contracts == []
    # a week after, every meter is asked again, the 404 included
    clock.advance(WEEK)
    for state in restarted.meters.values():  # (and that day's data polled)
        state.next_due = clock.time() + 86400
    restarted._contracts()
    assert sorted(upstream.contracts) == sorted([FOUND, NONE, DOWN])


def test_no_contract_is_asked_while_data_is_due_or_the_budget_is_spent(
        tmp_path: Path) -> None:
    clock = SteppedClock(datetime(2026, 11, 20, 11, 0, tzinfo=UTC))
    upstream = Upstream()
    budget = Budget(default_windows("dataconnect"), MemoryLedger(), clock)
    runner, _ = _runner(tmp_path, clock, upstream, budget)
    state = runner.meters[NONE]
    state.next_due = clock.time()  # a poll is due: it goes first
    assert runner._contracts() is None
    state.next_due = clock.time() + 86400
    state.waiting_until = clock.time() + 600  # a meter waits for the budget: data first
    assert runner._contracts() is None
    state.waiting_until = None
    assert upstream.contracts == []
    # the hour's budget spent by data at FRESH priority: BACKFILL (80 %) has no room
    scopes = ["dataconnect:firm"]
    for _ in range(800):
        budget._history(scopes[0], clock.time()).append(clock.time())
    again = runner._contracts()
    assert upstream.contracts == []
    assert again is not None and again > clock.time() + 3000
