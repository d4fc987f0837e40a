"""Fault injection: scripted faults per path, and a seeded random fault rate.

Fault names:
    ``"500"``       technical_error (the real body, in the provider's envelope)
    ``"503"``       service unavailable
    ``"429"``       ``Quota Q3 reached``
    ``"429:S"``     ``Quota Q4 reached``, come back in S seconds: said in the body
                    (``Call threshold allowed on H:MM:SS``) and in a ``Retry-After`` header
    ``"404"``       no_data_found
    ``"401"``       invalid credentials;  ``"403"`` consent revoked (ADAM-DC-0008)
    ``"0007"``      400 ADAM-DC-0007 "Le client n'est pas titulaire du point demandé." (a
                    consent lost, answered with status 400 since 2026)
    ``"badjson"``   200, ``application/json``, a truncated JSON document
    ``"html"``      200, ``text/html`` maintenance page (``"html:502"``: same page, status 502)
    ``"drop"``      the connection is closed without any answer
    ``"slow:S"``    the normal answer, after S real seconds
    ``"trickle"``   the normal answer's headers at once, then its body one byte per real
                    second (``"trickle:S"``: one byte every S seconds): a server that is
                    never silent long enough for a read timeout, yet never finishes

A script is a regex (searched in the request target, path and query) and a queue of
faults: each matching request takes the next fault of the first script that still has
one.
"""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Iterable

DEFAULT_RANDOM_KINDS = ("500", "503", "429", "drop")
_FAULT_RE = re.compile(r"^(500|503|429|429:\d+|404|401|403|0007|badjson|drop|html(:\d{3})?"
                       r"|slow:\d+(\.\d+)?|trickle(:\d+(\.\d+)?)?)$")


def check_fault(name: str) -> str:
    """``name`` if it is a valid fault name, else ValueError."""
    if not isinstance(name, str) or not _FAULT_RE.match(name):
        raise ValueError(f"unknown fault {name!r}")
    return name


class FaultBook:
    """Scripts and the random fault generator, thread-safe."""

    def __init__(self, seed: int, rate: float = 0.0,
                 kinds: Iterable[str] = DEFAULT_RANDOM_KINDS) -> None:
        self._lock = threading.Lock()
        self._scripts: list[tuple[re.Pattern[str], deque[str]]] = []
        self._seed = seed
        self._rng = random.Random(seed)
        self.rate = rate
        self.kinds: tuple[str, ...] = tuple(check_fault(k) for k in kinds)

    def script(self, path_regex: str, faults: Iterable[str]) -> None:
        pattern = re.compile(path_regex)
        queue = deque(check_fault(f) for f in faults)
        with self._lock:
            self._scripts.append((pattern, queue))

    def set_random(self, rate: float | None = None, kinds: Iterable[str] | None = None) -> None:
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("fault_rate must be between 0 and 1")
                self.rate = rate
            if kinds is not None:
                self.kinds = tuple(check_fault(k) for k in kinds)

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._rng = random.Random(self._seed)

    def pending(self) -> int:
        with self._lock:
            return sum(len(q) for _, q in self._scripts)

    def next_fault(self, target: str) -> str | None:
        """The fault for this request, if any (scripts first, then the random rate)."""
        with self._lock:
            for pattern, queue in self._scripts:
                if queue and pattern.search(target):
                    fault = queue.popleft()
                    self._scripts = [(p, q) for p, q in self._scripts if q]
                    return fault
            if self.rate > 0 and self.kinds and self._rng.random() < self.rate:
                return self._rng.choice(self.kinds)
        return None
