"""The exception tree of the upstream client.

Every exception carries its context as attributes (never a secret): ``provider``,
``endpoint`` (the request path without query string or credentials), ``status`` (HTTP
status or None), ``code`` (the provider's error code, e.g. ``ADAM-DC-0008``) and
``message`` (the provider's message, or ours)::

    EnedisError                 anything the client raises on purpose (a
    │                           :class:`linky2mqtt.errors.Linky2MqttError`)
    ├── TransportError          no HTTP answer: connection refused/dropped   [retried]
    │   └── Timeout             connect/read/write/pool timeout, or the overall
    │                           deadline of one request passed               [retried]
    ├── ApiError                an HTTP error status, with code and message
    │   ├── BadRequest          400 (Invalid_request, ADAM-ERR0123, ADAM-DC-0015, ...)
    │   ├── AuthError           401/403: bad token, no consent, not subscribed
    │   │   └── ConsentError    ADAM-DC-0007/0008/0009 (whatever the status, 400 or 403):
    │   │                       the consent is missing or lost; a person must renew it
    │   ├── NoData              404 no_data_found: a gap (the client turns it into
    │   │                       FetchResult.missing; callers rarely see it)
    │   ├── QuotaError          429 Quota Q3/Q4 reached                      [retried]
    │   └── ServerError         5xx technical_error, 503 unavailable         [retried]
    ├── BadResponse             2xx with a garbage body: HTML, bad JSON, wrong shape
    │                                                                        [retried]
    ├── BudgetExhausted         our own request budget forbids a call now; ``retry_at``
    │                           (epoch seconds) says when it will allow one
    └── Cancelled               the caller is stopping: the request was abandoned

"[retried]" marks what :mod:`linky2mqtt.enedis.retry` treats as transient; retries are
bounded by attempts and total time, then the last exception is raised.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from linky2mqtt.errors import Linky2MqttError

__all__ = [
    "CONSENT_CODES",
    "ApiError",
    "AuthError",
    "BadRequest",
    "BadResponse",
    "BudgetExhausted",
    "Cancelled",
    "ConsentError",
    "EnedisError",
    "NoData",
    "QuotaError",
    "ServerError",
    "Timeout",
    "TransportError",
    "api_error",
]


class Where(TypedDict, total=False):
    """Where an error comes from (each optional): the provider's name, the request path
    (no query string, no credentials) and the provider's error code."""

    provider: str | None
    endpoint: str | None
    code: str | None


class EnedisError(Linky2MqttError):
    """Base class: ``str()`` is one readable line with the context."""

    # True when the failure is the whole account's, not one meter's: the OAuth token
    # endpoint failed (set by the client), so no meter of the account can be asked.
    account_wide: bool = False

    def __init__(self, message: str, *, status: int | None = None,
                 **where: Unpack[Where]) -> None:
        super().__init__(message)
        self.message = message
        self.provider = where.get("provider")
        self.endpoint = where.get("endpoint")
        self.status = status
        self.code = where.get("code")

    def __str__(self) -> str:
        where = " ".join(p for p in (self.provider, self.endpoint) if p)
        parts = [str(self.status)] if self.status is not None else []
        if self.code:
            parts.append(self.code)
        parts.append(self.message)
        detail = " ".join(parts[:-1])
        text = f"{detail}: {parts[-1]}" if detail else parts[-1]
        return f"{where}: {text}" if where else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class TransportError(EnedisError):
    """The request got no HTTP answer (connection refused, reset, dropped)."""


class Timeout(TransportError):
    """The request timed out."""


class ApiError(EnedisError):
    """An HTTP error status from the provider."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, **where: Unpack[Where]) -> None:
        super().__init__(message, status=status, **where)
        # seconds to wait before asking again, when the answer says it (a Retry-After
        # header, a 429 body's ``nextAccessTime`` or ``Call threshold allowed on H:MM:SS``)
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400: the request was refused (parameters, history limits, wrong direction)."""


class AuthError(ApiError):
    """401/403: credentials refused, consent missing or revoked, API not subscribed."""


class ConsentError(AuthError):
    """The data-sharing consent is missing or lost (``ADAM-DC-0007``, ``ADAM-DC-0008``,
    ``ADAM-DC-0009``). Enedis answers ADAM-DC-0007 ("le client n'est pas titulaire du
    point") with status 400 since 2026: it is still a consent problem, not a bad request.
    Nothing comes back by asking again; the account holder must renew the consent."""


class NoData(ApiError):
    """404 no_data_found: no measure for that period (a gap)."""


class QuotaError(ApiError):
    """429: the provider's quota is reached."""


class ServerError(ApiError):
    """5xx: technical_error, unavailable."""


class BadResponse(EnedisError):
    """A success status with a body we cannot use (HTML, invalid JSON, unexpected shape)."""


class Cancelled(EnedisError):
    """The client was cancelled (the bridge is stopping): the request was abandoned."""


class BudgetExhausted(EnedisError):
    """Our own request budget forbids a call before ``retry_at`` (epoch seconds)."""

    def __init__(self, retry_at: float, *, scope: str | None = None) -> None:
        text = f"request budget exhausted until {retry_at:.0f}"
        if scope:
            text = f"{text} (scope {scope})"
        super().__init__(text)
        self.retry_at = retry_at
        self.scope = scope


CONSENT_CODES = frozenset({"ADAM-DC-0007", "ADAM-DC-0008", "ADAM-DC-0009"})


def api_error(status: int, message: str, *, retry_after: float | None = None,
              **where: Unpack[Where]) -> ApiError:
    """The :class:`ApiError` subclass for an HTTP error ``status``."""
    cls: type[ApiError]
    if where.get("code") in CONSENT_CODES and 400 <= status < 500:
        cls = ConsentError
    elif status == 400:
        cls = BadRequest
    elif status in (401, 403):
        cls = AuthError
    elif status == 404:
        cls = NoData
    elif status == 429:
        cls = QuotaError
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(message, status=status, retry_after=retry_after, **where)
