"""Bad input, end to end: arbitrary config files through the CLI, arbitrary upstream
bodies through the real client, a full disk and a read-only store.

(The loader's own property tests are in test_config_fuzz.py and the parsers' in
test_enedis_parse.py; here the same inputs go through the user-facing entry points.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from linky2mqtt.config import load_text
from linky2mqtt.enedis import (
    Budget,
    Contract,
    EnedisClient,
    FetchResult,
    MemoryLedger,
    ProviderSettings,
    RetryPolicy,
    Window,
    errors,
    no_sleep,
)
from linky2mqtt.model import Kind
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import Store, StoreError
from tests.support.broker import Mosquitto
from tests.support.cli import run_cli, saved_root_logging
from tests.support.clock import SUITE_CLOCK, SteppedClock, bridge_command
from tests.test_config_fuzz import ENV, PROBLEM_RE, SECRET_VALUES, VALID, VALUES, paths
from tests.test_enedis_client import jwt

REPO = Path(__file__).resolve().parent.parent
PDL = "12345678901234"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """cli.main configures the root logger; put it back after each test."""
    with saved_root_logging():
        yield


# -- the configuration file through `linky2mqtt check-config` --------------------------

_WORK = Path(tempfile.mkdtemp(prefix="l2m-badinput-"))


def check_config_file(text: str | bytes) -> None:
    path = _WORK / "config.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    rc, out, err = run_cli("check-config", "-c", str(path), env=ENV)
    assert "Traceback" not in out + err
    for secret in SECRET_VALUES:
        assert secret not in out + err
    if rc == 0:
        assert err == ""
        assert out.strip()
        return
    assert rc == 2, (rc, err)
    assert out == ""
    head, *problems = err.rstrip("\n").split("\n")
    assert head == f"linky2mqtt: invalid configuration {path}:"
    assert problems
    for line in problems:
        assert PROBLEM_RE.match(line), line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_check_config_arbitrary_documents_exit_2_with_paths(doc: Any) -> None:
    check_config_file(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_check_config_mutated_valid_file(data: st.DataObject) -> None:
    import copy

    doc: Any = copy.deepcopy(VALID)
    path = data.draw(st.sampled_from([p for p in paths(doc) if p]))
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = data.draw(VALUES)
    check_config_file(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=60))
def test_check_config_arbitrary_bytes(raw: bytes) -> None:
    check_config_file(raw)


def test_check_config_missing_file_directory_and_not_utf8(tmp_path: Path) -> None:
    rc, out, err = run_cli("check-config", "-c", str(tmp_path / "nope.yaml"))
    assert (rc, out) == (2, "")
    assert err.splitlines()[1].startswith("config: file not found: ")
    assert str(tmp_path / "nope.yaml") in err
    rc, _, err = run_cli("check-config", "-c", str(tmp_path))
    assert rc == 2 and "is a directory, not a file" in err
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"mqtt: {url: 'mqtt://h\xe9'}\n")
    rc, _, err = run_cli("check-config", "-c", str(bad))
    assert rc == 2 and "is not UTF-8 text" in err and "Traceback" not in err


def test_check_config_valid_base_exits_0() -> None:
    check_config_file(yaml.safe_dump(VALID))
    assert load_text(yaml.safe_dump(VALID), env=ENV, base_dir=_WORK).accounts


# -- arbitrary upstream bodies through the real client ---------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["2026-11-20", "2026-11-20 00:30:00", "PT30M", "Wh", "W", "kW", "12"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["grandeur", "points", "unite", "v", "d", "p", "meter_reading",
                         "interval_reading", "value", "date", "reading_type", "unit",
                         "interval_length", "error", "error_description", "code",
                         "access_token", "expires_in", "customer"]) | st.text(max_size=6),
        children, max_size=4),
    max_leaves=16,
)
BODY = st.one_of(
    JSON.map(lambda doc: ("application/json", _json_bytes(doc))),
    st.binary(max_size=40).map(lambda b: ("application/octet-stream", b)),
    st.sampled_from([("text/html", b"<html>502 Bad Gateway</html>"),
                     ("application/json", b'{"grandeur": [{"points": ['),
                     ("application/json", b""), ("application/json", b"null")]),
)
STATUS = st.sampled_from([200, 200, 200, 204, 400, 401, 403, 404, 429, 500, 502, 503])
HEADERS = st.sampled_from([{}, {"Retry-After": "1"}, {"Retry-After": "garbage"},
                           {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}])


def _json_bytes(doc: Any) -> bytes:
    import json

    return json.dumps(doc, allow_nan=True).encode()


def _client(provider: str, answers: list[tuple[int, str, bytes, dict[str, str]]]) -> EnedisClient:
    def handler(request: httpx.Request) -> httpx.Response:
        status, ctype, body, headers = answers[len(calls) % len(answers)]
        calls.append(request)
        return httpx.Response(status, content=body,
                              headers={"Content-Type": ctype, **headers})

    calls: list[httpx.Request] = []
    clock = SteppedClock(datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    scopes = ["conso", "dataconnect", "dataconnect:home", "myelectricaldata",
              f"myelectricaldata:{PDL}", "myelectricaldata:account:home"]
    budget = Budget({s: [Window(1, 10**6)] for s in scopes}, MemoryLedger(), clock)
    settings_ = ProviderSettings(
        provider=provider, token=jwt([PDL]) if provider == "conso" else "tok-123456789",
        client_id="cid" if provider == "dataconnect" else None,
        client_secret="csecret-123456" if provider == "dataconnect" else None,
        base_url="http://upstream.test", account="home")
    return EnedisClient(settings_, budget=budget, clock=clock,
                        retry=RetryPolicy(attempts=2, sleep=no_sleep),
                        http=httpx.Client(transport=httpx.MockTransport(handler)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider=st.sampled_from(["conso", "dataconnect", "myelectricaldata"]),
       answers=st.lists(st.tuples(STATUS, BODY, HEADERS), min_size=1, max_size=3),
       what=st.sampled_from(["daily", "curve", "max_power", "production", "contract"]))
@example(provider="dataconnect",  # found once: a token no header can carry
         answers=[(200, ("application/octet-stream", b""), {}),
                  (200, ("application/json", b'{"access_token": "\\u0080"}'), {})],
         what="daily")
def test_client_on_arbitrary_bodies_gives_result_or_enedis_error(
    provider: str, answers: list[tuple[int, tuple[str, bytes], dict[str, str]]], what: str
) -> None:
    flat = [(status, ctype, body, headers) for status, (ctype, body), headers in answers]
    client = _client(provider, flat)
    start, end = date(2026, 11, 20), date(2026, 11, 22)
    try:
        if what == "contract":
            result: Any = client.contract(PDL)
            assert result is None or isinstance(result, Contract)
        elif what == "curve":
            result = client.curve(PDL, Kind.CONSUMPTION, start, end)
        elif what == "max_power":
            result = client.daily(PDL, Kind.MAX_POWER, start, end)
        else:
            kind = Kind.PRODUCTION if what == "production" else Kind.CONSUMPTION
            result = client.daily(PDL, kind, start, end)
        if what != "contract":
            assert isinstance(result, FetchResult)
            for r in result.readings:
                assert r.pdl == PDL and r.start.tzinfo is not None
    except errors.EnedisError as exc:
        text = str(exc)
        assert text and "\n" not in text
        assert "tok-123456789" not in text and "csecret-123456" not in text
    finally:
        client.close()


# -- a full disk ------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (root only); skipped when it cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                              check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True, timeout=10)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free."""
    filler = folder / "filler"
    st_ = os.statvfs(folder)
    size = max(0, st_.f_bavail * st_.f_frsize - leave)
    with open(filler, "wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * size)
    return filler


def _bridge_yaml(store: Path, broker: Mosquitto, sim: Simulator, pdls: list[str],
                 hour_days: int) -> str:
    token = sim.make_conso_token(pdls)
    meters = "".join(
        f'      - pdl: "{p}"\n        steps: [day, hour]\n'
        f"        backfill_days: {{day: 30, hour: {hour_days}}}\n" for p in pdls)
    return (
        f"mqtt: {{url: '{broker.url}', client_id: l2m-badinput}}\n"
        f"store: {{path: '{store}'}}\n"
        "homeassistant: {discovery: false}\n"
        "accounts:\n"
        "  - name: home\n    provider: conso\n"
        f"    token: '{token}'\n    base_url: '{sim.url}'\n"
        # no budget: conso's defaults (a raise here was silently capped to them before
        # overrides became stricter-only; it would now need allow_above_default)
        "    meters:\n" + meters
    )


def test_disk_full_is_a_clear_store_error_and_never_corrupts(
    tmpfs: Path, broker: Mosquitto, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    from linky2mqtt.bridge import Bridge

    caplog.set_level(logging.INFO)
    db = tmpfs / "linky.db"
    pdls = ["12345678901234", "22516914714270"]
    cfg = load_text(_bridge_yaml(db, broker, simulator, pdls, hour_days=60), env={})
    Store(db).close()  # schema in place; then leave only a little room
    filler = _fill(tmpfs, leave=48 * 1024)
    bridge = Bridge(cfg, stagger=0.0, clock=SUITE_CLOCK)
    bridge.start()
    try:
        def poll_errors() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.levelno == logging.ERROR
                    and "poll stopped by a store error" in r.getMessage()]

        states = [s for r in bridge.fleet.runners for s in r.meters.values()]
        deadline = time.monotonic() + 30
        while not (poll_errors() and any(s.last_error and "disk full" in s.last_error
                                         for s in states)):
            assert time.monotonic() < deadline, "no disk-full poll error within 30 s"
            time.sleep(0.05)
        line = poll_errors()[0].getMessage()
        assert f": poll stopped by a store error, retried later: store {db}: disk full, " \
            "nothing written" in line
        # the account threads survive the failure, and retry later instead of looping
        assert all(r.thread.is_alive() for r in bridge.fleet.runners)
        count = len(poll_errors())
        assert all(s.next_due > bridge.clock.time() + 3000 for s in states
                   if s.last_error and "disk full" in s.last_error)
    finally:
        bridge.stop()
    assert len(poll_errors()) <= count + 2  # no tight retry loop
    filler.unlink()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(db) as store:  # and it opens again, with what was written before
        assert store.schema_version >= 1


def test_store_error_at_write_names_the_file(tmpfs: Path) -> None:
    db = tmpfs / "s.db"
    store = Store(db)
    filler = _fill(tmpfs, leave=0)
    try:
        with pytest.raises(StoreError) as info:
            for i in range(200):
                store.set_retained(f"t/{i}", b"x" * 4000)
        assert str(info.value).startswith(f"store {db}: disk full, nothing written")
    finally:
        store.close()
    filler.unlink()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- a read-only store at start -----------------------------------------------------------


def _run_subprocess(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bridge_command("run", "-c", str(config)),
                          check=False, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_read_only_store_exits_1_with_one_line_naming_the_path(
    tmpfs: Path, tmp_path: Path
) -> None:
    db = tmpfs / "linky.db"
    Store(db).close()
    done = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True,
                          check=False, text=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only: {done.stderr.strip()}")
    config = tmp_path / "config.yaml"
    config.write_text(
        "mqtt: {url: 'mqtt://127.0.0.1:1'}\n"
        f"store: {{path: '{db}'}}\n"
        "accounts:\n  - {name: home, provider: myelectricaldata, token: t-123456,\n"
        "     meters: [{pdl: '12345678901234'}]}\n")
    result = _run_subprocess(config)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(
        rf"linky2mqtt: error: StoreError: store {re.escape(str(db))}: cannot open: "
        r"(file|directory \S+) is read-only", lines[0]), lines[0]


def test_read_only_store_file_by_bind_mount(tmp_path: Path) -> None:
    db = tmp_path / "linky.db"
    Store(db).close()
    mounted = subprocess.run(["mount", "--bind", str(db), str(db)], capture_output=True,
                             check=False, text=True, timeout=10)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount (needs root): {mounted.stderr.strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(db)], capture_output=True,
                            check=False, text=True, timeout=10)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only: {ro.stderr.strip()}")
        with pytest.raises(StoreError) as info:
            Store(db)
        assert str(info.value) == f"store {db}: cannot open: file is read-only"
    finally:
        subprocess.run(["umount", "-l", str(db)], check=False, capture_output=True, timeout=10)
