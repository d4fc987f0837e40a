"""The fleet: one thread per account, and the PDL -> account directory.

Each enabled account gets an :class:`AccountRunner`, a daemon thread that polls its
meters when they are due (:mod:`linky2mqtt.scheduler` decides when; :mod:`linky2mqtt.poller`
asks upstream for what the store lacks) and, after its due polls, runs the upstream part
of commands for its meters: one failing account never delays another. What a poll stored
is published at once, window by window (:class:`~linky2mqtt.publisher.Publisher`), and the
meter's ``status`` topic says how the poll went.

A runner is given what it needs, explicitly (:class:`AccountParts`): the store, the
publisher, the budget, the clock, the stop event, the random source, the base topic, the
poll window and two callbacks to the bridge (the load curve changed; a contract became
known). It never reaches into the bridge.

:class:`Fleet` holds the runners and the directory, and offers the command worker the
narrow protocol it declares (:class:`linky2mqtt.command_worker.Meters`): the meters, a job
on a meter's account thread, a fetch of missing days, a poll now, the bridge's info.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import queue
import random
import threading
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from linky2mqtt import __version__, commands, homeassistant, topics
from linky2mqtt.budgets import window_name
from linky2mqtt.clock import Clock
from linky2mqtt.config import AccountConfig, MeterConfig
from linky2mqtt.enedis import (
    Budget,
    EnedisClient,
    Priority,
    errors,
    is_transient,
    scopes_for,
    subscribed_kva,
)
from linky2mqtt.model import PARIS, Kind, Reading, Series, Step
from linky2mqtt.poller import MeterPoller, PollOutcome, meter_series
from linky2mqtt.progress import BackfillProgress, SeriesCount, budget_text, hint
from linky2mqtt.publisher import Publisher
from linky2mqtt.scheduler import (
    AccountSchedule,
    Decision,
    MeterSchedule,
    PollResult,
    Result,
    after_poll,
    single_attempt,
)
from linky2mqtt.store import Store, StoreError
from linky2mqtt.tariffs import OPTION_PERIODS, Option, Tariff
from linky2mqtt.turns import Turns

log = logging.getLogger(__name__)

# From this many meters on, an account's first polls are not spread: they are all due at
# once and the request budget paces them at the quota's own rate (a spread on top of the
# pacing only made a small fleet wait). Fewer meters keep ``stagger`` between them.
PACED_FROM = 10
# A contract that could not be asked (upstream down...) is asked again this much later.
CONTRACT_RETRY = 3600.0
# Contracts are asked when the budget allows one within this many seconds (at BACKFILL
# priority: what the day's data leaves); else later, when it does.
CONTRACT_SLACK = 1.0

@dataclass
class MeterState:
    meter: MeterConfig
    poller: MeterPoller
    next_due: float
    last_poll: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    latest_day: date | None = None
    schedule: MeterSchedule = dataclasses.field(default_factory=MeterSchedule)
    # when the budget or the provider's quota (429) allows the next poll (status)
    waiting_until: float | None = None


@dataclass(frozen=True)
class AccountParts:
    """What every account thread is given by the bridge."""

    store: Store
    publisher: Publisher
    budget: Budget
    clock: Clock
    stopping: threading.Event  # set when the bridge stops
    rng: random.Random
    base: str  # the MQTT base topic
    poll_window: tuple[time, time]
    # the load curve of (pdl, kind) changed in the store from that day on
    curve_changed: Callable[[str, Kind, date], None]
    # a contract became known after discovery went out: discovery adds its sensor
    contract_found: Callable[[], None]
    # a meter's contract (or its absence) is asked again after this many seconds
    contract_refresh: float = 7 * 86400.0
    # the account threads work one at a time and give the turn up for every wait
    # (linky2mqtt.turns; the bridge's clients and budget give it up for theirs)
    turns: Turns = dataclasses.field(default_factory=Turns)


class AccountRunner:
    """Polls one account's meters on schedule, in its own thread."""

    def __init__(self, parts: AccountParts, account: AccountConfig, client: EnedisClient,
                 meters: list[MeterConfig], stagger: float) -> None:
        self.parts = parts
        self.account = account
        self.client = client
        self.clock = parts.clock
        self.store = parts.store
        self.publisher = parts.publisher
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.wake = threading.Event()
        self.schedule = AccountSchedule()
        # a probe after a failure makes one attempt per request (scheduler.single_attempt)
        self.probe_retry = dataclasses.replace(client.retry, attempts=1)
        now = self.clock.time()
        self.meters: dict[str, MeterState] = {}
        # contracts (:meth:`_contracts`): when each was asked, and when to ask again after
        # a failure (per meter; ``contracts_after`` for the whole account)
        checks = self.store.contract_checks()
        self.contract_checks: dict[str, tuple[float, bool]] = {}
        for m in meters:
            if m.pdl in checks:
                self.contract_checks[m.pdl] = checks[m.pdl]
            elif self.store.get_retained(topics.contract_topic(parts.base, m.pdl)):
                # stored without its check (written by other means): counts as asked now
                self.contract_checks[m.pdl] = (now, True)
        self.contract_retry: dict[str, float] = {}
        self.contracts_after = 0.0
        # First polls ``stagger`` apart for a few meters; from PACED_FROM on, the budget
        # alone paces them (2 s per meter would hold 1,000 meters back for half an hour).
        step = stagger if len(meters) < PACED_FROM else 0.0
        for i, m in enumerate(meters):
            poller = MeterPoller(m, client, self.store, account=account.name)
            poller.before_commit = functools.partial(self._mark_curve_to_publish, m.pdl)
            poller.after_commit = functools.partial(self._publish_committed, m.pdl)
            poller.subscribed_kva = StoredKva(self.store,
                                              topics.contract_topic(parts.base, m.pdl))
            self.meters[m.pdl] = MeterState(m, poller, next_due=now + i * step,
                                            last_success=self._last_success(m.pdl))
        self.thread = threading.Thread(target=self._run, name=f"account-{account.name}",
                                       daemon=True)
        self.progress = BackfillProgress(account.name, self._series_counts,
                                         self._requests_since, self._budget_text,
                                         wall=self.clock.time)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)
        self.wake.set()

    def _run(self) -> None:
        with self.parts.turns.turn():
            self._work()

    def _work(self) -> None:
        """The account thread's life, on its turn (given up for every wait)."""
        try:
            self._reconcile()
            self._introduce()
        except errors.EnedisError as exc:  # a refused token...: one line, what to do
            log.error("account %s: %s -- %s", self.account.name, exc,
                      hint(exc, self.account.provider))
            log.debug("account %s: start-up checks failed", self.account.name, exc_info=True)
        except Exception:  # never let the introduction kill the account
            log.exception("account %s: start-up checks failed", self.account.name)
        stop = self.parts.stopping
        while not stop.is_set():
            # the daily polls first, then commands that need upstream data
            due = sorted((s for s in self.meters.values() if s.next_due <= self.clock.time()),
                         key=lambda s: s.next_due)
            for state in due:
                if stop.is_set():
                    break
                if state.next_due > self.clock.time():
                    continue  # postponed by another meter's failure (upstream down)
                try:
                    self.poll(state)
                except StoreError as exc:  # disk full, read-only: say it, retry later
                    if stop.is_set():
                        break  # the store was closed under an abandoned poll
                    state.last_error = str(exc)
                    log.error("%s: poll stopped by a store error, retried later: %s",
                              state.meter.pdl, exc)
                    self._schedule(state, PollResult(Result.STORE), self.clock.now())
            while not stop.is_set():
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                try:
                    job()
                except Exception:
                    log.exception("account %s: a command failed", self.account.name)
            if stop.is_set():
                break
            try:
                contracts_at = self._contracts()
            except StoreError as exc:
                log.error("account %s: contracts stopped by a store error, retried later: %s",
                          self.account.name, exc)
                contracts_at = self.contracts_after = self.clock.time() + CONTRACT_RETRY
            nxt = min((s.next_due for s in self.meters.values()), default=None)
            if contracts_at is not None:
                nxt = contracts_at if nxt is None else min(nxt, contracts_at)
            wait = 3600.0 if nxt is None else max(0.0, nxt - self.clock.time())
            if self.jobs.empty():
                with self.parts.turns.waiting():
                    self.clock.wait(self.wake, min(wait, 6 * 3600.0))
            self.wake.clear()

    def _reconcile(self) -> None:
        """Retained values that lag the store (a crash after a commit) go out again."""
        for pdl, state in self.meters.items():
            for s in meter_series(state.meter):
                if s.series == "daily":
                    self.publisher.reconcile_daily(pdl, s.kind, self.clock.now())

    def _mark_curve_to_publish(self, pdl: str, kind: Kind, series: Series,
                               days: set[date]) -> list[tuple[str, str, bytes]]:
        """Before a commit: the marks that these hourly days are to be published,
        committed with the readings (crash-safe)."""
        if series == "curve":
            return self.publisher.curve_marks(pdl, kind, days)
        return []

    def _publish_committed(  # noqa: PLR0917 - the shape of MeterPoller.after_commit
            self, pdl: str, kind: Kind, series: Series, fetched: set[date],
            changed: set[date], now: datetime, readings: list[Reading],
            stored: int | None) -> None:
        """Readings of one window were committed: publish what follows, at once."""
        self.progress.stored(f"{kind.value}/{'hour' if series == 'curve' else 'day'}",
                             series, fetched)
        if series == "daily":
            if changed:
                self.publisher.daily_changed(pdl, kind, changed, now)
        else:
            self.publisher.curve_stored(pdl, kind, fetched, changed, readings,
                                        stored=stored)
            if changed:
                self.parts.curve_changed(pdl, kind, min(changed))

    def _last_success(self, pdl: str) -> datetime | None:
        """The last success of the previous run, from the retained status (kept across
        restarts, so that Home Assistant's "Last success" does not turn unknown)."""
        body = self.store.get_retained(topics.status_topic(self.parts.base, pdl))
        try:
            text = json.loads(body)["last_success"] if body else None
            return datetime.fromisoformat(text) if isinstance(text, str) else None
        except (ValueError, KeyError, TypeError):
            return None

    # -- status and backfill progress (linky2mqtt.progress) -----------------------------

    def budget_view(self, pdl: str) -> dict[str, Any]:
        """Requests used against each window of the meter's budget scopes."""
        budget = self.parts.budget
        view: dict[str, Any] = {}
        for scope in scopes_for(self.account.provider, self.account.name, pdl):
            for w in budget.windows(scope):
                name = window_name(w.seconds)
                key = name if name not in view else f"{scope}/{name}"
                view[key] = {"used": budget.used(scope, w.seconds), "limit": w.limit}
        return view

    def publish_status(self, state: MeterState) -> None:
        budget = self.budget_view(state.meter.pdl)
        if state.waiting_until is not None:
            budget["waiting_until"] = datetime.fromtimestamp(
                state.waiting_until, PARIS).isoformat(timespec="seconds")
        pricing = self.publisher.pricing
        tariff = None if pricing is None else pricing.status(state.meter.pdl)
        payload = topics.status_payload(
            state.meter.pdl, state.last_poll, state.last_success, state.last_error,
            state.latest_day, budget, extra=None if tariff is None else {"tariff": tariff})
        self.publisher.retained(topics.status_topic(self.parts.base, state.meter.pdl),
                                payload)

    def _series_counts(self) -> list[SeriesCount]:
        today = self.clock.now().astimezone(PARIS).date()
        out = []
        for pdl, state in self.meters.items():
            for s in meter_series(state.meter):
                wanted = max(1, s.backfill)
                oldest = today - timedelta(days=wanted)
                held = (self.store.days_with_daily(pdl, s.kind, oldest, today)
                        if s.series == "daily"
                        else self.store.days_with_complete_curve(pdl, s.kind, oldest, today))
                out.append(SeriesCount(s.label, len(held), wanted))
        return out

    def _requests_since(self, since: float) -> int:
        scope = scopes_for(self.account.provider, self.account.name, None)[0]
        return len(self.store.request_times(scope, since))

    def _budget_text(self) -> str:
        pdl = next(iter(self.meters), None)
        return "no meter" if pdl is None else budget_text(self.budget_view(pdl))

    def _introduce(self) -> None:
        """Log which PDLs the credentials cover, once at start (contracts come after the
        data: :meth:`_contracts`)."""
        name = self.account.name
        covered = self.client.covered_pdls()
        if covered is not None:
            log.info("account %s: credentials cover %s", name, ", ".join(covered) or "no PDL")
            for pdl in self.meters:
                if pdl not in covered:
                    log.warning("account %s: PDL %s is not covered by this token", name, pdl)
                    state = self.meters[pdl]
                    state.last_error = "PDL not covered by the account's token"
                    self.publish_status(state)

    # -- contracts: after the day's data, within what the budget leaves ------------------

    def _contracts(self) -> float | None:
        """Ask the contracts not known, or asked ``contract_refresh`` ago or more (a 404 or
        a provider without contracts is remembered as long), once the data is polled.

        Only when no meter is due or waiting for the budget or the provider's quota, at
        BACKFILL priority, and only while the budget allows a request now: a contract never
        holds data back. Returns when to come back (None: when the meters say).
        """
        now = self.clock.time()
        if any(s.next_due <= now or s.waiting_until is not None
               for s in self.meters.values()):
            return None  # data first: the loop comes back after the polls
        held = self.schedule.held_until
        if held is not None and held > now:
            return held  # upstream is down for the whole account
        if self.schedule.streak:
            return None  # polls are failing: the next successful one comes first
        due = {pdl: self._contract_due(pdl) for pdl in self.meters}
        found = False
        try:
            for pdl in sorted(due, key=due.__getitem__):
                now = self.clock.time()
                if due[pdl] > now:
                    return due[pdl]
                if (self.parts.stopping.is_set() or not self.jobs.empty()
                        or any(s.next_due <= now for s in self.meters.values())):
                    return now  # a poll or a command came due: it goes first
                allowed = self.client.next_allowed(pdl, Priority.BACKFILL)
                if allowed > now + CONTRACT_SLACK:
                    return allowed
                found |= self._ask_contract(pdl)
                if self.contracts_after > self.clock.time():
                    return self.contracts_after
            # every contract asked: the next refresh, or the retry of a failed one
            return min((self._contract_due(p) for p in self.meters), default=None)
        finally:
            if found:
                self.parts.contract_found()

    def _contract_due(self, pdl: str) -> float:
        """When ``pdl``'s contract is to be asked (again)."""
        checked = self.contract_checks.get(pdl)
        return max(checked[0] + self.parts.contract_refresh if checked else 0.0,
                   self.contract_retry.get(pdl, 0.0), self.contracts_after)

    def _ask_contract(self, pdl: str) -> bool:
        """Ask one meter's contract; True when one was found (and published)."""
        name = self.account.name
        try:
            contract = self.client.contract(pdl, Priority.BACKFILL)
        except errors.BudgetExhausted as exc:
            self.contract_retry[pdl] = exc.retry_at
            return False
        except errors.EnedisError as exc:
            log.warning("account %s: PDL %s: contract not available: %s", name, pdl, exc)
            if exc.account_wide:  # the token endpoint, the credentials: no meter can ask
                self.contracts_after = self.clock.time() + CONTRACT_RETRY
            elif is_transient(exc):
                self.contract_retry[pdl] = self.clock.time() + CONTRACT_RETRY
            else:  # refused for this meter: asked again after contract_refresh
                self._checked(pdl, found=False)
            return False
        if contract is None:  # 404, or a provider without contracts
            log.debug("account %s: PDL %s: no contract upstream; asked again in %.0f days",
                     name, pdl, self.parts.contract_refresh / 86400)
            self._checked(pdl, found=False)
            return False
        payload = topics.contract_payload(pdl, contract)
        log.info("account %s: contract found: PDL %s - %s kVA, tariff %s", name, pdl,
                 payload.get("subscribed_power_kva", "?"), payload.get("tariff", "?"))
        self.publisher.retained(topics.contract_topic(self.parts.base, pdl), payload)
        self._checked(pdl, found=True)
        return True

    def _checked(self, pdl: str, *, found: bool) -> None:
        at = self.clock.time()
        self.store.set_contract_check(pdl, at, found)
        self.contract_checks[pdl] = (at, found)

    # -- one poll ---------------------------------------------------------------------

    def poll(self, state: MeterState) -> None:
        stopping = self.parts.stopping
        now = self.clock.now()
        pdl = state.meter.pdl
        retry = self.probe_retry if single_attempt(state.schedule, self.schedule) else None
        self.progress.poll_began()
        outcome = state.poller.poll(now, should_stop=stopping.is_set, retry=retry)
        if stopping.is_set() and outcome.error is not None:
            return  # abandoned by stop(): not a failure worth a status
        state.last_poll = now
        self._update_latest_day(state)
        if outcome.error is None:
            state.last_error = None
            if outcome.requests_windows:
                state.last_success = now
        else:
            state.last_error = outcome.error
            log.warning("%s: poll failed: %s -- %s", pdl, outcome.error,
                        hint(errors.AuthError(outcome.error), self.account.provider)
                        if outcome.fatal else "retried automatically")
        result = outcome.schedule_result(ended=self.clock.time())
        decision = self._schedule(state, result, now)
        if result.result is Result.BUDGET:
            log.info("%s: %d days done, %d days left; the budget allows the rest from %s",
                     pdl, outcome.done, outcome.left, _local(state.next_due))
        elif result.result is Result.QUOTA:
            log.info("%s: the provider's quota is reached (%s); asking again at %s, "
                     "the other meters go on", pdl, outcome.quota, _local(state.next_due))
        elif result.result in (Result.FAILED, Result.ERROR):
            log.info("%s: next try at %s", pdl, _local(state.next_due))
        elif decision.late:
            log.info("%s: yesterday's data is not there yet; asking again at %s", pdl,
                     _local(state.next_due))
        if outcome.left and result.result is Result.OK:
            log.info("%s: backfill %d days done, %d days left", pdl, outcome.done,
                     outcome.left)
        self.progress.polled(pdl, outcome.left, outcome.budget_retry_at, outcome.error,
                             self.meters)
        self.publish_status(state)

    def _schedule(self, state: MeterState, result: PollResult, now: datetime) -> Decision:
        """Apply :func:`scheduler.after_poll`: the meter's next poll, the account's hold."""
        decision = after_poll(state.schedule, self.schedule, result, now,
                              refresh=state.meter.refresh, poll_window=self.parts.poll_window,
                              meters_in_account=len(self.meters), rng=self.parts.rng)
        state.schedule = decision.meter
        state.next_due = decision.next_due
        self.schedule = decision.account
        state.waiting_until = (decision.next_due
                               if result.result in (Result.BUDGET, Result.QUOTA) else None)
        if decision.hold_until is not None:
            # the provider is down for the whole account: its other meters wait too
            log.warning("account %s: %s; every meter of the account waits until %s",
                        self.account.name, decision.why, _local(decision.hold_until))
            for other in self.meters.values():
                if other is not state and other.next_due < decision.hold_until:
                    other.next_due = decision.hold_until
        return decision

    def _update_latest_day(self, state: MeterState) -> None:
        """The newest day held (what the poll stored was published window by window,
        by :meth:`_publish_committed`)."""
        pdl = state.meter.pdl
        held = [d for d in (self.store.latest_daily_day(pdl, k)
                            for k in (Kind.CONSUMPTION, Kind.PRODUCTION)) if d is not None]
        state.latest_day = max(held, default=None)  # a producer has no consumption


class Fleet:
    """The account threads and the PDL -> account directory.

    Implements :class:`linky2mqtt.command_worker.Meters` for the command worker.
    ``config_view`` is the redacted configuration that ``bridge/info`` carries.
    """

    def __init__(self, parts: AccountParts, config_view: dict[str, Any], *,
                 stagger: float = 2.0) -> None:
        self.parts = parts
        self.config_view = config_view
        self.stagger = stagger
        self.runners: list[AccountRunner] = []
        self.directory: dict[str, AccountRunner] = {}  # PDL -> its account's runner

    def add(self, account: AccountConfig, client: EnedisClient) -> AccountRunner:
        """One more account: its enabled meters, or those its token covers (auto_meters)."""
        meters = [m for m in account.meters if m.enabled]
        if account.auto_meters:
            meters = self._auto_meters(account, client)
        runner = AccountRunner(self.parts, account, client, meters, self.stagger)
        self.runners.append(runner)
        for pdl in runner.meters:
            self.directory[pdl] = runner
        return runner

    @staticmethod
    def _auto_meters(account: AccountConfig, client: EnedisClient) -> list[MeterConfig]:
        try:
            pdls = client.covered_pdls() or []
        except errors.EnedisError as exc:
            log.error("account %s: cannot list the PDLs of the token: %s -- %s", account.name,
                      exc, hint(exc, account.provider))
            return []
        return [account.meter_for(p) for p in pdls]

    def state(self, pdl: str) -> MeterState:
        return self.directory[pdl].meters[pdl]

    def states(self) -> list[MeterState]:
        return [s for r in self.runners for s in r.meters.values()]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for r in self.runners:
            r.start()

    def stop(self, ends: float) -> None:
        """Wake every account thread and wait for them until ``ends`` (monotonic)."""
        for r in self.runners:
            r.wake.set()
        for r in self.runners:
            r.thread.join(max(0.0, ends - _time.monotonic()))
        busy = [r.account.name for r in self.runners if r.thread.is_alive()]
        if busy:
            log.info("stopping without waiting for account(s) %s", ", ".join(busy))

    def close(self) -> None:
        for r in self.runners:
            if not r.thread.is_alive():
                r.client.close()  # a busy one is abandoned with the process

    # -- what the bridge publishes ---------------------------------------------------

    def bridge_info(self) -> dict[str, Any]:
        """The ``bridge/info`` payload: version, meters, redacted configuration."""
        meters = [topics.meter_entry(
            s.meter.pdl, name=s.meter.name, account=r.account.name, steps=s.meter.steps,
            consumption=s.meter.consumption, production=s.meter.production,
            max_power=s.meter.max_power) for r in self.runners for s in r.meters.values()]
        return topics.bridge_info(__version__, meters, self.config_view)

    def discovery_meters(self) -> list[homeassistant.MeterInfo]:
        return [self.meter_info(s) for s in self.states()]

    def meter_info(self, state: MeterState) -> homeassistant.MeterInfo:
        m = state.meter
        has_contract = bool(self.parts.store.get_retained(
            topics.contract_topic(self.parts.base, m.pdl)))
        return homeassistant.MeterInfo(pdl=m.pdl, name=m.name, consumption=m.consumption,
                                       production=m.production,
                                       max_power=m.max_power, has_contract=has_contract,
                                       steps=m.steps, **tariff_info(m.tariff))

    def hourly_series(self) -> list[tuple[str, Kind]]:
        """(PDL, kind) of every hourly series kept: what Home Assistant statistics get."""
        meters = [self.state(pdl).meter for pdl in self.directory]
        return [(m.pdl, kind) for m in meters if Step.HOUR in m.steps
                for kind, on in ((Kind.CONSUMPTION, m.consumption),
                                 (Kind.PRODUCTION, m.production)) if on]

    # -- linky2mqtt.command_worker.Meters ----------------------------------------------

    def meter_views(self) -> dict[str, commands.MeterView]:
        meters = [self.state(pdl).meter for pdl in self.directory]
        return {m.pdl: commands.MeterView(production=m.production, max_power=m.max_power,
                                          consumption=m.consumption,
                                          tariff=m.tariff is not None) for m in meters}

    def pdls(self) -> list[str]:
        return sorted(self.directory)

    def run_on_account(self, pdl: str, job: Callable[[], None]) -> None:
        """Run ``job`` on the thread of ``pdl``'s account, after its due polls."""
        self.directory[pdl].submit(job)

    def fetch_days(self, pdl: str, kind: Kind, series: Series, days: list[date],
                   now: datetime) -> PollOutcome:
        """Fetch exactly ``days`` of one series at command priority (account thread)."""
        return self.state(pdl).poller.fetch_days(kind, series, days, now)

    def poll_now(self, pdl: str) -> None:
        """Poll one meter now (called on its account's thread)."""
        self.directory[pdl].poll(self.state(pdl))

    def info(self) -> dict[str, Any]:
        """``bridge/info`` with every meter's retained status: the ``info`` command."""
        info = self.bridge_info()
        for entry in info.get("meters", []):
            body = self.parts.store.retained_payload(
                topics.status_topic(self.parts.base, entry["pdl"]))
            entry["status"] = json.loads(body) if body else None
        return info


def stored_subscribed_kva(store: Store, contract_topic: str) -> float | None:
    """The subscribed power (kVA) of the contract payload stored at ``contract_topic``
    (:func:`linky2mqtt.enedis.subscribed_kva`); None when there is no contract, or it
    does not say, or it cannot be read. It sets the plausibility limit of the meter."""
    return StoredKva(store, contract_topic)()


def _kva_of(raw: bytes | None) -> float | None:
    try:
        payload = json.loads(raw) if raw else None
    except Exception:
        return None
    return subscribed_kva(payload) if isinstance(payload, dict) else None


class StoredKva:
    """:func:`stored_subscribed_kva` of one meter, for each of its polls: the stored
    payload is read every time, parsed again only when it changed."""

    def __init__(self, store: Store, contract_topic: str) -> None:
        self.store = store
        self.topic = contract_topic
        self._seen: tuple[bytes | None, float | None] | None = None  # (payload, kVA)

    def __call__(self) -> float | None:
        try:
            raw = self.store.get_retained(self.topic)
        except Exception:
            return None
        if self._seen is None or self._seen[0] != raw:
            self._seen = (raw, _kva_of(raw))
        return self._seen[1]


def _local(epoch: float) -> str:
    """An instant for the log, in Paris time, to the minute."""
    return datetime.fromtimestamp(epoch, PARIS).isoformat(timespec="minutes")


def tariff_info(tariff: Tariff | None) -> dict[str, Any]:
    """Discovery's view of a tariff: its period names (in order) and whether it is Tempo."""
    if tariff is None:
        return {}
    names: dict[str, None] = {}
    for period in tariff.periods:
        names.update(dict.fromkeys(OPTION_PERIODS[period.option]))
    return {"periods": tuple(names),
            "tempo": any(p.option is Option.TEMPO for p in tariff.periods)}

