"""Tempo colours from RTE's official API and from the keyless community api-couleur-tempo.fr.

Both clients work over an injected :class:`httpx.Client` (closed only by its creator)
and answer :class:`TempoDay` values: one Tempo day (06:00 -> 06:00 Paris, named by the
date it starts on) and its colour, or ``None`` when the source does not know it yet.
An unknown colour is never turned into blue (api-couleur-tempo's ``codeJour: 0``, a
missing or unexpected RTE ``value``, a day RTE has not published).

Sources (facts and provenance in ``../shared/tariffs.md`` section 2):

* RTE "Tempo Like Supply Contract" v1, OAuth2 client credentials:
  ``POST /token/oauth/`` (HTTP Basic, ``expires_in`` 7200 s), then
  ``GET /open_api/tempo_like_supply_contract/v1/tempo_like_calendars?start_date=
  2026-11-01T00:00:00+01:00&end_date=...`` answering
  ``{"tempo_like_calendars": {"start_date", "end_date", "values": [{"start_date",
  "end_date", "value": "BLUE"|"WHITE"|"RED", "updated_date"}]}}``, newest first, each
  day given midnight to midnight. At most 366 days per call, ``end_date`` at most D+2.
* api-couleur-tempo.fr: ``GET /api/jourTempo/{YYYY-MM-DD}`` (also ``today``,
  ``tomorrow``) answering ``{"dateJour", "codeJour": 0|1|2|3, "periode", "libCouleur"}``
  and ``GET /api/joursTempo?periode=2025-2026`` answering a list of those.

Exception tree (every exception carries ``source``, ``endpoint`` — a path without query
string — and ``status``; never a credential or a token)::

    TempoError
    ├── TempoTransportError     no HTTP answer (refused, reset, dropped)
    │   └── TempoTimeout        connect/read/write/pool timeout
    ├── TempoApiError           an HTTP error status (``code``: the source's error code)
    │   └── TempoAuthError      401/403, or the token endpoint refused the credentials
    └── TempoBadResponse        2xx with a body that is not the documented shape
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import httpx

from linky2mqtt.tariffs import PARIS, Colour

__all__ = [
    "COMMUNITY",
    "COMMUNITY_BASE",
    "RTE",
    "RTE_BASE",
    "RTE_CALENDAR_PATH",
    "RTE_TOKEN_PATH",
    "CommunityTempo",
    "RteTempo",
    "TempoApiError",
    "TempoAuthError",
    "TempoBadResponse",
    "TempoDay",
    "TempoError",
    "TempoSource",
    "TempoSources",
    "TempoTimeout",
    "TempoTransportError",
    "season_of",
]

RTE = "rte"
COMMUNITY = "api-couleur-tempo"
RTE_BASE = "https://digital.iservices.rte-france.com"
RTE_TOKEN_PATH = "/token/oauth/"  # noqa: S105 - a path, not a secret
RTE_CALENDAR_PATH = "/open_api/tempo_like_supply_contract/v1/tempo_like_calendars"
RTE_MAX_DAYS = 366
COMMUNITY_BASE = "https://www.api-couleur-tempo.fr"
TOKEN_MARGIN = 60.0  # seconds: renew a token this long before it expires

_RTE_COLOURS = {"BLUE": Colour.BLUE, "WHITE": Colour.WHITE, "RED": Colour.RED}
_CODES = {1: Colour.BLUE, 2: Colour.WHITE, 3: Colour.RED}  # 0: unknown


class TempoError(Exception):
    """Base class: ``str()`` is one line with the source, endpoint and status."""

    def __init__(self, message: str, *, source: str | None = None, endpoint: str | None = None,
                 status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.endpoint = endpoint
        self.status = status
        self.code = code

    def __str__(self) -> str:
        where = " ".join(p for p in (self.source, self.endpoint) if p)
        head = " ".join(p for p in (None if self.status is None else str(self.status),
                                    self.code) if p)
        text = f"{head}: {self.message}" if head else self.message
        return f"{where}: {text}" if where else text


class TempoTransportError(TempoError):
    """No HTTP answer."""


class TempoTimeout(TempoTransportError):
    """The source did not answer in time."""


class TempoApiError(TempoError):
    """An HTTP error status."""


class TempoAuthError(TempoApiError):
    """Credentials refused (401/403 or the token endpoint said no)."""


class TempoBadResponse(TempoError):
    """A 2xx answer whose body is not the documented shape."""


@dataclass(frozen=True)
class TempoDay:
    """A Tempo day: ``day`` runs 06:00 ``day`` -> 06:00 ``day + 1`` (Paris)."""

    day: date
    colour: Colour | None  # None: unknown (not published yet, or the source said so)
    source: str
    updated: datetime | None = None  # when the source says the colour was set


def season_of(day: date) -> str:
    """The Tempo season a day belongs to, ``"2025-2026"`` (seasons start on September 1)."""
    first = day.year if day.month >= 9 else day.year - 1
    return f"{first}-{first + 1}"


class TempoSource(Protocol):
    name: str

    def days(self, start: date, end: date) -> dict[date, TempoDay]:
        """Colours of ``[start, end)`` the source knows (absent: not published)."""
        ...


def _request(http: httpx.Client, source: str, method: str, url: str, endpoint: str,
             **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TempoTimeout(f"no answer in time ({type(exc).__name__})", source=source,
                           endpoint=endpoint) from None
    except httpx.TransportError as exc:
        raise TempoTransportError(f"no answer ({type(exc).__name__})", source=source,
                                  endpoint=endpoint) from None


def _json(resp: httpx.Response, source: str, endpoint: str) -> Any:
    try:
        return resp.json()
    except (ValueError, UnicodeDecodeError):
        kind = resp.headers.get("content-type", "?").split(";")[0]
        raise TempoBadResponse(f"the body is not JSON ({kind}, {len(resp.content)} bytes)",
                               source=source, endpoint=endpoint,
                               status=resp.status_code) from None


def _raise_for_status(resp: httpx.Response, source: str, endpoint: str,
                      auth: tuple[int, ...] = (401, 403)) -> None:
    if resp.status_code < 400:
        return
    code = message = None
    try:
        body = resp.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        raw_code = body.get("error") or body.get("title")
        raw_message = body.get("error_description") or body.get("detail") or body.get("message")
        code = str(raw_code)[:80] if raw_code else None
        message = str(raw_message)[:200] if raw_message else None
    message = message or resp.reason_phrase or "error"
    cls = TempoAuthError if resp.status_code in auth else TempoApiError
    raise cls(message, source=source, endpoint=endpoint, status=resp.status_code, code=code)


def _paris_midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=PARIS).isoformat()


class RteTempo:
    """RTE's Tempo calendar (OAuth2 client credentials; the token is cached and renewed)."""

    name = RTE

    def __init__(self, http: httpx.Client, client_id: str, client_secret: str, *,
                 base_url: str = RTE_BASE, clock: Callable[[], float] = time.time) -> None:
        self._http = http
        self._auth = (client_id, client_secret)
        self._base = base_url.rstrip("/")
        self._clock = clock
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None  # (access token, expiry epoch)

    def __repr__(self) -> str:
        return f"RteTempo(base_url={self._base!r})"  # never the credentials

    def _access_token(self, renew: bool = False) -> str:
        with self._lock:
            now = self._clock()
            if not renew and self._token is not None and now < self._token[1]:
                return self._token[0]
            resp = _request(self._http, RTE, "POST", self._base + RTE_TOKEN_PATH,
                            RTE_TOKEN_PATH, auth=self._auth,
                            data={"grant_type": "client_credentials"})
            # OAuth2 answers 400 invalid_client / 401 for bad credentials
            _raise_for_status(resp, RTE, RTE_TOKEN_PATH, auth=(400, 401, 403))
            body = _json(resp, RTE, RTE_TOKEN_PATH)
            token = body.get("access_token") if isinstance(body, dict) else None
            try:
                lifetime = float(body.get("expires_in", 0)) if isinstance(body, dict) else 0.0
            except (TypeError, ValueError):
                lifetime = 0.0
            if not isinstance(token, str) or not token or lifetime <= 0:
                raise TempoBadResponse("the token answer has no access_token/expires_in",
                                       source=RTE, endpoint=RTE_TOKEN_PATH,
                                       status=resp.status_code)
            self._token = (token, now + max(0.0, lifetime - TOKEN_MARGIN))
            return token

    def days(self, start: date, end: date) -> dict[date, TempoDay]:
        """Colours of ``[start, end)``; RTE lists only published days (so not tomorrow
        before about 10:40 Paris). Spans over 366 days take one call per 366 days;
        ``end`` must be at most D+2 (RTE answers 400 otherwise)."""
        if not start < end:
            raise ValueError(f"empty range {start}..{end}")
        out: dict[date, TempoDay] = {}
        chunk = start
        while chunk < end:
            stop = min(end, chunk + timedelta(days=RTE_MAX_DAYS))
            out.update(self._calendar(chunk, stop))
            chunk = stop
        return out

    def _calendar(self, start: date, end: date) -> dict[date, TempoDay]:
        params = {"start_date": _paris_midnight(start), "end_date": _paris_midnight(end)}
        url = self._base + RTE_CALENDAR_PATH
        resp = None
        for attempt in (0, 1):
            token = self._access_token(renew=attempt == 1)
            resp = _request(self._http, RTE, "GET", url, RTE_CALENDAR_PATH, params=params,
                            headers={"Authorization": f"Bearer {token}"})
            if resp.status_code != 401:
                break
        assert resp is not None
        _raise_for_status(resp, RTE, RTE_CALENDAR_PATH)
        return {d: v for d, v in parse_rte(_json(resp, RTE, RTE_CALENDAR_PATH)).items()
                if start <= d < end}


def parse_rte(body: Any) -> dict[date, TempoDay]:
    """RTE's calendar body -> days. A value other than BLUE/WHITE/RED (or none) is unknown."""
    root = body.get("tempo_like_calendars") if isinstance(body, dict) else None
    blocks = root if isinstance(root, list) else [root]  # one doc shows a list; code, one
    out: dict[date, TempoDay] = {}
    for block in blocks:
        values = block.get("values") if isinstance(block, dict) else None
        if not isinstance(values, list):
            raise TempoBadResponse("no tempo_like_calendars.values list", source=RTE,
                                   endpoint=RTE_CALENDAR_PATH)
        for item in values:
            try:
                day = datetime.fromisoformat(str(item["start_date"])).date()
            except (KeyError, TypeError, ValueError):
                raise TempoBadResponse(f"a value without a readable start_date: {item!r:.120}",
                                       source=RTE, endpoint=RTE_CALENDAR_PATH) from None
            updated = None
            if isinstance(item.get("updated_date"), str):
                try:
                    updated = datetime.fromisoformat(item["updated_date"])
                except ValueError:
                    updated = None
            colour = _RTE_COLOURS.get(str(item.get("value", "")).upper())
            out[day] = TempoDay(day, colour, RTE, updated)
    return out


class CommunityTempo:
    """api-couleur-tempo.fr (no key): one day, or a whole season in one call."""

    name = COMMUNITY

    def __init__(self, http: httpx.Client, *, base_url: str = COMMUNITY_BASE) -> None:
        self._http = http
        self._base = base_url.rstrip("/")

    def day(self, day: date) -> TempoDay:
        endpoint = f"/api/jourTempo/{day.isoformat()}"
        resp = _request(self._http, COMMUNITY, "GET", self._base + endpoint, endpoint,
                        headers={"Accept": "application/json"})
        if resp.status_code == 404:
            return TempoDay(day, None, COMMUNITY)  # a day it has no row for: unknown
        _raise_for_status(resp, COMMUNITY, endpoint)
        parsed = parse_community(_json(resp, COMMUNITY, endpoint), endpoint)
        if parsed.day != day:
            raise TempoBadResponse(f"asked {day}, answered {parsed.day}", source=COMMUNITY,
                                   endpoint=endpoint, status=resp.status_code)
        return parsed

    def season(self, season: str) -> dict[date, TempoDay]:
        """Every day of a season (``"2025-2026"``) the source lists."""
        endpoint = "/api/joursTempo"
        resp = _request(self._http, COMMUNITY, "GET", self._base + endpoint, endpoint,
                        params={"periode": season}, headers={"Accept": "application/json"})
        _raise_for_status(resp, COMMUNITY, endpoint)
        body = _json(resp, COMMUNITY, endpoint)
        if not isinstance(body, list):
            raise TempoBadResponse("expected a list of days", source=COMMUNITY,
                                   endpoint=endpoint, status=resp.status_code)
        days = (parse_community(item, endpoint) for item in body)
        return {d.day: d for d in days}

    def days(self, start: date, end: date) -> dict[date, TempoDay]:
        """``[start, end)``: one call for a day or two, else one call per season."""
        if not start < end:
            raise ValueError(f"empty range {start}..{end}")
        if (end - start).days <= 2:
            return {d.day: d for d in (self.day(start + timedelta(days=i))
                                       for i in range((end - start).days))}
        out: dict[date, TempoDay] = {}
        for season in sorted({season_of(start), season_of(end - timedelta(days=1))}):
            out.update(self.season(season))
        return {d: v for d, v in out.items() if start <= d < end}


def parse_community(item: Any, endpoint: str = "/api/jourTempo") -> TempoDay:
    """``{"dateJour": "2026-01-06", "codeJour": 3, ...}`` -> a day; code 0 (or any code
    but 1, 2, 3) is unknown."""
    if not isinstance(item, dict):
        raise TempoBadResponse(f"expected a day object, got {json.dumps(item)[:80]}",
                               source=COMMUNITY, endpoint=endpoint)
    try:
        day = date.fromisoformat(str(item["dateJour"])[:10])
    except (KeyError, ValueError):
        raise TempoBadResponse(f"no readable dateJour in {json.dumps(item)[:120]}",
                               source=COMMUNITY, endpoint=endpoint) from None
    code = item.get("codeJour")
    colour = _CODES.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    return TempoDay(day, colour, COMMUNITY)


class TempoSources:
    """Sources in order of preference (RTE first when configured, then the community).

    :meth:`days` asks each source in turn for the days still missing or unknown; a source
    that fails is skipped. It raises the last error only when every source failed; days
    nobody knows come back with ``colour=None``.
    """

    def __init__(self, sources: Sequence[TempoSource]) -> None:
        if not sources:
            raise ValueError("no Tempo source")
        self.sources = list(sources)
        self.failures: list[TempoError] = []  # of the last call, for the status payload

    def days(self, start: date, end: date) -> dict[date, TempoDay]:
        wanted = [start + timedelta(days=i) for i in range((end - start).days)]
        known: dict[date, TempoDay] = {}
        self.failures = []
        answered = False
        for source in self.sources:
            missing = [d for d in wanted if d not in known or known[d].colour is None]
            if not missing:
                break
            try:
                got = source.days(missing[0], missing[-1] + timedelta(days=1))
            except TempoError as exc:
                self.failures.append(exc)
                continue
            answered = True
            for d in missing:
                if d in got and (d not in known or got[d].colour is not None):
                    known[d] = got[d]
        if not answered:
            raise self.failures[-1]
        first = self.sources[0].name
        return {d: known.get(d, TempoDay(d, None, first)) for d in wanted}
