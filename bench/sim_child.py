"""A simulator in its own process, for a figure that must not depend on the bench
process's state: ``python -m bench.sim_child``.

Prints its URL on one line, then serves until its standard input closes. It runs on the
bench's pinned clock (inherited through the environment, :mod:`bench.pin`) with default
options: no quota, no latency.

Why: the size figure's simulator used to run inside the bench process, so its answers
shared that process's interpreter and heap with whatever the figures before it left
behind. In session 5 the figure read much higher after the command figure than alone
(8.0-10.0 against 5.8-6.6 ms per meter-day), cause not found. In session 6, with the lean
wire, that effect no longer shows with the simulator in either place (``--only command
size``: 4.20 / 4.39 ms in the bench process, 4.36 / 4.69 ms in its own process), so the
move is not its explanation; it is kept so that the figure does not depend on the bench
process's state.
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
