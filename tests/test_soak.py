"""Time-travel soak test: 35 simulated days of real life in a few real minutes.

The simulator (in this process), the bridge (a ``linky2mqtt run`` subprocess, killed and
restarted) and this test share one simulated timeline: ``FastClock.anchored`` with the same
start, speed and real-time anchor. Three meters on two providers (conso: a consumer and a
self-consumption meter with production; dataconnect: a consumer) live from 2026-10-10 to
2026-11-14 (the DST change of 2026-10-25 and the October/November boundary inside), through
late data, a gap day two days late, a 6-hour ``technical_error`` outage, 429 bursts, a broker
outage and two SIGKILLs at seeded random moments. At the end everything the user relies on
is checked against the simulator's ground truth, and the figures are printed.

``SOAK_SPEED`` (environment) changes the speed (default 25000 simulated s per real s).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from linky2mqtt.budgets import budget_windows
from linky2mqtt.clock import FastClock
from linky2mqtt.config import load_text
from linky2mqtt.enedis import Budget, MemoryLedger
from linky2mqtt.enedis.providers import DAYS_PER_CALL
from linky2mqtt.model import PARIS, SERIES, Kind, day_bounds
from linky2mqtt.simulator import Simulator
from tests.support.bridge import REPO
from tests.support.broker import Mosquitto
from tests.support.clock import SUITE_CLOCK, bridge_command
from tests.support.mqtt_client import Collector, Message
from tests.support.simulator import MakeSimulator

SPEED = float(os.environ.get("SOAK_SPEED", "25000"))
START = datetime(2026, 10, 10, 12, 0, tzinfo=PARIS)
END = datetime(2026, 11, 14, 12, 0, tzinfo=PARIS)
BASE = "soak"
BACKFILL_DAY = 14
BACKFILL_HOUR = 14
SEED = 20261025

CONSUMER = "11111111111100"  # conso, consumption only, 30-min curve
SOLAR = "22222222222223"  # conso, consumption and production (ends with 3)
COMPANY = "33333333333300"  # dataconnect, consumption only
METERS = {CONSUMER: [Kind.CONSUMPTION], SOLAR: [Kind.CONSUMPTION, Kind.PRODUCTION],
          COMPANY: [Kind.CONSUMPTION]}

LATE_DAY = (CONSUMER, date(2026, 10, 12))  # there at 12:00 on D+1 instead of 08:00
GAP_DAY = (SOLAR, date(2026, 10, 17))  # there on D+3 instead of D+1
OUTAGE = (datetime(2026, 10, 28, 7, 0, tzinfo=PARIS), datetime(2026, 10, 28, 13, 0, tzinfo=PARIS))
BURSTS = [datetime(2026, 11, 3, 7, 55, tzinfo=PARIS), datetime(2026, 11, 8, 7, 55, tzinfo=PARIS)]
BROKER_DOWN = (datetime(2026, 11, 5, 7, 50, tzinfo=PARIS),
               datetime(2026, 11, 5, 8, 40, tzinfo=PARIS))


def _days(a: date, b: date) -> list[date]:
    """[a, b)"""
    return [a + timedelta(days=i) for i in range((b - a).days)]


def _config(broker: Mosquitto, sim: Simulator, store: Path) -> str:
    token = sim.make_conso_token([CONSUMER, SOLAR])
    meter = ("steps: [day, month, hour]\n"
             f"        backfill_days: {{day: {BACKFILL_DAY}, hour: {BACKFILL_HOUR}}}")
    return f"""
mqtt:
  url: {broker.url}
  client_id: soak-bridge
  base_topic: {BASE}
homeassistant:
  discovery: false
store:
  path: {store}
log:
  level: info
commands: false
poll_window: "08:00-08:30"
accounts:
  - name: home
    provider: conso
    token: "{token}"
    base_url: {sim.url}
    meters:
      - pdl: "{CONSUMER}"
        {meter}
      - pdl: "{SOLAR}"
        production: true
        {meter}
  - name: company
    provider: dataconnect
    client_id: sim-client
    client_secret: sim-secret
    base_url: {sim.url}
    meters:
      - pdl: "{COMPANY}"
        {meter}
"""


@dataclass
class BridgeProcess:
    """``linky2mqtt run`` on the shared simulated clock; killed and restarted at will."""

    config: Path
    log: Path
    anchor: float
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        cmd = bridge_command("run", "-c", str(self.config), start=START, anchor=self.anchor,
                             speed=SPEED)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Ledger:
    """The bridge's request ledger, read from its store as the run goes (it is pruned)."""

    db: Path
    rows: set[tuple[str, float]] = field(default_factory=set)

    def snapshot(self) -> None:
        if not self.db.exists():
            return
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                self.rows.update((str(s), float(a)) for s, a in
                                 conn.execute("SELECT scope, at FROM requests"))
            finally:
                conn.close()
        except sqlite3.OperationalError:
            pass  # created but not initialised yet

    def times(self, scope: str) -> list[float]:
        return sorted(a for s, a in self.rows if s == scope)


def _max_in_window(times: list[float], seconds: float) -> int:
    """The most requests in any sliding ``seconds`` window (t-seconds, t]."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - seconds:
            j += 1
        best = max(best, i - j + 1)
    return best


def _curve_day_wh(sim: Simulator, pdl: str, kind: Kind, day: date) -> tuple[float, int]:
    """(Wh of the day from the load curve, number of clock hours of the local day)."""
    points = sim.curve(pdl, kind, day)
    assert points is not None
    wh = sum(w * minutes / 60.0 for _, w, minutes in points)
    start, end = day_bounds(day)
    return wh, round((end - start).total_seconds() / 3600)


def _payloads(messages: list[Message], topic: str) -> list[dict[str, Any]]:
    return [m.json() for m in messages if m.topic == topic and m.payload]


@pytest.mark.timeout(420)
def test_soak_35_days(tmp_path: Path, broker: Mosquitto,
                      make_simulator: MakeSimulator) -> None:
    wall_start = time.monotonic()
    anchor = time.time()
    clock = FastClock.anchored(START, SPEED, anchor)
    sim = make_simulator(clock=clock)
    # every upstream request, stamped with the simulated time it reached the simulator
    seen: list[tuple[float, str, str | None, str, int]] = []
    record = sim.app.stats.record

    def recording(provider: str, pdl: str | None, endpoint: str, status: int) -> None:
        seen.append((clock.time(), provider, pdl, endpoint, status))
        record(provider, pdl, endpoint, status)

    sim.app.stats.record = recording  # type: ignore[method-assign]
    sim.hide(LATE_DAY[0], LATE_DAY[1],
             until=datetime.combine(LATE_DAY[1] + timedelta(days=1),
                                    datetime.min.time(), PARIS) + timedelta(hours=12))
    sim.hide(GAP_DAY[0], GAP_DAY[1],
             until=datetime.combine(GAP_DAY[1] + timedelta(days=3),
                                    datetime.min.time(), PARIS) + timedelta(hours=6))

    store = tmp_path / "soak.db"
    cfg_text = _config(broker, sim, store)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(cfg_text)
    windows = budget_windows(load_text(cfg_text))
    ledger = Ledger(store)
    bridge = BridgeProcess(cfg_path, tmp_path / "bridge.log", anchor)
    collectors = [Collector(broker.host, broker.port, [f"{BASE}/#"])]

    # -- the scenario, on the simulated clock ----------------------------------------
    rng = random.Random(SEED)
    faults: list[str] = []
    events: list[tuple[datetime, str, Callable[[], None]]] = []

    def at(when: datetime, name: str, fn: Callable[[], None]) -> None:
        events.append((when, name, fn))

    def outage_on() -> None:
        sim.set(fault_rate=1.0, fault_kinds=["500"])

    def outage_off() -> None:
        sim.set(fault_rate=0.0)
        faults.append("6 h technical_error outage")

    at(OUTAGE[0], "upstream outage begins", outage_on)
    at(OUTAGE[1], "upstream outage ends", outage_off)
    for when in BURSTS:
        def burst(when: datetime = when) -> None:
            sim.script(r"/", ["429"] * 3)
            faults.append(f"429 burst {when:%m-%d}")
        at(when, "429 burst", burst)

    def broker_down() -> None:
        broker.stop()

    def broker_up() -> None:
        broker.start()
        # a fresh subscriber at once: the bridge's reconnect backoff is at least 0.5 s real
        collectors.append(Collector(broker.host, broker.port, [f"{BASE}/#"]))
        faults.append("broker outage")

    at(BROKER_DOWN[0], "broker stops", broker_down)
    at(BROKER_DOWN[1], "broker starts", broker_up)
    for first, last in ((date(2026, 10, 14), date(2026, 10, 23)),
                        (date(2026, 11, 6), date(2026, 11, 12))):
        day = first + timedelta(days=rng.randint(0, (last - first).days))
        kill_at = datetime.combine(day, datetime.min.time(), PARIS) + timedelta(
            seconds=rng.randint(0, 86399))
        back_at = kill_at + timedelta(seconds=rng.randint(600, 3 * 3600))

        def kill(kill_at: datetime = kill_at) -> None:
            bridge.kill()
            faults.append(f"SIGKILL {kill_at:%m-%d %H:%M}")

        at(kill_at, "bridge SIGKILL", kill)
        at(back_at, "bridge restarts", bridge.start)
    events.sort(key=lambda e: e[0])

    bridge.start()
    fired: list[str] = []
    try:
        last_snapshot = 0.0
        while True:
            now = clock.now()
            while events and events[0][0] <= now:
                when, name, fn = events.pop(0)
                fn()
                fired.append(f"{name} at {when:%m-%d %H:%M}")
            if now >= END:
                break
            if bridge.proc is not None:
                assert bridge.alive(), f"the bridge died:\n{bridge.tail()}"
            if time.monotonic() - last_snapshot > 0.5:
                ledger.snapshot()
                last_snapshot = time.monotonic()
            nxt = min([END] + [e[0] for e in events[:1]])
            clock.sleep(min(max(0.0, (nxt - clock.now()).total_seconds()), 0.05 * SPEED))
        ledger.snapshot()
        assert bridge.terminate() == 0, bridge.tail()
    finally:
        if bridge.alive():
            bridge.kill()
    ledger.snapshot()
    assert not events, f"events not fired: {events}"

    # -- what the users saw ------------------------------------------------------------
    messages = [m for c in collectors for m in c.messages]
    final = Collector(broker.host, broker.port, [f"{BASE}/#"])
    try:
        final.wait_for(lambda ms: sum(1 for m in ms if m.retain and m.topic.endswith("/month"))
                       >= 4, timeout=15, what="retained month topics")
        time.sleep(0.5)  # retained messages arrive in one burst after SUBACK
        retained = {m.topic: m.json() for m in final.messages if m.retain and m.payload}
    finally:
        final.close()
        for c in collectors:
            c.close()

    # the day of each meter's first poll (a process start takes real time: hours simulated)
    first_poll = {pdl: min(datetime.fromtimestamp(r[0], PARIS).date() for r in seen
                           if r[2] == pdl) for pdl in METERS}
    last_day = END.date() - timedelta(days=1)
    late_days = {GAP_DAY}  # arrives after a newer day: day topic never moves back
    days_checked = batches = retained_checked = 0
    for pdl, kinds in METERS.items():
        for kind in kinds:
            base = f"{BASE}/{pdl}/{kind.value}"
            # every day value, delivered at least once, exact
            day_msgs: dict[str, set[float]] = {}
            for p in _payloads(messages, f"{base}/day"):
                day_msgs.setdefault(p["date"], set()).add(p["value"])
            for d in _days(first_poll[pdl] - timedelta(days=1), last_day + timedelta(days=1)):
                if (pdl, d) in late_days:
                    continue
                wh = sim.daily_wh(pdl, kind, d)
                assert wh is not None
                assert day_msgs.get(d.isoformat()) == {wh / 1000}, (pdl, kind, d, day_msgs.get(
                    d.isoformat()))
                days_checked += 1
            # every hourly batch, delivered complete at least once, exact
            got: dict[str, list[dict[str, Any]]] = {}
            for p in _payloads(messages, f"{base}/hour"):
                if p["complete"]:
                    got.setdefault(p["date"], []).append(p)
            for d in _days(first_poll[pdl] - timedelta(days=BACKFILL_HOUR),
                           last_day + timedelta(days=1)):
                assert d.isoformat() in got, f"{pdl} {kind.value} hourly batch {d} never came"
                curve_wh, hours = _curve_day_wh(sim, pdl, kind, d)
                p = got[d.isoformat()][-1]
                assert len(p["points"]) == hours, (pdl, d, len(p["points"]))
                assert sum(x["value"] for x in p["points"]) == pytest.approx(curve_wh / 1000,
                                                                            abs=1e-6)
                batches += 1
            # October: published complete with its exact sum
            october = [p for p in _payloads(messages, f"{base}/month")
                       if p["month"] == "2026-10" and p["complete"]]
            oct_wh = sum(sim.daily_wh(pdl, kind, d) or 0
                         for d in _days(date(2026, 10, 1), date(2026, 11, 1)))
            assert october, f"{base}/month: October never published complete"
            assert october[-1]["value"] == oct_wh / 1000
            assert october[-1]["days"] == 31 and october[-1]["missing"] == []
            # the retained values equal the simulator's
            day_p = retained[f"{base}/day"]
            assert day_p["date"] == last_day.isoformat()
            assert day_p["value"] == (sim.daily_wh(pdl, kind, last_day) or 0) / 1000
            month_p = retained[f"{base}/month"]
            nov_wh = sum(sim.daily_wh(pdl, kind, d) or 0
                         for d in _days(date(2026, 11, 1), last_day + timedelta(days=1)))
            assert month_p["month"] == "2026-11"
            assert month_p["value"] == nov_wh / 1000
            assert month_p["days"] == last_day.day and month_p["missing"] == []
            retained_checked += 2

    # -- budgets: no window ever exceeded (the bridge's own ledger) --------------------
    budget_lines = []
    lookup = Budget(windows, MemoryLedger(), clock=SUITE_CLOCK)
    for scope in sorted({s for s, _ in ledger.rows}):
        times = ledger.times(scope)
        for w in lookup.windows(scope):
            peak = _max_in_window(times, w.seconds)
            budget_lines.append(f"{scope} {w.limit}/{w.seconds:g}s: peak {peak}")
            assert peak <= w.limit, budget_lines[-1]
    # the real conso ban: 100 requests per 12 h per IP, seen by the simulator
    conso_times = sorted(t for t, p, *_ in seen if p == "conso")
    assert _max_in_window(conso_times, 12 * 3600) < 100

    # -- requests versus the lower bound ------------------------------------------------
    # Lower bound, per series (meter x kind x daily|curve), with perfect knowledge of when
    # data appears: the first poll covers the backfill in ceil(backfill / days per call)
    # calls (yesterday included); then one call per later day; each day that comes late
    # costs one more call for each series it hides (asked once missing, once there).
    series = [(p, k, s) for p, ks in METERS.items() for k in ks for s in SERIES]
    lower = 0
    for pdl, _kind, s in series:
        per_call = DAYS_PER_CALL[s]
        backfill = BACKFILL_DAY if s == "daily" else BACKFILL_HOUR
        days_after_first = (END.date() - first_poll[pdl]).days  # daily polls after the first
        lower += math.ceil(backfill / per_call) + days_after_first
        lower += sum(1 for late_pdl, _ in (LATE_DAY, GAP_DAY) if late_pdl == pdl)
    data = [r for r in seen if r[3] not in ("token", "situation_contrat_auto")]
    ok = [r for r in data if r[4] == 200]
    failed = [r for r in data if r[4] != 200]
    other = len(seen) - len(data)

    wall = time.monotonic() - wall_start
    report = [
        f"soak: {(END - START).total_seconds() / 86400:.0f} days simulated "
        f"({START:%Y-%m-%d %H:%M} .. {END:%Y-%m-%d %H:%M} Paris) in {wall:.0f} s wall "
        f"(speed {SPEED:g}), bridge started {bridge.starts} times",
        f"upstream data requests: {len(data)} ({len(ok)} answered 200, {len(failed)} faults "
        f"or not-there-yet), lower bound {lower} -> {len(data) / lower:.3f} x; "
        f"token/contract requests: {other}",
        f"day values checked: {days_checked}; hourly batches checked: {batches}; "
        f"retained values checked: {retained_checked}; MQTT messages seen: {len(messages)}",
        f"faults survived ({len(faults)}): " + "; ".join(faults),
        "budget peaks: " + "; ".join(budget_lines),
        "events: " + "; ".join(fired),
    ]
    with (tmp_path / "requests.txt").open("w") as out:
        for t, prov, who, endpoint, status in seen:
            out.write(f"{datetime.fromtimestamp(t, PARIS):%m-%d %H:%M:%S} {prov} {who} "
                      f"{endpoint} {status}\n")
    print("\n".join(report))
    (tmp_path / "figures.txt").write_text("\n".join(report))
    assert len(faults) == 2 + len(BURSTS) + 2 and bridge.starts == 3
    assert len(data) <= 1.10 * lower, "\n".join([*report, json.dumps(sim.stats())])


# -- the pieces the soak relies on, tested fast ----------------------------------------------


def test_anchored_clocks_share_one_timeline() -> None:
    anchor = time.time() - 10.0  # the timeline began 10 real seconds ago
    a = FastClock.anchored(START, 3600, anchor)
    b = FastClock.anchored(START, 3600, anchor)
    assert abs(a.time() - b.time()) < 0.05 * 3600
    assert a.time() - START.timestamp() == pytest.approx(10 * 3600, abs=0.5 * 3600)
    assert FastClock(START, 2.0).now() >= START  # the plain API is unchanged


@pytest.mark.parametrize(("args", "message"), [
    (["--clock", "yesterday"], "expected an ISO instant"),
    (["--clock", "2026-10-10T12:00@soon"], "expected START@EPOCH"),
    (["--clock", "2026-10-10T12:00", "--speed", "0"], "must be positive"),
])
def test_test_entry_clock_options_are_checked(args: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.bridge_main import main

    assert main([*args, "run", "-c", "/nonexistent.yaml"]) == 2
    assert message in capsys.readouterr().err


def test_test_entry_runs_the_cli_on_the_given_clock(tmp_path: Path) -> None:
    """The test-only entry runs ``linky2mqtt`` itself, on the injected clock: a naive
    start is Paris time and the timeline is anchored (same three values, same time)."""
    from tests.support.bridge_main import build_clock

    anchor = time.time() - 10.0
    clock = build_clock(f"2026-10-10T12:00@{anchor!r}", 3600)
    assert clock.time() - START.timestamp() == pytest.approx(10 * 3600, abs=0.5 * 3600)
    done = subprocess.run(bridge_command("run", "-c", str(tmp_path / "missing.yaml")),
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "missing.yaml" in done.stderr, done.stderr


def test_the_production_cli_has_no_clock_options(capsys: pytest.CaptureFixture[str]) -> None:
    from linky2mqtt.cli import main

    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "clock" not in out.lower() and "TEST ONLY" not in out
    assert main(["run", "-c", "/nonexistent.yaml", "--clock-start", "2026-10-10T12:00",
                 "--clock-speed", "100"]) == 2
    assert "unrecognized arguments: --clock-start" in capsys.readouterr().err


def test_yesterday_is_published_from_8_paris() -> None:
    from linky2mqtt.scheduler import yesterday_published

    assert not yesterday_published(datetime(2026, 10, 25, 7, 59, tzinfo=PARIS))
    assert yesterday_published(datetime(2026, 10, 25, 8, 0, tzinfo=PARIS))


def _two_meter_bridge(broker: Mosquitto, sim: Simulator, tmp_path: Path, clock: FastClock,
                      backfill: str) -> Any:
    from linky2mqtt.bridge import Bridge

    token = sim.make_conso_token([CONSUMER, SOLAR])
    text = f"""
mqtt: {{url: {broker.url}, client_id: soak-unit, base_topic: {BASE}}}
homeassistant: {{discovery: false}}
store: {{path: {tmp_path / 'unit.db'}}}
commands: false
poll_window: "08:00-08:30"
accounts:
  - name: home
    provider: conso
    token: "{token}"
    base_url: {sim.url}
    meters:
      - {{pdl: "{CONSUMER}", steps: [day], backfill_days: {backfill}}}
      - {{pdl: "{SOLAR}", steps: [day], backfill_days: {backfill}}}
"""
    return Bridge(load_text(text), clock=clock, stagger=60.0)


def test_a_start_at_night_asks_nothing_before_enedis_publishes(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator) -> None:
    # 05:00 Paris, store empty: yesterday is not there before 08:00; it is asked once, then
    clock = FastClock(datetime(2026, 11, 20, 5, 0, tzinfo=PARIS), 3600)
    sim = make_simulator(clock=clock)
    collector = Collector(broker.host, broker.port, [f"{BASE}/#"])
    bridge = _two_meter_bridge(broker, sim, tmp_path, clock, "{day: 1, hour: 0}")
    bridge.start()
    try:
        for pdl in (CONSUMER, SOLAR):
            msg = collector.wait_topic(f"{BASE}/{pdl}/consumption/day", timeout=30)
            assert msg.json()["date"] == "2026-11-19"
            assert msg.json()["value"] == (sim.daily_wh(pdl, Kind.CONSUMPTION,
                                                        date(2026, 11, 19)) or 0) / 1000
        assert clock.now().astimezone(PARIS).hour >= 8
    finally:
        bridge.stop()
        collector.close()
    assert sim.count(status=404) == 0
    assert sim.count(provider="conso") == 2  # one call per meter, no retry


def test_an_upstream_outage_holds_back_every_meter_of_the_account(
        tmp_path: Path, broker: Mosquitto, make_simulator: MakeSimulator) -> None:
    clock = FastClock(datetime(2026, 11, 20, 12, 0, tzinfo=PARIS), 3600)
    sim = make_simulator(clock=clock)
    # the first meter's poll fails (4 attempts), the second one's too (one attempt: a meter
    # of the account just failed): every meter of the account has failed, the provider is
    # down for the account; then one single-attempt probe per hold (5 min, then 15 min),
    # until upstream answers again
    sim.script(r"/api/", ["500"] * 7)
    collector = Collector(broker.host, broker.port, [f"{BASE}/#"])
    bridge = _two_meter_bridge(broker, sim, tmp_path, clock, "{day: 1, hour: 0}")
    t0 = clock.time()
    bridge.start()
    try:
        for pdl in (CONSUMER, SOLAR):
            collector.wait_topic(f"{BASE}/{pdl}/consumption/day", timeout=30)
    finally:
        bridge.stop()
        collector.close()
    assert sim.count(status=500) == 7  # one poll's attempts, then one request each
    assert sim.count(provider="conso", status=200) == 2
    assert clock.time() - t0 < 3 * 3600  # back within the hour after the outage, not hours
