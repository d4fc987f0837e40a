"""The benchmarks' clock: every figure runs on a timeline pinned to a chosen instant.

``python -m bench --at 2026-11-29T02:00+01:00`` makes every default clock (the bridge's,
the simulator's, those of the bridge processes the figures start, which inherit the
variable) read that instant when the run starts and then run at real speed, exactly as
the test suite pins ``LINKY2MQTT_CLOCK`` (tests/conftest.py). Without ``--at`` the run is
pinned to :data:`DEFAULT_AT`, a fixed afternoon instant, so the verdicts do not depend on
the hour the bench runs (yesterday is only served from 08:00 Paris).

This module must not import :mod:`linky2mqtt`: the variable is read once, when
:mod:`linky2mqtt.clock` is first imported, so :func:`pin` runs before any figure module
is imported (``bench/__main__.py``).
"""

from __future__ import annotations

import os
import time
from datetime import datetime

CLOCK_ENV = "LINKY2MQTT_CLOCK"  # linky2mqtt.clock.CLOCK_ENV (checked in bench.run)
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
    os.environ[CLOCK_ENV] = f"{instant.isoformat()}@{time.time()!r}"
    return instant
