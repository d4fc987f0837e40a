"""The composition root: builds the parts from the configuration and runs their lifecycle.

Threads (each a daemon, all stopped by :meth:`Bridge.stop`):

* paho's network loop, owned by :class:`~linky2mqtt.mqtt.MqttLink`, plus the link's
  worker thread that runs our callbacks (connect, messages, acks) in order;
* one account thread per account (:mod:`linky2mqtt.accounts`): polls its meters when they
  are due and runs the upstream part of commands for its meters, so one failing account
  never delays another;
* the command worker (:mod:`linky2mqtt.command_worker`): answers requests in order;
* the statistics worker (:mod:`linky2mqtt.ha_statistics.worker`), when Home Assistant
  statistics import is configured.

The parts never reach back into the bridge: each is given what it needs (see
``docs/architecture.md``). At start the bridge takes the store's lock
(:mod:`linky2mqtt.storelock`: one bridge per store) and checks the store
(:mod:`linky2mqtt.storecheck`: a damaged one is refused). :meth:`Bridge.stop` is bounded
(:data:`STOP_GRACE`): it cancels every upstream exchange in progress, gives the account
threads a moment to finish what they were writing, publishes ``offline``, closes the store
and releases the lock, whatever upstream is doing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import date

from linky2mqtt import __version__, tempo_worker, topics
from linky2mqtt.accounts import AccountParts, Fleet
from linky2mqtt.budgets import budget_windows
from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.command_worker import CommandWorker, StoreReadSource
from linky2mqtt.config import AccountConfig, Config, redacted
from linky2mqtt.debounce import Debouncer
from linky2mqtt.enedis import Budget, EnedisClient, ProviderSettings, RetryPolicy, errors
from linky2mqtt.ha_statistics import StatisticsSink, StatisticsWorker, store_hours
from linky2mqtt.health import Heartbeat, health_path
from linky2mqtt.model import Kind, day_bounds
from linky2mqtt.mqtt import Incoming, MqttLink, Overflow
from linky2mqtt.price_worker import PriceWorker
from linky2mqtt.pricing import MeterTariff, Pricing
from linky2mqtt.publisher import Publisher
from linky2mqtt.store import StoreError
from linky2mqtt.storecheck import open_checked
from linky2mqtt.turns import Turns

log = logging.getLogger(__name__)

# stop() waits this long at most for the account threads (their upstream exchanges are
# cancelled at once; this only lets a store write in progress finish), so that SIGTERM is
# honoured within 5 s (Docker kills after 10).
STOP_GRACE = 2.0


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


class Bridge:
    """The long-running service: the parts, built and started, then stopped."""

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
        # StoreInUse (another bridge runs), StoreError (missing, read-only...), StoreDamaged
        self.lock, self.store = open_checked(cfg.store.path, clock)
        try:
            self._build(cfg, clock, stagger, retry, on_publish)
        except BaseException:
            self.store.close()
            self.lock.release()
            raise

    def _build(self, cfg: Config, clock: Clock, stagger: float, retry: RetryPolicy | None,
               on_publish: Callable[[str, bytes, bool], None] | None) -> None:
        # the account threads work in turns and wait together (linky2mqtt.turns)
        self.turns = Turns()
        self.budget = Budget(budget_windows(cfg), self.store, clock, waiting=self.turns.waiting)
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
        parts = AccountParts(
            store=self.store, publisher=self.publisher, budget=self.budget, clock=clock,
            stopping=self.stopping, rng=self.rng, base=self.base, poll_window=cfg.poll_window,
            curve_changed=self._curve_changed, contract_found=self._contract_found,
            turns=self.turns,
            contract_refresh=cfg.contract_refresh_days * 86400.0)
        self.fleet = Fleet(parts, redacted(cfg), stagger=stagger)
        for account in cfg.accounts:
            if account.enabled:
                self.fleet.add(account, EnedisClient(
                    provider_settings(account), budget=self.budget, retry=self.retry,
                    clock=clock, deadline=account.request_timeout, cancel=self.stopping,
                    waiting=self.turns.waiting))
        self.pricing = Pricing(self.store, self.base, self._meter)
        self.publisher.pricing = self.pricing
        self.read_source = StoreReadSource(self.store, pricing=self.pricing)
        self.prices = PriceWorker(self.publisher, self.pricing, self.fleet.pdls, clock,
                                  self.stopping)
        self.tempo = tempo_worker.build(cfg, self.publisher, pricing=self.pricing,
                                        pdls=self.fleet.pdls, clock=clock,
                                        stopping=self.stopping, changed=self._curve_changed,
                                        colours_changed=self.prices.poke)
        self.commands: CommandWorker | None = None
        if cfg.commands:
            self.commands = CommandWorker(
                self.fleet, self.read_source, self.link.publish, clock, self.stopping,
                base=self.base, policy=cfg.command_policy, homeassistant=cfg.homeassistant)
        self.statistics: StatisticsWorker | None = None
        stats = cfg.homeassistant.statistics
        if stats is not None:
            sink = StatisticsSink(stats.url, stats.token.reveal(), self.store, clock,
                                  hours_source=store_hours(self.store),
                                  series=self.fleet.hourly_series(),
                                  parts_for=self.pricing.stat_parts,
                                  parts_source=self.pricing.stat_hours)
            self.statistics = StatisticsWorker(sink, self.stopping)
        hb_path = health_path(cfg.store.path)
        self.heartbeat: Heartbeat | None = (
            Heartbeat(hb_path, lambda: self.link.connected) if hb_path else None)

    def _meter(self, pdl: str) -> MeterTariff | None:
        return self.fleet.state(pdl).meter if pdl in self.fleet.directory else None

    def _retry_sleep(self, seconds: float) -> None:
        """The wait between two attempts, cut short (Cancelled) when the bridge stops."""
        if self.clock.wait(self.stopping, seconds):
            raise errors.Cancelled("stopping: retry abandoned")

    # -- callbacks of the account threads ----------------------------------------------

    def _curve_changed(self, pdl: str, kind: Kind, since_day: date) -> None:
        """A load curve changed in the store: cached hours go, statistics follow."""
        if self.commands is not None:
            self.commands.curve_changed(pdl, kind, since_day)
        if self.statistics is not None:
            self.statistics.notify(pdl, kind, day_bounds(since_day)[0])

    def _contract_found(self) -> None:
        """Discovery went out at connect, before the contract was known: add its sensor."""
        if self.cfg.homeassistant.discovery:
            self.send_discovery()

    # -- MQTT callbacks (run on the link's worker thread, never paho's) ---------------

    def _on_connect(self) -> None:
        log.info("connected to the broker; publishing state and retained topics")
        if self.commands is not None:
            self.commands.connected()
        self.link.publish(topics.state_topic(self.base), topics.dumps(topics.bridge_state(True)),
                          qos=1, retain=True)
        # bridge/info goes out with the other retained topics, from the store
        info = topics.dumps(self.fleet.bridge_info())
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
        self.publisher.discovery(self.cfg.homeassistant.discovery_prefix,
                                 self.fleet.discovery_meters(), __version__,
                                 set(self.fleet.directory))

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        log.info("linky2mqtt %s starting: %d account(s), %d meter(s)", __version__,
                 len(self.fleet.runners), len(self.fleet.directory))
        # subscriptions made before the first connect are acknowledged before on_connect
        if self.cfg.homeassistant.discovery:
            self.link.subscribe(self.cfg.homeassistant.status_topic)
        if self.commands is not None:
            self.link.subscribe(topics.request_subscription(self.base))
            self.commands.start()
        if self.statistics is not None:
            self.statistics.start()
        self.link.start()
        self.fleet.start()
        if self.tempo is not None:
            self.tempo.start()
        self.prices.start()
        if self.heartbeat is not None:
            self.heartbeat.start()

    def stop(self) -> None:
        """Stop within about STOP_GRACE seconds plus the broker's acknowledgement of
        ``offline``: upstream exchanges in progress are abandoned, not awaited."""
        self.stopping.set()  # also cancels every upstream exchange and retry wait
        ends = time.monotonic() + STOP_GRACE
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.fleet.stop(ends)
        self.rediscovery.stop()
        self.link.stop((topics.state_topic(self.base),
                        topics.dumps(topics.bridge_state(False))))
        if self.statistics is not None:
            self.statistics.stop(max(0.5, ends - time.monotonic()))
        if self.tempo is not None:
            self.tempo.stop(max(0.5, ends - time.monotonic()))
        self.prices.stop(max(0.5, ends - time.monotonic()))
        self.fleet.close()
        self.store.close()
        self.lock.release()
        log.info("linky2mqtt stopped")

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        while not stop.wait(1.0):
            pass
        self.stop()
