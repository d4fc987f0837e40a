"""Tariffs, off-peak hours and Tempo sources in the configuration (issue 16)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from linky2mqtt import config
from linky2mqtt.config import ConfigError, load_text
from linky2mqtt.tariffs import OffpeakRange, Option

HEAD = """
accounts:
  - name: home
    provider: conso
    token: abc
"""


def _load(text: str, **kw: object) -> config.Config:
    return load_text(HEAD + text, **kw)  # type: ignore[arg-type]


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _load(text)
    return err.value.problems


def test_tariff_and_offpeak_per_meter_inherited_from_meter_defaults() -> None:
    cfg = _load("""
    meter_defaults:
      offpeak_hours: ["22:30-06:30", "12:30-14:30"]
      tariffs:
        - {from: 2026-08-01, option: hphc, prices: {hp: 0.2142, hc: 0.1589}, subscription: 15.86}
    meters:
      - pdl: "12345678901234"
      - pdl: "12345678901235"
        offpeak_hours: {summer: ["11:00-17:00", "21:00-07:00"], winter: ["21:00-07:00"]}
        tariffs:
          - {from: 2026-02-01, to: 2026-08-01, option: base, prices: {base: "0,1940"}}
          - {from: 2026-08-01, option: base, prices: {base: 0.2001}}
""")
    first, second = cfg.accounts[0].meters
    assert first.tariff is not None and first.offpeak is not None
    period = first.tariff.at(date(2026, 11, 3))
    assert period is not None and period.option is Option.HPHC
    assert period.prices == {"hp": Decimal("0.2142"), "hc": Decimal("0.1589")}
    assert period.subscription == Decimal("15.86")
    assert first.offpeak.all_year == (OffpeakRange(22 * 60 + 30, 6 * 60 + 30),
                                      OffpeakRange(12 * 60 + 30, 14 * 60 + 30))
    assert second.offpeak is not None and second.offpeak.seasonal
    assert second.tariff is not None
    assert second.tariff.at(date(2026, 7, 31)).prices["base"] == Decimal("0.1940")  # type: ignore[union-attr]
    assert second.tariff.at(date(2026, 8, 1)).prices["base"] == Decimal("0.2001")  # type: ignore[union-attr]
    shown = config.redacted(cfg)["accounts"][0]["meters"][0]
    assert shown["tariffs"] == [{"from": "2026-08-01", "to": None, "option": "hphc",
                                 "prices": {"hp": 0.2142, "hc": 0.1589},
                                 "subscription": 15.86}]
    assert shown["offpeak_hours"] == ["22:30-06:30", "12:30-14:30"]
    assert "tariff hphc from 2026-08-01 (1 period), off-peak 22:30-06:30, 12:30-14:30 " \
           "(configuration)" in config.summary(cfg)


def test_no_tariff_by_default() -> None:
    cfg = _load('    meters:\n      - pdl: "12345678901234"\n')
    meter = cfg.accounts[0].meters[0]
    assert meter.tariff is None and meter.offpeak is None
    assert cfg.tempo == config.TempoConfig()
    assert cfg.tempo.community is True


def test_every_tariff_problem_at_once_with_its_path() -> None:
    problems = _problems("""
    meters:
      - pdl: "12345678901234"
        offpeak_hours: ["tonight", "0H00-0H00"]
        tariffs:
          - {from: 2026-08-01, option: hphc, prices: {hp: 21.42}}
          - {from: "2026-13-01", option: tempo2, prices: {}}
""")
    assert problems == [
        "accounts[0].meters[0].tariffs[0].prices.hp: 21.42 EUR/kWh is implausible (more than "
        "10); prices are in EUR, not cents or EUR/MWh",
        "accounts[0].meters[0].tariffs[0].prices.hc: missing (EUR/kWh)",
        "accounts[0].meters[0].tariffs[1].from: expected a date (YYYY-MM-DD), got '2026-13-01'",
        "accounts[0].meters[0].tariffs[1].option: expected one of base, hphc, tempo, got "
        "'tempo2'",
        "accounts[0].meters[0].offpeak_hours[0]: expected a range like \"22:30-06:30\", "
        "got 'tonight'",
        "accounts[0].meters[0].offpeak_hours[1]: '0H00-0H00' starts where it ends",
    ]


def test_overlapping_periods_are_refused() -> None:
    problems = _problems("""
    meters:
      - pdl: "12345678901234"
        tariffs:
          - {from: 2026-02-01, to: 2026-09-01, option: base, prices: {base: 0.194}}
          - {from: 2026-08-01, option: base, prices: {base: 0.2001}}
""")
    assert problems == [
        "accounts[0].meters[0].tariffs[0]: overlaps accounts[0].meters[0].tariffs[1] (from "
        "2026-08-01); a price change is a new period that starts where the previous one ends"]


def test_tempo_sources_rte_secret_from_a_file_never_shown(tmp_path: Path) -> None:
    (tmp_path / "rte").write_text("s3cr3t-rte\n", encoding="utf-8")
    cfg = _load("""
    meters:
      - pdl: "12345678901234"
tempo:
  rte: {client_id: my-app, client_secret_file: rte}
  community: false
""", base_dir=tmp_path)
    assert cfg.tempo.rte_client_id == "my-app"
    assert cfg.tempo.rte_client_secret is not None
    assert cfg.tempo.rte_client_secret.reveal() == "s3cr3t-rte"
    assert "s3cr3t-rte" in config.secret_values(cfg)
    shown = json.dumps(config.redacted(cfg))
    assert "s3cr3t-rte" not in shown and "s3cr3t-rte" not in config.summary(cfg)
    assert config.redacted(cfg)["tempo"]["rte"] == {"client_id": "my-app",
                                                    "client_secret": "***"}
    assert "Tempo colours: RTE (client id my-app, secret ***) (used by tempo tariffs only)" \
        in config.summary(cfg)


def test_tempo_tariff_without_a_colour_source_and_half_rte_credentials() -> None:
    problems = _problems("""
    meters:
      - pdl: "12345678901234"
        tariffs:
          - from: 2026-08-01
            option: tempo
            prices: {hc_blue: 0.1356, hp_blue: 0.1654, hc_white: 0.1536, hp_white: 0.1921,
                     hc_red: 0.1615, hp_red: 0.7295}
tempo:
  community: false
""")
    assert problems == ["accounts[0].meters[0].tariffs: a tempo tariff needs the colours: set "
                        "tempo.community: true or tempo.rte credentials"]
    problems = _problems("""
    meters:
      - pdl: "12345678901234"
tempo:
  rte: {client_id: x}
""")
    assert problems == ["tempo.rte.client_secret: required with the other RTE credential "
                        "(or client_secret_file)"]
