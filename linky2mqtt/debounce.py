"""One delayed action however often it is asked for: Home Assistant's birth messages.

Home Assistant publishes ``online`` on its status topic when it starts; the bridge answers
with its discovery and retained topics after a random delay of a few seconds (so that a
fleet of bridges does not answer in the same instant). :class:`Debouncer` turns any number
of requests into one run: the first :meth:`~Debouncer.poke` schedules the action after
``delay()`` seconds, and every poke until it starts is folded into that run. A poke that
comes while the action runs schedules one more run (Home Assistant may have restarted
meanwhile). One thread serves every run; :meth:`~Debouncer.poke` never blocks, so it can be
called from paho's network thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Debouncer:
    def __init__(self, action: Callable[[], None], delay: Callable[[], float],
                 stopping: threading.Event, name: str = "debounce") -> None:
        self._action = action
        self._delay = delay
        self._stopping = stopping
        self._cond = threading.Condition()
        self._due: float | None = None  # monotonic time of the scheduled run
        self._folded = 0  # pokes folded into the scheduled run
        self.runs = 0
        self.name = name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def poke(self) -> float | None:
        """Ask for a run; the delay in seconds when this poke scheduled it, else None."""
        with self._cond:
            if not self._started:
                self._started = True
                self._thread.start()
            if self._due is not None:
                self._folded += 1
                return None
            delay = self._delay()
            self._due = time.monotonic() + delay
            self._folded = 0
            self._cond.notify_all()
            return delay

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._started:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                if self._due is None:
                    self._cond.wait(1.0)
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._cond.wait(min(left, 1.0))
                    continue
                self._due = None
                folded = self._folded
            if self._stopping.is_set():
                return
            if folded:
                log.info("%s: %d more requests were folded into this run", self.name, folded)
            self.runs += 1
            try:
                self._action()
            except Exception:
                log.exception("%s failed", self.name)
