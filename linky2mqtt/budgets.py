"""The request budget of every scope, from the provider defaults and the accounts' overrides.

An ``accounts[].budget`` override may only make a provider's budget stricter: lower one of
its windows, or add a window the provider does not have (``per_day`` on Data Connect).
Raising a window above the provider's default is refused by the configuration
(:func:`linky2mqtt.enedis.budget.above_default`) unless the override says
``allow_above_default: true`` (a contract that grants more, a private gateway); then it
applies as written and every build of the budget logs a warning, because the upstream's
quota does not move because a config says so: asking more than it allows earns 429s (or a
ban, for the Conso API).

Each provider's :class:`~linky2mqtt.enedis.providers.Provider` description says who shares
its quotas (``scope_shape``); today:

* ``dataconnect``: one scope per account (``dataconnect:<account>``).
* ``myelectricaldata``: ``per_second`` is the account's scope
  (``myelectricaldata:account:<account>``), the longer windows each meter's
  (``myelectricaldata:<pdl>``, the gateway's 50 calls a day per PDL).
* ``conso``: one scope for the whole process (the API bans per IP): each window is the
  strictest value among the conso accounts that set it, the provider default otherwise.

One-second windows are paced over ``1 + SHORT_WINDOW_MARGIN`` seconds (transport jitter
must never land one request too many in the upstream's second). Windows of an hour or
more keep a share for fresher work (:data:`linky2mqtt.enedis.budget.SHARE`): backfill may
use 80 % of them, commands 90 %. :func:`describe` says all of that per scope
(``check-config``).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from linky2mqtt.enedis.budget import (
    LONG_WINDOW,
    SHARE,
    Priority,
    Window,
    above_default,
    default_limit,
    default_windows,
)
from linky2mqtt.enedis.providers import PROVIDERS
from linky2mqtt.enedis.providers import provider as provider_description

if TYPE_CHECKING:
    from linky2mqtt.config import AccountConfig, BudgetOverride, Config

log = logging.getLogger(__name__)

# Upstream counts a request when it arrives, we when we send it: a one-second window is
# paced over 1 + SHORT_WINDOW_MARGIN seconds so that transport jitter never lands one
# request too many inside the upstream's second (a 429 costs seconds of back-off).
SHORT_WINDOW_MARGIN = 0.05

_WINDOW_NAMES = {1.0: "second", 3600.0: "hour", 43200.0: "12h", 86400.0: "day"}


def window_name(seconds: float) -> str:
    key = 1.0 if seconds == 1.0 + SHORT_WINDOW_MARGIN else float(seconds)
    return _WINDOW_NAMES.get(key, f"{seconds:g}s")


def _requested(override: BudgetOverride) -> dict[float, int]:
    wanted = {1.0: override.per_second, 3600.0: override.per_hour,
              43200.0: override.per_12h, 86400.0: override.per_day}
    return {s: v for s, v in wanted.items() if v is not None}


def _override(windows: list[Window], override: BudgetOverride | None) -> list[Window]:
    if override is None:
        return windows
    out = {float(w.seconds): w for w in windows}
    for seconds, limit in _requested(override).items():
        out[seconds] = Window(seconds, limit)
    return [out[k] for k in sorted(out)]


def _warn_raised(account: AccountConfig) -> None:
    if account.budget is None:
        return
    for key, value, default in above_default(account.provider, account.budget):
        log.warning(
            "account %s: budget %s %d is above the %s default of %d (allow_above_default): "
            "the upstream's quota does not move because a config says so; expect 429 "
            "answers if it does not grant more", account.name, key, value,
            account.provider, default)


def budget_windows(cfg: Config, *, warn: bool = True) -> dict[str, list[Window]]:
    """The request budget of every scope: provider defaults, then per-account overrides;
    ``warn``: log a warning for each window raised above its provider default."""
    spec: dict[str, list[Window]] = {}
    for provider in PROVIDERS:
        spec.update(default_windows(provider))
    shared: dict[str, dict[float, int]] = {}  # process-wide scopes: the strictest asked
    for account in cfg.accounts:
        if account.budget is None:
            continue
        if warn:
            _warn_raised(account)
        desc = provider_description(account.provider)
        name = desc.name
        if desc.scope_shape == "process":
            asked = shared.setdefault(name, {})
            for seconds, limit in _requested(account.budget).items():
                asked[seconds] = min(limit, asked.get(seconds, limit))
        elif desc.scope_shape == "account":
            spec[f"{name}:{account.name}"] = _override(spec[name], account.budget)
        else:
            per_pdl = _override(spec[name] + spec[f"{name}:account"], account.budget)
            for meter in account.meters:
                spec[f"{name}:{meter.pdl}"] = [w for w in per_pdl if w.seconds > 1]
            spec[f"{name}:account:{account.name}"] = [w for w in per_pdl if w.seconds <= 1]
    for name, asked in shared.items():
        if not asked:
            continue
        merged = {float(w.seconds): w for w in spec[name]}
        merged.update({s: Window(s, limit) for s, limit in asked.items()})
        spec[name] = [merged[k] for k in sorted(merged)]
    return {scope: [Window(1.0 + SHORT_WINDOW_MARGIN, w.limit) if w.seconds == 1.0 else w
                    for w in windows] for scope, windows in spec.items()}


def _scope_lines(account: AccountConfig) -> list[tuple[str, str]]:
    """(scope shown, scope looked up) of an account's requests."""
    desc = provider_description(account.provider)
    name = desc.name
    if desc.scope_shape == "process":
        return [(f"{name} (one scope for every {name} account)", name)]
    if desc.scope_shape == "account":
        return [(f"{name}:{account.name}", f"{name}:{account.name}")]
    first = account.meters[0].pdl if account.meters else ""
    return [(f"{name}:account:{account.name}", f"{name}:account:{account.name}"),
            (f"{name}:<each meter's PDL>", f"{name}:{first}")]


def _lookup(spec: dict[str, list[Window]], scope: str) -> list[Window]:
    parts = scope.split(":")
    for i in range(len(parts), 0, -1):
        key = ":".join(parts[:i])
        if key in spec:
            return spec[key]
    return []


def describe(cfg: Config, account: AccountConfig) -> list[str]:
    """``check-config`` lines: the effective windows of each of the account's scopes, where
    each comes from, the pacing of one-second windows and the backfill/command caps."""
    spec = budget_windows(cfg, warn=False)
    lines = []
    for shown, scope in _scope_lines(account):
        parts = []
        for w in _lookup(spec, scope):
            seconds = 1.0 if w.seconds == 1.0 + SHORT_WINDOW_MARGIN else float(w.seconds)
            text = f"{w.limit}/{window_name(seconds)}"
            default = default_limit(account.provider, seconds)
            if default is None:
                text += " (added by budget)"
            elif w.limit < default:
                text += f" (lowered from {default})"
            elif w.limit > default:
                text += f" (ABOVE the provider default {default}: allow_above_default)"
            else:
                text += " (provider default)"
            if seconds == 1.0:
                text += f", paced over {1.0 + SHORT_WINDOW_MARGIN:g} s"
            if seconds >= LONG_WINDOW:
                text += (f", backfill <= {_cap(w.limit, Priority.BACKFILL)}, "
                         f"commands <= {_cap(w.limit, Priority.COMMAND)}")
            parts.append(text)
        lines.append(f"    budget {shown}: " + ("; ".join(parts) or "unlimited"))
    return lines


def _cap(limit: int, priority: Priority) -> int:
    return max(1, math.floor(limit * SHARE[priority]))
