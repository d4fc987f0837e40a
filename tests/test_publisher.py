"""Publisher rules over a real broker: `day` never moves back, a late day of an older
month republishes that month once (complete) while the retained month stays current, and
a partial load-curve day goes out `complete: false`, then again complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from linky2mqtt import topics
from linky2mqtt.model import DAILY, Kind, Reading, day_bounds
from linky2mqtt.mqtt import MqttLink
from linky2mqtt.publisher import ACK_LOT, Publisher
from linky2mqtt.store import Store
from tests.support.bridge import wait_until
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.mqtt_client import Collector, Message

PDL = "12345678901234"
BASE = "pt"
FETCHED = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@pytest.fixture
def rig(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[Publisher, Store, Collector]]:
    store = Store(tmp_path / "p.db", clock=SUITE_CLOCK)
    link = MqttLink(broker.host, broker.port, client_id="pub-test", protocol="5",
                    will_topic=f"{BASE}/bridge/state", will_payload=b'{"state":"offline"}')
    link.start()
    assert link.wait_connected(10)
    collector = Collector(broker.host, broker.port, [f"{BASE}/#"])
    try:
        yield Publisher(link, store, BASE), store, collector
    finally:
        collector.close()
        link.stop(None)
        store.close()


def daily(day: date, wh: float) -> Reading:
    return Reading(PDL, Kind.CONSUMPTION, DAILY, day_bounds(day)[0], wh, quality="BRUT")


def curve(day: date, skip: set[int] = frozenset()) -> list[Reading]:  # type: ignore[assignment]
    start, end = day_bounds(day)
    out = []
    i, t = 0, start
    while t < end:
        if i not in skip:
            out.append(Reading(PDL, Kind.CONSUMPTION, "PT30M", t, 100.0 + i))
        t += timedelta(minutes=30)
        i += 1
    return out


def _json(m: Message) -> dict[str, object]:
    doc = m.json()
    assert isinstance(doc, dict)
    return doc


def test_day_never_moves_back_and_month_stays_current(
        rig: tuple[Publisher, Store, Collector]) -> None:
    pub, store, col = rig
    day_topic = f"{BASE}/{PDL}/consumption/day"
    month_topic = f"{BASE}/{PDL}/consumption/month"
    store.save_readings([daily(date(2026, 11, 20), 12345)])
    pub.daily_changed(PDL, Kind.CONSUMPTION, [date(2026, 11, 20)], FETCHED)
    col.wait_topic(day_topic, where=lambda m: _json(m)["date"] == "2026-11-20")

    # a backfilled older day of the same month: the month grows, the day does not move
    store.save_readings([daily(date(2026, 11, 10), 1000)])
    pub.daily_changed(PDL, Kind.CONSUMPTION, [date(2026, 11, 10)], FETCHED)
    month = col.wait_topic(month_topic, where=lambda m: _json(m)["value"] == 13.345)
    assert _json(month)["days"] == 2
    assert [_json(m)["date"] for m in col.on(day_topic)] == ["2026-11-20"]
    assert store.retained_payload(day_topic) is not None
    assert json.loads(store.retained_payload(day_topic) or b"{}")["date"] == "2026-11-20"


def test_late_day_completes_an_older_month_once_then_the_current_month_is_retained(
        rig: tuple[Publisher, Store, Collector]) -> None:
    pub, store, col = rig
    month_topic = f"{BASE}/{PDL}/consumption/month"
    october = [date(2026, 10, 1) + timedelta(days=i) for i in range(31)]
    late = date(2026, 10, 15)
    store.save_readings([daily(d, 1000 + d.day) for d in october if d != late])
    store.save_readings([daily(date(2026, 11, d), 2000) for d in (1, 2, 3)])
    pub.daily_changed(PDL, Kind.CONSUMPTION, [date(2026, 11, 3)], FETCHED)
    col.wait_topic(month_topic, where=lambda m: _json(m)["month"] == "2026-11")

    store.save_readings([daily(late, 1015)])
    pub.daily_changed(PDL, Kind.CONSUMPTION, [late], FETCHED)
    expected = sum(1000 + d.day for d in october) / 1000
    old = col.wait_topic(month_topic, where=lambda m: _json(m)["month"] == "2026-10")
    doc = _json(old)
    assert doc["complete"] is True and doc["missing"] == [] and doc["days"] == 31
    assert doc["value"] == round(expected, 6)
    col.wait_for(lambda ms: [m for m in ms if m.topic == month_topic][-1].json()["month"]
                 == "2026-11", what="November again last")
    assert json.loads(store.retained_payload(month_topic) or b"{}")["month"] == "2026-11"


def test_partial_curve_day_goes_out_incomplete_then_complete(
        rig: tuple[Publisher, Store, Collector]) -> None:
    pub, store, col = rig
    hour_topic = f"{BASE}/{PDL}/consumption/hour"
    day = date(2026, 11, 27)
    full = curve(day)
    partial = curve(day, skip={10, 11})  # 05:00-06:00 missing
    store.save_readings(partial)
    pub.curve_changed(PDL, Kind.CONSUMPTION, [day])
    first = _json(col.wait_topic(hour_topic))
    assert first["complete"] is False and first["date"] == "2026-11-27"
    assert len(first["points"]) == 23  # type: ignore[arg-type]

    store.save_readings(full)
    pub.curve_changed(PDL, Kind.CONSUMPTION, [day])
    second = _json(col.wait_topic(hour_topic, where=lambda m: _json(m)["complete"] is True))
    points = second["points"]
    assert isinstance(points, list) and len(points) == 24
    # hour 05:00 local = intervals 10 and 11: (110 + 111) Wh
    assert points[5]["value"] == 0.221
    assert sum(p["value"] for p in points) == pytest.approx(sum(r.value for r in full) / 1000)
    # acknowledged by the broker: nothing left pending
    col.wait_for(lambda ms: not store.pending_batches(), what="batches acknowledged")


def test_a_marked_day_stays_pending_until_its_batch_is_acknowledged_and_a_newer_mark_survives_an_older_ack(  # noqa: E501
        rig: tuple[Publisher, Store, Collector]) -> None:
    pub, store, collector = rig
    day = date(2026, 11, 20)
    topic, key = f"{BASE}/{PDL}/consumption/hour", day.isoformat()
    store.save_readings(curve(day))
    pub.mark_curve(PDL, Kind.CONSUMPTION, [day])
    assert store.pending_batch_entries() == [(topic, key, b"")]
    # the broker acknowledges a batch sent before the day was marked again: the newer
    # mark stays (its own batch is still to be acknowledged)
    older_ack = pub._acker(topic, key, b"unused", 1)
    pub.mark_curve(PDL, Kind.CONSUMPTION, [day])
    older_ack()
    pub._forget_acked()
    assert store.pending_batch_entries() == [(topic, key, b"")]
    # the batch of the newer mark goes out; its PUBACK forgets the mark
    pub.curve_stored(PDL, Kind.CONSUMPTION, [day], [day])
    got = collector.wait_topic(topic)
    points = _json(got)["points"]
    assert isinstance(points, list) and len(points) == 24
    assert points[0] == {"start": "2026-11-20T00:00:00+01:00",
                         "end": "2026-11-20T01:00:00+01:00", "value": 0.201}  # 100 + 101 Wh
    wait_until(lambda: not store.pending_batch_entries(), 10, "the mark forgotten on PUBACK",
               period=0.01)
    assert pub._marks == {}


def test_a_batch_built_from_fetched_readings_is_what_the_store_holds(
        rig: tuple[Publisher, Store, Collector]) -> None:
    """The live path builds a window's batches from the readings just stored; when the
    store holds more of those days (a point the provider no longer returns), the batch
    is the store's, read back: 24 hours complete, not the 23 just fetched."""
    pub, store, col = rig
    topic = f"{BASE}/{PDL}/consumption/hour"
    fresh, held = date(2026, 11, 24), date(2026, 11, 25)
    store.save_readings(curve(held))  # an earlier fetch held the whole day
    fetched = curve(fresh) + curve(held, skip={10, 11})
    pub.mark_curve(PDL, Kind.CONSUMPTION, [fresh, held])
    store.save_readings(fetched)
    pub.curve_stored(PDL, Kind.CONSUMPTION, [fresh, held], [fresh, held], fetched)
    batches: list[Message] = col.wait_for(
        lambda ms: [m for m in ms if m.topic == topic][:2] if len(
            [m for m in ms if m.topic == topic]) >= 2 else None, what="two batches")
    got = {str(_json(m)["date"]): m for m in batches}
    for day in (fresh, held):
        expected = topics.dumps(topics.hour_payload(
            PDL, store.hour_totals(PDL, Kind.CONSUMPTION, [day])[day]))
        assert got[day.isoformat()].payload == expected
    assert _json(got[held.isoformat()])["complete"] is True
    # the window alone (nothing else held): built from the readings, the same bytes
    alone = date(2026, 11, 10)
    pub.mark_curve(PDL, Kind.CONSUMPTION, [alone])
    store.save_readings(curve(alone))
    pub.curve_stored(PDL, Kind.CONSUMPTION, [alone], [alone], curve(alone))
    batch = col.wait_topic(topic, where=lambda m: _json(m)["date"] == alone.isoformat())
    assert batch.payload == topics.dumps(topics.hour_payload(
        PDL, store.hour_totals(PDL, Kind.CONSUMPTION, [alone])[alone]))
    wait_until(lambda: not store.pending_batch_entries(), 10, "every batch acknowledged",
               period=0.01)


def test_acks_are_forgotten_in_lots_and_a_day_marked_again_meanwhile_stays_pending(
        rig: tuple[Publisher, Store, Collector], monkeypatch: pytest.MonkeyPatch) -> None:
    pub, store, _ = rig
    topic = f"{BASE}/{PDL}/consumption/hour"
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(3)]
    pub.mark_curve(PDL, Kind.CONSUMPTION, days)
    # other acks still awaited: the acknowledged marks are not written yet
    monkeypatch.setattr(pub.link, "awaiting_acks", lambda: 1)
    for day in days:
        pub._acker(topic, day.isoformat(), b"", 1)()
    pub._forget_acked()
    assert len(store.pending_batch_entries()) == 3
    # one day is marked again before the lot is written: its new mark stays
    pub.mark_curve(PDL, Kind.CONSUMPTION, [days[1]])
    monkeypatch.setattr(pub.link, "awaiting_acks", lambda: 0)
    pub._forget_acked()  # nothing awaited any more: the lot is written
    assert store.pending_batch_entries() == [(topic, days[1].isoformat(), b"")]
    # a full lot is written even while acks are awaited
    monkeypatch.setattr(pub.link, "awaiting_acks", lambda: 1)
    many = [date(2025, 1, 1) + timedelta(days=i) for i in range(ACK_LOT)]
    pub.mark_curve(PDL, Kind.CONSUMPTION, many)
    for day in many[:-1]:
        pub._acker(topic, day.isoformat(), b"", 1)()
    pub._forget_acked()
    assert len(store.pending_batch_entries()) == ACK_LOT + 1
    pub._acker(topic, many[-1].isoformat(), b"", 1)()
    pub._forget_acked()
    assert store.pending_batch_entries() == [(topic, days[1].isoformat(), b"")]


def test_the_account_threads_way_marks_in_the_commit_and_asks_no_count(
        rig: tuple[Publisher, Store, Collector], monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``AccountRunner`` does: the marks go into the readings' commit
    (``curve_marks`` then ``Store.save_window``), which counts the rows of the window's
    span; ``curve_stored`` is given that count and asks none. The same batches as the
    store would build: from the readings when they are all it holds of those days, read
    back when it holds more (here: a point the provider no longer returns)."""
    pub, store, col = rig
    topic = f"{BASE}/{PDL}/consumption/hour"

    def no_count(*_: object) -> int:
        raise AssertionError("a count was asked after the commit")

    monkeypatch.setattr(store, "curve_row_count", no_count)
    fresh, held, alone = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 10)
    store.save_readings(curve(held))  # an earlier fetch held the whole day
    # now without two points, and one value corrected (so that the day changed)
    again = [r if r.start != day_bounds(held)[0] else
             Reading(PDL, Kind.CONSUMPTION, "PT30M", r.start, 42.0)
             for r in curve(held, skip={10, 11})]
    for days, fetched in (([fresh, held], curve(fresh) + again), ([alone], curve(alone))):
        keys = {d.isoformat() for d in days}
        marks = pub.curve_marks(PDL, Kind.CONSUMPTION, days)
        assert not keys & {k for _, k, _ in store.pending_batch_entries()}  # not yet
        span = (int(day_bounds(min(days))[0].timestamp()),
                int(day_bounds(max(days))[1].timestamp()))
        changed, rows = store.save_window(fetched, pending=marks, span=span)
        assert keys <= {k for _, k, _ in store.pending_batch_entries()}  # with the readings
        pub.curve_stored(PDL, Kind.CONSUMPTION, days, {r.local_date for r in changed},
                         fetched, stored=rows)
    batches: list[Message] = col.wait_for(
        lambda ms: [m for m in ms if m.topic == topic] if len(
            [m for m in ms if m.topic == topic]) >= 3 else None, what="three batches")
    got = {str(_json(m)["date"]): m.payload for m in batches}
    assert sorted(got) == [alone.isoformat(), fresh.isoformat(), held.isoformat()]
    for day in (fresh, held, alone):
        # computed by the store from what it holds (independent of the fetched readings)
        assert got[day.isoformat()] == topics.dumps(topics.hour_payload(
            PDL, store.hour_totals(PDL, Kind.CONSUMPTION, [day])[day])), day
    assert _json(batches[-1])["complete"] is True
    assert all(_json(m)["complete"] is True for m in batches)
    wait_until(lambda: not store.pending_batch_entries(), 10, "every mark acknowledged",
               period=0.01)
