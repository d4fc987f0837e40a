"""The decision after each poll (``scheduler.after_poll``), without threads or sockets.

Expected delays are written here as the rules say them (5 min, 15 min, 1 h, 2 h...), never
read back from the module's constants; jitter is checked against its bounds over many seeds.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

import httpx
import pytest

from linky2mqtt.enedis import RetryPolicy, errors
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.scheduler import (
    AccountSchedule,
    Decision,
    MeterSchedule,
    PollResult,
    Result,
    after_poll,
    single_attempt,
)
from tests.test_enedis_client import PDL, Fake, daily_body, make

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=PARIS)
WINDOW = (time(8, 0), time(10, 0))
MIN = 60.0


def decide(outcome: PollResult, meter: MeterSchedule | None = None,
           account: AccountSchedule | None = None, *, now: datetime = NOON,
           meters: int = 10, seed: int = 1, refresh: int = 86400) -> Decision:
    return after_poll(meter or MeterSchedule(), account or AccountSchedule(), outcome, now,
                      refresh=refresh, poll_window=WINDOW, meters_in_account=meters,
                      rng=random.Random(seed))


FAILED = PollResult(Result.FAILED)


def _in_window(epoch: float, day: date) -> bool:
    local = datetime.fromtimestamp(epoch, PARIS)
    return local.date() == day and time(8, 0) <= local.time() < time(10, 0)


# -- transient failures: minutes, not an hour ------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_failures_retry_after_5_15_60_120_minutes_then_every_2_hours(seed: int) -> None:
    meter = MeterSchedule()
    t = NOON.timestamp()
    for expected in (5 * MIN, 15 * MIN, 60 * MIN, 120 * MIN, 120 * MIN, 120 * MIN):
        # the other meters of the account answer: the account is never held
        d = decide(FAILED, meter, AccountSchedule(), seed=seed)
        assert expected <= d.next_due - t <= expected * 1.1
        assert d.hold_until is None
        meter = d.meter
    assert meter.failures == 6


def test_retry_jitter_is_bounded_and_spreads_meters() -> None:
    t = NOON.timestamp()
    dues = [decide(FAILED, seed=s).next_due - t for s in range(200)]
    assert all(300.0 <= x <= 330.0 for x in dues)
    assert max(dues) - min(dues) > 20.0  # not all in step


def test_a_success_resets_the_failures() -> None:
    meter = MeterSchedule(failures=3)
    d = decide(PollResult(Result.OK), meter, AccountSchedule(streak=2, holds=1))
    assert d.meter.failures == 0
    assert d.account == AccountSchedule()
    nxt = decide(FAILED, d.meter, d.account)
    assert 5 * MIN <= nxt.next_due - NOON.timestamp() <= 5.5 * MIN


def test_a_non_transient_error_retries_the_same_way_but_never_holds() -> None:
    d = decide(PollResult(Result.ERROR), MeterSchedule(failures=1), AccountSchedule(streak=2))
    assert 15 * MIN <= d.next_due - NOON.timestamp() <= 16.5 * MIN
    assert d.hold_until is None and d.account.streak == 0


def test_a_store_error_waits_hours() -> None:
    meter = MeterSchedule()
    for hours in (1, 2, 4, 8, 8):
        d = decide(PollResult(Result.STORE), meter)
        assert d.next_due - NOON.timestamp() == hours * 3600
        assert d.hold_until is None
        meter = d.meter


# -- holding the account: only when upstream-wide --------------------------------------------


def test_one_or_two_failing_meters_do_not_hold_the_account_the_third_does() -> None:
    account = AccountSchedule()
    t = NOON.timestamp()
    for _ in range(2):
        d = decide(FAILED, MeterSchedule(), account, meters=10)
        assert d.hold_until is None
        account = d.account
    d = decide(FAILED, MeterSchedule(), account, meters=10)
    assert d.hold_until is not None
    assert 5 * MIN <= d.hold_until - t <= 5.5 * MIN
    assert d.next_due >= d.hold_until
    # the probe after the hold fails: held again, longer (15 min, then 1 h)
    for minutes in (15, 60, 120, 120):
        d = decide(FAILED, MeterSchedule(failures=1), d.account, meters=10)
        assert d.hold_until is not None
        assert minutes * MIN <= d.hold_until - t <= minutes * MIN * 1.1


def test_a_success_between_failures_breaks_the_streak() -> None:
    account = AccountSchedule()
    for outcome in (FAILED, FAILED, PollResult(Result.OK), FAILED, FAILED):
        d = decide(outcome, MeterSchedule(), account, meters=10)
        assert d.hold_until is None
        account = d.account


def test_a_429_is_not_a_failure_of_the_streak() -> None:
    account = AccountSchedule()
    for outcome in (FAILED, FAILED, PollResult(Result.QUOTA), FAILED, FAILED):
        d = decide(outcome, MeterSchedule(), account, meters=10)
        assert d.hold_until is None
        account = d.account


@pytest.mark.parametrize("meters", [1, 2])
def test_in_a_small_account_all_meters_failing_is_upstream_wide(meters: int) -> None:
    account = AccountSchedule()
    for i in range(meters):
        d = decide(FAILED, MeterSchedule(), account, meters=meters)
        assert (d.hold_until is not None) == (i == meters - 1)
        account = d.account


def test_the_token_endpoint_failing_holds_the_account_at_once() -> None:
    d = decide(PollResult(Result.FAILED, account_wide=True), meters=10)
    assert d.hold_until is not None
    assert 5 * MIN <= d.hold_until - NOON.timestamp() <= 5.5 * MIN
    assert d.account.holds == 1


def test_credentials_refused_at_the_token_endpoint_hold_the_account_until_tomorrow() -> None:
    d = decide(PollResult(Result.FATAL, account_wide=True))
    assert d.hold_until == d.next_due
    assert _in_window(d.next_due, date(2026, 11, 21))
    one = decide(PollResult(Result.FATAL))  # one PDL's consent: that meter only
    assert one.hold_until is None and _in_window(one.next_due, date(2026, 11, 21))


def test_the_next_poll_is_a_single_attempt_probe_after_a_failure() -> None:
    assert not single_attempt(MeterSchedule(), AccountSchedule())
    assert single_attempt(MeterSchedule(failures=1), AccountSchedule())
    assert single_attempt(MeterSchedule(), AccountSchedule(holds=1))  # the account is held
    assert single_attempt(MeterSchedule(), AccountSchedule(streak=1))  # the previous meter
    ok = decide(PollResult(Result.OK), MeterSchedule(failures=2), AccountSchedule(streak=1))
    assert not single_attempt(ok.meter, ok.account)
    assert not single_attempt(MeterSchedule(quota_deferrals=2), AccountSchedule(streak=0))


# -- 429: never a failure ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_a_429_that_says_when_defers_the_meter_to_that_time(seed: int) -> None:
    t = NOON.timestamp()
    hint = t + 3 * 3600
    meter = MeterSchedule(failures=0)
    d = decide(PollResult(Result.QUOTA, retry_at=hint), meter, seed=seed)
    assert hint + 1 <= d.next_due <= hint + 1 + 30  # a small jitter, 30 s at most
    assert d.hold_until is None
    assert d.meter.failures == 0
    short = decide(PollResult(Result.QUOTA, retry_at=t + 100), meter, seed=seed)
    assert t + 101 <= short.next_due <= t + 101 + 10  # at most 10 % of the wait


def test_a_429_leaves_the_failure_count_alone() -> None:
    d = decide(PollResult(Result.QUOTA, retry_at=NOON.timestamp() + 60),
               MeterSchedule(failures=2))
    assert d.meter.failures == 2


def test_a_429_without_a_hint_defers_by_minutes_growing() -> None:
    meter = MeterSchedule()
    for minutes in (5, 15, 30, 60, 60):
        d = decide(PollResult(Result.QUOTA), meter)
        assert minutes * MIN <= d.next_due - NOON.timestamp() <= minutes * MIN * 1.1
        assert d.hold_until is None and d.meter.failures == 0
        meter = d.meter
    assert decide(PollResult(Result.OK), meter).meter.quota_deferrals == 0


def test_a_budget_wait_resumes_when_the_budget_allows() -> None:
    at = NOON.timestamp() + 1234.0
    d = decide(PollResult(Result.BUDGET, retry_at=at), MeterSchedule(failures=1))
    assert d.next_due == at + 1
    assert d.hold_until is None


# -- the calendar: 08:00, late data, the next day --------------------------------------------


def test_a_success_polls_next_in_tomorrows_window() -> None:
    d = decide(PollResult(Result.OK))
    assert _in_window(d.next_due, date(2026, 11, 21))
    every_other = decide(PollResult(Result.OK), refresh=2 * 86400)
    assert _in_window(every_other.next_due, date(2026, 11, 22))


def test_nothing_is_asked_before_enedis_publishes() -> None:
    night = datetime(2026, 11, 20, 5, 0, tzinfo=PARIS)
    for seed in range(20):
        d = decide(PollResult(Result.OK, yesterday_missing=True), now=night, seed=seed)
        assert _in_window(d.next_due, date(2026, 11, 20))


def test_late_data_is_asked_again_2_h_then_4_h_later_then_tomorrow() -> None:
    morning = datetime(2026, 11, 20, 8, 30, tzinfo=PARIS)
    late = PollResult(Result.OK, yesterday_missing=True)
    d = decide(late, now=morning)
    assert d.next_due - morning.timestamp() == 2 * 3600 and d.late
    second = morning + timedelta(hours=2)
    d = decide(late, d.meter, now=second)
    assert d.next_due - second.timestamp() == 4 * 3600
    third = second + timedelta(hours=4)
    d = decide(late, d.meter, now=third)
    assert _in_window(d.next_due, date(2026, 11, 21)) and not d.late
    # the next day, the count starts again
    nxt = datetime(2026, 11, 21, 8, 30, tzinfo=PARIS)
    d = decide(late, d.meter, now=nxt)
    assert d.next_due - nxt.timestamp() == 2 * 3600


def test_a_failure_keeps_the_late_data_count_of_the_day() -> None:
    morning = datetime(2026, 11, 20, 8, 30, tzinfo=PARIS)
    late = PollResult(Result.OK, yesterday_missing=True)
    d = decide(late, now=morning)
    d = decide(FAILED, d.meter, now=morning + timedelta(hours=2))
    d = decide(late, d.meter, now=morning + timedelta(hours=2, minutes=6))
    assert d.next_due - (morning + timedelta(hours=2, minutes=6)).timestamp() == 4 * 3600


# -- the retry policy and the client: what feeds the decision ---------------------------------


def _quota(seconds: int) -> httpx.Response:
    return httpx.Response(429, json={"error": "Quota Q4 reached"},
                          headers={"Retry-After": str(seconds)})


def test_a_429_hint_that_fits_is_waited_exactly_once() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, max_time=120, jitter=5, sleep=slept.append)
    client, fake, _ = make("conso", Fake(), retry=policy)
    fake.answers = [_quota(45), httpx.Response(200, json=daily_body(["2026-11-01"]))]
    client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert slept == [45.0]  # no jitter on a hint
    assert len(fake.requests) == 2


@pytest.mark.parametrize(("seconds", "attempts"), [(121, 4), (5, 1)])
def test_a_429_hint_beyond_the_bound_raises_at_once(seconds: int, attempts: int) -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=attempts, max_time=120, sleep=slept.append)
    client, fake, _ = make("conso", Fake(), retry=policy)
    fake.answers = [_quota(seconds)]
    with pytest.raises(errors.QuotaError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert info.value.retry_after == seconds
    assert slept == [] and len(fake.requests) == 1  # nothing slept, not even part of it


def test_a_429_without_hint_is_retried_with_backoff() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, initial=2, jitter=0, sleep=slept.append)
    client, fake, _ = make("conso", Fake(), retry=policy)
    fake.answers = [httpx.Response(429, json={"error": "Quota Q3 reached"})]
    with pytest.raises(errors.QuotaError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert info.value.retry_after is None
    assert slept == [2.0, 4.0, 8.0] and len(fake.requests) == 4


def test_only_a_token_endpoint_failure_is_account_wide() -> None:
    client, fake, _ = make("dataconnect", Fake(), retry=RetryPolicy(attempts=1))
    fake.token_answers = [httpx.Response(503, json={"error": "service_unavailable"})]
    with pytest.raises(errors.ServerError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert info.value.account_wide and info.value.endpoint == "/oauth2/v3/token"
    fake.answers = [httpx.Response(503, json={"error": "service_unavailable"})]
    with pytest.raises(errors.ServerError) as info:
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert not info.value.account_wide  # the token came; the data call failed
    fake.answers = []
    client2, fake2, _ = make("dataconnect", Fake(), retry=RetryPolicy(attempts=1))
    fake2.token_answers = [httpx.Response(401, json={"error": "invalid_client"})]
    with pytest.raises(errors.AuthError) as auth:
        client2.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2))
    assert auth.value.account_wide


def test_a_per_call_retry_policy_makes_one_attempt() -> None:
    client, fake, _ = make("conso", Fake(), retry=RetryPolicy(attempts=4, jitter=0,
                                                              sleep=lambda s: None))
    fake.answers = [httpx.Response(500, json={"error": "technical_error"})]
    with pytest.raises(errors.ServerError):
        client.daily(PDL, Kind.CONSUMPTION, date(2026, 11, 1), date(2026, 11, 2),
                     retry=RetryPolicy(attempts=1))
    assert len(fake.requests) == 1


def test_delays_after_a_failure_count_from_the_end_of_the_poll() -> None:
    ended = NOON.timestamp() + 110  # two minutes of retries
    d = decide(PollResult(Result.FAILED, ended=ended))
    assert 5 * MIN <= d.next_due - ended <= 5.5 * MIN
    q = decide(PollResult(Result.QUOTA, ended=ended))
    assert 5 * MIN <= q.next_due - ended <= 5.5 * MIN
    # the calendar counts from the start: a poll ending after midnight is still that day's
    late_night = datetime(2026, 11, 20, 23, 59, 50, tzinfo=PARIS)
    ok = decide(PollResult(Result.OK, ended=late_night.timestamp() + 30), now=late_night)
    assert _in_window(ok.next_due, date(2026, 11, 21))
