"""A stand-in for the two Tempo sources: RTE's API and api-couleur-tempo.fr.

Shapes as documented in :mod:`linky2mqtt.tempo` (facts in ``../shared/tariffs.md``):

RTE (``/token/oauth/`` and ``/open_api/tempo_like_supply_contract/v1/tempo_like_calendars``)
    OAuth2 client credentials (HTTP Basic, the simulator's client id and secret), tokens
    valid 7200 s of the simulator's clock. The calendar answers the published days of
    ``[start_date, end_date)`` newest first, midnight to midnight with the Paris offset;
    tomorrow only after the publication time (10:30 Paris by default). ``end_date``
    later than D+2 or a span over 366 days: 400. Error bodies are
    ``{"error", "error_description"}`` (the keys hekmon/rtetempo reads); the error code
    strings are ours, RTE's own were not found.
api-couleur-tempo (``/api/jourTempo/{date|today|tomorrow}``, ``/api/joursTempo?periode=``)
    ``{"dateJour", "codeJour", "periode", "libCouleur"}``; ``codeJour`` 0 (Inconnu) for
    tomorrow before the publication time and for every day marked unknown; a day outside
    the known calendar: 404 in API Platform's JSON error shape.

Failure modes, per source (``"rte"`` or ``"community"``): :meth:`TempoStandIn.unknown`
makes a day unknown (RTE leaves ``value`` out of that day, as for 2022-12-28; the
community answers ``codeJour: 0``), :meth:`TempoStandIn.script` queues faults for the
next requests: ``"slow:S"`` (answer after S real seconds: a client timeout), ``"drop"``
(close without answer), ``"500"``, ``"503"``, ``"429"``, ``"badjson"``, ``"html"``.

The colours themselves are a pure function of the date (red only November-March on
weekdays, white never on Sunday), overridable with :meth:`TempoStandIn.set_colour`.

Mounting: :meth:`TempoStandIn.handle` takes the simulator's :class:`Request` and returns
a :class:`Response`, or None when the path is not a Tempo one, so the simulator's
``App.handle`` asks it first (``App.tempo``). ``simulator.server.serve_tempo`` runs
it alone on its own port.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
from collections import Counter, deque
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.simulator.http import Request, Response
from linky2mqtt.tariffs import PARIS, Colour
from linky2mqtt.tempo import RTE_CALENDAR_PATH, RTE_MAX_DAYS, RTE_TOKEN_PATH, season_of

__all__ = ["RTE_TOKEN_LIFETIME", "TempoStandIn", "colour_of"]

RTE_TOKEN_LIFETIME = 7200
SOURCES = ("rte", "community")
FAULT_RE = re.compile(r"^(500|503|429|badjson|html|drop|slow:\d+(\.\d+)?)$")
CODES = {None: 0, Colour.BLUE: 1, Colour.WHITE: 2, Colour.RED: 3}
LABELS = {0: "Inconnu", 1: "Bleu", 2: "Blanc", 3: "Rouge"}
FIRST_DAY = date(2020, 9, 1)  # api-couleur-tempo's history starts in the 2020-2021 season
HTML = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


def colour_of(day: date) -> Colour:
    """The stand-in's colour of a day (deterministic, roughly the real proportions)."""
    u = int.from_bytes(hashlib.blake2b(day.isoformat().encode(), digest_size=4).digest(),
                       "big") / 2**32
    winter = day.month in (11, 12, 1, 2, 3)
    if winter and day.weekday() < 5 and u < 0.15:
        return Colour.RED
    if day.weekday() != 6 and u < (0.30 if winter else 0.10):
        return Colour.WHITE
    return Colour.BLUE


def _midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=PARIS).isoformat()


def _json(status: int, payload: Any, provider: str, endpoint: str) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode(),
                    provider=provider, endpoint=endpoint)


class TempoStandIn:
    """Both Tempo sources, driven by the simulator's clock; thread-safe."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, client_id: str = "sim-client",
                 client_secret: str = "sim-secret",  # noqa: S107 - the simulator default
                 publish_at: tuple[int, int] = (10, 30)) -> None:
        self.clock = clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.publish_at = publish_at
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._colours: dict[date, Colour] = {}
        self._unknown: dict[str, set[date]] = {s: set() for s in SOURCES}
        self._faults: dict[str, deque[str]] = {s: deque() for s in SOURCES}
        self.counts: Counter[tuple[str, str, int]] = Counter()  # (source, endpoint, status)

    # ----- control -------------------------------------------------------------------

    def set_colour(self, day: date, colour: Colour) -> None:
        with self._lock:
            self._colours[day] = colour

    def unknown(self, day: date, source: str | None = None) -> None:
        """Make ``day`` unknown at ``source`` (both when None)."""
        with self._lock:
            for name in SOURCES if source is None else (source,):
                self._unknown[name].add(day)

    def script(self, source: str, faults: list[str]) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown Tempo source {source!r} (expected rte or community)")
        for fault in faults:
            if not FAULT_RE.match(fault):
                raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._faults[source].extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._colours.clear()
            for name in SOURCES:
                self._unknown[name].clear()
                self._faults[name].clear()
            self.counts.clear()

    def count(self, source: str, status: int | None = None) -> int:
        with self._lock:
            return sum(n for (s, _, st), n in self.counts.items()
                       if s == source and (status is None or st == status))

    # ----- truth ---------------------------------------------------------------------

    def today(self) -> date:
        return self.clock.now().astimezone(PARIS).date()

    def published(self, day: date) -> bool:
        """Whether ``day``'s colour is out: any day up to today; tomorrow after 10:30."""
        now = self.clock.now().astimezone(PARIS)
        if day <= now.date():
            return True
        return day == now.date() + timedelta(days=1) and (now.hour, now.minute) >= self.publish_at

    def colour(self, day: date, source: str) -> Colour | None:
        """What ``source`` says about ``day`` now (None: unknown)."""
        with self._lock:
            if day in self._unknown[source]:
                return None
            override = self._colours.get(day)
        if not self.published(day):
            return None
        return override or colour_of(day)

    # ----- HTTP ----------------------------------------------------------------------

    def handle(self, req: Request) -> Response | None:
        """The answer to a Tempo request, or None when ``req`` is not one."""
        path = req.path.rstrip("/")
        if path == RTE_TOKEN_PATH.rstrip("/"):
            source, endpoint, handler = "rte", "token", self._token
        elif path == RTE_CALENDAR_PATH:
            source, endpoint, handler = "rte", "tempo_like_calendars", self._calendar
        elif path.startswith("/api/jourTempo/"):
            source, endpoint, handler = "community", "jourTempo", self._community_day
        elif path == "/api/joursTempo":
            source, endpoint, handler = "community", "joursTempo", self._community_season
        else:
            return None
        provider = f"tempo-{source}"
        with self._lock:
            fault = self._faults[source].popleft() if self._faults[source] else None
        if fault is None:
            resp = handler(req)
        elif fault.startswith("slow:"):
            resp = handler(req)
            resp.delay += float(fault.split(":", 1)[1])
        elif fault == "drop":
            resp = Response(0, drop=True)
        elif fault == "badjson":
            resp = Response(200, b'{"tempo_like_calendars": {"values": [')
        elif fault == "html":
            resp = Response(502, HTML, content_type="text/html; charset=utf-8")
        else:
            status = int(fault)
            resp = _json(status, {"error": f"SIM_{status}", "error_description":
                                  "Simulated failure"}, provider, endpoint)
        resp.provider, resp.endpoint = provider, endpoint
        with self._lock:
            self.counts[(source, endpoint, 0 if resp.drop else resp.status)] += 1
        return resp

    def _token(self, req: Request) -> Response:
        if req.method != "POST":
            return _json(405, {"error": "method_not_allowed"}, "tempo-rte", "token")
        header = req.headers.get("authorization", "")
        user = password = ""
        if header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
        if (user, password) != (self.client_id, self.client_secret):
            return _json(401, {"error": "invalid_client",
                               "error_description": "Client authentication failed"},
                         "tempo-rte", "token")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = self.clock.time() + RTE_TOKEN_LIFETIME
        return _json(200, {"access_token": token, "token_type": "Bearer",
                           "expires_in": RTE_TOKEN_LIFETIME}, "tempo-rte", "token")

    def _calendar(self, req: Request) -> Response:
        endpoint = "tempo_like_calendars"
        header = req.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None or self.clock.time() >= expiry:
            return _json(401, {"error": "invalid_token",
                               "error_description": "Access token invalid or expired"},
                         "tempo-rte", endpoint)
        try:
            start = datetime.fromisoformat(req.query["start_date"][0])
            end = datetime.fromisoformat(req.query["end_date"][0])
            if start.tzinfo is None or end.tzinfo is None:
                raise ValueError("no offset")
        except (KeyError, IndexError, ValueError):
            return _json(400, {"error": "TEMPO_BAD_DATES", "error_description":
                               "start_date and end_date are required, in "
                               "YYYY-MM-DDThh:mm:ss+hh:mm"}, "tempo-rte", endpoint)
        first, stop = start.astimezone(PARIS).date(), end.astimezone(PARIS).date()
        if not first < stop or (stop - first).days > RTE_MAX_DAYS \
                or stop > self.today() + timedelta(days=2):
            return _json(400, {"error": "TEMPO_BAD_PERIOD", "error_description":
                               "start_date must be before end_date, at most 366 days apart, "
                               "and end_date at most D+2"}, "tempo-rte", endpoint)
        values = []
        day = stop - timedelta(days=1)
        while day >= first:
            if self.published(day):
                item: dict[str, Any] = {
                    "start_date": _midnight(day),
                    "end_date": _midnight(day + timedelta(days=1)),
                }
                colour = self.colour(day, "rte")
                if colour is not None:
                    item["value"] = colour.name
                eve = day - timedelta(days=1)  # published the day before, about 10:20
                item["updated_date"] = datetime(eve.year, eve.month, eve.day, 10, 20,
                                                tzinfo=PARIS).isoformat()
                values.append(item)
            day -= timedelta(days=1)
        return _json(200, {"tempo_like_calendars": {
            "start_date": start.isoformat(), "end_date": end.isoformat(), "values": values}},
            "tempo-rte", endpoint)

    def _day_body(self, day: date) -> dict[str, Any]:
        code = CODES[self.colour(day, "community")]
        return {"dateJour": day.isoformat(), "codeJour": code, "periode": season_of(day),
                "libCouleur": LABELS[code]}

    def _not_found(self, endpoint: str) -> Response:
        return _json(404, {"title": "An error occurred", "detail": "Not Found", "status": 404},
                     "tempo-community", endpoint)

    def _community_day(self, req: Request) -> Response:
        name = req.path.rstrip("/").rsplit("/", 1)[1]
        today = self.today()
        if name == "today":
            day = today
        elif name == "tomorrow":
            day = today + timedelta(days=1)
        elif name == "yesterday":
            day = today - timedelta(days=1)
        else:
            try:
                day = date.fromisoformat(name)
            except ValueError:
                return self._not_found("jourTempo")
        if day < FIRST_DAY or day > today + timedelta(days=1):
            return self._not_found("jourTempo")
        return _json(200, self._day_body(day), "tempo-community", "jourTempo")

    def _community_season(self, req: Request) -> Response:
        query = parse_qs(req.target.partition("?")[2])
        wanted = set(query.get("periode", []) + query.get("periode[]", []))
        today = self.today()
        days = []
        day = FIRST_DAY
        last = today + timedelta(days=1)
        while day <= last:
            if not wanted or season_of(day) in wanted:
                days.append(self._day_body(day))
            day += timedelta(days=1)
        return _json(200, days, "tempo-community", "joursTempo")
