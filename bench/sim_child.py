"""A simulator in its own process, for a figure that must not depend on the bench
process's state: ``python -m bench.sim_child``.

Prints its URL on one line, then serves until its standard input closes. It runs on the
bench's pinned clock (inherited through the environment, :mod:`bench.pin`) with default
options: no quota, no latency.

Why: the size figure's simulator used to run inside the bench process. After the other
figures that process holds a large heap, and its garbage collections paused the
simulator's answers; the bridge child then waited more, gave its turn up more often and
spent more CPU on the same work (the figure read higher inside a full run than alone).
"""

from __future__ import annotations

import sys

from bench.pin import install

install()  # the bench's pinned clock, before the simulator reads it

from linky2mqtt.simulator import SimOptions, Simulator  # noqa: E402


def main() -> int:
    sim = Simulator(SimOptions(port=0))
    sim.start()
    try:
        print(sim.url, flush=True)
        sys.stdin.read()  # until the parent closes it (or dies)
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
