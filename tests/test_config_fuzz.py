"""Property tests: whatever the YAML, the loader gives a Config or path-bearing problems."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linky2mqtt.config import Config, ConfigError, load_text
from linky2mqtt.secret import Secret

_SEG = r'(?:\[(?:\d+|"(?:[^"\\]|\\.)*")\])'
PROBLEM_RE = re.compile(
    rf"^(?:config|(?:[A-Za-z_][A-Za-z0-9_]*|{_SEG})(?:\.[A-Za-z_][A-Za-z0-9_]*|{_SEG})*): \S")

ENV = {"TOKEN": "env-SECRET-token", "PORT": "1884", "EMPTY": ""}
SECRET_VALUES = ("env-SECRET-token", "base-SECRET-token", "dc-SECRET")

VALID: dict[str, Any] = {
    "mqtt": {"url": "mqtt://localhost:1883", "username": "u", "password": "pw", "client_id": "c",
             "base_topic": "linky", "protocol": "3.1.1",
             "tls": {"ca_file": None, "insecure": False}},
    "homeassistant": {"discovery": True, "discovery_prefix": "homeassistant",
                      "status_topic": "homeassistant/status", "statistics": None},
    "store": {"path": "l.db"},
    "log": {"level": "info", "format": "text"},
    "commands": True,
    "poll_window": "08:00-10:00",
    "accounts": [
        {"name": "home", "provider": "conso", "token": "base-SECRET-token",
         "budget": {"per_12h": 50}, "meter_defaults": {"refresh": 7200},
         "meters": [{"pdl": "12345678901234", "name": "House", "steps": ["day", "hour"],
                     "production": False, "max_power": True, "refresh": 86400,
                     "backfill_days": {"day": 365, "hour": 30}, "enabled": True}]},
        {"name": "pro", "provider": "dataconnect", "client_id": "id",
         "client_secret": "dc-SECRET", "meters": [{"pdl": "98765432109876"}]},
        {"name": "auto", "provider": "conso", "token": "${TOKEN}", "meters": "auto"},
    ],
}

INTERESTING = st.sampled_from([
    "auto", "conso", "dataconnect", "myelectricaldata", "day", "month", "hour",
    "12345678901234", "1234", "mqtt://b", "mqtts://b:8883", "http://x", "https://", "${TOKEN}",
    "${PORT}", "${UNSET}", "${", "$${X}", "${EMPTY}", "5", "3.1.1", "08:00-10:00", "", " ",
    "a/#", "/x", "true", "/nonexistent/file", "l.db", "\x00", "\u2028", "\x85",
])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=20) | INTERESTING)
KEYS = st.text(max_size=12) | st.sampled_from(
    ["mqtt", "accounts", "meters", "pdl", "token", "token_file", "url", "steps", "name",
     "provider", "refresh", "backfill_days", "tls", "budget", "statistics"]) | st.integers()
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)


def check(text: str) -> None:
    try:
        result = load_text(text, env=ENV, base_dir=Path("/nonexistent"))
    except ConfigError as exc:
        assert exc.problems
        assert str(exc).splitlines() == exc.problems
        for line in exc.problems:
            assert PROBLEM_RE.match(line), line
            for secret in SECRET_VALUES:
                assert secret not in line
    else:
        assert isinstance(result, Config)
        # a secret's value never shows; the same text written into a field that is not a
        # secret (`store.path: ${TOKEN}`) is the user's choice and shows like any path
        secrets, plain = _leaves(result)
        for secret in SECRET_VALUES:
            if secret in secrets and not any(secret in text for text in plain):
                assert secret not in repr(result)


def _leaves(obj: Any) -> tuple[set[str], list[str]]:
    """The revealed values of every Secret in a loaded configuration, and the text of
    every other leaf."""
    secrets: set[str] = set()
    plain: list[str] = []

    def walk(o: Any) -> None:
        if isinstance(o, Secret):
            secrets.add(o.reveal())
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                walk(getattr(o, f.name))
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(k)
                walk(v)
        elif isinstance(o, list | tuple | set | frozenset):
            for v in o:
                walk(v)
        elif o is not None:
            plain.append(str(o))

    walk(obj)
    return secrets, plain


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def test_valid_base_is_valid() -> None:
    cfg = load_text(dump(VALID), env=ENV, base_dir=Path("/nonexistent"))
    assert [a.name for a in cfg.accounts] == ["home", "pro", "auto"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_arbitrary_documents(doc: Any) -> None:
    check(dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}\n #&*!|>'\"$%@`,?0123456789\t")) |
               st.characters(), max_size=80))
def test_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_of_a_valid_config(data: st.DataObject) -> None:
    doc: Any = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(doc)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            if action == "replace":
                doc = data.draw(VALUES)
            continue
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if action == "replace":
            parent[last] = data.draw(VALUES)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][data.draw(KEYS)] = data.draw(VALUES)
        elif isinstance(parent[last], list):
            parent[last].append(data.draw(VALUES))
        else:
            parent[last] = data.draw(VALUES)
    check(dump(doc))


def test_yaml_bombs_and_recursion() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
        for i in range(8))
    check(bomb)
    check("a: &a [*a]\n")
    check("[" * 1500 + "]" * 1500)
