"""Credentials the simulator accepts: Conso API JWTs and Data Connect access tokens.

* Conso: an HS256 JWT whose ``sub`` claim lists the PDLs it covers. The signature is not
  checked (like any client reading it); a token that is not a JWT, has no ``sub`` or whose
  ``exp`` has passed (per the simulator's clock) is refused.
* Data Connect: opaque tokens issued by ``POST /oauth2/v3/token``, valid 12600 s of the
  simulator's clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Sequence

TOKEN_LIFETIME = 12600
CONSO_LIFETIME = 3 * 365 * 86400
_SIGNING_KEY = b"linky2mqtt-simulator"  # nobody checks it; it only makes a well-formed JWT


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_conso_token(pdls: Sequence[str], now: float, lifetime: float = CONSO_LIFETIME) -> str:
    """An HS256 JWT for the Conso API covering ``pdls``, expiring ``lifetime`` s after now."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": list(pdls), "iat": int(now), "exp": int(now + lifetime)}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = _b64url(hmac.new(_SIGNING_KEY, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def conso_pdls(token: str, now: float) -> list[str] | None:
    """The PDLs a Conso token covers, or None when it is not a valid, unexpired JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < now:
        return None
    sub = claims.get("sub")
    if isinstance(sub, str):
        return [p.strip() for p in sub.split(",") if p.strip()]
    if isinstance(sub, list) and all(isinstance(p, str) for p in sub):
        return list(sub)
    return None


class TokenStore:
    """Data Connect access tokens and their expiry (epoch seconds of the sim clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}

    def issue(self, now: float, lifetime: float = TOKEN_LIFETIME) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + lifetime
        return token

    def valid(self, token: str, now: float) -> bool:
        with self._lock:
            exp = self._tokens.get(token)
        return exp is not None and now < exp
