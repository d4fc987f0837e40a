"""A broker (re)connection that lands while a day's load curve is being committed never
publishes that day's batch from the store as it was before the commit: the batch goes out
once, built from what was committed. (The bridge marks the day before the commit, so that
a crash loses nothing; a connect replays the marks of an earlier run, not the ones under
way.) A real store; the MQTT link is a stand-in that is up or down at will."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from linky2mqtt.model import Kind, Reading, day_bounds
from linky2mqtt.publisher import Publisher
from linky2mqtt.store import Store
from tests.support.clock import SUITE_CLOCK

PDL = "12345678901234"
DAY = date(2026, 10, 25)  # 25 hours
TOPIC = f"l2m/{PDL}/consumption/hour"


class Link:
    """What the publisher needs of :class:`linky2mqtt.mqtt.MqttLink`."""

    def __init__(self) -> None:
        self.up = False
        self.sent: list[tuple[str, bytes]] = []
        self.after_acks: Callable[[], None] | None = None

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, *,
                on_ack: Callable[[], None] | None = None, **_: Any) -> bool:
        if not self.up:
            return False
        self.sent.append((topic, payload))
        return True

    def batches(self) -> list[dict[str, Any]]:
        return [json.loads(body) for topic, body in self.sent if topic == TOPIC]


def _curve(skip: int | None = None) -> list[Reading]:
    start, end = day_bounds(DAY)
    out, i = [], 0
    while start + timedelta(minutes=30 * i) < end:
        if i != skip:
            out.append(Reading(PDL, Kind.CONSUMPTION, "PT30M",
                               start + timedelta(minutes=30 * i), 100.0 + i))
        i += 1
    return out


def _rig(tmp_path: Path) -> tuple[Store, Link, Publisher]:
    store = Store(tmp_path / "s.db", clock=SUITE_CLOCK)
    store.save_readings(_curve(skip=5))  # what an earlier run held: a half-hour short
    link = Link()
    return store, link, Publisher(link, store, "l2m")  # type: ignore[arg-type]


def test_a_connect_during_the_commit_publishes_the_committed_day_once(
        tmp_path: Path) -> None:
    store, link, pub = _rig(tmp_path)
    try:
        pub.mark_curve(PDL, Kind.CONSUMPTION, [DAY])  # before the commit
        link.up = True
        pub.republish_all()  # the broker connection comes up now
        changed = store.save_readings(_curve())  # the commit
        pub.curve_stored(PDL, Kind.CONSUMPTION, {DAY}, {r.local_date for r in changed})
    finally:
        store.close()
    batches = link.batches()
    assert [(b["date"], b["complete"], len(b["points"])) for b in batches] == [
        (DAY.isoformat(), True, 25)]


def test_a_connect_during_the_commit_then_a_drop_still_delivers_the_day(
        tmp_path: Path) -> None:
    store, link, pub = _rig(tmp_path)
    try:
        pub.mark_curve(PDL, Kind.CONSUMPTION, [DAY])
        link.up = True
        pub.republish_all()
        link.up = False  # gone again before the commit ends: nothing can be sent
        changed = store.save_readings(_curve())
        pub.curve_stored(PDL, Kind.CONSUMPTION, {DAY}, {r.local_date for r in changed})
        assert link.batches() == []
        link.up = True
        pub.republish_all()  # the next connection sends what is still pending
    finally:
        store.close()
    batches = link.batches()
    assert [(b["date"], b["complete"], len(b["points"])) for b in batches] == [
        (DAY.isoformat(), True, 25)]


def test_a_crash_right_after_a_window_commit_loses_no_batch(tmp_path: Path) -> None:
    """The account thread commits a window's marks with its readings
    (``curve_marks`` then ``Store.save_window``): a crash before anything was published
    leaves both, and the next run's first connection publishes the day from the store."""
    store, link, pub = _rig(tmp_path)
    try:
        marks = pub.curve_marks(PDL, Kind.CONSUMPTION, [DAY])
        store.save_window(_curve(), pending=marks)
        # the bridge dies here; the next run starts on the same store
        link = Link()
        link.up = True
        Publisher(link, store, "l2m").republish_all()  # type: ignore[arg-type]
    finally:
        store.close()
    assert [(b["date"], b["complete"], len(b["points"])) for b in link.batches()] == [
        (DAY.isoformat(), True, 25)]


def test_a_connect_during_a_window_commit_publishes_the_committed_day_once(
        tmp_path: Path) -> None:
    """The same as the first test, the account thread's way (marks in the commit)."""
    store, link, pub = _rig(tmp_path)
    try:
        marks = pub.curve_marks(PDL, Kind.CONSUMPTION, [DAY])
        link.up = True
        pub.republish_all()  # before the commit: the day is not pending in the store yet
        changed, rows = store.save_window(_curve(), pending=marks, span=(
            int(day_bounds(DAY)[0].timestamp()), int(day_bounds(DAY)[1].timestamp())))
        pub.republish_all()  # after it, before the publication: the day is under way
        pub.curve_stored(PDL, Kind.CONSUMPTION, {DAY}, {r.local_date for r in changed},
                         _curve(), stored=rows)
    finally:
        store.close()
    assert [(b["date"], b["complete"], len(b["points"])) for b in link.batches()] == [
        (DAY.isoformat(), True, 25)]
