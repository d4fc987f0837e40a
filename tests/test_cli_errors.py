"""The command line maps each error family once: exit code, one line, what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from linky2mqtt import cli
from linky2mqtt.addon import AddonOptionsError
from linky2mqtt.config import ConfigError
from linky2mqtt.enedis import errors
from linky2mqtt.ha_statistics import HAAuthError
from linky2mqtt.store import StoreError
from linky2mqtt.storecheck import StoreDamaged
from linky2mqtt.storelock import StoreInUse


def test_a_configuration_error_lists_every_problem_and_exits_2() -> None:
    code, text, expected = cli._failure(ConfigError(["mqtt.url: missing", "accounts: empty"]),
                                        "c.yaml")
    assert (code, expected) == (2, True)
    assert text == "linky2mqtt: invalid configuration c.yaml:\nmqtt.url: missing\naccounts: empty"


def test_addon_options_say_where_to_fix_them() -> None:
    code, text, _ = cli._failure(AddonOptionsError(["pdl: 14 digits"]), "x")
    assert (code, text) == (2, "linky2mqtt: invalid add-on options: pdl: 14 digits -- fix "
                               "them in the add-on's Configuration tab, then restart it")


def test_store_in_use_and_damaged_keep_their_codes() -> None:
    assert cli._failure(StoreInUse("/d/s.db", 42), "x")[:2] == (
        2, "linky2mqtt: store /d/s.db is in use by another linky2mqtt (PID 42); stop it "
           "first, or give this one its own store.path")
    code, text, _ = cli._failure(StoreDamaged("/d/s.db", ["row 3 missing"]), "x")
    assert code == 1 and text.startswith("linky2mqtt: store /d/s.db is damaged (")


def test_an_upstream_error_is_one_line_with_the_providers_hint() -> None:
    exc = errors.ConsentError("consent lost", provider="dataconnect", status=403,
                              code="ADAM-DC-0008")
    code, text, expected = cli._failure(exc, "x")
    assert (code, expected) == (1, False)  # its traceback at log level debug
    assert text == ("linky2mqtt: error: ConsentError: dataconnect: 403 ADAM-DC-0008: consent "
                    "lost -- check client_id/client_secret and the Data Connect consent, "
                    "then restart")


def test_store_and_home_assistant_errors() -> None:
    assert cli._failure(StoreError("/d/s.db", "cannot open: file is read-only"), "x")[:2] == (
        1, "linky2mqtt: error: StoreError: store /d/s.db: cannot open: file is read-only")
    assert cli._failure(HAAuthError("token refused"), "x")[:2] == (
        1, "linky2mqtt: error: HAAuthError: token refused -- check homeassistant.statistics "
           "(url and token) and Home Assistant's log")


def test_main_prints_the_configuration_error_once(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt: {url: 'mqtt://127.0.0.1:1'}\naccounts: []\nstore: {path: x.db}\n")
    assert cli.main(["check-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"linky2mqtt: invalid configuration {bad}:\n")
    assert err.count("invalid configuration") == 1
