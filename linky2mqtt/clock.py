"""Injected time: the bridge, the client and the simulator all read time from a Clock.

``SystemClock`` is real time. ``FastClock`` starts at a chosen instant and runs
``speed`` times faster than real time (3600: one simulated hour per real second), so
tests exercise scheduling as it really runs, without patching anything.
``FastClock.anchored`` shares one simulated timeline between processes (a test, the
simulator and a bridge subprocess that may be killed and restarted).

Production code reads no clock from the environment: a component uses the clock it is
given (``clock=``), and ``SYSTEM_CLOCK`` by default. The test suite builds its pinned
clock in ``tests/support/clock.py`` and passes it explicitly (to a bridge subprocess
through the test-only entry point ``python -m tests.support.bridge_main``).
"""

from __future__ import annotations

import threading
import time as _time
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


SYSTEM_CLOCK: Clock = SystemClock()
