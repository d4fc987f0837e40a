"""Budget overrides say what they do (issue 15): stricter only, raising needs an opt-in.

* a window above the provider's default is a configuration error naming the key, the
  value and the default, unless ``allow_above_default: true``;
* with the opt-in the raised value applies as written (conso included: no silent cap)
  and building the budget logs a warning;
* ``check-config`` (``summary``) prints the effective windows of each scope, where each
  comes from, the one-second pacing and the backfill/command caps.

The expected windows are written out here from the provider defaults documented in
docs/configuration.md (conso 1/s and 80/12 h, Data Connect 5/s and 1,000/h,
MyElectricalData 1/s per account and 50/day per PDL).
"""

from __future__ import annotations

import logging

import pytest

from linky2mqtt.budgets import budget_windows, describe
from linky2mqtt.config import Config, ConfigError, load_text
from linky2mqtt.config import summary as config_summary
from linky2mqtt.enedis import Budget, MemoryLedger, Window

PDL1, PDL2, PDL3, PDL4 = "12345678901234", "98765432109876", "24880057139941", "11453290002823"


def config(*accounts: str) -> str:
    return ('mqtt: {url: "mqtt://127.0.0.1:1883"}\naccounts:\n' + "".join(accounts))


def conso(name: str, budget: str) -> str:
    return (f"  - name: {name}\n    provider: conso\n    token: tok-{name}\n"
            f"    budget: {budget}\n    meters: [{{pdl: \"{PDL1 if name == 'a' else PDL2}\"}}]\n")


def dataconnect(budget: str) -> str:
    return ("  - name: dc\n    provider: dataconnect\n    client_id: id\n"
            f"    client_secret: secret\n    budget: {budget}\n"
            f"    meters: [{{pdl: \"{PDL3}\"}}]\n")


def med(budget: str) -> str:
    return (f"  - name: med\n    provider: myelectricaldata\n    token: t\n"
            f"    budget: {budget}\n    meters: [{{pdl: \"{PDL4}\"}}, {{pdl: \"{PDL2}\"}}]\n")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, env={})
    return info.value.problems


@pytest.mark.parametrize(("text", "key", "value", "default"), [
    (config(dataconnect("{per_hour: 2000}")), "per_hour", 2000, 1000),
    (config(dataconnect("{per_second: 6}")), "per_second", 6, 5),
    (config(med("{per_day: 80}")), "per_day", 80, 50),
    (config(med("{per_second: 2}")), "per_second", 2, 1),
    (config(conso("a", "{per_12h: 100}")), "per_12h", 100, 80),
])
def test_raising_a_provider_default_needs_the_opt_in(text: str, key: str, value: int,
                                                     default: int) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert f".budget.{key}: {value} is above the " in found[0]
    assert f"default of {default}" in found[0]
    assert "allow_above_default: true" in found[0]


def test_lowering_or_adding_windows_applies_as_written() -> None:
    cfg = load_text(config(dataconnect("{per_hour: 300, per_day: 2000}"),
                           med("{per_day: 20}"), conso("a", "{per_12h: 50}")), env={})
    assert [m.pdl for _, m in cfg.enabled_meters()] == [PDL3, PDL4, PDL2, PDL1]
    w = budget_windows(cfg)
    assert w["dataconnect:dc"] == [Window(1.05, 5), Window(3600, 300), Window(86400, 2000)]
    assert w[f"myelectricaldata:{PDL4}"] == [Window(86400, 20)]
    assert w[f"myelectricaldata:{PDL2}"] == [Window(86400, 20)]
    assert w["myelectricaldata:account:med"] == [Window(1.05, 1)]
    assert w["conso"] == [Window(1.05, 1), Window(43200, 50)]
    # the budget the bridge builds uses them
    budget = Budget(w, MemoryLedger())
    assert list(budget.windows("dataconnect:dc")) == w["dataconnect:dc"]


def test_the_opt_in_applies_a_raised_value_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_text(config(dataconnect("{per_hour: 10000, allow_above_default: true}")),
                    env={})
    with caplog.at_level(logging.WARNING, logger="linky2mqtt.budgets"):
        w = budget_windows(cfg)
    assert w["dataconnect:dc"] == [Window(1.05, 5), Window(3600, 10000)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "account dc: budget per_hour 10000 is above the dataconnect default of 1000" in (
        warnings[0])
    assert "does not move because a config says so" in warnings[0]
    assert ("    budget dataconnect:dc: 5/second (provider default), paced over 1.05 s; "
            "10000/hour (ABOVE the provider default 1000: allow_above_default), "
            "backfill <= 8000, commands <= 9000") in summary(cfg).splitlines()


def test_conso_is_not_silently_capped_and_the_strictest_account_wins() -> None:
    raised = load_text(config(conso("a", "{per_12h: 100, allow_above_default: true}")),
                       env={})
    assert budget_windows(raised, warn=False)["conso"] == [Window(1.05, 1), Window(43200, 100)]
    assert ("    budget conso (one scope for every conso account): 1/second (provider "
            "default), paced over 1.05 s; 100/12h (ABOVE the provider default 80: "
            "allow_above_default), backfill <= 80, commands <= 90") in summary(raised).splitlines()
    both = load_text(config(conso("a", "{per_12h: 100, allow_above_default: true}"),
                            conso("b", "{per_12h: 50}")), env={})
    assert budget_windows(both, warn=False)["conso"] == [Window(1.05, 1), Window(43200, 50)]
    lines = summary(both).splitlines()
    shown = [x for x in lines if x.startswith("    budget conso")]
    assert len(shown) == 2 and all("50/12h (lowered from 80)" in x for x in shown), shown


def test_check_config_shows_defaults_when_nothing_is_overridden() -> None:
    text = config("  - name: dc\n    provider: dataconnect\n    client_id: id\n"
                  f"    client_secret: secret\n    meters: [{{pdl: \"{PDL1}\"}}]\n")
    assert ("    budget dataconnect:dc: 5/second (provider default), paced over 1.05 s; "
            "1000/hour (provider default), backfill <= 800, commands <= 900"
            ) in summary(load_text(text, env={})).splitlines()


def summary(cfg: Config) -> str:
    """The ``check-config`` text: the configuration, each account with its budget scopes."""
    return config_summary(cfg, lambda account: describe(cfg, account))
