"""The Tempo colours: fetched, kept in the store, published on ``B/tempo/today|tomorrow``.

One thread for the bridge (not one per account), started only when a meter has a Tempo
tariff. The schedule (Europe/Paris wall clock; the clock is injected):

* at start: the whole current season (September 1 to tomorrow), then whatever is missing;
* today's colour is known since yesterday; tomorrow's is published around 10:30-11:00
  and may change until about 11:15: from 11:00 tomorrow is asked every 30 minutes until
  it is known, then once more at 12:00 (the re-check);
* after midnight: the topics roll over (tomorrow becomes today);
* on a failure of every source: again after 5 min, 15 min, then every hour.

A colour no source knows stays unknown (``null``), never blue, and is asked again. A
colour that becomes known (or changes) makes the publisher republish the day and month
payloads of the Tempo meters it touches (the day it names and the next, whose
00:00-06:00 belongs to it).

``B/tempo/today`` and ``B/tempo/tomorrow`` (retained): ``{"date", "colour":
"blue"|"white"|"red"|null, "source", "prices": {"hp", "hc"} (EUR/kWh, or null)}``; the
prices are those in force for that colour on that date when every Tempo meter shares one
tariff (null otherwise, or when the colour is unknown).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx

from linky2mqtt.clock import Clock
from linky2mqtt.config import Config
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.pricing import Pricing
from linky2mqtt.publisher import Publisher
from linky2mqtt.tariffs import Colour, Option, Tariff, tempo_prices
from linky2mqtt.tempo import (
    COMMUNITY_BASE,
    RTE_BASE,
    CommunityTempo,
    RteTempo,
    TempoError,
    TempoSource,
    TempoSources,
)

__all__ = ["TOMORROW_FROM", "TempoWorker", "build", "tempo_topic"]

log = logging.getLogger(__name__)

TOMORROW_FROM = time(11, 0)  # tomorrow's colour is asked from then on
RECHECK_AT = time(12, 0)  # ...and once more then (the community source may change it)
RETRY_KNOWN = 30 * 60.0  # seconds between asks while tomorrow is unknown
BACKOFF = (5 * 60.0, 15 * 60.0, 3600.0)


def tempo_topic(base: str, which: str) -> str:
    return f"{base}/tempo/{which}"


def _season_start(day: date) -> date:
    return date(day.year if day.month >= 9 else day.year - 1, 9, 1)


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, PARIS)


class TempoWorker:
    """Fetches, stores and publishes the Tempo colours, in its own thread."""

    def __init__(self, sources: TempoSources, http: httpx.Client, publisher: Publisher, *,
                 pricing: Pricing, pdls: Callable[[], list[str]], clock: Clock,
                 stopping: threading.Event,
                 changed: Callable[[str, Kind, date], None] | None = None,
                 colours_changed: Callable[[], None] | None = None) -> None:
        self.sources = sources
        self.http = http  # closed by stop()
        self.publisher = publisher
        self.pricing = pricing
        self.pdls = pdls  # the meters (their Tempo ones are found through pricing)
        self.clock = clock
        self.stopping = stopping
        self.changed = changed  # (pdl, kind, first day): priced hours changed
        self.colours_changed = colours_changed  # the current price may have changed
        self.failures = 0
        self.rechecked: date | None = None  # the "tomorrow" re-checked at RECHECK_AT
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._run, name="tempo", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        self.http.close()

    # ---- one round --------------------------------------------------------------------

    def fetch(self, start: date, end: date) -> bool:
        """Ask the sources for ``[start, end)``; store and announce what changed.
        False when every source failed."""
        try:
            got = self.sources.days(start, end)
        except TempoError as exc:
            self.last_error = str(exc)
            log.warning("Tempo colours: every source failed: %s", exc)
            return False
        for failure in self.sources.failures:
            log.info("Tempo colours: %s (another source answered)", failure)
        self.last_error = None
        rows = {d: (None if t.colour is None else str(t.colour), t.source)
                for d, t in got.items()}
        changed = self.publisher.store.save_tempo_days(rows, self.clock.time())
        if changed:
            log.info("Tempo colours known: %s", ", ".join(
                f"{d} {got[d].colour}" for d in changed))
            if self.colours_changed is not None:
                self.colours_changed()
            self._republish_meters(changed)
        return True

    def _republish_meters(self, changed: list[date]) -> None:
        days = sorted({d for c in changed for d in (c, c + timedelta(days=1))})
        for pdl in self.pricing.tempo_meters(self.pdls()):
            self.publisher.split_changed(pdl, Kind.CONSUMPTION, days)
            self.publisher.curve_changed(pdl, Kind.CONSUMPTION, days)
            if self.changed is not None:  # the statistics per period follow
                self.changed(pdl, Kind.CONSUMPTION, days[0])

    def publish(self, today: date) -> None:
        colours = self.publisher.store.tempo_days(today, today + timedelta(days=2))
        tariff = self._shared_tariff()
        for which, day in (("today", today), ("tomorrow", today + timedelta(days=1))):
            colour, source = colours.get(day, (None, None))
            self.publisher.retained(tempo_topic(self.publisher.base, which),
                                    self.payload(day, colour, source, tariff, self.last_error))

    @staticmethod
    def payload(day: date, colour: str | None, source: str | None,
                tariff: Tariff | None, error: str | None = None) -> dict[str, Any]:
        """One ``B/tempo/*`` payload; ``error`` is why the last round failed (every source
        failed), None after a round a source answered."""
        known = None if colour is None else Colour(colour)
        prices = None if tariff is None else tempo_prices(tariff, day, known)
        return {"date": day.isoformat(), "colour": colour, "source": source,
                "prices": None if prices is None else {k: float(v) for k, v in prices.items()},
                "error": error}

    def _shared_tariff(self) -> Tariff | None:
        tariffs = []
        for pdl in self.pricing.tempo_meters(self.pdls()):
            meter = self.pricing.meter(pdl)
            if meter is not None and meter.tariff is not None:
                tariffs.append(meter.tariff)
        return tariffs[0] if tariffs and all(t == tariffs[0] for t in tariffs) else None

    # ---- the schedule -----------------------------------------------------------------

    def step(self, first: bool) -> float:
        """One round; the seconds until the next one."""
        now = self.clock.now().astimezone(PARIS)
        today = now.date()
        tomorrow = today + timedelta(days=1)
        if first:
            ok = self.fetch(_season_start(today), tomorrow + timedelta(days=1))
        else:
            stored = self.publisher.store.tempo_days(today - timedelta(days=1),
                                                     tomorrow + timedelta(days=1))
            missing = [d for d in (today - timedelta(days=1), today, tomorrow)
                       if stored.get(d, (None, None))[0] is None
                       and (d != tomorrow or now.time() >= TOMORROW_FROM)]
            recheck = (now.time() >= RECHECK_AT and self.rechecked != tomorrow
                       and tomorrow not in missing)
            ok = True
            if missing or recheck:
                start = min(missing) if missing else tomorrow
                ok = self.fetch(start, tomorrow + timedelta(days=1))
                if ok and recheck:
                    self.rechecked = tomorrow
        self.publish(today)
        if not ok:
            self.failures += 1
            return BACKOFF[min(self.failures, len(BACKOFF)) - 1]
        self.failures = 0
        return self._next(now)

    def _next(self, now: datetime) -> float:
        today = now.date()
        tomorrow = today + timedelta(days=1)
        known = self.publisher.store.tempo_days(tomorrow, tomorrow + timedelta(days=1))
        candidates = [_at(tomorrow, time(0, 1))]  # the topics roll over
        if now.time() < TOMORROW_FROM:
            candidates.append(_at(today, TOMORROW_FROM))
        elif known.get(tomorrow, (None, None))[0] is None:
            candidates.append(now + timedelta(seconds=RETRY_KNOWN))
        elif self.rechecked != tomorrow:
            candidates.append(max(_at(today, RECHECK_AT), now + timedelta(seconds=60)))
        return max(1.0, min(c.timestamp() for c in candidates) - now.timestamp())

    def _run(self) -> None:
        first = True
        while not self.stopping.is_set():
            try:
                wait = self.step(first)
                first = first and self.failures > 0
            except Exception:  # keep the thread alive; the next round tries again
                log.exception("Tempo colours: unexpected error")
                wait = BACKOFF[-1]
            if self.clock.wait(self.stopping, wait):
                return


def build(cfg: Config, publisher: Publisher, *, pricing: Pricing,
          pdls: Callable[[], list[str]], clock: Clock, stopping: threading.Event,
          changed: Callable[[str, Kind, date], None] | None = None,
          colours_changed: Callable[[], None] | None = None) -> TempoWorker | None:
    """The worker when a meter (or an account's ``meter_defaults``) has a Tempo period;
    RTE first when its credentials are configured, then the community source."""
    wanted = any(
        meter.tariff is not None and any(p.option is Option.TEMPO for p in meter.tariff.periods)
        for account in cfg.accounts if account.enabled
        for meter in (account.meter_defaults, *account.meters))
    tempo = cfg.tempo
    if not wanted:
        return None
    http = httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=False)
    sources: list[TempoSource] = []
    if tempo.rte_client_id is not None and tempo.rte_client_secret is not None:
        sources.append(RteTempo(http, tempo.rte_client_id, tempo.rte_client_secret.reveal(),
                                base_url=tempo.base_url or RTE_BASE, clock=clock.time))
    if tempo.community:
        sources.append(CommunityTempo(http, base_url=tempo.base_url or COMMUNITY_BASE))
    return TempoWorker(TempoSources(sources), http, publisher, pricing=pricing, pdls=pdls,
                       clock=clock, stopping=stopping, changed=changed,
                       colours_changed=colours_changed)
