"""TEST-ONLY entry point: ``linky2mqtt`` on an injected, pinned clock.

``python -m tests.support.bridge_main --clock START@ANCHOR [--speed X] run -c cfg.yaml``
builds ``FastClock.anchored(START, X, ANCHOR)`` (START naive: Paris time; ANCHOR: the
real epoch second at which the simulated clock read START, default now; X: simulated
seconds per real second, default 1) and runs ``linky2mqtt.cli.main(argv, clock=...)``:
the very code path of ``linky2mqtt run`` (or any other command), with the clock given
explicitly instead of the real one. Processes given the same three values share one
simulated timeline (the soak kills and restarts a bridge on it). The production CLI has
no clock option; this module is not part of the package.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime

from linky2mqtt.cli import main as cli_main
from linky2mqtt.clock import FastClock
from linky2mqtt.model import PARIS


class ClockSpecError(ValueError):
    """A bad ``--clock``/``--speed``."""


def build_clock(spec: str, speed: float = 1.0) -> FastClock:
    """``START[@ANCHOR]`` and a speed: the anchored clock (ClockSpecError when wrong)."""
    start_text, _, anchor_text = spec.partition("@")
    try:
        start = datetime.fromisoformat(start_text)
    except ValueError:
        raise ClockSpecError(f"--clock: expected an ISO instant, got {start_text!r}") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=PARIS)
    try:
        anchor = float(anchor_text) if anchor_text else time.time()
    except ValueError:
        raise ClockSpecError(f"--clock: expected START@EPOCH, got {spec!r}") from None
    if speed <= 0:
        raise ClockSpecError("--speed must be positive")
    return FastClock.anchored(start, speed, anchor)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.bridge_main",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--clock", required=True, metavar="START[@ANCHOR]")
    p.add_argument("--speed", type=float, default=1.0, metavar="X")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="the linky2mqtt command line")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        clock = build_clock(args.clock, args.speed)
    except ClockSpecError as exc:
        print(f"bridge_main: {exc}", file=sys.stderr)
        return 2
    return cli_main(args.argv, clock=clock)


if __name__ == "__main__":
    raise SystemExit(main())
