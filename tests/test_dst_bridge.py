"""DST days end to end (issue 12), against the simulator in each stamp convention: the real
bridge, a real mosquitto, the simulator over HTTP, a fake Home Assistant.

For 2025-10-26, 2026-03-29 and 2026-10-25 at each step length (one meter per step, over
the three providers): the ``read`` command fetches each day once, the hourly batch and the
``read`` answer hold 25/23 hours each equal to the sum of the simulator's raw intervals
(computed here, not by the product), ``complete: true``; the statistics rows equal those
hours with a continuous sum; a restarted bridge makes no upstream request. And a store
written by the previous release with a broken DST day is repaired on start.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.ha_statistics import StatisticsSink
from linky2mqtt.ha_statistics.sink import MemorySyncState
from linky2mqtt.model import PARIS, Kind, Reading, aggregate_hours, day_bounds, kwh, local_iso
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import Store
from tests.support.bridge import (
    account_yaml,
    batches_by_date,
    config_yaml,
    data_requests,
    latest_day,
    truth_hours,
)
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK
from tests.support.fake_ha import FakeHA
from tests.support.mqtt_client import Collector, Message
from tests.support.old_store import old_store
from tests.support.simulator import MakeSimulator

CONVENTIONS = ["wall-clock", "start-offset"]
DST_DAYS = [date(2025, 10, 26), date(2026, 3, 29), date(2026, 10, 25)]
HOURS = {date(2025, 10, 26): 25, date(2026, 3, 29): 23, date(2026, 10, 25): 25}
# one meter per step length (the simulator's rule: the last two digits), three providers
METERS = {10: ("conso", "11111111111110"), 15: ("dataconnect", "11111111111115"),
          30: ("myelectricaldata", "11111111111120"), 60: ("dataconnect", "11111111111160")}
TOKEN = "ha-long-lived-TOKEN-for-dst"


@pytest.fixture
def ha() -> Iterator[FakeHA]:
    server = FakeHA(token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


def _config(sim: Simulator, broker: Mosquitto, ha: FakeHA, store: Path, *,
            meters: dict[int, tuple[str, str]], backfill: int = 1) -> str:
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for _, (provider, pdl) in sorted(meters.items()):
        by_provider.setdefault(provider, []).append(
            {"pdl": pdl, "steps": ["hour"], "backfill_days": {"hour": backfill}})
    accounts = []
    for provider, ms in by_provider.items():
        pdls = [m["pdl"] for m in ms]
        if provider == "conso":
            accounts.append(account_yaml("c", provider, sim, ms, token=sim.make_conso_token(pdls)))
        elif provider == "dataconnect":
            accounts.append(account_yaml("d", provider, sim, ms, client_id="sim-client",
                                         client_secret="sim-secret"))
        else:
            accounts.append(account_yaml("m", provider, sim, ms, token="med-token"))
    return config_yaml(broker.url, store, accounts).replace(
        "homeassistant:\n  discovery: false\n",
        f"homeassistant:\n  discovery: false\n  statistics:\n    url: {ha.url}\n"
        f"    token: {TOKEN}\n")


def _read(watch: Collector, pdl: str, day: date) -> dict[str, Any]:
    tx = uuid.uuid4().hex
    watch.publish("l2m/bridge/request/read", json.dumps({
        "pdl": pdl, "kind": "consumption", "step": "hour", "start": day.isoformat(),
        "end": (day + timedelta(days=1)).isoformat(), "transaction": tx}))
    msg = watch.wait_for(lambda ms: next((m for m in ms if m.topic == "l2m/bridge/response/read"
                                          and m.json().get("transaction") == tx), None),
                         timeout=60, what=f"read answer {pdl} {day}")
    doc: dict[str, Any] = msg.json()
    assert doc["status"] == "ok", doc
    return doc


def _online(watch: Collector, count: int) -> None:
    """Wait for the ``count``-th ``online`` bridge state (its command subscription)."""
    watch.wait_for(lambda ms: len([m for m in ms if m.topic == "l2m/bridge/state"
                                   and m.payload and m.json().get("state") == "online"
                                   ]) >= count, timeout=30, what="bridge online")


def _batches(watch: Collector, pdl: str, dates: set[str]) -> dict[str, dict[str, Any]]:
    """The hourly batches of ``pdl`` once those of ``dates`` have all arrived."""
    topic = f"l2m/{pdl}/consumption/hour"

    def arrived(msgs: list[Message]) -> dict[str, dict[str, Any]] | None:
        got = batches_by_date(msgs, topic)
        return got if dates <= set(got) else None

    result: dict[str, dict[str, Any]] = watch.wait_for(arrived, timeout=60,
                                                       what=f"batches of {pdl}")
    return result


def _rows_between(ha: FakeHA, pdl: str, day: date) -> list[dict[str, Any]]:
    lo, hi = day_bounds(day)
    return [r for r in ha.rows(f"linky2mqtt:{pdl}_consumption") if lo <= r["start"] < hi]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _check_sums(ha: FakeHA, pdl: str) -> None:
    """Each row's sum is the one before plus its state (both rounded to the mWh/1000)."""
    rows = ha.rows(f"linky2mqtt:{pdl}_consumption")
    for before, row in itertools.pairwise(rows):
        assert row["sum"] - before["sum"] == pytest.approx(row["state"], abs=2e-6), row


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_dst_days_exact_in_each_convention(
    convention: str, make_simulator: MakeSimulator, broker: Mosquitto, ha: FakeHA,
    tmp_path: Path,
) -> None:
    sim = make_simulator(dst_stamps=convention)
    store = tmp_path / "s.db"
    text = _config(sim, broker, ha, store, meters=METERS)
    watch = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = Bridge(load_text(text, env={}), stagger=0.0, clock=SUITE_CLOCK)
    bridge.start()
    try:
        _online(watch, 1)
        yesterday = latest_day().isoformat()
        for _, pdl in METERS.values():  # the first poll (yesterday) done
            _batches(watch, pdl, {yesterday})
        for _, pdl in METERS.values():
            for day in DST_DAYS:
                before = data_requests(sim, pdl)
                doc = _read(watch, pdl, day)
                truth = truth_hours(sim, pdl, Kind.CONSUMPTION, day)
                assert truth is not None and len(truth) == HOURS[day]
                assert doc["data"]["points"] == truth, (pdl, day)
                assert doc["data"]["missing"] == []
                assert data_requests(sim, pdl) == before + 1  # one fetch of that day
        # the hourly batches published on MQTT: the same hours, complete
        for _, pdl in METERS.values():
            got = _batches(watch, pdl, {d.isoformat() for d in DST_DAYS})
            for day in DST_DAYS:
                batch = got[day.isoformat()]
                assert batch["complete"] is True
                assert batch["points"] == truth_hours(sim, pdl, Kind.CONSUMPTION, day)
        # Home Assistant statistics: one row per hour, equal to the hours, sums continuous
        for _, pdl in METERS.values():
            for day in DST_DAYS:
                truth = truth_hours(sim, pdl, Kind.CONSUMPTION, day) or []
                count = len(truth)
                rows = _wait(lambda p=pdl, d=day, n=count: (
                    r if len(r := _rows_between(ha, p, d)) == n else None),
                    60, f"statistics of {pdl} {day}")
                assert [local_iso(r["start"]) for r in rows] == [t["start"] for t in truth]
                assert [r["state"] for r in rows] == pytest.approx(
                    [t["value"] for t in truth], abs=1e-9)
            _check_sums(ha, pdl)
    finally:
        bridge.stop()

    # a restart: nothing asked upstream (no data, token or contract request), the read
    # answered from the store
    before = data_requests(sim)
    total = sim.stats()["total"]
    again = Bridge(load_text(text, env={}), stagger=0.0, clock=SUITE_CLOCK)
    again.start()
    try:
        _online(watch, 2)
        for _, pdl in METERS.values():
            for day in DST_DAYS:
                doc = _read(watch, pdl, day)
                assert doc["data"]["points"] == truth_hours(sim, pdl, Kind.CONSUMPTION, day)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # give a wrongful request every chance
            time.sleep(0.2)
    finally:
        again.stop()
        watch.close()
    assert data_requests(sim) == before == 3 * len(METERS) + len(METERS)  # + yesterday
    assert sim.stats()["total"] == total


# -- a store written by the previous release ---------------------------------------------

def _old_release_parse(stamps: list[tuple[str, int]], minutes: int,
                       pdl: str) -> list[Reading]:
    """What the previous release stored from a curve answer: START = naive END - step,
    the n-th occurrence of a naive start taken as fold n, a start already held dropped."""
    seen: dict[datetime, int] = {}
    out: dict[datetime, Reading] = {}
    for stamp, watts in stamps:
        naive_start = datetime.fromisoformat(stamp) - timedelta(minutes=minutes)
        occurrence = seen.get(naive_start, 0)
        seen[naive_start] = occurrence + 1
        start = naive_start.replace(tzinfo=PARIS, fold=min(occurrence, 1)).astimezone(UTC)
        if occurrence > 1 or start in out:
            continue  # "duplicate point ending ... dropped"
        out[start] = Reading(pdl, Kind.CONSUMPTION, f"PT{minutes}M", start,
                             watts * minutes / 60)
    return [out[t] for t in sorted(out)]


def _previous_release_store(path: Path, sim: Simulator, pdl: str, days: list[date],
                            broken: date) -> list[Reading]:
    """A schema-3 store holding ``days`` of ``pdl``'s curve, ``broken`` as the previous
    release parsed the simulator's wall-clock answer (a half-hour missing, another
    misplaced), given up on after five attempts."""
    held: list[Reading] = []
    for day in days:
        raw = sim.curve(pdl, Kind.CONSUMPTION, day)
        assert raw is not None
        if day == broken:
            stamps = [(end.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S"), w)
                      for end, w, _ in raw]
            held += _old_release_parse(stamps, 30, pdl)
        else:
            held += [Reading(pdl, Kind.CONSUMPTION, f"PT{m}M", end - timedelta(minutes=m),
                             w * m / 60) for end, w, m in raw]
    old_store(path, 3,
              [(r.pdl, r.kind.value, r.resolution, int(r.start.timestamp()), r.value)
               for r in held],
              gaps=[(pdl, "consumption", "curve", broken.isoformat(), 5)])
    return held


def test_previous_release_store_with_a_broken_dst_day_is_repaired_on_start(
    simulator: Simulator, broker: Mosquitto, ha: FakeHA, tmp_path: Path,
) -> None:
    sim = simulator  # wall-clock stamps: what broke the previous release
    _, pdl = METERS[30]
    broken = date(2026, 10, 25)
    today = SUITE_CLOCK.now().astimezone(PARIS).date()
    days = [today - timedelta(days=i) for i in range(1, (today - date(2026, 10, 24)).days + 1)]
    store = tmp_path / "old.db"
    held = _previous_release_store(store, sim, pdl, days, broken)
    old_day = [r for r in held if r.local_date == broken]
    assert len(old_day) == 49  # one half-hour lost...
    truth = truth_hours(sim, pdl, Kind.CONSUMPTION, broken)
    assert truth is not None
    old_hours = aggregate_hours(old_day, broken)
    assert not old_hours.complete
    assert [kwh(h.wh) for h in old_hours.hours] != [t["value"] for t in truth]  # ...one moved

    # Home Assistant holds what the previous release imported from that store
    def old_hours_source(p: str, k: Kind, start: datetime,
                         end: datetime) -> list[tuple[datetime, float]]:
        out = []
        for day in sorted({r.local_date for r in held}):
            out += [(h.start, h.wh) for h in aggregate_hours(
                [r for r in held if r.local_date == day], day).hours if start <= h.start < end]
        return out

    seed = StatisticsSink(ha.url, TOKEN, MemorySyncState(), SUITE_CLOCK,
                          hours_source=old_hours_source, series=[(pdl, Kind.CONSUMPTION)])
    seed.notify(pdl, Kind.CONSUMPTION, day_bounds(min(days))[0])
    assert seed.sync().error is None
    seed.close()
    sid = f"linky2mqtt:{pdl}_consumption"
    old_rows = ha.rows(sid)
    assert len(old_rows) == sum(len(aggregate_hours(
        [r for r in held if r.local_date == d], d).hours) for d in days)

    text = _config(sim, broker, ha, store, meters={30: METERS[30]}, backfill=len(days))
    watch = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = Bridge(load_text(text, env={}), stagger=0.0, clock=SUITE_CLOCK)
    bridge.start()
    try:
        batch = watch.wait_for(
            lambda ms: batches_by_date(ms, f"l2m/{pdl}/consumption/hour").get(
                broken.isoformat()), timeout=60, what="the repaired day's batch")
        expected_rows: list[dict[str, Any]] = []
        for day in sorted(days):
            expected_rows += truth_hours(sim, pdl, Kind.CONSUMPTION, day) or []

        def repaired() -> list[dict[str, Any]] | None:
            rows = ha.rows(sid)
            got = [(local_iso(r["start"]), round(r["state"], 9)) for r in rows]
            want = [(t["start"], round(t["value"], 9)) for t in expected_rows]
            return rows if got == want else None

        rows = _wait(repaired, 60, "statistics rewritten")
    finally:
        bridge.stop()
        watch.close()
    assert batch["complete"] is True
    assert batch["points"] == truth
    assert len(batch["points"]) == 25
    # exactly one fetch: the broken day (everything else was held)
    assert data_requests(sim, pdl) == 1
    by = [b for b in sim.stats()["by"] if b["pdl"] == pdl and b["status"] == 200
          and "curve" in b["endpoint"]]
    assert sum(b["count"] for b in by) == 1
    # only the broken day's hourly batch went out again
    assert set(batches_by_date(watch.messages, f"l2m/{pdl}/consumption/hour")) == {
        broken.isoformat()}
    # statistics: equal to the intervals, the sum continuous from the first row
    running = 0.0
    for row, want in zip(rows, expected_rows, strict=True):
        running += want["value"]
        assert row["sum"] == pytest.approx(running, abs=1e-6)
    with Store(store) as s:
        assert s.repair_days(pdl, Kind.CONSUMPTION, "curve") == {}
        assert broken in s.days_with_complete_curve(pdl, Kind.CONSUMPTION, broken,
                                                    broken + timedelta(days=1))

