"""Issue 13, runtime side: slow servers, SIGTERM, one bridge per store, damaged stores,
private files, and what a body that is not JSON is reported as.

The end-to-end tests run ``python -m linky2mqtt`` as a subprocess against a real
mosquitto and the simulator (its ``trickle`` fault: one byte per second).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from linky2mqtt.enedis import EnedisClient, ProviderSettings, RetryPolicy, errors, no_sleep
from linky2mqtt.health import Heartbeat
from linky2mqtt.model import Kind, Reading
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import Store
from linky2mqtt.storecheck import check
from linky2mqtt.storelock import StoreInUse, StoreLock
from tests.support.bridge import REPO, BridgeProcess, latest_day, truth_day_kwh, wait_until
from tests.support.broker import Mosquitto
from tests.support.clock import bridge_command
from tests.support.mqtt_client import Collector, Message

PDL_A = "12345678901234"  # the account whose server trickles
PDL_B = "22516914714270"  # the account that works
MED_TOKEN = "med-token-0123456789"


# -- the simulator's trickle fault ---------------------------------------------------------


def test_trickle_fault_sends_the_real_answer_one_byte_at_a_time(simulator: Simulator) -> None:
    token = simulator.make_conso_token([PDL_A])
    day = latest_day()
    params = {"pointId": PDL_A, "dateDebut": (day - timedelta(days=1)).isoformat(),
              "dateFin": (day + timedelta(days=1)).isoformat()}
    with httpx.Client(base_url=simulator.url, timeout=10) as client:
        normal = client.get("/api/consommation_quotidienne", params=params,
                            headers={"Authorization": f"Bearer {token}"})
        assert normal.status_code == 200, normal.text
        simulator.script(PDL_A, ["trickle:0.05"])
        began = time.monotonic()
        gaps: list[float] = []
        body = b""
        with client.stream("GET", "/api/consommation_quotidienne", params=params,
                           headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status_code == 200
            last = time.monotonic()
            for chunk in resp.iter_raw():
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                body += chunk
        elapsed = time.monotonic() - began
    assert body == normal.content  # the real answer, intact
    assert len(gaps) >= len(body) // 2  # byte by byte (a few may coalesce)
    assert elapsed >= 0.05 * (len(body) - 1) * 0.9


# -- the overall deadline of one exchange (MockTransport unit tests) -----------------------


class _Trickle(httpx.SyncByteStream):
    """A body that never ends: one byte every ``period`` seconds, until told to stop."""

    def __init__(self, period: float, stop: threading.Event) -> None:
        self.period, self.stop = period, stop
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while not self.stop.wait(self.period):
            self.sent += 1
            yield b" "


def _med_client(handler: Any, **kw: Any) -> EnedisClient:
    settings = ProviderSettings(provider="myelectricaldata", token=MED_TOKEN,
                                base_url="http://upstream.test")
    return EnedisClient(settings, http=httpx.Client(transport=httpx.MockTransport(handler)),
                        retry=RetryPolicy(attempts=1, sleep=no_sleep), **kw)


def test_a_trickling_body_times_out_at_the_deadline() -> None:
    stop = threading.Event()
    bodies: list[_Trickle] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(_Trickle(0.05, stop))
        return httpx.Response(200, headers={"Content-Type": "application/json"},
                              stream=bodies[-1])

    client = _med_client(handler, deadline=0.5)
    day = latest_day()
    began = time.monotonic()
    try:
        with pytest.raises(errors.Timeout) as info:
            client.daily(PDL_A, Kind.CONSUMPTION, day - timedelta(days=2), day)
        took = time.monotonic() - began
        assert 0.45 <= took < 2.0, took
        assert str(info.value).endswith("no complete answer within 0.5 s")
        assert errors.TransportError in type(info.value).__mro__  # retried like one
        sent = bodies[0].sent
        assert sent >= 3  # the server was not silent: a read timeout would never fire
        # the abandoned exchange stops reading at its next byte
        wait_until(lambda: bodies[0].sent <= sent + 3, 2, "the exchange abandoned")
    finally:
        stop.set()
        client.close()


def test_cancel_abandons_the_exchange_at_once() -> None:
    stop = threading.Event()
    cancel = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Trickle(0.05, stop))

    client = _med_client(handler, deadline=60, cancel=cancel)
    threading.Timer(0.3, cancel.set).start()
    day = latest_day()
    began = time.monotonic()
    try:
        with pytest.raises(errors.Cancelled):
            client.daily(PDL_A, Kind.CONSUMPTION, day - timedelta(days=2), day)
        assert time.monotonic() - began < 1.5
        with pytest.raises(errors.Cancelled):  # and nothing more is sent
            client.daily(PDL_A, Kind.CONSUMPTION, day - timedelta(days=2), day)
    finally:
        stop.set()
        client.close()


def test_a_truncated_body_says_what_was_received_without_the_secret() -> None:
    truncated = f'{{"meter_reading": {{"usage_point_id": "{MED_TOKEN}'.encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "application/json"},
                              content=truncated)

    client = _med_client(handler)
    day = latest_day()
    with pytest.raises(errors.BadResponse) as info:
        client.daily(PDL_A, Kind.CONSUMPTION, day - timedelta(days=2), day)
    client.close()
    text = str(info.value)
    assert MED_TOKEN not in text
    assert text.endswith(f"got {len(truncated)} bytes, not valid JSON: "
                         '{"meter_reading": {"usage_point_id": "***'), text


def test_a_long_html_page_is_quoted_bounded_on_one_line() -> None:
    page = b"<html>\n<body>" + b"x" * 5000 + b"</body></html>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/html"}, content=page)

    client = _med_client(handler)
    day = latest_day()
    with pytest.raises(errors.BadResponse) as info:
        client.daily(PDL_A, Kind.CONSUMPTION, day - timedelta(days=2), day)
    client.close()
    text = str(info.value)
    assert "\n" not in text and len(text) < 250
    assert f"expected JSON, got text/html ({len(page)} bytes): <html> <body>xxx" in text
    assert text.endswith("…")


# -- the bridge against a trickling server, and SIGTERM -------------------------------------


def _yaml(broker: Mosquitto, store: Path, accounts: str, *, client_id: str | None = "l2m-rt",
          base: str = "l2m") -> str:
    cid = f"  client_id: {client_id}\n" if client_id else ""
    return (f"mqtt:\n  url: {broker.url}\n{cid}  base_topic: {base}\n"
            "homeassistant:\n  discovery: false\n"
            f"store:\n  path: {store}\n"
            "accounts:\n" + accounts)


def _conso(name: str, sim: Simulator, pdl: str, *, timeout: int | None = None) -> str:
    extra = f"    request_timeout: {timeout}\n" if timeout else ""
    return (f"  - name: {name}\n    provider: conso\n    base_url: {sim.url}\n"
            f"    token: {json.dumps(sim.make_conso_token([pdl]))}\n{extra}"
            f"    meters:\n      - pdl: \"{pdl}\"\n        steps: [day]\n"
            "        backfill_days: {day: 3, hour: 0}\n")


def _status(msgs: list[Message], pdl: str) -> dict[str, Any] | None:
    got = [m for m in msgs if m.topic == f"l2m/{pdl}/status"]
    return got[-1].json() if got else None


def _requests_for(sim: Simulator, pdl: str) -> int:
    return sum(b["count"] for b in sim.stats()["by"] if b["pdl"] == pdl)


def test_a_trickling_server_times_out_others_publish_and_sigterm_stops_in_5_s(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path) -> None:
    simulator.script(PDL_A, ["trickle"] * 5)  # every attempt of the first poll, then one
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_yaml(broker, tmp_path / "s.db",
                         _conso("slow", simulator, PDL_A, timeout=5)
                         + _conso("fine", simulator, PDL_B)))
    watcher = Collector(broker.host, broker.port, ["l2m/#"])
    proc = BridgeProcess(cfg)
    try:
        day = latest_day()
        # the working account publishes while the other one is stuck
        got = watcher.wait_for(
            lambda ms: [m for m in ms if m.topic == f"l2m/{PDL_B}/consumption/day"
                        and m.json()["date"] == day.isoformat()], 30, "B's day")
        assert got[-1].json()["value"] == truth_day_kwh(simulator, PDL_B, Kind.CONSUMPTION,
                                                        day)
        # 4 attempts of 5 s with 2, 4, 8 s (+ jitter) between them: about 35 s
        status = watcher.wait_for(
            lambda ms: (s := _status(ms, PDL_A)) and s.get("last_error") and s, 90,
            f"A's status with an error\n{proc.stderr}")
        assert status["last_error"].endswith("no complete answer within 5 s"), status
        assert "attempt 1/4 failed" in proc.stderr
        # a refresh of A: one more trickling exchange, in flight when SIGTERM comes
        before = _requests_for(simulator, PDL_A)
        watcher.publish("l2m/bridge/request/refresh", json.dumps({"pdl": PDL_A}))
        wait_until(lambda: _requests_for(simulator, PDL_A) > before, 20,
                   "the refresh's request upstream")
        began = time.monotonic()
        rc = proc.terminate(timeout=10)
        took = time.monotonic() - began
    finally:
        proc.close()
    assert rc == 0, proc.stderr
    assert took < 5.0, f"SIGTERM took {took:.1f} s\n{proc.stderr}"
    print(f"SIGTERM to exit with an exchange in flight: {took:.2f} s")
    state = watcher.wait_for(
        lambda ms: [m for m in ms if m.topic == "l2m/bridge/state"
                    and m.json().get("state") == "offline"], 10, "offline")
    watcher.close()
    assert state[-1].retain or True  # live delivery; the retained copy is checked below
    late = Collector(broker.host, broker.port, ["l2m/bridge/state"])
    try:
        retained = late.wait_topic("l2m/bridge/state", timeout=10)
        assert retained.retain and retained.json()["state"] == "offline"
    finally:
        late.close()
    assert "Traceback" not in proc.stderr


# -- one bridge per store ----------------------------------------------------------------


def _med_account(sim: Simulator, pdl: str) -> str:
    return (f"  - name: gw\n    provider: myelectricaldata\n    base_url: {sim.url}\n"
            f"    token: {MED_TOKEN}\n"
            f"    meters:\n      - pdl: \"{pdl}\"\n        steps: [day]\n"
            "        backfill_days: {day: 2, hour: 0}\n")


def test_a_second_bridge_on_the_same_store_exits_2_naming_the_store_and_pid(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_yaml(broker, store, _med_account(simulator, PDL_A)))
    watcher = Collector(broker.host, broker.port, ["l2m/bridge/state"])
    first = BridgeProcess(cfg)
    try:
        watcher.wait_for(lambda ms: any(m.json().get("state") == "online" for m in ms), 30,
                         "the first bridge online")
        second = subprocess.run(bridge_command("run", "-c", str(cfg)),
                                cwd=REPO, capture_output=True, text=True, timeout=60,
                                check=False)
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"linky2mqtt: store {store} is in use by another linky2mqtt (PID "
            f"{first.proc.pid}); stop it first, or give this one its own store.path"]
        assert first.proc.poll() is None  # the first one is untouched
        # killed: the kernel releases the lock, a new bridge starts at once
        assert first.kill() == -9
        third = BridgeProcess(cfg)
        try:
            watcher.wait_for(lambda ms: sum(m.json().get("state") == "online"
                                            for m in ms) >= 2, 30, "the new bridge online")
            assert third.terminate() == 0, third.stderr
        finally:
            third.close()
    finally:
        first.close()
        watcher.close()


def test_lock_is_exclusive_in_process_and_released(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    lock = StoreLock.acquire(store)
    with pytest.raises(StoreInUse) as info:
        StoreLock.acquire(store)
    assert info.value.pid == os.getpid()
    lock.release()
    StoreLock.acquire(store).release()


def _expected_client_id(store: Path) -> str:
    digest = hashlib.sha256(str(store.resolve()).encode()).hexdigest()[:8]
    return f"linky2mqtt-{digest}"


def test_two_installations_with_default_client_ids_do_not_kick_each_other(
        simulator: Simulator, broker: Mosquitto, tmp_path: Path) -> None:
    procs = []
    ids = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        cfg = folder / "cfg.yaml"
        cfg.write_text(_yaml(broker, folder / "s.db", _med_account(simulator, PDL_A),
                             client_id=None, base=name))
        ids.append(_expected_client_id(folder / "s.db"))
        procs.append(BridgeProcess(cfg))
    assert ids[0] != ids[1]
    watcher = Collector(broker.host, broker.port, ["one/bridge/state", "two/bridge/state"])
    try:
        watcher.wait_for(lambda ms: all(any(m.topic == f"{b}/bridge/state"
                                            and m.json().get("state") == "online" for m in ms)
                                        for b in ("one", "two")), 30, "both online")

        def connects() -> dict[str, int]:
            text = broker.log.read_text(errors="replace")
            return {i: len(re.findall(rf"New client connected from \S+ as {i}\b", text))
                    for i in ids}

        wait_until(lambda: all(n >= 1 for n in connects().values()), 10,
                   "both client ids in the broker's log")
        # kicking each other would show within a second or two (paho reconnects at once)
        with pytest.raises(TimeoutError):
            wait_until(lambda: any(n > 1 for n in connects().values())
                       or any(m.json().get("state") == "offline" for m in watcher.messages),
                       4, "a reconnection")
        assert connects() == dict.fromkeys(ids, 1)
        for p in procs:
            assert p.terminate() == 0, p.stderr
    finally:
        for p in procs:
            p.close()
        watcher.close()


# -- a damaged store ---------------------------------------------------------------------


def _real_store(path: Path, days: int = 400) -> list[tuple[Any, ...]]:
    """A store holding a year of 30-minute readings for two meters; its readings rows."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with Store(path) as store:
        for pdl in (PDL_A, PDL_B):
            batch = [Reading(pdl=pdl, kind=Kind.CONSUMPTION, resolution="PT30M",
                             start=start + timedelta(minutes=30 * i), value=float(100 + i % 97))
                     for i in range(days * 48 // 4)]
            store.save_readings(batch)
        store.set_retained("l2m/bridge/info", b"{}")
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT pdl, kind, resolution, start_utc, value FROM readings"))


DAMAGE = 8192


def _damage(path: Path) -> int:
    """8 KiB of random bytes in the middle of the file; the readings rows this can cost.

    The cost is computed from the b-tree's structure before the damage (SQLite's
    ``dbstat``): every row of a damaged page and of the pages below it, and the
    separator rows of their parent pages.
    """
    total = path.stat().st_size
    offset = total // 2
    with sqlite3.connect(path) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("SELECT pageno, path, ncell, pagetype FROM dbstat"
                             " WHERE name = 'readings'").fetchall()
    hit = [p for (n, p, _, _) in pages if (n - 1) * size < offset + DAMAGE and n * size > offset]
    # the separator keys of their parent pages too (a WITHOUT ROWID table keeps rows there)
    parents = {h[:h.rstrip("/").rfind("/") + 1] for h in hit if h != "/"}
    at_risk = sum(cells for (_, p, cells, kind) in pages if kind != "overflow"
                  and (any(p.startswith(h) for h in hit) or p in parents))
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(random.Random(13).randbytes(DAMAGE))
    return int(at_risk)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bridge_command(*args), cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_damaged_store_is_refused_then_repaired(
        simulator: Simulator, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    rows = _real_store(store)
    size = store.stat().st_size
    at_risk = _damage(store)
    assert check(store), "the damage went unnoticed by quick_check"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("mqtt: {url: 'mqtt://127.0.0.1:1'}\n"
                   f"store: {{path: '{store}'}}\n"
                   "accounts:\n" + _med_account(simulator, PDL_A))
    damaged_bytes = store.read_bytes()
    run = _cli("run", "-c", str(cfg))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"linky2mqtt: store {store} is damaged (PRAGMA quick_check: ")
    assert lines[0].endswith(f"it was left as it is: stop here, keep a copy, then run "
                             f"`linky2mqtt store repair` with the same -c (or --store {store}) "
                             "to recover what can be read into a fresh store")
    assert store.read_bytes() == damaged_bytes  # left in place, untouched
    checked = _cli("store", "check", "-c", str(cfg))
    assert checked.returncode == 1 and checked.stdout.startswith(f"damaged: store {store}: ")
    repaired = _cli("store", "repair", "--store", str(store))
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.startswith(f"repaired: store {store}: copied ")
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("s.db.broken-")]
    assert [p.name for p in kept if not p.name.endswith(("-wal", "-shm"))], kept
    assert _cli("store", "check", "-c", str(cfg)).stdout == f"ok: store {store}\n"
    with sqlite3.connect(store) as conn:
        got = sorted(conn.execute("SELECT pdl, kind, resolution, start_utc, value FROM readings"))
        retained = conn.execute("SELECT payload FROM retained").fetchall()
    lost = len(rows) - len(got)
    print(f"store {size} bytes, {len(rows)} readings; on damaged pages or below them: "
          f"{at_risk}; recovered {len(got)}, lost {lost}")
    assert set(got) <= set(rows), "the repair invented or altered readings"
    assert 0 < lost <= at_risk  # every row outside the damaged subtrees is recovered
    assert retained == [(b"{}",)]
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    # and the bridge accepts it
    ok = subprocess.run([sys.executable, "-c", (
        "from linky2mqtt.storecheck import check; import sys; "
        f"sys.exit(1 if check({str(store)!r}) else 0)")], cwd=REPO, timeout=60, check=False)
    assert ok.returncode == 0


# -- private files --------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_store_heartbeat_and_lock_are_created_0600(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "s.db"
    lock = StoreLock.acquire(db)
    with Store(db) as store:
        store.set_retained("t", b"x")
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}.lock")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    lock.release()
    beat = Heartbeat(tmp_path / "s.db.health", lambda: True)
    beat.beat()
    assert stat.S_IMODE((tmp_path / "s.db.health").stat().st_mode) == 0o600
