"""The three upstream providers: URLs, authentication and quirks.

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
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from linky2mqtt.model import Kind

from .errors import AuthError, BadResponse

__all__ = [
    "DEFAULT_BASE_URLS",
    "PROVIDERS",
    "Call",
    "ProviderSettings",
    "Series",
    "conso_token_pdls",
    "contract_call",
    "error_details",
    "measure_call",
    "parse_token",
    "token_call",
]

Series = Literal["daily", "curve"]

PROVIDERS = ("conso", "dataconnect", "myelectricaldata")
DEFAULT_BASE_URLS = {
    "conso": "https://conso.boris.sh",
    "dataconnect": "https://gw.ext.prod.api.enedis.fr",
    "myelectricaldata": "https://www.myelectricaldata.fr",
}

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
MAX_DAYS: dict[Series, int] = {"daily": 365, "curve": 7}


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
        if self.provider not in PROVIDERS:
            raise ValueError(
                f"unknown provider {self.provider!r} (expected one of {', '.join(PROVIDERS)})"
            )
        if self.provider == "dataconnect":
            if not self.client_id or not self.client_secret:
                raise ValueError("provider dataconnect needs client_id and client_secret")
        elif not self.token:
            raise ValueError(f"provider {self.provider} needs a token")

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URLS[self.provider]).rstrip("/")


@dataclass(frozen=True)
class Call:
    """One HTTP request to make. ``path`` holds no secret (it appears in errors and logs)."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = field(default=None, repr=False)


def measure_call(
    provider: str, series: Series, kind: Kind, pdl: str, *, start: date, end: date
) -> Call:
    """The request for one chunk [start, end) of a series."""
    key = (series, kind)
    if key not in TYPES_2026:
        raise ValueError(f"no {series} series for {kind}")
    if provider == "myelectricaldata":
        path = f"/{TYPES_V5[key]}/{pdl}/start/{start.isoformat()}/end/{end.isoformat()}"
        return Call("GET", path)
    prefix = "/api" if provider == "conso" else "/mesure_synchrone_auto/v2"
    params = {"pointId": pdl, "dateDebut": start.isoformat(), "dateFin": end.isoformat()}
    if kind is Kind.MAX_POWER:
        params |= {"mesuresPas": "P1D", "grandeurPhysique": "PMA"}
    return Call("GET", f"{prefix}/{TYPES_2026[key]}", params)


def contract_call(provider: str, pdl: str) -> Call | None:
    if provider == "dataconnect":
        return Call("GET", f"/situation_contrat_auto/v1/{pdl}")
    if provider == "myelectricaldata":
        return Call("GET", f"/contracts/{pdl}")
    return None


def static_auth(settings: ProviderSettings) -> dict[str, str]:
    """Authorization header of the token providers (dataconnect: see token_call)."""
    if settings.provider == "conso":
        return {"Authorization": f"Bearer {settings.token}"}
    if settings.provider == "myelectricaldata":
        return {"Authorization": str(settings.token)}
    return {}


def token_call(settings: ProviderSettings) -> tuple[Call, tuple[str, str]]:
    """The OAuth2 client-credentials request and its HTTP Basic credentials."""
    client_id, secret = str(settings.client_id), str(settings.client_secret)
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return Call("POST", "/oauth2/v3/token", form=form), (client_id, secret)


def parse_token(body: Any) -> tuple[str, float]:
    """(access_token, lifetime in seconds) of a token answer (``expires_in`` may be a string)."""
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise BadResponse("token answer has no access_token")
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


def error_details(body: Any) -> tuple[str | None, str | None]:
    """(code, message) of an error body, whatever the provider's format.

    Enedis ``{"error","error_description"}``, gateway ``{"code","message"}``, Conso API
    ``{"status","message","error": <Enedis body or text>}``, MyElectricalData ``{"detail"}``.
    """
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        code, message = error_details(error)
        if code or message:
            return code, message
    code = error if isinstance(error, str) else body.get("code")
    message = body.get("error_description") or body.get("message") or body.get("detail")
    if isinstance(message, list | dict):
        message = json.dumps(message)[:200]
    return (
        str(code)[:80] if code is not None else None,
        str(message).strip()[:200] if message is not None else None,
    )
