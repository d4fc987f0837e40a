"""Command line: subcommands, and one exit code and one clear line per error family.

Exit codes: 0 done; 2 configuration or usage error, or the store already in use by
another bridge; 1 anything else (upstream error, store error or damage, broker
unreachable at the end of a command...). No traceback unless the log level is debug.

Every family under :class:`linky2mqtt.errors.Linky2MqttError` is mapped once, in
:func:`_failure`, to its exit code and one line with what to do: the hint of
:func:`linky2mqtt.progress.hint` for an upstream error, the message itself where it
already says it (store in use, store damaged, add-on options).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date
from types import FrameType
from typing import Any

from linky2mqtt import __version__
from linky2mqtt.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("linky2mqtt")

DEFAULT_CONFIG = "config.yaml"


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="linky2mqtt",
        description="French Linky smart-meter data (Enedis) on MQTT.",
    )
    p.add_argument("--version", action="version", version=f"linky2mqtt {__version__}")
    sub = p.add_subparsers(dest="command")

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config",
                        default=os.environ.get("LINKY2MQTT_CONFIG", DEFAULT_CONFIG),
                        help="configuration file (default: $LINKY2MQTT_CONFIG or config.yaml)")

    r = sub.add_parser("run", help="run the bridge (default)")
    with_config(r)
    with_config(sub.add_parser("check-config", help="validate the configuration and summarise it"))
    with_config(sub.add_parser("healthcheck",
                               help="exit 0 when the running bridge's heartbeat is fresh"))
    f = sub.add_parser("fetch", help="one fetch from the provider, printed as JSON")
    with_config(f)
    f.add_argument("--pdl", required=True)
    f.add_argument("--kind", default="consumption",
                   choices=["consumption", "production", "max_power"])
    f.add_argument("--step", default="day", choices=["day", "month", "hour"])
    f.add_argument("--start", required=True, help="YYYY-MM-DD (included)")
    f.add_argument("--end", required=True, help="YYYY-MM-DD (excluded)")
    st = sub.add_parser("store", help="check the store, or repair a damaged one")
    st.add_argument("action", choices=["check", "repair"],
                    help="check: print ok or damaged (exit 0 or 1); repair: copy what can "
                         "be read into a fresh store, keeping the damaged file beside it")
    with_config(st)
    st.add_argument("--store", default=None, metavar="PATH",
                    help="the store file (default: store.path of the configuration)")
    e = sub.add_parser("export", help="what the store holds, as CSV or JSON lines (no "
                       "request upstream)")
    with_config(e)
    e.add_argument("--store", default=None, metavar="PATH",
                   help="the store to read (default: store.path of the configuration)")
    e.add_argument("--pdl", required=True)
    e.add_argument("--kind", default="consumption",
                   choices=["consumption", "production", "max_power"])
    e.add_argument("--step", default="day", choices=["day", "month", "hour"])
    e.add_argument("--start", required=True, help="YYYY-MM-DD (included)")
    e.add_argument("--end", required=True, help="YYYY-MM-DD (excluded)")
    e.add_argument("--format", default="csv", choices=["csv", "jsonl"])
    e.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    e.add_argument("--delimiter", default=None, help="CSV field separator (default ,)")
    e.add_argument("--decimal", default=None, choices=[".", ","],
                   help="CSV decimal mark (default .)")
    e.add_argument("--excel-fr", action="store_true",
                   help="CSV for a French spreadsheet: ; between fields, decimal comma")
    s = sub.add_parser("simulator", help="serve the Enedis simulator alone")
    s.add_argument("args", nargs=argparse.REMAINDER)
    d = sub.add_parser("demo", help="run the bridge against the built-in simulator")
    d.add_argument("--broker", default=None,
                   help="mqtt://host:port to use (default: localhost:1883 if it answers, "
                        "else a private mosquitto from PATH, else amqtt from the demo extra); "
                        "'mosquitto' or 'amqtt' forces that "
                        "private broker")
    d.add_argument("--seconds", type=float, default=None,
                   help="stop after this many seconds (default: until Ctrl-C)")
    return p


def main(argv: Sequence[str] | None = None, *, clock: Clock = SYSTEM_CLOCK) -> int:
    """Run one command; ``clock`` is the time every part of it reads (real time, unless
    a caller injects another: the test suite's entry point pins it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `linky2mqtt -c x.yaml` means `linky2mqtt run -c x.yaml`
    known = {"run", "check-config", "fetch", "simulator", "demo", "healthcheck", "store",
             "export"}
    if not args_list or (args_list[0] not in known and args_list[0] not in
                         ("-h", "--help", "--version")):
        args_list.insert(0, "run")
    if args_list[0] == "simulator":
        from linky2mqtt.simulator.cli import main as sim_main

        return sim_main(args_list[1:])
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version 0
        return int(exc.code or 0)
    debug = False
    global _ADDON
    _ADDON = _addon_mode(args_list)
    try:
        if args.command == "check-config":
            return _check_config(args.config)
        if args.command == "healthcheck":
            return _healthcheck(args.config)
        if args.command == "store":
            return _store(args)
        if args.command == "fetch":
            cfg = _load(args.config)
            debug = cfg.log.level == "debug"
            return _fetch(cfg, args, clock)
        if args.command == "export":
            return _export(args, clock)
        if args.command == "demo":
            from linky2mqtt.demo import run_demo

            return run_demo(broker=args.broker, seconds=args.seconds, clock=clock)
        cfg = _load(args.config)
        debug = cfg.log.level == "debug"
        return _run(cfg, clock)
    except UsageError as exc:
        print(f"linky2mqtt: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        code, text, expected = _failure(exc, getattr(args, "config", DEFAULT_CONFIG))
        if debug and not expected:
            log.exception("fatal error")
        print(text, file=sys.stderr)
        return code


_ADDON = False


def _addon_mode(args_list: Sequence[str]) -> bool:
    """Started by a Home Assistant Supervisor, without an explicit ``-c``: options.json."""
    from linky2mqtt.addon import active

    explicit = any(a in ("-c", "--config") or a.startswith("--config=") for a in args_list)
    return not explicit and active()


def _failure(exc: Exception, config: str) -> tuple[int, str, bool]:
    """Each error family once: (exit code, what to print, expected): ``expected`` errors
    say all there is to say; the others show their traceback at log level debug."""
    from linky2mqtt.addon import AddonOptionsError
    from linky2mqtt.config import ConfigError
    from linky2mqtt.enedis.errors import EnedisError
    from linky2mqtt.ha_statistics import HomeAssistantError
    from linky2mqtt.logs import REDACTOR
    from linky2mqtt.progress import hint
    from linky2mqtt.storecheck import StoreDamaged
    from linky2mqtt.storelock import StoreInUse

    if isinstance(exc, ConfigError):  # every problem, one per line, with its dotted path
        return 2, f"linky2mqtt: invalid configuration {config}:\n{exc}", True
    if isinstance(exc, AddonOptionsError):  # its line says what to do
        return 2, f"linky2mqtt: {exc.line}", True
    if isinstance(exc, StoreInUse | StoreDamaged):  # the message says what to do
        return 2 if isinstance(exc, StoreInUse) else 1, f"linky2mqtt: {exc}", True
    line = f"linky2mqtt: error: {REDACTOR.redact(_one_line(exc))}"
    if isinstance(exc, EnedisError):
        line += f" -- {hint(exc, exc.provider)}"
    elif isinstance(exc, HomeAssistantError):
        line += " -- check homeassistant.statistics (url and token) and Home Assistant's log"
    # a StoreError's message names the file and the cause (read-only, disk full...);
    # anything else (a Linky2MqttError or not) is one line too, its traceback at debug
    return 1, line, False


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def _load(path: str) -> Any:
    from linky2mqtt.config import load

    if _ADDON:
        from linky2mqtt.addon import load_addon_config

        cfg = load_addon_config()  # AddonOptionsError: one clear line (_failure)
    else:
        cfg = load(path)  # ConfigError: every problem (_failure)
    from linky2mqtt.config import secret_values
    from linky2mqtt.logs import setup_logging

    setup_logging(cfg.log.level, cfg.log.format, secrets=secret_values(cfg))
    return cfg


def _check_config(path: str) -> int:
    from linky2mqtt.budgets import describe
    from linky2mqtt.config import summary

    cfg = _load(path)
    print(summary(cfg, lambda account: describe(cfg, account)))
    return 0


def _healthcheck(path: str) -> int:
    """Docker's HEALTHCHECK: 0 healthy, 1 unhealthy (never 2, which Docker reserves)."""
    from linky2mqtt.config import ConfigError, load
    from linky2mqtt.health import check, health_path

    if _ADDON:  # the store is beside options.json; no need to ask the Supervisor
        from linky2mqtt.addon import STORE_NAME, options_path

        beat = health_path(options_path().parent / STORE_NAME)
    else:
        try:
            cfg = load(path)
        except ConfigError:
            print(f"unhealthy: invalid configuration {path}", file=sys.stderr)
            return 1
        beat = health_path(cfg.store.path)
    problem = "in-memory store: no heartbeat file" if beat is None else check(beat)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    print("healthy")
    return 0


def _store(args: argparse.Namespace) -> int:
    """``store check``: 0 ok, 1 damaged; ``store repair``: 0 repaired (or nothing to do)."""
    from linky2mqtt.storecheck import check, repair
    from linky2mqtt.storelock import StoreLock

    path = args.store if args.store is not None else str(_load(args.config).store.path)
    if not os.path.exists(path):
        raise UsageError(f"store {path}: no such file")
    if args.action == "check":
        problems = check(path)
        if problems:
            shown = "; ".join(p[:200] for p in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            print(f"damaged: store {path}: {shown}{more}")
            return 1
        print(f"ok: store {path}")
        return 0
    lock = StoreLock.acquire(path)  # never repair under a running bridge
    try:
        if not check(path):
            print(f"ok: store {path} is not damaged; nothing to repair")
            return 0
        print(repair(path).line())
        return 0
    finally:
        lock.release()


def _parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--{what}: expected YYYY-MM-DD, got {text!r}") from None


def _fetch(cfg: Any, args: argparse.Namespace, clock: Clock) -> int:
    from linky2mqtt.fetch import FetchUsageError, fetch_once

    start, end = _parse_day(args.start, "start"), _parse_day(args.end, "end")
    if start >= end:
        raise UsageError("--start must be before --end (end is excluded)")
    try:
        data = fetch_once(cfg, args.pdl, args.kind, args.step, start=start, end=end,
                          clock=clock)
    except FetchUsageError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def _export(args: argparse.Namespace, clock: Clock) -> int:
    from pathlib import Path

    from linky2mqtt.export import export_rows, write_csv, write_jsonl
    from linky2mqtt.model import Kind
    from linky2mqtt.store import Store

    start, end = _parse_day(args.start, "start"), _parse_day(args.end, "end")
    if start >= end:
        raise UsageError("--start must be before --end (end is excluded)")
    if args.format == "jsonl" and (args.excel_fr or args.delimiter or args.decimal):
        raise UsageError("--excel-fr, --delimiter and --decimal are for --format csv")
    delimiter = args.delimiter or (";" if args.excel_fr else ",")
    decimal = args.decimal or ("," if args.excel_fr else ".")
    if len(delimiter) != 1 or delimiter == decimal or delimiter in "\r\n\"":
        raise UsageError("--delimiter must be one character, not the decimal mark, "
                         "a quote or a line break")
    if args.kind == "max_power" and args.step != "day":
        raise UsageError("max_power is a daily series: use --step day")
    path = Path(args.store) if args.store else Path(_load(args.config).store.path)
    if not path.is_file():
        raise UsageError(f"no store at {path}: run the bridge first (or give --store)")
    with Store(path, clock=clock) as store:
        rows = export_rows(store, args.pdl, Kind(args.kind), args.step, start=start, end=end)
        if args.output == "-":
            count = (write_jsonl(rows, sys.stdout) if args.format == "jsonl" else
                     write_csv(rows, sys.stdout, delimiter=delimiter, decimal=decimal))
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = (write_jsonl(rows, out) if args.format == "jsonl" else
                         write_csv(rows, out, delimiter=delimiter, decimal=decimal))
    if args.output != "-":
        print(f"linky2mqtt: {count} rows written to {args.output}", file=sys.stderr)
    return 0


def _run(cfg: Any, clock: Clock) -> int:
    from linky2mqtt.bridge import Bridge

    stop = threading.Event()

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    bridge = Bridge(cfg, clock=clock)
    bridge.run_forever(stop)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
