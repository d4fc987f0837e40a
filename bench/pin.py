"""The benchmarks' clock: every figure runs on a timeline pinned to a chosen instant.

``python -m bench --at 2026-11-29T02:00+01:00`` makes every default clock (the bridge's,
the simulator's, those of the bridge processes the figures start) read that instant when
the run starts and then run at real speed. Without ``--at`` the run is pinned to
:data:`DEFAULT_AT`, a fixed afternoon instant, so the verdicts do not depend on the hour
the bench runs (yesterday is only served from 08:00 Paris).

Production code reads no clock from the environment. The bench, like the test suite's
entry point (``tests/support/bridge_main.py``), builds the anchored clock itself and puts
it in place of :data:`linky2mqtt.clock.SYSTEM_CLOCK` (the default every part of the bridge
takes) **before** any other module of the bridge is imported, since those bind the
default when they are imported. :func:`pin` does it in ``python -m bench`` and records
the instant in :data:`BENCH_CLOCK` for the bench's own child processes
(:mod:`bench.size_child`), which call :func:`install` first thing.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

BENCH_CLOCK = "LINKY2MQTT_BENCH_CLOCK"  # START@ANCHOR, for the bench's child processes
DEFAULT_AT = "2026-11-29T14:00:00+01:00"


def parse_at(text: str) -> datetime:
    """An aware ISO 8601 instant (``2026-11-29T02:00+01:00``); ValueError otherwise."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at: not an ISO 8601 instant: {text!r}") from None
    if at.tzinfo is None:
        raise ValueError(f"--at: give a UTC offset, e.g. {text}+01:00")
    return at


def at_from_argv(argv: list[str]) -> str:
    """The ``--at`` value of ``argv`` (``--at X`` or ``--at=X``), else :data:`DEFAULT_AT`."""
    for i, arg in enumerate(argv):
        if arg == "--at" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--at="):
            return arg.split("=", 1)[1]
    return DEFAULT_AT


def pin(at: str) -> datetime:
    """Pin this process's (and its children's) clock to ``at``, from now, real speed."""
    instant = parse_at(at)
    os.environ[BENCH_CLOCK] = f"{instant.isoformat()}@{time.time()!r}"
    install()
    return instant


def install() -> datetime | None:
    """Put the clock :data:`BENCH_CLOCK` describes in place of the bridge's default clock;
    the pinned start, or None when the variable is not set (the real clock stays)."""
    spec = os.environ.get(BENCH_CLOCK)
    if not spec:
        return None
    start_text, _, anchor = spec.rpartition("@")
    start = parse_at(start_text)
    from linky2mqtt import clock

    clock.SYSTEM_CLOCK = clock.FastClock.anchored(start, 1.0, float(anchor))
    return start
