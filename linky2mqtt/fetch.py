"""``linky2mqtt fetch``: one fetch from the provider, shaped like a ``read`` answer's data.

It goes through the same client, retry policy and request budget as the bridge (the
budget's ledger is the configured store, so a fetch counts against the same quota), but
it does not store what it fetched: it is for checking credentials and data by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from linky2mqtt import commands
from linky2mqtt.bridge import provider_settings
from linky2mqtt.budgets import budget_windows
from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.config import AccountConfig, Config
from linky2mqtt.enedis import Budget, EnedisClient, Priority
from linky2mqtt.model import DAILY, PDL_RE, HourlyDay, Kind, Reading, Step, aggregate_hours
from linky2mqtt.store import Store


class FetchUsageError(ValueError):
    """The request cannot be made (unknown PDL, a step the kind does not have)."""


class MemorySource:
    """:class:`commands.ReadSource` over readings held in memory (one meter's: the
    protocol's ``pdl`` arguments are not needed)."""

    def __init__(self, readings: Iterable[Reading]) -> None:
        self.daily: dict[tuple[Kind, date], Reading] = {}
        self.curve: dict[date, list[Reading]] = {}
        for r in readings:
            if r.resolution == DAILY:
                self.daily[(r.kind, r.local_date)] = r
            else:
                self.curve.setdefault(r.local_date, []).append(r)

    def daily_values(self, pdl: str, kind: Kind, start: date,  # noqa: ARG002
                     end: date) -> dict[date, float]:
        return {d: r.value for (k, d), r in self.daily.items() if k is kind and start <= d < end}

    def max_power_values(self, pdl: str, start: date,  # noqa: ARG002
                         end: date) -> dict[date, tuple[float, datetime]]:
        return {d: (r.value, r.peak_at or r.start) for (k, d), r in self.daily.items()
                if k is Kind.MAX_POWER and start <= d < end}

    def hourly(self, pdl: str, kind: Kind, day: date) -> HourlyDay | None:  # noqa: ARG002
        readings = [r for r in self.curve.get(day, []) if r.kind is kind]
        if not readings:
            return None
        return aggregate_hours(readings, day)


def _account_for(cfg: Config, pdl: str) -> AccountConfig:
    for account in cfg.accounts:
        if any(m.pdl == pdl for m in account.meters):
            return account
    autos = [a for a in cfg.accounts if a.auto_meters]
    if len(autos) == 1:
        return autos[0]
    raise FetchUsageError(f"PDL {pdl} is not configured in any account")


def fetch_once(cfg: Config, pdl: str, kind: str, step: str, *, start: date,
               end: date, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    if not PDL_RE.match(pdl):
        raise FetchUsageError(f"--pdl: expected 14 digits, got {pdl!r}")
    k, s = Kind(kind), Step(step)
    if k is Kind.MAX_POWER and s is not Step.DAY:
        raise FetchUsageError("max_power has a day step only")
    account = _account_for(cfg, pdl)
    store = Store(cfg.store.path, clock=clock)
    try:
        budget = Budget(budget_windows(cfg), store, clock)
        with EnedisClient(provider_settings(account), budget=budget, clock=clock,
                          deadline=account.request_timeout) as client:
            if s is Step.HOUR:
                result = client.curve(pdl, k, start, end, priority=Priority.COMMAND)
            else:
                result = client.daily(pdl, k, start, end, priority=Priority.COMMAND)
    finally:
        store.close()
    req = commands.ReadRequest(pdl=pdl, kind=k, step=s, start=start, end=end)
    return commands.build_read_data(req, MemorySource(result.readings))
