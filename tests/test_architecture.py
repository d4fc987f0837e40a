"""The shape of the package: no import cycle, a small composition root, parts that never
reach back into the bridge, and one error root.

Imports are read from the source (:mod:`ast`), TYPE_CHECKING and function-level imports
included: an import made only for a type annotation is still a part knowing another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from linky2mqtt import errors

PACKAGE = Path(__file__).resolve().parent.parent / "linky2mqtt"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules ``name`` imports (``from x import y`` counts x, and x.y when
    y is a module), itself, its own package and its own submodules left out."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        out.update(t for t in targets if t in known and t != name
                   and not name.startswith(t + ".") and not t.startswith(name + "."))
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, f, set(mods)) for m, f in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_graph_reader_sees_imports_of_every_form() -> None:
    graph = _graph()
    # a plain `from x import y`, a package import, a TYPE_CHECKING-style lazy import
    assert "linky2mqtt.accounts" in graph["linky2mqtt.bridge"]
    assert "linky2mqtt.enedis" in graph["linky2mqtt.poller"]
    assert "linky2mqtt.bridge" in graph["linky2mqtt.cli"]  # imported inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_bridge_is_a_small_composition_root() -> None:
    lines = (PACKAGE / "bridge.py").read_text(encoding="utf-8").count("\n")
    assert lines < 300, f"bridge.py has {lines} lines"


@pytest.mark.parametrize("part", ["linky2mqtt.command_worker", "linky2mqtt.accounts",
                                  "linky2mqtt.ha_statistics.worker"])
def test_parts_never_reach_back_into_the_bridge(part: str) -> None:
    assert "linky2mqtt.bridge" not in _graph()[part]


def test_the_command_worker_knows_only_its_own_protocol() -> None:
    imported = _graph()["linky2mqtt.command_worker"]
    assert not imported & {"linky2mqtt.bridge", "linky2mqtt.accounts"}, imported


def test_every_error_family_has_one_root() -> None:
    from linky2mqtt.addon import AddonOptionsError
    from linky2mqtt.config import ConfigError
    from linky2mqtt.enedis.errors import ConsentError, EnedisError
    from linky2mqtt.ha_statistics import (
        HAAuthError,
        HAError,
        HAUnavailable,
        HomeAssistantError,
    )
    from linky2mqtt.store import StoreError
    from linky2mqtt.storecheck import StoreDamaged
    from linky2mqtt.storelock import StoreInUse

    for family in (ConfigError, AddonOptionsError, StoreError, StoreDamaged, StoreInUse,
                   EnedisError, ConsentError, HomeAssistantError):
        assert issubclass(family, errors.Linky2MqttError), family
    for ha in (HAError, HAAuthError, HAUnavailable):
        assert issubclass(ha, HomeAssistantError), ha
    # the Home Assistant errors stay apart from each other: an `except HAError` (a
    # command refused) never catches a refused token
    assert not issubclass(HAAuthError, HAError) and not issubclass(HAUnavailable, HAError)
