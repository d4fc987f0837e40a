"""Provider knowledge stays in ``linky2mqtt/enedis/``; the store does not reach upstream.

Read from the source (``ast``), not by importing: a module outside ``linky2mqtt/enedis/``
(and outside ``linky2mqtt/simulator/``, which plays the upstream) must not compare with, or
branch on, a provider's name written as a string literal (``== "conso"``, ``in ("conso",
...)``, ``match ... case "conso"``, a dict keyed by provider names); it asks the provider's
:class:`~linky2mqtt.enedis.providers.Provider` description instead. And ``store.py``, with
everything of the package it imports, imports nothing from ``linky2mqtt.enedis``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from linky2mqtt.enedis import PROVIDERS, REGISTRY

PACKAGE = Path(__file__).resolve().parent.parent / "linky2mqtt"
UPSTREAM_SIDE = ("enedis", "simulator")
NAMES = frozenset(PROVIDERS)


def _product_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if p.relative_to(PACKAGE).parts[0] not in UPSTREAM_SIDE)


def _provider_literals(node: ast.AST | None) -> list[str]:
    """Provider names written as literals in ``node`` (a constant or a literal collection)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES:
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [name for elt in node.elts for name in _provider_literals(elt)]
    return []


def _violations(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += [(node.lineno, f"compares with {n!r}")
                          for n in _provider_literals(operand)]
        elif isinstance(node, ast.MatchValue):
            found += [(node.lineno, f"matches {n!r}") for n in _provider_literals(node.value)]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, f"dict keyed by {n!r}")
                      for key in node.keys for n in _provider_literals(key)]
        elif isinstance(node, ast.For | ast.comprehension):
            found += [(getattr(node, "lineno", 0), f"loops over {n!r}")
                      for n in _provider_literals(node.iter)]
    return found


def test_the_scan_catches_what_it_forbids() -> None:
    """The checker itself: every forbidden shape is reported, a mere mention is not."""
    source = (
        'if account.provider == "conso":\n    pass\n'
        'x = p in ("dataconnect", "other")\n'
        'hint = {"myelectricaldata": "check the token"}.get(p)\n'
        'match p:\n    case "conso":\n        pass\n'
        'for name in ("conso", "dataconnect"):\n    pass\n'
        'text = "auto (conso only)"\n'
        'ok = p == PROVIDERS[0]\n'
    )
    assert sorted(_violations(ast.parse(source))) == [
        (1, "compares with 'conso'"),
        (3, "compares with 'dataconnect'"),
        (4, "dict keyed by 'myelectricaldata'"),
        (6, "matches 'conso'"),
        (8, "loops over 'conso'"),
        (8, "loops over 'dataconnect'"),
    ]


@pytest.mark.parametrize("path", _product_modules(),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_outside_enedis_branches_on_a_provider_name(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _violations(tree) == [], (
        f"{path.relative_to(PACKAGE)}: provider knowledge belongs in linky2mqtt/enedis/ "
        "(read the provider's description: linky2mqtt.enedis.provider(name))")


def test_every_provider_has_one_description() -> None:
    assert tuple(REGISTRY) == PROVIDERS == ("conso", "dataconnect", "myelectricaldata")
    assert all(REGISTRY[name].name == name for name in PROVIDERS)


def _linky2mqtt_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports (at any level, lazily or not)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("linky2mqtt")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "linky2mqtt":
                out |= {f"linky2mqtt.{a.name}" for a in node.names}
            elif node.module.startswith("linky2mqtt."):
                out.add(node.module)
    return out


def _source_of(module: str) -> Path | None:
    parts = module.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_store_imports_nothing_from_the_upstream_client() -> None:
    """store.py, and every module of the package it pulls in, stays off linky2mqtt.enedis."""
    seen: dict[str, set[str]] = {}
    todo = ["linky2mqtt.store"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = _source_of(module)
        seen[module] = _linky2mqtt_imports(path) if path is not None else set()
        todo += sorted(seen[module])
    assert "linky2mqtt.model" in seen["linky2mqtt.store"]  # the scan does read the imports
    upstream = {m: sorted(i for i in imports if i.startswith("linky2mqtt.enedis"))
                for m, imports in seen.items()}
    assert {m: i for m, i in upstream.items() if i} == {}
