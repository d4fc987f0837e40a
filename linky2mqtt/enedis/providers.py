"""The three upstream providers: one :class:`Provider` description each, and their quirks.

Everything the product knows about a provider is in its description (:data:`REGISTRY`,
:func:`provider`): default URL, auth kind, the credentials it takes, measure and contract
paths, default quotas and who shares them (``scope_shape``), the days one call may span
(:data:`DAYS_PER_CALL`), whether its credentials list the PDLs they cover (``meters: auto``)
and what to do when they are refused. The configuration, the budgets, the client and the
bridge read these descriptions; no module outside ``linky2mqtt/enedis/`` (and the simulator,
which plays the upstream) branches on a provider's name. Error bodies need no per-provider
mapping: :func:`error_details` reads every provider's format.

* ``conso`` (Conso API, https://conso.boris.sh): ``GET /api/{type}`` with the 2026 type
  names and ``pointId``/``dateDebut``/``dateFin``; ``Authorization: Bearer <token>``; the
  token is a JWT whose ``sub`` claim lists the PDLs it covers. No contract endpoint.
* ``dataconnect`` (Enedis Data Connect, https://gw.ext.prod.api.enedis.fr):
  ``GET /mesure_synchrone_auto/v2/{type}``, same parameters; OAuth2 client credentials
  (``POST /oauth2/v3/token``, credentials in HTTP Basic and in the form body); contract at
  ``/situation_contrat_auto/v1/{pdl}``.
* ``myelectricaldata`` (https://www.myelectricaldata.fr): path-style v5 URLs
  ``/{type}/{pdl}/start/{date}/end/{date}``, raw ``Authorization: <token>``; contract at
  ``/contracts/{pdl}``.

Nothing here talks to the network: the client sends the :class:`Call` objects built here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Literal

from linky2mqtt.model import Kind, Series

from .errors import AuthError, BadResponse

__all__ = [
    "DAYS_PER_CALL",
    "DEFAULT_BASE_URLS",
    "PROVIDERS",
    "REGISTRY",
    "Call",
    "Provider",
    "ProviderSettings",
    "conso_token_pdls",
    "contract_call",
    "detail_text",
    "error_details",
    "measure_call",
    "next_access_epoch",
    "parse_token",
    "provider",
    "retry_hint",
    "threshold_seconds",
    "token_call",
]

TYPES_2026: dict[tuple[Series, Kind], str] = {
    ("daily", Kind.CONSUMPTION): "consommation_quotidienne",
    ("curve", Kind.CONSUMPTION): "courbe_de_charge_consommation",
    ("daily", Kind.MAX_POWER): "puissance_conso_max_quotidienne",
    ("daily", Kind.PRODUCTION): "production_quotidienne",
    ("curve", Kind.PRODUCTION): "courbe_de_charge_production",
}
TYPES_V5: dict[tuple[Series, Kind], str] = {
    ("daily", Kind.CONSUMPTION): "daily_consumption",
    ("curve", Kind.CONSUMPTION): "consumption_load_curve",
    ("daily", Kind.MAX_POWER): "daily_consumption_max_power",
    ("daily", Kind.PRODUCTION): "daily_production",
    ("curve", Kind.PRODUCTION): "production_load_curve",
}

DAYS_PER_CALL: Mapping[Series, int] = MappingProxyType({"daily": 365, "curve": 7})
"""Days one measure call may span (every provider relays Enedis's limits): a load-curve
call covers at most 7 days, a daily call 365. The one copy the product uses (the
simulator, which plays the upstream, keeps its own)."""

DAY = 86400.0

AuthKind = Literal["bearer", "raw", "oauth2"]
"""``bearer``: ``Authorization: Bearer <token>``; ``raw``: ``Authorization: <token>``;
``oauth2``: client credentials exchanged for a bearer token (``POST /oauth2/v3/token``)."""

ScopeShape = Literal["process", "account", "account_and_meter"]
"""Who shares a provider's quota: the whole process (one scope named after the provider,
each window the strictest any account asks), each account (``<provider>:<account>``), or
each account for its short windows (``<provider>:account:<account>``) and each meter for
its long ones (``<provider>:<pdl>``)."""


@dataclass(frozen=True)
class Provider:
    """Everything the product knows about one upstream provider.

    ``quotas``: the default request windows, (seconds, limit) pairs keyed by scope prefix
    (see :data:`ScopeShape` and :func:`linky2mqtt.enedis.budget.scopes_for`).
    """

    name: str
    base_url: str
    auth: AuthKind
    credentials: tuple[str, ...]  # the config keys of the account's credentials
    url_style: Literal["query", "path"]  # 2026 ``{prefix}/{type}?pointId=`` or v5 path-style
    measure_prefix: str
    contract_path: str | None  # with ``{pdl}``; None: no contract endpoint
    contract_shape: Literal["dataconnect", "v5"] | None
    quotas: Mapping[str, tuple[tuple[float, int], ...]]
    scope_shape: ScopeShape
    lists_pdls: bool  # the credentials say which PDLs they cover (``meters: auto``)
    auth_hint: str  # what the user does when the credentials are refused
    days_per_call: Mapping[Series, int] = field(default_factory=lambda: DAYS_PER_CALL)

    @property
    def takes_token(self) -> bool:
        return self.credentials == ("token",)

    @property
    def credentials_text(self) -> str:
        return " and ".join(self.credentials)

    def scopes(self, account: str, pdl: str | None) -> list[str]:
        """The budget scopes one request of ``account`` about ``pdl`` counts against."""
        if self.scope_shape == "process":
            return [self.name]
        if self.scope_shape == "account":
            return [f"{self.name}:{account}"]
        scopes = [f"{self.name}:account:{account}"]
        if pdl is not None:
            scopes.append(f"{self.name}:{pdl}")
        return scopes

    def default_scope(self, seconds: float) -> str:
        """The default scope prefix a window of ``seconds`` belongs to."""
        if self.scope_shape == "account_and_meter" and seconds <= 1.0:
            return f"{self.name}:account"
        return self.name


CONSO = Provider(
    name="conso",
    base_url="https://conso.boris.sh",
    auth="bearer",
    credentials=("token",),
    url_style="query",
    measure_prefix="/api",
    contract_path=None,
    contract_shape=None,
    quotas=MappingProxyType({"conso": ((1, 1), (12 * 3600, 80))}),
    scope_shape="process",
    lists_pdls=True,
    auth_hint="get a new token from the Conso API consent page",
)
DATACONNECT = Provider(
    name="dataconnect",
    base_url="https://gw.ext.prod.api.enedis.fr",
    auth="oauth2",
    credentials=("client_id", "client_secret"),
    url_style="query",
    measure_prefix="/mesure_synchrone_auto/v2",
    contract_path="/situation_contrat_auto/v1/{pdl}",
    contract_shape="dataconnect",
    quotas=MappingProxyType({"dataconnect": ((1, 5), (3600, 1000))}),
    scope_shape="account",
    lists_pdls=False,
    auth_hint="check client_id/client_secret and the Data Connect consent",
)
MYELECTRICALDATA = Provider(
    name="myelectricaldata",
    base_url="https://www.myelectricaldata.fr",
    auth="raw",
    credentials=("token",),
    url_style="path",
    measure_prefix="",
    contract_path="/contracts/{pdl}",
    contract_shape="v5",
    quotas=MappingProxyType({"myelectricaldata": ((DAY, 50),),
                             "myelectricaldata:account": ((1, 1),)}),
    scope_shape="account_and_meter",
    lists_pdls=False,
    auth_hint="check the MyElectricalData token and its consent",
)

REGISTRY: Mapping[str, Provider] = MappingProxyType(
    {p.name: p for p in (CONSO, DATACONNECT, MYELECTRICALDATA)})
PROVIDERS = tuple(REGISTRY)
DEFAULT_BASE_URLS = {name: p.base_url for name, p in REGISTRY.items()}


def provider(name: str) -> Provider:
    """The description of provider ``name``; ValueError for an unknown name."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown provider {name!r} (expected one of {', '.join(PROVIDERS)})") from None


@dataclass(frozen=True)
class ProviderSettings:
    """One account's provider and credentials (plain strings; never shown by repr)."""

    provider: str
    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    base_url: str | None = None
    account: str = "home"

    def __post_init__(self) -> None:
        desc = provider(self.provider)
        if desc.takes_token:
            if not self.token:
                raise ValueError(f"provider {self.provider} needs a token")
        elif not self.client_id or not self.client_secret:
            raise ValueError(f"provider {self.provider} needs {desc.credentials_text}")

    @property
    def description(self) -> Provider:
        return provider(self.provider)

    @property
    def url(self) -> str:
        return (self.base_url or self.description.base_url).rstrip("/")


@dataclass(frozen=True)
class Call:
    """One HTTP request to make. ``path`` holds no secret (it appears in errors and logs)."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = field(default=None, repr=False)


def measure_call(
    provider_name: str, series: Series, kind: Kind, pdl: str, *, start: date, end: date
) -> Call:
    """The request for one chunk [start, end) of a series."""
    key = (series, kind)
    if key not in TYPES_2026:
        raise ValueError(f"no {series} series for {kind}")
    desc = provider(provider_name)
    if desc.url_style == "path":
        path = (f"{desc.measure_prefix}/{TYPES_V5[key]}/{pdl}/start/{start.isoformat()}"
                f"/end/{end.isoformat()}")
        return Call("GET", path)
    params = {"pointId": pdl, "dateDebut": start.isoformat(), "dateFin": end.isoformat()}
    if kind is Kind.MAX_POWER:
        params |= {"mesuresPas": "P1D", "grandeurPhysique": "PMA"}
    return Call("GET", f"{desc.measure_prefix}/{TYPES_2026[key]}", params)


def contract_call(provider_name: str, pdl: str) -> Call | None:
    path = provider(provider_name).contract_path
    return None if path is None else Call("GET", path.format(pdl=pdl))


def static_auth(settings: ProviderSettings) -> dict[str, str]:
    """Authorization header of the token providers (oauth2: see token_call)."""
    auth = settings.description.auth
    if auth == "bearer":
        return {"Authorization": f"Bearer {settings.token}"}
    if auth == "raw":
        return {"Authorization": str(settings.token)}
    return {}


def token_call(settings: ProviderSettings) -> tuple[Call, tuple[str, str]]:
    """The OAuth2 client-credentials request and its HTTP Basic credentials."""
    client_id, secret = str(settings.client_id), str(settings.client_secret)
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return Call("POST", "/oauth2/v3/token", form=form), (client_id, secret)


_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")


def parse_token(body: Any) -> tuple[str, float]:
    """(access_token, lifetime in seconds) of a token answer (``expires_in`` may be a string)."""
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise BadResponse("token answer has no access_token")
    if not _HEADER_TOKEN.fullmatch(body["access_token"]):
        # it goes into an Authorization header: visible ASCII only (RFC 6750 asks less)
        raise BadResponse("token answer has an access_token a header cannot carry")
    try:
        lifetime = float(body.get("expires_in", 3600))
    except (TypeError, ValueError):
        raise BadResponse("token answer has an unreadable expires_in") from None
    return body["access_token"], lifetime


def conso_token_pdls(token: str) -> list[str]:
    """PDLs in the ``sub`` claim of a Conso API JWT (signature not verified)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise AuthError(
            "the conso token is not a JWT (expected three dot-separated parts)", provider="conso"
        )
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise AuthError(
            "the conso token is not a JWT (unreadable payload)", provider="conso"
        ) from None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if isinstance(sub, str):
        sub = [sub]
    if not isinstance(sub, list) or not all(isinstance(p, str) for p in sub):
        raise AuthError("the conso token has no list of PDLs in its 'sub' claim", provider="conso")
    return list(sub)


_ADAM_CODE = re.compile(r"\bADAM-[A-Z]+-?\d{3,4}\b")


def detail_text(detail: Any) -> str:
    """MyElectricalData's ``detail`` as one readable line of real UTF-8.

    ``detail`` is a string, or a list of strings, of lists of strings (MyElectricalData_import
    #622: ``[["Erreur lors de la récupération ... - ", "Code d'erreur : 500 ..."]]``) or of
    FastAPI validation objects (``{"loc": [...], "msg": "..."}``): the pieces of one item
    are joined with a space, items with ``"; "``.
    """
    if isinstance(detail, str):
        return " ".join(detail.split())
    if isinstance(detail, Mapping):
        for key in ("msg", "message", "detail", "error_description", "description"):
            if isinstance(detail.get(key), str | list):
                return detail_text(detail[key])
        return " ".join(json.dumps(detail, ensure_ascii=False).split())
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return " ".join(" ".join(str(i) for i in detail).split())
        parts = [detail_text(item) for item in detail]
        return "; ".join(p for p in parts if p)
    return "" if detail is None else str(detail)


def error_details(body: Any) -> tuple[str | None, str | None]:
    """(code, message) of an error body, whatever the provider's format.

    Enedis ``{"error","error_description"}``, gateway ``{"code","message"}`` and its
    ``{"fault": {...}}`` wrapper, Conso API ``{"status","message","error": <Enedis body or
    text>}``, MyElectricalData ``{"detail"}`` (text, a list, or text holding an Enedis JSON
    body). An ``ADAM-...`` code written only in the text is found there too.
    """
    if not isinstance(body, dict):
        return None, None
    fault = body.get("fault")
    if isinstance(fault, dict):
        return error_details(fault)
    error = body.get("error")
    if isinstance(error, dict):
        code, message = error_details(error)
        if code or message:
            return code, message
    detail = body.get("detail")
    if isinstance(detail, str) and detail.lstrip().startswith("{"):
        try:
            inner = json.loads(detail)
        except ValueError:
            inner = None
        code, message = error_details(inner)
        if code or message:
            return code, message
    code = error if isinstance(error, str) else body.get("code")
    message = body.get("error_description") or body.get("message")
    if message is None and detail is not None:
        message = detail_text(detail)
    if (
        isinstance(error, str)
        and isinstance(body.get("message"), str)
        and "error_description" not in body
        and body.get("status") is not None
    ):
        # Conso API wrapping an Enedis answer that was plain text: the text is the news
        message = f"{body['message']}: {error}"
        code = None
    if isinstance(message, list | dict):
        message = detail_text(message)
    text = " ".join(str(message).split())[:300] if message is not None else None
    if code is None and text:
        found = _ADAM_CODE.search(text)
        code = found.group(0) if found else None
    return (str(code)[:80] if code is not None else None, text)


# -- when to come back (429) -------------------------------------------------------------

_THRESHOLD = re.compile(r"allowed on\s+(-?\d+):(-?\d+):(-?\d+)", re.IGNORECASE)
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_NEXT_ACCESS = re.compile(
    r"(\d{4})-([A-Za-z]{3}|\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})\s*([+-]\d{4}|Z)?")


def _strings(doc: Any, key: str | None = None) -> list[tuple[str | None, str]]:
    """Every (key, string value) in a JSON document, depth first."""
    out: list[tuple[str | None, str]] = []
    if isinstance(doc, str):
        out.append((key, doc))
    elif isinstance(doc, Mapping):
        for k, v in doc.items():
            out.extend(_strings(v, str(k)))
    elif isinstance(doc, list):
        for v in doc:
            out.extend(_strings(v, key))
    return out


def threshold_seconds(text: str) -> float | None:
    """Seconds in ``Call threshold allowed on H:MM:SS``, or None when the text has none.

    The value is a duration, not a time of day: real answers read ``0:-30:-40`` and
    ``-1:-3:-13`` (DomoticzLinky#84, #74), a time of day never has negative minutes. A
    negative duration is read by its size (30 min 40 s); the simulator writes the
    time left the same way (``0:00:01``).
    """
    m = _THRESHOLD.search(text)
    if m is None:
        return None
    h, mi, se = (int(g) for g in m.groups())
    return float(abs(h) * 3600 + abs(mi) * 60 + abs(se))


def next_access_epoch(text: str) -> float | None:
    """Epoch seconds of a gateway ``nextAccessTime`` (``2026-Jul-18 05:00:00+0000 UTC``)."""
    m = _NEXT_ACCESS.search(text)
    if m is None:
        return None
    year, month, day, hh, mm, ss, offset = m.groups()
    mon = int(month) if month.isdigit() else _MONTHS.get(month.lower())
    if mon is None:
        return None
    tz = UTC
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        moment = datetime(int(year), mon, int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    except ValueError:
        return None
    return moment.timestamp()


def retry_hint(body: Any, now: float) -> float | None:
    """Seconds to wait that an error body states (>= 0), or None.

    ``nextAccessTime`` (an instant, compared with ``now``, epoch seconds of the client's
    clock) wins over ``Call threshold allowed on H:MM:SS`` (a duration).
    """
    pairs = _strings(body)
    for key, value in pairs:
        if key == "nextAccessTime":
            when = next_access_epoch(value)
            if when is not None:
                return max(0.0, when - now)
    for _key, value in pairs:
        seconds = threshold_seconds(value)
        if seconds is not None:
            return seconds
    return None
