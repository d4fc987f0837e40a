"""The bridge process of figure 5: ``python -m bench.size_child CONFIG``.

Runs one first cycle of the configured bridge and prints one JSON line: peak RSS (KiB),
CPU seconds (user + system) of the whole process, wall seconds and meters polled.

The peak RSS is the process's own (``VmHWM`` of /proc/self/status), not ``ru_maxrss``:
on Linux ``ru_maxrss`` survives ``execve`` and so includes the RSS of the parent at the
moment it spawned the child (the bench process, simulator and all), which made a child
spawned by a bigger parent look bigger.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from bench.pin import install

install()  # the bench's pinned clock, before any module of the bridge is imported

from bench.common import quiet_logs, wait_until  # noqa: E402


def peak_rss_kib(usage: resource.struct_rusage) -> int:
    """This process's peak RSS in KiB (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return int(usage.ru_maxrss)


def main() -> int:
    quiet_logs()
    t0 = time.monotonic()
    from linky2mqtt.bridge import Bridge
    from linky2mqtt.config import load

    cfg = load(sys.argv[1])
    bridge = Bridge(cfg, stagger=0.0)
    states = [s for r in bridge.fleet.runners for s in r.meters.values()]
    bridge.start()
    # the meters not polled yet, fewer at each look (a look at all 10,000 every 100 ms
    # cost the figure about 1.5 % of the CPU it measures)
    waiting = list(states)

    def cycle_done() -> bool:
        waiting[:] = [s for s in waiting if s.last_poll is None]
        return not waiting

    try:
        wait_until(cycle_done, 3600, "first cycle", period=0.1)
        wall = time.monotonic() - t0
        errors = sum(1 for s in states if s.last_error)
    finally:
        bridge.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"maxrss_kib": peak_rss_kib(usage), "cpu": usage.ru_utime + usage.ru_stime,
                      "wall": wall, "meters": len(states), "errors": errors}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
