"""Injected time: the bridge, the client and the simulator all read time from a Clock.

``SystemClock`` is real time. ``FastClock`` starts at a chosen instant and runs
``speed`` times faster than real time (3600: one simulated hour per real second), so
tests exercise scheduling as it really runs, without patching anything.
``FastClock.anchored`` shares one simulated timeline between processes (a test, the
simulator and a bridge subprocess that may be killed and restarted).
"""

from __future__ import annotations

import os
import threading
import time as _time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds."""
        ...

    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait for ``event`` at most ``seconds`` of this clock's time; True if set."""
        ...


class SystemClock:
    def time(self) -> float:
        return _time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


class FastClock:
    """Starts at ``start`` and advances ``speed`` simulated seconds per real second."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("FastClock needs an aware start datetime")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._origin = start.timestamp()
        self._t0 = _time.monotonic()
        self.speed = speed

    @classmethod
    def anchored(cls, start: datetime, speed: float, anchor_epoch: float) -> FastClock:
        """A clock that read ``start`` at the real epoch instant ``anchor_epoch``.

        Every process built with the same three values agrees on the simulated time
        (within the real clocks' agreement), so a bridge restarted in a new process
        continues the same simulated timeline as the simulator and the test driving it.
        """
        clock = cls(start, speed)
        clock._origin = start.timestamp() + (_time.time() - anchor_epoch) * speed
        return clock

    def time(self) -> float:
        return self._origin + (_time.monotonic() - self._t0) * self.speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds / self.speed)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds / self.speed))


CLOCK_ENV = "LINKY2MQTT_CLOCK"


def clock_from_env(env: Mapping[str, str] | None = None) -> Clock:
    """The process's default clock: real time, unless ``LINKY2MQTT_CLOCK`` says otherwise.

    ``LINKY2MQTT_CLOCK="<ISO start>@<anchor epoch>[@<speed>]"`` makes every clock built
    from it (in this process and in the subprocesses that inherit the variable) read
    ``start`` at the real instant ``anchor``: the test suite sets it so that its results
    do not depend on the day or the hour it runs (data stops at yesterday and yesterday
    only appears at 08:00 Paris). For tests only; a bridge in production never sets it.
    """
    spec = (os.environ if env is None else env).get(CLOCK_ENV, "").strip()
    if not spec:
        return SystemClock()
    parts = spec.split("@")
    if len(parts) not in (2, 3):
        raise ValueError(f"{CLOCK_ENV}: expected START@ANCHOR[@SPEED], got {spec!r}")
    start = datetime.fromisoformat(parts[0])
    speed = float(parts[2]) if len(parts) == 3 else 1.0
    return FastClock.anchored(start, speed, float(parts[1]))


SYSTEM_CLOCK: Clock = clock_from_env()
