"""The bridge process of figure 5: ``python -m bench.size_child CONFIG``.

Runs one first cycle of the configured bridge and prints one JSON line: peak RSS (KiB),
CPU seconds (user + system) of the whole process, wall seconds and meters polled.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from bench.common import quiet_logs, wait_until


def main() -> int:
    quiet_logs()
    t0 = time.monotonic()
    from linky2mqtt.bridge import Bridge
    from linky2mqtt.config import load

    cfg = load(sys.argv[1])
    bridge = Bridge(cfg, stagger=0.0)
    states = [s for r in bridge.fleet.runners for s in r.meters.values()]
    bridge.start()
    try:
        wait_until(lambda: all(s.last_poll is not None for s in states), 3600,
                   "first cycle", period=0.1)
        wall = time.monotonic() - t0
        errors = sum(1 for s in states if s.last_error)
    finally:
        bridge.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"maxrss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
                      "wall": wall, "meters": len(states), "errors": errors}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
