"""Shared pieces of the benchmarks: the result row, a private broker, bridge configs."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from linky2mqtt.model import paris_today
from linky2mqtt.simulator.rules import last_available_day
from tests.support.broker import Mosquitto, free_port

# Every figure reads time from the default clock, pinned by ``python -m bench --at``
# (bench.pin) for the bridge, the simulator and the bridge processes alike; a figure
# that needs simulated days to pass uses its own FastClock and says so.


class FetchedNothing(RuntimeError):
    """A figure's bridge stored none of the data it was there to fetch: no verdict."""

    def __init__(self, figure: str, detail: str) -> None:
        super().__init__(f"FAILED: bridge fetched nothing ({figure}: {detail})")


def steady_window(now: datetime) -> tuple[int, date]:
    """(backfill days, latest day) for "every meter lacks only the latest day" at ``now``.

    Day D is served from 08:00 Paris on D+1 and the bridge does not ask for yesterday
    before then: at 14:00 the latest day is yesterday (backfill 1), at 02:00 the day
    before (backfill 2, of which the bridge asks only that day). Either way each meter
    fetches exactly one day per series with one request, so the figure is the same work
    at any hour.
    """
    last = last_available_day(now)
    return (paris_today(now) - last).days, last


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    figure: str
    value: str
    peer: str  # the limit or the peer measured in the same run
    ratio: float | None  # value against the limit, oriented so that higher is better
    goal: str
    met: bool | None  # None: informative line, not a goal
    note: str = ""


def pdls(n: int, prefix: str = "5") -> list[str]:
    """``n`` distinct 14-digit PDLs of plain consumers (30-minute curve, no production)."""
    return [f"{prefix}{i:012d}2" for i in range(n)]


@contextlib.contextmanager
def broker(nodelay: bool = False) -> Iterator[Mosquitto]:
    """A private mosquitto on a free port, in a temporary directory; ``nodelay`` sets
    mosquitto's ``set_tcp_nodelay`` (false is mosquitto's default)."""
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        port = free_port()
        m = Mosquitto(Path(tmp), port, f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                      f"set_tcp_nodelay {str(nodelay).lower()}\n")
        m.start()
        try:
            yield m
        finally:
            m.stop()


def dataconnect_config(
    *,
    mqtt_port: int,
    sim_url: str,
    store: Path,
    accounts: dict[str, list[str]],
    backfill_day: int,
    backfill_hour: int,
    per_second: int | None = None,
    per_hour: int | None = None,
    client_id: str = "bench",
    commands: bool = False,
) -> str:
    """YAML of a bridge with Data Connect accounts (name -> PDLs), steps day and hour."""
    budget = ""
    if per_second is not None or per_hour is not None:
        # raised past Data Connect's defaults on purpose: the simulator's quota is the bound
        budget = (f"    budget: {{per_second: {per_second or 'null'}, "
                  f"per_hour: {per_hour or 'null'}, allow_above_default: true}}\n")
    parts = [
        f'mqtt: {{url: "mqtt://127.0.0.1:{mqtt_port}", client_id: {client_id}}}\n'
        "homeassistant: {discovery: false}\n"
        f"store: {{path: {store}}}\n"
        "log: {level: warning}\n"
        f"commands: {str(commands).lower()}\n"
        "accounts:\n"
    ]
    for name, meters in accounts.items():
        parts.append(
            f"  - name: {name}\n    provider: dataconnect\n    client_id: sim-client\n"
            f"    client_secret: sim-secret\n    base_url: {sim_url}\n{budget}"
            "    meter_defaults:\n      steps: [day, hour]\n"
            f"      backfill_days: {{day: {backfill_day}, hour: {backfill_hour}}}\n"
            "    meters:\n")
        parts.extend(f'      - pdl: "{p}"\n' for p in meters)
    return "".join(parts)


def wait_until(cond: Callable[[], bool], timeout: float, what: str,
               period: float = 0.02) -> float:
    """Wait for ``cond`` with a deadline; the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(period)
    return time.monotonic() - t0


def quiet_logs() -> None:
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
