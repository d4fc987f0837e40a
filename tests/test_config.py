"""Configuration loading: defaults, every validation rule, ${ENV}, *_file secrets, redaction."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from linky2mqtt import config as config_module
from linky2mqtt.budgets import describe
from linky2mqtt.config import (
    AccountConfig,
    BudgetOverride,
    Config,
    ConfigError,
    MeterConfig,
    StatisticsConfig,
    load,
    load_text,
    redacted,
    secret_values,
)
from linky2mqtt.config import summary as config_summary
from linky2mqtt.model import Step
from linky2mqtt.secret import Secret

ROOT = Path(__file__).resolve().parent.parent
PDL1 = "12345678901234"
PDL2 = "98765432109876"
TOKEN = "conso-token-SECRET-aaaa"


def base() -> dict[str, Any]:
    return {"accounts": [{"name": "home", "provider": "conso", "token": TOKEN,
                          "meters": [{"pdl": PDL1}]}]}


def as_text(doc: dict[str, Any] | str) -> str:
    return doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)


def ok(doc: dict[str, Any] | str, *, env: dict[str, str] | None = None,
       base_dir: Path | None = None) -> Config:
    return load_text(as_text(doc), env=env or {}, base_dir=base_dir or Path("/nonexistent"))


def problems(doc: dict[str, Any] | str, *, env: dict[str, str] | None = None,
             base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        ok(doc, env=env, base_dir=base_dir)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def with_account(**changes: Any) -> dict[str, Any]:
    doc = base()
    doc["accounts"][0].update(changes)
    return {k: v for k, v in doc.items()}


def with_meter(**changes: Any) -> dict[str, Any]:
    doc = base()
    doc["accounts"][0]["meters"][0].update(changes)
    return doc


# --------------------------------------------------------------------------- defaults


def test_every_default() -> None:
    cfg = ok(base(), base_dir=Path("/etc/linky"))
    m = cfg.mqtt
    assert (m.url, m.host, m.port, m.use_tls) == ("mqtt://localhost:1883", "localhost", 1883,
                                                  False)
    # the default client id is one per store: 8 hex digits of its absolute path's SHA-256
    store_id = hashlib.sha256(b"/etc/linky/linky2mqtt.db").hexdigest()[:8]
    assert (m.username, m.password, m.client_id, m.base_topic, m.protocol) == (
        None, None, f"linky2mqtt-{store_id}", "linky2mqtt", "5")
    assert (m.tls.ca_file, m.tls.cert_file, m.tls.key_file, m.tls.insecure) == (
        None, None, None, False)
    ha = cfg.homeassistant
    assert (ha.discovery, ha.discovery_prefix, ha.status_topic, ha.statistics) == (
        True, "homeassistant", "homeassistant/status", None)
    assert cfg.store.path == Path("/etc/linky/linky2mqtt.db")
    assert (cfg.log.level, cfg.log.format) == ("info", "text")
    assert cfg.commands is True
    assert cfg.poll_window == (time(8, 0), time(10, 0))
    (account,) = cfg.accounts
    assert account == AccountConfig(
        name="home", provider="conso", token=Secret(TOKEN), client_id=None,
        client_secret=None, base_url=None, enabled=True,
        meters=(MeterConfig(pdl=PDL1, name=PDL1, steps=frozenset(Step), production=False,
                            max_power=False, refresh=86400, backfill_day=365,
                            backfill_hour=30, enabled=True),),
        auto_meters=False, budget=None, meter_defaults=MeterConfig())
    assert account.meters[0].steps == frozenset({Step.DAY, Step.MONTH, Step.HOUR})


def test_spec_example_block_loads_and_matches_defaults() -> None:
    spec = (ROOT.parent / "shared" / "SPEC.md")
    if not spec.exists():
        pytest.skip("shared/SPEC.md is not beside the repository")
    block = re.search(r"## 3\. Configuration.*?```yaml\n(.*?)```", spec.read_text(), re.S)
    assert block is not None
    cfg = ok(block.group(1), env={"CONSO_TOKEN": TOKEN})
    # The one deliberate difference: the spec's example names the client id `linky2mqtt`,
    # our default is unique per store (two installations must not kick each other off).
    spec_cfg, ours = redacted(cfg), redacted(ok(with_meter(name="House")))
    assert spec_cfg["mqtt"].pop("client_id") == "linky2mqtt"
    assert ours["mqtt"].pop("client_id").startswith("linky2mqtt-")
    assert spec_cfg == ours


def test_empty_sections_mean_defaults() -> None:
    text = as_text(base()) + "mqtt:\nhomeassistant:\nstore:\nlog:\n"
    assert ok(text) == ok(base())


def test_full_settings_are_read() -> None:
    doc = base()
    doc["mqtt"] = {"url": "mqtts://broker.example", "username": "bob", "password": "pw-SECRET",
                   "client_id": "l2m-1", "base_topic": "home/linky", "protocol": "3.1.1",
                   "tls": {"insecure": True}}
    doc["homeassistant"] = {"discovery": False, "discovery_prefix": "ha",
                            "status_topic": "ha/status",
                            "statistics": {"url": "http://ha.local:8123/", "token": "ha-SECRET"}}
    doc["store"] = {"path": "/data/l.db"}
    doc["log"] = {"level": "DEBUG", "format": "json"}
    doc["commands"] = False
    doc["poll_window"] = "07:30-11:45"
    doc["accounts"][0]["meters"][0].update(
        name="House", steps=["hour", "day"], production=True, max_power=True, refresh=3600,
        backfill_days={"day": 1110, "hour": 745}, enabled=False)
    doc["accounts"][0].update(base_url="https://gw.example/api/", enabled=False,
                              budget={"per_12h": 50, "per_second": 2,
                                      "allow_above_default": True})
    cfg = ok(doc)
    m = cfg.mqtt
    assert (m.url, m.host, m.port, m.use_tls, m.username, m.client_id, m.base_topic,
            m.protocol, m.tls.insecure) == ("mqtts://broker.example:8883", "broker.example",
                                            8883, True, "bob", "l2m-1", "home/linky", "3.1.1",
                                            True)
    assert m.password is not None and m.password.reveal() == "pw-SECRET"
    ha = cfg.homeassistant
    assert (ha.discovery, ha.discovery_prefix, ha.status_topic) == (False, "ha", "ha/status")
    assert ha.statistics == StatisticsConfig(url="http://ha.local:8123", token=Secret("ha-SECRET"))
    assert cfg.store.path == Path("/data/l.db")
    assert (cfg.log.level, cfg.log.format, cfg.commands) == ("debug", "json", False)
    assert cfg.poll_window == (time(7, 30), time(11, 45))
    a = cfg.accounts[0]
    assert (a.base_url, a.enabled) == ("https://gw.example/api", False)
    assert a.budget == BudgetOverride(per_second=2, per_hour=None, per_12h=50, per_day=None,
                                      allow_above_default=True)
    assert a.meters[0] == MeterConfig(pdl=PDL1, name="House",
                                      steps=frozenset({Step.HOUR, Step.DAY}), production=True,
                                      max_power=True, refresh=3600, backfill_day=1110,
                                      backfill_hour=745, enabled=False)
    assert cfg.enabled_meters() == ()


@pytest.mark.parametrize(("url", "host", "port", "tls"), [
    ("mqtt://broker", "broker", 1883, False),
    ("mqtts://broker", "broker", 8883, True),
    ("mqtt://10.0.0.2:11883", "10.0.0.2", 11883, False),
    ("MQTTS://Broker.example:443/", "broker.example", 443, True),
    ("mqtt://[::1]:1884", "::1", 1884, False),
])
def test_mqtt_urls(url: str, host: str, port: int, tls: bool) -> None:
    doc = base()
    doc["mqtt"] = {"url": url}
    m = ok(doc).mqtt
    assert (m.host, m.port, m.use_tls) == (host, port, tls)


def test_mqtt_url_is_normalised() -> None:
    doc = base()
    doc["mqtt"] = {"url": "mqtt://[::1]"}
    assert ok(doc).mqtt.url == "mqtt://[::1]:1883"


@pytest.mark.parametrize("text", ["5", '"5"', "3.1.1", '"3.1.1"'])
def test_protocol_spellings(text: str) -> None:
    cfg = ok(as_text(base()) + f"mqtt:\n  protocol: {text}\n")
    assert cfg.mqtt.protocol == text.strip('"')


# --------------------------------------------------------------------------- meters: auto, defaults


def test_meters_auto_with_meter_defaults() -> None:
    cfg = ok(with_account(meters="auto", meter_defaults={
        "steps": ["day"], "max_power": True, "refresh": 7200, "backfill_days": {"day": 30}}))
    a = cfg.accounts[0]
    assert (a.auto_meters, a.meters) == (True, ())
    assert a.meter_defaults == MeterConfig(steps=frozenset({Step.DAY}), production=False,
                                             max_power=True, refresh=7200, backfill_day=30,
                                             backfill_hour=30)
    assert a.meter_for("11111111111111") == MeterConfig(
        pdl="11111111111111", name="11111111111111", steps=frozenset({Step.DAY}),
        production=False, max_power=True, refresh=7200, backfill_day=30, backfill_hour=30)


def test_meter_defaults_apply_to_listed_meters_and_can_be_overridden() -> None:
    doc = with_account(meter_defaults={"production": True, "refresh": 43200},
                       meters=[{"pdl": PDL1}, {"pdl": PDL2, "refresh": 86400,
                                               "production": False}])
    account = ok(doc).accounts[0]
    m1, m2 = account.meters
    assert (m1.production, m1.refresh) == (True, 43200)
    assert (m2.production, m2.refresh) == (False, 86400)
    assert account.meter_for(PDL2) is m2


@pytest.mark.parametrize("provider,creds", [("dataconnect", {"client_id": "a",
                                                             "client_secret": "b"}),
                                            ("myelectricaldata", {"token": "t"})])
def test_meters_auto_refused_on_other_providers(provider: str, creds: dict[str, str]) -> None:
    doc = {"accounts": [{"name": "x", "provider": provider, **creds, "meters": "auto"}]}
    assert problems(doc) == [
        f"accounts[0].meters: auto is only possible with provider conso (its token lists the "
        f"PDLs it covers); list the meters of this {provider} account"]


def test_consumption_defaults_to_true() -> None:
    cfg = ok(base())
    assert cfg.accounts[0].meters[0].consumption is True
    assert cfg.accounts[0].meter_defaults.consumption is True
    assert MeterConfig(pdl=PDL1, name=PDL1).consumption is True
    assert redacted(cfg)["accounts"][0]["meters"][0]["consumption"] is True
    assert "no consumption" not in summary(cfg)


def test_consumption_false_for_a_production_only_meter() -> None:
    cfg = ok(with_meter(pdl="24880057139941", consumption=False, production=True))
    m = cfg.accounts[0].meters[0]
    assert (m.consumption, m.production, m.max_power) == (False, True, False)
    r = redacted(cfg)["accounts"][0]["meters"][0]
    assert (r["consumption"], r["production"], r["max_power"]) == (False, True, False)
    assert summary(cfg).splitlines()[-1] == (
        "    24880057139941 '24880057139941': day, month, hour + production (no consumption); "
        "refresh 86400 s; backfill 365 days daily, 30 days hourly")
    # max power alone is something to fetch
    only_peak = ok(with_meter(consumption=False, max_power=True)).accounts[0].meters[0]
    assert (only_peak.consumption, only_peak.production, only_peak.max_power) == (
        False, False, True)


def test_consumption_through_meter_defaults_and_auto() -> None:
    doc = with_account(meters="auto", meter_defaults={"consumption": False,
                                                      "production": True})
    a = ok(doc).accounts[0]
    assert a.meter_defaults.consumption is False
    auto = a.meter_for("24880057139941")
    assert (auto.consumption, auto.production) == (False, True)
    assert redacted(ok(doc))["accounts"][0]["meter_defaults"]["consumption"] is False
    listed = ok(with_account(meter_defaults={"consumption": False, "production": True},
                             meters=[{"pdl": PDL1}, {"pdl": PDL2, "consumption": True}]))
    assert [m.consumption for m in listed.accounts[0].meters] == [False, True]


def test_nothing_to_fetch_is_an_error() -> None:
    doc = base()
    doc["accounts"][0]["meters"] = [
        {"pdl": PDL1},
        {"pdl": PDL2, "consumption": False, "production": False, "max_power": False}]
    assert problems(doc) == [
        "accounts[0].meters[1]: nothing to fetch: consumption, production and max_power are "
        "all false; set at least one of them to true"]
    # inherited from meter_defaults counts too
    assert problems(with_account(meter_defaults={"consumption": False})) == [
        "accounts[0].meters[0]: nothing to fetch: consumption, production and max_power are "
        "all false; set at least one of them to true"]
    assert problems(with_account(meters="auto", meter_defaults={"consumption": False})) == [
        "accounts[0].meter_defaults: nothing to fetch: consumption, production and max_power "
        "are all false for the meters: auto meters; set at least one of them to true"]
    assert problems(with_meter(consumption="no")) == [
        'accounts[0].meters[0].consumption: expected true or false, got "no"']


def test_pdl_written_as_a_number_is_accepted() -> None:
    assert ok(as_text(base()).replace(f"'{PDL1}'", PDL1)).accounts[0].meters[0].pdl == PDL1


# --------------------------------------------------------------------------- validation rules


def test_spec_example_message() -> None:
    doc = base()
    doc["accounts"].append({"name": "b", "provider": "conso", "token": "x",
                            "meters": [{"pdl": "1234"}]})
    assert problems(doc) == ['accounts[1].meters[0].pdl: expected 14 digits, got "1234"']


@pytest.mark.parametrize(("doc", "expected"), [
    # unknown keys, with suggestions
    ({**base(), "mqtt": {"usrname": "x"}}, 'mqtt.usrname: unknown key (did you mean "username"?)'),
    ({**base(), "mqt": {}}, 'mqt: unknown key (did you mean "mqtt"?)'),
    ({**base(), "zzz": 1}, "zzz: unknown key"),
    ({**base(), "my key": 1}, '["my key"]: unknown key'),
    (with_meter(stpes=["day"]), 'accounts[0].meters[0].stpes: unknown key (did you mean "steps"?)'),
    (with_account(pdl=PDL2),
     "accounts[0].pdl: unknown key here (meter settings go under meters[] or meter_defaults)"),
    ({**base(), "mqtt": {"tls": {"ca": "x"}}},
     'mqtt.tls.ca: unknown key (did you mean "ca_file"?)'),
    # types
    ({**base(), "mqtt": []}, "mqtt: expected a mapping, got a list"),
    ({**base(), "commands": "yes please"}, "commands: expected true, false or a mapping "
     '(enabled, max_payload, response_topics), got "yes please"'),
    ({**base(), "mqtt": {"client_id": 42}},
     "mqtt.client_id: expected a string, got an integer (write it in quotes)"),
    ({**base(), "mqtt": {"client_id": ""}}, "mqtt.client_id: must not be empty"),
    ({**base(), "mqtt": {"client_id": None}}, "mqtt.client_id: expected a string, got null"),
    (with_meter(production="no way"), 'accounts[0].meters[0].production: expected true or false, '
                                      'got "no way"'),
    (with_meter(max_power=1), "accounts[0].meters[0].max_power: expected true or false, got 1"),
    (with_meter(enabled=None), "accounts[0].meters[0].enabled: expected true or false, got null"),
    (with_account(enabled="on"), 'accounts[0].enabled: expected true or false, got "on"'),
    ({**base(), "homeassistant": {"discovery": "true"}},
     'homeassistant.discovery: expected true or false, got "true"'),
    # PDLs
    (with_meter(pdl="1234567890123a"), 'accounts[0].meters[0].pdl: expected 14 digits, '
                                       'got "1234567890123a"'),
    (with_meter(pdl=1234567890123), "accounts[0].meters[0].pdl: expected 14 digits, got "
     "1234567890123 (write the PDL in quotes: an unquoted number loses its leading zeros)"),
    (with_meter(pdl=None), "accounts[0].meters[0].pdl: required: the 14-digit delivery point "
                           "number (PDL/PRM)"),
    (with_meter(pdl=["1"]), "accounts[0].meters[0].pdl: expected 14 digits, got a list"),
    (with_meter(pdl="١٢٣٤٥٦٧٨٩٠١٢٣٤"), 'accounts[0].meters[0].pdl: expected 14 digits, got '
     '"\\u0661\\u0662\\u0663\\u0664\\u0665\\u0666\\u0667\\u0668\\u0669\\u0660\\u0661\\u0662'
     '\\u0663\\u0664"'),
    # providers and credentials
    (with_account(provider="cosno"), 'accounts[0].provider: expected one of conso, dataconnect, '
                                     'myelectricaldata, got "cosno" (did you mean "conso"?)'),
    (with_account(provider=None), "accounts[0].provider: expected one of conso, dataconnect, "
                                  "myelectricaldata, got null"),
    (with_account(token=None), "accounts[0].token: required for provider conso (or token_file)"),
    (with_account(token=""), "accounts[0].token: must not be empty"),
    (with_account(token=123456), "accounts[0].token: expected a string, got an integer "
                                 "(write it in quotes)"),
    (with_account(provider="myelectricaldata", token=None),
     "accounts[0].token: required for provider myelectricaldata (or token_file)"),
    (with_account(client_secret="s"),
     "accounts[0].client_secret: not used by provider conso (it takes a token)"),
    (with_account(provider="dataconnect", token=None, client_id="id"),
     "accounts[0].client_secret: required for provider dataconnect (or client_secret_file)"),
    (with_account(provider="dataconnect", token=None, client_secret="s"),
     "accounts[0].client_id: required for provider dataconnect (or client_id_file)"),
    (with_account(provider="dataconnect", client_id="id", client_secret="s"),
     "accounts[0].token: not used by provider dataconnect (it takes client_id and client_secret)"),
    (with_account(name=None), "accounts[0].name: required"),
    (with_account(name=""), "accounts[0].name: must not be empty"),
    (with_account(meters=None), "accounts[0].meters: required: a list of meters (each with its "
                                "pdl), or auto (conso only)"),
    (with_account(meters=[]), "accounts[0].meters: must not be empty (list the meters, or use "
                              "enabled: false to turn the account off)"),
    (with_account(meters="all"), 'accounts[0].meters: expected a list of meters or auto, '
                                 'got "all"'),
    (with_account(meters=[None]), "accounts[0].meters[0]: expected a mapping with at least a "
                                  "pdl, got null"),
    (with_account(meters=[PDL1]), "accounts[0].meters[0]: expected a mapping, got a string"),
    # URLs and ports
    ({**base(), "mqtt": {"url": "http://broker"}},
     'mqtt.url: expected a URL starting with mqtt:// or mqtts://, got "http://"'),
    ({**base(), "mqtt": {"url": "broker:1883"}},
     "mqtt.url: expected a URL starting with mqtt:// or mqtts://, got no scheme"),
    ({**base(), "mqtt": {"url": "mqtt://"}}, "mqtt.url: no host in the URL"),
    ({**base(), "mqtt": {"url": "mqtt://broker:70000"}},
     "mqtt.url: not a valid URL (expected mqtt:// or mqtts://host[:port], port 1-65535)"),
    ({**base(), "mqtt": {"url": "mqtt://broker:0"}}, "mqtt.url: port must be between 1 and 65535"),
    ({**base(), "mqtt": {"url": "mqtt://broker:port"}},
     "mqtt.url: not a valid URL (expected mqtt:// or mqtts://host[:port], port 1-65535)"),
    ({**base(), "mqtt": {"url": "mqtt://u:SECRETPW@broker"}},
     "mqtt.url: credentials in the URL are not allowed; use the username/password/token keys"),
    ({**base(), "mqtt": {"url": "mqtt://broker/x"}},
     'mqtt.url: the URL must not have a path, got "/x"'),
    (with_account(base_url="ftp://gw"),
     'accounts[0].base_url: expected a URL starting with http:// or https://, got "ftp://"'),
    (with_account(base_url="https://"), "accounts[0].base_url: no host in the URL"),
    (with_account(base_url="https://gw?x=1"),
     "accounts[0].base_url: the URL must not have a query (?...) or fragment (#...)"),
    ({**base(), "homeassistant": {"statistics": {"url": "mqtt://ha", "token": "t"}}},
     'homeassistant.statistics.url: expected a URL starting with http:// or https:// or ws:// '
     'or wss://, got "mqtt://"'),
    ({**base(), "homeassistant": {"statistics": {"url": "http://ha"}}},
     "homeassistant.statistics.token: required: a Home Assistant long-lived access token "
     "(or token_file)"),
    ({**base(), "homeassistant": {"statistics": {"token": "t"}}},
     "homeassistant.statistics.url: required: the address of Home Assistant, e.g. "
     "http://homeassistant.local:8123"),
    ({**base(), "homeassistant": {"statistics": "yes"}},
     "homeassistant.statistics: expected a mapping, got a string"),
    # protocol
    ({**base(), "mqtt": {"protocol": 3}}, "mqtt.protocol: expected 5 or 3.1.1, got 3"),
    ({**base(), "mqtt": {"protocol": 3.1}}, "mqtt.protocol: expected 5 or 3.1.1, got 3.1"),
    ({**base(), "mqtt": {"protocol": "311"}}, 'mqtt.protocol: expected 5 or 3.1.1, got "311"'),
    ({**base(), "mqtt": {"protocol": True}}, "mqtt.protocol: expected 5 or 3.1.1, got true"),
    # refresh, steps, backfill
    (with_meter(refresh=3599), "accounts[0].meters[0].refresh: must be at least 3600 seconds "
     "(one poll an hour at most: Enedis data comes once a day and quotas are small), got 3599"),
    (with_meter(refresh="daily"), 'accounts[0].meters[0].refresh: expected an integer, '
                                  'got "daily"'),
    (with_meter(refresh=86400.0), "accounts[0].meters[0].refresh: expected an integer, "
                                  "got 86400.0"),
    (with_meter(steps=[]), "accounts[0].meters[0].steps: must not be empty: list some of day, "
                           "month, hour"),
    (with_meter(steps="day"), 'accounts[0].meters[0].steps: expected a list such as '
                              '[day, month, hour], got "day"'),
    (with_meter(steps=["day", "week"]), 'accounts[0].meters[0].steps[1]: expected day, month '
                                        'or hour, got "week"'),
    (with_meter(steps=["Heure"]), 'accounts[0].meters[0].steps[0]: expected day, month or hour, '
                                  'got "Heure" (HoMIDoM\'s "Heure" is hour)'),
    (with_meter(backfill_days={"day": 1111}), "accounts[0].meters[0].backfill_days.day: must be "
                                              "between 0 and 1110, got 1111"),
    (with_meter(backfill_days={"hour": -1}), "accounts[0].meters[0].backfill_days.hour: must be "
                                             "between 0 and 745, got -1"),
    (with_meter(backfill_days={"hour": 746}), "accounts[0].meters[0].backfill_days.hour: must be "
                                              "between 0 and 745, got 746"),
    (with_meter(backfill_days={"days": 3}), 'accounts[0].meters[0].backfill_days.days: unknown '
                                            'key (did you mean "day"?)'),
    (with_meter(backfill_days=30), "accounts[0].meters[0].backfill_days: expected a mapping, "
                                   "got an integer"),
    (with_account(meter_defaults={"refresh": 60}), "accounts[0].meter_defaults.refresh: must be "
     "at least 3600 seconds (one poll an hour at most: Enedis data comes once a day and quotas "
     "are small), got 60"),
    (with_account(meter_defaults={"pdl": PDL1}), "accounts[0].meter_defaults.pdl: unknown key"),
    # budget
    (with_account(budget={"per_hour": 0}), "accounts[0].budget.per_hour: must be at least 1, "
                                           "got 0"),
    (with_account(budget={"per_minute": 5}), "accounts[0].budget.per_minute: unknown key"),
    (with_account(budget={"per_day": "50"}), 'accounts[0].budget.per_day: expected an integer, '
                                             'got "50"'),
    # poll window
    ({**base(), "poll_window": "8-10"}, 'poll_window: expected "HH:MM-HH:MM" (Europe/Paris), '
                                        'got "8-10"'),
    ({**base(), "poll_window": "10:00-08:00"}, 'poll_window: the start (10:00) must be before '
                                               'the end (08:00), got "10:00-08:00"'),
    ({**base(), "poll_window": "08:00-08:00"}, 'poll_window: the start (08:00) must be before '
                                               'the end (08:00), got "08:00-08:00"'),
    ({**base(), "poll_window": "08:00-24:00"}, 'poll_window: not a valid time of day in '
                                               '"08:00-24:00" (hours 00-23, minutes 00-59)'),
    ({**base(), "poll_window": 480}, "poll_window: expected a string, got an integer "
                                     "(write it in quotes)"),
    # log
    ({**base(), "log": {"level": "verbose"}},
     'log.level: expected one of debug, info, warning, error, got "verbose"'),
    ({**base(), "log": {"level": "warn"}},
     'log.level: expected one of debug, info, warning, error, got "warn" '
     '(did you mean "warning"?)'),
    ({**base(), "log": {"format": "yaml"}}, 'log.format: expected one of text, json, got "yaml"'),
    # topics
    ({**base(), "mqtt": {"base_topic": "linky/#"}},
     'mqtt.base_topic: must not contain the MQTT wildcards + or #, got "linky/#"'),
    ({**base(), "mqtt": {"base_topic": "a/+/b"}},
     'mqtt.base_topic: must not contain the MQTT wildcards + or #, got "a/+/b"'),
    ({**base(), "mqtt": {"base_topic": "/linky"}},
     'mqtt.base_topic: must not start or end with "/", got "/linky"'),
    ({**base(), "mqtt": {"base_topic": "linky/"}},
     'mqtt.base_topic: must not start or end with "/", got "linky/"'),
    ({**base(), "mqtt": {"base_topic": "a//b"}},
     'mqtt.base_topic: must not contain an empty level ("//"), got "a//b"'),
    ({**base(), "mqtt": {"base_topic": "$SYS/x"}},
     'mqtt.base_topic: must not start with "$" (reserved for the broker), got "$SYS/x"'),
    ({**base(), "homeassistant": {"discovery_prefix": "ha/#"}},
     'homeassistant.discovery_prefix: must not contain the MQTT wildcards + or #, got "ha/#"'),
    ({**base(), "mqtt": {"password": "p"}}, "mqtt.password: set without mqtt.username"),
    # TLS
    ({**base(), "mqtt": {"tls": {"insecure": True}}},
     "mqtt.tls.insecure: set, but mqtt.url is mqtt:// (plain TCP); use mqtts:// for TLS"),
    ({**base(), "mqtt": {"url": "mqtts://b", "tls": {"insecure": "yes"}}},
     'mqtt.tls.insecure: expected true or false, got "yes"'),
    # accounts as a whole
    ({"accounts": []}, "accounts: must not be empty: configure at least one account"),
    ({"accounts": {"home": {}}}, "accounts: expected a list of accounts, got a mapping"),
    ({"mqtt": {}}, "accounts: required: a list of accounts, each with a provider, its "
                   "credentials and its meters"),
    ({"accounts": [None]}, "accounts[0]: expected a mapping (name, provider, credentials, "
                           "meters), got null"),
    ({"accounts": ["home"]}, "accounts[0]: expected a mapping, got a string"),
    # the document
    ("- a\n- b\n", "config: expected a mapping at the top level (mqtt:, accounts: ...), "
                   "got a list"),
    ("just text", "config: expected a mapping at the top level (mqtt:, accounts: ...), "
                  "got a string"),
    ("", "accounts: required: a list of accounts, each with a provider, its credentials and "
         "its meters"),
    ("mqtt:\n  url: [\naccounts: []\n", "config: invalid YAML at line 4, column 1: while "
     "parsing a flow sequence expected ',' or ']', but got '<stream end>'"),
    ("a: 1\n b: 2\n", "config: invalid YAML at line 2, column 3: mapping values are not "
                      "allowed here"),
    ("a: !!python/object:os.system x\n", "config: invalid YAML at line 1, column 4: could not "
     "determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"),
    ("a: 2026-02-30\n", "config: invalid YAML value: day is out of range for month"),
])
def test_each_rule(doc: dict[str, Any] | str, expected: str) -> None:
    assert problems(doc) == [expected]


def test_missing_provider_and_unknown_provider_credentials() -> None:
    doc = {"accounts": [{"name": "x", "meters": [{"pdl": PDL1}]}]}
    assert problems(doc) == [
        "accounts[0].provider: required: one of conso, dataconnect, myelectricaldata"]


def test_duplicate_pdls_across_accounts_and_duplicate_names() -> None:
    doc = base()
    doc["accounts"][0]["meters"].append({"pdl": PDL2})
    doc["accounts"].append({"name": "home", "provider": "dataconnect", "client_id": "i",
                            "client_secret": "s", "meters": [{"pdl": PDL2}, {"pdl": PDL1}]})
    assert problems(doc) == [
        f'accounts[1].meters[0].pdl: duplicate PDL "{PDL2}", already at accounts[0].meters[1].pdl',
        f'accounts[1].meters[1].pdl: duplicate PDL "{PDL1}", already at accounts[0].meters[0].pdl',
        'accounts[1].name: duplicate account name "home", already used by accounts[0]',
    ]


def test_duplicate_yaml_keys() -> None:
    text = as_text(base()) + "commands: true\ncommands: false\n"
    assert problems(text) == ['config: line 8: key "commands" appears twice in the same mapping']


def test_tls_files_must_exist_and_need_mqtts(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    doc = base()
    doc["mqtt"] = {"url": "mqtts://b", "tls": {"ca_file": "ca.pem", "cert_file": "nope.pem",
                                               "key_file": "/nonexistent/k.pem"}}
    assert problems(doc, base_dir=tmp_path) == [
        f'mqtt.tls.cert_file: file not found: "{tmp_path / "nope.pem"}"',
        'mqtt.tls.key_file: file not found: "/nonexistent/k.pem"',
    ]
    doc["mqtt"] = {"url": "mqtt://b", "tls": {"ca_file": "ca.pem"}}
    assert problems(doc, base_dir=tmp_path) == [
        "mqtt.tls.ca_file: set, but mqtt.url is mqtt:// (plain TCP); use mqtts:// for TLS"]
    doc["mqtt"] = {"url": "mqtts://b", "tls": {"key_file": "ca.pem"}}
    assert problems(doc, base_dir=tmp_path) == [
        "mqtt.tls.key_file: set without mqtt.tls.cert_file"]
    doc["mqtt"] = {"url": "mqtts://b", "tls": {"ca_file": "ca.pem"}}
    assert ok(doc, base_dir=tmp_path).mqtt.tls.ca_file == tmp_path / "ca.pem"


def test_every_problem_at_once() -> None:
    doc = base()
    doc["mqtt"] = {"url": "http://b", "protocl": 5}
    doc["poll_window"] = "late"
    doc["accounts"][0]["meters"][0].update(pdl="1234", refresh=60)
    got = problems(doc)
    assert got == [
        'mqtt.protocl: unknown key (did you mean "protocol"?)',
        'mqtt.url: expected a URL starting with mqtt:// or mqtts://, got "http://"',
        'poll_window: expected "HH:MM-HH:MM" (Europe/Paris), got "late"',
        'accounts[0].meters[0].pdl: expected 14 digits, got "1234"',
        "accounts[0].meters[0].refresh: must be at least 3600 seconds (one poll an hour at "
        "most: Enedis data comes once a day and quotas are small), got 60",
    ]


# --------------------------------------------------------------------------- ${ENV}


def test_env_interpolation() -> None:
    text = """
mqtt:
  url: mqtt://${BROKER}:${PORT}
  base_topic: ${SITE}/linky
  username: ${USER_NAME}
  password: ${PW}
accounts:
  - name: home
    provider: conso
    token: ${CONSO_TOKEN}
    meters:
      - pdl: "${PDL}"
        refresh: ${REFRESH}
        production: ${PROD}
        name: "cost: $${NOT_A_VAR} and $5"
"""
    env = {"BROKER": "b.example", "PORT": "1884", "SITE": "paris", "USER_NAME": "u",
           "PW": "env-pw-SECRET", "CONSO_TOKEN": TOKEN, "PDL": PDL2, "REFRESH": "7200",
           "PROD": "true"}
    cfg = ok(text, env=env)
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.base_topic) == ("b.example", 1884,
                                                                   "paris/linky")
    assert cfg.mqtt.password == Secret("env-pw-SECRET")
    assert type(cfg.mqtt.base_topic) is str
    a = cfg.accounts[0]
    assert a.token == Secret(TOKEN)
    m = a.meters[0]
    assert (m.pdl, m.refresh, m.production, m.name) == (PDL2, 7200, True,
                                                       "cost: ${NOT_A_VAR} and $5")


def test_env_problems_carry_the_path() -> None:
    text = """
mqtt:
  url: mqtt://${BROKER}
accounts:
  - name: home
    provider: conso
    token: ${CONSO_TOKEN}
    meters:
      - pdl: "12345678901234"
        refresh: ${REFRESH}
        name: ${bad-name} ${OPEN
"""
    assert problems(text, env={"REFRESH": "soon"}) == [
        "mqtt.url: environment variable BROKER is not set",
        "accounts[0].token: environment variable CONSO_TOKEN is not set",
        'accounts[0].meters[0].name: "${bad-name}" is not a valid variable reference (${NAME}: '
        "letters, digits, underscore; $${ for a literal ${)",
        'accounts[0].meters[0].name: "${" without its closing "}"',
        'accounts[0].meters[0].refresh: expected an integer, got "${REFRESH}" from the '
        'environment',
    ]
    # a value from the environment is never echoed: the variable may hold a secret used
    # elsewhere in the file (found by tests/test_config_fuzz.py: a token in mqtt.protocol)
    assert problems("mqtt:\n  url: mqtt://b\n  protocol: ${TOKEN}\naccounts:\n"
                    "  - {name: a, provider: conso, token: '${TOKEN}', meters: auto}\n",
                    env={"TOKEN": "t-SECRET"}) == [
        'mqtt.protocol: expected 5 or 3.1.1, got "${TOKEN}" from the environment']
    # and a secret's value, however it reached another key, is masked in every problem
    got = problems("mqtt:\n  url: mqtts://b\n  tls: {ca_file: '${TOKEN}'}\n"
                   "  client_id: 'x-t-SECRET'\naccounts:\n"
                   "  - {name: a, provider: conso, token: '${TOKEN}', meters: auto}\n"
                   "  - {name: b, provider: conso, token: 'literal-SECRET', meters: auto,"
                   " refresh: 'literal-SECRET'}\n", env={"TOKEN": "t-SECRET"})
    assert got and all("SECRET" not in line for line in got), got
    assert any(line.startswith("mqtt.tls.ca_file: file not found:") for line in got), got


# --------------------------------------------------------------------------- *_file secrets


def test_file_secrets(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "pw").write_text("file-pw-SECRET\r\n")
    (tmp_path / "ha").write_text("ha-SECRET")
    (tmp_path / "cid").write_text("my-client-id\n")
    (tmp_path / "cs").write_text("dc-SECRET\n\n")
    doc: dict[str, Any] = {
        "mqtt": {"username": "u", "password_file": str(tmp_path / "pw")},
        "homeassistant": {"statistics": {"url": "wss://ha", "token_file": "ha"}},
        "accounts": [
            {"name": "a", "provider": "conso", "token_file": "token", "meters": [{"pdl": PDL1}]},
            {"name": "b", "provider": "dataconnect", "client_id_file": "cid",
             "client_secret_file": "cs", "meters": [{"pdl": PDL2}]},
        ]}
    cfg = ok(doc, base_dir=tmp_path)
    assert cfg.mqtt.password == Secret("file-pw-SECRET")
    assert cfg.homeassistant.statistics is not None
    assert cfg.homeassistant.statistics.token == Secret("ha-SECRET")
    assert cfg.accounts[0].token == Secret(TOKEN)
    assert cfg.accounts[1].client_id == "my-client-id"
    assert cfg.accounts[1].client_secret == Secret("dc-SECRET")


def test_file_secret_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "token").write_text(TOKEN)
    doc = base()
    doc["accounts"][0]["token_file"] = "token"
    doc["accounts"].append({"name": "b", "provider": "conso", "token_file": "missing",
                            "meters": [{"pdl": PDL2}]})
    doc["accounts"].append({"name": "c", "provider": "conso", "token_file": "empty",
                            "meters": [{"pdl": "11111111111111"}]})
    doc["accounts"].append({"name": "d", "provider": "conso", "token_file": str(tmp_path),
                            "meters": [{"pdl": "22222222222222"}]})
    doc["accounts"].append({"name": "e", "provider": "conso", "token_file": 5,
                            "meters": [{"pdl": "33333333333333"}]})
    assert problems(doc, base_dir=tmp_path) == [
        "accounts[0].token_file: both token and token_file are set; keep one",
        f'accounts[1].token_file: cannot read "{tmp_path / "missing"}": No such file or directory',
        f'accounts[2].token_file: "{tmp_path / "empty"}" is empty',
        f'accounts[3].token_file: cannot read "{tmp_path}": Is a directory',
        "accounts[4].token_file: expected the path of a file (a string), got an integer",
    ]


def test_secret_file_on_the_wrong_provider(tmp_path: Path) -> None:
    (tmp_path / "cs").write_text("x")
    doc = with_account(client_secret_file="cs")
    assert problems(doc, base_dir=tmp_path) == [
        "accounts[0].client_secret_file: not used by provider conso (it takes a token)"]


# --------------------------------------------------------------------------- load(path)


def test_load_from_file_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text(TOKEN)
    path = tmp_path / "config.yaml"
    path.write_text(as_text(with_account(token=None, token_file="tok")))
    cfg = load(path, env={})
    assert cfg.accounts[0].token == Secret(TOKEN)
    assert cfg.store.path == tmp_path / "linky2mqtt.db"


def test_load_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml")
    assert info.value.problems == [f'config: file not found: "{tmp_path / "nope.yaml"}"']
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert info.value.problems == [f'config: "{tmp_path}" is a directory, not a file']
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load(bad)
    assert info.value.problems == [f'config: "{bad}" is not UTF-8 text']


def test_example_file_loads() -> None:
    env = {"MQTT_PASSWORD": "mqtt-SECRET", "CONSO_TOKEN": TOKEN,
           "DATACONNECT_CLIENT_ID": "dc-id", "DATACONNECT_CLIENT_SECRET": "dc-SECRET",
           "MED_TOKEN": "med-SECRET"}
    cfg = load(ROOT / "config.yaml.example", env=env)
    assert [(a.name, a.provider, a.enabled) for a in cfg.accounts] == [
        ("home", "conso", True), ("office", "dataconnect", True),
        ("cottage", "myelectricaldata", False)]
    assert [m.pdl for _, m in cfg.enabled_meters()] == [
        "12345678901234", "98765432109876", "24880057139142"]
    assert cfg.accounts[0].budget == BudgetOverride(per_12h=60)


def test_example_file_documents_every_key() -> None:
    text = (ROOT / "config.yaml.example").read_text()
    keys = set(re.findall(r"^\s*#?\s*-?\s*([a-z_0-9]+):", text, re.M))
    for key in ("url", "username", "password", "client_id", "base_topic", "protocol", "tls",
                "ca_file", "cert_file", "key_file", "insecure", "discovery", "discovery_prefix",
                "status_topic", "statistics", "token", "path", "level", "format", "commands",
                "poll_window", "accounts", "name", "provider", "client_secret", "base_url",
                "enabled", "budget", "per_second", "per_hour", "per_12h", "per_day",
                "meter_defaults", "meters", "pdl", "steps", "consumption", "production",
                "max_power",
                "refresh", "backfill_days"):
        assert key in keys, key


def _deep_merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(into)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out


CONFIG_KEYS = {"mqtt", "homeassistant", "store", "log", "commands", "poll_window", "accounts",
               "tempo"}


def test_readme_yaml_blocks_are_valid(tmp_path: Path) -> None:
    """Every ```yaml block of README.md and docs/*.md that is linky2mqtt configuration
    loads (fragments merged into a base); blocks of other programs' YAML (a Home Assistant
    automation) are recognised by their top-level keys and left alone."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [b for page in pages
              for b in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)]
    (tmp_path / "secrets").mkdir()
    for name in ("conso_token", "mqtt_password", "dc_secret", "ha_token"):
        (tmp_path / "secrets" / name).write_text("file-SECRET\n")
    env = {"CONSO_TOKEN": TOKEN, "MQTT_PASSWORD": "p", "DC_CLIENT_ID": "i",
           "RTE_CLIENT_ID": "r", "RTE_CLIENT_SECRET": "rs",
           "DC_CLIENT_SECRET": "s", "HA_TOKEN": "h", "MED_TOKEN": "m",
           "DATACONNECT_CLIENT_ID": "i", "DATACONNECT_CLIENT_SECRET": "s"}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    checked = 0
    for block in blocks:
        text = block.replace("/run/secrets/", f"{tmp_path}/secrets/")
        for prefix in (" /data/", " /etc/linky2mqtt/"):
            text = text.replace(prefix, f" {tmp_path}/data/")
        data = yaml.safe_load(text)
        assert isinstance(data, dict), block
        if not set(data) & CONFIG_KEYS:
            continue
        assert set(data) <= CONFIG_KEYS, f"unknown top-level keys in README block: {block}"
        if "accounts" not in data:
            data = _deep_merge(base(), data)
        ok(data, env=env, base_dir=tmp_path)
        checked += 1
    assert checked >= 5


# --------------------------------------------------------------------------- redaction


SECRETS = ("mqtt-pw-SECRET", "conso-token-SECRET", "dc-client-SECRET", "ha-token-SECRET",
           "med-token-SECRET")


def secret_config() -> dict[str, Any]:
    return {
        "mqtt": {"url": "mqtts://b", "username": "u", "password": SECRETS[0]},
        "homeassistant": {"statistics": {"url": "https://ha", "token": SECRETS[3]}},
        "accounts": [
            {"name": "a", "provider": "conso", "token": SECRETS[1], "meters": "auto",
             "budget": {"per_12h": 50}},
            {"name": "b", "provider": "dataconnect", "client_id": "public-id",
             "client_secret": SECRETS[2], "meters": [{"pdl": PDL1, "name": "Home"}]},
            {"name": "c", "provider": "myelectricaldata", "token": SECRETS[4],
             "enabled": False, "meters": [{"pdl": PDL2}]},
        ]}


def test_no_secret_in_any_rendering() -> None:
    cfg = ok(secret_config())
    texts = [str(cfg), repr(cfg), json.dumps(redacted(cfg)), summary(cfg),
             str(cfg.accounts), f"{cfg.mqtt.password}", repr(cfg.accounts[0].token)]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_no_secret_in_problems() -> None:
    doc = secret_config()
    doc["accounts"][0]["meters"] = [{"pdl": "1"}]
    doc["mqtt"]["url"] = f"mqtt://user:{SECRETS[0]}@b"
    doc["accounts"][1]["token"] = SECRETS[1]
    doc["accounts"][2]["client_secret"] = SECRETS[2]
    with pytest.raises(ConfigError) as info:
        ok(doc)
    assert len(info.value.problems) == 4
    for secret in SECRETS:
        assert secret not in str(info.value)
        assert secret not in repr(info.value)


def test_redacted_shape() -> None:
    cfg = ok(secret_config())
    r = redacted(cfg)
    assert cfg.mqtt.client_id.startswith("linky2mqtt-")  # one per store, see the defaults
    assert r["mqtt"] == {"url": "mqtts://b:8883", "username": "u", "password": "***",
                         "client_id": cfg.mqtt.client_id, "base_topic": "linky2mqtt",
                         "protocol": "5",
                         "tls": {"ca_file": None, "cert_file": None, "key_file": None,
                                 "insecure": False}}
    assert r["homeassistant"]["statistics"] == {"url": "https://ha", "token": "***"}
    assert r["poll_window"] == "08:00-10:00"
    a, b, c = r["accounts"]
    assert (a["token"], a["meters"], a["budget"]) == (
        "***", "auto", {"per_second": None, "per_hour": None, "per_12h": 50, "per_day": None,
                        "allow_above_default": False})
    assert (b["token"], b["client_id"], b["client_secret"]) == (None, "public-id", "***")
    assert b["meters"] == [{"pdl": PDL1, "name": "Home", "steps": ["day", "month", "hour"],
                            "consumption": True, "production": False, "max_power": False,
                            "refresh": 86400,
                            "backfill_days": {"day": 365, "hour": 30}, "tariffs": None,
                            "offpeak_hours": None, "enabled": True}]
    assert c["enabled"] is False
    assert json.loads(json.dumps(r)) == r


def test_summary_text() -> None:
    text = summary(ok(secret_config(), base_dir=Path("/data")))
    store_id = hashlib.sha256(b"/data/linky2mqtt.db").hexdigest()[:8]
    assert text.splitlines() == [
        f"MQTT broker: mqtts://b:8883 (MQTT 5, client id linky2mqtt-{store_id}, user u, "
        "password ***, TLS)",
        "Base topic: linky2mqtt",
        "Home Assistant discovery: on (prefix homeassistant, status topic homeassistant/status)",
        "Home Assistant statistics: https://ha (token ***)",
        "Store: /data/linky2mqtt.db",
        "Log: info, text",
        "Commands: on",
        "Poll window: 08:00-10:00 (Europe/Paris)",
        "Tempo colours: api-couleur-tempo.fr (used by tempo tariffs only)",
        "Accounts: 3",
        "  a: conso (token ***; public URL)",
        "    budget: per_12h 50",
        "    budget conso (one scope for every conso account): 1/second (provider default), "
        "paced over 1.05 s; 50/12h (lowered from 80), backfill <= 40, commands <= 45",
        "    meters: auto (every PDL the token covers), each: day, month, hour; refresh 86400 s; "
        "backfill 365 days daily, 30 days hourly",
        "  b: dataconnect (client_id public-id, client_secret ***; public URL)",
        "    budget dataconnect:b: 5/second (provider default), paced over 1.05 s; "
        "1000/hour (provider default), backfill <= 800, commands <= 900",
        f"    {PDL1} 'Home': day, month, hour; refresh 86400 s; backfill 365 days daily, "
        "30 days hourly",
        "  c: myelectricaldata (token ***; public URL), DISABLED",
        "    budget myelectricaldata:account:c: 1/second (provider default), paced over 1.05 s",
        "    budget myelectricaldata:<each meter's PDL>: 50/day (provider default), "
        "backfill <= 40, commands <= 45",
        f"    {PDL2} '{PDL2}': day, month, hour; refresh 86400 s; backfill 365 days daily, "
        "30 days hourly",
    ]


def test_secret_behaviour() -> None:
    s = Secret("abc")
    assert (str(s), repr(s), f"{s}", f"{s:>5}") == ("***", "***", "***", "  ***")
    assert s == Secret("abc") and s != Secret("abd") and s != "abc"
    assert len({s, Secret("abc"), Secret("x")}) == 2
    assert s.reveal() == "abc"
    with pytest.raises(AttributeError):
        s._value = "x"
    with pytest.raises(TypeError):
        Secret(5)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    cfg = ok(base())
    with pytest.raises(AttributeError):
        cfg.commands = False  # type: ignore[misc]


def test_config_error_pickles() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(ConfigError(["a: b", "c: d"])))
    assert err.problems == ["a: b", "c: d"]
    assert str(err) == "a: b\nc: d"


def test_secret_values_lists_every_secret() -> None:
    assert sorted(secret_values(ok(secret_config()))) == sorted(SECRETS)


def summary(cfg: Config) -> str:
    """The ``check-config`` text: the configuration, each account with its budget scopes."""
    return config_summary(cfg, lambda account: describe(cfg, account))


def test_libyaml_and_pyyaml_read_the_same_documents() -> None:
    """The loader parses with libyaml when PyYAML has it (a fleet's file 5 times faster)
    and with PyYAML's own parser when libyaml refuses a document, so that the problem is
    told in the documented words. Every YAML text of the repository (the example, the
    add-on's files, each ```yaml block of the docs) and a few edge cases give the same
    document both ways, repeated keys noted the same."""
    assert config_module._FastLoader is not None, "PyYAML without libyaml: this test " \
        "would not compare anything (the wheels of PyYAML ship it)"
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = [(ROOT / "config.yaml.example").read_text()]
    texts += [p.read_text() for p in (ROOT / "addon").rglob("*.yaml")]
    texts += [b for page in pages
              for b in re.findall(r"^```yaml\n(.*?)^```", page.read_text(), re.M | re.S)]
    texts += ["a: 1\na: 2\nb: {c: 1, c: 2}\n", "x: !!binary aGVsbG8=\n", "d: 2026-11-30\n",
              "t: 2026-11-30T08:00:00+01:00\n", "n: ~\ny: yes\no: 0o17\nh: 0x1F\nf: .inf\n",
              "s: 'caf\u00e9 \u20ac'\nu: \"\\u00e9\"\n",
              "l: [1, [2, [3]]]\nanchor: &a {k: v}\nref: *a\n",
              "m: |\n  two\n  lines\n", "e: ''\n", "k: 12345678901234\n", "p: 012\n"]
    assert len(texts) > 15
    for text in texts:
        fast: list[tuple[int, str]] = []
        slow: list[tuple[int, str]] = []
        loader = config_module._Loader(text, slow)
        try:
            expected = loader.get_single_data()
        finally:
            loader.dispose()
        assert config_module._parse_yaml(text, fast) == expected, text
        assert fast == slow, text
        assert fast or "a: 1" not in text


def test_a_document_libyaml_refuses_is_told_by_pyyaml() -> None:
    """libyaml's own words differ ("did not find expected ','"): the message is
    PyYAML's, with its line and column."""
    assert problems("mqtt:\n  url: [\naccounts: []\n") == [
        "config: invalid YAML at line 4, column 1: while parsing a flow sequence expected "
        "',' or ']', but got '<stream end>'"]
