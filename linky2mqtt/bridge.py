"""The composition root: wires configuration, store, clients, MQTT and schedule together.

Threads (each a daemon, all stopped by :meth:`Bridge.stop`):

* paho's network loop, owned by :class:`~linky2mqtt.mqtt.MqttLink`, plus the link's
  worker thread that runs our callbacks (connect, messages, acks) in order;
* one :class:`AccountRunner` per account: polls its meters when they are due and runs
  the upstream part of commands for its meters, so one failing account never delays
  another;
* the command worker (:mod:`linky2mqtt.service`): answers requests in order;
* the statistics worker, when Home Assistant statistics import is configured.

At start the bridge takes the store's lock (:mod:`linky2mqtt.storelock`: one bridge per
store) and checks the store (:mod:`linky2mqtt.storecheck`: a damaged one is refused).
:meth:`Bridge.stop` is bounded (:data:`STOP_GRACE`): it cancels every upstream exchange in
progress, gives the account threads a moment to finish what they were writing, publishes
``offline``, closes the store and releases the lock, whatever upstream is doing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from linky2mqtt import __version__, commands, homeassistant, plausible, topics
from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.config import AccountConfig, BudgetOverride, Config, MeterConfig, redacted
from linky2mqtt.debounce import Debouncer
from linky2mqtt.enedis import (
    Budget,
    EnedisClient,
    ProviderSettings,
    RetryPolicy,
    Window,
    aggregate_hours,
    default_windows,
    errors,
    is_transient,
    scopes_for,
)
from linky2mqtt.hastats import StatisticsSink
from linky2mqtt.health import Heartbeat, health_path
from linky2mqtt.model import PARIS, Kind, Reading, Step, day_bounds
from linky2mqtt.mqtt import Incoming, MqttLink, Overflow
from linky2mqtt.poller import MeterPoller, SeriesName, meter_series
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
from linky2mqtt.service import CommandService
from linky2mqtt.store import Store, StoreError
from linky2mqtt.storecheck import StoreDamaged, check, is_damage
from linky2mqtt.storelock import StoreLock

log = logging.getLogger(__name__)

# The first polls of an account's meters are spread over this many seconds at most.
START_SPREAD = 30.0
# stop() waits this long at most for the account threads (their upstream exchanges are
# cancelled at once; this only lets a store write in progress finish), so that SIGTERM is
# honoured within 5 s (Docker kills after 10).
STOP_GRACE = 2.0


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


_WINDOW_NAMES = {1.0: "second", 3600.0: "hour", 43200.0: "12h", 86400.0: "day"}


# Upstream counts a request when it arrives, we when we send it: a one-second window is
# paced over 1 + SHORT_WINDOW_MARGIN seconds so that transport jitter never lands one
# request too many inside the upstream's second (a 429 costs seconds of back-off).
SHORT_WINDOW_MARGIN = 0.05


def _window_name(seconds: float) -> str:
    key = 1.0 if seconds == 1.0 + SHORT_WINDOW_MARGIN else float(seconds)
    return _WINDOW_NAMES.get(key, f"{seconds:g}s")


def _override(windows: list[Window], override: BudgetOverride | None) -> list[Window]:
    if override is None:
        return windows
    wanted = {1.0: override.per_second, 3600.0: override.per_hour,
              43200.0: override.per_12h, 86400.0: override.per_day}
    out = {float(w.seconds): w for w in windows}
    for seconds, limit in wanted.items():
        if limit is not None:
            out[seconds] = Window(seconds, limit)
    return [out[k] for k in sorted(out)]


def budget_windows(cfg: Config) -> dict[str, list[Window]]:
    """The request budget of every scope: provider defaults, then per-account overrides.

    ``conso`` is one scope for the whole process (the ban is per IP): an override there
    applies to all conso accounts, the strictest limit winning.
    """
    spec: dict[str, list[Window]] = {}
    for provider in ("conso", "dataconnect", "myelectricaldata"):
        spec.update(default_windows(provider))
    for account in cfg.accounts:
        if account.budget is None:
            continue
        if account.provider == "conso":
            merged = _override(spec["conso"], account.budget)
            spec["conso"] = [
                min((w for w in merged + spec["conso"] if w.seconds == m.seconds),
                    key=lambda w: w.limit) for m in merged]
        elif account.provider == "dataconnect":
            spec[f"dataconnect:{account.name}"] = _override(spec["dataconnect"],
                                                            account.budget)
        else:
            per_pdl = _override(spec["myelectricaldata"], account.budget)
            for meter in account.meters:
                spec[f"myelectricaldata:{meter.pdl}"] = [w for w in per_pdl if w.seconds > 1]
            fast = [w for w in per_pdl if w.seconds <= 1]
            if fast:
                spec[f"myelectricaldata:account:{account.name}"] = fast
    return {scope: [Window(1.0 + SHORT_WINDOW_MARGIN, w.limit) if w.seconds == 1.0 else w
                    for w in windows] for scope, windows in spec.items()}


def _path(p: object) -> str | None:
    return None if p is None else str(p)


def provider_settings(account: AccountConfig) -> ProviderSettings:
    return ProviderSettings(
        provider=account.provider,
        token=account.token.reveal() if account.token else None,
        client_id=account.client_id,
        client_secret=account.client_secret.reveal() if account.client_secret else None,
        base_url=account.base_url,
        account=account.name,
    )


class AccountRunner:
    """Polls one account's meters on schedule, in its own thread."""

    def __init__(self, bridge: Bridge, account: AccountConfig, client: EnedisClient,
                 meters: list[MeterConfig], stagger: float) -> None:
        self.bridge = bridge
        self.account = account
        self.client = client
        self.clock = bridge.clock
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.wake = threading.Event()
        self.schedule = AccountSchedule()
        # a probe after a failure makes one attempt per request (scheduler.single_attempt)
        self.probe_retry = dataclasses.replace(client.retry, attempts=1)
        now = self.clock.time()
        self.meters: dict[str, MeterState] = {}
        # First polls are spread ``stagger`` apart, over START_SPREAD seconds at most: the
        # budget paces a big fleet anyway, and 2 s per meter would hold 1,000 meters back
        # for over half an hour.
        step = min(stagger, START_SPREAD / len(meters)) if meters else stagger
        for i, m in enumerate(meters):
            poller = MeterPoller(m, client, bridge.store, account=account.name)
            poller.before_save = functools.partial(self._before_save, m.pdl)
            poller.on_stored = functools.partial(self._stored, m.pdl)
            poller.subscribed_kva = functools.partial(
                plausible.subscribed_kva, bridge.store, topics.contract_topic(bridge.base, m.pdl))
            self.meters[m.pdl] = MeterState(m, poller, next_due=now + i * step,
                                            last_success=_last_success(bridge, m.pdl))
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
        try:
            self._reconcile()
            self._introduce()
        except errors.EnedisError as exc:  # a refused token...: one line, what to do
            log.error("account %s: %s -- %s", self.account.name, exc,
                      hint(exc, self.account.provider))
            log.debug("account %s: start-up checks failed", self.account.name, exc_info=True)
        except Exception:  # never let the introduction kill the account
            log.exception("account %s: start-up checks failed", self.account.name)
        stop = self.bridge.stopping
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
            nxt = min((s.next_due for s in self.meters.values()), default=None)
            wait = 3600.0 if nxt is None else max(0.0, nxt - self.clock.time())
            if self.jobs.empty():
                self.clock.wait(self.wake, min(wait, 6 * 3600.0))
            self.wake.clear()

    def _reconcile(self) -> None:
        """Retained values that lag the store (a crash after a commit) go out again."""
        for pdl, state in self.meters.items():
            for s in meter_series(state.meter):
                if s.series == "daily":
                    self.bridge.publisher.reconcile_daily(pdl, s.kind, self.clock.now())

    def _before_save(self, pdl: str, kind: Kind, series: SeriesName, days: set[date]) -> None:
        if series == "curve":
            self.bridge.publisher.mark_curve(pdl, kind, days)

    def _stored(  # noqa: PLR0917 - the shape of MeterPoller.on_stored, pdl bound first
            self, pdl: str, kind: Kind, series: SeriesName, fetched: set[date],
            changed: set[date], now: datetime) -> None:
        """Readings of one window were committed: publish what follows, at once."""
        self.progress.stored(f"{kind.value}/{'hour' if series == 'curve' else 'day'}",
                             series, fetched)
        pub = self.bridge.publisher
        if series == "daily":
            if changed:
                pub.daily_changed(pdl, kind, changed, now)
        else:
            pub.curve_stored(pdl, kind, fetched, changed)
            if changed:
                self.bridge.hourly_stored(pdl, kind, min(changed))

    # -- backfill progress (linky2mqtt.progress) ----------------------------------------

    def _series_counts(self) -> list[SeriesCount]:
        today = self.clock.now().astimezone(PARIS).date()
        store = self.bridge.store
        out = []
        for pdl, state in self.meters.items():
            for s in meter_series(state.meter):
                wanted = max(1, s.backfill)
                oldest = today - timedelta(days=wanted)
                held = (store.days_with_daily(pdl, s.kind, oldest, today) if s.series == "daily"
                        else store.days_with_complete_curve(pdl, s.kind, oldest, today))
                out.append(SeriesCount(s.label, len(held), wanted))
        return out

    def _requests_since(self, since: float) -> int:
        scope = scopes_for(self.account.provider, self.account.name, None)[0]
        return len(self.bridge.store.request_times(scope, since))

    def _budget_text(self) -> str:
        pdl = next(iter(self.meters), None)
        return "no meter" if pdl is None else budget_text(self.bridge.budget_view(self, pdl))

    def _introduce(self) -> None:
        """Log which PDLs the credentials cover and the contract details, once at start."""
        name = self.account.name
        covered = self.client.covered_pdls()
        if covered is not None:
            log.info("account %s: credentials cover %s", name, ", ".join(covered) or "no PDL")
            for pdl in self.meters:
                if pdl not in covered:
                    log.warning("account %s: PDL %s is not covered by this token", name, pdl)
                    state = self.meters[pdl]
                    state.last_error = "PDL not covered by the account's token"
                    self.bridge.publish_status(state)
        found = False
        for pdl in self.meters:
            if self.bridge.stopping.is_set():
                return
            known = self.bridge.store.get_retained(topics.contract_topic(self.bridge.base, pdl))
            if known:
                continue
            try:
                contract = self.client.contract(pdl)
            except errors.EnedisError as exc:
                log.warning("account %s: PDL %s: contract not available: %s", name, pdl, exc)
                if exc.account_wide and is_transient(exc):
                    # the token endpoint is down: no meter of the account can be asked now
                    self._schedule(self.meters[pdl], PollResult(
                        Result.FAILED, account_wide=True, ended=self.clock.time()),
                        self.clock.now())
                    break
                continue
            if contract is None:
                continue
            payload = topics.contract_payload(pdl, contract)
            log.info("account %s: contract found: PDL %s - %s kVA, tariff %s", name, pdl,
                     payload.get("subscribed_power_kva", "?"), payload.get("tariff", "?"))
            self.bridge.publisher.retained(topics.contract_topic(self.bridge.base, pdl),
                                           payload)
            found = True
        if found and self.bridge.cfg.homeassistant.discovery:
            # discovery went out at connect, before the contract was known: add its sensor
            self.bridge.send_discovery()

    # -- one poll ---------------------------------------------------------------------

    def poll(self, state: MeterState) -> None:
        bridge = self.bridge
        now = self.clock.now()
        pdl = state.meter.pdl
        retry = self.probe_retry if single_attempt(state.schedule, self.schedule) else None
        outcome = state.poller.poll(now, should_stop=bridge.stopping.is_set, retry=retry)
        if bridge.stopping.is_set() and outcome.error is not None:
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
        bridge.publish_status(state)

    def _schedule(self, state: MeterState, result: PollResult, now: datetime) -> Decision:
        """Apply :func:`scheduler.after_poll`: the meter's next poll, the account's hold."""
        cfg = self.bridge.cfg
        decision = after_poll(state.schedule, self.schedule, result, now,
                              refresh=state.meter.refresh, poll_window=cfg.poll_window,
                              meters_in_account=len(self.meters), rng=self.bridge.rng)
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
        by :meth:`_stored`)."""
        pdl = state.meter.pdl
        held = [d for d in (self.bridge.store.latest_daily_day(pdl, k)
                            for k in (Kind.CONSUMPTION, Kind.PRODUCTION)) if d is not None]
        state.latest_day = max(held, default=None)  # a producer has no consumption


class Bridge:
    """The long-running service."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        stagger: float = 2.0,
        retry: RetryPolicy | None = None,
        on_publish: Callable[[str, bytes, bool], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.rng = rng or random.Random()
        self.base = cfg.mqtt.base_topic
        self.stopping = threading.Event()
        self.lock = StoreLock.acquire(cfg.store.path)  # StoreInUse: another bridge runs
        try:
            try:
                self.store = Store(cfg.store.path, clock=clock)  # clear errors: missing...
            except StoreError as exc:
                if exc.__cause__ is not None and is_damage(exc.__cause__):
                    raise StoreDamaged(str(cfg.store.path), [str(exc.__cause__)]) from None
                raise
            if self.lock.path is not None and not self.lock.held:
                raise StoreError(str(cfg.store.path),
                                 f"cannot create its lock file {self.lock.path}: "
                                 f"{self.lock.error}")
            problems = check(cfg.store.path)
            if problems:
                raise StoreDamaged(str(cfg.store.path), problems)
            self._build(cfg, clock, stagger, retry, on_publish)
        except BaseException:
            if hasattr(self, "store"):
                self.store.close()
            self.lock.release()
            raise

    def _build(self, cfg: Config, clock: Clock, stagger: float, retry: RetryPolicy | None,
               on_publish: Callable[[str, bytes, bool], None] | None) -> None:
        self.budget = Budget(budget_windows(cfg), self.store, clock)
        self.retry = retry or RetryPolicy(sleep=self._retry_sleep)
        m = cfg.mqtt
        self.link = MqttLink(
            m.host, m.port, client_id=m.client_id, protocol=m.protocol,
            username=m.username,
            password=m.password.reveal() if m.password else None,
            use_tls=m.use_tls, ca_file=_path(m.tls.ca_file), cert_file=_path(m.tls.cert_file),
            key_file=_path(m.tls.key_file), insecure=m.tls.insecure,
            will_topic=topics.state_topic(self.base),
            will_payload=topics.dumps(topics.bridge_state(False)),
            on_connect=self._on_connect, on_message=self._on_message,
            on_overflow=self._on_overflow, max_payload=cfg.command_policy.max_payload,
        )
        # Home Assistant's birth messages: any number within the delay, one rediscovery
        self.rediscovery = Debouncer(self._rediscover, lambda: self.rng.uniform(1.0, 5.0),
                                     self.stopping, name="ha-rediscovery")
        self.publisher = Publisher(self.link, self.store, self.base, on_publish=on_publish)
        self.runners: list[AccountRunner] = []
        self.meter_account: dict[str, AccountRunner] = {}
        for account in cfg.accounts:
            if not account.enabled:
                continue
            client = EnedisClient(provider_settings(account), budget=self.budget,
                                  retry=self.retry, clock=clock,
                                  deadline=account.request_timeout, cancel=self.stopping)
            meters = [mm for mm in account.meters if mm.enabled]
            if account.auto_meters:
                meters = self._auto_meters(account, client)
            runner = AccountRunner(self, account, client, meters, stagger)
            self.runners.append(runner)
            for pdl in runner.meters:
                self.meter_account[pdl] = runner
        self.commands: CommandService | None = CommandService(self) if cfg.commands else None
        self.statistics: StatisticsWorker | None = None
        stats = cfg.homeassistant.statistics
        if stats is not None:
            series = [(pdl, kind) for pdl, r in self.meter_account.items()
                      if Step.HOUR in r.meters[pdl].meter.steps
                      for kind, on in ((Kind.CONSUMPTION, r.meters[pdl].meter.consumption),
                                       (Kind.PRODUCTION, r.meters[pdl].meter.production))
                      if on]
            sink = StatisticsSink(stats.url, stats.token.reveal(), self.store, clock,
                                  hours_source=self._hours_source, series=series)
            self.statistics = StatisticsWorker(sink, self.stopping)
        hb_path = health_path(cfg.store.path)
        self.heartbeat: Heartbeat | None = (
            Heartbeat(hb_path, lambda: self.link.connected) if hb_path else None)

    def _retry_sleep(self, seconds: float) -> None:
        """The wait between two attempts, cut short (Cancelled) when the bridge stops."""
        if self.clock.wait(self.stopping, seconds):
            raise errors.Cancelled("stopping: retry abandoned")

    def _auto_meters(self, account: AccountConfig, client: EnedisClient) -> list[MeterConfig]:
        try:
            pdls = client.covered_pdls() or []
        except errors.EnedisError as exc:
            log.error("account %s: cannot list the PDLs of the token: %s -- %s", account.name,
                      exc, hint(exc, account.provider))
            return []
        return [account.meter_for(p) for p in pdls]

    # -- MQTT callbacks (run on the link's worker thread, never paho's) ---------------

    def _on_connect(self) -> None:
        log.info("connected to the broker; publishing state and retained topics")
        if self.commands is not None:
            self.commands.connected()
        self.link.publish(topics.state_topic(self.base), topics.dumps(topics.bridge_state(True)),
                          qos=1, retain=True)
        # bridge/info goes out with the other retained topics, from the store
        info = topics.dumps(self.info())
        try:
            self.store.set_retained(topics.info_topic(self.base), info)
        except StoreError as exc:  # disk full: still say who we are, then the rest
            log.error("cannot record bridge/info: %s", exc)
            self.link.publish(topics.info_topic(self.base), info, qos=1, retain=True)
        if self.cfg.homeassistant.discovery:
            self.send_discovery()
        self.publisher.republish_all()

    def _on_message(self, msg: Incoming) -> None:
        if self._birth(msg):
            return
        if self.commands is not None and msg.topic.startswith(f"{self.base}/bridge/request/"):
            self.commands.submit(msg)

    def _on_overflow(self, msg: Incoming, reason: Overflow) -> None:
        """A message the link could not queue (paho's network thread: quick answers only)."""
        if self._birth(msg):
            return
        if self.commands is not None and msg.topic.startswith(f"{self.base}/bridge/request/"):
            self.commands.refuse(msg, reason)

    def _birth(self, msg: Incoming) -> bool:
        """Home Assistant's status topic: ``online`` asks for one rediscovery, soon."""
        ha = self.cfg.homeassistant
        if not (ha.discovery and msg.topic == ha.status_topic):
            return False
        if msg.payload.strip() == b"online":
            delay = self.rediscovery.poke()
            if delay is not None:
                log.info("Home Assistant is online: discovery again in %.1f s", delay)
        return True

    def _rediscover(self) -> None:
        if self.stopping.is_set():
            return
        self.send_discovery()
        self.publisher.republish_all()

    def send_discovery(self) -> None:
        meters = [self.meter_info(s) for r in self.runners for s in r.meters.values()]
        self.publisher.discovery(self.cfg.homeassistant.discovery_prefix, meters, __version__,
                                 set(self.meter_account))

    def meter_info(self, state: MeterState) -> homeassistant.MeterInfo:
        m = state.meter
        has_contract = bool(self.store.get_retained(topics.contract_topic(self.base, m.pdl)))
        return homeassistant.MeterInfo(pdl=m.pdl, name=m.name, consumption=m.consumption,
                                       production=m.production,
                                       max_power=m.max_power, has_contract=has_contract,
                                       steps=m.steps)

    # -- shared services ---------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        meters = []
        for r in self.runners:
            for s in r.meters.values():
                m = s.meter
                meters.append(topics.meter_entry(
                    m.pdl, name=m.name, account=r.account.name, steps=m.steps,
                    consumption=m.consumption, production=m.production,
                    max_power=m.max_power))
        return topics.bridge_info(__version__, meters, redacted(self.cfg))

    def budget_view(self, runner: AccountRunner, pdl: str) -> dict[str, Any]:
        """Requests used against each window of the meter's budget scopes."""
        view: dict[str, Any] = {}
        for scope in scopes_for(runner.account.provider, runner.account.name, pdl):
            for w in self.budget.windows(scope):
                name = _window_name(w.seconds)
                key = name if name not in view else f"{scope}/{name}"
                view[key] = {"used": self.budget.used(scope, w.seconds), "limit": w.limit}
        return view

    def publish_status(self, state: MeterState) -> None:
        runner = self.meter_account.get(state.meter.pdl)
        budget = self.budget_view(runner, state.meter.pdl) if runner else {}
        if state.waiting_until is not None:
            budget["waiting_until"] = datetime.fromtimestamp(
                state.waiting_until, PARIS).isoformat(timespec="seconds")
        payload = topics.status_payload(
            state.meter.pdl, state.last_poll, state.last_success, state.last_error,
            state.latest_day, budget)
        self.publisher.retained(topics.status_topic(self.base, state.meter.pdl), payload)

    def hourly_stored(self, pdl: str, kind: Kind, since_day: date) -> None:
        if self.commands is not None:
            self.commands.curve_changed(pdl, kind, since_day)
        if self.statistics is not None:
            self.statistics.notify(pdl, kind, day_bounds(since_day)[0])

    def _hours_source(self, pdl: str, kind: Kind, start: datetime,
                      end: datetime) -> list[tuple[datetime, float]]:
        """Hourly energy held for ``[start, end)``: what the statistics import sends."""
        readings = self.store.readings(pdl, kind, "curve", start, end)
        by_day: dict[date, list[Reading]] = {}
        for r in readings:
            by_day.setdefault(r.local_date, []).append(r)
        out: list[tuple[datetime, float]] = []
        for day in sorted(by_day):
            for h in aggregate_hours(by_day[day], day).hours:
                if start <= h.start < end:
                    out.append((h.start, h.wh))
        return out

    # -- for the command service -----------------------------------------------------

    def meter_views(self) -> dict[str, commands.MeterView]:
        return {pdl: commands.MeterView(production=r.meters[pdl].meter.production,
                                        max_power=r.meters[pdl].meter.max_power,
                                        consumption=r.meters[pdl].meter.consumption)
                for pdl, r in self.meter_account.items()}

    def all_pdls(self) -> list[str]:
        return sorted(self.meter_account)

    def poller_for(self, pdl: str) -> MeterPoller:
        return self.meter_account[pdl].meters[pdl].poller

    def run_on_account(self, pdl: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the thread of ``pdl``'s account, after its due polls."""
        self.meter_account[pdl].submit(fn)

    def poll_meter_now(self, pdl: str) -> None:
        """Poll one meter now (called on its account's thread)."""
        runner = self.meter_account[pdl]
        runner.poll(runner.meters[pdl])

    def info_with_status(self) -> dict[str, Any]:
        info = self.info()
        for entry in info.get("meters", []):
            body = self.store.retained_payload(topics.status_topic(self.base, entry["pdl"]))
            entry["status"] = json.loads(body) if body else None
        return info

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        log.info("linky2mqtt %s starting: %d account(s), %d meter(s)", __version__,
                 len(self.runners), len(self.meter_account))
        # subscriptions made before the first connect are acknowledged before on_connect
        if self.cfg.homeassistant.discovery:
            self.link.subscribe(self.cfg.homeassistant.status_topic)
        if self.commands is not None:
            self.link.subscribe(topics.request_subscription(self.base))
            self.commands.start()
        if self.statistics is not None:
            self.statistics.start()
        self.link.start()
        for r in self.runners:
            r.start()
        if self.heartbeat is not None:
            self.heartbeat.start()

    def stop(self) -> None:
        """Stop within about STOP_GRACE seconds plus the broker's acknowledgement of
        ``offline``: upstream exchanges in progress are abandoned, not awaited."""
        self.stopping.set()  # also cancels every upstream exchange and retry wait
        ends = time.monotonic() + STOP_GRACE
        if self.heartbeat is not None:
            self.heartbeat.stop()
        for r in self.runners:
            r.wake.set()
        for r in self.runners:
            r.thread.join(max(0.0, ends - time.monotonic()))
        busy = [r.account.name for r in self.runners if r.thread.is_alive()]
        if busy:
            log.info("stopping without waiting for account(s) %s", ", ".join(busy))
        self.rediscovery.stop()
        self.link.stop((topics.state_topic(self.base),
                        topics.dumps(topics.bridge_state(False))))
        if self.statistics is not None:
            self.statistics.stop(max(0.5, ends - time.monotonic()))
        for r in self.runners:
            if not r.thread.is_alive():
                r.client.close()  # a busy one is abandoned with the process
        self.store.close()
        self.lock.release()
        log.info("linky2mqtt stopped")

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        while not stop.wait(1.0):
            pass
        self.stop()


class StatisticsWorker:
    """Runs the Home Assistant statistics import in its own thread, never blocking MQTT."""

    PERIOD = 600.0  # also retry what is still dirty this often
    # A backfill stores its hours window by window, newest first: wait until the notices
    # stop for SETTLE seconds (MAX_SETTLE at most) so that each hour is written once,
    # not once per window.
    SETTLE = 3.0
    MAX_SETTLE = 120.0

    def __init__(self, sink: StatisticsSink, stopping: threading.Event) -> None:
        self.sink = sink
        self.stopping = stopping
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ha-statistics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def notify(self, pdl: str, kind: Kind, since: datetime) -> None:
        self.sink.notify(pdl, kind, since)
        self.wake.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._settle()
            if self.stopping.is_set():
                break
            report = self.sink.sync()
            if report.error:  # the sink logged the failure itself, once per attempt
                log.debug("Home Assistant statistics: %s", report.error)
            self.wake.wait(self.PERIOD)

    def _settle(self) -> None:
        """Return once no notice came for SETTLE seconds (or after MAX_SETTLE)."""
        deadline = time.monotonic() + self.MAX_SETTLE
        while (not self.stopping.is_set() and self.wake.is_set()
               and time.monotonic() < deadline):
            self.wake.clear()
            self.wake.wait(self.SETTLE)

    def stop(self, timeout: float = 10.0) -> None:
        self.wake.set()
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.sink.close()


def _last_success(bridge: Bridge, pdl: str) -> datetime | None:
    """The last success of the previous run, from the retained status (kept across restarts,
    so that Home Assistant's "Last success" does not turn unknown after a restart)."""
    body = bridge.store.get_retained(topics.status_topic(bridge.base, pdl))
    try:
        text = json.loads(body)["last_success"] if body else None
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except (ValueError, KeyError, TypeError):
        return None


def _local(epoch: float) -> str:
    """An instant for the log, in Paris time, to the minute."""
    return datetime.fromtimestamp(epoch, PARIS).isoformat(timespec="minutes")
