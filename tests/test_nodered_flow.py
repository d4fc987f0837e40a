"""The Node-RED example (examples/node-red/flow.json) against the bridge's real contract.

The flow must be importable as is: valid JSON, only core nodes and FlowFuse Dashboard 2.0
(``ui-*``) nodes, every wire and config reference resolving. Its mqtt nodes must use the
topics the bridge really publishes and subscribes (computed with ``linky2mqtt.topics``),
and the request its function node builds must be one the bridge accepts (run with
``node`` when it is installed, then validated by ``commands.parse_request``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from linky2mqtt import commands, topics
from linky2mqtt.model import Kind, Step

FLOW = Path(__file__).resolve().parent.parent / "examples" / "node-red" / "flow.json"
PDL = "12345678901234"
B = "linky2mqtt"

CORE_TYPES = {
    "tab", "mqtt-broker", "mqtt in", "mqtt out", "inject", "function", "change", "switch",
    "debug", "template", "json", "comment", "link in", "link out", "catch", "status",
    "delay", "trigger", "split", "join",
}
DASHBOARD_TYPES = {"ui-base", "ui-page", "ui-group", "ui-theme", "ui-chart", "ui-text"}


@pytest.fixture(scope="module")
def flow() -> list[dict[str, Any]]:
    doc = json.loads(FLOW.read_text(encoding="utf-8"))
    assert isinstance(doc, list)
    return doc


def by_type(flow: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [n for n in flow if n["type"] == kind]


def test_only_core_and_dashboard_2_nodes(flow: list[dict[str, Any]]) -> None:
    types = {n["type"] for n in flow}
    assert types <= CORE_TYPES | DASHBOARD_TYPES, types - CORE_TYPES - DASHBOARD_TYPES
    assert not any(t.startswith("ui_") for t in types)  # node-red-dashboard 1.x
    assert {"ui-base", "ui-page", "ui-group", "ui-chart"} <= types


def test_references_resolve(flow: list[dict[str, Any]]) -> None:
    ids = [n["id"] for n in flow]
    assert len(ids) == len(set(ids))
    known = set(ids)
    tabs = {n["id"] for n in by_type(flow, "tab")}
    for node in flow:
        for outputs in node.get("wires", []):
            assert set(outputs) <= known, node["id"]
        if "z" in node:
            assert node["z"] in tabs
        if node["type"] == "mqtt-broker":
            continue  # its "broker" is the host name
        for ref in ("broker", "group", "page", "ui", "theme"):
            if node.get(ref):
                assert node[ref] in known, (node["id"], ref)
    broker = by_type(flow, "mqtt-broker")
    assert len(broker) == 1
    assert (broker[0]["broker"], broker[0]["port"]) == ("localhost", "1883")


def test_mqtt_topics_are_the_bridges(flow: list[dict[str, Any]]) -> None:
    subscribed = {n["topic"] for n in by_type(flow, "mqtt in")}
    published = {n["topic"] for n in by_type(flow, "mqtt out")}
    assert subscribed == {
        topics.meter_topic(B, PDL, Kind.CONSUMPTION, Step.DAY),
        topics.meter_topic(B, PDL, Kind.CONSUMPTION, Step.HOUR),
        topics.response_topic(B, "read"),
    }
    assert published == {topics.request_topic(B, "read")}
    # the bridge listens to every request topic and answers read on response/read
    assert topics.command_from_topic(B, topics.request_topic(B, "read")) == "read"
    assert commands.response_topic(B, "read") == topics.response_topic(B, "read")
    for node in by_type(flow, "mqtt in"):
        assert node["datatype"] == "json"
    out = by_type(flow, "mqtt out")[0]
    assert out["retain"] == "false"  # a request must never stay on the broker


def test_hourly_series_reaches_the_chart(flow: list[dict[str, Any]]) -> None:
    nodes = {n["id"]: n for n in flow}
    chart = by_type(flow, "ui-chart")[0]
    feeding = [n for n in flow if any(chart["id"] in w for w in n.get("wires", []))]
    assert [n["type"] for n in feeding] == ["function"]
    fn = feeding[0]
    sources = {n["topic"] for n in by_type(flow, "mqtt in")
               if any(fn["id"] in w for w in n["wires"])}
    assert sources == {topics.meter_topic(B, PDL, Kind.CONSUMPTION, Step.HOUR),
                       topics.response_topic(B, "read")}
    assert (chart["xAxisProperty"], chart["yAxisProperty"]) == ("x", "y")
    assert nodes[chart["group"]]["type"] == "ui-group"


def _request_function(flow: list[dict[str, Any]]) -> dict[str, Any]:
    out = by_type(flow, "mqtt out")[0]
    (fn,) = [n for n in flow if any(out["id"] in w for w in n.get("wires", []))]
    assert fn["type"] == "function"
    inject = [n for n in by_type(flow, "inject") if any(fn["id"] in w for w in n["wires"])]
    assert inject and inject[0]["once"] is True
    return fn


@pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js) is not installed")
def test_read_request_is_accepted_by_the_bridge(flow: list[dict[str, Any]]) -> None:
    fn = _request_function(flow)
    script = (
        "const store = {}; const context = {get: k => store[k], set: (k, v) => store[k] = v};"
        "const node = {warn() {}, log() {}, status() {}};"
        f"const f = function(msg) {{ {fn['func']} }};"
        "const out = [f({}), f({})];"
        "console.log(JSON.stringify(out.map(m => m.payload)));"
    )
    run = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30,
                         check=True)
    first, second = json.loads(run.stdout)
    assert sorted(first) == ["end", "kind", "pdl", "start", "step", "transaction"]
    assert (first["pdl"], first["kind"], first["step"]) == (PDL, "consumption", "hour")
    assert (first["transaction"], second["transaction"]) == ("node-red-1", "node-red-2")
    end = date.fromisoformat(first["end"])
    assert (end - date.fromisoformat(first["start"])).days == 2
    parsed = commands.parse_request(
        "read", json.dumps(first).encode(), pdls={PDL: commands.MeterView()}, today=end)
    assert isinstance(parsed, commands.ReadRequest), parsed
    assert (parsed.kind, parsed.step, parsed.transaction) == (Kind.CONSUMPTION, Step.HOUR,
                                                              "node-red-1")


def _day_text(flow: list[dict[str, Any]], payloads: list[dict[str, Any]]) -> list[Any]:
    day_in = next(n for n in by_type(flow, "mqtt in")
                  if n["topic"] == topics.meter_topic(B, PDL, Kind.CONSUMPTION, Step.DAY))
    (fn,) = [n for n in flow if n["id"] in day_in["wires"][0]]
    assert fn["type"] == "function"
    ui = [n for n in flow if any(n["id"] in w for w in fn["wires"]) and n["type"] == "ui-text"]
    # Dashboard 2.0 ignores a "value (date)" format: the flow builds the whole text
    assert ui and ui[0]["format"] == "{{msg.payload}}"
    script = (
        "const node = {warn() {}, log() {}, status() {}};"
        f"const f = function(msg) {{ {fn['func']} }};"
        f"const out = {json.dumps(payloads)}.map(p => f({{payload: p}}));"
        "console.log(JSON.stringify(out.map(m => m && m.payload)));"
    )
    run = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30,
                         check=True)
    texts: list[Any] = json.loads(run.stdout)
    return texts


@pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js) is not installed")
def test_day_text_says_which_day_and_the_split(flow: list[dict[str, Any]]) -> None:
    plain = {"pdl": PDL, "date": "2026-11-28", "value": 17.216, "unit": "kWh"}
    split = {**plain, "periods": {"hp": 11.0412, "hc": 6.1748},
             "cost": {"value": 4.47, "currency": "EUR", "periods": {"hp": 2.36, "hc": 0.98},
                      "subscription": 0.53, "complete": True}}
    tempo = {**plain, "periods": {"hc_blue": 2.0, "hp_red": 10.0, "unknown": 5.216},
             "cost": {"value": 7.9, "currency": "EUR", "periods": {}, "subscription": 0.5,
                      "complete": False}}
    assert _day_text(flow, [plain, split, tempo, {"value": "x"}]) == [
        "17.216 kWh on Sat, 28 Nov 2026",
        "HP 11.041 kWh · HC 6.175 kWh · €4.47 on Sat, 28 Nov 2026",
        "HC BLUE 2.000 kWh · HP RED 10.000 kWh · UNKNOWN 5.216 kWh · €7.90 (incomplete) "
        "on Sat, 28 Nov 2026",
        None,
    ]
