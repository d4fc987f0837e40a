"""A fake Home Assistant websocket API (``/api/websocket``) for the statistics sink tests.

It follows Home Assistant 2026.2's protocol and behaviour (checked against
``homeassistant/components/recorder/websocket_api.py`` and ``statistics.py``):

* ``auth_required`` -> ``auth {access_token}`` -> ``auth_ok`` / ``auth_invalid`` (then close);
* every command carries an increasing ``id``; answers are ``{"id", "type": "result",
  "success", "result" | "error": {"code", "message"}}``; ``ping`` -> ``pong``;
* ``recorder/import_statistics {metadata, stats}``: the metadata a 2026.11+ Home Assistant
  requires for an external energy sum (``source`` == the statistic_id's domain,
  ``has_mean`` false, ``mean_type`` 0, ``has_sum`` true, ``unit_class`` energy, a unit of
  that class); rows ``{start: aware ISO on the hour, state, sum}``, stored by UTC start so
  a row with the same start overwrites the old one;
* ``recorder/statistics_during_period``: rows with ``start_time <= start < end_time``,
  ``period`` hour (day/week/month reduced by Europe/Paris calendar like Home Assistant:
  the last hour's state and sum), only the requested ``types``; ``start``/``end`` as
  integer epoch milliseconds; statistics without rows are absent from the result;
* ``recorder/list_statistic_ids`` (flattened metadata like Home Assistant's).

Run by :class:`FakeHA` on an asyncio loop in a background thread on 127.0.0.1; ``down()``
and ``up()`` stop and restart the listener on the same port. Everything received is
recorded for assertions (``commands``, ``import_calls``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from linky2mqtt.model import PARIS
from tests.support.ws_server import LoopServer

HA_VERSION = "2026.2.3"
VALID_STATISTIC_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_):(?!_)[\da-z_]+(?<!_)$")
ENERGY_UNITS = {"Wh": 1.0, "kWh": 1000.0, "MWh": 1e6, "GWh": 1e9, "TWh": 1e12, "mWh": 1e-3}
_SERVER_LOG = logging.getLogger("tests.fake_ha")
_SERVER_LOG.setLevel(logging.INFO)  # no frame dumps (they hold the token) in test logs
TYPES = {"change", "last_reset", "max", "mean", "min", "state", "sum"}


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Statistic:
    metadata: dict[str, Any]
    rows: dict[float, dict[str, Any]] = field(default_factory=dict)  # UTC start ts -> row


@dataclass(frozen=True)
class ImportCall:
    statistic_id: str
    rows: int
    starts: tuple[str, ...]


class FakeHA(LoopServer):
    """A websocket server speaking Home Assistant's API on 127.0.0.1."""

    _log = _SERVER_LOG

    def __init__(self, token: str = "fake-long-lived-token", *, lag: float = 0.0) -> None:
        self.token = token
        self.lag = lag  # seconds before an import becomes visible (HA queues it)
        self.port = 0
        self.statistics: dict[str, Statistic] = {}
        self.commands: list[dict[str, Any]] = []  # every command received (after auth)
        self.import_calls: list[ImportCall] = []
        self.auth_failures = 0
        self.connections = 0
        self._lock = threading.Lock()

    # -- assertions helpers --------------------------------------------------------------

    def rows(self, statistic_id: str) -> list[dict[str, Any]]:
        """Stored rows, oldest first: ``{"start": aware UTC datetime, "state", "sum"}``."""
        with self._lock:
            stat = self.statistics.get(statistic_id)
            if stat is None:
                return []
            return [
                {"start": datetime.fromtimestamp(ts, UTC), **row}
                for ts, row in sorted(stat.rows.items())
            ]

    def command_count(self, command: str) -> int:
        with self._lock:
            return sum(1 for c in self.commands if c.get("type") == command)

    def reset_log(self) -> None:
        with self._lock:
            self.commands.clear()
            self.import_calls.clear()

    # -- protocol ------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != "/api/websocket":
            return connection.respond(404, "Not Found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
        try:
            await ws.send(json.dumps({"type": "auth_required", "ha_version": HA_VERSION}))
            try:
                auth = json.loads(await ws.recv())
            except ValueError:
                auth = {}
            if auth.get("type") != "auth" or auth.get("access_token") != self.token:
                with self._lock:
                    self.auth_failures += 1
                await ws.send(
                    json.dumps(
                        {"type": "auth_invalid", "message": "Invalid access token or password"}
                    )
                )
                await ws.close()
                return
            await ws.send(json.dumps({"type": "auth_ok", "ha_version": HA_VERSION}))
            last_id = 0
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await ws.close(1003, "bad json")
                    return
                mid = msg.get("id") if isinstance(msg, dict) else None
                if not isinstance(mid, int) or "type" not in msg:
                    await ws.send(_error(mid, "invalid_format", "Message incorrectly formatted."))
                    continue
                if mid <= last_id:
                    await ws.send(_error(mid, "id_reuse", "Identifier values have to increase."))
                    continue
                last_id = mid
                with self._lock:
                    self.commands.append(msg)
                await ws.send(self._dispatch(mid, msg))
        except ConnectionClosed:
            return

    def _dispatch(self, mid: int, msg: dict[str, Any]) -> str:
        kind = msg["type"]
        if kind == "ping":
            return json.dumps({"id": mid, "type": "pong"})
        handlers = {
            "recorder/import_statistics": self._import_statistics,
            "recorder/statistics_during_period": self._statistics_during_period,
            "recorder/list_statistic_ids": self._list_statistic_ids,
        }
        handler = handlers.get(kind)
        if handler is None:
            return _error(mid, "unknown_command", "Unknown command.")
        try:
            with self._lock:
                result = handler(msg)
        except CommandError as err:
            return _error(mid, err.code, err.message)
        return json.dumps({"id": mid, "type": "result", "success": True, "result": result})

    def _import_statistics(self, msg: dict[str, Any]) -> None:
        metadata = msg.get("metadata")
        stats = msg.get("stats")
        if not isinstance(metadata, dict):
            raise _required("metadata")
        if not isinstance(stats, list):
            raise _required("stats")
        checks: list[tuple[str, Callable[[Any], bool]]] = [
            ("has_sum", lambda v: v is True),
            ("has_mean", lambda v: v is False),
            ("mean_type", lambda v: v == 0 and type(v) is int),
            ("name", lambda v: isinstance(v, str) and bool(v)),
            ("source", lambda v: isinstance(v, str)),
            ("statistic_id", lambda v: isinstance(v, str)),
            # an energy sum, or a cost (EUR) without unit class, as Home Assistant takes it
            ("unit_class", lambda v: v in ("energy", None)),
            ("unit_of_measurement", lambda v: v in ENERGY_UNITS if metadata.get(
                "unit_class") == "energy" else isinstance(v, str) and bool(v)),
        ]
        for key, check in checks:
            if key not in metadata:
                raise _required(f"metadata']['{key}")
            if not check(metadata[key]):
                raise CommandError(
                    "invalid_format",
                    f"invalid value for data['metadata']['{key}']. Got {metadata[key]!r}",
                )
        extra = set(metadata) - {
            "has_sum", "has_mean", "mean_type", "name", "source", "statistic_id",
            "unit_class", "unit_of_measurement",
        }  # fmt: skip
        if extra:
            raise CommandError(
                "invalid_format", f"extra keys not allowed @ data['metadata']['{sorted(extra)[0]}']"
            )
        sid = metadata["statistic_id"]
        if not VALID_STATISTIC_ID.match(sid):
            raise CommandError("home_assistant_error", "Invalid statistic_id")
        if metadata["source"] != sid.split(":", 1)[0]:
            raise CommandError("home_assistant_error", "Invalid source")
        parsed: list[tuple[float, dict[str, Any]]] = []
        for i, row in enumerate(stats):
            if not isinstance(row, dict) or "start" not in row:
                raise _required(f"stats'][{i}]['start")
            extra = set(row) - {"start", "mean", "min", "max", "last_reset", "state", "sum"}
            if extra:
                raise CommandError("invalid_format", f"extra keys not allowed @ data['stats'][{i}]")
            for key in ("state", "sum"):
                value = row.get(key)
                if key in row and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise CommandError(
                        "invalid_format", f"expected float for data['stats'][{i}]['{key}']"
                    )
            try:
                start = datetime.fromisoformat(str(row["start"]))
            except ValueError:
                raise CommandError(
                    "invalid_format",
                    f"Invalid datetime specified: {row['start']} @ data['stats'][{i}]",
                ) from None
            if start.tzinfo is None or start.utcoffset() is None:
                raise CommandError(
                    "home_assistant_error", "Naive timestamp: no or invalid timezone info provided"
                )
            if start.minute or start.second or start.microsecond:
                raise CommandError(
                    "home_assistant_error",
                    "Invalid timestamp: timestamps must be from the top of the hour "
                    "(minutes and seconds = 0)",
                )
            parsed.append((start.timestamp(), {k: row[k] for k in ("state", "sum") if k in row}))

        def apply() -> None:  # with self._lock held
            stat = self.statistics.setdefault(sid, Statistic(metadata=dict(metadata)))
            stat.metadata = dict(metadata)
            for ts, row in parsed:
                stat.rows[ts] = row

        def apply_later() -> None:
            with self._lock:
                apply()

        if self.lag > 0:  # like the recorder's queue: answered now, visible later
            asyncio.get_running_loop().call_later(self.lag, apply_later)
        else:
            apply()
        self.import_calls.append(ImportCall(sid, len(stats), tuple(str(r["start"]) for r in stats)))
        return None

    def _statistics_during_period(self, msg: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        for key in ("start_time", "statistic_ids", "period"):
            if key not in msg:
                raise _required(key)
        ids = msg["statistic_ids"]
        if not isinstance(ids, list) or not ids:
            raise CommandError(
                "invalid_format", "length of value must be at least 1 @ data['statistic_ids']"
            )
        period = msg["period"]
        if period not in ("5minute", "hour", "day", "week", "month"):
            raise CommandError(
                "invalid_format", f"value must be one of ... @ data['period']. Got {period!r}"
            )
        types = set(msg.get("types") or TYPES)
        if not types <= TYPES:
            raise CommandError("invalid_format", "value must be one of ... @ data['types']")
        start = _parse_time(msg["start_time"], "invalid_start_time", "Invalid start_time")
        end = (
            _parse_time(msg["end_time"], "invalid_end_time", "Invalid end_time")
            if msg.get("end_time")
            else None
        )
        units = msg.get("units") or {}
        if period == "5minute":
            return {}  # external statistics have no short-term rows
        if period != "hour":  # HA aligns both ends; the end goes to the NEXT period's start
            start = _period_start(start, period)
            if end is not None:
                end = _period_end(_period_start(end, period), period)
        result: dict[str, list[dict[str, Any]]] = {}
        for sid in ids:
            stat = self.statistics.get(sid)
            if stat is None:
                continue
            factor = 1.0  # a cost (no unit class) is never converted
            if stat.metadata["unit_class"] == "energy":
                factor = (
                    ENERGY_UNITS[stat.metadata["unit_of_measurement"]]
                    / ENERGY_UNITS[units.get("energy", stat.metadata["unit_of_measurement"])]
                )
            hourly = [
                (ts, row)
                for ts, row in sorted(stat.rows.items())
                if ts >= start.timestamp() and (end is None or ts < end.timestamp())
            ]
            out: list[dict[str, Any]] = []
            for ts, row in hourly:
                begin = datetime.fromtimestamp(ts, UTC)
                if period == "hour":
                    p_start, p_end = begin, begin + timedelta(hours=1)
                else:
                    p_start = _period_start(begin, period)
                    p_end = _period_end(p_start, period)
                item: dict[str, Any] = {
                    "start": int(p_start.timestamp() * 1000),
                    "end": int(p_end.timestamp() * 1000),
                }
                for key in ("state", "sum"):
                    if key in types:
                        value = row.get(key)
                        item[key] = None if value is None else value * factor
                if out and out[-1]["start"] == item["start"]:
                    out[-1] = item  # reduced: the period's last hour wins
                else:
                    out.append(item)
            if out:
                result[sid] = out
        return result

    def _list_statistic_ids(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = msg.get("statistic_type")
        out = []
        for sid, stat in sorted(self.statistics.items()):
            meta = stat.metadata
            if wanted == "sum" and not meta["has_sum"]:
                continue
            if wanted == "mean" and meta["mean_type"] == 0:
                continue
            out.append(
                {
                    "statistic_id": sid,
                    "display_unit_of_measurement": meta["unit_of_measurement"],
                    "has_mean": meta["mean_type"] == 1,
                    "mean_type": meta["mean_type"],
                    "has_sum": meta["has_sum"],
                    "name": meta["name"],
                    "source": meta["source"],
                    "statistics_unit_of_measurement": meta["unit_of_measurement"],
                    "unit_class": meta["unit_class"],
                }
            )
        return out


def _error(mid: Any, code: str, message: str) -> str:
    return json.dumps(
        {"id": mid, "type": "result", "success": False, "error": {"code": code, "message": message}}
    )


def _required(key: str) -> CommandError:
    return CommandError("invalid_format", f"required key not provided @ data['{key}']. Got None")


def _parse_time(text: Any, code: str, message: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise CommandError(code, message) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)  # HA: naive = the instance's time zone
    return moment.astimezone(UTC)


def _period_start(moment: datetime, period: str) -> datetime:
    local = moment.astimezone(PARIS).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        local -= timedelta(days=local.weekday())
    elif period == "month":
        local = local.replace(day=1)
    return local.replace(tzinfo=PARIS).astimezone(UTC)


def _period_end(start: datetime, period: str) -> datetime:
    local = start.astimezone(PARIS).replace(tzinfo=None)
    if period == "day":
        nxt = local + timedelta(days=1)
    elif period == "week":
        nxt = local + timedelta(days=7)
    else:
        nxt = (local.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt.replace(tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def fake_ha() -> Iterator[FakeHA]:
    server = FakeHA().start()
    try:
        yield server
    finally:
        server.stop()
