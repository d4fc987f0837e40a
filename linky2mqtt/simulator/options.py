"""Start-time options of the simulator."""

from __future__ import annotations

from dataclasses import dataclass

from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.simulator.faults import DEFAULT_RANDOM_KINDS


@dataclass(frozen=True)
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    clock: Clock = SYSTEM_CLOCK  # "today", the 08:00 rule, token expiry, quota windows
    client_id: str = "sim-client"
    client_secret: str = "sim-secret"  # noqa: S105 - the documented simulator default
    rate_per_second: int | None = None
    rate_per_hour: int | None = None
    rate_per_12h: int | None = None
    latency: float = 0.0  # real seconds added to every answer
    fault_rate: float = 0.0  # probability of a random fault per request
    seed: int = 0  # seeds the random faults
    fault_kinds: tuple[str, ...] = DEFAULT_RANDOM_KINDS  # drawn by the random fault rate
    # how load-curve stamps are written on the DST days: "wall-clock" or "start-offset"
    dst_stamps: str = "wall-clock"
