"""Hostile MQTT clients against the command topic (issue 13), over a real mosquitto that
enforces an ACL file, with the simulator upstream and a running Bridge.

The broker's users (the ACL documented in the security docs):

* ``bridge``: reads and writes everything (it owns ``linky2mqtt/#`` and the discovery
  topics, and answers wherever MQTT 5 requesters ask);
* ``nodered``: may only write ``linky2mqtt/bridge/request/#``, read
  ``linky2mqtt/bridge/response/#`` and use its own reply prefix ``replies/nodered/#``;
* ``watcher``: reads everything (the test's eyes); ``admin``: the test's own hands.

One bridge (module scope) serves most tests: two meters, discovery on,
``commands: {response_topics: [replies/nodered], max_payload: 4096}``.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from linky2mqtt import command_worker
from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import PARIS
from linky2mqtt.mqtt import Incoming
from linky2mqtt.simulator import SimOptions, Simulator
from tests.support.broker import Mosquitto, auth_broker
from tests.support.clock import SUITE_CLOCK
from tests.support.mqtt_client import Collector, Message
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(240)

A = "12655648759651"
C = "12345678901234"
BASE = "linky2mqtt"
REQ = f"{BASE}/bridge/request"
RESP = f"{BASE}/bridge/response"
USERS = {"bridge": "bridge-pw", "admin": "admin-pw", "watcher": "watcher-pw",
         "nodered": "nodered-pw"}
ACL = f"""user bridge
topic readwrite #

user admin
topic readwrite #

user watcher
topic read #

user nodered
topic write {REQ}/#
topic read {RESP}/#
topic readwrite replies/nodered/#
"""
_NOW = SUITE_CLOCK.now().astimezone(PARIS)
LATEST = _NOW.date() - timedelta(days=1 if _NOW.hour >= 8 else 2)
_tx = itertools.count(1)


class Client(Collector):
    """An MQTT 5 client logged in as one of USERS, recording what it receives."""

    def __init__(self, broker: Mosquitto, user: str, topics: list[str]) -> None:
        super().__init__(broker.host, broker.port, topics, client_id=f"{user}-{next(_tx)}",
                         username=user, password=USERS[user])

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False,
                properties: Properties | None = None, *, wait: bool = True,
                response_topic: str | None = None, correlation: bytes | None = None) -> None:
        """With ``response_topic`` (and ``correlation``): an MQTT 5 request."""
        if response_topic is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
        super().publish(topic, payload, qos, retain, properties, wait=wait)

    def answer(self, topic: str, tx: str, timeout: float = 30.0) -> dict[str, Any]:
        def pred(ms: list[Message]) -> dict[str, Any] | None:
            for m in ms:
                if m.topic == topic and tx.encode() in m.payload:
                    body: dict[str, Any] = m.json()
                    if body.get("transaction") == tx:
                        return body
            return None

        got: dict[str, Any] = self.wait_for(pred, timeout, f"transaction {tx} on {topic}")
        return got


@dataclass
class Env:
    broker: Mosquitto
    sim: Simulator
    bridge: Bridge
    watcher: Client
    tmp: Path


def bridge_yaml(broker: Mosquitto, sim: Simulator, *, base: str = BASE, client_id: str,
                store: str, extra: str = "", pdls: tuple[str, ...] = (A, C)) -> str:
    meters = "".join(f'      - {{pdl: "{p}", steps: [day], backfill_days: {{day: 3, hour: 0}}}}\n'
                     for p in pdls)
    return (f'mqtt: {{url: "{broker.url}", client_id: {client_id}, base_topic: {base}, '
            f'username: bridge, password: "{USERS["bridge"]}"}}\n'
            f"store: {{path: {store}}}\n{extra}"
            "accounts:\n  - name: home\n    provider: conso\n"
            f'    token: "{sim.make_conso_token(list(pdls))}"\n    base_url: "{sim.url}"\n'
            f"    meters:\n{meters}")


def polled(watcher: Client, base: str, pdls: tuple[str, ...]) -> None:
    def done(ms: list[Message]) -> bool:
        return all(any(m.topic == f"{base}/{pdl}/status" and m.payload
                       and m.json().get("latest_day") == LATEST.isoformat() for m in ms)
                   for pdl in pdls)

    watcher.wait_for(done, timeout=90, what=f"{', '.join(pdls)} polled")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("safety")
    broker = auth_broker(tmp, USERS, ACL)
    sim = Simulator(SimOptions(port=0, clock=SUITE_CLOCK))
    sim.start()
    watcher = Client(broker, "watcher", ["#"])
    bridge = Bridge(load_text(bridge_yaml(
        broker, sim, client_id="l2m-safety", store="bridge.db",
        extra="homeassistant: {discovery: true}\n"
              "commands: {response_topics: [replies/nodered], max_payload: 4096}\n"),
        env={}, base_dir=tmp), stagger=0.0, clock=SUITE_CLOCK)
    bridge.start()
    try:
        polled(watcher, BASE, (A, C))
        yield Env(broker, sim, bridge, watcher, tmp)
    finally:
        bridge.stop()
        watcher.close()
        sim.stop()
        broker.stop()


@pytest.fixture
def nodered(env: Env) -> Iterator[Client]:
    c = Client(env.broker, "nodered", [f"{RESP}/#", "replies/nodered/#"])
    yield c
    c.close()


@pytest.fixture
def admin(env: Env) -> Iterator[Client]:
    c = Client(env.broker, "admin", [f"{RESP}/#"])
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _fresh_log_throttles(env: Env) -> None:
    """Each test starts with the bridge's log throttles empty (the bridge is shared)."""
    svc = env.bridge.commands
    assert svc is not None
    svc._retained_log = command_worker.Throttled(logging.WARNING, burst=10)
    svc._topic_log = command_worker.Throttled(logging.WARNING, burst=10)
    svc._refused_log = command_worker.Throttled(logging.INFO, burst=20)


def tx() -> str:
    return f"tx-{next(_tx)}"


# ----------------------------------------------------------------------------- finding 1

TARGETS = [
    (f"{BASE}/{C}/consumption/day", "inside the bridge's base topic linky2mqtt/"),
    (f"{BASE}/bridge/state", "inside the bridge's base topic linky2mqtt/"),
    (f"{BASE}/bridge/info", "inside the bridge's base topic linky2mqtt/"),
    (f"{BASE}/bridge/request/info", "inside the bridge's base topic linky2mqtt/"),
    (BASE, "inside the bridge's base topic linky2mqtt/"),
    (f"homeassistant/device/linky2mqtt_{A}/config",
     "inside the Home Assistant discovery prefix homeassistant/"),
    ("homeassistant/status", "inside the Home Assistant discovery prefix homeassistant/"),
    ("replies/other/1", "outside the response topics this bridge allows "
                        "(commands.response_topics: replies/nodered)"),
    ("replies/noderedX/1", "outside the response topics this bridge allows"),
]


def test_response_topic_cannot_make_the_bridge_publish_where_it_must_not(
        env: Env, nodered: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    watcher = env.watcher
    start = len(watcher.messages)
    sent: dict[str, str] = {}
    # the ACL holds: nodered cannot write the bridge's topics itself...
    nodered.publish(f"{BASE}/bridge/state", b'{"state":"pwned"}')
    nodered.publish(f"{BASE}/{C}/consumption/day", b'{"value":-1}')
    # ... so it asks the bridge to do it, with the bridge's own answer
    for target, why in TARGETS:
        t = tx()
        sent[target] = t
        body = json.dumps({"transaction": t}).encode()
        nodered.publish(f"{REQ}/info", body, response_topic=target, correlation=b"c-" + t.encode())
        answer = nodered.answer(f"{RESP}/info", t)
        assert answer["status"] == "error" and answer["data"] == {}
        assert answer["error"] == f'response topic "{target}" refused: it is {why}' or \
            answer["error"].startswith(f'response topic "{target}" refused: it is {why}')
    # an allowed topic still gets its answer, with the correlation data
    ok_tx = tx()
    nodered.publish(f"{REQ}/info", json.dumps({"transaction": ok_tx}),
                    response_topic="replies/nodered/ok", correlation=b"\x00ok")
    reply = nodered.answer("replies/nodered/ok", ok_tx)
    assert reply["status"] == "ok" and reply["data"]["schema"] == 1
    got = nodered.on("replies/nodered/ok")[-1]
    assert getattr(got.properties, "CorrelationData", None) == b"\x00ok"
    # the watcher sees everything in the order the bridge published it: once the allowed
    # reply is there, any publication on a target would have been seen before it
    watcher.answer("replies/nodered/ok", ok_tx)
    seen = watcher.messages[start:]
    for target, t in sent.items():
        leaked = [m for m in seen if m.topic == target and t.encode() in m.payload
                  and b'"status"' in m.payload]  # an answer, not nodered's own request
        assert leaked == [], (target, leaked)
    assert not [m for m in seen if b"pwned" in m.payload or b'"value":-1' in m.payload]
    # one warning per refused topic, naming it (quoted, escaped)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "response topic" in r.getMessage()]
    for target, _ in TARGETS:
        assert sum(f'"{target}"' in w for w in warnings) == 1, (target, warnings)


def test_a_hostile_response_topic_is_escaped_and_bounded_in_the_log(
        env: Env, nodered: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    t = tx()
    # (mosquitto refuses control characters in topics; U+2028 ends a line in many viewers)
    evil = f"{BASE}/bridge/state\u20282026-11-29 10:00:00 INFO linky2mqtt: all fine" + "x" * 20000
    nodered.publish(f"{REQ}/info", json.dumps({"transaction": t}), response_topic=evil)
    answer = nodered.answer(f"{RESP}/info", t)
    assert answer["status"] == "error" and "refused: it is inside the bridge's base topic" \
        in answer["error"]
    assert len(answer["error"]) < 400
    lines = [r.getMessage() for r in caplog.records if "response topic" in r.getMessage()]
    assert len(lines) == 1
    assert "\u2028" not in lines[0] and "\\u20282026-11-29" in lines[0] and len(lines[0]) < 400


# ----------------------------------------------------------------------------- finding 3

def test_a_flood_of_birth_messages_causes_one_rediscovery_and_no_thread_per_message(
        env: Env, admin: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge, watcher = env.bridge, env.watcher
    # a delay longer than the flood takes to send on a loaded machine: every birth of the
    # flood falls within it (the production delay is random, 1 to 5 s)
    monkeypatch.setattr(bridge.rediscovery, "_delay", lambda: 8.0)
    discovery = {p: f"homeassistant/device/linky2mqtt_{p}/config" for p in (A, C)}
    before = {p: len(watcher.on(t)) for p, t in discovery.items()}
    runs = bridge.rediscovery.runs
    threads_before = threading.active_count()
    peak = [threads_before]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            peak[0] = max(peak[0], threading.active_count())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for i in range(5000):
        admin.publish("homeassistant/status", b"online", wait=i == 4999)
    # a request sent after the flood, answered in order: every birth was handled by then
    marker = tx()
    admin.publish(f"{REQ}/info", json.dumps({"transaction": marker}))
    admin.answer(f"{RESP}/info", marker, timeout=60)
    sampling.set()
    sampler.join(5)
    assert bridge.rediscovery.runs == runs  # not yet: the delay is still running

    def rediscovered(ms: list[Message]) -> bool:
        return all(sum(m.topic == t for m in ms) > before[p] for p, t in discovery.items())

    watcher.wait_for(rediscovered, timeout=30, what="the rediscovery")
    wait_until(lambda: bridge.rediscovery.runs == runs + 1, 10, "the run counted")
    assert bridge.rediscovery._due is None  # nothing else scheduled
    # one rediscovery: one discovery message per meter, and not one thread per message
    for p, t in discovery.items():
        assert len(watcher.on(t)) == before[p] + 1
    assert peak[0] <= threads_before + 2, (threads_before, peak[0])


# ----------------------------------------------------------------------------- finding 4

def test_retained_requests_are_ignored_and_left_alone(
        env: Env, admin: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    base = "l2m-ret"
    day = LATEST - timedelta(days=20)  # not in the store: a read would fetch it upstream
    t = tx()
    topic = f"{base}/bridge/request/read"
    body = json.dumps({"pdl": A, "kind": "consumption", "step": "day", "start": day.isoformat(),
                       "end": (day + timedelta(days=1)).isoformat(), "transaction": t})
    admin.publish(topic, body, retain=True)
    watch = Client(env.broker, "admin", [f"{base}/#"])
    try:
        for run in range(2):  # a start, then a restart
            bridge = Bridge(load_text(bridge_yaml(
                env.broker, env.sim, base=base, client_id="l2m-ret", store="ret.db",
                pdls=(A,), extra="homeassistant: {discovery: false}\n"),
                env={}, base_dir=env.tmp), stagger=0.0, clock=SUITE_CLOCK)
            with watch._cond:
                watch.messages.clear()
            bridge.start()
            try:
                assert bridge.link.wait_connected(30)
                polled(watch, base, (A,))  # this run's start-up poll is over
                upstream = env.sim.stats()["total"]
                marker = tx()
                watch.publish(f"{base}/bridge/request/info", json.dumps({"transaction": marker}))
                watch.answer(f"{base}/bridge/response/info", marker)
                # requests are answered in order: the retained one came first, unanswered
                assert not [m for m in watch.messages if m.topic.startswith(
                    f"{base}/bridge/response/") and t.encode() in m.payload], run
                assert env.sim.stats()["total"] == upstream
            finally:
                bridge.stop()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                    and "retained request" in r.getMessage()]
        assert len(warnings) == 2 and all(f'"{topic}"' in w for w in warnings), warnings
        # the bridge cleared nothing: the retained request is still there
        late = Client(env.broker, "admin", [topic])
        try:
            late.wait_for(lambda ms: any(m.retain and m.payload == body.encode() for m in ms),
                          timeout=10, what="the retained request, untouched")
        finally:
            late.close()
    finally:
        admin.publish(topic, b"", retain=True)  # the test clears its own retained message
        watch.close()


# ----------------------------------------------------------------------------- finding 5

@pytest.mark.parametrize("stuck_where", ["service", "link"])
def test_full_queues_refuse_with_the_transaction(
        env: Env, admin: Client, monkeypatch: pytest.MonkeyPatch, stuck_where: str) -> None:
    """Both bounded queues: the command service's (its worker stuck), then the MQTT link's
    inbox (the link's worker stuck): every request gets exactly one answer carrying its
    transaction, an answer or a refusal."""
    bridge = env.bridge
    svc = bridge.commands
    assert svc is not None
    release = threading.Event()
    stuck = threading.Event()
    if stuck_where == "service":
        original_info = bridge.fleet.info

        def slow_info() -> dict[str, Any]:
            stuck.set()
            release.wait(60)
            return original_info()

        monkeypatch.setattr(bridge.fleet, "info", slow_info)
    else:
        original_submit = svc.submit

        def slow_submit(msg: Incoming) -> None:
            stuck.set()
            release.wait(60)
            original_submit(msg)

        monkeypatch.setattr(svc, "submit", slow_submit)
    first = tx()
    admin.publish(f"{REQ}/info", json.dumps({"transaction": first}))
    assert stuck.wait(30)
    n = command_worker.QUEUE_LIMIT + 200
    txs = [tx() for _ in range(n)]
    for i, t in enumerate(txs):
        # every other one with the transaction last, as `{...msg.payload, transaction}` does
        admin.publish(f"{REQ}/info", json.dumps({"pad": None, "transaction": t})
                      if i % 2 else json.dumps({"transaction": t}), wait=i == n - 1)
    # the stuck request is out of the queue; QUEUE_LIMIT wait in it; the rest is refused
    expected = n - command_worker.QUEUE_LIMIT

    def refusals_so_far(ms: list[Message]) -> list[dict[str, Any]] | None:
        got = [m.json() for m in ms if m.topic == f"{RESP}/info"
               and b"too many requests" in m.payload]
        return got if len(got) >= expected else None

    refused = admin.wait_for(refusals_so_far, timeout=60, what=f"{expected} refusals")
    release.set()
    for t in [first, *txs]:
        admin.answer(f"{RESP}/info", t, timeout=60)
    monkeypatch.undo()
    answers = [m.json() for m in admin.on(f"{RESP}/info")]
    by_tx: dict[Any, list[dict[str, Any]]] = {}
    for a in answers:
        by_tx.setdefault(a.get("transaction"), []).append(a)
    assert all(len(by_tx[t]) == 1 for t in txs)
    busy = "too many requests are waiting; try again in a moment"
    refusals = [a for t in txs for a in by_tx[t] if a.get("error") == busy]
    # (after the release, the link's inbox may briefly outrun the service's queue)
    assert expected <= len(refusals) <= expected + 16, len(refusals)
    # the others were read (an "info" with a stray key is answered as such)
    assert {a.get("error") for t in txs for a in by_tx[t]} <= {
        None, busy, 'unknown key "pad" for command info; known keys: transaction'}
    assert {a["transaction"] for a in refused} <= {a["transaction"] for a in refusals}


def test_requests_over_max_payload_are_refused_unread(env: Env, admin: Client) -> None:
    t1, t2, t3 = tx(), tx(), tx()
    first = json.dumps({"transaction": t1, "pad": "x" * 5000}).encode()
    last = json.dumps({"pad": "x" * 5000, "transaction": t2}).encode()
    admin.publish(f"{REQ}/info", first)
    admin.publish(f"{REQ}/read", last)
    assert admin.answer(f"{RESP}/info", t1) == {
        "status": "error", "data": {}, "transaction": t1,
        "error": f"payload too large: {len(first)} bytes, at most 4096"}
    assert admin.answer(f"{RESP}/read", t2)["error"] == (
        f"payload too large: {len(last)} bytes, at most 4096")
    # 1 MiB with the transaction in the middle: refused, the transaction not searched for
    middle = b'{"a": "' + b"y" * 600_000 + b'", "transaction": "lost", "b": "' + \
        b"z" * 500_000 + b'"}'
    admin.publish(f"{REQ}/refresh", middle)
    admin.wait_for(lambda ms: any(m.topic == f"{RESP}/refresh" for m in ms),
                   what="the refusal of 1 MiB")
    assert admin.on(f"{RESP}/refresh")[-1].json() == {
        "status": "error", "data": {},
        "error": f"payload too large: {len(middle)} bytes, at most 4096"}
    # up to the limit, a request is read
    long_tx = t3 + "y" * (4096 - 19 - len(t3))
    fits = json.dumps({"transaction": long_tx}).encode()
    assert len(fits) == 4096
    admin.publish(f"{REQ}/info", fits)
    answer = admin.answer(f"{RESP}/info", long_tx)
    assert answer["status"] == "ok", len(fits)


# ----------------------------------------------------------------------------- finding 8

def test_log_lines_carry_bounded_escaped_input_and_errors_say_what_came(
        env: Env, admin: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    name = "x" * 60_000 + "\u20282026-11-29 10:00:00 ERROR forged line"
    t = tx()
    admin.publish(f"{REQ}/{name}", json.dumps({"transaction": t}))
    answer = admin.answer(f"{RESP}/{name}", t)
    assert answer["error"] == (f'unknown command "{"x" * 40}..."; '
                               "known commands: read, refresh, info")
    bad = b'{"pdl": "12655648759651", "kind": con\n2026-11-29 10:00:00 ERROR forged'
    admin.publish(f"{REQ}/read", bad)
    got = admin.wait_for(lambda ms: [m.json() for m in ms if m.topic == f"{RESP}/read"
                                     and b"not valid JSON" in m.payload], what="JSON error")
    assert got[-1]["error"].startswith(
        f'payload is not valid JSON: got {len(bad)} bytes "{{\\"pdl\\": \\"126556487596')
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("linky2mqtt")]
    assert any("x" * 80 in line for line in ours)  # the refusal was logged...
    for line in ours:  # ... bounded, on one line
        assert len(line) < 1000 and "\n" not in line and "\u2028" not in line, line[:200]
