"""The configuration keys are declared once (linky2mqtt.config): the reference table of
docs/configuration.md is the one the declarations give, and every field of the model is
either a declared key or derived from one."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from linky2mqtt.config import (
    AccountConfig,
    Config,
    MeterConfig,
    MqttConfig,
    declared,
    reference_table,
)

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "python -m linky2mqtt.config --reference"


def docs_table() -> str:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("\n## Reference\n", 1)[1]
    match = re.search(r"^\| key \|.*?(?=\n\n|\Z)", section, re.S | re.M)
    assert match is not None, "no table under ## Reference in docs/configuration.md"
    return match.group(0)


def test_docs_reference_table_is_the_declared_one() -> None:
    generated = reference_table()
    assert docs_table() == generated, (
        f"docs/configuration.md's Reference table differs from the declarations; paste the "
        f"output of `{REGENERATE}`:\n{generated}")


def test_reference_command_prints_the_table() -> None:
    out = subprocess.run([sys.executable, "-m", "linky2mqtt.config", "--reference"],
                         capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)
    assert out.stdout == reference_table() + "\n"
    bad = subprocess.run([sys.executable, "-m", "linky2mqtt.config"], check=False,
                         capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 1 and "usage:" in bad.stderr


def test_table_rows_name_every_key_a_user_writes() -> None:
    paths = re.findall(r"^\| `([^`]+)`", reference_table(), re.M)
    for path in ("mqtt.tls.key_file", "accounts[].request_timeout", "accounts[].budget.per_day",
                 "accounts[].meters[].backfill_days.hour", "commands.enabled",
                 "homeassistant.statistics.token"):
        assert path in paths
    assert len(paths) == len(set(paths))


def test_every_field_is_a_key_or_derived_from_one() -> None:
    """A field added to the model without a declaration would be silently absent from the
    file, the redacted copy and the docs: only these few are derived by a key's reader."""
    derived = {(c.__name__, f.name) for c in (Config, MqttConfig, AccountConfig, MeterConfig)
               for f in dataclasses.fields(c) if "key" not in f.metadata}
    assert derived == {("Config", "command_policy"), ("MqttConfig", "host"),
                       ("MqttConfig", "port"), ("MqttConfig", "use_tls"),
                       ("AccountConfig", "auto_meters")}


def test_meter_defaults_are_the_inherited_meter_settings() -> None:
    inherited = [k.name for k in declared(MeterConfig) if k.inherited]
    assert inherited == ["steps", "consumption", "production", "max_power", "refresh",
                         "backfill_days.day", "backfill_days.hour", "tariffs",
                         "offpeak_hours"]


def test_example_file_shows_every_declared_key() -> None:
    """config.yaml.example documents every key the declarations accept (set or commented)."""
    text = (ROOT / "config.yaml.example").read_text(encoding="utf-8")
    written = set(re.findall(r"^\s*#?\s*-?\s*([a-z_0-9]+):", text, re.M))
    written |= set(re.findall(r"[{,]\s*([a-z_0-9]+):", text))  # flow mappings {day: 365}

    def names(cls: type) -> set[str]:
        out: set[str] = set()
        for k in declared(cls):
            out.update(k.name.split("."))
            out.update(row[0] for row in k.rows)
            if k.section is not None:
                out |= names(k.section)
        return out

    assert names(Config) - written == set()
