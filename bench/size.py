"""Figure 5, size: peak RSS and CPU of a bridge with many meters through its first cycle.

10,000 meters (1,000 in quick mode) on Data Connect accounts of 1,000 meters each, steps
day and hour, steady state (every meter lacks only the latest day served,
:func:`bench.common.steady_window`; contracts already in the store), against a simulator
without quota or latency, on the run's pinned clock (``--at``, inherited by the child).
The meter-days are counted in the store afterwards: a cycle that stored nothing raises
:class:`bench.common.FetchedNothing` instead of reporting a CPU figure for no work. The
bridge runs in its own process (:mod:`bench.size_child`) and so does the simulator
(:mod:`bench.sim_child`: its CPU is not counted, and it does not share this process with
what the figures before it left behind): peak RSS (its own ``VmHWM``) and user+system
CPU of the whole process, start-up included. The account budgets are raised so that only
the bridge's own speed bounds the cycle. Goals: peak RSS under 150 MiB (the highest peak
of the runs); CPU at most 5 ms per meter-day (one day fetched per meter;
:data:`CPU_GOAL_MS`), the best of :data:`RUNS` runs, every run's figure in the note.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from bench.common import FetchedNothing, Row, broker, dataconnect_config, pdls, steady_window
from linky2mqtt import topics
from linky2mqtt.clock import SYSTEM_CLOCK
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind
from linky2mqtt.store import Store

PER_ACCOUNT = 1000
# Issue 15's build section: "CPU per meter-day <= 5 ms on the 10,000-meter figure" (the
# table said "< 2 ms" before, a goal the issue never set)
CPU_GOAL_MS = 5.0
# The CPU figure is the best of this many runs (every run's figure is in the note): on a
# 2-core machine shared with the simulator and the broker, one run swings by +-10 %.
RUNS = 2


def measure(n: int, days: int) -> dict[str, float]:
    """Run the bridge child once: ``n`` meters each lacking the last ``days`` days served.

    Adds ``meter_days``: the (meter, day) pairs of the window held after the cycle."""
    extra, latest = steady_window(SYSTEM_CLOCK.now())
    backfill = days + extra - 1  # the days the bridge may not ask yet come on top
    oldest = latest - timedelta(days=days - 1)
    meters = pdls(n, "4")
    accounts = {f"a{i}": meters[i:i + PER_ACCOUNT] for i in range(0, n, PER_ACCOUNT)}
    with (broker() as mqtt, tempfile.TemporaryDirectory(prefix="bench-size-") as tmp,
          simulator_process() as sim_url):
        text = dataconnect_config(
            mqtt_port=mqtt.port, sim_url=sim_url, store=Path(tmp) / "s.db",
            accounts=accounts, backfill_day=backfill, backfill_hour=backfill,
            per_second=100_000, per_hour=1_000_000, client_id="bench-size")
        cfg = load_text(text)
        with Store(cfg.store.path) as store:
            for pdl in meters:
                store.set_retained(topics.contract_topic(cfg.mqtt.base_topic, pdl),
                                   b'{"pdl":"%s"}' % pdl.encode())
                store.set_contract_check(pdl, SYSTEM_CLOCK.time(), True)
        path = Path(tmp) / "config.yaml"
        path.write_text(text)
        proc = subprocess.run([sys.executable, "-m", "bench.size_child", str(path)],
                              capture_output=True, text=True, timeout=3600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"size child failed: {proc.stderr[-2000:]}")
        got: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
        with Store(cfg.store.path) as store:
            got["meter_days"] = sum(len(store.days_with_daily(
                p, Kind.CONSUMPTION, oldest, latest + timedelta(days=1))) for p in meters)
    return got


@contextlib.contextmanager
def simulator_process() -> Iterator[str]:
    """A simulator in its own process (:mod:`bench.sim_child`); its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.sim_child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"simulator process did not start (said {url!r})")
        yield url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run(quick: bool) -> list[Row]:
    n = 1000 if quick else 10_000
    runs = []
    for _ in range(RUNS):
        got = measure(n, 1)
        if not got["meter_days"]:
            raise FetchedNothing("size", f"{n} meters polled, no day stored")
        runs.append(got)
    per_run = [got["cpu"] * 1000 / got["meter_days"] for got in runs]
    got = runs[per_run.index(min(per_run))]  # the best run, as the publish figure keeps
    rss_mib = max(run["maxrss_kib"] for run in runs) / 1024  # the worst peak of the runs
    cpu_ms = min(per_run)
    note = (f"{got['wall']:.0f} s wall, {got['meter_days']:.0f} meter-days stored, "
            f"{got['errors']:.0f} meters in error")
    rows = [
        Row(f"size: peak RSS, {n} meters", f"{rss_mib:.0f} MiB", "150 MiB (goal)",
            150 / rss_mib, "< 150 MiB", rss_mib < 150, note),
        Row(f"size: CPU per meter-day, {n} meters", f"{cpu_ms:.2f} ms",
            f"{CPU_GOAL_MS:g} ms (goal)", CPU_GOAL_MS / cpu_ms, f"<= {CPU_GOAL_MS:g} ms",
            cpu_ms <= CPU_GOAL_MS,
            f"{got['cpu']:.1f} s CPU in all; best of {RUNS} runs: "
            + ", ".join(f"{ms:.2f}" for ms in per_run) + " ms"),
    ]
    if not quick:
        # context: the same work per request, more days per request (a 7-day backfill
        # costs the same two calls per meter as one day)
        week = measure(1000, 7)
        if not week["meter_days"]:
            raise FetchedNothing("size", "1000 meters x 7 d, no day stored")
        per = week["cpu"] * 1000 / week["meter_days"]
        rows.append(Row("size: CPU per meter-day, 1000 meters x 7 d backfill",
                        f"{per:.2f} ms", f"{CPU_GOAL_MS:g} ms (goal)", CPU_GOAL_MS / per,
                        "(informative)", None,
                        f"{week['cpu']:.1f} s CPU in all"))
    return rows
