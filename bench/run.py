"""Runs every figure, prints the results table and writes ``bench/RESULTS.md``.

``python -m bench [--quick] [--only NAME ...] [--no-write] [--at INSTANT]``. Figures:
``quota``, ``fleet``, ``publish``, ``command``, ``size``, ``peer`` (see each module). Every figure
runs on a clock pinned to ``--at`` (default :data:`bench.pin.DEFAULT_AT`, an afternoon),
shared by the bridge and the simulator (:mod:`bench.pin`), so the verdicts do not depend
on the hour of the run. A figure that fails (its bridge fetched nothing, a timeout...)
is a ``failed`` row and makes the exit status 1. The table has one row per
figure and goal: value, the limit or peer measured in the same run, the ratio against it
(higher is better, 1.00 = at the limit), the goal and whether it is met. The last line is
``bench: K/N goals met``. RESULTS.md keeps whatever follows its ``<!-- analysis -->``
marker (the hand-written analysis) and regenerates everything above it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import echo, fleet, peer, publish, quota, size
from bench.common import Row, quiet_logs
from bench.pin import BENCH_CLOCK, DEFAULT_AT, parse_at
from linky2mqtt import clock as _clock
from linky2mqtt.model import PARIS

RESULTS = Path(__file__).with_name("RESULTS.md")
MARKER = "<!-- analysis -->"


def command_rows(quick: bool) -> list[Row]:
    """Figure 4: ``read`` round trip (bench.command_latency) against a bare MQTT echo.

    The headline runs on a broker with ``set_tcp_nodelay true`` and a TCP_NODELAY client,
    and so does its peer; the figures with mosquitto's defaults follow, for information.
    """
    from bench import command_latency

    got: dict[str, Any] = command_latency.run(quick)
    n = 60 if quick else 400
    bare = echo.round_trips(n, nodelay=True)
    p50, p99 = float(got["p50_ms"]), float(got["p99_ms"])
    goal = float(got.get("goal_p50_ms", 20.0))
    note = (f"{got.get('n')} reads of {got.get('points')} points, "
            f"{got.get('answer_bytes')} B answers, "
            f"{got.get('upstream_requests_during')} upstream requests; TCP_NODELAY")
    rows = [
        Row("command: read 31 d hourly, p50", f"{p50:.1f} ms",
            f"{bare['p50_ms']:.2f} ms (bare MQTT round trip)", goal / p50,
            f"p50 < {goal:g} ms", p50 < goal, note),
        Row("command: read 31 d hourly, p99", f"{p99:.1f} ms",
            f"{bare['p99_ms']:.2f} ms (bare MQTT round trip)", None, "(informative)", None),
    ]
    default = got.get("default_broker")
    if isinstance(default, dict) and "p50_ms" in default:
        plain = echo.round_trips(n // 2, nodelay=False)
        rows.append(Row("command: read p50, mosquitto defaults (Nagle)",
                        f"{float(default['p50_ms']):.1f} ms",
                        f"{plain['p50_ms']:.2f} ms (bare MQTT round trip)", None,
                        "(informative)", None,
                        f"p99 {float(default['p99_ms']):.1f} ms vs bare "
                        f"{plain['p99_ms']:.1f} ms"))
    return rows


FIGURES: dict[str, Callable[[bool], list[Row]]] = {
    "quota": quota.run,
    "fleet": fleet.run,
    "publish": publish.run,
    "command": command_rows,
    "size": size.run,
    "peer": peer.run,
}


def pinned_instant(at: str) -> str:
    """Check that the default clock is pinned to ``at``; the pinned start, ISO.

    :mod:`bench.__main__` pins it before anything reads it; a caller of :func:`main`
    that did not (or pinned another instant) gets an error rather than a run on the
    real clock.
    """
    want = parse_at(at)
    spec = os.environ.get(BENCH_CLOCK, "")
    start = spec.split("@")[0]
    if not isinstance(_clock.SYSTEM_CLOCK, _clock.FastClock) or not start or (
            parse_at(start) != want):
        raise SystemExit(f"python -m bench: the clock is not pinned to {at} "
                         f"({BENCH_CLOCK}={spec!r}); run it as `python -m bench --at {at}`")
    return want.isoformat()


def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosq = "not found"
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if Path(exe).exists():
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).splitlines()
        mosq = first[0].strip() if first else "?"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "mosquitto": mosq,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _cell(row: Row) -> list[str]:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
    met = "-" if row.met is None else ("yes" if row.met else "NO")
    return [row.figure, row.value, row.peer, ratio, row.goal, met, row.note]


HEAD = ["figure", "value", "limit or peer", "ratio", "goal", "met?", "note"]


def text_table(rows: list[Row]) -> str:
    cells = [HEAD] + [_cell(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEAD))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(HEAD))).rstrip()
             for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in _cell(r)) + " |" for r in rows]
    return "\n".join(out)


def write_results(rows: list[Row], info: dict[str, str], quick: bool, seconds: float,
                  summary: str) -> None:
    kept = ""
    if RESULTS.exists():
        old = RESULTS.read_text()
        if MARKER in old:
            kept = old[old.index(MARKER):]
    body = [
        "# linky2mqtt benchmarks",
        "",
        f"Generated by `python -m bench{' --quick' if quick else ''}` "
        f"({'quick' if quick else 'full'} mode, {seconds:.0f} s, clock {info['clock']}). "
        "Ratios are against the limit or peer measured in the same run; higher is better.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()
                                if k not in ("load", "clock"))
        + f"; load average at start {info['load']}, at end "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (the machine is shared with other engineers running tests).",
        "",
        md_table(rows),
        "",
        summary,
        "",
    ]
    RESULTS.write_text("\n".join(body) + "\n" + (kept or MARKER + "\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under 3 minutes")
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="these figures")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--at", default=DEFAULT_AT, metavar="INSTANT",
                        help="the instant the pinned clock reads at the start, ISO 8601 "
                        f"with offset (default {DEFAULT_AT})")
    args = parser.parse_args(argv)
    quiet_logs()
    info = machine()
    info["clock"] = f"pinned to {pinned_instant(args.at)} (Paris " + (
        parse_at(args.at).astimezone(PARIS).strftime("%H:%M") + ")")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    t0 = time.monotonic()
    rows: list[Row] = []
    failed: list[str] = []
    for name in args.only or list(FIGURES):
        t = time.monotonic()
        try:
            got = FIGURES[name](args.quick)
        except Exception as exc:
            traceback.print_exc()
            failed.append(f"{name}: {exc}")
            got = [Row(name, "failed", "-", None, "-", False, f"{type(exc).__name__}: {exc}")]
        rows.extend(got)
        print(f"[{name}: {time.monotonic() - t:.0f} s]", flush=True)
        for r in got:
            print("  " + " | ".join(_cell(r)), flush=True)
    seconds = time.monotonic() - t0
    goals = [r for r in rows if r.met is not None]
    summary = f"bench: {sum(1 for r in goals if r.met)}/{len(goals)} goals met"
    print()
    print(text_table(rows))
    if not args.no_write:
        write_results(rows, info, args.quick, seconds, summary)
    print(summary)
    for line in failed:
        print(line if line.split(": ", 1)[1].startswith("FAILED") else f"FAILED: {line}",
              file=sys.stderr)
    return 1 if failed else 0
