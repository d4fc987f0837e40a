"""``linky2mqtt simulator``: serve the simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from linky2mqtt.clock import SYSTEM_CLOCK, Clock, FastClock
from linky2mqtt.model import PARIS
from linky2mqtt.simulator.core import Simulator
from linky2mqtt.simulator.data import DST_STAMPS, SANDBOX_NOTES
from linky2mqtt.simulator.options import SimOptions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="linky2mqtt simulator",
        description="Serve the Enedis simulator (Conso API, Data Connect, MyElectricalData).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="probability (0..1) of a random fault per request")
    p.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    p.add_argument("--rate-per-second", type=int, default=None)
    p.add_argument("--rate-per-hour", type=int, default=None)
    p.add_argument("--rate-per-12h", type=int, default=None)
    p.add_argument("--client-id", default="sim-client", help="Data Connect client id")
    p.add_argument("--client-secret", default="sim-secret", help="Data Connect client secret")
    p.add_argument("--dst-stamps", choices=DST_STAMPS, default=DST_STAMPS[0],
                   help="how load-curve stamps are written on the DST change days: "
                        "wall-clock (default: the time in force at each end instant) or "
                        "start-offset (end instant in the offset of the interval's start)")
    p.add_argument("--now", default=None,
                   help="start the simulated clock at this ISO instant (naive: Paris time)")
    p.add_argument("--speed", type=float, default=None,
                   help="simulated seconds per real second (default 1 with --now)")
    return p


def _clock(now: str | None, speed: float | None) -> Clock:
    if now is None and speed is None:
        return SYSTEM_CLOCK
    start = datetime.now(UTC)
    if now is not None:
        start = datetime.fromisoformat(now)
        if start.tzinfo is None:
            start = start.replace(tzinfo=PARIS)
    return FastClock(start, speed or 1.0)


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulator"]:
        args_list = args_list[1:]
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help: 0, usage error: 2
        return int(exc.code or 0)
    try:
        clock = _clock(args.now, args.speed)
        options = SimOptions(
            host=args.host, port=args.port, clock=clock, client_id=args.client_id,
            client_secret=args.client_secret, rate_per_second=args.rate_per_second,
            rate_per_hour=args.rate_per_hour, rate_per_12h=args.rate_per_12h,
            latency=args.latency, fault_rate=args.fault_rate, seed=args.seed,
            dst_stamps=args.dst_stamps)
        sim = Simulator(options)
        sim.app.set(fault_rate=args.fault_rate, latency=args.latency)  # validates
    except ValueError as exc:
        sys.stderr.write(f"linky2mqtt simulator: {exc}\n")
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                            stream=sys.stderr)
    try:
        sim.start()
    except OSError as exc:
        sys.stderr.write(f"linky2mqtt simulator: cannot listen on {args.host}:{args.port}: "
                         f"{exc}\n")
        return 1
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    pdls = list(SANDBOX_NOTES)
    log = logging.getLogger("linky2mqtt.simulator")
    log.info("simulator listening on %s (clock now %s)", sim.url,
             clock.now().astimezone(PARIS).isoformat(timespec="seconds"))
    log.info("dataconnect: client credentials %s / <--client-secret>; myelectricaldata: "
             "any token; conso: a JWT from GET %s/_sim/conso_token?pdl=<PDL>",
             args.client_id, sim.url)
    log.info("sandbox PDLs: %s", ", ".join(pdls))
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        log.info("simulator stopped")
    return 0
