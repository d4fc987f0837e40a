"""Turns: account threads work one at a time and give the turn up for every wait.

Each wait of a poll (an upstream answer, the budget's pacing, the pause between two
attempts) is held open here while another thread tries to take the turn: it must get it
within the deadline. A wait that kept the turn would hold every other account back for
its whole length (a slow upstream: up to the 60 s deadline). The account thread's own
wait between polls is covered by every bridge test with several accounts
(tests/test_bridge_failures.py: three accounts, each publishing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import httpx

from linky2mqtt.enedis import Budget, EnedisClient, MemoryLedger, ProviderSettings, RetryPolicy
from linky2mqtt.enedis.budget import Window
from linky2mqtt.model import Kind
from linky2mqtt.turns import Turns
from tests.support.clock import SteppedClock
from tests.support.upstream_client import one_try_client
from tests.test_enedis_client import NOW, PDL, Fake, jwt

DEADLINE = 10.0


def taken(turns: Turns, within: float = DEADLINE) -> bool:
    """Whether another thread takes the turn within ``within`` seconds."""
    got = threading.Event()

    def take() -> None:
        with turns.turn():
            got.set()

    threading.Thread(target=take, daemon=True).start()
    return got.wait(within)


@contextmanager
def on_its_turn(turns: Turns, work: Callable[[], object]) -> Iterator[threading.Thread]:
    """``work`` in an account-like thread holding the turn (joined at the end)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with turns.turn():
                work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield thread
    thread.join(DEADLINE)
    assert not thread.is_alive(), "the account thread did not finish"
    assert not errors, errors


def test_one_holder_at_a_time() -> None:
    turns = Turns()
    inside = threading.Event()
    leave = threading.Event()
    def work() -> None:
        inside.set()
        leave.wait(DEADLINE)

    with on_its_turn(turns, work):
        assert inside.wait(DEADLINE)
        assert not taken(turns, within=0.3)  # held: nobody else
        leave.set()
    assert taken(turns)  # given back


def test_waiting_gives_the_turn_up_and_takes_it_back() -> None:
    turns = Turns()
    inside = threading.Event()
    leave = threading.Event()
    after: list[bool] = []

    def work() -> None:
        with turns.waiting():
            inside.set()
            leave.wait(DEADLINE)
        after.append(turns.holds())

    with on_its_turn(turns, work):
        assert inside.wait(DEADLINE)
        assert taken(turns)  # another thread works while this one waits
        leave.set()
    assert after == [True]


def test_turn_is_reentrant_and_waiting_is_nothing_without_it() -> None:
    turns = Turns()
    assert not turns.holds()
    with turns.waiting():  # a command thread: no turn to give up
        assert not turns.holds()
    with turns.turn():
        with turns.turn():
            assert turns.holds()
        assert turns.holds()
        with turns.waiting():
            assert not turns.holds()
        assert turns.holds()
    assert not turns.holds()
    assert taken(turns)


def _client(turns: Turns, handler: Callable[[httpx.Request], httpx.Response], *,
            budget: Budget | None = None, retry: RetryPolicy | None = None,
            clock: SteppedClock | None = None) -> EnedisClient:
    settings = ProviderSettings(provider="conso", token=jwt([PDL]),
                                base_url="http://upstream.test", account="home")
    return one_try_client(settings, handler=handler, budget=budget,
                          clock=clock or SteppedClock(NOW), retry=retry,
                          waiting=turns.waiting)


DAY = date(2026, 11, 27)


def test_an_upstream_answer_is_awaited_off_the_turn() -> None:
    turns = Turns()
    asked = threading.Event()
    answer = threading.Event()
    fake = Fake()

    def slow(request: httpx.Request) -> httpx.Response:
        asked.set()
        answer.wait(DEADLINE)
        return fake(request)

    client = _client(turns, slow)
    got: list[int] = []
    with on_its_turn(turns, lambda: got.append(len(
            client.daily(PDL, Kind.CONSUMPTION, DAY, DAY.replace(day=28)).readings))):
        assert asked.wait(DEADLINE)
        assert taken(turns)
        answer.set()
    assert got == [1]


def test_the_budget_pacing_is_waited_off_the_turn() -> None:
    turns = Turns()
    pacing = threading.Event()
    go_on = threading.Event()

    class PacingClock(SteppedClock):
        def sleep(self, seconds: float) -> None:
            pacing.set()
            go_on.wait(DEADLINE)
            super().sleep(seconds)

    clock = PacingClock(NOW)
    budget = Budget({"conso": [Window(1.0, 1)]}, MemoryLedger(), clock,
                    waiting=turns.waiting)
    client = _client(turns, Fake(), budget=budget, clock=clock)
    got: list[int] = []

    def two_days() -> None:  # two requests in one second: the second is paced
        for day in (DAY, DAY.replace(day=26)):
            got.append(len(client.daily(PDL, Kind.CONSUMPTION, day,
                                        day.replace(day=day.day + 1)).readings))

    with on_its_turn(turns, two_days):
        assert pacing.wait(DEADLINE)
        assert taken(turns)
        go_on.set()
    assert got == [1, 1]


def test_the_pause_between_attempts_is_waited_off_the_turn() -> None:
    turns = Turns()
    paused = threading.Event()
    go_on = threading.Event()
    fake = Fake()
    fake.answers = [httpx.Response(503, text="busy"), httpx.Response(
        200, json={"grandeur": [{"unite": "Wh", "points": [{"v": "7", "d": "2026-11-27"}]}]})]

    def pause(seconds: float) -> None:
        paused.set()
        go_on.wait(DEADLINE)

    client = _client(turns, fake, retry=RetryPolicy(attempts=2, sleep=pause))
    got: list[float] = []
    with on_its_turn(turns, lambda: got.extend(r.value for r in client.daily(
            PDL, Kind.CONSUMPTION, DAY, DAY.replace(day=28)).readings)):
        assert paused.wait(DEADLINE)
        assert taken(turns)
        go_on.set()
    assert got == [7.0]
    assert len(fake.data_requests()) == 2
