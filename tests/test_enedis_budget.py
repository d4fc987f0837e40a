"""Request budgets: sliding windows, priorities, the ledger across restarts, threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from linky2mqtt.enedis import (
    Budget,
    MemoryLedger,
    Priority,
    Window,
    default_windows,
    scopes_for,
)
from linky2mqtt.enedis.errors import BudgetExhausted
from tests.support.clock import SteppedClock

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def test_defaults_and_scopes() -> None:
    assert default_windows("conso") == {"conso": [Window(1, 1), Window(43200, 80)]}
    assert default_windows("dataconnect") == {"dataconnect": [Window(1, 5), Window(3600, 1000)]}
    assert default_windows("myelectricaldata") == {
        "myelectricaldata": [Window(86400, 50)],
        "myelectricaldata:account": [Window(1, 1)],
    }
    assert scopes_for("conso", "home", "12345678901234") == ["conso"]
    assert scopes_for("dataconnect", "pro", "12345678901234") == ["dataconnect:pro"]
    assert scopes_for("myelectricaldata", "home", "12345678901234") == [
        "myelectricaldata:account:home",
        "myelectricaldata:12345678901234",
    ]
    with pytest.raises(ValueError):
        default_windows("nope")
    with pytest.raises(ValueError):
        Window(0, 1)


def test_per_second_window_waits_on_the_clock() -> None:
    clock = SteppedClock(T0)
    budget = Budget(default_windows("conso"), MemoryLedger(), clock)
    for _ in range(3):
        budget.acquire(["conso"])
    assert clock.slept == [1.0, 1.0]
    assert budget.used("conso", 43200) == 3


def test_conso_80_per_12h_then_exhausted_until_the_first_leaves() -> None:
    clock = SteppedClock(T0)
    ledger = MemoryLedger()
    budget = Budget(default_windows("conso"), ledger, clock)
    first = clock.time()
    for _ in range(80):
        budget.acquire(["conso"], Priority.FRESH)
        clock.advance(60)
    with pytest.raises(BudgetExhausted) as info:
        budget.acquire(["conso"], Priority.FRESH)
    assert info.value.retry_at == first + 43200
    assert budget.next_allowed(["conso"]) == first + 43200
    assert len(ledger.request_times("conso", 0)) == 80
    # a restart: a new budget over the same ledger still refuses
    again = Budget(default_windows("conso"), ledger, clock)
    with pytest.raises(BudgetExhausted):
        again.acquire(["conso"])
    clock.t = first + 43200
    again.acquire(["conso"])
    assert len(ledger.request_times("conso", 0)) == 81


@pytest.mark.parametrize(
    ("priority", "allowed"), [(Priority.BACKFILL, 64), (Priority.COMMAND, 72), (Priority.FRESH, 80)]
)
def test_priorities_keep_a_share_of_long_windows(priority: Priority, allowed: int) -> None:
    clock = SteppedClock(T0)
    budget = Budget(default_windows("conso"), MemoryLedger(), clock)
    count = 0
    with pytest.raises(BudgetExhausted):
        while True:
            budget.acquire(["conso"], priority)
            count += 1
            clock.advance(2)
    assert count == allowed


def test_backfill_exhausted_leaves_room_for_fresh() -> None:
    clock = SteppedClock(T0)
    budget = Budget({"x": [Window(3600, 10)]}, MemoryLedger(), clock)
    for _ in range(8):
        budget.acquire(["x"], Priority.BACKFILL)
    with pytest.raises(BudgetExhausted):
        budget.acquire(["x"], Priority.BACKFILL)
    budget.acquire(["x"], Priority.COMMAND)
    budget.acquire(["x"], Priority.FRESH)
    with pytest.raises(BudgetExhausted):
        budget.acquire(["x"], Priority.FRESH)


def test_account_override_by_exact_scope_and_callable_spec() -> None:
    clock = SteppedClock(T0)
    spec = {"dataconnect": [Window(3600, 2)], "dataconnect:big": [Window(3600, 3)]}
    budget = Budget(spec, MemoryLedger(), clock)
    assert budget.windows("dataconnect:small") == [Window(3600, 2)]
    assert budget.windows("dataconnect:big") == [Window(3600, 3)]
    assert budget.windows("unknown:scope") == ()
    for _ in range(3):
        budget.acquire(["dataconnect:big"])
    with pytest.raises(BudgetExhausted):
        budget.acquire(["dataconnect:big"])
    budget.acquire(["dataconnect:small"])
    budget.acquire(["dataconnect:small"])
    with pytest.raises(BudgetExhausted):
        budget.acquire(["dataconnect:small"])
    fn_budget = Budget(lambda scope: [Window(60, 1)], MemoryLedger(), clock)
    fn_budget.acquire(["anything"])
    with pytest.raises(BudgetExhausted):
        fn_budget.acquire(["anything"])


def test_all_scopes_must_allow_and_all_are_recorded() -> None:
    clock = SteppedClock(T0)
    ledger = MemoryLedger()
    budget = Budget(default_windows("myelectricaldata"), ledger, clock)
    a = scopes_for("myelectricaldata", "home", "11111111111111")
    b = scopes_for("myelectricaldata", "home", "22222222222222")
    for _ in range(50):
        budget.acquire(a)
    with pytest.raises(BudgetExhausted):
        budget.acquire(a)
    budget.acquire(b)  # another PDL of the same account: its own daily quota
    assert len(ledger.request_times("myelectricaldata:account:home", 0)) == 51
    assert len(ledger.request_times("myelectricaldata:11111111111111", 0)) == 50
    assert len(ledger.request_times("myelectricaldata:22222222222222", 0)) == 1


def test_ledger_is_read_once_per_scope() -> None:
    class CountingLedger(MemoryLedger):
        reads = 0

        def request_times(self, scope: str, since: float) -> list[float]:
            self.reads += 1
            return super().request_times(scope, since)

    clock = SteppedClock(T0)
    ledger = CountingLedger()
    ledger.record_request("conso", clock.time() - 50000)  # outside the 12 h window
    ledger.record_request("conso", clock.time() - 100)
    budget = Budget({"conso": [Window(43200, 2)]}, ledger, clock)
    budget.acquire(["conso"])
    with pytest.raises(BudgetExhausted):
        budget.acquire(["conso"])
    assert ledger.reads == 1


def test_threads_never_exceed_the_window() -> None:
    clock = SteppedClock(T0)
    budget = Budget({"s": [Window(3600, 50)]}, MemoryLedger(), clock, max_wait=0)
    ok: list[int] = []
    refused: list[int] = []

    def worker() -> None:
        for _ in range(20):
            try:
                budget.acquire(["s"])
                ok.append(1)
            except BudgetExhausted:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(ok) == 50
    assert len(refused) == 110


def test_a_request_counts_from_its_answer_so_the_next_window_opens_after_the_upstreams() -> None:
    # Upstream counts a request when it arrives: somewhere between the budget's record and
    # the answer. 1/s, the first request answered 0.4 s after it was recorded: the second
    # may go 1 s after the answer (1.4 s), not 1 s after the record (1.0 s), whatever the
    # delay between record and arrival was.
    clock = SteppedClock(T0)
    budget = Budget({"x": [Window(1, 1)]}, MemoryLedger(), clock, max_wait=5)
    t0 = clock.t
    sent = budget.acquire(["x"])
    assert sent == t0
    clock.advance(0.4)
    budget.settle(["x"], sent)
    assert budget.next_allowed(["x"]) == pytest.approx(t0 + 1.4)
    budget.acquire(["x"])
    assert clock.t == pytest.approx(t0 + 1.4)
    assert budget.used("x", 1.0) == 1


def test_settling_keeps_the_window_ordered_among_concurrent_requests() -> None:
    # two requests in flight at 2/s: the first answered after the second; the third
    # waits for the earlier of the two answers, a window later
    clock = SteppedClock(T0)
    budget = Budget({"x": [Window(1, 2)]}, MemoryLedger(), clock, max_wait=5)
    t0 = clock.t
    first = budget.acquire(["x"])
    clock.advance(0.1)
    second = budget.acquire(["x"])
    clock.advance(0.1)
    budget.settle(["x"], second)  # answered at t0 + 0.2
    clock.advance(0.3)
    budget.settle(["x"], first)  # answered at t0 + 0.5
    assert budget.next_allowed(["x"]) == pytest.approx(t0 + 1.2)
    budget.settle(["x"], first)  # settling twice (or an unknown stamp) changes nothing
    assert budget.next_allowed(["x"]) == pytest.approx(t0 + 1.2)
