"""The configuration: typed, frozen, validated as a whole (SPEC §3).

``load(path)`` / ``load_text(text)`` read the YAML file, replace ``${NAME}`` by environment
variables, read ``<key>_file`` secrets, check everything and return a :class:`Config`.
Every problem found is collected; if there is at least one, :class:`ConfigError` is raised
with all of them, one ``"dotted.path[index].key: message"`` each (``"config: ..."`` for the
document as a whole). Messages never contain a secret value.

``redacted(cfg)`` gives the configuration back as plain JSON with secrets masked (for
``bridge/info`` and ``check-config``); ``summary(cfg)`` is the human summary printed by
``check-config``; ``secret_values(cfg)`` lists the secret values for the log redactor.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import SplitResult, urlsplit

import yaml

from linky2mqtt.model import PDL_RE, Step
from linky2mqtt.secret import MASK, Secret

__all__ = [
    "AccountConfig",
    "BudgetOverride",
    "CommandPolicy",
    "Config",
    "ConfigError",
    "HomeAssistantConfig",
    "LogConfig",
    "MeterConfig",
    "MeterDefaults",
    "MqttConfig",
    "StatisticsConfig",
    "StoreConfig",
    "TlsConfig",
    "load",
    "load_text",
    "redacted",
    "secret_values",
    "summary",
]

Provider = Literal["conso", "dataconnect", "myelectricaldata"]
MqttProtocol = Literal["5", "3.1.1"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]

PROVIDERS: Final = ("conso", "dataconnect", "myelectricaldata")
TOKEN_PROVIDERS: Final = frozenset({"conso", "myelectricaldata"})
AUTO_METER_PROVIDERS: Final = frozenset({"conso"})
PROTOCOLS: Final = ("5", "3.1.1")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")
STEP_ORDER: Final = (Step.DAY, Step.MONTH, Step.HOUR)
ALL_STEPS: Final = frozenset(STEP_ORDER)

DEFAULT_MQTT_URL: Final = "mqtt://localhost:1883"
DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
MIN_REFRESH: Final = 3600
DEFAULT_REFRESH: Final = 86400
MAX_BACKFILL_DAY: Final = 1110
MAX_BACKFILL_HOUR: Final = 745
DEFAULT_BACKFILL_DAY: Final = 365
DEFAULT_BACKFILL_HOUR: Final = 30

_MAX_DEPTH: Final = 60
_MAX_NODES: Final = 200_000


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


DEFAULT_REQUEST_TIMEOUT: Final = 60  # seconds for one whole upstream exchange
REQUEST_TIMEOUT_RANGE: Final = (5, 600)


def default_client_id(store_path: str | os.PathLike[str]) -> str:
    """The MQTT client id used when none is configured: ``linky2mqtt-`` and 8 hex digits
    of the store's absolute path, so two installations (two stores) never share a session
    and kick each other off the broker, while one installation keeps its id across
    restarts."""
    text = str(store_path)
    if text != ":memory:" and not text.startswith("file:"):
        text = os.path.abspath(text)
    return "linky2mqtt-" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class MqttConfig:
    url: str = DEFAULT_MQTT_URL  # normalised: scheme://host:port
    host: str = "localhost"
    port: int = 1883
    use_tls: bool = False
    username: str | None = None
    password: Secret | None = None
    client_id: str = "linky2mqtt"
    base_topic: str = "linky2mqtt"
    protocol: MqttProtocol = "5"
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True, slots=True)
class StatisticsConfig:
    """Where to push long-term statistics into Home Assistant (its WebSocket API)."""

    url: str
    token: Secret


@dataclass(frozen=True, slots=True)
class HomeAssistantConfig:
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    status_topic: str = "homeassistant/status"
    statistics: StatisticsConfig | None = None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path = Path("linky2mqtt.db")


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: LogLevel = "info"
    format: LogFormat = "text"


@dataclass(frozen=True, slots=True)
class BudgetOverride:
    """Request budget of one account, overriding the provider's default where set."""

    per_second: int | None = None
    per_hour: int | None = None
    per_12h: int | None = None
    per_day: int | None = None


@dataclass(frozen=True, slots=True)
class MeterDefaults:
    """Per-meter settings an account gives its meters (and every ``meters: auto`` meter)."""

    steps: frozenset[Step] = ALL_STEPS
    consumption: bool = True
    production: bool = False
    max_power: bool = False
    refresh: int = DEFAULT_REFRESH
    backfill_day: int = DEFAULT_BACKFILL_DAY
    backfill_hour: int = DEFAULT_BACKFILL_HOUR


@dataclass(frozen=True, slots=True)
class MeterConfig:
    pdl: str
    name: str
    steps: frozenset[Step] = ALL_STEPS
    consumption: bool = True
    production: bool = False
    max_power: bool = False
    refresh: int = DEFAULT_REFRESH
    backfill_day: int = DEFAULT_BACKFILL_DAY
    backfill_hour: int = DEFAULT_BACKFILL_HOUR
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AccountConfig:
    name: str
    provider: Provider
    token: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    base_url: str | None = None
    enabled: bool = True
    meters: tuple[MeterConfig, ...] = ()
    auto_meters: bool = False
    budget: BudgetOverride | None = None
    meter_defaults: MeterDefaults = field(default_factory=MeterDefaults)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def meter_for(self, pdl: str) -> MeterConfig:
        """The configured meter of ``pdl``, or (``meters: auto``) one built from the defaults."""
        for meter in self.meters:
            if meter.pdl == pdl:
                return meter
        return _meter_config(pdl, pdl, self.meter_defaults)


def _meter_config(pdl: str, name: str, settings: MeterDefaults,
                  enabled: bool = True) -> MeterConfig:
    """A meter ``pdl`` named ``name`` with every per-meter setting taken from ``settings``."""
    return MeterConfig(pdl=pdl, name=name, steps=settings.steps,
                       consumption=settings.consumption, production=settings.production,
                       max_power=settings.max_power,
                       refresh=settings.refresh, backfill_day=settings.backfill_day,
                       backfill_hour=settings.backfill_hour, enabled=enabled)


DEFAULT_MAX_PAYLOAD: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """What the command topic accepts (``commands:`` given as a mapping)."""

    max_payload: int = DEFAULT_MAX_PAYLOAD  # bytes; larger requests are refused unread
    # MQTT 5 ResponseTopic prefixes answers may go to; empty: any topic outside the
    # bridge's base topic (but B/bridge/response/), the discovery prefix and HA's status
    response_topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    log: LogConfig = field(default_factory=LogConfig)
    commands: bool = True
    poll_window: tuple[time, time] = (time(8, 0), time(10, 0))
    accounts: tuple[AccountConfig, ...] = ()
    command_policy: CommandPolicy = field(default_factory=CommandPolicy)

    def enabled_meters(self) -> tuple[tuple[AccountConfig, MeterConfig], ...]:
        """Every listed meter that is enabled, of every enabled account (auto ones excluded)."""
        return tuple((a, m) for a in self.accounts if a.enabled for m in a.meters if m.enabled)


class ConfigError(Exception):
    """The configuration is not valid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


# --------------------------------------------------------------------------- public entry points


def load(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the YAML file at ``path``."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"config: file not found: {_show_path(p)}"]) from None
    except IsADirectoryError:
        raise ConfigError([f"config: {_show_path(p)} is a directory, not a file"]) from None
    except OSError as exc:
        raise ConfigError([f"config: cannot read {_show_path(p)}: {_reason(exc)}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"config: {_show_path(p)} is not UTF-8 text"]) from None
    return load_text(text, env=os.environ if env is None else env, base_dir=p.absolute().parent)


def load_text(text: str, *, env: Mapping[str, str] = os.environ,
              base_dir: str | os.PathLike[str] | None = None) -> Config:
    """Validate a configuration given as YAML text.

    Relative paths (store, TLS files, ``*_file`` secrets) are taken from ``base_dir``
    (the current directory when None).
    """
    ctx = _Ctx(env, Path.cwd() if base_dir is None else Path(base_dir))
    duplicates: list[tuple[int, str]] = []
    try:
        loader = _Loader(text, duplicates)
        try:
            document = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([f"config: {_yaml_problem(exc)}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"config: invalid YAML: {_one_line(str(exc))}"]) from None
    except RecursionError:
        raise ConfigError(["config: the YAML document is nested too deeply"]) from None
    except (ValueError, TypeError, ArithmeticError) as exc:  # e.g. a date such as 2026-02-30
        raise ConfigError([f"config: invalid YAML value: {_one_line(str(exc))}"]) from None
    for line, key in duplicates:
        ctx.add("config", f"line {line}: key {_show(key)} appears twice in the same mapping")
    try:
        document = ctx.interpolate(document, "", 0)
    except _TooComplex as exc:
        raise ConfigError([f"config: {exc}"]) from None
    cfg = _build(ctx, document)
    if ctx.problems or cfg is None:
        raise ConfigError(ctx.problems or ["config: invalid configuration"])
    return cfg


def redacted(cfg: Config) -> dict[str, Any]:
    """The configuration as plain JSON values, every secret shown as ``"***"`` (null if unset)."""

    def secret(s: Secret | None) -> str | None:
        return None if s is None else MASK

    def path(p: Path | None) -> str | None:
        return None if p is None else str(p)

    m, ha = cfg.mqtt, cfg.homeassistant
    return {
        "mqtt": {
            "url": m.url,
            "username": m.username,
            "password": secret(m.password),
            "client_id": m.client_id,
            "base_topic": m.base_topic,
            "protocol": m.protocol,
            "tls": {"ca_file": path(m.tls.ca_file), "cert_file": path(m.tls.cert_file),
                    "key_file": path(m.tls.key_file), "insecure": m.tls.insecure},
        },
        "homeassistant": {
            "discovery": ha.discovery,
            "discovery_prefix": ha.discovery_prefix,
            "status_topic": ha.status_topic,
            "statistics": None if ha.statistics is None else {
                "url": ha.statistics.url, "token": secret(ha.statistics.token)},
        },
        "store": {"path": str(cfg.store.path)},
        "log": {"level": cfg.log.level, "format": cfg.log.format},
        "commands": cfg.commands,
        "command_policy": {"max_payload": cfg.command_policy.max_payload,
                           "response_topics": list(cfg.command_policy.response_topics)},
        "poll_window": _window_text(cfg.poll_window),
        "accounts": [_redacted_account(a) for a in cfg.accounts],
    }


def secret_values(cfg: Config) -> tuple[str, ...]:
    """Every secret value of the configuration, revealed: for the log redaction filter."""
    secrets = [cfg.mqtt.password]
    if cfg.homeassistant.statistics is not None:
        secrets.append(cfg.homeassistant.statistics.token)
    for a in cfg.accounts:
        secrets += [a.token, a.client_secret]
    return tuple(dict.fromkeys(s.reveal() for s in secrets if s is not None))


def summary(cfg: Config) -> str:
    """A readable summary of the configuration (``check-config``), secrets hidden."""
    m, ha = cfg.mqtt, cfg.homeassistant
    auth = "no authentication"
    if m.username is not None:
        auth = f"user {m.username}" + (", password ***" if m.password is not None else "")
    tls = ""
    if m.use_tls:
        tls = ", TLS" + (" WITHOUT certificate verification" if m.tls.insecure else "")
        if m.tls.ca_file is not None:
            tls += f", CA {m.tls.ca_file}"
        if m.tls.cert_file is not None:
            tls += f", client certificate {m.tls.cert_file}"
    lines = [
        f"MQTT broker: {m.url} (MQTT {m.protocol}, client id {m.client_id}, {auth}{tls})",
        f"Base topic: {m.base_topic}",
        "Home Assistant discovery: "
        + (f"on (prefix {ha.discovery_prefix}, status topic {ha.status_topic})"
           if ha.discovery else "off"),
        "Home Assistant statistics: "
        + ("off" if ha.statistics is None else f"{ha.statistics.url} (token ***)"),
        f"Store: {cfg.store.path}",
        f"Log: {cfg.log.level}, {cfg.log.format}",
        f"Commands: {'on' if cfg.commands else 'off'}{_policy_text(cfg)}",
        f"Poll window: {_window_text(cfg.poll_window)} (Europe/Paris)",
        f"Accounts: {len(cfg.accounts)}",
    ]
    for a in cfg.accounts:
        creds = "token ***" if a.token is not None else ""
        if a.provider == "dataconnect":
            creds = f"client_id {a.client_id}, client_secret ***"
        state = "" if a.enabled else ", DISABLED"
        lines.append(f"  {a.name}: {a.provider} ({creds}; {a.base_url or 'public URL'}){state}")
        if a.budget is not None:
            lines.append("    budget: " + ", ".join(
                f"{k} {v}" for k, v in _budget_dict(a.budget).items() if v is not None))
        if a.auto_meters:
            lines.append("    meters: auto (every PDL the token covers), each: "
                         + _settings_text(a.meter_defaults))
        for meter in a.meters:
            off = "" if meter.enabled else ", DISABLED"
            lines.append(f"    {meter.pdl} {meter.name!r}: {_settings_text(meter)}{off}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- YAML loading


class _Loader(yaml.SafeLoader):
    """A SafeLoader that notes keys repeated within one mapping (PyYAML keeps the last)."""

    def __init__(self, text: str, duplicates: list[tuple[int, str]]) -> None:
        self.duplicates = duplicates
        super().__init__(text)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if key in seen:
                    self.duplicates.append((key_node.start_mark.line + 1, str(key)))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = " ".join(x for x in (exc.context, exc.problem) if x) or "syntax error"
    return f"invalid YAML{where}: {_one_line(what)}"


def _one_line(text: str) -> str:
    return " ".join(text.encode("ascii", "backslashreplace").decode("ascii").split())


# --------------------------------------------------------------------------- validation machinery


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_MISSING: Final = _Sentinel("MISSING")  # key absent
_BAD: Final = _Sentinel("BAD")  # a problem was already reported for this value


class _Env(str):
    """A string produced by ``${...}`` interpolation: may stand for an int or a bool."""

    __slots__ = ()


class _TooComplex(Exception):
    pass


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REF = re.compile(r"\$(\$)?\{([^}]*)(\})?")


def _join(path: str, key: object) -> str:
    if isinstance(key, str) and _IDENT.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(str(key))}]"


def _show(value: object) -> str:
    """A short, one-line rendering of a (non-secret) value for a problem message."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(text)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return _kind(value)


def _show_path(p: Path) -> str:
    return json.dumps(str(p))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _suggest(word: object, options: Collection[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    if not close and len(word) >= 2:
        close = [o for o in options if o.startswith(word.lower())][:1]
    return f' (did you mean "{close[0]}"?)' if close else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ValueError):
        return "invalid path"
    return type(exc).__name__


class _Ctx:
    def __init__(self, env: Mapping[str, str], base_dir: Path) -> None:
        self.env = env
        self.base_dir = base_dir
        self.problems: list[str] = []
        self.nodes = 0

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path or 'config'}: {message}")

    def file(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    # ${NAME} interpolation ---------------------------------------------------------------

    def interpolate(self, node: Any, path: str, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise _TooComplex("the YAML document is too large (aliases expanding too far?)")
        if depth > _MAX_DEPTH:
            raise _TooComplex("the YAML document is nested too deeply (a recursive alias?)")
        if isinstance(node, str):
            return self._interpolate_text(node, path)
        if isinstance(node, dict):
            return {k: self.interpolate(v, _join(path, k), depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [self.interpolate(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
        return node

    def _interpolate_text(self, text: str, path: str) -> Any:
        if "${" not in text:
            return text
        errors: list[str] = []

        def replace(m: re.Match[str]) -> str:
            if m.group(1):  # "$${" -> a literal "${"
                return m.group(0)[1:]
            name = m.group(2)
            if m.group(3) is None:
                errors.append('"${" without its closing "}"')
                return ""
            if not _IDENT.match(name):
                errors.append(f"{_show('${' + name + '}')} is not a valid variable reference"
                              " (${NAME}: letters, digits, underscore; $${ for a literal ${)")
                return ""
            if name not in self.env:
                errors.append(f"environment variable {name} is not set")
                return ""
            return self.env[name]

        result = _REF.sub(replace, text)
        for error in errors:
            self.add(path, error)
        return _BAD if errors else _Env(result)


class _Section:
    """One mapping of the document: reports unknown keys, reads typed values."""

    def __init__(self, ctx: _Ctx, raw: Any, path: str, allowed: Collection[str],
                 *, hint: Mapping[str, str] | None = None) -> None:
        self.ctx = ctx
        self.path = path
        self.data: dict[str, Any] = {}
        self.ok = True
        if raw is None or raw is _MISSING:
            return
        if raw is _BAD:
            self.ok = False
            return
        if not isinstance(raw, dict):
            ctx.add(path, f"expected a mapping, got {_kind(raw)}")
            self.ok = False
            return
        for key, value in raw.items():
            if isinstance(key, str) and key in allowed:
                self.data[key] = value
            elif hint and isinstance(key, str) and key in hint:
                ctx.add(_join(path, key), f"unknown key here ({hint[key]})")
            else:
                ctx.add(_join(path, key), "unknown key" + _suggest(key, allowed))

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def get(self, key: str) -> Any:
        return self.data.get(key, _MISSING)

    def string(self, key: str, default: str | None, *, required: bool = False,
               nullable: bool = False, what: str = "") -> str | None:
        v = self.get(key)
        if v is _MISSING:
            if required:
                self.ctx.add(self.at(key), f"required{what}")
            return default
        if v is _BAD:
            return default
        if v is None:
            if nullable:
                return None
            self.ctx.add(self.at(key), "expected a string, got null" if not required
                         else f"required{what}")
            return default
        if not isinstance(v, str):
            hint = " (write it in quotes)" if isinstance(v, int | float) else ""
            self.ctx.add(self.at(key), f"expected a string, got {_kind(v)}{hint}")
            return default
        if not v.strip():
            self.ctx.add(self.at(key), "must not be empty")
            return default
        if any(ord(c) < 32 for c in v):
            self.ctx.add(self.at(key), "must not contain control characters (newline, tab...)")
            return default
        return str(v)

    def boolean(self, key: str, default: bool) -> bool:
        v = self.get(key)
        if v is _MISSING or v is _BAD:
            return default
        if isinstance(v, bool):
            return v
        if isinstance(v, _Env) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        self.ctx.add(self.at(key), f"expected true or false, got {_show(v)}")
        return default

    def integer(self, key: str, default: int | None, *, low: int | None = None,
                high: int | None = None, nullable: bool = False, unit: str = "") -> int | None:
        v = self.get(key)
        if v is _MISSING or v is _BAD:
            return default
        if v is None and nullable:
            return None
        if isinstance(v, _Env) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.ctx.add(self.at(key), f"expected an integer, got {_show(v)}")
            return default
        if low is not None and v < low:
            if high is None:
                self.ctx.add(self.at(key), f"must be at least {low}{unit}, got {_show(v)}")
            else:
                self.ctx.add(self.at(key), f"must be between {low} and {high}, got {_show(v)}")
            return default
        if high is not None and v > high:
            self.ctx.add(self.at(key), f"must be between {low} and {high}, got {_show(v)}")
            return default
        return v

    def choice(self, key: str, default: str | None, options: tuple[str, ...], *,
               required: bool = False) -> str | None:
        v = self.get(key)
        if v is _MISSING:
            if required:
                self.ctx.add(self.at(key), "required: one of " + ", ".join(options))
            return default
        if v is _BAD:
            return default
        if isinstance(v, str) and v.strip().lower() in options:
            return v.strip().lower()
        self.ctx.add(self.at(key), f"expected one of {', '.join(options)}, got {_show(v)}"
                     + _suggest(v, options))
        return default

    def secret(self, key: str) -> Secret | _Sentinel | None:
        """``key`` or ``key_file``: a Secret, None when neither is set, _BAD on a problem."""
        file_key = f"{key}_file"
        value, file_value = self.get(key), self.get(file_key)
        if value not in (_MISSING, None) and file_value not in (_MISSING, None):
            self.ctx.add(self.at(file_key), f"both {key} and {file_key} are set; keep one")
            return _BAD
        if file_value not in (_MISSING, None):
            if isinstance(file_value, _Sentinel):
                return _BAD
            if not isinstance(file_value, str) or not file_value.strip():
                self.ctx.add(self.at(file_key),
                             f"expected the path of a file (a string), got {_kind(file_value)}")
                return _BAD
            p = self.ctx.file(file_value)
            try:
                text = p.read_text(encoding="utf-8")
            except (OSError, ValueError) as exc:
                self.ctx.add(self.at(file_key), f"cannot read {_show_path(p)}: {_reason(exc)}")
                return _BAD
            text = text.rstrip("\r\n")
            if not text.strip():
                self.ctx.add(self.at(file_key), f"{_show_path(p)} is empty")
                return _BAD
            return Secret(text)
        if value is _MISSING or value is None:
            return None
        if isinstance(value, _Sentinel):
            return _BAD
        if not isinstance(value, str):
            hint = " (write it in quotes)" if isinstance(value, int | float) else ""
            self.ctx.add(self.at(key), f"expected a string, got {_kind(value)}{hint}")
            return _BAD
        if not value.strip():
            self.ctx.add(self.at(key), "must not be empty")
            return _BAD
        return Secret(str(value))

    def where(self, key: str) -> str:
        """Path of ``key`` or of ``key_file``, whichever is present."""
        return self.at(key) if key in self.data or f"{key}_file" not in self.data \
            else self.at(f"{key}_file")


# --------------------------------------------------------------------------- the sections

_TOP_KEYS: Final = ("mqtt", "homeassistant", "store", "log", "commands", "poll_window",
                    "accounts")
_MQTT_KEYS: Final = ("url", "username", "password", "password_file", "client_id",
                     "base_topic", "protocol", "tls")
_TLS_KEYS: Final = ("ca_file", "cert_file", "key_file", "insecure")
_HA_KEYS: Final = ("discovery", "discovery_prefix", "status_topic", "statistics")
_STATS_KEYS: Final = ("url", "token", "token_file")
_ACCOUNT_KEYS: Final = ("name", "provider", "token", "token_file", "client_id",
                        "client_id_file", "client_secret", "client_secret_file", "base_url",
                        "enabled", "meters", "meter_defaults", "budget", "request_timeout")
_SETTING_KEYS: Final = ("steps", "consumption", "production", "max_power", "refresh",
                         "backfill_days")
_METER_KEYS: Final = ("pdl", "name", "enabled", *_SETTING_KEYS)
_BUDGET_KEYS: Final = ("per_second", "per_hour", "per_12h", "per_day")
_ACCOUNT_HINTS: Final = {k: "meter settings go under meters[] or meter_defaults"
                         for k in ("pdl", *_SETTING_KEYS)}
_HOMIDOM_STEPS: Final = {"mois": "month", "jour": "day", "heure": "hour"}


def _build(ctx: _Ctx, document: Any) -> Config | None:
    if document is _BAD:
        return None
    if document is not None and not isinstance(document, dict):
        ctx.add("config", "expected a mapping at the top level (mqtt:, accounts: ...), "
                f"got {_kind(document)}")
        return None
    top = _Section(ctx, document, "", _TOP_KEYS)
    mqtt = _mqtt(ctx, top.get("mqtt"))
    homeassistant = _homeassistant(ctx, top.get("homeassistant"))
    store = _Section(ctx, top.get("store"), "store", ("path",))
    store_path = store.string("path", "linky2mqtt.db") or "linky2mqtt.db"
    if not mqtt.client_id:  # not configured: one per store
        mqtt = replace(mqtt, client_id=default_client_id(ctx.file(store_path)))
    log = _Section(ctx, top.get("log"), "log", ("level", "format"))
    level = log.choice("level", "info", LOG_LEVELS)
    fmt = log.choice("format", "text", LOG_FORMATS)
    commands, policy = _commands(ctx, top, mqtt, homeassistant)
    window = _poll_window(top)
    accounts = _accounts(ctx, top)
    return Config(
        mqtt=mqtt,
        homeassistant=homeassistant,
        store=StoreConfig(path=ctx.file(store_path)),
        log=LogConfig(level=cast(LogLevel, level), format=cast(LogFormat, fmt)),
        commands=commands,
        poll_window=window,
        accounts=accounts,
        command_policy=policy,
    )


_COMMANDS_KEYS: Final = ("enabled", "max_payload", "response_topics")


def _commands(ctx: _Ctx, top: _Section, mqtt: MqttConfig,
              ha: HomeAssistantConfig) -> tuple[bool, CommandPolicy]:
    """``commands: true|false``, or a mapping ``{enabled, max_payload, response_topics}``."""
    raw = top.get("commands")
    if not isinstance(raw, dict):
        if raw not in (_MISSING, _BAD) and not isinstance(raw, bool) and not (
                isinstance(raw, _Env) and raw.strip().lower() in ("true", "false")):
            ctx.add("commands", "expected true, false or a mapping (enabled, max_payload, "
                    f"response_topics), got {_show(raw)}")
            return True, CommandPolicy()
        return top.boolean("commands", True), CommandPolicy()
    sec = _Section(ctx, raw, "commands", _COMMANDS_KEYS)
    enabled = sec.boolean("enabled", True)
    max_payload = sec.integer("max_payload", DEFAULT_MAX_PAYLOAD, low=256, high=1024 * 1024)
    prefixes: list[str] = []
    value = sec.get("response_topics")
    if value not in (_MISSING, _BAD, None):
        if not isinstance(value, list):
            ctx.add(sec.at("response_topics"),
                    f"expected a list of topic prefixes, got {_kind(value)}")
        else:
            for i, item in enumerate(value):
                where = f"{sec.at('response_topics')}[{i}]"
                problem = _prefix_problem(item, mqtt.base_topic, ha)
                if problem is not None:
                    ctx.add(where, problem)
                else:
                    prefixes.append(str(item).rstrip("/"))
    return enabled, CommandPolicy(max_payload=max_payload or DEFAULT_MAX_PAYLOAD,
                                  response_topics=tuple(prefixes))


def _prefix_problem(item: object, base: str, ha: HomeAssistantConfig) -> str | None:
    """Why ``item`` cannot be an allowed response topic prefix (None: it can)."""
    if item is _BAD:
        return None
    if not isinstance(item, str) or not item.strip("/ "):
        return f"expected a topic prefix such as \"replies/nodered\", got {_show(item)}"
    if any(c in item for c in "+#\0") or any(ord(c) < 32 for c in item):
        return f"must not contain wildcards (+, #) or control characters, got {_show(item)}"
    if item.startswith("$"):
        return f'must not start with "$" (reserved for the broker), got {_show(item)}'
    prefix = item.rstrip("/")

    def inside(topic: str, area: str) -> bool:
        return topic == area or topic.startswith(area + "/")

    if inside(prefix, base) and not inside(prefix, f"{base}/bridge/response"):
        return (f"{_show(item)} is inside the base topic {base}; answers never go there "
                f"(only to {base}/bridge/response/<command>)")
    if inside(prefix, ha.discovery_prefix) or prefix == ha.status_topic:
        return f"{_show(item)} is a Home Assistant topic; answers never go there"
    return None


def _mqtt(ctx: _Ctx, raw: Any) -> MqttConfig:
    sec = _Section(ctx, raw, "mqtt", _MQTT_KEYS)
    url = sec.string("url", DEFAULT_MQTT_URL) or DEFAULT_MQTT_URL
    scheme, host, port, normalised = "mqtt", "localhost", 1883, DEFAULT_MQTT_URL
    parts = _parse_url(ctx, sec.at("url"), url, ("mqtt", "mqtts"), paths=False)
    if parts is not None:
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or DEFAULT_PORTS[scheme]
        shown = f"[{host}]" if ":" in host else host
        normalised = f"{scheme}://{shown}:{port}"
    use_tls = scheme == "mqtts"
    username = sec.string("username", None, nullable=True)
    password = sec.secret("password")
    if isinstance(password, Secret) and username is None and sec.get("username") is not _BAD:
        ctx.add(sec.where("password"), "set without mqtt.username")
    client_id = sec.string("client_id", "") or ""  # "": derived from the store's path
    base_topic = _topic(sec, "base_topic", "linky2mqtt")
    protocol = _protocol(sec)
    tls = _tls(ctx, sec.get("tls"), use_tls)
    return MqttConfig(url=normalised, host=host, port=port, use_tls=use_tls, username=username,
                      password=password if isinstance(password, Secret) else None,
                      client_id=client_id, base_topic=base_topic,
                      protocol=cast(MqttProtocol, protocol), tls=tls)


def _protocol(sec: _Section) -> str:
    v = sec.get("protocol")
    if v is _MISSING or v is _BAD:
        return "5"
    if isinstance(v, int) and not isinstance(v, bool) and v == 5:
        return "5"
    if isinstance(v, str) and v.strip() in PROTOCOLS:
        return v.strip()
    sec.ctx.add(sec.at("protocol"), f"expected 5 or 3.1.1, got {_show(v)}")
    return "5"


def _tls(ctx: _Ctx, raw: Any, use_tls: bool) -> TlsConfig:
    sec = _Section(ctx, raw, "mqtt.tls", _TLS_KEYS)
    files: dict[str, Path | None] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        value = sec.string(key, None, nullable=True)
        files[key] = None
        if value is None:
            continue
        p = ctx.file(value)
        try:
            exists = p.is_file()
        except (OSError, ValueError):
            exists = False
        if not exists:
            ctx.add(sec.at(key), f"file not found: {_show_path(p)}")
        if not use_tls:
            ctx.add(sec.at(key), "set, but mqtt.url is mqtt:// (plain TCP); use mqtts:// for TLS")
        files[key] = p
    insecure = sec.boolean("insecure", False)
    if insecure and not use_tls:
        ctx.add(sec.at("insecure"), "set, but mqtt.url is mqtt:// (plain TCP); "
                "use mqtts:// for TLS")
    if files["key_file"] is not None and files["cert_file"] is None \
            and sec.get("cert_file") is not _BAD:
        ctx.add(sec.at("key_file"), "set without mqtt.tls.cert_file")
    return TlsConfig(ca_file=files["ca_file"], cert_file=files["cert_file"],
                     key_file=files["key_file"], insecure=insecure)


def _homeassistant(ctx: _Ctx, raw: Any) -> HomeAssistantConfig:
    sec = _Section(ctx, raw, "homeassistant", _HA_KEYS)
    discovery = sec.boolean("discovery", True)
    prefix = _topic(sec, "discovery_prefix", "homeassistant")
    status = _topic(sec, "status_topic", "homeassistant/status")
    statistics: StatisticsConfig | None = None
    raw_stats = sec.get("statistics")
    if raw_stats not in (_MISSING, None, _BAD):
        stats = _Section(ctx, raw_stats, sec.at("statistics"), _STATS_KEYS)
        if stats.ok:
            url = stats.string("url", None, required=True,
                               what=": the address of Home Assistant, e.g. "
                                    "http://homeassistant.local:8123")
            if url is not None:
                parts = _parse_url(ctx, stats.at("url"), url, ("http", "https", "ws", "wss"),
                                   paths=True)
                if parts is not None:
                    url = url.rstrip("/")
            token = stats.secret("token")
            if token is None:
                ctx.add(stats.at("token"),
                        "required: a Home Assistant long-lived access token (or token_file)")
            if isinstance(token, Secret) and url is not None:
                statistics = StatisticsConfig(url=url, token=token)
    return HomeAssistantConfig(discovery=discovery, discovery_prefix=prefix,
                               status_topic=status, statistics=statistics)


def _topic(sec: _Section, key: str, default: str) -> str:
    value = sec.string(key, default)
    if value is None:
        return default
    problem = None
    if "+" in value or "#" in value:
        problem = "must not contain the MQTT wildcards + or #"
    elif value.startswith("/") or value.endswith("/"):
        problem = 'must not start or end with "/"'
    elif "//" in value:
        problem = 'must not contain an empty level ("//")'
    elif value.startswith("$"):
        problem = 'must not start with "$" (reserved for the broker)'
    elif value != value.strip():
        problem = "must not start or end with a space"
    if problem is not None:
        sec.ctx.add(sec.at(key), f"{problem}, got {_show(value)}")
        return default
    return value


def _parse_url(ctx: _Ctx, path: str, url: str, schemes: tuple[str, ...], *,
               paths: bool) -> SplitResult | None:
    """Check a URL (its text is not echoed: it might carry credentials)."""
    wanted = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        ctx.add(path, f"not a valid URL (expected {wanted}host[:port], port 1-65535)")
        return None
    scheme = parts.scheme.lower()
    problem = None
    if scheme not in schemes:
        problem = f"expected a URL starting with {wanted}, got " + (
            f"{_show(scheme + '://')}" if scheme and "://" in url else "no scheme")
    elif not parts.hostname:
        problem = "no host in the URL"
    elif port == 0:
        problem = "port must be between 1 and 65535"
    elif parts.username is not None or parts.password is not None:
        problem = "credentials in the URL are not allowed; use the username/password/token keys"
    elif parts.query or parts.fragment:
        problem = "the URL must not have a query (?...) or fragment (#...)"
    elif not paths and parts.path not in ("", "/"):
        problem = f"the URL must not have a path, got {_show(parts.path)}"
    if problem is not None:
        ctx.add(path, problem)
        return None
    return parts


def _policy_text(cfg: Config) -> str:
    p = cfg.command_policy
    if not cfg.commands or p == CommandPolicy():
        return ""
    parts = []
    if p.max_payload != DEFAULT_MAX_PAYLOAD:
        parts.append(f"requests up to {p.max_payload} bytes")
    if p.response_topics:
        parts.append("MQTT 5 answers only under " + ", ".join(p.response_topics))
    return f" ({'; '.join(parts)})"


def _poll_window(top: _Section) -> tuple[time, time]:
    default = (time(8, 0), time(10, 0))
    value = top.string("poll_window", "08:00-10:00")
    if value is None:
        return default
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if m is None:
        top.ctx.add("poll_window", f'expected "HH:MM-HH:MM" (Europe/Paris), got {_show(value)}')
        return default
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        top.ctx.add("poll_window", f"not a valid time of day in {_show(value)} "
                    "(hours 00-23, minutes 00-59)")
        return default
    start, end = time(h1, m1), time(h2, m2)
    if start >= end:
        top.ctx.add("poll_window", f"the start ({start:%H:%M}) must be before the end "
                    f"({end:%H:%M}), got {_show(value)}")
        return default
    return start, end


def _accounts(ctx: _Ctx, top: _Section) -> tuple[AccountConfig, ...]:
    raw = top.get("accounts")
    if raw is _MISSING or raw is None:
        ctx.add("accounts", "required: a list of accounts, each with a provider, "
                "its credentials and its meters")
        return ()
    if raw is _BAD:
        return ()
    if not isinstance(raw, list):
        ctx.add("accounts", f"expected a list of accounts, got {_kind(raw)}")
        return ()
    if not raw:
        ctx.add("accounts", "must not be empty: configure at least one account")
        return ()
    accounts: list[AccountConfig] = []
    names: dict[str, str] = {}
    pdls: dict[str, str] = {}
    for i, item in enumerate(raw):
        account = _account(ctx, item, f"accounts[{i}]", pdls)
        if account is None:
            continue
        if account.name:
            if account.name in names:
                ctx.add(f"accounts[{i}].name", f"duplicate account name {_show(account.name)}"
                        f", already used by {names[account.name]}")
            else:
                names[account.name] = f"accounts[{i}]"
        accounts.append(account)
    return tuple(accounts)


def _account(ctx: _Ctx, raw: Any, path: str, pdls: dict[str, str]) -> AccountConfig | None:
    sec = _Section(ctx, raw, path, _ACCOUNT_KEYS, hint=_ACCOUNT_HINTS)
    if not sec.ok:
        return None
    if raw is None:
        ctx.add(path, "expected a mapping (name, provider, credentials, meters), got null")
        return None
    name = sec.string("name", "", required=True) or ""
    provider = sec.choice("provider", None, PROVIDERS, required=True)
    token = sec.secret("token")
    client_id = sec.secret("client_id")
    client_secret = sec.secret("client_secret")
    if provider in TOKEN_PROVIDERS:
        if token is None:
            ctx.add(sec.at("token"), f"required for provider {provider} (or token_file)")
        for key, value in (("client_id", client_id), ("client_secret", client_secret)):
            if value is not None:
                ctx.add(sec.where(key),
                        f"not used by provider {provider} (it takes a token)")
    elif provider == "dataconnect":
        for key, value in (("client_id", client_id), ("client_secret", client_secret)):
            if value is None:
                ctx.add(sec.at(key), f"required for provider dataconnect (or {key}_file)")
        if token is not None:
            ctx.add(sec.where("token"),
                    "not used by provider dataconnect (it takes client_id and client_secret)")
    base_url = sec.string("base_url", None, nullable=True)
    if base_url is not None:
        parts = _parse_url(ctx, sec.at("base_url"), base_url, ("http", "https"), paths=True)
        base_url = base_url.strip().rstrip("/") if parts is not None else None
    enabled = sec.boolean("enabled", True)
    budget = _budget(ctx, sec.get("budget"), sec.at("budget"))
    low, high = REQUEST_TIMEOUT_RANGE
    request_timeout = sec.integer("request_timeout", DEFAULT_REQUEST_TIMEOUT, low=low,
                                  high=high, unit=" seconds")
    defaults = _settings(_Section(ctx, sec.get("meter_defaults"), sec.at("meter_defaults"),
                                  _SETTING_KEYS), MeterDefaults())
    meters: list[MeterConfig] = []
    auto = False
    raw_meters = sec.get("meters")
    if raw_meters is _MISSING or raw_meters is None:
        ctx.add(sec.at("meters"), "required: a list of meters (each with its pdl), or auto "
                "(conso only)")
    elif isinstance(raw_meters, str) and raw_meters.strip().lower() == "auto":
        auto = True
        if provider is not None and provider not in AUTO_METER_PROVIDERS:
            ctx.add(sec.at("meters"), f"auto is only possible with provider conso (its token "
                    f"lists the PDLs it covers); list the meters of this {provider} account")
    elif isinstance(raw_meters, list):
        if not raw_meters:
            ctx.add(sec.at("meters"), "must not be empty (list the meters, or use "
                    "enabled: false to turn the account off)")
        for j, item in enumerate(raw_meters):
            meter = _meter(ctx, item, f"{sec.at('meters')}[{j}]", defaults, pdls)
            if meter is not None:
                meters.append(meter)
    elif raw_meters is not _BAD:
        ctx.add(sec.at("meters"), f"expected a list of meters or auto, got {_show(raw_meters)}")
    if auto and not (defaults.consumption or defaults.production or defaults.max_power):
        ctx.add(sec.at("meter_defaults"), "nothing to fetch: consumption, production and "
                "max_power are all false for the meters: auto meters; set at least one of "
                "them to true")
    return AccountConfig(
        name=name,
        provider=cast(Provider, provider or "conso"),
        token=token if isinstance(token, Secret) else None,
        client_id=client_id.reveal() if isinstance(client_id, Secret) else None,
        client_secret=client_secret if isinstance(client_secret, Secret) else None,
        base_url=base_url,
        enabled=enabled,
        meters=tuple(meters),
        auto_meters=auto,
        budget=budget,
        meter_defaults=defaults,
        request_timeout=float(request_timeout or DEFAULT_REQUEST_TIMEOUT),
    )


def _budget(ctx: _Ctx, raw: Any, path: str) -> BudgetOverride | None:
    sec = _Section(ctx, raw, path, _BUDGET_KEYS)
    values = {k: sec.integer(k, None, low=1, nullable=True) for k in _BUDGET_KEYS}
    if all(v is None for v in values.values()):
        return None
    return BudgetOverride(**values)


def _settings(sec: _Section, base: MeterDefaults) -> MeterDefaults:
    steps = _steps(sec, base.steps)
    consumption = sec.boolean("consumption", base.consumption)
    production = sec.boolean("production", base.production)
    max_power = sec.boolean("max_power", base.max_power)
    refresh = sec.integer("refresh", base.refresh, low=MIN_REFRESH,
                          unit=" seconds (one poll an hour at most: Enedis data comes "
                               "once a day and quotas are small)")
    backfill = _Section(sec.ctx, sec.get("backfill_days"), sec.at("backfill_days"),
                        ("day", "hour"))
    day = backfill.integer("day", base.backfill_day, low=0, high=MAX_BACKFILL_DAY)
    hour = backfill.integer("hour", base.backfill_hour, low=0, high=MAX_BACKFILL_HOUR)
    return MeterDefaults(steps=steps, consumption=consumption, production=production,
                         max_power=max_power,
                         refresh=refresh if refresh is not None else base.refresh,
                         backfill_day=day if day is not None else base.backfill_day,
                         backfill_hour=hour if hour is not None else base.backfill_hour)


def _steps(sec: _Section, default: frozenset[Step]) -> frozenset[Step]:
    v = sec.get("steps")
    if v is _MISSING or v is _BAD:
        return default
    if not isinstance(v, list):
        sec.ctx.add(sec.at("steps"), f"expected a list such as [day, month, hour], got {_show(v)}")
        return default
    if not v:
        sec.ctx.add(sec.at("steps"), "must not be empty: list some of day, month, hour")
        return default
    steps: set[Step] = set()
    ok = True
    for i, item in enumerate(v):
        word = item.strip().lower() if isinstance(item, str) else None
        if word in ("day", "month", "hour"):
            steps.add(Step(word))
            continue
        ok = False
        if item is _BAD:
            continue
        hint = ""
        if word in _HOMIDOM_STEPS:
            hint = f' (HoMIDoM\'s "{item}" is {_HOMIDOM_STEPS[word]})'
        sec.ctx.add(f"{sec.at('steps')}[{i}]",
                    f"expected day, month or hour, got {_show(item)}{hint}")
    return frozenset(steps) if ok else default


def _meter(ctx: _Ctx, raw: Any, path: str, defaults: MeterDefaults,
           pdls: dict[str, str]) -> MeterConfig | None:
    if raw is None:
        ctx.add(path, "expected a mapping with at least a pdl, got null")
        return None
    sec = _Section(ctx, raw, path, _METER_KEYS)
    if not sec.ok:
        return None
    pdl = _pdl(sec)
    if pdl is not None:
        if pdl in pdls:
            ctx.add(sec.at("pdl"), f"duplicate PDL {_show(pdl)}, already at {pdls[pdl]}")
        else:
            pdls[pdl] = sec.at("pdl")
    name = sec.string("name", pdl or "") or (pdl or "")
    settings = _settings(sec, defaults)
    enabled = sec.boolean("enabled", True)
    if not (settings.consumption or settings.production or settings.max_power):
        ctx.add(path, "nothing to fetch: consumption, production and max_power are all "
                "false; set at least one of them to true")
    return _meter_config(pdl or "", name, settings, enabled)


def _pdl(sec: _Section) -> str | None:
    v = sec.get("pdl")
    if v is _MISSING or v is None:
        sec.ctx.add(sec.at("pdl"), "required: the 14-digit delivery point number (PDL/PRM)")
        return None
    if v is _BAD:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        text = str(v)
        if PDL_RE.match(text):
            return text
        sec.ctx.add(sec.at("pdl"), f"expected 14 digits, got {_show(v)} (write the PDL in "
                    "quotes: an unquoted number loses its leading zeros)")
        return None
    if isinstance(v, str):
        if PDL_RE.match(v) and v.isascii():
            return str(v)
        sec.ctx.add(sec.at("pdl"), f"expected 14 digits, got {_show(v)}")
        return None
    sec.ctx.add(sec.at("pdl"), f"expected 14 digits, got {_kind(v)}")
    return None


# --------------------------------------------------------------------------- rendering helpers


def _window_text(window: tuple[time, time]) -> str:
    return f"{window[0]:%H:%M}-{window[1]:%H:%M}"


def _steps_list(steps: frozenset[Step]) -> list[str]:
    return [s.value for s in STEP_ORDER if s in steps]


def _budget_dict(b: BudgetOverride) -> dict[str, int | None]:
    return {"per_second": b.per_second, "per_hour": b.per_hour, "per_12h": b.per_12h,
            "per_day": b.per_day}


def _settings_dict(s: MeterDefaults | MeterConfig) -> dict[str, Any]:
    return {"steps": _steps_list(s.steps), "consumption": s.consumption,
            "production": s.production, "max_power": s.max_power,
            "refresh": s.refresh,
            "backfill_days": {"day": s.backfill_day, "hour": s.backfill_hour}}


def _settings_text(s: MeterDefaults | MeterConfig) -> str:
    extras = [x for x, on in (("production", s.production), ("max power", s.max_power)) if on]
    return (", ".join(_steps_list(s.steps)) + (" + " + " + ".join(extras) if extras else "")
            + ("" if s.consumption else " (no consumption)")
            + f"; refresh {s.refresh} s; backfill {s.backfill_day} days daily, "
            f"{s.backfill_hour} days hourly")


def _redacted_account(a: AccountConfig) -> dict[str, Any]:
    meters: Any = "auto" if a.auto_meters else [
        {"pdl": m.pdl, "name": m.name, **_settings_dict(m), "enabled": m.enabled}
        for m in a.meters]
    return {
        "name": a.name,
        "provider": a.provider,
        "token": None if a.token is None else MASK,
        "client_id": a.client_id,
        "client_secret": None if a.client_secret is None else MASK,
        "base_url": a.base_url,
        "enabled": a.enabled,
        "budget": None if a.budget is None else _budget_dict(a.budget),
        "request_timeout": a.request_timeout,
        "meter_defaults": _settings_dict(a.meter_defaults),
        "meters": meters,
    }
