"""The suite's pinned clock: one timeline for the whole test session.

Every test reads 2026-11-29 10:30 Paris when the session starts, and time then runs at
real speed. So the results do not depend on the day or hour the suite runs: yesterday's
data is always there (the simulator serves day D from 08:00 on D+1) and both 2026 DST
days are in the past.

Production code reads no clock from the environment: tests pass ``SUITE_CLOCK``
explicitly (``clock=`` of the simulator, the bridge, the client, the store, ``cli.main``),
and start a bridge subprocess through :mod:`tests.support.bridge_main`, whose ``--clock``
option (``bridge_command()`` fills it) builds the same anchored clock in the child.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from linky2mqtt.clock import FastClock

SUITE_START = datetime.fromisoformat("2026-11-29T10:30:00+01:00")
SUITE_ANCHOR = time.time()  # the real instant at which the suite's clock read SUITE_START
SUITE_CLOCK = FastClock.anchored(SUITE_START, 1.0, SUITE_ANCHOR)


def clock_spec(start: datetime = SUITE_START, anchor: float = SUITE_ANCHOR) -> str:
    """``START@ANCHOR``: what ``bridge_main --clock`` reads."""
    return f"{start.isoformat()}@{anchor!r}"


def bridge_command(*argv: str, start: datetime = SUITE_START, anchor: float = SUITE_ANCHOR,
                   speed: float = 1.0) -> list[str]:
    """The argv of ``linky2mqtt <argv>`` in a subprocess on a pinned, shared timeline.

    Run it with ``cwd=REPO`` (``tests`` must be importable)."""
    cmd = [sys.executable, "-m", "tests.support.bridge_main", "--clock",
           clock_spec(start, anchor)]
    if speed != 1.0:
        cmd += ["--speed", repr(speed)]
    return [*cmd, *argv]


class SteppedClock:
    """A clock that moves only when slept on (the request budget's pacing, a retry's
    wait) or told to (``advance``), never by itself: a test's waits cost no real time.
    ``slept`` lists every sleep asked, in order."""

    def __init__(self, moment: datetime) -> None:
        self.t = moment.timestamp()
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.t += max(0.0, seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if not event.is_set():
            self.sleep(seconds)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        self.t += seconds


class HeldClock:
    """A clock that moves only when slept on or told to (``advance``); a wait on an
    event returns at once, without moving it (a worker's idle wait is not time)."""

    def __init__(self, moment: datetime) -> None:
        self.at = moment

    def time(self) -> float:
        return self.at.timestamp()

    def now(self) -> datetime:
        return self.at.astimezone(UTC)

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.is_set()

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class JumpClock:
    """The suite's clock plus an offset that a test changes at will (an NTP step); it
    sleeps and waits in real time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def jump(self, seconds: float) -> None:
        self.offset += seconds

    def time(self) -> float:
        return SUITE_CLOCK.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))
