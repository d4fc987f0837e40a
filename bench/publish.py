"""Figure 3, publish path: the bridge's store to the broker against raw paho-mqtt.

A store is pre-filled with what 1,000 meters leave behind: four retained topics each
(consumption day and month, status, contract) and one pending hourly batch (24 points).
The bridge side is :meth:`Publisher.republish_all` over an :class:`MqttLink` (what runs
on every connect), timed until the broker acknowledged everything (the batches' acks
are written back to the store). The peer is a bare paho-mqtt client publishing the same
messages (same topics, sizes, retain flags) at QoS 1 to the same mosquitto, timed until
its last PUBACK. Each side runs twice, alternating; the best run of each is kept.
Ratio = bridge messages/s / raw messages/s; goal >= 0.5.

The live path (:func:`live_rows`): a store holding 2 years of 30-minute curve for
:data:`LIVE_METERS` meters; the publisher is told window by window (7 days, newest first,
the poller's calls of a backfill) exactly as ``AccountRunner`` does around each commit:
``curve_marks`` then ``curve_stored`` with the window's fetched readings and the count
its commit made (the commits, which carry the marks, are made before the timer starts).
Timed from the first window to the last PUBACK (no batch left pending), against raw
paho publishing the very batches the bridge sent, in the same run, twice each, best
kept. Goal >= 0.5.
"""

from __future__ import annotations

import tempfile
import threading
import time
from bisect import bisect_left
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import Row, broker, pdls, wait_until
from linky2mqtt import topics
from linky2mqtt.model import PARIS, Hour, HourlyDay, Kind, Reading, day_bounds, epoch_bounds
from linky2mqtt.mqtt import MqttLink
from linky2mqtt.publisher import TO_PUBLISH, Publisher
from linky2mqtt.store import Store

BASE = "linky2mqtt"
METERS = 1000


def prefill(store: Store, meters: list[str]) -> list[tuple[str, bytes, bool]]:
    """Fill ``store``; the (topic, payload, retain) list the republish sends."""
    day = date(2026, 11, 28)
    fetched = datetime(2026, 11, 29, 8, 41, tzinfo=UTC)
    start = datetime.combine(day, datetime.min.time(), PARIS)
    hours = [Hour(start + timedelta(hours=h), start + timedelta(hours=h + 1), 300.0 + 17 * h)
             for h in range(24)]
    month = {day - timedelta(days=i): 8000.0 + 31 * i for i in range(28)}
    for pdl in meters:
        ck = Kind.CONSUMPTION
        store.set_retained(topics.meter_topic(BASE, pdl, ck, "day"), topics.dumps(
            topics.day_payload(pdl, day, 8123.0, "BRUT", fetched)))
        store.set_retained(topics.meter_topic(BASE, pdl, ck, "month"), topics.dumps(
            topics.month_payload(pdl, "2026-11", month, day)))
        store.set_retained(topics.status_topic(BASE, pdl), topics.dumps(topics.status_payload(
            pdl, fetched, fetched, None, day,
            {"dataconnect:fleet/second": {"used": 2, "limit": 5},
             "dataconnect:fleet/hour": {"used": 812, "limit": 10000}})))
        store.set_retained(topics.contract_topic(BASE, pdl), topics.dumps(
            topics.contract_payload(pdl, {"subscribed_power": "9 kVA",
                                          "distribution_tariff": "BTINFCUST",
                                          "offpeak_hours": "HC (22H00-6H00)"})))
        store.add_pending_batch(topics.meter_topic(BASE, pdl, ck, "hour"), day.isoformat(),
                                topics.dumps(topics.hour_payload(pdl, HourlyDay(day, hours, True))))
    out = [(t, b, True) for t, b in store.all_retained()]
    out += [(t, b, False) for t, _k, b in store.pending_batch_entries()]
    return out


def bridge_side(port: int, store: Store) -> tuple[int, float]:
    link = MqttLink("127.0.0.1", port, client_id="bench-publisher", will_topic=f"{BASE}/x",
                    will_payload=b"")
    link.start()
    try:
        if not link.wait_connected(10):
            raise RuntimeError("the bridge link did not connect")
        publisher = Publisher(link, store, BASE)
        n = len(store.all_retained()) + len(store.pending_batch_entries())
        done = threading.Event()
        t0 = time.perf_counter()
        publisher.republish_all()
        link.publish(f"{BASE}/bench/sentinel", b"x", qos=1, on_ack=done.set)
        if not done.wait(120):
            raise RuntimeError("the broker did not acknowledge the republish")
        wait_until(lambda: not store.pending_batch_entries(), 60, "batch acks")
        elapsed = time.perf_counter() - t0
    finally:
        link.stop()
    return n, elapsed


def raw_side(port: int, messages: list[tuple[str, bytes, bool]]) -> tuple[int, float]:
    acked = 0
    done = threading.Event()
    lock = threading.Lock()

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object,
                   props: object) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == len(messages):
                done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw",
                         protocol=paho.MQTTv5)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(client.is_connected, 10, "raw paho connect")
        t0 = time.perf_counter()
        for topic, body, retain in messages:
            client.publish(topic, body, qos=1, retain=retain)
        if not done.wait(120):
            raise RuntimeError("raw paho: PUBACKs missing")
        elapsed = time.perf_counter() - t0
    finally:
        client.disconnect()
        client.loop_stop()
    return len(messages), elapsed


def run(quick: bool) -> list[Row]:
    rounds = 2
    with broker() as mqtt, tempfile.TemporaryDirectory(prefix="bench-pub-") as tmp:
        store = Store(Path(tmp) / "s.db")
        try:
            messages = prefill(store, pdls(METERS, "9"))
            raw_best = bridge_best = 0.0
            for _ in range(rounds):
                n, t = raw_side(mqtt.port, messages)
                raw_best = max(raw_best, n / t)
                # the batches are pending again for each bridge round
                for topic, key, body in [(t_, k, b) for t_, k, b in _batches(messages)]:
                    store.add_pending_batch(topic, key, body)
                n, t = bridge_side(mqtt.port, store)
                bridge_best = max(bridge_best, n / t)
        finally:
            store.close()
    ratio = bridge_best / raw_best
    return [Row(f"publish: republish {len(messages)} msgs ({METERS} meters)",
                f"{bridge_best:,.0f} msg/s", f"{raw_best:,.0f} msg/s (raw paho)", ratio,
                ">= 0.50", ratio >= 0.5), *live_rows(quick)]


def _batches(messages: list[tuple[str, bytes, bool]]) -> list[tuple[str, str, bytes]]:
    import json

    return [(t, json.loads(b)["date"], b) for t, b, retain in messages if not retain]


# ---- the live path: hourly batches as a backfill stores them --------------------------

LIVE_METERS = 3
LIVE_DAYS = 730


def curve_readings(pdl: str, days: int, last: date) -> list[Reading]:
    """``days`` days of 30-minute curve up to ``last`` (values computed here), as a
    backfill fetches them."""
    rows: list[Reading] = []
    start, _ = day_bounds(last - timedelta(days=days - 1))
    _, end = day_bounds(last)
    t, i = start, 0
    while t < end:
        rows.append(Reading(pdl, Kind.CONSUMPTION, "PT30M", t, 200.0 + (i * 37) % 900))
        t += timedelta(minutes=30)
        i += 1
    return rows


def curve_prefill(store: Store, meters: list[str], days: int, last: date) -> None:
    """:func:`curve_readings` of each meter, stored (what a backfill stores before the
    publisher is told)."""
    for pdl in meters:
        store.save_readings(curve_readings(pdl, days, last))


def live_side(port: int, store: Store, meters: list[str], days: int,
              last: date) -> tuple[list[tuple[str, bytes, bool]], float]:
    """The bridge's live path for a backfill of ``days`` days per meter, window by window
    as the poller stores them (7 days a call, newest first), as ``AccountRunner`` does
    around each commit: :meth:`Publisher.curve_marks` before it, then
    :meth:`Publisher.curve_stored` with the window's fetched readings and the count the
    commit made. The commit itself (``Store.save_window``: the readings, the window's
    marks and the count, one transaction) is made for every window before the timer
    starts, as the store holds the readings already; it is not timed. Timed from the
    first window's readings in hand until the broker acknowledged every batch (no batch
    left pending)."""
    link = MqttLink("127.0.0.1", port, client_id="bench-live", will_topic=f"{BASE}/x",
                    will_payload=b"")
    sent: list[tuple[str, bytes, bool]] = []
    link.start()
    try:
        if not link.wait_connected(10):
            raise RuntimeError("the bridge link did not connect")
        publisher = Publisher(link, store, BASE,
                              on_publish=lambda t, b, r: sent.append((t, b, r)))
        windows: list[list[date]] = []
        newest = last
        remaining = days
        while remaining > 0:
            n = min(7, remaining)
            windows.append([newest - timedelta(days=i) for i in range(n)])
            newest -= timedelta(days=n)
            remaining -= n
        # each window's readings, as the poller holds them after its fetch, and its commit
        # (built and made untimed)
        fetched: list[tuple[str, list[date], list[Reading], int | None]] = []
        for pdl in meters:
            readings = curve_readings(pdl, days, last)
            starts = [r.start for r in readings]
            topic = topics.meter_topic(BASE, pdl, Kind.CONSUMPTION, "hour")
            for window in windows:
                lo, hi = day_bounds(window[-1])[0], day_bounds(window[0])[1]
                part = readings[bisect_left(starts, lo):bisect_left(starts, hi)]
                _, stored = store.save_window(
                    part, pending=[(topic, d.isoformat(), TO_PUBLISH) for d in window],
                    span=(epoch_bounds(window[-1])[0], epoch_bounds(window[0])[1]))
                fetched.append((pdl, window, part, stored))
        done = threading.Event()
        t0 = time.perf_counter()
        for pdl, window, part, stored in fetched:
            publisher.curve_marks(pdl, Kind.CONSUMPTION, window)
            publisher.curve_stored(pdl, Kind.CONSUMPTION, window, window, part, stored=stored)
        link.publish(f"{BASE}/bench/sentinel", b"x", qos=1, on_ack=done.set)
        if not done.wait(120):
            raise RuntimeError("the broker did not acknowledge the live batches")
        wait_until(lambda: not store.pending_batch_entries(), 60, "live batch acks")
        elapsed = time.perf_counter() - t0
    finally:
        link.stop()
    return sent, elapsed


def live_rows(quick: bool) -> list[Row]:
    """Figure 3b: hourly batches of a 2-year backfill through the live path."""
    meters = pdls(LIVE_METERS, "2")
    last = date(2026, 11, 28)
    with broker() as mqtt, tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        store = Store(Path(tmp) / "s.db")
        try:
            curve_prefill(store, meters, LIVE_DAYS, last)
            raw_best = live_best = 0.0
            count = 0
            for _ in range(2):
                sent, t = live_side(mqtt.port, store, meters, LIVE_DAYS, last)
                count = len(sent)
                if count != LIVE_METERS * LIVE_DAYS:
                    raise RuntimeError(f"live path sent {count} batches, "
                                       f"not {LIVE_METERS * LIVE_DAYS}")
                live_best = max(live_best, count / t)
                n, t = raw_side(mqtt.port, sent)
                raw_best = max(raw_best, n / t)
        finally:
            store.close()
    ratio = live_best / raw_best
    return [Row(f"publish: live path, {LIVE_METERS} x {LIVE_DAYS} d backfill batches",
                f"{live_best:,.0f} msg/s", f"{raw_best:,.0f} msg/s (raw paho)", ratio,
                ">= 0.50", ratio >= 0.5, f"{count} hourly batches of 24 points")]
