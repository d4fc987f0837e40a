"""When each meter is due and which upstream calls a poll makes: pure functions.

Nothing here does I/O or reads a clock: callers pass ``today`` and ``now``.

* :func:`plan_windows` turns a set of missing days into the fewest calls the API accepts
  (at most ``max_days`` per call), newest first: the greedy cover from the newest missing
  day is optimal for points covered by fixed-length intervals, so a backfill of D
  contiguous days costs exactly ceil(D / max_days) calls and yesterday is always in the
  first one.
* :func:`wanted_days` is the window a meter keeps: ``backfill`` days up to yesterday.
* :func:`first_poll_of_day` picks the random minute of ``poll_window`` for a day.
* :func:`after_poll` decides, after each poll, when the meter is due again and whether its
  account is held (failure backoff, 429 deferrals, late-data retries, budget waits).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from linky2mqtt.model import PARIS

# A day that came back empty is asked again on later days, this many times in all.
MAX_GAP_ATTEMPTS = 5
# Enedis publishes day D from about 08:00 (Europe/Paris) on D+1: not asked before.
PUBLISHED_FROM = time(8, 0)
# When yesterday is not there yet at the first poll: ask again later the same day.
LATE_RETRY_DELAYS = (2 * 3600.0, 4 * 3600.0)


def wanted_days(today: date, backfill: int) -> list[date]:
    """The days a series should hold: the ``backfill`` days before ``today``, newest first.

    ``backfill`` counts yesterday: 1 means yesterday only; 0 is treated as 1 (the latest
    day is always wanted).
    """
    n = max(1, backfill)
    return [today - timedelta(days=i) for i in range(1, n + 1)]


def plan_windows(missing: Iterable[date], max_days: int) -> list[tuple[date, date]]:
    """Fewest ``[start, end)`` windows of at most ``max_days`` covering ``missing``.

    Newest window first. Each window starts at the oldest missing day it covers, so no
    day older than needed is asked for.
    """
    days = sorted(set(missing), reverse=True)
    windows: list[tuple[date, date]] = []
    i = 0
    while i < len(days):
        newest = days[i]
        floor = newest - timedelta(days=max_days - 1)
        oldest = newest
        while i < len(days) and days[i] >= floor:
            oldest = days[i]
            i += 1
        windows.append((oldest, newest + timedelta(days=1)))
    return windows


def first_poll_of_day(day: date, window: tuple[time, time], rng: random.Random) -> datetime:
    """A random minute of ``window`` on ``day`` (Europe/Paris), as an aware datetime."""
    start = datetime.combine(day, window[0], PARIS)
    end = datetime.combine(day, window[1], PARIS)
    span = max(0, int((end - start).total_seconds() // 60))
    return start + timedelta(minutes=rng.randint(0, max(0, span - 1)) if span else 0)


def next_regular_poll(
    now: datetime, refresh: int, window: tuple[time, time], rng: random.Random
) -> datetime:
    """The next poll once a meter holds yesterday's data.

    The first poll of a day falls at a random minute of ``poll_window``. ``refresh`` is the
    period between polls: 86400 (the default) polls every day, 172800 every other day.
    A ``refresh`` under a day cannot make data arrive sooner (Enedis publishes once a
    day); it only shortens the spacing of the same-day retries for late data
    (:func:`late_retry_delay`).
    """
    today = now.astimezone(PARIS).date()
    day = today + timedelta(days=max(1, refresh // 86400))
    return first_poll_of_day(day, window, rng)


def late_retry_delay(attempt: int, refresh: int) -> float | None:
    """Seconds before asking again the same day for data not there yet; None: give up.

    ``attempt`` counts the polls already made today that found yesterday missing.
    """
    if attempt < 1 or attempt > len(LATE_RETRY_DELAYS):
        return None
    return min(LATE_RETRY_DELAYS[attempt - 1], float(max(3600, refresh)))


def yesterday_published(now: datetime) -> bool:
    """Whether yesterday's data may be there at ``now`` (from 08:00 Paris time)."""
    return now.astimezone(PARIS).time() >= PUBLISHED_FROM


# -- after a poll: when is the meter due again, and is its account held? ---------------------
#
# :func:`after_poll` is the one decision the account thread makes after each poll. It is pure:
# the thread passes the meter's and the account's scheduling state, what the poll ended on,
# the time and a random generator (for the jitter), and applies the returned decision.

# After a poll that failed on transient errors (5xx, no answer, a garbage body, after the
# retries): try again after these delays, the last one repeating; back to the first after
# a success.
RETRY_DELAYS = (300.0, 900.0, 3600.0, 7200.0)
# Delays are stretched by a random factor in [1, 1 + RETRY_JITTER], so that meters and
# bridges that failed together do not come back in step.
RETRY_JITTER = 0.1
# After a store error (disk full, read-only): the disk does not free itself in minutes, and
# each retry spends upstream quota on data that cannot be written.
STORE_RETRY_DELAYS = (3600.0, 2 * 3600.0, 4 * 3600.0, 8 * 3600.0)
# A 429 without a hint of when to come back (the retries of the poll spent): ask again
# after these delays, the last one repeating. Not a failure: no error status, no backoff.
QUOTA_DELAYS = (300.0, 900.0, 1800.0, 3600.0)
# A 429 that says when to come back: come back then, plus 1 s (the hint is rounded to the
# second) plus a random jitter of at most 10 % of the wait and at most QUOTA_JITTER_MAX.
QUOTA_JITTER_MAX = 30.0
# This many meters of an account in a row failing on transient errors (or all of them, in a
# smaller account) means the provider is down for the account: every meter of the account
# waits, and one meter at a time probes.
HOLD_AFTER_STREAK = 3


class Result(enum.Enum):
    """How a poll ended, as far as scheduling cares."""

    OK = "ok"  # no error (it may have stored nothing: data not there yet)
    FAILED = "failed"  # transient upstream failure after the retries (5xx, no answer...)
    ERROR = "error"  # a non-transient error that is not the meter's credentials (400...)
    FATAL = "fatal"  # credentials or consent refused: not before the next regular poll
    QUOTA = "quota"  # 429 from upstream, after the retries or with a hint beyond them
    BUDGET = "budget"  # our own request budget said not now
    STORE = "store"  # the store could not write


@dataclass(frozen=True)
class PollResult:
    """What :func:`after_poll` needs to know of one poll."""

    result: Result
    # BUDGET: when the budget allows the rest; QUOTA: when upstream said to come back
    # (None: it did not say). Epoch seconds.
    retry_at: float | None = None
    yesterday_missing: bool = False
    # The failure is the account's, not the meter's (the OAuth token endpoint failed).
    account_wide: bool = False
    # When the poll ended (epoch seconds; None: ``now``). The delays after a failure or a
    # 429 count from there: a poll that spent two minutes in retries still waits 5 min.
    ended: float | None = None


@dataclass(frozen=True)
class MeterSchedule:
    """A meter's scheduling memory, kept by its account thread between polls."""

    failures: int = 0  # polls in a row that failed (FAILED or ERROR)
    store_failures: int = 0  # polls in a row stopped by a store error
    quota_deferrals: int = 0  # polls in a row ended by a 429 without a hint
    late_day: date | None = None  # the day the late-data retries below are counted for
    late_attempts: int = 0  # polls that day that found yesterday missing


@dataclass(frozen=True)
class AccountSchedule:
    """An account's scheduling memory: is its provider down for every meter?"""

    streak: int = 0  # meters in a row whose poll failed on transient errors
    holds: int = 0  # holds in a row: the level of the next hold's delay
    held_until: float | None = None  # epoch seconds; None: not held


@dataclass(frozen=True)
class Decision:
    next_due: float  # epoch seconds: when this meter is polled again
    meter: MeterSchedule
    account: AccountSchedule
    # every other meter of the account waits until then (None: no hold decided now)
    hold_until: float | None
    why: str  # for the log: what the delay is for
    late: bool = False  # a same-day retry for yesterday's data, not there yet


def jittered(delay: float, rng: random.Random) -> float:
    """``delay`` stretched by a random factor in ``[1, 1 + RETRY_JITTER]``."""
    return delay * rng.uniform(1.0, 1.0 + RETRY_JITTER)


def _step(delays: tuple[float, ...], level: int) -> float:
    return delays[min(max(0, level), len(delays) - 1)]


def quota_retry_at(hint: float, now: float, rng: random.Random) -> float:
    """When to come back after a 429 that said ``hint`` (epoch seconds), with the jitter."""
    wait = max(0.0, hint - now)
    return max(now, hint) + 1.0 + rng.uniform(0.0, min(QUOTA_JITTER_MAX, 0.1 * wait))


def single_attempt(meter: MeterSchedule, account: AccountSchedule) -> bool:
    """Whether the next poll makes one attempt per request instead of the full retries.

    After a failed poll (this meter's, or the previous meter's of the account, or the
    account held), the next poll is a probe: the retries were just spent, one request
    says whether upstream is back. A success gives the full retries back.
    """
    return meter.failures > 0 or account.streak > 0 or account.holds > 0


def after_poll(
        meter: MeterSchedule, account: AccountSchedule, outcome: PollResult, now: datetime,
        *, refresh: int, poll_window: tuple[time, time], meters_in_account: int,
        rng: random.Random) -> Decision:
    """The next due time of a meter after a poll, and whether its account is held.

    ``now`` is when the poll started: the calendar (08:00, late data, the next day) counts
    from it; the delays after a failure, a 429 or a store error count from the poll's end
    (``outcome.ended``).

    * OK: the failure counts go back to zero (the account's too); then yesterday's data
      decides: not there before 08:00 Paris, ask at today's first poll; not there after,
      ask again 2 h then 4 h later (:func:`late_retry_delay`); else the next regular poll.
    * BUDGET: when the budget allows the rest (plus 1 s).
    * QUOTA: never a failure. When upstream said when to come back, then (plus a small
      jitter, :func:`quota_retry_at`); otherwise after :data:`QUOTA_DELAYS`.
    * FAILED: :data:`RETRY_DELAYS` (5 min, 15 min, 1 h, then every 2 h) with jitter. The
      account is held, every meter waiting as long, when the failure is upstream-wide: the
      token endpoint failed, or :data:`HOLD_AFTER_STREAK` meters in a row failed (all of
      them in a smaller account). A hold's delay grows the same way, hold after hold.
    * ERROR: the same delays as FAILED, but it never holds the account (upstream answered).
    * FATAL: the next regular poll (tomorrow); the token endpoint refusing the
      credentials holds the account until then.
    * STORE: :data:`STORE_RETRY_DELAYS` (1 h, 2 h, 4 h, then every 8 h).
    """
    t = now.timestamp()
    end = max(t, outcome.ended) if outcome.ended is not None else t
    today = now.astimezone(PARIS).date()

    def regular() -> float:
        return next_regular_poll(now, refresh, poll_window, rng).timestamp()

    r = outcome.result
    if r is Result.BUDGET:
        due = (outcome.retry_at if outcome.retry_at is not None else t) + 1.0
        return Decision(due, replace(meter, failures=0, store_failures=0), account, None,
                        "the request budget")
    if r is Result.QUOTA:
        # upstream answered: the streak of failing meters is broken; the meter's own
        # failure count is left as it was (a 429 is not a failure, nor a success)
        acc = replace(account, streak=0)
        if outcome.retry_at is not None:
            return Decision(quota_retry_at(outcome.retry_at, end, rng),
                            replace(meter, quota_deferrals=0), acc, None,
                            "the provider's quota (429: it said when)")
        delay = jittered(_step(QUOTA_DELAYS, meter.quota_deferrals), rng)
        return Decision(end + delay, replace(meter, quota_deferrals=meter.quota_deferrals + 1),
                        acc, None, "the provider's quota (429)")
    if r is Result.STORE:
        delay = _step(STORE_RETRY_DELAYS, meter.store_failures)
        return Decision(end + delay, replace(meter, store_failures=meter.store_failures + 1),
                        account, None, "a store error")
    if r is Result.FATAL:
        due = regular()
        if outcome.account_wide:
            return Decision(due, replace(meter, failures=0), replace(
                account, streak=0, held_until=due), due, "credentials refused")
        return Decision(due, replace(meter, failures=0), replace(account, streak=0), None,
                        "credentials or consent refused")
    if r in (Result.FAILED, Result.ERROR):
        due = end + jittered(_step(RETRY_DELAYS, meter.failures), rng)
        failed = replace(meter, failures=meter.failures + 1)
        if r is Result.ERROR:
            return Decision(due, failed, replace(account, streak=0), None, "an error")
        streak = account.streak + 1
        if not (outcome.account_wide
                or streak >= min(HOLD_AFTER_STREAK, max(1, meters_in_account))):
            return Decision(due, failed, replace(account, streak=streak), None,
                            "an upstream failure")
        hold = end + jittered(_step(RETRY_DELAYS, account.holds), rng)
        return Decision(max(due, hold), failed,
                        AccountSchedule(streak=streak, holds=account.holds + 1,
                                        held_until=hold),
                        hold, "an upstream failure of the whole account")
    # OK
    ok = MeterSchedule(late_day=meter.late_day, late_attempts=meter.late_attempts)
    acc = AccountSchedule()
    if outcome.yesterday_missing and not yesterday_published(now):
        # before Enedis publishes (a start at night): ask at today's first poll
        first = max(first_poll_of_day(today, poll_window, rng),
                    datetime.combine(today, PUBLISHED_FROM, PARIS))
        return Decision(first.timestamp(), ok, acc, None, "Enedis publishing (08:00)")
    if outcome.yesterday_missing:
        attempts = meter.late_attempts + 1 if meter.late_day == today else 1
        ok = replace(ok, late_day=today, late_attempts=attempts)
        late = late_retry_delay(attempts, refresh)
        if late is not None:
            return Decision(t + late, ok, acc, None, "yesterday's data (not there yet)",
                            late=True)
    return Decision(regular(), ok, acc, None, "the next regular poll")
