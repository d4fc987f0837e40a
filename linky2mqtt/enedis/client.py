"""EnedisClient: one method per data kind, over an injected ``httpx.Client``.

The client splits ranges into calls the API accepts (7 days per load-curve call, 365 per
daily call), never asks beyond today (Europe/Paris, from the injected clock), passes every
attempt through the request budget, retries transient failures with the one retry
policy, and parses answers into provider-free readings. A ``404 no_data_found`` is not an
error for the caller: the days of that call are listed in ``FetchResult.missing``.

The HTTP client is closed by whoever created it: ``close()`` closes it only when the
client made it itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from linky2mqtt import __version__
from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.model import PDL_RE, Kind, Reading, paris_today

from . import providers
from .budget import Budget, MemoryLedger, Priority, default_windows, scopes_for
from .contract import Contract, parse_contract
from .errors import (
    ApiError,
    AuthError,
    BadResponse,
    NoData,
    Timeout,
    TransportError,
    api_error,
)
from .parse import parse_curve, parse_daily, parse_max_power
from .providers import Call, ProviderSettings, Series
from .retry import RetryPolicy

__all__ = ["USER_AGENT", "EnedisClient", "FetchResult"]

log = logging.getLogger(__name__)


USER_AGENT = f"linky2mqtt/{__version__} (+https://github.com/linky2mqtt/linky2mqtt)"
TOKEN_MARGIN = 60.0  # refresh an OAuth token this long before it expires


@dataclass(frozen=True)
class FetchResult:
    readings: list[Reading]
    missing: list[date]  # local days asked for that came back without any data


def _chunks(start: date, end: date, max_days: int) -> list[tuple[date, date]]:
    out = []
    while start < end:
        stop = min(end, start + timedelta(days=max_days))
        out.append((start, stop))
        start = stop
    return out


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _retry_after(response: httpx.Response, now: float) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _plain_text(response: httpx.Response) -> str | None:
    """The first line of a short plain-text error body (not an HTML page)."""
    ctype = response.headers.get("Content-Type", "").lower()
    if "html" in ctype or not response.content or len(response.content) > 2000:
        return None
    try:
        text = response.content.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or text.startswith("<"):
        return None
    return " ".join(text.splitlines()[0].split())[:200] or None


class EnedisClient:
    def __init__(
        self,
        settings: ProviderSettings,
        *,
        budget: Budget | None = None,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        clock: Clock = SYSTEM_CLOCK,
        user_agent: str | None = None,
    ) -> None:
        self.settings = settings
        self.provider = settings.provider
        self.clock = clock
        self.budget = budget or Budget(default_windows(self.provider), MemoryLedger(), clock)
        self.retry = retry or RetryPolicy()
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
        self.user_agent = user_agent or USER_AGENT
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0

    def __repr__(self) -> str:
        return f"EnedisClient({self.provider}, account={self.settings.account!r})"

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> EnedisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------

    def daily(
        self,
        pdl: str,
        kind: Kind,
        start: date,
        end: date,
        priority: Priority = Priority.FRESH,
    ) -> FetchResult:
        """Daily energy (Wh) or, for Kind.MAX_POWER, daily max power (VA); end exclusive."""
        return self._fetch(pdl, kind, "daily", start, end, priority=priority)

    def curve(
        self,
        pdl: str,
        kind: Kind,
        start: date,
        end: date,
        priority: Priority = Priority.FRESH,
    ) -> FetchResult:
        """Load-curve intervals (Wh per interval, UTC start); end exclusive."""
        if kind is Kind.MAX_POWER:
            raise ValueError("max power has no load curve")
        return self._fetch(pdl, kind, "curve", start, end, priority=priority)

    def contract(self, pdl: str, priority: Priority = Priority.FRESH) -> Contract | None:
        """The PDL's parsed contract (:mod:`.contract`: the 2026 array, the v5
        ``customers_upc`` shape, MyElectricalData ``/contracts``); None where there is
        none (conso, 404)."""
        call = providers.contract_call(self.provider, pdl)
        if call is None:
            return None
        self._check_pdl(pdl)

        def attempt() -> Contract:
            body = self._attempt(call, pdl, priority)
            try:
                return parse_contract(body)
            except BadResponse as exc:
                raise self._bad(call, exc.message) from None

        try:
            return self.retry.call(attempt)
        except NoData:
            return None

    def covered_pdls(self) -> list[str] | None:
        """PDLs the conso token covers (JWT ``sub``); None for the other providers."""
        if self.provider != "conso":
            return None
        return providers.conso_token_pdls(str(self.settings.token))

    def next_allowed(self, pdl: str | None, priority: Priority = Priority.FRESH) -> float:
        """Epoch seconds when the budget would allow a request about ``pdl``."""
        scopes = scopes_for(self.provider, self.settings.account, pdl)
        return self.budget.next_allowed(scopes, priority)

    # -- fetching ---------------------------------------------------------------------

    def _check_pdl(self, pdl: str) -> None:
        if not PDL_RE.match(pdl):
            raise ValueError(f"a PDL has 14 digits, got {pdl!r}")
        if self.provider == "conso":
            covered = self.covered_pdls() or []
            if pdl not in covered:
                raise AuthError(f"PDL {pdl} is not covered by the conso token", provider="conso")

    def _fetch(
        self, pdl: str, kind: Kind, series: Series, start: date, end: date, *, priority: Priority
    ) -> FetchResult:
        self._check_pdl(pdl)
        end = min(end, paris_today(self.clock.now()))
        readings: list[Reading] = []
        missing: list[date] = []
        for a, b in _chunks(start, end, providers.MAX_DAYS[series]):
            call = providers.measure_call(self.provider, series, kind, pdl, start=a, end=b)

            def attempt(call: Call = call, a: date = a, b: date = b) -> list[Reading]:
                body = self._attempt(call, pdl, priority)
                try:
                    if series == "curve":
                        return parse_curve(body, pdl, kind, a, b)
                    if kind is Kind.MAX_POWER:
                        return parse_max_power(body, pdl, a, b)
                    return parse_daily(body, pdl, kind, a, b)
                except BadResponse as exc:
                    raise self._bad(call, exc.message) from None

            try:
                chunk = self.retry.call(attempt)
            except NoData as exc:
                log.info("%s %s %s..%s: no data (%s)", self.provider, pdl, a, b, exc.code)
                missing.extend(_days(a, b))
                continue
            present = {r.local_date for r in chunk}
            missing.extend(d for d in _days(a, b) if d not in present)
            readings.extend(chunk)
        return FetchResult(readings, missing)

    # -- one attempt ------------------------------------------------------------------

    def _attempt(self, call: Call, pdl: str | None, priority: Priority) -> Any:
        """One attempt (plus, for dataconnect, one token refresh on 401): the JSON body."""
        if self.provider != "dataconnect":
            headers = providers.static_auth(self.settings)
            return self._decode(call, self._send(call, headers, None, pdl, priority))
        token = self._access_token(priority)
        response = self._send(call, {"Authorization": f"Bearer {token}"}, None, pdl, priority)
        if response.status_code == 401:
            log.info("dataconnect: token refused (401), requesting a new one once")
            self._drop_token(token)
            token = self._access_token(priority)
            response = self._send(call, {"Authorization": f"Bearer {token}"}, None, pdl, priority)
        return self._decode(call, response)

    def _access_token(self, priority: Priority) -> str:
        with self._token_lock:
            if self._token is not None and self.clock.time() < self._token_expires:
                return self._token
            call, basic = providers.token_call(self.settings)
            response = self._send(call, {}, basic, None, priority)
            if response.status_code in (400, 401, 403):
                code, message = providers.error_details(self._json(response))
                raise AuthError(
                    message or "client credentials refused",
                    provider=self.provider,
                    endpoint=call.path,
                    status=response.status_code,
                    code=code,
                )
            try:
                token, lifetime = providers.parse_token(self._decode(call, response))
            except BadResponse as exc:
                raise self._bad(call, exc.message) from None
            self._token = token
            self._token_expires = self.clock.time() + max(0.0, lifetime - TOKEN_MARGIN)
            log.debug("dataconnect: new access token, valid %.0f s", lifetime)
            return token

    def _drop_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _send(
        self,
        call: Call,
        headers: dict[str, str],
        basic: tuple[str, str] | None,
        pdl: str | None,
        priority: Priority,
    ) -> httpx.Response:
        self.budget.acquire(scopes_for(self.provider, self.settings.account, pdl), priority)
        url = self.settings.url + call.path
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json", **headers}
        began = time.monotonic()
        try:
            response = self.http.request(
                call.method,
                url,
                params=call.params or None,
                data=call.form,
                headers=all_headers,
                auth=basic,
            )
        except httpx.TimeoutException as exc:
            raise Timeout(
                f"timed out ({type(exc).__name__})", provider=self.provider, endpoint=call.path
            ) from None
        except httpx.TransportError as exc:
            raise TransportError(
                f"no answer ({type(exc).__name__})", provider=self.provider, endpoint=call.path
            ) from None
        log.debug(
            "%s %s %s %s -> %d in %.0f ms",
            self.provider,
            call.method,
            call.path,
            " ".join(f"{k}={v}" for k, v in call.params.items()),
            response.status_code,
            (time.monotonic() - began) * 1000,
        )
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _bad(self, call: Call, message: str) -> BadResponse:
        return BadResponse(message, provider=self.provider, endpoint=call.path)

    def _decode(self, call: Call, response: httpx.Response) -> Any:
        status = response.status_code
        body = self._json(response)
        if 200 <= status < 300:
            if body is None:
                ctype = response.headers.get("Content-Type", "no content type")
                raise BadResponse(
                    f"expected JSON, got {ctype.split(';')[0]} ({len(response.content)} bytes)",
                    provider=self.provider,
                    endpoint=call.path,
                    status=status,
                )
            return body
        code, message = providers.error_details(body)
        if message is None and body is None:
            message = _plain_text(response)
        if status == 404 and body is None:
            raise ApiError(
                "not found, and not a JSON error: check base_url",
                provider=self.provider,
                endpoint=call.path,
                status=status,
            )
        raise api_error(
            status,
            message or response.reason_phrase or "error",
            provider=self.provider,
            endpoint=call.path,
            code=code,
            retry_after=self._retry_after(response, body),
        )

    def _retry_after(self, response: httpx.Response, body: Any) -> float | None:
        """When to come back: a ``Retry-After`` header, else what the body says
        (``nextAccessTime``, ``Call threshold allowed on H:MM:SS``); seconds."""
        now = self.clock.time()
        header = _retry_after(response, now)
        return header if header is not None else providers.retry_hint(body, now)
