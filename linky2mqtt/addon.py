"""Running as a Home Assistant add-on ("app"): options.json and Supervisor services -> Config.

When the Supervisor starts the add-on it injects ``SUPERVISOR_TOKEN`` and writes the
options the user chose in the add-on's Configuration tab to ``/data/options.json``. This
module turns those options into the configuration document :func:`linky2mqtt.config.
load_text` validates (the same checks, the same messages), with what the Supervisor
provides filled in:

* the broker: ``GET http://supervisor/services/mqtt`` (the Mosquitto add-on's host, port
  and generated credentials), unless the options give ``mqtt_url``;
* Home Assistant statistics: ``ws://supervisor/core/websocket`` authenticated with the
  Supervisor token (no long-lived token to create);
* the store: ``linky2mqtt.db`` beside ``options.json`` (``/data``, persistent, backed up).

Problems come back as one :class:`AddonOptionsError` whose ``line`` is a single log line
naming each wrong option by its path in the options (``meters[1].pdl: ...``).

Overridable for tests and standalone use (environment): ``LINKY2MQTT_ADDON_OPTIONS`` (the
options file, default ``/data/options.json``) and ``LINKY2MQTT_SUPERVISOR_URL`` (default
``http://supervisor``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from linky2mqtt.config import Config, ConfigError, load_text
from linky2mqtt.errors import Linky2MqttError

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_SUPERVISOR_URL",
    "AddonOptionsError",
    "SupervisorError",
    "active",
    "load_addon_config",
    "mqtt_service",
    "options_document",
    "options_path",
]

DEFAULT_OPTIONS: Final = "/data/options.json"
DEFAULT_SUPERVISOR_URL: Final = "http://supervisor"
STORE_NAME: Final = "linky2mqtt.db"
SERVICE_TIMEOUT: Final = 10.0

# option key at the top level -> where it goes in the configuration document
_TOP_KEYS: Final = {
    "log_level", "accounts", "meters", "steps", "backfill_day", "backfill_hour", "refresh",
    "statistics", "discovery", "discovery_prefix", "base_topic", "commands", "poll_window",
    "mqtt_url", "mqtt_username", "mqtt_password", "mqtt_protocol",
}
_ACCOUNT_KEYS: Final = {
    "name", "provider", "token", "client_id", "client_secret", "base_url", "enabled",
    "budget_per_hour", "budget_per_12h", "budget_per_day",
}
_METER_KEYS: Final = {
    "pdl", "account", "name", "steps", "consumption", "production", "max_power", "refresh",
    "backfill_day", "backfill_hour", "enabled",
}
_FILE_HINT: Final = re.compile(r" ?\(?\bor \w+_file\b\)?")
_STEPS_RE: Final = re.compile(r"\s*(day|month|hour)(\s*,\s*(day|month|hour))*\s*")


class AddonOptionsError(Linky2MqttError):
    """The add-on's options (or what the Supervisor answered) cannot make a configuration."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    @property
    def line(self) -> str:
        """One log line: every problem, then what to do."""
        return ("invalid add-on options: " + "; ".join(self.problems)
                + " -- fix them in the add-on's Configuration tab, then restart it")


class SupervisorError(AddonOptionsError):
    """The Supervisor did not give what the add-on needs (no broker, not reachable)."""

    @property
    def line(self) -> str:
        return "; ".join(self.problems)


def active(env: Mapping[str, str] = os.environ) -> bool:
    """True when started by a Home Assistant Supervisor (it injects ``SUPERVISOR_TOKEN``)."""
    return bool(env.get("SUPERVISOR_TOKEN", "").strip())


def _given(value: Any) -> bool:
    return value is not None and value != ""


def _escape(value: Any) -> Any:
    """Option values are literal: ``${`` is not an environment reference in the add-on."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    return value


def mqtt_service(supervisor_url: str, token: str, *,
                 transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """The broker the Supervisor's MQTT service offers (``data`` of ``/services/mqtt``)."""
    url = supervisor_url.rstrip("/") + "/services/mqtt"
    try:
        with httpx.Client(timeout=SERVICE_TIMEOUT, transport=transport, trust_env=False) as c:
            resp = c.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise SupervisorError([f"cannot ask the Supervisor for the MQTT broker "
                               f"({exc.__class__.__name__}); restart the add-on once the "
                               "Supervisor is up, or set mqtt_url in its options"]) from None
    body: Any
    try:
        body = resp.json()
    except ValueError:
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    if resp.status_code == 200 and isinstance(data, dict) and data.get("host"):
        return data
    message = body.get("message") if isinstance(body, dict) else None
    raise SupervisorError([
        "no MQTT broker from the Supervisor (HTTP "
        f"{resp.status_code}{': ' + str(message) if message else ''}); install and start "
        "the Mosquitto broker add-on, or set mqtt_url (and mqtt_username/mqtt_password)"])


def _steps(value: Any, where: str, problems: list[str]) -> list[str] | None:
    if not _given(value):
        return None
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str) or _STEPS_RE.fullmatch(value) is None:
        problems.append(f"{where}: expected steps separated by commas among day, month, "
                        f"hour (e.g. day,month,hour), got {value!r}")
        return None
    return sorted({s.strip() for s in value.split(",")},
                  key=("day", "month", "hour").index)


def _unknown(raw: Mapping[str, Any], allowed: set[str], where: str,
             problems: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            problems.append(f"{where}{key}: unknown option")


def _entries(raws: list[Any], name: str, keys: Iterable[str], problems: list[str],
             expected: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, path, mapping) of each entry of the list option ``name`` that is a
    mapping; the others and their unknown options are reported in ``problems``."""
    allowed = set(keys)
    for i, raw in enumerate(raws):
        where = f"{name}[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected {expected}")
            continue
        _unknown(raw, allowed, f"{where}.", problems)
        yield i, where, raw


def _settings(raw: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """Meter settings given by ``raw`` (a meter or the top level), only those set."""
    out: dict[str, Any] = {}
    steps = _steps(raw.get("steps"), f"{where}steps", problems)
    if steps is not None:
        out["steps"] = steps
    for key in ("consumption", "production", "max_power", "refresh"):
        if _given(raw.get(key)):
            out[key] = raw[key]
    backfill = {step: raw[f"backfill_{step}"] for step in ("day", "hour")
                if _given(raw.get(f"backfill_{step}"))}
    if backfill:
        out["backfill_days"] = backfill
    return out


def options_document(options: Any, *, broker: Mapping[str, Any] | None,
                     supervisor_url: str, token: str, data_dir: Path,
                     ) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The configuration document for ``options``, how its paths map back to options, and
    the problems found in the options themselves (the document then skips those parts).

    ``broker`` is the Supervisor's MQTT service data (None when ``mqtt_url`` is set).
    The second value maps a configuration path prefix (``accounts[0].meters[1]``) to the
    option path the user sees (``meters[3]``).
    """
    problems: list[str] = []
    if not isinstance(options, dict):
        raise AddonOptionsError(["options: expected a JSON object"])
    _unknown(options, set(_TOP_KEYS), "", problems)
    paths: dict[str, str] = {}

    mqtt: dict[str, Any] = {"client_id": "linky2mqtt"}
    if _given(options.get("mqtt_url")):
        mqtt["url"] = options["mqtt_url"]
        paths["mqtt.url"] = "mqtt_url"
    elif broker is not None:
        scheme = "mqtts" if broker.get("ssl") else "mqtt"
        mqtt["url"] = f"{scheme}://{broker.get('host')}:{broker.get('port') or 1883}"
        if _given(broker.get("username")):
            mqtt["username"] = str(broker["username"])
        if _given(broker.get("password")):
            mqtt["password"] = str(broker["password"])
        protocol = str(broker.get("protocol") or "3.1.1")
        mqtt["protocol"] = protocol if protocol in ("5", "3.1.1") else "3.1.1"
    for opt, key in (("mqtt_username", "username"), ("mqtt_password", "password"),
                     ("mqtt_protocol", "protocol")):
        if _given(options.get(opt)):
            mqtt[key] = options[opt]
            paths[f"mqtt.{key}"] = opt
    if _given(options.get("base_topic")):
        mqtt["base_topic"] = options["base_topic"]
        paths["mqtt.base_topic"] = "base_topic"

    ha: dict[str, Any] = {}
    for key in ("discovery", "discovery_prefix"):
        if _given(options.get(key)):
            ha[key] = options[key]
            paths[f"homeassistant.{key}"] = key
    if options.get("statistics", True):
        base = supervisor_url.rstrip("/")
        ws = re.sub(r"^http", "ws", base, count=1) + "/core/websocket"
        ha["statistics"] = {"url": ws, "token": token}

    defaults = _settings(options, "", problems)
    for src, dst in (("steps", "steps"), ("refresh", "refresh"),
                     ("backfill_day", "backfill_days.day"),
                     ("backfill_hour", "backfill_days.hour")):
        paths[f"meter_defaults.{dst}"] = src

    raw_accounts = options.get("accounts")
    raw_meters = options.get("meters") or []
    if not isinstance(raw_accounts, list) or not raw_accounts:
        problems.append("accounts: add at least one account (a provider and its token)")
        raw_accounts = []
    if not isinstance(raw_meters, list):
        problems.append("meters: expected a list")
        raw_meters = []
    accounts: list[dict[str, Any]] = []
    by_name: dict[str, int] = {}
    for i, where, raw in _entries(raw_accounts, "accounts", _ACCOUNT_KEYS, problems,
                                  "an account (name, provider, token...)"):
        account: dict[str, Any] = {
            k: raw[k] for k in ("name", "provider", "token", "client_id", "client_secret",
                                "base_url", "enabled") if _given(raw.get(k))}
        if "name" not in account:
            account["name"] = f"account{i + 1}" if len(raw_accounts) > 1 else "home"
        budget = {k.removeprefix("budget_"): raw[k]
                  for k in ("budget_per_hour", "budget_per_12h", "budget_per_day")
                  if _given(raw.get(k))}
        if budget:
            account["budget"] = budget
            for k in budget:
                paths[f"{where}.budget.{k}"] = f"{where}.budget_{k}"
        if defaults:
            account["meter_defaults"] = dict(defaults)
            for src_path, opt in list(paths.items()):
                if src_path.startswith("meter_defaults."):
                    paths[f"{where}.{src_path}"] = opt
        account["meters"] = []
        by_name.setdefault(str(account["name"]), len(accounts))
        paths[where] = f"accounts[{i}]"
        accounts.append(account)
    for _, where, raw in _entries(raw_meters, "meters", _METER_KEYS, problems,
                                  "a meter (pdl, account...)"):
        owner = raw.get("account")
        if _given(owner):
            index = by_name.get(str(owner))
            if index is None:
                problems.append(f"{where}.account: no account named {owner!r} (accounts: "
                                f"{', '.join(sorted(by_name)) or 'none'})")
                continue
        elif len(accounts) == 1:
            index = 0
        else:
            if accounts:
                problems.append(f"{where}.account: required when there are several accounts "
                                f"(one of {', '.join(sorted(by_name))})")
            continue
        meter: dict[str, Any] = {"pdl": raw.get("pdl")}
        if _given(raw.get("name")):
            meter["name"] = raw["name"]
        if _given(raw.get("enabled")):
            meter["enabled"] = raw["enabled"]
        meter.update(_settings(raw, f"{where}.", problems))
        target = accounts[index]["meters"]
        paths[f"accounts[{index}].meters[{len(target)}]"] = where
        target.append(meter)
    for i, account in enumerate(accounts):
        if not account["meters"]:
            # no meter listed for it: every PDL its token covers (conso), else an error below
            account["meters"] = "auto"
            paths[f"accounts[{i}].meters"] = f"meters (for account {account['name']!r})"
    document: dict[str, Any] = {
        "mqtt": mqtt,
        "homeassistant": ha,
        "store": {"path": str(data_dir / STORE_NAME)},
        "log": {"level": options.get("log_level") or "info", "format": "text"},
        "accounts": accounts,
    }
    paths["log.level"] = "log_level"
    if _given(options.get("commands")):
        document["commands"] = options["commands"]
    if _given(options.get("poll_window")):
        document["poll_window"] = options["poll_window"]
    return document, paths, problems


def _translate(problem: str, paths: Mapping[str, str]) -> str:
    """``accounts[0].meters[1].pdl: ...`` -> ``meters[3].pdl: ...`` (longest prefix wins)."""
    problem = _FILE_HINT.sub("", problem)  # the add-on has no *_file options
    head, sep, rest = problem.partition(": ")
    if not sep:
        return problem
    for prefix in sorted(paths, key=len, reverse=True):
        if head == prefix or head.startswith((prefix + ".", prefix + "[")):
            return paths[prefix] + head[len(prefix):] + sep + rest
    return problem


def options_path(env: Mapping[str, str] = os.environ) -> Path:
    """Where the Supervisor wrote the options (``LINKY2MQTT_ADDON_OPTIONS`` overrides)."""
    return Path(env.get("LINKY2MQTT_ADDON_OPTIONS") or DEFAULT_OPTIONS)


def load_addon_config(env: Mapping[str, str] = os.environ, *,
                      transport: httpx.BaseTransport | None = None) -> Config:
    """Read the add-on's options, ask the Supervisor for the broker, validate everything."""
    token = env.get("SUPERVISOR_TOKEN", "").strip()
    path = options_path(env)
    supervisor_url = env.get("LINKY2MQTT_SUPERVISOR_URL") or DEFAULT_SUPERVISOR_URL
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AddonOptionsError([f"options: {path} not found (is the add-on "
                                 "started by the Supervisor?)"]) from None
    except (OSError, ValueError) as exc:
        raise AddonOptionsError([f"options: cannot read {path}: "
                                 f"{exc.__class__.__name__}"]) from None
    broker = None
    if not (isinstance(options, dict) and _given(options.get("mqtt_url"))):
        broker = mqtt_service(supervisor_url, token, transport=transport)
    document, paths, problems = options_document(
        options, broker=broker, supervisor_url=supervisor_url, token=token,
        data_dir=path.parent)
    text = yaml.safe_dump(_escape(document), sort_keys=False, allow_unicode=True)
    try:
        cfg = load_text(text, env={}, base_dir=path.parent)
    except ConfigError as exc:
        problems += [_translate(p, paths) for p in exc.problems]
        raise AddonOptionsError(problems) from None
    if problems:
        raise AddonOptionsError(problems)
    return cfg
