"""The command protocol of SPEC §5, as pure functions: no MQTT, no threads, no I/O.

* :func:`parse_request` turns a command name (the last level of
  ``B/bridge/request/<command>``) and the raw payload into a typed request
  (:class:`ReadRequest`, :class:`RefreshRequest`, :class:`InfoRequest`) or a
  :class:`Rejection` whose message a person understands. It never raises.
* :func:`ok`, :func:`error` and :func:`encode` build and serialise the answers
  published on ``B/bridge/response/<command>``; ``transaction`` is echoed exactly
  whenever the request carried one.
* :func:`response_topic_problem` says why an MQTT 5 ResponseTopic may not receive an
  answer (inside the bridge's base topic other than ``B/bridge/response/``, under the
  discovery prefix, Home Assistant's status topic, outside the configured prefixes);
* :func:`shown` renders user input for a log line: escaped and bounded.
* :func:`missing_days` and :func:`build_read_data` assemble the ``data`` of a ``read``
  answer over a small :class:`ReadSource` protocol (the bridge adapts the store to it);
  :func:`read_message_when_budget_exhausted` says when the budget allows what is missing.

Validation rules (in this order; the first failure is the answer):

1. payload at most ``max_payload`` bytes (64 KiB by default), UTF-8, JSON (strict: no
   NaN/Infinity), an object, not nested deeper than 64 levels (an empty payload counts
   as ``{}``); a payload over the limit is refused before parsing, and its ``transaction``
   is still echoed when :func:`transaction_hint` finds it cheaply (first or last key);
2. a known command (``read``, ``refresh``, ``info``);
3. no unknown keys (a typo such as ``"strat"`` is reported rather than ignored);
4. per field: ``pdl`` a string of 14 digits configured in this bridge; ``kind`` one of
   consumption, production, max_power and enabled for that meter; ``step`` one of day,
   month, hour (max_power: day only); ``start``/``end`` real ``YYYY-MM-DD`` dates,
   ``start < end`` (end exclusive), ``end`` at most today (data stops at yesterday);
   at most 366 days for day/month, 31 for hour.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from operator import attrgetter
from typing import Any, ClassVar, Final, Protocol, TypeVar

from linky2mqtt.model import PDL_RE, HourlyDay, Kind, Step, day_bounds, kwh, local_iso
from linky2mqtt.tariffs import Breakdown, combine

MAX_PAYLOAD: Final = 64 * 1024
MAX_DEPTH: Final = 64
HINT_SCAN: Final = 2048  # bytes at each end of a payload searched for its transaction
OVERSIZE_ECHO: Final = 1024  # ... and a transaction that short is echoed
COMMANDS: Final = ("read", "refresh", "info")
MAX_DAYS: Final[Mapping[Step, int]] = {Step.DAY: 366, Step.MONTH: 366, Step.HOUR: 31}

_E = TypeVar("_E", bound=Enum)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KINDS = ", ".join(k.value for k in Kind)
_STEPS = ", ".join(s.value for s in Step)


class _NoTransaction(Enum):
    """Marks a request that carried no ``transaction`` (``null`` is a transaction)."""

    TOKEN = 0

    def __repr__(self) -> str:
        return "NO_TRANSACTION"


NO_TRANSACTION: Final = _NoTransaction.TOKEN


@dataclass(frozen=True, slots=True)
class MeterView:
    """What a configured meter offers to commands."""

    production: bool = False
    max_power: bool = False
    consumption: bool = True
    tariff: bool = False  # a tariff is configured: ``read`` may ask for split and cost

    def has(self, kind: Kind) -> bool:
        if kind is Kind.PRODUCTION:
            return self.production
        if kind is Kind.MAX_POWER:
            return self.max_power
        return self.consumption


@dataclass(frozen=True, slots=True)
class ReadRequest:
    command: ClassVar[str] = "read"
    pdl: str
    kind: Kind
    step: Step
    start: date
    end: date  # exclusive
    transaction: object = NO_TRANSACTION
    split: bool = False  # per-period values at every step
    cost: bool = False  # the cost of each day/month point

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    command: ClassVar[str] = "refresh"
    pdl: str | None  # None: every configured meter
    transaction: object = NO_TRANSACTION


@dataclass(frozen=True, slots=True)
class InfoRequest:
    command: ClassVar[str] = "info"
    transaction: object = NO_TRANSACTION


@dataclass(frozen=True, slots=True)
class Rejection:
    command: str
    error: str
    transaction: object = NO_TRANSACTION


Request = ReadRequest | RefreshRequest | InfoRequest


class _Invalid(Exception):
    """A validation failure inside parse_request (never leaves this module)."""


# ---------------------------------------------------------------------------- parsing


def parse_request(
    command: str, payload: bytes, *, pdls: Mapping[str, MeterView], today: date,
    max_payload: int = MAX_PAYLOAD,
) -> Request | Rejection:
    """Validate one request; never raises. ``today`` is the Europe/Paris date."""
    try:
        return _parse(command, payload, pdls, today, max_payload)
    except Exception as exc:  # pragma: no cover - a bug here must not crash the bridge
        return Rejection(
            command, f"internal error while reading the request ({type(exc).__name__})"
        )


def _parse(
    command: str, payload: bytes, pdls: Mapping[str, MeterView], today: date,
    max_payload: int,
) -> Request | Rejection:
    if len(payload) > max_payload:
        return too_large(command, len(payload), max_payload, transaction_hint(payload))
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Rejection(
            command,
            f"payload is not UTF-8 text: got {_bytes(len(payload))}, "
            f"bad byte 0x{payload[exc.start]:02x} at position {exc.start}",
        )
    if not text.strip():
        body: object = {}
    else:
        try:
            body = json.loads(
                text,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
                parse_int=_short_int,
            )
        except RecursionError:
            return Rejection(
                command, f"payload is nested too deeply (more than {MAX_DEPTH} levels)"
            )
        except ValueError as exc:
            return Rejection(
                command,
                f"payload is not valid JSON: got {_bytes(len(payload))} "
                f"{_show(text, 40)}: {_json_reason(exc)}",
            )
    if not isinstance(body, dict):
        return Rejection(
            command,
            f"payload must be a JSON object such as {{}}, got {_json_type(body)}",
        )
    if _depth(body) > MAX_DEPTH:
        return Rejection(command, f"payload is nested too deeply (more than {MAX_DEPTH} levels)")
    transaction = body.get("transaction", NO_TRANSACTION)
    try:
        if command == "read":
            return _parse_read(body, pdls, today, transaction)
        if command == "refresh":
            _check_keys(command, body, ("pdl",))
            pdl = _pdl(body, pdls) if "pdl" in body and body["pdl"] is not None else None
            return RefreshRequest(pdl, transaction)
        if command == "info":
            _check_keys(command, body, ())
            return InfoRequest(transaction)
    except _Invalid as exc:
        return Rejection(command, str(exc), transaction)
    return Rejection(
        command,
        f"unknown command {_show(command)}; known commands: {', '.join(COMMANDS)}",
        transaction,
    )


def too_large(command: str, size: int, limit: int, transaction: object) -> Rejection:
    """The refusal of a payload over ``limit`` bytes (nothing of it was parsed)."""
    return Rejection(command, f"payload too large: {size} bytes, at most {limit}"
                              f"{' (64 KiB)' if limit == MAX_PAYLOAD else ''}", transaction)


_HEAD_RE = re.compile(rb'\A(?:\xef\xbb\xbf)?\s*\{\s*"transaction"\s*:\s*')
_TAIL_KEY = b'"transaction"'


def transaction_hint(payload: bytes) -> object:
    """The ``transaction`` of a payload that will not be parsed (too large, or refused
    because too many requests wait), found cheaply: only the first and last
    :data:`HINT_SCAN` bytes are read, and only a ``transaction`` that is the object's
    first or last key and encodes in at most :data:`OVERSIZE_ECHO` bytes is returned;
    :data:`NO_TRANSACTION` otherwise. For a valid JSON object this is its transaction
    (unless the key is repeated, which JSON leaves undefined)."""
    head = payload[:HINT_SCAN]
    m = _HEAD_RE.match(head)
    if m is not None:
        found = _value_at(head, m.end(), (b",", b"}"))
        if found is not NO_TRANSACTION:
            return found
    tail = payload[-HINT_SCAN:]
    at = tail.rfind(_TAIL_KEY)
    while at >= 0:
        before = tail[:at].rstrip()
        if before.endswith((b",", b"{")):
            rest = tail[at + len(_TAIL_KEY):].lstrip()
            if rest.startswith(b":"):
                start = len(tail) - len(rest[1:].lstrip())
                found = _value_at(tail, start, (b"}",), last=True)
                if found is not NO_TRANSACTION:
                    return found
        at = tail.rfind(_TAIL_KEY, 0, at)
    return NO_TRANSACTION


def _value_at(chunk: bytes, start: int, followers: tuple[bytes, ...],
              last: bool = False) -> object:
    """The short JSON value at ``chunk[start:]`` if one of ``followers`` comes next
    (``last``: and nothing but white space after it)."""
    try:
        text = chunk[start:start + OVERSIZE_ECHO + 1].decode("utf-8", "ignore")
        decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float,
                                   parse_int=_short_int)
        value, end = decoder.raw_decode(text)
    except (ValueError, RecursionError):
        return NO_TRANSACTION
    used = len(text[:end].encode("utf-8"))
    if used > OVERSIZE_ECHO:
        return NO_TRANSACTION
    after = chunk[start + used:].lstrip()
    if not after.startswith(followers):
        return NO_TRANSACTION
    if last and after[1:].strip():
        return NO_TRANSACTION
    return value


def _parse_read(
    body: dict[str, Any], pdls: Mapping[str, MeterView], today: date, transaction: object
) -> ReadRequest:
    _check_keys("read", body, ("pdl", "kind", "step", "start", "end", "split", "cost"))
    pdl = _pdl(body, pdls)
    kind = _choice(body, "kind", Kind, _KINDS)
    if kind is Kind.CONSUMPTION and not pdls[pdl].has(kind):
        raise _Invalid(f"meter {pdl} does not measure consumption (consumption: false)")
    if not pdls[pdl].has(kind):
        raise _Invalid(
            f"PDL {pdl} has no {kind.value} data in this bridge "
            f"(set {kind.value}: true for this meter in the configuration)"
        )
    step = _choice(body, "step", Step, _STEPS)
    if kind is Kind.MAX_POWER and step is not Step.DAY:
        raise _Invalid(f'max_power exists per day only: use "step": "day", not "{step.value}"')
    start = _date(body, "start")
    end = _date(body, "end")
    if start >= end:
        raise _Invalid(
            f'"start" ({start}) must be before "end" ({end}); "end" is exclusive: '
            f'one day is "start": "{start}", "end": "{start + timedelta(days=1)}"'
        )
    if end > today:
        raise _Invalid(
            f'"end" ({end}) is in the future: the latest "end" is today, {today} '
            f"(end is exclusive, and data stops at yesterday)"
        )
    days = (end - start).days
    limit = MAX_DAYS[step]
    if days > limit:
        raise _Invalid(
            f"range too long: {days} days from {start} to {end}; at most {limit} days "
            f'for step "{step.value}"'
        )
    split, cost = _flag(body, "split"), _flag(body, "cost")
    if split or cost:
        asked = "split" if split else "cost"
        if kind is not Kind.CONSUMPTION:
            raise _Invalid(f'"{asked}" is for consumption only (a tariff prices what is used)')
        if not pdls[pdl].tariff:
            raise _Invalid(f'"{asked}": meter {pdl} has no tariff (set tariffs for it in '
                           "the configuration)")
        if cost and step is Step.HOUR:
            raise _Invalid('"cost" is given per day or month: use "step": "day" or "month"')
    return ReadRequest(pdl, kind, step, start, end, transaction, split, cost)


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise _Invalid(f'"{key}" must be true or false, got {_show_json(value)}')
    return value


def _check_keys(command: str, body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    known = (*allowed, "transaction")
    unknown = [k for k in body if k not in known]
    if unknown:
        names = ", ".join(_show(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        which = "key" if len(unknown) == 1 else "keys"
        raise _Invalid(
            f"unknown {which} {names} for command {command}; known keys: {', '.join(known)}"
        )


def _pdl(body: Mapping[str, Any], pdls: Mapping[str, MeterView]) -> str:
    if "pdl" not in body:
        raise _Invalid('"pdl" is required: the 14-digit number of the delivery point (PRM)')
    value = body["pdl"]
    if not isinstance(value, str):
        raise _Invalid(f'"pdl" must be a string of 14 digits (in quotes), got {_json_type(value)}')
    if not PDL_RE.fullmatch(value):
        raise _Invalid(f'"pdl" must be 14 digits, got {_show(value)}')
    if value not in pdls:
        configured = ", ".join(sorted(pdls)) or "none"
        raise _Invalid(f"PDL {value} is not configured in this bridge (configured: {configured})")
    return value


def _choice(body: Mapping[str, Any], key: str, enum: type[_E], names: str) -> _E:
    if key not in body:
        raise _Invalid(f'"{key}" is required: one of {names}')
    value = body[key]
    for member in enum:
        if isinstance(value, str) and member.value == value:
            return member
    raise _Invalid(f'"{key}" must be one of {names}, got {_show_json(value)}')


def _date(body: Mapping[str, Any], key: str) -> date:
    if key not in body:
        raise _Invalid(f'"{key}" is required: a date as "YYYY-MM-DD"')
    value = body[key]
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise _Invalid(f'"{key}" must be a date as "YYYY-MM-DD", got {_show_json(value)}')
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Invalid(f'"{key}" is not a real date: "{value}"') from None


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is too large")
    return value


def _short_int(text: str) -> int:
    if len(text) > 40:
        raise ValueError(f"number {text[:20]}... has more than 40 digits")
    return int(text)


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)[:120]


def _depth(value: object) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(text: str, limit: int = 40) -> str:
    """A user-supplied string quoted for a message, shortened and printable."""
    return json.dumps(text[:limit] + ("..." if len(text) > limit else ""))


def shown(text: str | bytes, limit: int = 80) -> str:
    """User input (a topic, a command name, a payload) for a log line: quoted, every
    control and non-ASCII character escaped (a newline cannot forge a log line), at most
    ``limit`` characters of it, and its full length when it was cut."""
    if isinstance(text, bytes):
        size = len(text)
        text = text[:limit * 4].decode("utf-8", "replace")
        if size <= limit:
            return json.dumps(text)
        return f"{json.dumps(text[:limit])}... ({_bytes(size)})"
    if len(text) <= limit:
        return json.dumps(text)
    return f"{json.dumps(text[:limit])}... ({len(text)} characters)"


def _bytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _show_json(value: object) -> str:
    if isinstance(value, str):
        return _show(value)
    if isinstance(value, dict | list):
        return _json_type(value)
    return json.dumps(value)[:40]


# ---------------------------------------------------------------------------- answers


def ok(data: Mapping[str, Any], transaction: object = NO_TRANSACTION) -> dict[str, Any]:
    """``{"status":"ok","data":{...},"transaction":<echo>}`` (no transaction: no key)."""
    answer: dict[str, Any] = {"status": "ok", "data": dict(data)}
    if transaction is not NO_TRANSACTION:
        answer["transaction"] = transaction
    return answer


def error(message: str, transaction: object = NO_TRANSACTION) -> dict[str, Any]:
    """``{"status":"error","error":"...","data":{},"transaction":<echo>}``."""
    answer: dict[str, Any] = {"status": "error", "error": message, "data": {}}
    if transaction is not NO_TRANSACTION:
        answer["transaction"] = transaction
    return answer


def rejection_answer(rejection: Rejection) -> dict[str, Any]:
    return error(rejection.error, rejection.transaction)


def response_topic(base_topic: str, command: str) -> str:
    """``B/bridge/response/<command>``: every command, known or not, answers on its own."""
    return f"{base_topic}/bridge/response/{command}"


def _under(topic: str, prefix: str) -> bool:
    """``topic`` is ``prefix`` or lies below it (whole levels: ``a/b`` is not under ``a/bc``)."""
    prefix = prefix.rstrip("/")
    return topic == prefix or topic.startswith(prefix + "/")


def response_topic_problem(
    topic: str, *, base_topic: str, discovery_prefix: str, status_topic: str,
    allowed: tuple[str, ...] = (),
) -> str | None:
    """Why the bridge must not publish an answer on the MQTT 5 ResponseTopic ``topic``
    (None: it may). Refused: wildcards, NUL, ``$`` topics, an empty topic; anything under
    ``base_topic`` but ``base_topic/bridge/response/...`` (the bridge's retained values,
    state, info and requests: a requester must not be able to write there through the
    bridge); anything under the Home Assistant ``discovery_prefix`` and its
    ``status_topic``; and, when ``allowed`` prefixes are configured, any topic outside
    them. The message names the rule, not the topic (the caller shows the topic)."""
    if not topic or any(c in topic for c in "+#\0"):
        return "a response topic must be a topic name, without the wildcards + or # or NUL"
    if topic.startswith("$"):
        return 'topics starting with "$" are reserved for the broker'
    own = f"{base_topic}/bridge/response"
    if _under(topic, base_topic) and not topic.startswith(own + "/"):
        return (f"it is inside the bridge's base topic {base_topic}/; the only answers "
                f"published there go to {own}/<command>")
    if _under(topic, discovery_prefix):
        return f"it is inside the Home Assistant discovery prefix {discovery_prefix}/"
    if topic == status_topic:
        return "it is Home Assistant's status topic"
    if allowed and not any(_under(topic, p) for p in allowed):
        return ("it is outside the response topics this bridge allows "
                f"(commands.response_topics: {', '.join(allowed)})")
    return None


def encode(answer: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes (ASCII-escaped, so any echoed string stays valid UTF-8)."""
    return json.dumps(answer, separators=(",", ":"), allow_nan=False).encode("ascii")


# ---------------------------------------------------------------------------- read


class ReadSource(Protocol):
    """What ``read`` needs from the store. Days are Europe/Paris dates; ``end`` exclusive."""

    def daily_values(self, pdl: str, kind: Kind, start: date, end: date) -> dict[date, float]:
        """Daily energy in Wh, by day, for the days held."""
        ...

    def max_power_values(
        self, pdl: str, start: date, end: date
    ) -> dict[date, tuple[float, datetime]]:
        """Daily max power in VA and when it happened, by day, for the days held."""
        ...

    def hourly(self, pdl: str, kind: Kind, day: date) -> HourlyDay | None:
        """The clock hours of one day and whether the day is complete; None when nothing
        of the day is held."""
        ...


class SplitSource(Protocol):
    """What ``"split"``/``"cost"`` need: the tariff breakdowns (see linky2mqtt.pricing)."""

    def breakdowns(self, pdl: str, kind: Kind, daily: Mapping[date, float]
                   ) -> Mapping[date, Breakdown] | None:
        """The breakdown of each day of ``daily`` (Wh by day); None: no tariff."""
        ...

    def hour_labels(self, pdl: str, kind: Kind, day: date
                    ) -> Mapping[datetime, Mapping[str, Any]] | None:
        """``{hour UTC start: {"period", "periods"?}}`` of one day; None: none."""
        ...


def unit_of(kind: Kind) -> str:
    return "VA" if kind is Kind.MAX_POWER else "kWh"


def missing_days(req: ReadRequest, source: ReadSource) -> list[date]:
    """The days of the range the store lacks (hour step: curve absent or incomplete)."""
    if req.step is Step.HOUR:
        missing = []
        for day in req.days():
            got = source.hourly(req.pdl, req.kind, day)
            if got is None or not got.complete:
                missing.append(day)
        return missing
    if req.kind is Kind.MAX_POWER:
        held: Mapping[date, object] = source.max_power_values(req.pdl, req.start, req.end)
    else:
        held = source.daily_values(req.pdl, req.kind, req.start, req.end)
    return [day for day in req.days() if day not in held]


def build_read_data(
    req: ReadRequest, source: ReadSource, *, message: str | None = None,
    splits: SplitSource | None = None,
) -> dict[str, Any]:
    """The ``data`` of a ``read`` answer: ``{"pdl","kind","step","unit","points","missing"}``
    (plus ``"message"`` when given, e.g. from :func:`read_message_when_budget_exhausted`).
    With ``split``/``cost`` (and ``splits``), points gain ``periods``/``cost`` as the
    day and month payloads do, and hour points ``period`` and ``periods``."""
    if not (req.split or req.cost):
        splits = None
    if req.step is Step.HOUR:
        points, missing = _hour_points(req, source)
        if splits is not None:
            _label_hours(req, splits, points)
    elif req.kind is Kind.MAX_POWER:
        points, missing = _max_power_points(req, source)
    else:
        daily = source.daily_values(req.pdl, req.kind, req.start, req.end)
        missing = [d for d in req.days() if d not in daily]
        points = _month_points(req, daily) if req.step is Step.MONTH else _day_points(req, daily)
        if splits is not None:
            _split_points(req, splits, daily, points)
    data: dict[str, Any] = {
        "pdl": req.pdl,
        "kind": req.kind.value,
        "step": req.step.value,
        "unit": unit_of(req.kind),
        "points": points,
        "missing": [d.isoformat() for d in missing],
    }
    if message is not None:
        data["message"] = message
    return data


def _split_points(req: ReadRequest, splits: SplitSource, daily: Mapping[date, float],
                  points: list[dict[str, Any]]) -> None:
    days = splits.breakdowns(req.pdl, req.kind, daily) or {}
    for point in points:
        if req.step is Step.DAY:
            chosen = [days[date.fromisoformat(point["date"])]]
        else:
            chosen = [b for d, b in days.items() if f"{d:%Y-%m}" == point["month"]]
        if not chosen:
            continue
        b = combine(chosen) if req.step is Step.MONTH else chosen[0]
        if req.split:
            point["periods"] = b.periods_payload()
            if req.step is Step.MONTH:
                point["unsplit"] = kwh(float(b.unsplit_wh))
        if req.cost:
            point["cost"] = b.cost_payload()
        if b.reasons:
            point["split_reason"] = "; ".join(dict.fromkeys(b.reasons))


def _label_hours(req: ReadRequest, splits: SplitSource, points: list[dict[str, Any]]) -> None:
    labels: dict[str, Mapping[str, Any]] = {}
    for day in req.days():
        for start, label in (splits.hour_labels(req.pdl, req.kind, day) or {}).items():
            labels[_hour_iso(start)] = label
    for point in points:
        found = labels.get(point["start"])
        if found is not None:
            label = found
            point["period"] = label["period"]
            point["periods"] = dict(label.get("periods") or {label["period"]: point["value"]})


def _day_points(req: ReadRequest, daily: Mapping[date, float]) -> list[dict[str, Any]]:
    points = []
    for day in req.days():
        if day in daily:
            start, end = day_bounds(day)
            points.append(
                {
                    "date": day.isoformat(),
                    "start": local_iso(start),
                    "end": local_iso(end),
                    "value": kwh(daily[day]),
                }
            )
    return points


def _month_points(req: ReadRequest, daily: Mapping[date, float]) -> list[dict[str, Any]]:
    """One point per calendar month meeting the range, summed over the days held within
    month ∩ range; ``complete`` when that is the whole month and every day is held."""
    points = []
    first = req.start.replace(day=1)
    while first < req.end:
        following = _next_month(first)
        lo, hi = max(first, req.start), min(following, req.end)
        held = [lo + timedelta(days=i) for i in range((hi - lo).days)]
        held = [d for d in held if d in daily]
        whole = lo == first and hi == following
        points.append(
            {
                "month": first.strftime("%Y-%m"),
                "start": local_iso(day_bounds(lo)[0]),
                "end": local_iso(day_bounds(hi)[0]),
                "value": kwh(sum(daily[d] for d in held)),
                "days": len(held),
                "complete": whole and len(held) == (following - first).days,
            }
        )
        first = following
    return points


def _next_month(first: date) -> date:
    return date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)


_start = attrgetter("start")

# Hour boundaries recur in every hourly read (and each is the end of one hour and the
# start of the next): formatting them once keeps a month's read cheap (~16k boundaries).
_hour_iso = lru_cache(maxsize=16384)(local_iso)


def _hour_points(req: ReadRequest, source: ReadSource) -> tuple[list[dict[str, Any]], list[date]]:
    points: list[dict[str, Any]] = []
    missing: list[date] = []
    for day in req.days():
        got = source.hourly(req.pdl, req.kind, day)
        if got is None:
            missing.append(day)
            continue
        if not got.complete:
            missing.append(day)
        points.extend(
            {"start": _hour_iso(h.start), "end": _hour_iso(h.end), "value": kwh(h.wh)}
            for h in sorted(got.hours, key=_start)
        )
    return points, missing


def _max_power_points(
    req: ReadRequest, source: ReadSource
) -> tuple[list[dict[str, Any]], list[date]]:
    values = source.max_power_values(req.pdl, req.start, req.end)
    points: list[dict[str, Any]] = []
    missing: list[date] = []
    for day in req.days():
        if day not in values:
            missing.append(day)
            continue
        va, at = values[day]
        start, end = day_bounds(day)
        points.append(
            {
                "date": day.isoformat(),
                "start": local_iso(start),
                "end": local_iso(end),
                "value": int(va) if float(va).is_integer() else va,
                "time": local_iso(at),
            }
        )
    return points, missing


def read_message_when_budget_exhausted(missing: list[date], retry_at: datetime) -> str:
    """Why ``missing`` is not empty: the request budget, and when it allows the rest."""
    count = len(missing)
    if count == 0:
        return f"nothing is missing; the request budget allows more from {local_iso(retry_at)}"
    days = sorted(missing)
    if count <= 5:
        listed = ", ".join(d.isoformat() for d in days)
    else:
        listed = f"{days[0].isoformat()} to {days[-1].isoformat()}"
    noun = "day" if count == 1 else "days"
    return (
        f"{count} {noun} not fetched ({listed}): the upstream request budget is used up; "
        f"it allows them from {local_iso(retry_at)}; ask again then"
    )
