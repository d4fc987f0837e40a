"""The schedule after failures, end to end: simulator, a real mosquitto, the bridge in-process.

The bridge and the simulator share one ``FastClock`` (simulated minutes pass in real
fractions of a second), so "the next try comes 5 minutes later, not an hour" is measured on
the simulated clock, from the requests the simulator saw, without sleeping.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.clock import FastClock
from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import Store
from linky2mqtt.topics import contract_topic
from tests.support.bridge import account_yaml, config_yaml, truth_day_kwh
from tests.support.broker import Mosquitto
from tests.support.mqtt_client import Collector, Message
from tests.support.simulator import MakeSimulator

START = datetime(2026, 11, 20, 12, 0, tzinfo=PARIS)
YESTERDAY = date(2026, 11, 19)
A, B, C, D = "51000000000001", "51000000000002", "51000000000004", "51000000000005"
MIN = 60.0


@dataclass(frozen=True)
class Seen:
    at: float  # simulated epoch seconds when the simulator answered
    provider: str
    pdl: str | None
    endpoint: str
    status: int


class Requests:
    """Every request the simulator answers, stamped with the shared simulated clock."""

    def __init__(self, sim: Simulator, clock: FastClock) -> None:
        self.seen: list[Seen] = []
        record = sim.app.stats.record

        def recording(provider: str, pdl: str | None, endpoint: str, status: int) -> None:
            self.seen.append(Seen(clock.time(), provider, pdl, endpoint, status))
            record(provider, pdl, endpoint, status)

        sim.app.stats.record = recording  # type: ignore[method-assign]

    def of(self, pdl: str, status: int | None = None) -> list[Seen]:
        return [s for s in self.seen if s.pdl == pdl and (status is None or s.status == status)]

    def token(self, status: int | None = None) -> list[Seen]:
        return [s for s in self.seen
                if s.endpoint == "token" and (status is None or s.status == status)]


def _bridge(broker: Mosquitto, sim: Simulator, tmp_path: Path, clock: FastClock,
            provider: str, pdls: list[str]) -> Bridge:
    meters: list[dict[str, Any]] = [{"pdl": p, "steps": ["day"], "backfill_days": {"day": 1}}
                                    for p in pdls]
    if provider == "conso":
        account = account_yaml("home", "conso", sim, meters, token=sim.make_conso_token(pdls))
    else:
        account = account_yaml("firm", "dataconnect", sim, meters, client_id="sim-client",
                               client_secret="sim-secret")
    cfg = load_text(config_yaml(broker.url, tmp_path / "s.db", [account],
                                extra="commands: false\n"))
    return Bridge(cfg, clock=clock, stagger=10.0, rng=random.Random(7))


def _day(msgs: list[Message], pdl: str) -> dict[str, Any] | None:
    got = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/consumption/day"]
    return got[-1] if got else None


def _status(msgs: list[Message], pdl: str) -> dict[str, Any] | None:
    got = [m.json() for m in msgs if m.topic == f"l2m/{pdl}/status"]
    return got[-1] if got else None


def _all_published(pdls: list[str]) -> Any:
    return lambda msgs: all(_day(msgs, p) for p in pdls)


def _check_days(sim: Simulator, msgs: list[Message], pdls: list[str]) -> None:
    for p in pdls:
        day = _day(msgs, p)
        assert day is not None
        assert day["date"] == YESTERDAY.isoformat()
        assert day["value"] == truth_day_kwh(sim, p, Kind.CONSUMPTION, YESTERDAY)


def test_a_bridge_started_during_a_short_blip_publishes_every_meter_within_minutes(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FastClock(START, 300)  # 5 simulated minutes per real second
    sim = make_simulator(clock=clock)
    seen = Requests(sim, clock)
    sim.script(f"pointId={A}", ["503"] * 4)  # the first meter's first requests, all four
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = _bridge(broker, sim, tmp_path, clock, "conso", [A, B, C])
    t0 = clock.time()
    bridge.start()
    try:
        watcher.wait_for(_all_published([A, B, C]), timeout=60, what="every meter's day")
        watcher.wait_for(lambda ms: (_status(ms, A) or {}).get("last_success"), timeout=30,
                         what="the first meter's status after its retry")
    finally:
        bridge.stop()
        watcher.close()
    msgs = watcher.messages
    _check_days(sim, msgs, [A, B, C])
    failed = seen.of(A, 503)
    assert len(failed) == 4  # one poll: its four attempts
    ok = seen.of(A, 200)
    assert len(ok) == 1 and len(seen.of(A)) == 5  # then one probe, which succeeds
    wait = ok[0].at - failed[-1].at
    print(f"blip: first meter retried {wait / 60:.1f} simulated min after its failed poll; "
          f"every day published {(max(s.at for s in seen.seen) - t0) / 60:.1f} min "
          "after the start")
    # 5 min + 10 % jitter (+ 5 simulated min = 1 real s of slack for a loaded machine)
    assert 5 * MIN <= wait <= 5.5 * MIN + 5 * MIN
    # the other meters were not held back by the first one's failure
    for p in (B, C):
        assert [s.status for s in seen.of(p)] == [200]
        assert seen.of(p)[0].at < ok[0].at
    assert ok[0].at - t0 < 15 * MIN  # everything within minutes, not an hour
    assert not any("every meter of the account waits" in r.getMessage()
                   for r in caplog.records)
    assert (_status(msgs, A) or {})["last_error"] is None


def test_a_429_beyond_the_retry_bound_defers_only_that_meter(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FastClock(START, 1800)  # half a simulated hour per real second
    sim = make_simulator(clock=clock)
    seen = Requests(sim, clock)
    sim.script(f"pointId={A}", ["429:10800"])  # "come back in 3 hours"
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = _bridge(broker, sim, tmp_path, clock, "conso", [A, B, C])
    bridge.start()
    try:
        watcher.wait_for(_all_published([B, C]), timeout=60, what="the other meters' days")
        deferred = watcher.wait_for(
            lambda ms: (_status(ms, A) or {}).get("budget", {}).get("waiting_until")
            and _status(ms, A), timeout=30, what="the deferred meter's status")
        runner = bridge.fleet.runners[0]
        assert runner.meters[A].schedule.failures == 0  # no failure recorded...
        assert runner.schedule.streak == 0 and runner.schedule.holds == 0
        watcher.wait_for(_all_published([A]), timeout=60, what="the deferred meter's day")
    finally:
        bridge.stop()
        watcher.close()
    msgs = watcher.messages
    _check_days(sim, msgs, [A, B, C])
    refused = seen.of(A, 429)
    assert len(refused) == 1  # not retried: 3 h does not fit the retry bound (2 min)
    ok = seen.of(A, 200)
    assert len(ok) == 1 and len(seen.of(A)) == 2
    wait = ok[0].at - refused[0].at
    print(f"429 'come back in 3 h': asked again {wait / 3600:.3f} simulated h later")
    # its hint + a small jitter (+ 20 simulated min = 0.7 real s of slack for load)
    assert 3 * 3600 + 1 <= wait <= 3 * 3600 + 31 + 20 * MIN
    # ...and no failure status: the status said when, with no error
    assert deferred["last_error"] is None
    until = datetime.fromisoformat(deferred["budget"]["waiting_until"])
    assert 3 * 3600 <= until.timestamp() - refused[0].at <= 3 * 3600 + 31 + 20 * MIN
    for p in (B, C):
        assert [s.status for s in seen.of(p)] == [200]
        assert seen.of(p)[0].at < refused[0].at + 60 * MIN
    assert not any(r.levelno >= logging.WARNING and A in r.getMessage()
                   for r in caplog.records), "a 429 is not a failed poll"


@pytest.mark.parametrize("when", ["poll", "start-up"])
def test_the_token_endpoint_failing_holds_the_whole_account(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator,
        caplog: pytest.LogCaptureFixture, when: str) -> None:
    caplog.set_level(logging.INFO)
    clock = FastClock(START, 300)
    sim = make_simulator(clock=clock)
    seen = Requests(sim, clock)
    sim.script(r"/oauth2/v3/token", ["503"] * 4)
    if when == "poll":
        # contracts already known: the first token request is the first meter's poll's
        with Store(tmp_path / "s.db") as store:
            for p in (A, B, C):
                store.set_retained(contract_topic("l2m", p), b'{"pdl": "%s"}' % p.encode())
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = _bridge(broker, sim, tmp_path, clock, "dataconnect", [A, B, C])
    bridge.start()
    try:
        watcher.wait_for(_all_published([A, B, C]), timeout=60, what="every meter's day")
    finally:
        bridge.stop()
        watcher.close()
    _check_days(sim, watcher.messages, [A, B, C])
    failed = seen.token(503)
    assert len(failed) == 4  # one poll's attempts, then the account waited
    got = seen.token(200)
    assert len(got) == 1
    hold = got[0].at - failed[-1].at
    print(f"token endpoint down: the account waited {hold / 60:.1f} simulated min")
    assert 5 * MIN <= hold <= 5.5 * MIN + 5 * MIN  # (+ 1 real s of slack for load)
    # no meter of the account asked anything during the hold
    data = [s for s in seen.seen if s.endpoint != "token"]
    assert {s.pdl for s in data if s.endpoint == "consommation_quotidienne"} == {A, B, C}
    assert all(s.at >= got[0].at and s.status == 200 for s in data)
    assert any("every meter of the account waits until" in r.getMessage()
               for r in caplog.records)


def test_three_meters_failing_in_a_row_hold_the_rest_of_the_account(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator) -> None:
    clock = FastClock(START, 600)
    sim = make_simulator(clock=clock)
    seen = Requests(sim, clock)
    # the first meter's poll (4 attempts), the next two meters' (one attempt each: a meter
    # of the account just failed), then one probe of the held account; then upstream is back
    sim.script(r"/api/", ["500"] * 7)
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = _bridge(broker, sim, tmp_path, clock, "conso", [A, B, C, D])
    bridge.start()
    try:
        watcher.wait_for(_all_published([A, B, C, D]), timeout=60, what="every meter's day")
    finally:
        bridge.stop()
        watcher.close()
    _check_days(sim, watcher.messages, [A, B, C, D])
    third = sorted(s.at for s in seen.seen if s.status == 500)[5]
    assert [len([s for s in seen.of(p, 500) if s.at <= third]) for p in (A, B, C)] == [4, 1, 1]
    probes = [s for s in seen.seen if s.at > third]
    # the fourth meter was held: not asked during the outage, and the account probed with
    # one request (a failed one: held 5 min, then 15 min), then everything came back
    assert not [s for s in seen.seen if s.pdl == D and s.at <= third]
    # (+ 10 simulated min = 1 real s of slack for a loaded machine)
    assert probes[0].status == 500 and 5 * MIN <= probes[0].at - third <= 15.5 * MIN
    assert probes[1].status == 200 and 15 * MIN <= probes[1].at - probes[0].at <= 26.5 * MIN
    assert all(s.status == 200 for s in probes[1:])
    assert sim.count(status=500) == 7
    assert sim.count(status=200) == 4


@pytest.mark.parametrize("seconds", [30])
def test_a_429_hint_that_fits_is_waited_inside_the_poll(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator,
        seconds: int) -> None:
    clock = FastClock(START, 60)
    sim = make_simulator(clock=clock)
    seen = Requests(sim, clock)
    sim.script(f"pointId={A}", [f"429:{seconds}"])
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    bridge = _bridge(broker, sim, tmp_path, clock, "conso", [A])
    bridge.start()
    try:
        watcher.wait_for(_all_published([A]), timeout=60, what="the day")
    finally:
        bridge.stop()
        watcher.close()
    refused, ok = seen.of(A, 429), seen.of(A, 200)
    assert len(refused) == 1 and len(ok) == 1
    assert seconds <= ok[0].at - refused[0].at <= seconds + 60  # the hint (+ 1 real s)
    assert (_status(watcher.messages, A) or {})["last_error"] is None
    assert timedelta(seconds=ok[0].at - refused[0].at) < timedelta(minutes=5)


def test_the_simulator_429_with_a_wait_says_it_in_body_and_header(
        make_simulator: MakeSimulator) -> None:
    sim = make_simulator(clock=FastClock(START, 1))
    sim.script("/api/", ["429:10800", "429:59"])
    token = sim.make_conso_token([A])
    params = {"pointId": A, "dateDebut": "2026-11-19", "dateFin": "2026-11-20"}
    with httpx.Client(base_url=sim.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        first = c.get("/api/consommation_quotidienne", params=params)
        second = c.get("/api/consommation_quotidienne", params=params)
        third = c.get("/api/consommation_quotidienne", params=params)
    assert first.status_code == 429 and first.headers["Retry-After"] == "10800"
    assert first.json()["error"] == {"error": "Quota Q4 reached",
                                     "error_description": "Call threshold allowed on 3:00:00"}
    assert second.headers["Retry-After"] == "59"
    assert second.json()["error"]["error_description"] == "Call threshold allowed on 0:00:59"
    assert third.status_code == 200 and "Retry-After" not in third.headers
    with pytest.raises(ValueError, match="unknown fault"):
        sim.script("/api/", ["429:soon"])
