"""One poll of one meter: ask upstream for what the store lacks, store it, say what changed.

A meter keeps up to four *series*: (kind, "daily") for day/month values and max power,
(kind, "curve") for the hourly series. For each series the poll computes the days wanted
(:func:`scheduler.wanted_days`), removes those the store holds, those given up on (a gap
asked on :data:`scheduler.MAX_GAP_ATTEMPTS` days) and those already found empty today (the
store's gaps table, so a restart does not ask them again), and covers the rest with the fewest
calls (:func:`scheduler.plan_windows`), newest first. The window holding yesterday goes out
at ``FRESH`` priority, the rest at ``BACKFILL``: when the budget says no, the poll stops and
reports when it may go on. Data is committed to the store before anyone publishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from linky2mqtt import plausible
from linky2mqtt.config import MeterConfig
from linky2mqtt.enedis import (
    EnedisClient,
    FetchResult,
    Priority,
    RetryPolicy,
    errors,
    is_transient,
)
from linky2mqtt.model import (
    PARIS,
    Kind,
    Reading,
    Series,
    Step,
    aggregate_hours,
    day_bounds,
    epoch_bounds,
    local_days,
)
from linky2mqtt.scheduler import (
    MAX_GAP_ATTEMPTS,
    PollResult,
    Result,
    plan_windows,
    wanted_days,
    yesterday_published,
)
from linky2mqtt.store import Store

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class MeterSeries:
    """One series a meter asks for (:data:`~linky2mqtt.model.Series`) of one kind, with
    its backfill depth in days."""


    kind: Kind
    series: Series
    backfill: int

    @property
    def label(self) -> str:
        return f"{self.kind.value}/{'hour' if self.series == 'curve' else 'day'}"


def meter_series(meter: MeterConfig) -> list[MeterSeries]:
    """The series a meter's configuration asks for, freshest-needed first.

    ``consumption: false`` (a production-only delivery point) drops the consumption
    series; max power is asked for if and only if ``max_power`` is true.
    """
    out: list[MeterSeries] = []
    wants_daily = bool(meter.steps & {Step.DAY, Step.MONTH})
    wants_curve = Step.HOUR in meter.steps
    kinds = (([Kind.CONSUMPTION] if meter.consumption else [])
             + ([Kind.PRODUCTION] if meter.production else []))
    for kind in kinds:
        if wants_daily:
            out.append(MeterSeries(kind, "daily", meter.backfill_day))
        if wants_curve:
            out.append(MeterSeries(kind, "curve", meter.backfill_hour))
    if meter.max_power:
        out.append(MeterSeries(Kind.MAX_POWER, "daily", meter.backfill_day))
    return out


@dataclass
class PollOutcome:
    """What one poll did. ``changed`` maps (kind, series) to the local days that changed."""

    changed: dict[tuple[Kind, Series], set[date]] = field(default_factory=dict)
    requests_windows: int = 0
    yesterday_missing: bool = False
    error: str | None = None
    fatal: bool = False  # credentials/consent: do not retry before tomorrow
    budget_retry_at: float | None = None
    left: int = 0  # days still wanted after this poll (backfill progress)
    done: int = 0
    upstream_down: bool = False  # the error was transient (5xx, no answer): retry later
    account_wide: bool = False  # ... and it was the account's (the OAuth token endpoint)
    # A 429 ended the poll (not an error: ``error`` stays None); ``quota_retry_at`` is when
    # upstream said to come back (epoch seconds), None when it did not say.
    quota: str | None = None
    quota_retry_at: float | None = None

    def schedule_result(self, ended: float) -> PollResult:
        """What :func:`linky2mqtt.scheduler.after_poll` needs of this outcome; ``ended``:
        when the poll ended (epoch seconds)."""
        if self.budget_retry_at is not None:
            return PollResult(Result.BUDGET, retry_at=self.budget_retry_at, ended=ended)
        if self.quota is not None:
            return PollResult(Result.QUOTA, retry_at=self.quota_retry_at, ended=ended)
        if self.error is not None:
            result = (Result.FATAL if self.fatal else Result.FAILED if self.upstream_down
                      else Result.ERROR)
            return PollResult(result, account_wide=self.account_wide, ended=ended)
        return PollResult(Result.OK, yesterday_missing=self.yesterday_missing, ended=ended)


class MeterPoller:
    """Polls one meter through its account's client into the store."""

    def __init__(
        self,
        meter: MeterConfig,
        client: EnedisClient,
        store: Store,
        *,
        account: str,
        disabled: set[tuple[Kind, Series]] | None = None,
    ) -> None:
        self.meter = meter
        self.client = client
        self.store = store
        self.account = account
        # series the provider refused for good (wrong direction, no hourly collection...)
        self.disabled: set[tuple[Kind, Series]] = disabled if disabled is not None else set()
        # whether the last missing_days() of a series found yesterday held (no re-read)
        self._held_yesterday: dict[tuple[Kind, Series], bool] = {}
        # Hooks set by the account thread: ``before_commit(kind, series, days)`` runs before
        # fetched readings are committed and gives the pending rows committed with them
        # (that they are to be published, crash-safe: one transaction);
        # ``after_commit(kind, series, days_fetched, days_changed, now, readings, rows)``
        # right after (to publish them; ``readings``: what was stored; ``rows``: the curve
        # rows the store holds over the fetched days' span, None when not counted).
        self.before_commit: Callable[[Kind, Series, set[date]],
                                     list[tuple[str, str, bytes]]] | None = None
        self.after_commit: Callable[[Kind, Series, set[date], set[date], datetime,
                                     list[Reading], int | None], None] | None = None
        # The contract's subscribed power (kVA), None when unknown: bounds what is
        # plausible (:mod:`linky2mqtt.plausible`). Set by the account thread.
        self.subscribed_kva: Callable[[], float | None] = lambda: None

    @property
    def pdl(self) -> str:
        return self.meter.pdl

    def missing_days(self, s: MeterSeries, today: date) -> list[date]:
        """Days of ``s`` the store lacks and that are still worth asking for, newest first."""
        wanted = wanted_days(today, s.backfill)
        oldest, newest = wanted[-1], wanted[0] + timedelta(days=1)
        if s.series == "daily":
            held = self.store.days_with_daily(self.pdl, s.kind, oldest, newest)
        else:
            held = self.store.days_with_complete_curve(self.pdl, s.kind, oldest, newest)
        yesterday = today - timedelta(days=1)
        self._held_yesterday[(s.kind, s.series)] = yesterday in held
        # a day found empty is asked again on later days (yesterday: also later today),
        # MAX_GAP_ATTEMPTS days in all; the store remembers it across restarts
        gaps = self.store.gaps(self.pdl, s.kind, s.series)
        today_from = day_bounds(today)[0].timestamp()
        out = []
        for d in wanted:
            if d in held:
                continue
            attempts, last = gaps.get(d, (0, 0.0))
            if d != yesterday and (attempts >= MAX_GAP_ATTEMPTS or last >= today_from):
                continue
            out.append(d)
        # days an earlier version stored wrong (store migration): fetched once more,
        # whatever the gap attempts and the backfill window say
        repairs = self.store.repair_days(self.pdl, s.kind, s.series)
        out.extend(d for d in repairs if d < today and d not in out)
        return sorted(out, reverse=True)

    def poll(self, now: datetime, *, fresh_only: bool = False,
             should_stop: Callable[[], bool] = lambda: False,
             retry: RetryPolicy | None = None) -> PollOutcome:
        """Fetch what the store lacks. ``retry`` replaces the client's retry policy for
        this poll (a probe after a failure makes one attempt)."""
        today = now.astimezone(PARIS).date()
        yesterday = today - timedelta(days=1)
        outcome = PollOutcome()
        plans: list[tuple[MeterSeries, tuple[date, date], Priority]] = []
        for s in meter_series(self.meter):
            if (s.kind, s.series) in self.disabled:
                continue
            missing = self.missing_days(s, today)
            if not yesterday_published(now):
                # asking before Enedis publishes it only spends quota on a 404
                missing = [d for d in missing if d != yesterday]
            if not missing:
                continue
            per_call = self.client.description.days_per_call[s.series]
            for window in plan_windows(missing, per_call):
                fresh = window[0] <= yesterday < window[1]
                if fresh_only and not fresh:
                    continue
                plans.append((s, window, Priority.FRESH if fresh else Priority.BACKFILL))
        # Fresh windows of every series first, then the backfill, newest first.
        plans.sort(key=lambda p: (p[2] != Priority.FRESH, -p[1][1].toordinal()))
        total_days = sum((w[1] - w[0]).days for _, w, _ in plans)
        for s, window, priority in plans:
            if should_stop():
                break
            if (s.kind, s.series) in self.disabled:
                continue  # refused for good by an earlier window of this poll
            try:
                result = self._fetch(s, window, priority, retry)
            except errors.BudgetExhausted as exc:
                outcome.budget_retry_at = exc.retry_at
                break
            except errors.AuthError as exc:
                outcome.error = _describe(exc)
                outcome.fatal = True
                outcome.account_wide = exc.account_wide
                break
            except errors.QuotaError as exc:
                # upstream's quota: not a failure of the poll; the retry policy waited what
                # fitted its bound, the rest of the wait is the scheduler's
                outcome.quota = _describe(exc)
                if exc.retry_after is not None:
                    outcome.quota_retry_at = self.client.clock.time() + exc.retry_after
                break
            except errors.BadRequest as exc:
                self._handle_bad_request(s, window, exc, outcome)
                continue
            except errors.EnedisError as exc:
                outcome.error = _describe(exc)
                outcome.upstream_down = is_transient(exc)
                outcome.account_wide = exc.account_wide
                break
            outcome.requests_windows += 1
            outcome.done += (window[1] - window[0]).days
            self._absorb(s, window, result, now, outcome)
        outcome.left = max(0, total_days - outcome.done)
        # yesterday held before the poll, or stored by it (its rows only: none read twice)
        outcome.yesterday_missing = any(
            not self._held_yesterday.get((s.kind, s.series), False)
            and not self._holds(s, yesterday)
            for s in meter_series(self.meter)
            if (s.kind, s.series) not in self.disabled
        )
        return outcome

    def _holds(self, s: MeterSeries, day: date) -> bool:
        nxt = day + timedelta(days=1)
        if s.series == "daily":
            return day in self.store.days_with_daily(self.pdl, s.kind, day, nxt)
        return day in self.store.days_with_complete_curve(self.pdl, s.kind, day, nxt)

    def fetch_days(self, kind: Kind, series: Series, days: list[date], now: datetime,
                   priority: Priority = Priority.COMMAND) -> PollOutcome:
        """Fetch exactly ``days`` of one series (a command's missing days), fewest calls.

        Raises nothing upstream-related: errors and budget refusals land in the outcome.
        """
        outcome = PollOutcome()
        s = MeterSeries(kind, series, 0)
        per_call = self.client.description.days_per_call[series]
        for window in plan_windows(days, per_call):
            try:
                result = self._fetch(s, window, priority)
            except errors.BudgetExhausted as exc:
                outcome.budget_retry_at = exc.retry_at
                break
            except errors.EnedisError as exc:
                outcome.error = _describe(exc)
                break
            outcome.requests_windows += 1
            self._absorb(s, window, result, now, outcome)
        return outcome

    def _fetch(self, s: MeterSeries, window: tuple[date, date], priority: Priority,
               retry: RetryPolicy | None = None) -> FetchResult:
        start, end = window
        if s.series == "curve":
            return self.client.curve(self.pdl, s.kind, start, end, priority=priority,
                                     retry=retry)
        return self.client.daily(self.pdl, s.kind, start, end, priority=priority,
                                 retry=retry)

    def _absorb(self, s: MeterSeries, window: tuple[date, date], result: FetchResult,
                now: datetime, outcome: PollOutcome) -> None:
        # impossible values are refused (whole days): they stay missing, asked again later
        readings = plausible.screen(result.readings, self.pdl, self.subscribed_kva())
        fetched_days = local_days(readings)
        pending: list[tuple[str, str, bytes]] = []
        if self.before_commit is not None and fetched_days:
            pending = self.before_commit(s.kind, s.series, fetched_days)
        start, end = window
        repairs = {d: why for d, why in self.store.repair_days(self.pdl, s.kind, s.series
                                                                ).items() if start <= d < end}
        # a curve window is counted as it is committed (its batches are built from the
        # readings when the store holds nothing else of those days); a repair below
        # deletes rows after the count: then the publisher counts again
        span = (epoch_bounds(min(fetched_days))[0], epoch_bounds(max(fetched_days))[1]
                ) if s.series == "curve" and fetched_days and not repairs else None
        changed, rows = self.store.save_window(readings, pending=pending, span=span)
        for d, why in sorted(repairs.items()):
            self._finish_repair(s, d, why, [r for r in readings if r.local_date == d],
                                changed)
        changed_days = local_days(changed)
        outcome.changed.setdefault((s.kind, s.series), set()).update(changed_days)
        if self.after_commit is not None and fetched_days:
            # published window by window, not at the end of a long backfill
            self.after_commit(s.kind, s.series, fetched_days, changed_days,
                              now, readings, rows)
        # A day of the window that is still not complete counts as a gap attempt.
        if s.series == "daily":
            held = self.store.days_with_daily(self.pdl, s.kind, start, end)
        else:
            held = self.store.days_with_complete_curve(self.pdl, s.kind, start, end)
        # Asked again the same day (yesterday's late retries, a restart), it counts once.
        today = now.astimezone(PARIS).date()
        today_from = day_bounds(today)[0].timestamp()
        yesterday = today - timedelta(days=1)
        if start <= yesterday < end:  # known now: the end of the poll asks no more
            self._held_yesterday[(s.kind, s.series)] = yesterday in held
        d = start
        cleared = []
        while d < end:
            if d in held:
                cleared.append(d)
            else:
                self.store.record_gap(self.pdl, s.kind, s.series, d, now.timestamp(),
                                      counted_from=today_from)
            d += timedelta(days=1)
        self.store.clear_gaps(self.pdl, s.kind, s.series, cleared)

    def _finish_repair(self, s: MeterSeries, day: date, why: str,
                       fetched: list[Reading], changed: list[Reading]) -> None:
        """A day listed for repair was fetched once more: when the answer covers it (and
        was plausible), what an earlier version put at a wrong instant goes; either way it
        is not listed any more (a day still incomplete is a gap like any other)."""
        whole = bool(fetched) and (s.series == "daily"
                                   or aggregate_hours(fetched, day).complete)
        if whole and s.series == "curve":
            removed = self.store.replace_curve_day(self.pdl, s.kind, day, fetched)
            if removed and not any(r.local_date == day for r in changed):
                # nothing new was written, yet rows went: the day still changed
                changed.append(fetched[0])
            log.info("%s: %s %s repaired (%d intervals, %d misplaced removed)", self.pdl,
                     s.label, day, len(fetched), removed)
        elif whole:
            log.info("%s: %s %s repaired", self.pdl, s.label, day)
        else:
            log.warning("%s: %s %s fetched once more to repair it (%s), but the answer does "
                        "not cover it: what is stored stays as it is", self.pdl, s.label,
                        day, why)
        self.store.clear_repair(self.pdl, s.kind, s.series, day)

    def _handle_bad_request(self, s: MeterSeries, window: tuple[date, date],
                            exc: errors.BadRequest, outcome: PollOutcome) -> None:
        code = getattr(exc, "code", None) or ""
        if code == "ADAM-ERR0069":
            # Wrong direction: this PDL does not produce (or consume). Stop asking.
            self.disabled.add((s.kind, s.series))
            log.warning("%s: %s refused by the provider for good: %s",
                        self.pdl, s.label, _describe(exc))
            return  # a fact about the meter, not a failure of the poll
        else:
            # Before activation or beyond the history limit: these days will never come.
            d = window[0]
            while d < window[1]:
                for _ in range(MAX_GAP_ATTEMPTS):
                    if self.store.record_gap(self.pdl, s.kind, s.series, d, 0.0) >= (
                        MAX_GAP_ATTEMPTS
                    ):
                        break
                d += timedelta(days=1)
            log.info("%s: %s %s..%s not available upstream: %s", self.pdl, s.label,
                     window[0], window[1], _describe(exc))
        outcome.error = _describe(exc)


CONSENT_HINT = ("the data-sharing consent for this PDL is missing or lost: the account holder "
                "must give it again with the provider; nothing is recorded as missing meanwhile")


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, errors.ConsentError):
        # ADAM-DC-0007 (400 since 2026) and ADAM-DC-0008: what a person has to do
        text = f"{text} ({CONSENT_HINT})"
    return text
