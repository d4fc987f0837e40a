"""The add-on folder against the add-on linter's rules and the Supervisor's option rules.

CI runs the real linter (frenck/action-addon-linter, .github/workflows/publish.yml); this
test checks the same rules, plus those the linter leaves to the Supervisor (every option
is in the schema and valid for it, optional entries have no default, nesting depth), as
written in Home Assistant's developer docs (apps/configuration.md, presentation.md,
publishing.md) -- so a broken add-on folder fails here first.
"""

from __future__ import annotations

import re
import struct
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ADDON = REPO / "addon"

REQUIRED = ("name", "version", "slug", "description", "arch")
ARCHES = {"aarch64", "amd64"}  # the only ones left (Supervisor 2026.03 removed the 32-bit)
# keys given their default value: the linter asks to remove them
DEFAULTS = {"startup": "application", "boot": "auto", "init": True, "backup": "hot",
            "hassio_api": False, "homeassistant_api": False, "host_network": False,
            "ingress": False, "stage": "stable", "advanced": False}
OBSOLETE = ("watchdog", "codenotary", "auto_uart", "squash")
# one schema element, as the Supervisor's options validator accepts them
ELEMENT = re.compile(
    r"^(?:str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?|bool|email|url|password|port"
    r"|int(?:\((?P<i_min>-?\d+)?,(?P<i_max>-?\d+)?\))?"
    r"|float(?:\((?P<f_min>-?[\d.]+)?,(?P<f_max>-?[\d.]+)?\))?"
    r"|match\((?P<match>.+)\)|list\((?P<list>[^|()]+(?:\|[^|()]+)*)\)"
    r"|device(?:\((?P<filter>[^)]+)\))?)(?P<optional>\?)?$")


def _config() -> dict[str, Any]:
    doc = yaml.safe_load((ADDON / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _check_value(value: Any, element: str, where: str) -> list[str]:
    """Problems of one option value against one schema element."""
    m = ELEMENT.match(element)
    assert m is not None, f"{where}: {element!r} is not a schema element"
    kind = element.split("(", maxsplit=1)[0].rstrip("?")
    if kind in ("str", "password", "email", "url", "device"):
        ok = isinstance(value, str)
        if ok and kind == "str" and m["s_min"] and len(value) < int(m["s_min"]):
            ok = False
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind in ("int", "port"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        low = int(m["i_min"]) if m["i_min"] else (1 if kind == "port" else None)
        high = int(m["i_max"]) if m["i_max"] else (65535 if kind == "port" else None)
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "match":
        ok = isinstance(value, str) and re.fullmatch(m["match"], value) is not None
    elif kind == "list":
        ok = str(value) in m["list"].split("|")
    else:  # pragma: no cover - ELEMENT only lets the kinds above through
        ok = False
    return [] if ok else [f"{where}: {value!r} is not a valid {element}"]


def _check_options(options: Any, schema: Any, where: str, depth: int) -> list[str]:
    problems: list[str] = []
    if isinstance(schema, dict):
        if not isinstance(options, dict):
            return [f"{where}: expected a mapping"]
        for key, value in options.items():
            if key not in schema:
                problems.append(f"{where}{key}: in options but not in the schema")
                continue
            sub = schema[key]
            if isinstance(sub, str) and sub.endswith("?"):
                problems.append(f"{where}{key}: optional ({sub}) but given a default, "
                                "which makes it required")
            problems += _check_options(value, sub, f"{where}{key}", depth)
        for key, sub in schema.items():
            required = not (isinstance(sub, str) and sub.endswith("?"))
            if where == "" and required and key not in options:
                problems.append(f"{key}: required by the schema but has no default")
        return problems
    if isinstance(schema, list):
        assert len(schema) == 1, f"{where}: a schema list has one element"
        if depth >= 2 and isinstance(schema[0], dict | list):
            problems.append(f"{where}: nested deeper than the add-on UI renders (2)")
        if not isinstance(options, list):
            return [f"{where}: expected a list"]
        for i, item in enumerate(options):
            problems += _check_options(item, schema[0], f"{where}[{i}].", depth + 1)
        if isinstance(schema[0], dict):
            for key, sub in schema[0].items():
                problems += _check_schema(sub, f"{where}[].{key}", depth + 1)
        return problems
    return _check_value(options, schema, where.rstrip("."))


def _check_schema(schema: Any, where: str, depth: int) -> list[str]:
    if isinstance(schema, str):
        return [] if ELEMENT.match(schema) else [f"{where}: {schema!r} is not a schema element"]
    if isinstance(schema, list):
        if depth >= 2 and isinstance(schema[0], dict | list):
            return [f"{where}: nested deeper than the add-on UI renders (2)"]
        return _check_schema(schema[0], f"{where}[]", depth + 1)
    if isinstance(schema, dict):
        return [p for k, v in schema.items() for p in _check_schema(v, f"{where}.{k}", depth)]
    return [f"{where}: not a schema element"]


def test_config_has_the_required_keys_and_no_default_or_obsolete_key() -> None:
    cfg = _config()
    for key in REQUIRED:
        assert cfg.get(key), f"{key} is required"
    assert re.fullmatch(r"[a-z0-9_]+", cfg["slug"])
    for key, default in DEFAULTS.items():
        if key in cfg:
            assert cfg[key] != default, f"{key!r} should be removed, it uses a default value"
    for key in OBSOLETE:
        assert key not in cfg
    assert not (ADDON / "build.yaml").exists() and not (ADDON / "build.json").exists()


def test_config_declares_what_linky2mqtt_needs_from_home_assistant() -> None:
    cfg = _config()
    assert set(cfg["arch"]) == ARCHES and len(cfg["arch"]) == 2
    assert cfg["init"] is False
    assert cfg["services"] == ["mqtt:need"]
    assert cfg["homeassistant_api"] is True
    assert "hassio_api" not in cfg  # /services and /core need no Supervisor API access


def test_image_name_and_version_match_what_the_workflow_publishes() -> None:
    cfg = _config()
    image = cfg["image"]
    assert re.fullmatch(r"ghcr\.io/[a-z0-9-]+/[a-z0-9._-]+", image), image
    assert image == image.lower() and "{arch}" not in image  # one multi-arch manifest
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert cfg["version"] == project["version"]  # the image tag the workflow pushes
    workflow = (REPO / ".github" / "workflows" / "publish.yml").read_text()
    assert image.split("/", 1)[1].split("/", 1)[1] in workflow


def test_schema_elements_are_valid_and_options_match_the_schema() -> None:
    cfg = _config()
    schema, options = cfg["schema"], cfg["options"]
    assert _check_schema(schema, "schema", 0) == []
    assert _check_options(options, schema, "", 0) == []
    # the PDL, the secrets and the log level are typed as the issue asks
    assert schema["meters"][0]["pdl"] == "match(^[0-9]{14}$)"
    for key in ("token", "client_secret"):
        assert schema["accounts"][0][key] == "password?"
    assert schema["mqtt_password"] == "password?"
    assert schema["log_level"] == "list(debug|info|warning|error)"


@pytest.mark.parametrize(("options", "problem"), [
    ({"meters": [{"pdl": "1234"}]}, "meters[0].pdl: '1234' is not a valid match"),
    ({"backfill_day": 2000}, "backfill_day: 2000 is not a valid int(0,1110)"),
    ({"log_level": "verbose"}, "log_level: 'verbose' is not a valid list"),
    ({"colour": "red"}, "colour: in options but not in the schema"),
])
def test_the_checker_itself_catches_wrong_options(options: dict[str, Any],
                                                  problem: str) -> None:
    cfg = _config()
    problems = _check_options({**cfg["options"], **options}, cfg["schema"], "", 0)
    assert any(p.startswith(problem) for p in problems), problems


def test_translations_name_every_option_in_english_and_french() -> None:
    schema = _config()["schema"]
    for lang in ("en", "fr"):
        doc = yaml.safe_load((ADDON / "translations" / f"{lang}.yaml").read_text())
        entries = doc["configuration"]
        assert set(entries) == set(schema), lang
        for key, entry in entries.items():
            assert entry.get("name") and entry.get("description"), f"{lang}: {key}"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_presentation_files() -> None:
    assert _png_size(ADDON / "icon.png") == (128, 128)  # 1:1
    assert _png_size(ADDON / "logo.png") == (250, 100)
    for name in ("DOCS.md", "README.md", "CHANGELOG.md"):
        assert (ADDON / name).read_text().strip(), name
    version = _config()["version"]
    assert f"## {version}" in (ADDON / "CHANGELOG.md").read_text()
    repo = yaml.safe_load((REPO / "repository.yaml").read_text())
    assert repo["name"] and repo["url"].startswith("https://")


def test_dockerfile_uses_home_assistant_base_and_labels() -> None:
    text = (ADDON / "Dockerfile").read_text()
    assert re.search(r"^ARG BUILD_FROM=ghcr\.io/home-assistant/base-python:\S+$", text, re.M)
    assert re.search(r"^FROM \$\{BUILD_FROM\}$", text, re.M)
    assert 'io.hass.type="app"' in text and "io.hass.arch=" in text
    assert "io.hass.version=\"${BUILD_VERSION}\"" in text
    assert "# syntax=" not in text
