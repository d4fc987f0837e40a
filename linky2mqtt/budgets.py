"""The request budget of every scope: the provider defaults, then the accounts' overrides.

``conso`` is one scope for the whole process (the ban is per IP): an override there applies
to all conso accounts, the strictest limit winning. One-second windows are paced over
``1 + SHORT_WINDOW_MARGIN`` seconds. :func:`window_name` names a window for the meters'
``status`` payloads.
"""

from __future__ import annotations

from linky2mqtt.config import BudgetOverride, Config
from linky2mqtt.enedis import Window, default_windows

# Upstream counts a request when it arrives, we when we send it: a one-second window is
# paced over 1 + SHORT_WINDOW_MARGIN seconds so that transport jitter never lands one
# request too many inside the upstream's second (a 429 costs seconds of back-off).
SHORT_WINDOW_MARGIN = 0.05

_WINDOW_NAMES = {1.0: "second", 3600.0: "hour", 43200.0: "12h", 86400.0: "day"}


def window_name(seconds: float) -> str:
    key = 1.0 if seconds == 1.0 + SHORT_WINDOW_MARGIN else float(seconds)
    return _WINDOW_NAMES.get(key, f"{seconds:g}s")


def _override(windows: list[Window], override: BudgetOverride | None) -> list[Window]:
    if override is None:
        return windows
    wanted = {1.0: override.per_second, 3600.0: override.per_hour,
              43200.0: override.per_12h, 86400.0: override.per_day}
    out = {float(w.seconds): w for w in windows}
    for seconds, limit in wanted.items():
        if limit is not None:
            out[seconds] = Window(seconds, limit)
    return [out[k] for k in sorted(out)]


def budget_windows(cfg: Config) -> dict[str, list[Window]]:
    """The request budget of every scope: provider defaults, then per-account overrides.

    ``conso`` is one scope for the whole process (the ban is per IP): an override there
    applies to all conso accounts, the strictest limit winning.
    """
    spec: dict[str, list[Window]] = {}
    for provider in ("conso", "dataconnect", "myelectricaldata"):
        spec.update(default_windows(provider))
    for account in cfg.accounts:
        if account.budget is None:
            continue
        if account.provider == "conso":
            merged = _override(spec["conso"], account.budget)
            spec["conso"] = [
                min((w for w in merged + spec["conso"] if w.seconds == m.seconds),
                    key=lambda w: w.limit) for m in merged]
        elif account.provider == "dataconnect":
            spec[f"dataconnect:{account.name}"] = _override(spec["dataconnect"],
                                                            account.budget)
        else:
            per_pdl = _override(spec["myelectricaldata"], account.budget)
            for meter in account.meters:
                spec[f"myelectricaldata:{meter.pdl}"] = [w for w in per_pdl if w.seconds > 1]
            fast = [w for w in per_pdl if w.seconds <= 1]
            if fast:
                spec[f"myelectricaldata:account:{account.name}"] = fast
    return {scope: [Window(1.0 + SHORT_WINDOW_MARGIN, w.limit) if w.seconds == 1.0 else w
                    for w in windows] for scope, windows in spec.items()}
