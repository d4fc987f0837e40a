"""Request quotas: sliding windows (1 s, 1 h, 12 h) per provider on the injected clock.

Only accepted requests count; a request over any limit is refused with the window that
refused it and how long until that window lets one more request through.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

SECOND, HOUR, TWELVE_HOURS = 1.0, 3600.0, 43200.0


@dataclass(frozen=True, slots=True)
class Refusal:
    window: float  # seconds
    limit: int
    wait: float  # seconds until one more request is allowed


class Quota:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = {}
        self.limits: dict[float, int | None] = {SECOND: None, HOUR: None, TWELVE_HOURS: None}

    def set_limit(self, window: float, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError("a rate limit cannot be negative")
        with self._lock:
            self.limits[window] = limit

    def clear(self) -> None:
        with self._lock:
            self._times.clear()

    def admit(self, scope: str, now: float) -> Refusal | None:
        """Record a request at ``now`` if every window allows it, else say why not."""
        with self._lock:
            times = self._times.setdefault(scope, [])
            cut = bisect.bisect_right(times, now - TWELVE_HOURS)
            del times[:cut]
            for window, limit in sorted(self.limits.items()):
                if limit is None:
                    continue
                first = bisect.bisect_right(times, now - window)
                inside = len(times) - first
                if inside >= limit:
                    if limit == 0:
                        return Refusal(window, limit, window)
                    oldest = times[len(times) - limit]
                    return Refusal(window, limit, max(0.0, oldest + window - now))
            bisect.insort(times, now)
        return None


def threshold_text(seconds: float) -> str:
    """``H:MM:SS`` as in ``Call threshold allowed on 0:00:01``."""
    total = max(1, int(seconds + 0.999))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
