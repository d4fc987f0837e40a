"""Turns: the account threads do their work one at a time, and wait together.

Every account polls in its own thread, so that an account waiting for its quota or for an
answer never holds another one back. But Python runs one thread at a time (the GIL): ten
account threads with work to do at the same moment do not finish sooner than one, they
take the interpreter from each other every few milliseconds, and every hand-over costs
system calls and cold caches. Measured with ``python -m bench --only size`` (10,000 meters
on ten Data Connect accounts, no quota, no latency): 5.8 ms of CPU per meter-day with ten
threads racing, 4.5 ms with the same meters on one account; with turns, 4.3-4.9 ms
(``bench/RESULTS.md``).

So an account thread takes its turn (:meth:`Turns.turn`) for everything it does and gives
it up for every wait (:meth:`Turns.waiting`): the pacing of its budget, an upstream
answer (after its first 2 ms: an answer that quick is awaited on the turn, handing the
turn over and back would cost more), the pause between two attempts, the time until its
next poll. While one account
waits for an answer the next one works: the waits still overlap, only the work is taken
in turns. A wait that does not give the turn up holds every other account back for its
length; the waits of a poll are all in ``linky2mqtt.enedis`` (budget, client, retry) and
in ``accounts``, each wrapped (tests/test_turns.py).

Threads that are not account threads (commands, MQTT, Tempo, prices, statistics) take no
turn: :meth:`Turns.waiting` does nothing for a thread that does not hold it, and a command
is never queued behind the accounts' work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Turns"]


class Turns:
    """One turn, taken by one account thread at a time (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = threading.local()  # .depth: this thread's nested turn() calls

    def holds(self) -> bool:
        """Whether the calling thread holds the turn."""
        return getattr(self._held, "depth", 0) > 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn for the block (reentrant: a nested call holds it already)."""
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            self._lock.acquire()
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                self._lock.release()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Give the turn up for the block (a wait), take it back after; nothing for a
        thread that does not hold it."""
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            yield
            return
        self._held.depth = 0
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._held.depth = depth
