"""The configuration: typed, frozen, validated as a whole (SPEC §3).

``load(path)`` / ``load_text(text)`` read the YAML file, replace ``${NAME}`` by environment
variables, read ``<key>_file`` secrets, check everything and return a :class:`Config`.
Every problem found is collected; if there is at least one, :class:`ConfigError` is raised
with all of them, one ``"dotted.path[index].key: message"`` each (``"config: ..."`` for the
document as a whole). Messages never contain a secret value.

**Every key is declared once**, on the field of the dataclass that holds it
(``field = key(default, doc, reader, ...)``, a :class:`Key` in the field's metadata). The
declarations, in field order, drive the loader (which keys a section accepts, in which
order they are read and checked, their defaults and bounds), ``redacted(cfg)`` (the
configuration as plain JSON with secrets masked, for ``bridge/info`` and ``check-config``),
``secret_values(cfg)`` (the secret values, for the log redactor), the credentials and
budget parts of ``summary(cfg)`` (the human summary ``check-config`` prints) and
:func:`reference_table` (the "Reference" table of docs/configuration.md;
``python -m linky2mqtt.config --reference`` prints it). A meter's settings are declared
once, on :class:`MeterConfig`; those marked ``inherited`` may also be given in an
account's ``meter_defaults`` (itself a :class:`MeterConfig` without a PDL) and each meter
starts from them. Cross-key rules (credentials per provider, TLS needs ``mqtts://``,
nothing to fetch...) are the checks of the section builders below.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from datetime import time
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import SplitResult, urlsplit

import yaml

from linky2mqtt.enedis import providers as enedis_providers
from linky2mqtt.enedis.budget import above_default
from linky2mqtt.enedis.providers import REGISTRY
from linky2mqtt.errors import Linky2MqttError
from linky2mqtt.model import PDL_RE, Step
from linky2mqtt.secret import MASK, Secret
from linky2mqtt.tariffs import (
    OffpeakError,
    OffpeakSchedule,
    Tariff,
    TariffError,
    parse_offpeak_config,
    parse_tariff,
)

__all__ = [
    "AccountConfig",
    "BudgetOverride",
    "CommandPolicy",
    "Config",
    "ConfigError",
    "HomeAssistantConfig",
    "Key",
    "LogConfig",
    "MeterConfig",
    "MqttConfig",
    "StatisticsConfig",
    "StoreConfig",
    "TempoConfig",
    "TlsConfig",
    "declared",
    "load",
    "load_text",
    "redacted",
    "reference_table",
    "secret_values",
    "summary",
]

MqttProtocol = Literal["5", "3.1.1"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]

# Provider knowledge lives in linky2mqtt.enedis: the valid names and their credentials.
PROVIDERS: Final = enedis_providers.PROVIDERS
TOKEN_PROVIDERS: Final = frozenset(n for n, p in REGISTRY.items() if p.takes_token)
AUTO_METER_PROVIDERS: Final = frozenset(n for n, p in REGISTRY.items() if p.lists_pdls)
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
DEFAULT_REQUEST_TIMEOUT: Final = 60  # seconds for one whole upstream exchange
REQUEST_TIMEOUT_RANGE: Final = (5, 600)
DEFAULT_MAX_PAYLOAD: Final = 64 * 1024
MAX_PAYLOAD_RANGE: Final = (256, 1024 * 1024)

_MAX_DEPTH: Final = 60
_MAX_NODES: Final = 200_000


# --------------------------------------------------------------------------- declarations

# Reads one key of a section: (section, its declaration, the values read so far in this
# section) -> the value. Problems go to the section's context; a reader may also fill
# fields that have no key of their own (the broker's host and port from its URL).
Reader = Callable[["_Section", "Key", dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key: what the loader, the redacted copy, the summary and the
    reference table know about it."""

    read: Reader
    type_text: str  # the type as the reference table shows it
    doc: str  # one line for the reference table ("" : no row of its own)
    default: Any = None  # when the key is absent (required keys: None)
    name: str = ""  # YAML key, "" : the field's name; "a.b": key b of the mapping a
    attr: str = ""  # the dataclass field (set by declared())
    required: bool = False
    secret: bool = False  # masked in every rendering, listed by secret_values()
    file: bool = False  # also readable from <name>_file
    inherited: bool = False  # a meter setting an account's meter_defaults may give
    section: type | None = None  # the mapping (or list item) this key holds
    many: bool = False  # a list of `section`
    children: bool = True  # the reference table lists the section's keys
    default_doc: str = ""  # the reference table's default ("" : derived from default)
    show: Callable[[Any, Any], Any] | None = None  # (value, owner) -> its JSON form
    then: Callable[[_Section, dict[str, Any]], None] | None = None  # a cross-key check run
    # right after this key is read
    rows: tuple[tuple[str, str, str, str], ...] = ()  # extra reference rows (sub-keys a
    # reader handles itself): (name, type, default, doc)


def key(read: tuple[Reader, str], doc: str, default: Any = MISSING, *,
        factory: Callable[[], Any] | None = None, **options: Any) -> Any:
    """A dataclass field carrying its :class:`Key` (``read``: a reader and its type text,
    from :func:`_text`, :func:`_flag`, :func:`_integer`...). No default: a required key
    (and a field without default)."""
    reader, type_text = read
    if default is MISSING and factory is None:
        options.setdefault("required", True)
        return field(metadata={"key": Key(reader, type_text, doc, None, **options)})
    k = Key(reader, type_text, doc, factory() if factory is not None else default, **options)
    if factory is not None:
        return field(default_factory=factory, metadata={"key": k})
    return field(default=default, metadata={"key": k})


def plain(default: Any = MISSING, *, factory: Callable[[], Any] | None = None) -> Any:
    """A field that is not a key of the file (derived by a reader: the broker's port)."""
    if factory is not None:
        return field(default_factory=factory)
    return field(default=default)


_DECLARED: dict[type, tuple[Key, ...]] = {}


def declared(cls: type) -> tuple[Key, ...]:
    """The keys declared on the fields of ``cls``, in the order they are read and shown
    (none for a class that is not a dataclass)."""
    if cls not in _DECLARED:
        out: list[Key] = []
        for f in fields(cls) if is_dataclass(cls) else ():
            k = cast("Key | None", f.metadata.get("key"))
            if k is not None:
                out.append(replace(k, attr=f.name, name=k.name or f.name))
        _DECLARED[cls] = tuple(out)
    return _DECLARED[cls]


def _allowed(keys: Collection[Key]) -> tuple[str, ...]:
    names: list[str] = []
    for k in keys:
        head = k.name.split(".")[0]
        if head not in names:
            names.append(head)
        if k.file:
            names.append(f"{k.name}_file")
    return tuple(names)


# Readers: each returns (reader, type text for the reference table).

def _text(*, nullable: bool = False, what: str = "") -> tuple[Reader, str]:
    def read(sec: _Section, k: Key, _: dict[str, Any]) -> Any:
        return sec.string(k.name, k.default, required=k.required, nullable=nullable, what=what)
    return read, "string"


def _flag() -> tuple[Reader, str]:
    def read(sec: _Section, k: Key, _: dict[str, Any]) -> Any:
        return sec.boolean(k.name, k.default)
    return read, "bool"


def _integer(low: int, high: int | None = None, *, unit: str = "", seconds: bool = False,
             nullable: bool = False) -> tuple[Reader, str]:
    def read(sec: _Section, k: Key, _: dict[str, Any]) -> Any:
        value = sec.integer(k.name, k.default, low=low, high=high, nullable=nullable,
                            unit=unit)
        return float(value) if seconds and value is not None else value
    bounds = (f"{low}\N{EN DASH}{high}" if high is not None
              else f"\N{GREATER-THAN OR EQUAL TO} {low}")
    return read, f"int {bounds}" + (" (seconds)" if seconds or unit.startswith(" seconds")
                                    else "")


def _choice(options: tuple[str, ...]) -> tuple[Reader, str]:
    def read(sec: _Section, k: Key, _: dict[str, Any]) -> Any:
        return sec.choice(k.name, k.default, options, required=k.required)
    return read, "/".join(f"`{o}`" for o in options)


def _secret(*, required: str = "", plain: bool = False) -> tuple[Reader, str]:
    """``key`` or ``key_file``: a Secret, None when neither is set, _BAD on a problem;
    ``required``: what the message asks for when neither is set; ``plain``: not a secret
    (a client id), only readable from a file too (revealed once its section is read)."""
    def read(sec: _Section, k: Key, _: dict[str, Any]) -> Any:
        value = sec.secret(k.name)
        if value is None and required:
            sec.ctx.add(sec.at(k.name), f"required: {required} (or {k.name}_file)")
        return value
    return read, "string" if plain else "secret"


def _custom(reader: Reader, type_text: str) -> tuple[Reader, str]:
    return reader, type_text


def _sub(cls: type, build: Callable[[_Section, dict[str, Any]], Any] | None = None,
         type_text: str = "mapping") -> tuple[Reader, str]:
    """A nested mapping read with the keys of ``cls``; ``build`` (section, values) makes
    the value (default: ``cls(**values)``)."""
    def read(sec: _Section, k: Key, values: dict[str, Any]) -> Any:
        sub = _Section(sec.ctx, sec.get(k.name), sec.at(k.name), _allowed(declared(cls)),
                       outer=values)
        got = _read(sub, declared(cls))
        return build(sub, got) if build is not None else cls(**got)
    return read, type_text


def _rebased(keys: Collection[Key], base: Any) -> tuple[Key, ...]:
    """``keys`` with their defaults taken from ``base``'s fields (an account's meter
    defaults: made once for all its meters)."""
    return tuple(replace(k, default=getattr(base, k.attr)) for k in keys)


def _read(sec: _Section, keys: Collection[Key]) -> dict[str, Any]:
    """Read ``keys`` from ``sec`` in order; ``"a.b"`` keys are read from the mapping
    ``a``."""
    values: dict[str, Any] = {}
    groups: dict[str, _Section] = {}
    for declared_key in keys:
        k, where = declared_key, sec
        if "." in k.name:
            head, name = k.name.split(".", 1)
            if head not in groups:
                inner = [n for x in keys if x.name.startswith(head + ".")
                         for n in _allowed([replace(x, name=x.name.split(".", 1)[1])])]
                groups[head] = _Section(sec.ctx, sec.get(head), sec.at(head), inner,
                                        outer=values)
            where, k = groups[head], replace(k, name=name)
        values[k.attr] = k.read(where, k, values)
        if k.then is not None:
            k.then(sec, values)
    for k in keys:  # <key> / <key>_file: a Secret (revealed when not a secret) or None
        if k.file:
            value = values[k.attr] if isinstance(values[k.attr], Secret) else None
            values[k.attr] = value.reveal() if value is not None and not k.secret else value
    return values


# --------------------------------------------------------------------------- readers of the keys
# that need more than a type and bounds, and the cross-key checks of each section


def _mqtt_url(sec: _Section, k: Key, values: dict[str, Any]) -> str:
    url = sec.string(k.name, k.default) or k.default
    scheme, host, port, normalised = "mqtt", "localhost", 1883, DEFAULT_MQTT_URL
    parts = _parse_url(sec.ctx, sec.at(k.name), url, ("mqtt", "mqtts"), paths=False)
    if parts is not None:
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or DEFAULT_PORTS[scheme]
        shown = f"[{host}]" if ":" in host else host
        normalised = f"{scheme}://{shown}:{port}"
    values.update(host=host, port=port, use_tls=scheme == "mqtts")
    return normalised


def _mqtt_password_needs_user(sec: _Section, values: dict[str, Any]) -> None:
    if isinstance(values["password"], Secret) and values["username"] is None \
            and sec.get("username") is not _BAD:
        sec.ctx.add(sec.where("password"), "set without mqtt.username")


def _client_id(sec: _Section, k: Key, _: dict[str, Any]) -> str:
    return sec.string(k.name, "") or ""  # "": derived from the store's path


def _topic(sec: _Section, k: Key, _: dict[str, Any]) -> str:
    default = cast(str, k.default)
    value = sec.string(k.name, default)
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
        sec.ctx.add(sec.at(k.name), f"{problem}, got {_show(value)}")
        return default
    return value


def _protocol(sec: _Section, k: Key, _: dict[str, Any]) -> str:
    v = sec.get(k.name)
    if v is _MISSING or v is _BAD:
        return "5"
    if isinstance(v, int) and not isinstance(v, bool) and v == 5:
        return "5"
    if isinstance(v, str) and v.strip() in PROTOCOLS:
        return v.strip()
    sec.ctx.add(sec.at(k.name), f"expected 5 or 3.1.1, got {_show(v)}")
    return "5"


def _tls_file(sec: _Section, k: Key, _: dict[str, Any]) -> Path | None:
    value = sec.string(k.name, None, nullable=True)
    if value is None:
        return None
    p = sec.ctx.file(value)
    try:
        exists = p.is_file()
    except (OSError, ValueError):
        exists = False
    if not exists:
        sec.ctx.add(sec.at(k.name), f"file not found: {_show_path(p)}")
    if not sec.outer.get("use_tls"):
        sec.ctx.add(sec.at(k.name), "set, but mqtt.url is mqtt:// (plain TCP); use mqtts:// "
                    "for TLS")
    return p


def _tls(sec: _Section, values: dict[str, Any]) -> TlsConfig:
    if values["insecure"] and not sec.outer.get("use_tls"):
        sec.ctx.add(sec.at("insecure"), "set, but mqtt.url is mqtt:// (plain TCP); "
                    "use mqtts:// for TLS")
    if values["key_file"] is not None and values["cert_file"] is None \
            and sec.get("cert_file") is not _BAD:
        sec.ctx.add(sec.at("key_file"), "set without mqtt.tls.cert_file")
    return TlsConfig(**values)


def _http_url(schemes: tuple[str, ...], *, what: str = "", strip: bool = True) -> Reader:
    """A URL with one of ``schemes`` (its text is never echoed), without its trailing /."""
    def read(sec: _Section, k: Key, _: dict[str, Any]) -> str | None:
        url = sec.string(k.name, None, required=k.required, nullable=not k.required,
                         what=what)
        if url is None:
            return None
        if _parse_url(sec.ctx, sec.at(k.name), url, schemes, paths=True) is None:
            return None
        return (url.strip() if strip else url).rstrip("/")
    return read


def _statistics(sec: _Section, k: Key, _: dict[str, Any]) -> StatisticsConfig | None:
    raw = sec.get(k.name)
    if raw in (_MISSING, None, _BAD):
        return None
    stats = _Section(sec.ctx, raw, sec.at(k.name), _allowed(declared(StatisticsConfig)))
    if not stats.ok:
        return None
    values = _read(stats, declared(StatisticsConfig))
    if values["url"] is None or values["token"] is None:
        return None
    return StatisticsConfig(**values)


def _store_path(sec: _Section, k: Key, _: dict[str, Any]) -> Path:
    return sec.ctx.file(sec.string(k.name, str(k.default)) or str(k.default))


def _commands(sec: _Section, k: Key, values: dict[str, Any]) -> bool:
    """``commands: true|false``, or a mapping ``{enabled, max_payload, response_topics}``
    (fills ``command_policy`` too)."""
    raw = sec.get(k.name)
    values["command_policy"] = CommandPolicy()
    if not isinstance(raw, dict):
        if raw not in (_MISSING, _BAD) and not isinstance(raw, bool) and not (
                isinstance(raw, _Env) and raw.strip().lower() in ("true", "false")):
            sec.ctx.add(k.name, "expected true, false or a mapping (enabled, max_payload, "
                        f"response_topics), got {_show(raw)}")
            return True
        return sec.boolean(k.name, True)
    policy_keys = declared(CommandPolicy)
    sub = _Section(sec.ctx, raw, k.name, ("enabled", *_allowed(policy_keys)), outer=values)
    enabled = sub.boolean("enabled", True)
    values["command_policy"] = CommandPolicy(**_read(sub, policy_keys))
    return enabled


def _response_topics(sec: _Section, k: Key, _: dict[str, Any]) -> tuple[str, ...]:
    prefixes: list[str] = []
    value = sec.get(k.name)
    if value in (_MISSING, _BAD, None):
        return ()
    if not isinstance(value, list):
        sec.ctx.add(sec.at(k.name), f"expected a list of topic prefixes, got {_kind(value)}")
        return ()
    top = sec.outer
    for i, item in enumerate(value):
        problem = _prefix_problem(item, top["mqtt"].base_topic, top["homeassistant"])
        if problem is not None:
            sec.ctx.add(f"{sec.at(k.name)}[{i}]", problem)
        else:
            prefixes.append(str(item).rstrip("/"))
    return tuple(prefixes)


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


def _poll_window(sec: _Section, k: Key, _: dict[str, Any]) -> tuple[time, time]:
    default = cast("tuple[time, time]", k.default)
    value = sec.string(k.name, _window_text(default))
    if value is None:
        return default
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if m is None:
        sec.ctx.add(k.name, f'expected "HH:MM-HH:MM" (Europe/Paris), got {_show(value)}')
        return default
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        sec.ctx.add(k.name, f"not a valid time of day in {_show(value)} "
                    "(hours 00-23, minutes 00-59)")
        return default
    start, end = time(h1, m1), time(h2, m2)
    if start >= end:
        sec.ctx.add(k.name, f"the start ({start:%H:%M}) must be before the end "
                    f"({end:%H:%M}), got {_show(value)}")
        return default
    return start, end


def _accounts(sec: _Section, k: Key, _: dict[str, Any]) -> tuple[AccountConfig, ...]:
    ctx, raw = sec.ctx, sec.get(k.name)
    if raw is _MISSING or raw is None:
        ctx.add(k.name, "required: a list of accounts, each with a provider, "
                "its credentials and its meters")
        return ()
    if raw is _BAD:
        return ()
    if not isinstance(raw, list):
        ctx.add(k.name, f"expected a list of accounts, got {_kind(raw)}")
        return ()
    if not raw:
        ctx.add(k.name, "must not be empty: configure at least one account")
        return ()
    accounts: list[AccountConfig] = []
    names: dict[str, str] = {}
    pdls: dict[str, str] = {}
    for i, item in enumerate(raw):
        account = _account(ctx, item, f"{k.name}[{i}]", pdls)
        if account is None:
            continue
        if account.name:
            if account.name in names:
                ctx.add(f"{k.name}[{i}].name", f"duplicate account name "
                        f"{_show(account.name)}, already used by {names[account.name]}")
            else:
                names[account.name] = f"{k.name}[{i}]"
        accounts.append(account)
    return tuple(accounts)


def _account(ctx: _Ctx, raw: Any, path: str, pdls: dict[str, str]) -> AccountConfig | None:
    keys = declared(AccountConfig)
    hints = {name: "meter settings go under meters[] or meter_defaults"
             for name in ("pdl", *_allowed(_inherited()))}
    sec = _Section(ctx, raw, path, _allowed(keys), hint=hints)
    if not sec.ok:
        return None
    if raw is None:
        ctx.add(path, "expected a mapping (name, provider, credentials, meters), got null")
        return None
    sec.pdls = pdls
    values = _read(sec, keys)
    values["name"] = values["name"] or ""
    values["provider"] = values["provider"] or PROVIDERS[0]
    return AccountConfig(**values)


def _credentials(sec: _Section, values: dict[str, Any]) -> None:
    """Provider-specific checks: which credentials each provider takes."""
    provider, token = values["provider"], values["token"]
    client_id, client_secret = values["client_id"], values["client_secret"]
    if provider in TOKEN_PROVIDERS:
        if token is None:
            sec.ctx.add(sec.at("token"), f"required for provider {provider} (or token_file)")
        for key_name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if value is not None:
                sec.ctx.add(sec.where(key_name),
                            f"not used by provider {provider} (it takes a token)")
    elif provider is not None:
        for key_name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if value is None:
                sec.ctx.add(sec.at(key_name),
                            f"required for provider {provider} (or {key_name}_file)")
        if token is not None:
            sec.ctx.add(sec.where("token"), f"not used by provider {provider} (it takes "
                        f"{REGISTRY[provider].credentials_text})")


def _budget(sec: _Section, values: dict[str, Any]) -> BudgetOverride | None:
    if all(values[k.attr] is None for k in declared(BudgetOverride) if k.attr != _BUDGET_OPT_IN):
        return None
    budget = BudgetOverride(**values)
    provider = sec.outer.get("provider")
    if provider in PROVIDERS and not budget.allow_above_default:
        for name, value, default in above_default(provider, budget):
            sec.ctx.add(sec.at(name), f"{value} is above the {provider} default of {default}: "
                        "a budget can only be stricter than the provider's (the upstream's "
                        "quota does not move because a config says so); lower it, or add "
                        f"{_BUDGET_OPT_IN}: true if your contract grants more")
    return budget


def _meter_defaults(sec: _Section, k: Key, _: dict[str, Any]) -> MeterConfig:
    keys = _inherited()
    sub = _Section(sec.ctx, sec.get(k.name), sec.at(k.name), _allowed(keys))
    return MeterConfig(**_read(sub, _rebased(keys, MeterConfig())))


def _meters(sec: _Section, k: Key, values: dict[str, Any]) -> tuple[MeterConfig, ...]:
    ctx, where, provider = sec.ctx, sec.at(k.name), values.get("provider")
    defaults: MeterConfig = values["meter_defaults"]
    meters: list[MeterConfig] = []
    raw = sec.get(k.name)
    values["auto_meters"] = False
    if raw is _MISSING or raw is None:
        ctx.add(where, "required: a list of meters (each with its pdl), or auto (conso only)")
    elif isinstance(raw, str) and raw.strip().lower() == "auto":
        values["auto_meters"] = True
        if provider is not None and provider not in AUTO_METER_PROVIDERS:
            ctx.add(where, f"auto is only possible with provider "
                    f"{' or '.join(sorted(AUTO_METER_PROVIDERS))} (its token lists the "
                    f"PDLs it covers); list the meters of this {provider} account")
        if not (defaults.consumption or defaults.production or defaults.max_power):
            ctx.add(sec.at("meter_defaults"), "nothing to fetch: consumption, production and "
                    "max_power are all false for the meters: auto meters; set at least one of "
                    "them to true")
    elif isinstance(raw, list):
        if not raw:
            ctx.add(where, "must not be empty (list the meters, or use "
                    "enabled: false to turn the account off)")
        keys = _rebased(declared(MeterConfig), defaults)
        for j, item in enumerate(raw):
            meter = _meter(ctx, item, f"{where}[{j}]", keys, sec.pdls)
            if meter is not None:
                meters.append(meter)
    elif raw is not _BAD:
        ctx.add(where, f"expected a list of meters or auto, got {_show(raw)}")
    return tuple(meters)


def _meter(ctx: _Ctx, raw: Any, path: str, keys: tuple[Key, ...],
           pdls: dict[str, str]) -> MeterConfig | None:
    """One meter of an account, read with ``keys`` (the meter's keys, their defaults the
    account's meter defaults)."""
    if raw is None:
        ctx.add(path, "expected a mapping with at least a pdl, got null")
        return None
    sec = _Section(ctx, raw, path, _allowed(keys))
    if not sec.ok:
        return None
    sec.pdls = pdls
    values = _read(sec, keys)
    meter = MeterConfig(**values)
    if not (meter.consumption or meter.production or meter.max_power):
        ctx.add(path, "nothing to fetch: consumption, production and max_power are all "
                "false; set at least one of them to true")
    return meter


def _inherited() -> tuple[Key, ...]:
    """The meter settings an account's ``meter_defaults`` may give."""
    return tuple(k for k in declared(MeterConfig) if k.inherited)


def _pdl(sec: _Section, k: Key, _: dict[str, Any]) -> str:
    pdl = _pdl_value(sec, k.name)
    if pdl is not None:
        if pdl in sec.pdls:
            sec.ctx.add(sec.at(k.name), f"duplicate PDL {_show(pdl)}, already at "
                        f"{sec.pdls[pdl]}")
        else:
            sec.pdls[pdl] = sec.at(k.name)
    return pdl or ""


def _pdl_value(sec: _Section, name: str) -> str | None:
    v = sec.get(name)
    if v is _MISSING or v is None:
        sec.ctx.add(sec.at(name), "required: the 14-digit delivery point number (PDL/PRM)")
        return None
    if v is _BAD:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        text = str(v)
        if PDL_RE.match(text):
            return text
        sec.ctx.add(sec.at(name), f"expected 14 digits, got {_show(v)} (write the PDL in "
                    "quotes: an unquoted number loses its leading zeros)")
        return None
    if isinstance(v, str):
        if PDL_RE.match(v) and v.isascii():
            return str(v)
        sec.ctx.add(sec.at(name), f"expected 14 digits, got {_show(v)}")
        return None
    sec.ctx.add(sec.at(name), f"expected 14 digits, got {_kind(v)}")
    return None


def _meter_name(sec: _Section, k: Key, values: dict[str, Any]) -> str:
    pdl = values.get("pdl") or ""
    return sec.string(k.name, pdl) or pdl


def _steps(sec: _Section, k: Key, _: dict[str, Any]) -> frozenset[Step]:
    default = cast("frozenset[Step]", k.default)
    v = sec.get(k.name)
    if v is _MISSING or v is _BAD:
        return default
    if not isinstance(v, list):
        sec.ctx.add(sec.at(k.name), f"expected a list such as [day, month, hour], got {_show(v)}")
        return default
    if not v:
        sec.ctx.add(sec.at(k.name), "must not be empty: list some of day, month, hour")
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
        sec.ctx.add(f"{sec.at(k.name)}[{i}]",
                    f"expected day, month or hour, got {_show(item)}{hint}")
    return frozenset(steps) if ok else default


def _parsed(parse: Callable[[Any, str], Any],
            error: type[TariffError] | type[OffpeakError]) -> Reader:
    """A key whose value a parser of its own reads (``parse(raw, path)``): null stays
    None, the parser's ``problems`` join the file's, and a bad value keeps the default."""
    def read(sec: _Section, k: Key, _: dict[str, Any]) -> Any:
        raw = sec.get(k.name)
        if raw is _MISSING or raw is _BAD:
            return k.default
        if raw is None:
            return None
        try:
            return parse(raw, sec.at(k.name))
        except error as exc:
            sec.ctx.problems.extend(exc.problems)
            return k.default
    return read


# ``tariffs``: dated price periods (:func:`linky2mqtt.tariffs.parse_tariff`).
_tariff = _parsed(parse_tariff, TariffError)
# ``offpeak_hours``: ranges, or ``{summer, winter}``; wins over the contract's.
_offpeak = _parsed(parse_offpeak_config, OffpeakError)


def _tariff_shown(value: Any, _: Any) -> Any:
    if value is None:
        return None
    return [{"from": p.start.isoformat(), "to": None if p.end is None else p.end.isoformat(),
             "option": str(p.option), "prices": {n: float(v) for n, v in p.prices.items()},
             "subscription": None if p.subscription is None else float(p.subscription)}
            for p in cast(Tariff, value).periods]


def _offpeak_shown(value: Any, _: Any) -> Any:
    if value is None:
        return None
    schedule = cast(OffpeakSchedule, value)
    if schedule.seasonal:
        return {"summer": [str(r) for r in schedule.summer],
                "winter": [str(r) for r in schedule.winter]}
    return [str(r) for r in schedule.all_year]


def _tempo(sec: _Section, values: dict[str, Any]) -> TempoConfig:
    if (values["rte_client_id"] is None) != (values["rte_client_secret"] is None):
        missing = "rte.client_secret" if values["rte_client_secret"] is None \
            else "rte.client_id"
        sec.ctx.add(f"{sec.path}.{missing}", "required with the other RTE credential (or "
                    f"{missing.split('.')[1]}_file)")
    return TempoConfig(**values)


def _tempo_sources(cfg: dict[str, Any], ctx: _Ctx) -> None:
    """A Tempo tariff needs a colour source."""
    tempo: TempoConfig = cfg["tempo"]
    if tempo.community or tempo.rte_client_id is not None:
        return
    for i, account in enumerate(cfg["accounts"]):
        for j, meter in enumerate((account.meter_defaults, *account.meters)):
            if meter.tariff is not None and any(
                    p.option == "tempo" for p in meter.tariff.periods):
                where = (f"accounts[{i}].meter_defaults.tariffs" if j == 0
                         else f"accounts[{i}].meters[{j - 1}].tariffs")
                ctx.add(where, "a tempo tariff needs the colours: set tempo.community: true "
                        "or tempo.rte credentials")
                return


_BUDGET_OPT_IN: Final = "allow_above_default"
_HOMIDOM_STEPS: Final = {"mois": "month", "jour": "day", "heure": "hour"}
_REFRESH_UNIT: Final = (" seconds (one poll an hour at most: Enedis data comes once a day and "
                        "quotas are small)")


# --------------------------------------------------------------------------- the model: one
# field per key, its declaration beside it


def default_client_id(store_path: str | os.PathLike[str]) -> str:
    """The MQTT client id used when none is configured: ``linky2mqtt-`` and 8 hex digits
    of the store's absolute path, so two installations (two stores) never share a session
    and kick each other off the broker, while one installation keeps its id across
    restarts."""
    text = str(store_path)
    if text != ":memory:" and not text.startswith("file:"):
        text = os.path.abspath(text)
    return "linky2mqtt-" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _path_text(value: Any, _: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: Path | None = key(
        _custom(_tls_file, "path"), "CA bundle that signed the broker's certificate "
        "(null: the system's CAs)", None, show=_path_text)
    cert_file: Path | None = key(
        _custom(_tls_file, "path"), "client certificate, if the broker asks for one", None,
        show=_path_text)
    key_file: Path | None = key(
        _custom(_tls_file, "path"), "its private key (needs `cert_file`)", None,
        show=_path_text)
    insecure: bool = key(
        _flag(), "`true` skips certificate verification (logged as a warning)", False)


@dataclass(frozen=True, slots=True)
class MqttConfig:
    url: str = key(
        _custom(_mqtt_url, "string"), "broker: `mqtt://host[:port]` (default port 1883) or "
        "`mqtts://host[:port]` (TLS, default port 8883); no path, no credentials in the URL",
        DEFAULT_MQTT_URL)  # normalised: scheme://host:port
    host: str = plain("localhost")
    port: int = plain(1883)
    use_tls: bool = plain(False)
    username: str | None = key(
        _text(nullable=True), "broker user name (null: no authentication)", None)
    password: Secret | None = key(
        _secret(), "broker password; needs `mqtt.username`", None, file=True, secret=True,
        then=_mqtt_password_needs_user)
    client_id: str = key(
        _custom(_client_id, "string"), "MQTT client id, unique on the broker (see below)",
        "linky2mqtt",
        default_doc="`linky2mqtt-<8 hex digits of the store path's SHA-256>`")
    base_topic: str = key(
        _custom(_topic, "string"), "root of every topic; no `+`, `#`, empty level, "
        "leading/trailing `/` or leading `$`", "linky2mqtt")
    protocol: MqttProtocol = key(
        _custom(_protocol, "`5` or `3.1.1`"), "MQTT version (quoted or not)", "5")
    tls: TlsConfig = key(_sub(TlsConfig, _tls), "", factory=TlsConfig, section=TlsConfig)


@dataclass(frozen=True, slots=True)
class StatisticsConfig:
    """Where to push long-term statistics into Home Assistant (its WebSocket API)."""

    url: str = key(
        _custom(_http_url(("http", "https", "ws", "wss"),
                          what=": the address of Home Assistant, e.g. "
                               "http://homeassistant.local:8123", strip=False), "string"),
        "`http(s)://` or `ws(s)://` address of Home Assistant")
    token: Secret = key(
        _secret(required="a Home Assistant long-lived access token"),
        "a Home Assistant long-lived access token", file=True, secret=True)


@dataclass(frozen=True, slots=True)
class HomeAssistantConfig:
    discovery: bool = key(_flag(), "publish Home Assistant MQTT discovery", True)
    discovery_prefix: str = key(
        _custom(_topic, "string"), "discovery prefix of Home Assistant's MQTT integration",
        "homeassistant")
    status_topic: str = key(
        _custom(_topic, "string"), "Home Assistant's birth topic; discovery is re-sent when "
        "it says `online`", "homeassistant/status")
    statistics: StatisticsConfig | None = key(
        _custom(_statistics, "mapping"), "optional: push long-term statistics to Home "
        "Assistant (see below)", None, section=StatisticsConfig)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path = key(
        _custom(_store_path, "path"), "SQLite database (readings, request ledger, delivery "
        "state)", Path("linky2mqtt.db"), show=_path_text)


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: LogLevel = key(_choice(LOG_LEVELS), "log level (case does not matter)", "info")
    format: LogFormat = key(
        _choice(LOG_FORMATS), "one line per event, as text or as a JSON object", "text")


@dataclass(frozen=True, slots=True)
class BudgetOverride:
    """Request budget of one account: stricter than the provider's default where set.

    A window above the provider's default is refused unless ``allow_above_default`` (the
    upstream grants more); see :mod:`linky2mqtt.budgets`."""

    per_second: int | None = key(
        _integer(1, nullable=True), "optional request budget a second, stricter than the "
        "provider's default (null: the default)", None)
    per_hour: int | None = key(
        _integer(1, nullable=True), "the same, an hour", None)
    per_12h: int | None = key(
        _integer(1, nullable=True), "the same, per 12 hours", None)
    per_day: int | None = key(
        _integer(1, nullable=True), "the same, a day", None)
    allow_above_default: bool = key(
        _flag(), "allow a window above the provider's default (your contract grants more); "
        "the bridge warns at every start", False)


def _steps_shown(value: Any, _: Any) -> list[str]:
    return _steps_list(value)


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """One meter; an account's ``meter_defaults`` is one too, without a PDL (``""``): the
    settings marked ``inherited`` each meter of the account starts from."""

    pdl: str = key(
        _custom(_pdl, "14 digits"), "delivery point (PDL/PRM); write it in quotes", "",
        required=True)
    name: str = key(
        _custom(_meter_name, "string"), "display name (Home Assistant device name)", "",
        default_doc="the PDL")
    steps: frozenset[Step] = key(
        _custom(_steps, "list of `day`/`month`/`hour`"), "what to publish; not empty",
        ALL_STEPS, inherited=True, show=_steps_shown, default_doc="`[day, month, hour]`")
    consumption: bool = key(
        _flag(), "fetch consumption; `false` for a production-only delivery point (no "
        "consumption requests, no consumption sensors). A meter with `consumption`, "
        "`production` and `max_power` all `false` is an error (nothing to fetch)", True,
        inherited=True)
    production: bool = key(_flag(), "also fetch production (solar)", False, inherited=True)
    max_power: bool = key(
        _flag(), "also fetch the daily maximum power (VA)", False, inherited=True)
    refresh: int = key(
        _integer(MIN_REFRESH, unit=_REFRESH_UNIT), "period between polls", DEFAULT_REFRESH,
        inherited=True)
    backfill_day: int = key(
        _integer(0, MAX_BACKFILL_DAY), "days of daily history fetched at start",
        DEFAULT_BACKFILL_DAY, name="backfill_days.day", inherited=True)
    backfill_hour: int = key(
        _integer(0, MAX_BACKFILL_HOUR), "days of hourly history (load curve) fetched at "
        "start", DEFAULT_BACKFILL_HOUR, name="backfill_days.hour", inherited=True)
    tariff: Tariff | None = key(
        _custom(_tariff, "list of dated periods"), "prices: `{from, to?, option: base/hphc/"
        "tempo, prices, subscription?}` each, EUR TTC (see Tariffs below); null: no split "
        "and no cost", None, name="tariffs", inherited=True, show=_tariff_shown)
    offpeak: OffpeakSchedule | None = key(
        _custom(_offpeak, "list or `{summer, winter}`"), "off-peak ranges like "
        '`"22:30-06:30"` (Europe/Paris); win over the contract\'s `offpeak_hours`', None,
        name="offpeak_hours", inherited=True, show=_offpeak_shown,
        default_doc="the contract's")
    enabled: bool = key(_flag(), "`false` keeps the meter in the file but skips it", True)


def _meter_defaults_shown(value: Any, _: Any) -> dict[str, Any]:
    return _redact(value, _inherited())


def _meters_shown(value: Any, owner: Any) -> Any:
    return "auto" if owner.auto_meters else [_redact(m) for m in value]


@dataclass(frozen=True, slots=True)
class AccountConfig:
    name: str = key(
        _text(), "unique name, shown in logs and `bridge/info`")
    provider: str = key(  # a name of linky2mqtt.enedis.PROVIDERS
        _choice(PROVIDERS), "upstream provider")
    token: Secret | None = key(
        _secret(), "required for `conso` and `myelectricaldata`", None, file=True,
        secret=True, default_doc="—")
    client_id: str | None = key(
        _secret(plain=True), "required for `dataconnect` (not a secret, but "
        "`client_id_file` works too)", None, file=True, default_doc="—")
    client_secret: Secret | None = key(
        _secret(), "required for `dataconnect`", None, file=True, secret=True,
        then=_credentials, default_doc="—")
    base_url: str | None = key(
        _custom(_http_url(("http", "https")), "string"), "`http(s)://host[:port][/path]`; "
        "null: the provider's public URL (set it for a sandbox, a self-hosted gateway or the "
        "simulator)", None)
    enabled: bool = key(_flag(), "`false` keeps the account in the file but skips it", True)
    budget: BudgetOverride | None = key(
        _sub(BudgetOverride, _budget), "", None, section=BudgetOverride)
    request_timeout: float = key(
        _integer(*REQUEST_TIMEOUT_RANGE, seconds=True), "deadline of one whole exchange "
        "with the provider (see below)", float(DEFAULT_REQUEST_TIMEOUT),
        default_doc=f"`{DEFAULT_REQUEST_TIMEOUT}`")
    meter_defaults: MeterConfig = key(
        _custom(_meter_defaults, "mapping"), "settings given to each meter of the account "
        "(`steps`, `consumption`, `production`, `max_power`, `refresh`, `backfill_days`, "
        "`tariffs`, `offpeak_hours`); a "
        "meter may override them", factory=MeterConfig, section=MeterConfig, children=False,
        show=_meter_defaults_shown, default_doc="see meters")
    meters: tuple[MeterConfig, ...] = key(
        _custom(_meters, "list or `auto`"), "the meters; `auto`: every PDL the token covers "
        "(`conso` only)", (), required=True, section=MeterConfig, many=True,
        show=_meters_shown)
    auto_meters: bool = plain(False)

    def meter_for(self, pdl: str) -> MeterConfig:
        """The configured meter of ``pdl``, or (``meters: auto``) one built from the defaults."""
        for meter in self.meters:
            if meter.pdl == pdl:
                return meter
        return replace(self.meter_defaults, pdl=pdl, name=pdl)


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """What the command topic accepts (``commands:`` given as a mapping)."""

    max_payload: int = key(  # bytes; larger requests are refused unread
        _integer(*MAX_PAYLOAD_RANGE), "larger requests are refused unread",
        DEFAULT_MAX_PAYLOAD)
    # MQTT 5 ResponseTopic prefixes answers may go to; empty: any topic outside the
    # bridge's base topic (but B/bridge/response/), the discovery prefix and HA's status
    response_topics: tuple[str, ...] = key(
        _custom(_response_topics, "list of topic prefixes"), "MQTT 5 Response Topics "
        "answers may go to; whole levels match (`replies/nodered` allows "
        "`replies/nodered/#`)", (),
        default_doc="`[]` (any topic outside the bridge's and Home Assistant's)")


@dataclass(frozen=True, slots=True)
class TempoConfig:
    """Where Tempo colours come from (used by meters with a tempo tariff)."""

    rte_client_id: str | None = key(
        _secret(plain=True), "RTE API (Tempo Like Supply Contract) application id; optional",
        None, name="rte.client_id", file=True)
    rte_client_secret: Secret | None = key(
        _secret(), "its secret", None, name="rte.client_secret", file=True, secret=True)
    community: bool = key(
        _flag(), "ask api-couleur-tempo.fr (no key); after RTE when both are on", True)
    base_url: str | None = key(
        _custom(_http_url(("http", "https")), "string"), "null: the sources' public URLs; "
        "the simulator's address to use its Tempo stand-in for both", None)


def _window_shown(value: Any, _: Any) -> str:
    return _window_text(value)


@dataclass(frozen=True, slots=True)
class Config:
    mqtt: MqttConfig = key(_sub(MqttConfig), "", factory=MqttConfig, section=MqttConfig)
    homeassistant: HomeAssistantConfig = key(
        _sub(HomeAssistantConfig), "", factory=HomeAssistantConfig, section=HomeAssistantConfig)
    store: StoreConfig = key(_sub(StoreConfig), "", factory=StoreConfig, section=StoreConfig)
    log: LogConfig = key(_sub(LogConfig), "", factory=LogConfig, section=LogConfig)
    commands: bool = key(
        _custom(_commands, "bool or mapping"), "`false` turns the command topic off; a "
        "mapping sets the keys below", True, section=CommandPolicy,
        rows=(("enabled", "bool", "`true`",
               "answer requests on `<base_topic>/bridge/request/<command>`"),))
    command_policy: CommandPolicy = plain(factory=CommandPolicy)
    poll_window: tuple[time, time] = key(
        _custom(_poll_window, '`"HH:MM-HH:MM"`'), "Europe/Paris window; the first poll of "
        "each day falls at a random minute in it; start before end", (time(8, 0), time(10, 0)),
        show=_window_shown, default_doc='`"08:00-10:00"`')
    contract_refresh_days: int = key(
        _integer(1, 365, unit=" days"), "days before a meter's contract is asked again, and "
        "before a meter without one (404, a provider that has none) is asked again; "
        "contracts are asked after the day's data, within what the budget leaves", 7)
    accounts: tuple[AccountConfig, ...] = key(
        _custom(_accounts, "list"), "at least one account", (), required=True,
        section=AccountConfig, many=True)
    tempo: TempoConfig = key(
        _sub(TempoConfig, _tempo), "", factory=TempoConfig,
        section=TempoConfig)

    def enabled_meters(self) -> tuple[tuple[AccountConfig, MeterConfig], ...]:
        """Every listed meter that is enabled, of every enabled account (auto ones excluded)."""
        return tuple((a, m) for a in self.accounts if a.enabled for m in a.meters if m.enabled)


class ConfigError(Linky2MqttError):
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
        document = _parse_yaml(text, duplicates)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([f"config: {_yaml_problem(exc)}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"config: invalid YAML: {_one_line(str(exc))}"]) from None
    except RecursionError:
        raise ConfigError(["config: the YAML document is nested too deeply"]) from None
    except (ValueError, TypeError, ArithmeticError) as exc:  # e.g. a date such as 2026-02-30
        raise ConfigError([f"config: invalid YAML value: {_one_line(str(exc))}"]) from None
    for line, key_name in duplicates:
        ctx.add("config", f"line {line}: key {_show(key_name)} appears twice in the same mapping")
    try:
        document = ctx.interpolate(document, "", 0)
    except _TooComplex as exc:
        raise ConfigError([f"config: {exc}"]) from None
    cfg = _build(ctx, document)
    if ctx.problems or cfg is None:
        raise ConfigError(ctx.scrubbed() or ["config: invalid configuration"])
    return cfg


def _build(ctx: _Ctx, document: Any) -> Config | None:
    if document is _BAD:
        return None
    if document is not None and not isinstance(document, dict):
        ctx.add("config", "expected a mapping at the top level (mqtt:, accounts: ...), "
                f"got {_kind(document)}")
        return None
    keys = declared(Config)
    values = _read(_Section(ctx, document, "", _allowed(keys)), keys)
    _tempo_sources(values, ctx)
    mqtt: MqttConfig = values["mqtt"]
    if not mqtt.client_id:  # not configured: one per store
        values["mqtt"] = replace(mqtt, client_id=default_client_id(values["store"].path))
    return Config(**values)


def redacted(cfg: Config) -> dict[str, Any]:
    """The configuration as plain JSON values, every secret shown as ``"***"`` (null if
    unset); ``command_policy`` (what a ``commands:`` mapping set) follows ``commands``."""
    out: dict[str, Any] = {}
    for name, value in _redact(cfg).items():
        out[name] = value
        if name == "commands":
            out["command_policy"] = _redact(cfg.command_policy)
    return out


def _redact(obj: Any, keys: Collection[Key] | None = None) -> dict[str, Any]:
    """The declared keys of ``obj`` as JSON values (secrets masked), nested as in the file."""
    out: dict[str, Any] = {}
    for k in declared(type(obj)) if keys is None else keys:
        value = getattr(obj, k.attr)
        shown: Any
        if k.show is not None:
            shown = k.show(value, obj)
        elif k.secret:
            shown = None if value is None else MASK
        else:
            shown = _json(value)
        target = out
        *heads, last = k.name.split(".")
        for head in heads:
            target = target.setdefault(head, {})
        target[last] = shown
    return out


def _json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is not None and declared(type(value)):
        return _redact(value)
    return value


def secret_values(cfg: Config) -> tuple[str, ...]:
    """Every secret value of the configuration, revealed: for the log redaction filter."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        for k in declared(type(obj)):
            value = getattr(obj, k.attr)
            if k.secret and isinstance(value, Secret):
                found.append(value.reveal())
            for item in value if isinstance(value, tuple) else (value,):
                if item is not None and declared(type(item)):
                    walk(item)

    walk(cfg)
    return tuple(dict.fromkeys(found))


def summary(cfg: Config,
            account_lines: Callable[[AccountConfig], list[str]] = lambda _a: []) -> str:
    """A readable summary of the configuration (``check-config``), secrets hidden; under
    each account, ``account_lines(account)`` (the CLI passes the effective request windows
    of its scopes: :func:`linky2mqtt.budgets.describe`).
    """
    m, ha = cfg.mqtt, cfg.homeassistant
    auth = "no authentication"
    if m.username is not None:
        auth = f"user {m.username}" + (f", password {MASK}" if m.password is not None else "")
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
        + ("off" if ha.statistics is None else f"{ha.statistics.url} (token {MASK})"),
        f"Store: {cfg.store.path}",
        f"Log: {cfg.log.level}, {cfg.log.format}",
        f"Commands: {'on' if cfg.commands else 'off'}{_policy_text(cfg)}",
        f"Poll window: {_window_text(cfg.poll_window)} (Europe/Paris)",
        "Tempo colours: " + (", then ".join(
            ([f"RTE (client id {cfg.tempo.rte_client_id}, secret {MASK})"]
             if cfg.tempo.rte_client_id else [])
            + (["api-couleur-tempo.fr"] if cfg.tempo.community else [])) or "no source")
        + (f" at {cfg.tempo.base_url}" if cfg.tempo.base_url else "")
        + " (used by tempo tariffs only)",
        f"Accounts: {len(cfg.accounts)}",
    ]
    credentials = [k for k in declared(AccountConfig) if k.file]
    for a in cfg.accounts:
        creds = ", ".join(f"{k.name} {MASK if k.secret else value}" for k in credentials
                          if (value := getattr(a, k.attr)) is not None)
        state = "" if a.enabled else ", DISABLED"
        lines.append(f"  {a.name}: {a.provider} ({creds}; {a.base_url or 'public URL'}){state}")
        if a.budget is not None:
            lines.append("    budget: " + ", ".join(
                f"{k} {v}" for k, v in _redact(a.budget).items()
                if v is not None and v is not False))
        lines += account_lines(a)
        if a.auto_meters:
            lines.append("    meters: auto (every PDL the token covers), each: "
                         + _settings_text(a.meter_defaults))
        for meter in a.meters:
            off = "" if meter.enabled else ", DISABLED"
            lines.append(f"    {meter.pdl} {meter.name!r}: {_settings_text(meter)}{off}")
    return "\n".join(lines)


def reference_table() -> str:
    """The "Reference" table of docs/configuration.md, from the declarations."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in _reference_rows(Config, "")]
    return "\n".join(lines)


def _reference_rows(cls: type, prefix: str) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for k in declared(cls):
        path = prefix + k.name
        if k.doc:
            rows.append((f"`{path}`", k.type_text, _default_doc(k), k.doc))
        rows += [(f"`{path}.{name}`", *rest) for name, *rest in k.rows]  # type: ignore[misc]
        if k.section is not None and k.children:
            rows += _reference_rows(k.section, path + ("[]." if k.many else "."))
    return rows


def _default_doc(k: Key) -> str:
    if k.default_doc:
        return k.default_doc
    if k.required:
        return "— (required)"
    value = k.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    return f"`{value}`"
# --------------------------------------------------------------------------- YAML loading


class _Duplicates:
    """A loader mix-in that notes keys repeated within one mapping (PyYAML keeps the
    last)."""

    duplicates: list[tuple[int, str]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if key in seen:
                    self.duplicates.append((key_node.start_mark.line + 1, str(key)))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc, no-any-return]


class _Loader(_Duplicates, yaml.SafeLoader):
    """PyYAML's own safe loader: its error messages are the ones the docs show."""

    def __init__(self, text: str, duplicates: list[tuple[int, str]]) -> None:
        self.duplicates = duplicates
        super().__init__(text)


# libyaml's parser when PyYAML was built with it (its wheels are): several times faster
# on a fleet's configuration (10,000 meters: 0.1 s against 0.7 s)
_CSafeLoader: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
_FastLoader: type[Any] | None = (None if _CSafeLoader is None else
                                 type("_FastLoader", (_Duplicates, _CSafeLoader), {}))


def _parse_yaml(text: str, duplicates: list[tuple[int, str]]) -> Any:
    """The one document of ``text``: parsed by libyaml when PyYAML has it, and by PyYAML's
    own parser when libyaml refuses it (so that the problem is told in its words)."""
    if _FastLoader is not None:
        fast = _FastLoader(text)
        fast.duplicates = []
        try:
            document = fast.get_single_data()
        except (yaml.YAMLError, RecursionError, ValueError, TypeError, ArithmeticError):
            pass  # told by PyYAML's own parser below
        else:
            duplicates.extend(fast.duplicates)
            return document
        finally:
            fast.dispose()
    loader = _Loader(text, duplicates)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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
    """A string produced by ``${...}`` interpolation: may stand for an int or a bool.
    ``source`` is the text as written (``${REFRESH}``), what problems show."""

    source: str = ""


class _TooComplex(Exception):
    pass


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REF = re.compile(r"\$(\$)?\{([^}]*)(\})?")


def _join(path: str, key: object) -> str:
    if isinstance(key, str) and _IDENT.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(str(key))}]"


def _show(value: object) -> str:
    """A short, one-line rendering of a (non-secret) value for a problem message.

    A value that came from the environment (``${NAME}``) is not echoed: the same variable
    may hold a secret elsewhere in the file (a token put in the wrong key by mistake)."""
    if isinstance(value, _Env):
        return f"{_show(value.source)} from the environment"
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
        self.secrets: set[str] = set()  # every secret value read, for scrubbed()

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path or 'config'}: {message}")

    def secret(self, value: str) -> Secret:
        self.secrets.add(value)
        return Secret(value)

    def scrubbed(self) -> list[str]:
        """The problems with every secret value of the file masked: a secret written (or
        interpolated) into a key that is not one too must not show in a message."""
        lines = self.problems
        for value in sorted(self.secrets, key=len, reverse=True):
            if len(value.strip()) >= 4:
                lines = [line.replace(value, "***") for line in lines]
        return lines

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
        if errors:
            return _BAD
        value = _Env(result)
        value.source = text
        return value


class _Section:
    """One mapping of the document: reports unknown keys, reads typed values."""

    def __init__(self, ctx: _Ctx, raw: Any, path: str, allowed: Collection[str],
                 *, hint: Mapping[str, str] | None = None,
                 outer: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.path = path
        self.outer: dict[str, Any] = {} if outer is None else outer  # the enclosing values
        self.pdls: dict[str, str] = {}  # PDL -> where it was first seen (the whole file)
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
            return self.ctx.secret(text)
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
        return self.ctx.secret(str(value))

    def where(self, key: str) -> str:
        """Path of ``key`` or of ``key_file``, whichever is present."""
        return self.at(key) if key in self.data or f"{key}_file" not in self.data \
            else self.at(f"{key}_file")




# --------------------------------------------------------------------------- rendering helpers


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


def _window_text(window: tuple[time, time]) -> str:
    return f"{window[0]:%H:%M}-{window[1]:%H:%M}"


def _steps_list(steps: frozenset[Step]) -> list[str]:
    return [s.value for s in STEP_ORDER if s in steps]


def _settings_text(s: MeterConfig) -> str:
    extras = [x for x, on in (("production", s.production), ("max power", s.max_power)) if on]
    return (", ".join(_steps_list(s.steps)) + (" + " + " + ".join(extras) if extras else "")
            + ("" if s.consumption else " (no consumption)")
            + f"; refresh {s.refresh} s; backfill {s.backfill_day} days daily, "
            f"{s.backfill_hour} days hourly" + _tariff_text(s))


def _tariff_text(s: MeterConfig) -> str:
    offpeak = ("off-peak " + s.offpeak.describe() + " (configuration)" if s.offpeak
               else "off-peak from the contract")
    if s.tariff is None:
        return "" if s.offpeak is None else f"; {offpeak}"
    first = s.tariff.periods[0]
    options = "/".join(dict.fromkeys(str(p.option) for p in s.tariff.periods))
    count = len(s.tariff.periods)
    return (f"; tariff {options} from {first.start} ({count} period"
            f"{'s' if count > 1 else ''}), {offpeak}")


if __name__ == "__main__":  # python -m linky2mqtt.config --reference
    if sys.argv[1:] != ["--reference"]:
        sys.exit("usage: python -m linky2mqtt.config --reference  (prints the reference "
                 "table of docs/configuration.md)")
    sys.stdout.write(reference_table() + "\n")
