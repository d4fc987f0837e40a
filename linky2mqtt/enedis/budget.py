"""Request budgets: sliding-window quotas per scope, over a persistent ledger.

A *scope* names who shares a quota: ``"conso"`` (the whole process: the Conso API bans
per IP), ``"dataconnect:<account>"``, ``"myelectricaldata:<pdl>"`` (50 a day per PDL) and
``"myelectricaldata:account:<account>"`` (1/s). Each scope has windows
(``Window(seconds, limit)``: at most ``limit`` requests in any ``seconds``); the windows of
a scope are looked up by the exact scope name first, then by shorter prefixes cut at
``":"`` (``"dataconnect:home"`` -> ``"dataconnect"``), so an account can override the
provider's defaults. A scope without windows is unlimited (and still recorded).

Priorities keep a share of every window of one hour or more for fresher work: BACKFILL
may use 80 % of it, COMMAND 90 %, FRESH all of it.

Every request (retries and token requests included) is recorded in a :class:`Ledger`; the
SQLite store implements it so a restart never resets a budget. The budget reads the
ledger once per scope at first use and then keeps an in-memory copy, writing through.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from linky2mqtt.clock import SYSTEM_CLOCK, Clock

from .errors import BudgetExhausted
from .providers import provider

__all__ = [
    "Budget",
    "Ledger",
    "MemoryLedger",
    "Priority",
    "Window",
    "WindowsSpec",
    "default_windows",
    "scopes_for",
]


class Priority(IntEnum):
    BACKFILL = 0
    COMMAND = 1
    FRESH = 2


SHARE = {Priority.BACKFILL: 0.8, Priority.COMMAND: 0.9, Priority.FRESH: 1.0}
LONG_WINDOW = 3600.0  # windows this long or longer keep a share for higher priorities


@dataclass(frozen=True)
class Window:
    seconds: float
    limit: int

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.limit < 1:
            raise ValueError(f"invalid budget window {self.limit}/{self.seconds}s")

    def limit_for(self, priority: Priority) -> int:
        """The part of this window ``priority`` may use (at least one request)."""
        if self.seconds < LONG_WINDOW:
            return self.limit
        return max(1, math.floor(self.limit * SHARE[priority]))


class Ledger(Protocol):
    def record_request(self, scope: str, at: float) -> None: ...

    def request_times(self, scope: str, since: float) -> list[float]: ...


class MemoryLedger:
    """A ledger in memory (tests, or a bridge without a store)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = {}

    def record_request(self, scope: str, at: float) -> None:
        with self._lock:
            self._times.setdefault(scope, []).append(at)

    def request_times(self, scope: str, since: float) -> list[float]:
        with self._lock:
            return sorted(t for t in self._times.get(scope, []) if t >= since)


WindowsSpec = Mapping[str, Sequence[Window]] | Callable[[str], Sequence[Window]]


def default_windows(provider_name: str) -> dict[str, list[Window]]:
    """Safe defaults per provider, keyed by scope prefix (see :func:`scopes_for`): the
    quotas of its :class:`~linky2mqtt.enedis.providers.Provider` description."""
    return {scope: [Window(seconds, limit) for seconds, limit in windows]
            for scope, windows in provider(provider_name).quotas.items()}


def scopes_for(provider_name: str, account: str, pdl: str | None) -> list[str]:
    """The scopes one request of ``account`` about ``pdl`` counts against."""
    return provider(provider_name).scopes(account, pdl)


class Budget:
    """Sliding windows per scope; thread-safe."""

    def __init__(
        self,
        windows: WindowsSpec,
        ledger: Ledger | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_wait: float = 2.0,
        *,
        waiting: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self._spec = windows
        # entered around the pacing sleep (the bridge gives its account thread's turn up:
        # linky2mqtt.turns)
        self.waiting = waiting
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.clock = clock
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}

    def windows(self, scope: str) -> Sequence[Window]:
        if callable(self._spec):
            return self._spec(scope)
        key = scope
        while True:
            if key in self._spec:
                return self._spec[key]
            if ":" not in key:
                return ()
            key = key.rsplit(":", 1)[0]

    def _history(self, scope: str, now: float) -> deque[float]:
        times = self._times.get(scope)
        longest = max((w.seconds for w in self.windows(scope)), default=0.0)
        if times is None:
            loaded = self.ledger.request_times(scope, now - longest) if longest else []
            times = deque(sorted(loaded))
            self._times[scope] = times
        while times and times[0] <= now - longest:
            times.popleft()
        if times and times[-1] > now:
            # the wall clock went back (NTP, a manual fix): what was recorded "later" was
            # sent before now, so it counts as now instead of blocking for the jump's length
            ahead = 0
            while times and times[-1] > now:
                times.pop()
                ahead += 1
            times.extend([now] * ahead)
        return times

    def _allowed_at(self, scopes: Iterable[str], priority: Priority, now: float) -> float:
        """Earliest time (>= now) at which all scopes allow one more request."""
        allowed = now
        for scope in scopes:
            times = self._history(scope, now)
            for window in self.windows(scope):
                limit = window.limit_for(priority)
                # ``times`` is ascending: the window's requests are its tail (no scan of
                # the whole history at each request)
                first = bisect.bisect_right(times, now - window.seconds)
                recent = len(times) - first
                if recent >= limit:
                    # wait until enough of them leave the window
                    allowed = max(allowed, times[first + recent - limit] + window.seconds)
        return allowed

    def next_allowed(self, scopes: Iterable[str], priority: Priority = Priority.FRESH) -> float:
        """Epoch seconds when a request in ``scopes`` at ``priority`` would be allowed."""
        scopes = list(scopes)
        with self._lock:
            return self._allowed_at(scopes, priority, self.clock.time())

    def acquire(self, scopes: Iterable[str], priority: Priority = Priority.FRESH) -> float:
        """Record one request now, waiting up to ``max_wait``; else raise BudgetExhausted.

        Returns the time recorded, for :meth:`settle` when the request goes out.
        """
        scopes = list(scopes)
        while True:
            with self._lock:
                now = self.clock.time()
                at = self._allowed_at(scopes, priority, now)
                if at <= now:
                    for scope in scopes:
                        self._history(scope, now).append(now)
                        self.ledger.record_request(scope, now)
                    return now
            if at - now > self.max_wait:
                raise BudgetExhausted(at, scope=",".join(scopes))
            with self.waiting():
                self.clock.sleep(at - now)

    def settle(self, scopes: Iterable[str], sent_at: float) -> None:
        """The request recorded at ``sent_at`` is going out now: count it from now.

        The upstream counts a request when it arrives. A thread stalled between the
        budget's record and the send (a loaded machine, the hand-over to the exchange
        worker) would otherwise let the next window open before the upstream's and earn
        a 429; counted from the moment it leaves, only the network's own delay remains,
        which the one-second windows' margin covers (``budgets.SHORT_WINDOW_MARGIN``).
        Not from the answer: that would charge every slot the upstream's whole answer
        time (100 ms of latency cost a 100-meter cycle 8 % of its rate in our benchmark).
        Only the in-memory windows move; the ledger keeps the first record.
        """
        with self._lock:
            now = self.clock.time()
            if now <= sent_at:
                return
            for scope in scopes:
                times = self._times.get(scope)
                if not times:
                    continue
                for i in range(len(times) - 1, -1, -1):  # recent stamps are at the end
                    if times[i] == sent_at:
                        del times[i]
                        bisect.insort(times, now)
                        break

    def used(self, scope: str, seconds: float) -> int:
        """Requests recorded in ``scope`` during the last ``seconds``."""
        with self._lock:
            now = self.clock.time()
            times = self._history(scope, now)
            return len(times) - bisect.bisect_right(times, now - seconds)


# The keys of a budget override and the window (seconds) each one sets.
KEYS = {"per_second": 1.0, "per_hour": 3600.0, "per_12h": 43200.0, "per_day": 86400.0}


class Limits(Protocol):
    """A budget override as the configuration holds it: requests per window, or None."""

    @property
    def per_second(self) -> int | None: ...
    @property
    def per_hour(self) -> int | None: ...
    @property
    def per_12h(self) -> int | None: ...
    @property
    def per_day(self) -> int | None: ...


def _default_scope(provider: str, seconds: float) -> str:
    """The provider-default scope prefix a window of ``seconds`` belongs to."""
    if provider == "myelectricaldata" and seconds <= 1.0:
        return "myelectricaldata:account"
    return provider


def default_limit(provider: str, seconds: float) -> int | None:
    """The provider's default limit for a window of ``seconds``, None if it has none."""
    for w in default_windows(provider).get(_default_scope(provider, seconds), []):
        if w.seconds == seconds:
            return w.limit
    return None


def above_default(provider: str, override: Limits) -> list[tuple[str, int, int]]:
    """The override's windows above the provider's defaults: (key, value, default)."""
    out = []
    for key, seconds in KEYS.items():
        value = getattr(override, key)
        default = default_limit(provider, seconds)
        if value is not None and default is not None and value > default:
            out.append((key, value, default))
    return out
