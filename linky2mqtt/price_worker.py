"""The price in force now, per priced meter: ``B/<pdl>/price`` (retained).

``{"period": "hc", "price": 0.1589, "unit": "EUR/kWh"}``: the tariff period in force at
this instant (Europe/Paris wall clock, Tempo colour of the Tempo day) and its price;
``price`` is null while unknown (a Tempo colour not published yet, an ``hphc`` meter
without off-peak hours) and ``period`` null when no tariff period covers today. Checked
every minute (off-peak boundaries may fall on any minute) and at once when a Tempo colour
becomes known, published when it changes, and once at start. Home Assistant's Energy
dashboard can use the matching sensor as "an entity with the current price".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from linky2mqtt.clock import Clock
from linky2mqtt.model import Kind
from linky2mqtt.pricing import Pricing
from linky2mqtt.publisher import Publisher

__all__ = ["PERIOD", "PriceWorker", "price_topic"]

log = logging.getLogger(__name__)

PERIOD = 60.0  # seconds between two checks


def price_topic(base: str, pdl: str) -> str:
    return f"{base}/{pdl}/price"


class PriceWorker:
    """Publishes each priced meter's current price when it changes, in its own thread."""

    def __init__(self, publisher: Publisher, pricing: Pricing, pdls: Callable[[], list[str]],
                 clock: Clock, stopping: threading.Event) -> None:
        self.publisher = publisher
        self.pricing = pricing
        self.pdls = pdls
        self.clock = clock
        self.stopping = stopping
        self._last: dict[str, dict[str, Any]] = {}
        self._wake = threading.Event()  # set by poke() and stop(): check before the minute
        self.thread = threading.Thread(target=self._run, name="price", daemon=True)

    def wanted(self) -> bool:
        return any(self.pricing.priced(pdl, Kind.CONSUMPTION) for pdl in self.pdls())

    def start(self) -> None:
        if self.wanted():
            self.thread.start()

    def poke(self) -> None:
        """Check now, not at the next minute: what a price depends on changed (a Tempo
        colour became known)."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self._wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def step(self) -> None:
        now = self.clock.now()
        for pdl in self.pdls():
            payload = self.pricing.price_now(pdl, now)
            if payload is None or payload == self._last.get(pdl):
                continue
            self.publisher.retained(price_topic(self.publisher.base, pdl), payload)
            self._last[pdl] = payload

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception:  # keep the thread alive; the next minute tries again
                log.exception("current price: unexpected error")
            self.clock.wait(self._wake, PERIOD)
            self._wake.clear()
