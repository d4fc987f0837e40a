"""The simulator's request handling, without sockets: route, auth, rules, faults, stats.

:meth:`App.handle` turns a :class:`Request` into a :class:`Response` (which the HTTP
layer in :mod:`linky2mqtt.simulator.server` writes, delays or drops). Every request but
the control ones (``/_sim/...``) is counted per (provider, pdl, endpoint, status), a
dropped connection under status 0.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs

from linky2mqtt.model import PARIS, PDL_RE, Kind
from linky2mqtt.simulator import auth, bodies, data
from linky2mqtt.simulator.faults import FaultBook
from linky2mqtt.simulator.http import UNKNOWN, Request, Response, json_response
from linky2mqtt.simulator.options import SimOptions
from linky2mqtt.simulator.quota import HOUR, SECOND, TWELVE_HOURS, Quota, threshold_text
from linky2mqtt.simulator.rules import (
    EnedisError,
    Query,
    Series,
    consent_revoked,
    invalid,
    no_data,
    not_holder,
    served_days,
    technical,
)
from linky2mqtt.simulator.tempo import TempoStandIn
from linky2mqtt.tariffs import Colour

CONSO = "conso"
DATACONNECT = "dataconnect"
MED = "myelectricaldata"

TYPES_2026: dict[str, tuple[Kind, Series]] = {
    "consommation_quotidienne": (Kind.CONSUMPTION, Series.DAILY),
    "courbe_de_charge_consommation": (Kind.CONSUMPTION, Series.CURVE),
    "puissance_conso_max_quotidienne": (Kind.MAX_POWER, Series.DAILY),
    "production_quotidienne": (Kind.PRODUCTION, Series.DAILY),
    "courbe_de_charge_production": (Kind.PRODUCTION, Series.CURVE),
}
TYPES_V5: dict[str, tuple[Kind, Series]] = {
    "daily_consumption": (Kind.CONSUMPTION, Series.DAILY),
    "consumption_load_curve": (Kind.CONSUMPTION, Series.CURVE),
    "daily_consumption_max_power": (Kind.MAX_POWER, Series.DAILY),
    "daily_production": (Kind.PRODUCTION, Series.DAILY),
    "production_load_curve": (Kind.PRODUCTION, Series.CURVE),
}
V5_PREFIX = {
    "dc": "daily_consumption", "clc": "consumption_load_curve",
    "dcmp": "daily_consumption_max_power", "dp": "daily_production",
    "plc": "production_load_curve",
}
INVALID_CREDENTIALS = {
    "code": "900901",
    "message": "Invalid Credentials",
    "description": "Invalid Credentials. Make sure you have provided the correct security "
    "credentials",
}
CONSO_UNAUTHORIZED = "Votre token est invalide ou ne permet pas d'accéder à ce PRM"
CONSO_ENEDIS = "The Enedis API returned an error"
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>\n"
    "<body><h1>Service temporairement indisponible</h1>\n"
    "<p>Le service est en maintenance. Merci de réessayer plus tard.</p></body></html>\n"
)
BAD_JSON = '{"meter_reading": {"usage_point_id": "1234567890'

_MED_DATA = re.compile(
    r"^/(daily_consumption|consumption_load_curve|daily_consumption_max_power|"
    r"daily_production|production_load_curve)/([^/]+)/start/([^/]+)/end/([^/]+)(/cache)?/?$"
)
_MED_INFO = re.compile(r"^/(contracts|valid_access|addresses)/([^/]+)(/cache)?/?$")
_V5 = re.compile(r"^/metering_data_([a-z]+)/v5/([a-z_]+)/?$")


@dataclass(frozen=True)
class Route:
    provider: str
    endpoint: str
    pdl: str | None
    handler: Callable[[Request], Response]
    quota: bool = True


@dataclass(frozen=True)
class Hide:
    pdl: str
    day: date
    until: float | None  # epoch seconds (sim clock); None: until reset
    kind: Kind | None


def _parse_day(text: str | None) -> date | None:
    if text is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _pdl(text: str | None) -> str | None:
    return text if text is not None and PDL_RE.match(text) else None


def parse_instant(text: str) -> datetime:
    """ISO 8601 instant; a naive one is Europe/Paris time."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=PARIS)


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str | None, str, int]] = Counter()

    def record(self, provider: str, pdl: str | None, endpoint: str, status: int) -> None:
        with self._lock:
            self._counts[(provider, pdl, endpoint, status)] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            items = sorted(self._counts.items(), key=lambda kv: tuple(map(str, kv[0])))
        return {
            "total": sum(n for _, n in items),
            "by": [
                {"provider": p, "pdl": pdl, "endpoint": e, "status": s, "count": n}
                for (p, pdl, e, s), n in items
            ],
        }

    def count(self, provider: str | None = None, pdl: str | None = None,
              endpoint: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(
                n for (p, d, e, s), n in self._counts.items()
                if (provider is None or p == provider) and (pdl is None or d == pdl)
                and (endpoint is None or e == endpoint) and (status is None or s == status)
            )


class App:
    """All simulator state and behaviour; thread-safe."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.clock = options.clock
        self.stats = Stats()
        self.tokens = auth.TokenStore()
        self.faults = FaultBook(options.seed)
        self.quota = Quota()
        self._lock = threading.Lock()
        self._hides: list[Hide] = []
        self.latency = 0.0
        self.dst_stamps = data.WALL_CLOCK
        self.client_id = options.client_id
        self.client_secret = options.client_secret
        self.tempo = TempoStandIn(options.clock, options.client_id, options.client_secret)
        self.configure_defaults()

    # ----- configuration -------------------------------------------------------------

    def configure_defaults(self) -> None:
        o = self.options
        self.set(latency=o.latency, fault_rate=o.fault_rate, fault_kinds=list(o.fault_kinds),
                 rate_per_second=o.rate_per_second, rate_per_hour=o.rate_per_hour,
                 rate_per_12h=o.rate_per_12h, dst_stamps=o.dst_stamps)

    def reset(self) -> None:
        """Back to the start options: no stats, scripts, hides or quota history."""
        self.stats.reset()
        self.faults.clear()
        self.quota.clear()
        self.tempo.reset()
        with self._lock:
            self._hides.clear()
        self.configure_defaults()

    def set(self, **settings: Any) -> None:
        """Change run-time settings (see ``config()`` for the keys); ValueError if bad."""
        unknown = set(settings) - {
            "latency", "fault_rate", "fault_kinds", "rate_per_second", "rate_per_hour",
            "rate_per_12h", "hide", "unhide", "dst_stamps",
        }
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        if "latency" in settings:
            latency = float(settings["latency"])
            if latency < 0:
                raise ValueError("latency cannot be negative")
            self.latency = latency
        if "dst_stamps" in settings:
            if settings["dst_stamps"] not in data.DST_STAMPS:
                raise ValueError(f"dst_stamps must be one of {', '.join(data.DST_STAMPS)}")
            self.dst_stamps = str(settings["dst_stamps"])
        if "fault_rate" in settings or "fault_kinds" in settings:
            rate = settings.get("fault_rate")
            kinds = settings.get("fault_kinds")
            self.faults.set_random(None if rate is None else float(rate),
                                   None if kinds is None else list(kinds))
        for key, window in (("rate_per_second", SECOND), ("rate_per_hour", HOUR),
                            ("rate_per_12h", TWELVE_HOURS)):
            if key in settings:
                value = settings[key]
                self.quota.set_limit(window, None if value is None else int(value))
        if settings.get("unhide"):
            with self._lock:
                self._hides.clear()
        for item in settings.get("hide") or []:
            self.hide_day(item["pdl"], item["day"], item.get("until"), item.get("kind"))

    def config(self) -> dict[str, Any]:
        limits = self.quota.limits
        with self._lock:
            hides = [
                {"pdl": h.pdl, "day": h.day.isoformat(),
                 "until": None if h.until is None else datetime.fromtimestamp(
                     h.until, PARIS).isoformat(),
                 "kind": None if h.kind is None else str(h.kind)}
                for h in self._hides
            ]
        return {
            "latency": self.latency, "fault_rate": self.faults.rate,
            "fault_kinds": list(self.faults.kinds), "rate_per_second": limits[SECOND],
            "rate_per_hour": limits[HOUR], "rate_per_12h": limits[TWELVE_HOURS],
            "hide": hides, "pending_faults": self.faults.pending(),
            "dst_stamps": self.dst_stamps,
            "now": self.clock.now().astimezone(PARIS).isoformat(timespec="seconds"),
        }

    def hide_day(self, pdl: str, day: date | str, until: datetime | str | None = None,
                 kind: Kind | str | None = None) -> None:
        """Make ``day`` of ``pdl`` missing (every kind, or just ``kind``) until ``until``."""
        if not PDL_RE.match(pdl):
            raise ValueError(f"not a PDL: {pdl!r}")
        the_day = date.fromisoformat(day) if isinstance(day, str) else day
        moment = parse_instant(until) if isinstance(until, str) else until
        entry = Hide(pdl, the_day, None if moment is None else moment.timestamp(),
                     None if kind is None else Kind(kind))
        with self._lock:
            self._hides.append(entry)

    def is_hidden(self, pdl: str, kind: Kind, day: date) -> bool:
        now = self.clock.time()
        with self._lock:
            return any(
                h.pdl == pdl and h.day == day and (h.kind is None or h.kind is kind)
                and (h.until is None or now < h.until)
                for h in self._hides
            )

    # ----- entry point ---------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        if (tempo := self.tempo.handle(req)) is not None:  # before /api/ (the Conso API)
            tempo.delay += self.latency
            self.stats.record(tempo.provider, None, tempo.endpoint,
                              0 if tempo.drop else tempo.status)
            return tempo
        if req.path.startswith("/_sim/"):
            resp = self._control(req)
            resp.counted = False
            resp.provider, resp.endpoint = "sim", req.path[len("/_sim/"):]
            return resp
        route = self._route(req)
        resp = self._serve(req, route)
        resp.provider, resp.endpoint, resp.pdl = route.provider, route.endpoint, route.pdl
        resp.delay += self.latency
        self.stats.record(route.provider, route.pdl, route.endpoint,
                          0 if resp.drop else resp.status)
        return resp

    def _serve(self, req: Request, route: Route) -> Response:
        delay = trickle = 0.0
        fault = self.faults.next_fault(req.target)
        if fault is not None and fault.startswith("slow:"):
            delay, fault = float(fault.split(":", 1)[1]), None
        elif fault is not None and fault.startswith("trickle"):
            trickle, fault = float(fault.partition(":")[2] or 1.0), None
        if fault is not None:
            resp = self._fault_response(route.provider, fault)
        elif route.quota and (refusal := self.quota.admit(route.provider, self.clock.time())):
            name = "Quota Q3 reached" if refusal.window <= SECOND else "Quota Q4 reached"
            err = EnedisError(429, name, f"Call threshold allowed on "
                              f"{threshold_text(refusal.wait)}")
            resp = self._error(route.provider, err)
        else:
            try:
                resp = route.handler(req)
            except EnedisError as err:
                resp = self._error(route.provider, err)
        resp.delay += delay
        resp.trickle = trickle
        return resp

    # ----- provider-styled errors and faults -----------------------------------------

    def _error(self, provider: str, err: EnedisError) -> Response:
        if provider == CONSO:
            if err.status == 401:
                return json_response(401, {"status": 401, "message": CONSO_UNAUTHORIZED,
                                           "error": "Unauthorized"})
            return json_response(err.status, {"status": err.status, "message": CONSO_ENEDIS,
                                              "error": err.body()})
        if provider == MED:
            return json_response(err.status, {"detail": f"{err.code}: {err.description}"})
        if err.status == 401:
            return json_response(401, INVALID_CREDENTIALS)
        return json_response(err.status, err.body())

    def _fault_response(self, provider: str, fault: str) -> Response:
        if fault == "drop":
            return Response(0, drop=True)
        if fault == "badjson":
            return Response(200, BAD_JSON.encode())
        if fault.startswith("html"):
            status = int(fault.split(":", 1)[1]) if ":" in fault else 200
            return Response(status, HTML_PAGE.encode(), content_type="text/html; charset=utf-8")
        if fault.startswith("429:"):
            wait = int(fault.split(":", 1)[1])
            resp = self._error(provider, EnedisError(
                429, "Quota Q4 reached", f"Call threshold allowed on {threshold_text(wait)}"))
            resp.headers["Retry-After"] = str(wait)
            return resp
        err = {
            "500": technical(),
            "503": EnedisError(503, "service_unavailable",
                               "The service is temporarily unavailable."),
            "429": EnedisError(429, "Quota Q3 reached", "Call threshold allowed on 0:00:01"),
            "404": no_data(),
            "401": EnedisError(401, "invalid_token", "Invalid Credentials"),
            "403": consent_revoked(),
            "0007": not_holder(),
        }[fault]
        return self._error(provider, err)

    # ----- routing -------------------------------------------------------------------

    def _route(self, req: Request) -> Route:
        path = req.path
        if path.startswith("/api/"):
            kind = path[len("/api/"):].strip("/")
            return Route(CONSO, kind, _pdl(req.param("pointId", "prm")),
                         lambda r: self._conso(r, kind))
        if path.rstrip("/") == "/oauth2/v3/token":
            return Route(DATACONNECT, "token", None, self._token, quota=False)
        if path.startswith("/mesure_synchrone_auto/v2/"):
            name = path[len("/mesure_synchrone_auto/v2/"):].strip("/")
            return Route(DATACONNECT, name, _pdl(req.param("pointId")),
                         lambda r: self._dc_2026(r, name))
        if m := _V5.match(path):
            prefix, name = m.group(1), m.group(2)
            return Route(DATACONNECT, name, _pdl(req.param("usage_point_id")),
                         lambda r: self._dc_v5(r, prefix, name))
        if path.rstrip("/") == "/situation_contrat_auto/v1" or path.startswith(
                "/situation_contrat_auto/v1/"):
            pdl = path[len("/situation_contrat_auto/v1"):].strip("/")
            return Route(DATACONNECT, "situation_contrat_auto",
                         _pdl(pdl) or _pdl(req.param("pointId")),
                         lambda r: self._dc_contract(r, pdl))
        if m := _MED_DATA.match(path):
            name, pdl, start, end = m.group(1), m.group(2), m.group(3), m.group(4)
            return Route(MED, name, _pdl(pdl),
                         lambda r: self._med_data(r, name, pdl, start, end))
        if m := _MED_INFO.match(path):
            name, pdl = m.group(1), m.group(2)
            return Route(MED, name, _pdl(pdl), lambda r: self._med_info(r, name, pdl))
        return Route(UNKNOWN, UNKNOWN, None, self._not_found, quota=False)

    def _not_found(self, req: Request) -> Response:
        return json_response(404, {"error": "not_found",
                                   "error_description": f"No resource at {req.path}"})

    @staticmethod
    def _method(req: Request, method: str) -> Response | None:
        if req.method != method:
            return json_response(405, {"error": "method_not_allowed",
                                       "error_description": f"Use {method}"})
        return None

    def _query(self, pdl: str, kind: Kind, series: Series, start: date, end: date) -> Response:
        q = Query(pdl, kind, series, start, end)
        days = served_days(q, self.clock.now(), self.is_hidden)
        return json_response(200, bodies.body_2026(q, days, self.dst_stamps))

    def _days(self, q: Query) -> list[date]:
        return served_days(q, self.clock.now(), self.is_hidden)

    # ----- Conso API -----------------------------------------------------------------

    def _conso(self, req: Request, kind_name: str) -> Response:
        if (bad := self._method(req, "GET")) is not None:
            return bad
        header = req.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        covered = auth.conso_pdls(token, self.clock.time()) if token else None
        if covered is None:
            raise EnedisError(401, "Unauthorized", CONSO_UNAUTHORIZED)
        spec = TYPES_2026.get(kind_name) or TYPES_V5.get(kind_name)
        if spec is None:
            return json_response(404, {"status": 404, "message": f"Type inconnu : {kind_name}",
                                       "error": "not_found"})
        pdl = req.param("pointId", "prm")
        start = _parse_day(req.param("dateDebut", "start"))
        end = _parse_day(req.param("dateFin", "end"))
        if _pdl(pdl) is None or start is None or end is None:
            return json_response(400, {
                "status": 400,
                "message": "Paramètres invalides : pointId (14 chiffres), dateDebut et dateFin "
                           "(YYYY-MM-DD) sont requis",
                "error": "Bad Request"})
        assert pdl is not None
        if pdl not in covered:
            raise EnedisError(401, "Unauthorized", CONSO_UNAUTHORIZED)
        q = Query(pdl, spec[0], spec[1], start, end)
        days = self._days(q)
        if kind_name in TYPES_2026:
            return json_response(200, bodies.body_2026(q, days, self.dst_stamps))
        return json_response(200, bodies.meter_reading(q, days, self.dst_stamps))

    # ----- Data Connect --------------------------------------------------------------

    def _token(self, req: Request) -> Response:
        if (bad := self._method(req, "POST")) is not None:
            return bad
        if any(k in req.query for k in ("client_id", "client_secret")):
            return json_response(400, {
                "error": "invalid_request",
                "error_description": "Client credentials are not accepted in the query string."})
        form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        offered: list[tuple[str, str]] = []
        header = req.headers.get("authorization", "")
        if header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            offered.append((user, password))
        if "client_id" in form or "client_secret" in form:
            offered.append((form.get("client_id", [""])[0], form.get("client_secret", [""])[0]))
        if form.get("grant_type", [""])[0] != "client_credentials":
            return json_response(400, {
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be client_credentials."})
        if not offered or any(c != (self.client_id, self.client_secret) for c in offered):
            return json_response(401, {"error": "invalid_client",
                                       "error_description": "Client authentication failed."})
        token = self.tokens.issue(self.clock.time())
        return json_response(200, {"access_token": token, "token_type": "Bearer",
                                   "expires_in": str(auth.TOKEN_LIFETIME)})

    def _dc_auth(self, req: Request) -> None:
        header = req.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token or not self.tokens.valid(token, self.clock.time()):
            raise EnedisError(401, "900901", "Invalid Credentials")

    def _dc_2026(self, req: Request, name: str) -> Response:
        if (bad := self._method(req, "GET")) is not None:
            return bad
        self._dc_auth(req)
        spec = TYPES_2026.get(name)
        if spec is None:
            return self._not_found(req)
        pdl = _pdl(req.param("pointId"))
        start, end = _parse_day(req.param("dateDebut")), _parse_day(req.param("dateFin"))
        if pdl is None or start is None or end is None:
            raise technical("The request does not match the API description "
                            "(pointId, dateDebut, dateFin).")
        if spec[0] is Kind.MAX_POWER and (req.param("mesuresPas") != "P1D"
                                          or req.param("grandeurPhysique") != "PMA"):
            raise technical("The request does not match the API description "
                            "(mesuresPas=P1D, grandeurPhysique=PMA).")
        return self._query(pdl, spec[0], spec[1], start, end)

    def _dc_v5(self, req: Request, prefix: str, name: str) -> Response:
        if (bad := self._method(req, "GET")) is not None:
            return bad
        self._dc_auth(req)
        spec = TYPES_V5.get(name)
        if spec is None or V5_PREFIX.get(prefix) != name:
            return self._not_found(req)
        pdl = _pdl(req.param("usage_point_id"))
        start, end = _parse_day(req.param("start")), _parse_day(req.param("end"))
        if pdl is None or start is None or end is None:
            raise invalid("usage_point_id (14 digits), start and end (YYYY-MM-DD) are required.")
        q = Query(pdl, spec[0], spec[1], start, end)
        body = bodies.meter_reading(q, self._days(q), self.dst_stamps)
        return json_response(200, {"meter_reading": body})

    def _dc_contract(self, req: Request, pdl: str) -> Response:
        if (bad := self._method(req, "GET")) is not None:
            return bad
        self._dc_auth(req)
        if not pdl or _pdl(pdl) is None:
            raise technical("The request does not match the API description "
                            "(the PDL goes in the path).")
        if not data.profile(pdl).consent:
            raise consent_revoked()
        return json_response(200, bodies.situation_contrat(pdl))

    # ----- MyElectricalData ----------------------------------------------------------

    def _med_auth(self, req: Request) -> Response | None:
        if not req.headers.get("authorization", "").strip():
            return json_response(401, {"detail": "Missing or invalid Authorization token."})
        return None

    def _med_data(self, req: Request, name: str, pdl: str, start: str, end: str) -> Response:
        if (bad := self._method(req, "GET") or self._med_auth(req)) is not None:
            return bad
        kind, series = TYPES_V5[name]
        the_start, the_end = _parse_day(start), _parse_day(end)
        if _pdl(pdl) is None or the_start is None or the_end is None:
            return json_response(400, {"detail": "Invalid PDL or dates (YYYY-MM-DD)."})
        q = Query(pdl, kind, series, the_start, the_end)
        body = bodies.meter_reading(q, self._days(q), self.dst_stamps)
        return json_response(200, {"meter_reading": body})

    def _med_info(self, req: Request, name: str, pdl: str) -> Response:
        if (bad := self._method(req, "GET") or self._med_auth(req)) is not None:
            return bad
        if _pdl(pdl) is None:
            return json_response(400, {"detail": "Invalid PDL."})
        prof = data.profile(pdl)
        if name == "valid_access":
            calls = self.stats.count(provider=MED, pdl=pdl)
            tomorrow = self.clock.now().astimezone(PARIS).date().toordinal() + 1
            return json_response(200, {
                "valid": prof.consent,
                "consent_expiration_date": bodies.CONSENT_EXPIRATION if prof.consent else None,
                "call_number": calls, "quota_reached": False, "quota_limit": 50,
                "quota_reset_at": f"{date.fromordinal(tomorrow).isoformat()}T00:00:00+00:00",
                "ban": False,
            })
        if not prof.consent:
            raise consent_revoked()
        if name == "contracts":
            return json_response(200, bodies.v5_contracts(pdl))
        return json_response(200, {"customer": {"usage_points": [{"usage_point": {
            "usage_point_id": pdl, "usage_point_status": "com", "meter_type": "AMM",
            "usage_point_addresses": {"street": "1 rue de la Simulation", "locality": None,
                                      "postal_code": "75001", "insee_code": "75101",
                                      "city": "PARIS", "country": "France"}}}]}})

    # ----- control -------------------------------------------------------------------

    def make_conso_token(self, pdls: list[str], lifetime: float = auth.CONSO_LIFETIME) -> str:
        return auth.make_conso_token(pdls, self.clock.time(), lifetime)

    def _tempo_control(self, payload: Any) -> dict[str, Any]:
        """``POST /_sim/tempo``: ``{"set_colour": {"YYYY-MM-DD": "red"}, "unknown":
        ["YYYY-MM-DD", ...], "unknown_at": "rte"|"community", "script": {"rte": [...]}}``."""
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
        unknown_keys = set(payload) - {"set_colour", "unknown", "unknown_at", "script"}
        if unknown_keys:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown_keys))}")
        for day, colour in dict(payload.get("set_colour") or {}).items():
            self.tempo.set_colour(date.fromisoformat(day), Colour(colour))
        for day in payload.get("unknown") or []:
            self.tempo.unknown(date.fromisoformat(day), payload.get("unknown_at"))
        for source, faults in dict(payload.get("script") or {}).items():
            self.tempo.script(source, list(faults))
        return {"ok": True}

    def _control(self, req: Request) -> Response:
        name = req.path[len("/_sim/"):].strip("/")
        try:
            payload: Any = json.loads(req.body) if req.body.strip() else {}
        except ValueError:
            return json_response(400, {"error": "the body is not JSON"})
        try:
            if name == "stats" and req.method == "GET":
                return json_response(200, self.stats.snapshot())
            if name == "config" and req.method == "GET":
                return json_response(200, self.config())
            if name == "reset" and req.method == "POST":
                self.reset()
                return json_response(200, {"ok": True})
            if name == "reset_stats" and req.method == "POST":
                self.stats.reset()
                return json_response(200, {"ok": True})
            if name == "script" and req.method == "POST":
                if not isinstance(payload, dict) or not isinstance(payload.get("faults"), list):
                    raise ValueError('expected {"path": regex, "faults": [...]}')
                self.faults.script(str(payload.get("path", ".*")), payload["faults"])
                return json_response(200, {"ok": True, "pending": self.faults.pending()})
            if name == "config" and req.method == "POST":
                if not isinstance(payload, dict):
                    raise ValueError("expected a JSON object")
                self.set(**payload)
                return json_response(200, self.config())
            if name == "tempo" and req.method == "POST":
                return json_response(200, self._tempo_control(payload))
            if name == "conso_token" and req.method == "GET":
                pdls = [p for v in req.query.get("pdl", []) for p in v.split(",") if p]
                return json_response(200, {"token": self.make_conso_token(pdls)})
        except (ValueError, TypeError, KeyError, re.error) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(404, {"error": f"no control endpoint {req.method} {req.path}"})
