"""The Tempo worker against the simulator's Tempo stand-in over HTTP, on a settable clock:
when it asks, what it stores, what it publishes; unknown is never blue."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS
from linky2mqtt.mqtt import MqttLink
from linky2mqtt.price_worker import PriceWorker
from linky2mqtt.pricing import Pricing
from linky2mqtt.publisher import Publisher
from linky2mqtt.simulator.server import ServerThread, serve_tempo
from linky2mqtt.simulator.tempo import TempoStandIn, colour_of
from linky2mqtt.store import Store
from linky2mqtt.tariffs import Colour
from linky2mqtt.tempo_worker import BACKOFF, TempoWorker, build
from tests.support.clock import SUITE_CLOCK, HeldClock

PDL = "12345678901234"


class Link:
    """What the publisher needs of the MQTT link: records each publication."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                on_ack: Any = None) -> bool:
        self.sent.append((topic, json.loads(payload) if payload else None, retain))
        return True

    def last(self, topic: str) -> Any:
        return [p for t, p, _ in self.sent if t == topic][-1]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[HeldClock, TempoStandIn, TempoWorker, Link, Store]]:
    clock = HeldClock(datetime(2026, 12, 1, 9, 0, tzinfo=PARIS))
    stand_in = TempoStandIn(clock)
    server: ServerThread = serve_tempo(stand_in)
    url = f"http://127.0.0.1:{server.port}"
    cfg = load_text(f"""
accounts:
  - name: a
    provider: conso
    token: t
    meters:
      - pdl: "{PDL}"
        tariffs:
          - from: 2026-08-01
            option: tempo
            prices: {{hc_blue: 0.1356, hp_blue: 0.1654, hc_white: 0.1536, hp_white: 0.1921,
                     hc_red: 0.1615, hp_red: 0.7295}}
tempo:
  base_url: {url}
""")
    store = Store(tmp_path / "s.db", clock=clock)
    link = Link()
    publisher = Publisher(cast(MqttLink, link), store, "l2m")
    meter = cfg.accounts[0].meters[0]
    pricing = Pricing(store, "l2m", lambda pdl: meter if pdl == PDL else None)
    publisher.pricing = pricing
    worker = build(cfg, publisher, pricing=pricing, pdls=lambda: [PDL], clock=clock,
                   stopping=threading.Event())
    assert worker is not None
    try:
        yield clock, stand_in, worker, link, store
    finally:
        worker.http.close()
        server.stop()
        store.close()


def test_season_at_start_then_tomorrow_after_eleven_and_a_recheck(
        setup: tuple[HeldClock, TempoStandIn, TempoWorker, Link, Store]) -> None:
    clock, stand_in, worker, link, store = setup
    wait = worker.step(first=True)
    stored = store.tempo_days(date(2026, 9, 1), date(2026, 12, 3))
    assert len(stored) == 93  # September 1 .. December 2: the season and tomorrow
    assert stored[date(2026, 12, 1)][0] == str(colour_of(date(2026, 12, 1)))
    assert stored[date(2026, 12, 2)] == (None, "api-couleur-tempo")  # not out at 09:00
    assert link.last("l2m/tempo/tomorrow") == {"date": "2026-12-02", "colour": None,
                                               "source": "api-couleur-tempo", "prices": None,
                                               "error": None}
    today = link.last("l2m/tempo/today")
    colour = str(colour_of(date(2026, 12, 1)))
    assert today["date"] == "2026-12-01" and today["colour"] == colour
    assert today["prices"] == {"hp": {"blue": 0.1654, "white": 0.1921, "red": 0.7295}[colour],
                               "hc": {"blue": 0.1356, "white": 0.1536, "red": 0.1615}[colour]}
    assert [r for t, _, r in link.sent if t.startswith("l2m/tempo/")] == [True, True]
    assert wait == 2 * 3600  # next: 11:00, when tomorrow is asked
    asked = stand_in.count("rte") + stand_in.count("community")
    clock.at = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)
    worker.step(first=False)  # before 11:00: tomorrow not asked, today known: nothing
    assert stand_in.count("rte") + stand_in.count("community") == asked
    # 11:00: published at 10:30, asked and stored; the re-check is at 12:00
    clock.at = datetime(2026, 12, 1, 11, 0, tzinfo=PARIS)
    wait = worker.step(first=False)
    assert store.tempo_days(date(2026, 12, 2), date(2026, 12, 3))[date(2026, 12, 2)][0] == \
        str(colour_of(date(2026, 12, 2)))
    assert link.last("l2m/tempo/tomorrow")["colour"] == str(colour_of(date(2026, 12, 2)))
    assert wait == 3600
    stand_in.set_colour(date(2026, 12, 2), Colour.RED)  # changed before 11:15
    clock.at = datetime(2026, 12, 1, 12, 0, tzinfo=PARIS)
    wait = worker.step(first=False)
    assert link.last("l2m/tempo/tomorrow")["colour"] == "red"
    assert wait == pytest.approx(12 * 3600 + 60)  # then: the topics roll over at 00:01
    clock.at = datetime(2026, 12, 2, 0, 1, tzinfo=PARIS)
    worker.step(first=False)
    assert link.last("l2m/tempo/today")["colour"] == "red"
    assert link.last("l2m/tempo/tomorrow") == {"date": "2026-12-03", "colour": None,
                                               "source": None, "prices": None, "error": None}


def test_unknown_stays_unknown_and_failures_back_off(
        setup: tuple[HeldClock, TempoStandIn, TempoWorker, Link, Store]) -> None:
    clock, stand_in, worker, link, store = setup
    clock.at = datetime(2026, 12, 1, 11, 30, tzinfo=PARIS)
    stand_in.unknown(date(2026, 12, 2))  # codeJour 0 all day (a known incident)
    assert worker.step(first=True) == 30 * 60  # tomorrow unknown: asked again in 30 min
    assert store.tempo_days(date(2026, 12, 2), date(2026, 12, 3))[date(2026, 12, 2)][0] is None
    assert link.last("l2m/tempo/tomorrow")["colour"] is None  # never blue
    stand_in.script("community", ["503", "drop", "500"])
    clock.at += timedelta(minutes=30)
    assert worker.step(first=False) == BACKOFF[0]
    clock.at += timedelta(minutes=5)
    assert worker.step(first=False) == BACKOFF[1]
    assert worker.last_error is not None and "sim-secret" not in worker.last_error
    # the subscriber sees why the colour is unknown, next to it
    tomorrow = link.last("l2m/tempo/tomorrow")
    assert tomorrow["colour"] is None and tomorrow["error"] == worker.last_error
    assert tomorrow["error"].startswith("api-couleur-tempo /api/jourTempo/2026-12-02: no answer")
    # a source answering unknown later never erases a known colour
    known = store.tempo_days(date(2026, 11, 30), date(2026, 12, 1))[date(2026, 11, 30)]
    stand_in.unknown(date(2026, 11, 30))
    worker.fetch(date(2026, 11, 30), date(2026, 12, 1))
    assert store.tempo_days(date(2026, 11, 30), date(2026, 12, 1))[date(2026, 11, 30)] == known


def test_no_worker_without_a_tempo_tariff() -> None:
    cfg = load_text('accounts:\n  - {name: a, provider: conso, token: t, meters: '
                    '[{pdl: "12345678901234"}]}\n')
    assert build(cfg, cast(Publisher, None), pricing=cast(Pricing, None), pdls=list,
                 clock=HeldClock(SUITE_CLOCK.now()), stopping=threading.Event()) is None


def test_current_price_follows_the_tempo_day_and_its_hours(
        setup: tuple[HeldClock, TempoStandIn, TempoWorker, Link, Store]) -> None:
    """``B/<pdl>/price``: the period and price now; published only when it changes; the
    hours 00:00-06:00 take the previous day's colour; unknown has no price."""
    clock, stand_in, worker, link, _ = setup
    stand_in.set_colour(date(2026, 12, 1), Colour.RED)
    clock.at = datetime(2026, 12, 1, 11, 0, tzinfo=PARIS)
    stand_in.unknown(date(2026, 12, 2))
    worker.step(first=True)
    prices = PriceWorker(worker.publisher, worker.pricing, lambda: [PDL], clock,
                         threading.Event())
    topic = f"l2m/{PDL}/price"
    seen: list[Any] = []
    for at in (datetime(2026, 12, 1, 11, 0), datetime(2026, 12, 1, 11, 1),
               datetime(2026, 12, 1, 22, 0), datetime(2026, 12, 2, 5, 59),
               datetime(2026, 12, 2, 6, 0)):
        clock.at = at.replace(tzinfo=PARIS)
        prices.step()
        seen = [p for t, p, _ in link.sent if t == topic]
    assert seen == [
        {"period": "hp_red", "price": 0.7295, "unit": "EUR/kWh"},  # 11:00 (11:01: same)
        {"period": "hc_red", "price": 0.1615, "unit": "EUR/kWh"},  # 22:00 .. 05:59 next day
        {"period": "unknown", "price": None, "unit": "EUR/kWh"},  # 06:00: Dec 2 unknown
    ]
    assert all(r for t, _, r in link.sent if t == topic)  # retained


class WaitingClock(HeldClock):
    """A set clock whose waits really wait (for a worker in its own thread)."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(seconds)


def test_the_current_price_follows_a_colour_as_soon_as_it_is_known(
        setup: tuple[HeldClock, TempoStandIn, TempoWorker, Link, Store]) -> None:
    """The price worker checks every minute; a colour becoming known wakes it at once (a
    new bridge would otherwise say "unknown" for up to a minute after its first fetch)."""
    clock, stand_in, worker, link, _ = setup
    stand_in.set_colour(date(2026, 12, 1), Colour.WHITE)
    waiting = WaitingClock(clock.at)
    prices = PriceWorker(worker.publisher, worker.pricing, lambda: [PDL], waiting,
                         threading.Event())
    worker.colours_changed = prices.poke
    topic = f"l2m/{PDL}/price"

    def published() -> list[Any]:
        return [p for t, p, _ in list(link.sent) if t == topic]

    def wait_for(count: int) -> list[Any]:
        deadline = time.monotonic() + 10  # far below the worker's minute
        while len(published()) < count:
            assert time.monotonic() < deadline, published()
            threading.Event().wait(0.01)
        return published()

    prices.start()
    try:
        assert wait_for(1) == [{"period": "unknown", "price": None, "unit": "EUR/kWh"}]
        worker.step(first=True)  # 09:00, December 1: white, hp
        assert wait_for(2)[1] == {"period": "hp_white", "price": 0.1921, "unit": "EUR/kWh"}
    finally:
        prices.stop(5)
    assert not prices.thread.is_alive()
