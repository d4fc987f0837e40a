"""What a first run says at ``info``: backfill progress per account, and what to do on errors.

:class:`BackfillProgress` (one per account) follows the history fetched at start. It logs
one line at most every :data:`EVERY` seconds or at each 10 % of the days wanted, e.g.::

    account home: backfill 40 %: consumption/day 444/1,110 days, consumption/hour 298/745
    days; requests 47 (budget: 47/80 per 12 h)

then, once every meter of the account has nothing left to fetch, one line::

    account home: backfill done: 1,094 days, 729 hourly days, 108 requests, 7.7 s

When the request budget makes the backfill wait, the line says until when.

:func:`hint` gives the one thing to do about an upstream error (shown after `` -- `` in
its log line). Progress lines use real elapsed time (they are for a person reading the
log), whatever clock the bridge runs on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from linky2mqtt.enedis import REGISTRY, errors
from linky2mqtt.model import PARIS, Series

__all__ = ["EVERY", "BackfillProgress", "SeriesCount", "hint"]

log = logging.getLogger("linky2mqtt.backfill")

EVERY: Final = 10.0  # seconds between progress lines (at most)
STEP: Final = 10  # ... or one line each STEP percent
# a series lacking at most this many days is a daily poll's catch-up (yesterday, and the
# day before when yesterday came late), not a backfill
DAILY_LAG: Final = 2


@dataclass(frozen=True, slots=True)
class SeriesCount:
    """Days held and wanted of one series of one meter (``label``: consumption/day...)."""

    label: str
    held: int
    wanted: int


def _n(value: int) -> str:
    return f"{value:,}"


def hint(exc: BaseException, provider: str | None = None) -> str:
    """What the user can do about ``exc`` (an upstream error), in a few words."""
    if isinstance(exc, errors.AuthError):
        desc = REGISTRY.get(provider or "")
        where = desc.auth_hint if desc is not None else "check the account's credentials"
        return f"{where}, then restart"
    if isinstance(exc, errors.BudgetExhausted):
        return "nothing to do: the request budget allows more later"
    if isinstance(exc, errors.QuotaError):
        return "nothing to do: the provider's quota resets later; lower the account's budget"
    if isinstance(exc, errors.TransportError | errors.ServerError | errors.BadResponse):
        return "nothing to do if it passes: retried automatically; check base_url if it lasts"
    if isinstance(exc, errors.BadRequest):
        return "check the PDL and the series asked (production, max_power) for this meter"
    return "retried automatically; run with log level debug for details"


class BackfillProgress:
    """Backfill progress of one account's meters, logged for a person reading the log.

    ``counts()`` returns the held/wanted days of every series (a store query);
    ``requests()`` the requests counted against the account's budget since a time;
    ``budget()`` a short ``used/limit per window`` text. ``stored`` and ``polled`` are
    called by the account's thread.
    """

    def __init__(self, account: str, counts: Callable[[], list[SeriesCount]],
                 requests: Callable[[float], int], budget: Callable[[], str], *,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 every: float = EVERY) -> None:
        self.account = account
        self._counts = counts
        self._requests = requests
        self._budget = budget
        self._wall = wall
        self._monotonic = monotonic
        self._every = every
        self._lock = threading.Lock()
        self.active = False
        self.finished = False
        self._t0 = 0.0
        self._wall0 = 0.0
        self._poll_wall: float | None = None  # when the poll under way began
        self._last_line = 0.0
        self._last_step = -1
        self._days = 0  # daily days fetched
        self._hours = 0  # hourly days fetched
        self._left: dict[str, int] = {}
        self._waiting_until: float | None = None
        self._estimate: dict[str, list[int]] = {}  # label -> [held, wanted]

    # -- events ----------------------------------------------------------------------

    def poll_began(self) -> None:
        """A poll of one of the account's meters begins: if it stores the first window,
        the backfill's requests are counted from here (its token and first request come
        before that window is parsed and committed, seconds before on a loaded machine)."""
        if not self.active and not self.finished:
            with self._lock:
                self._poll_wall = self._wall()

    def stored(self, label: str, series: Series, fetched: Iterable[date]) -> None:
        """A window of one series (``label`` consumption/day...) was fetched and
        committed."""
        if self.finished:
            return
        n = len(set(fetched))
        first = False
        with self._lock:
            if not self.active:
                self.active = first = True
                self._t0 = self._monotonic()
                # the requests of the poll that stored this window count
                self._wall0 = self._wall() if self._poll_wall is None else self._poll_wall
                self._last_line = self._t0
            if series == "curve":
                self._hours += n
            else:
                self._days += n
        if first:  # the exact figures, once; then counted as windows come in
            counts = self._counts()
            self._estimate = {label: [held, wanted] for label, held, wanted
                              in _by_label(counts)}
            if n <= DAILY_LAG and all(c.wanted - min(c.held, c.wanted) <= DAILY_LAG
                                      for c in counts):
                # a daily poll (of one meter or of a whole fleet), not a backfill: nothing
                # to narrate, and no more counting of the store
                self.finished = True
                return
        else:
            est = self._estimate.get(label)
            if est is not None:
                est[0] = min(est[1], est[0] + n)
        self._maybe_line()

    def polled(self, pdl: str, left: int, budget_retry_at: float | None,
               error: str | None, pdls: Iterable[str]) -> None:
        """A poll of ``pdl`` ended with ``left`` days still wanted (after this poll)."""
        if self.finished or not self.active:
            return
        with self._lock:
            self._left[pdl] = left if error is None or left else max(left, 1)
            if budget_retry_at is not None:
                self._left[pdl] = max(left, 1)
                self._waiting_until = budget_retry_at
            elif left == 0:
                self._waiting_until = None
            done = all(self._left.get(p, 1) == 0 for p in pdls)
        if budget_retry_at is not None:
            self._line()
        elif done:
            self._done()

    # -- lines -----------------------------------------------------------------------

    def _maybe_line(self) -> None:
        now = self._monotonic()
        wanted = sum(w for _, w in self._estimate.values())
        held = sum(h for h, _ in self._estimate.values())
        pct = 100 if wanted == 0 else int(100 * held / wanted)
        with self._lock:
            due = now - self._last_line >= self._every or pct // STEP > self._last_step
        if due and pct < 100:  # at 100 % the "backfill done" line follows
            self._line()

    def _line(self) -> None:
        counts = self._counts()  # exact, from the store
        pct = _percent(counts)
        self._estimate = {label: [h, w] for label, h, w in _by_label(counts)}
        with self._lock:
            self._last_line = self._monotonic()
            self._last_step = max(self._last_step, pct // STEP)
            waiting = self._waiting_until
            since = self._wall0
        series = ", ".join(f"{label} {_n(held)}/{_n(wanted)} days"
                           for label, held, wanted in _by_label(counts))
        text = (f"account {self.account}: backfill {pct} %: {series}; "
                f"requests {_n(self._requests(since))} (budget: {self._budget()})")
        if waiting is not None:
            at = datetime.fromtimestamp(waiting, PARIS)
            text += (f"; waiting for the request budget until {at:%H:%M} "
                     f"({_duration(waiting - self._wall())})")
        log.info("%s", text)

    def _done(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
            elapsed = self._monotonic() - self._t0
            days, hours, since = self._days, self._hours, self._wall0
        missing = sum(w - min(h, w) for _, h, w in _by_label(self._counts()))
        extra = (f" ({_n(missing)} wanted days not available upstream: asked again "
                 "on later polls)") if missing else ""
        log.info("account %s: backfill done: %s days, %s hourly days, %s requests, %.1f s%s",
                 self.account, _n(days), _n(hours), _n(self._requests(since)), elapsed, extra)


def _by_label(counts: list[SeriesCount]) -> list[tuple[str, int, int]]:
    """Per series label, summed over the meters (in first-seen order)."""
    out: dict[str, list[int]] = {}
    for c in counts:
        held_wanted = out.setdefault(c.label, [0, 0])
        held_wanted[0] += min(c.held, c.wanted)
        held_wanted[1] += c.wanted
    return [(label, hw[0], hw[1]) for label, hw in out.items()]


def _percent(counts: list[SeriesCount]) -> int:
    wanted = sum(c.wanted for c in counts)
    held = sum(min(c.held, c.wanted) for c in counts)
    return 100 if wanted == 0 else int(100 * held / wanted)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"in {seconds} s"
    if seconds < 5400:
        return f"in {round(seconds / 60)} min"
    return f"in {seconds / 3600:.1f} h"


def budget_text(view: Mapping[str, Any]) -> str:
    """``{"12h": {"used": 47, "limit": 80}, "second": ...}`` -> ``47/80 per 12 h``: the
    windows of a minute or more (the per-second pacing says nothing to a reader)."""
    parts = []
    for key, value in view.items():
        name = key.rsplit("/", 1)[-1]
        if not isinstance(value, dict) or name == "second":
            continue
        if name.endswith("s") and name[:-1].replace(".", "").isdigit():
            if float(name[:-1]) < 60:
                continue
            name = f"{float(name[:-1]):g} s"
        label = {"12h": "12 h"}.get(name, name)
        parts.append(f"{value.get('used')}/{value.get('limit')} per {label}")
    return ", ".join(parts) or "no limit"
