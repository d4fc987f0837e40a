"""A first run that explains itself: backfill progress and its end in one line per account,
upstream errors as one line with what to do (tracebacks only at debug), and a demo that
leaves a shared broker as it found it. The real bridge (a subprocess, log level info), a
real mosquitto and the simulator over HTTP."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from linky2mqtt.logs import setup_logging
from linky2mqtt.model import PARIS, Kind
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import Store
from tests.support.bridge import (
    REPO,
    BridgeProcess,
    account_yaml,
    config_yaml,
    days_back,
    wait_until,
)
from tests.support.broker import Mosquitto
from tests.support.cli import saved_root_logging
from tests.support.clock import SUITE_CLOCK, bridge_command
from tests.support.mqtt_client import Collector

DC_PDL = "22516914714270"
CONSO_PDL = "12345678901234"
PROGRESS = re.compile(
    r"account (?P<acct>\w+): backfill (?P<pct>\d+) %: (?P<series>.+); requests "
    r"(?P<req>[\d,]+) \(budget: (?P<budget>[^)]+)\)(?P<wait>; waiting for the request "
    r"budget until (?P<until>\d\d:\d\d) \(in [\d.]+ (?:s|min|h)\))?$")
DONE = re.compile(r"account (?P<acct>\w+): backfill done: (?P<days>[\d,]+) days, "
                  r"(?P<hours>[\d,]+) hourly days, (?P<req>[\d,]+) requests, [\d.]+ s"
                  r"(?: \((?P<missing>[\d,]+) wanted days not available upstream: asked "
                  r"again on later polls\))?$")


def _messages(lines: list[str], logger: str = "linky2mqtt.backfill") -> list[str]:
    out = []
    for line in lines:
        m = re.match(r"^\S+ \S+ (\w+)\s+(\S+): (.*)$", line)
        if m and m[2] == logger:
            assert m[1] == "INFO", line
            out.append(m[3])
    return out


def test_a_backfill_says_how_far_it_is_and_when_it_is_done(
        broker: Mosquitto, simulator: Simulator, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    account = account_yaml("biz", "dataconnect", simulator, [
        {"pdl": DC_PDL, "steps": ["day", "hour"], "backfill_days": {"day": 730, "hour": 120}}],
        client_id="sim-client", client_secret="sim-secret")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_yaml(broker.url, store, [account], extra="commands: false\n"))
    started = time.monotonic()
    bridge = BridgeProcess(cfg)
    try:
        wait_until(lambda: any("backfill done" in ln for ln in bridge.lines), 120,
                   "the backfill done line")
        elapsed = time.monotonic() - started
    finally:
        assert bridge.terminate() == 0
    lines = _messages(bridge.lines)
    *progress, done = lines
    assert progress, bridge.stderr
    pcts = []
    for text in progress:
        m = PROGRESS.match(text)
        assert m is not None, text
        assert m["acct"] == "biz" and m["wait"] is None
        assert re.fullmatch(r"consumption/day [\d,]+/730 days, consumption/hour [\d,]+/120 "
                            r"days", m["series"]), m["series"]
        assert re.fullmatch(r"\d+/1000 per hour", m["budget"]), m["budget"]
        pcts.append(int(m["pct"]))
    assert pcts == sorted(pcts) and pcts[-1] < 100
    # at most one line per 10 % step and per 10 s: never a flood
    assert len(progress) <= 10 + elapsed / 10 + 1
    m = DONE.match(done)
    assert m is not None, done
    # the figures are what the store holds and what the simulator answered
    with Store(store) as db:
        today = SUITE_CLOCK.now().astimezone(PARIS).date()
        days = db.days_with_daily(DC_PDL, Kind.CONSUMPTION, today - timedelta(730), today)
        hours = db.days_with_complete_curve(DC_PDL, Kind.CONSUMPTION,
                                            today - timedelta(120), today)
    assert int(m["days"].replace(",", "")) == len(days) >= 700
    assert int(m["hours"].replace(",", "")) == len(hours) == 120
    assert int(m["missing"] or 0) == 730 - len(days)
    # the contract is asked after the data (lowest priority), so after the done line
    served = sum(b["count"] for b in simulator.stats()["by"]
                 if b["endpoint"] not in ("situation_contrat_auto", "contracts"))
    assert int(m["req"].replace(",", "")) == served


def test_a_budget_wait_says_until_when(broker: Mosquitto, simulator: Simulator,
                                       tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    account = account_yaml("home", "conso", simulator, [
        {"pdl": CONSO_PDL, "steps": ["day", "hour"],
         "backfill_days": {"day": 30, "hour": 100}}],
        token=simulator.make_conso_token([CONSO_PDL]))
    account = account.replace("    meters:\n", "    budget: {per_12h: 8}\n    meters:\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_yaml(broker.url, store, [account], extra="commands: false\n"))
    bridge = BridgeProcess(cfg)
    try:
        line = wait_until(lambda: next((t for t in _messages(bridge.lines)
                                        if "waiting for the request budget" in t), None),
                          60, "the budget wait line")
    finally:
        assert bridge.terminate() == 0
    m = PROGRESS.match(line)
    assert m is not None, line
    # 8 requests per 12 h: the first request leaves the window 12 h after it was made
    until = datetime.strptime(m["until"], "%H:%M").time()
    now = SUITE_CLOCK.now().astimezone(PARIS)
    expected = (now + timedelta(hours=12)).time()
    gap = abs((datetime.combine(now.date(), until) - datetime.combine(now.date(), expected))
              .total_seconds())
    assert min(gap, 86400 - gap) <= 120, (line, expected)
    assert re.search(r"\(in 1[12]\.\d h\)$", line), line
    assert m["budget"].endswith("/8 per 12 h"), m["budget"]
    assert not any("backfill done" in t for t in _messages(bridge.lines))


def _bad_token_run(tmp_path: Path, broker: Mosquitto, simulator: Simulator,
                   level: str) -> str:
    account = account_yaml("home", "conso", simulator, [{"pdl": CONSO_PDL}],
                           token="not-a-jwt")
    cfg = tmp_path / f"c-{level}.yaml"
    cfg.write_text(config_yaml(broker.url, tmp_path / f"{level}.db", [account], level=level))
    bridge = BridgeProcess(cfg)
    try:
        wait_until(lambda: "poll failed" in bridge.stderr, 30, "the poll failure")
    finally:
        assert bridge.terminate() == 0
    return bridge.stderr


def test_a_bad_token_is_one_line_with_what_to_do(broker: Mosquitto, simulator: Simulator,
                                                 tmp_path: Path) -> None:
    err = _bad_token_run(tmp_path, broker, simulator, "info")
    assert "Traceback" not in err
    bad = [ln for ln in err.splitlines() if "not a JWT" in ln]
    assert bad, err
    for line in bad:
        assert re.match(r"^\S+ \S+ (ERROR|WARNING)", line), line
        assert line.endswith("-- get a new token from the Conso API consent page, then "
                             "restart"), line
    # every line of the log is a log line: nothing continues on the next line
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ", ln)
               for ln in err.splitlines() if ln and "Mosquitto" not in ln), err
    debug = _bad_token_run(tmp_path, broker, simulator, "debug")
    assert "Traceback" in debug and "AuthError" in debug


def test_below_debug_an_exception_is_one_line() -> None:
    out = io.StringIO()
    logger = logging.getLogger("linky2mqtt.test_one_line")
    with saved_root_logging():
        setup_logging("info", stream=out)
        try:
            raise ValueError("bad thing\nsecond line")
        except ValueError:
            logger.exception("while doing %s", "work")
        setup_logging("debug", stream=out)
        try:
            raise ValueError("again")
        except ValueError:
            logger.exception("at debug")
    first, *rest = out.getvalue().splitlines()
    assert first.endswith("linky2mqtt.test_one_line: while doing work: ValueError: bad thing "
                          "(log level debug shows the traceback)")
    assert rest[0].endswith("at debug") and rest[1] == "Traceback (most recent call last):"


def _retained(host: str, port: int, prefix: str) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)

    def on_message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        if msg.retain:
            got[msg.topic] = bytes(msg.payload)

    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"{prefix}/#", 1)
    client.connect(host, port)
    client.loop_start()
    time.sleep(1.0)  # retained messages come right after the subscription
    client.loop_stop()
    client.disconnect()
    return got


def test_the_demo_ignores_stale_retained_topics_and_clears_its_own(
        broker: Mosquitto) -> None:
    stale = Collector(broker.host, broker.port, topics=["unused/#"])
    stale.publish("linky2mqtt_demo/bridge/state", '{"state":"offline"}', retain=True)
    stale.publish(f"linky2mqtt_demo/{CONSO_PDL}/consumption/day", '{"value":1}', retain=True)
    stale.close()
    wait_until(lambda: len(_retained(broker.host, broker.port, "linky2mqtt_demo")) == 2, 10,
               "the stale topics on the broker")
    proc = subprocess.Popen(
        bridge_command("demo", "--broker", broker.url, "--seconds", "12"),
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert "demo: cleared 2 retained topics left under linky2mqtt_demo/ by an earlier demo" \
        in lines
    printed = [ln for ln in lines if " linky2mqtt_demo/" in ln]
    state = [ln for ln in printed if "linky2mqtt_demo/bridge/state" in ln.split()[1:3]]
    assert state and 'state="online"' in state[0], state  # no stale "offline" first
    assert not any('value=1 ' in ln or ln.endswith("value=1") for ln in printed)
    day = days_back(1)[0].isoformat()
    assert any(f'date="{day}"' in ln for ln in printed)
    cleared = re.search(r"demo: cleared its (\d+) retained topics", out)
    assert cleared is not None and int(cleared[1]) > 5, out
    assert _retained(broker.host, broker.port, "linky2mqtt_demo") == {}
