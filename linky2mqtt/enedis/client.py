"""EnedisClient: one method per data kind, over an injected ``httpx.Client``.

The client splits ranges into calls the API accepts (7 days per load-curve call, 365 per
daily call), never asks beyond today (Europe/Paris, from the injected clock), passes every
attempt through the request budget, retries transient failures with the one retry
policy, and parses answers into provider-free readings. A ``404 no_data_found`` is not an
error for the caller: the days of that call are listed in ``FetchResult.missing``.

Every exchange (connect, headers and the whole body) has an overall deadline
(``deadline``, default :data:`DEFAULT_DEADLINE` seconds): a server that answers one byte
per second never holds a caller longer than that. The exchange runs in a worker thread
of the client (kept between exchanges: no thread started per request); past the deadline
the caller gets a :class:`~.errors.Timeout` (transient: retried within the retry
policy's bounds) and the worker, told to give up, drops the connection at its next byte
(or at httpx's own read timeout when the server is silent) and ends; the next exchange
gets another worker.
Setting the ``cancel`` event abandons the exchange in progress the same way
(:class:`~.errors.Cancelled`, never retried) and makes every later call fail at once:
the bridge sets it when it stops, so SIGTERM never waits for upstream.

The exchange goes through :mod:`.wire`: the lean HTTP/1.1 wire with keep-alive when the
client makes its own, or the injected ``httpx.Client`` (``http=``; also used when
the environment names a proxy). An injected HTTP client is closed by whoever created it:
``close()`` closes only what the client made itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from linky2mqtt import __version__
from linky2mqtt.clock import SYSTEM_CLOCK, Clock
from linky2mqtt.model import PDL_RE, Kind, Reading, Series, local_days, paris_today

from . import providers
from .budget import Budget, MemoryLedger, Priority, default_windows, scopes_for
from .contract import Contract, parse_contract
from .errors import (
    ApiError,
    AuthError,
    BadResponse,
    Cancelled,
    NoData,
    Timeout,
    TransportError,
    api_error,
)
from .parse import parse_curve, parse_daily, parse_max_power
from .providers import Call, ProviderSettings
from .retry import RetryPolicy
from .wire import Answer, BodyTooLarge, HttpxWire, LeanWire, Wire, env_proxies

__all__ = ["DEFAULT_DEADLINE", "MAX_BODY", "USER_AGENT", "EnedisClient", "FetchResult"]

log = logging.getLogger(__name__)


USER_AGENT = f"linky2mqtt/{__version__} (+https://github.com/linky2mqtt/linky2mqtt)"
TOKEN_MARGIN = 60.0  # refresh an OAuth token this long before it expires
DEFAULT_DEADLINE = 60.0  # seconds for one whole exchange: connect, headers and body
MAX_BODY = 32 * 1024 * 1024  # a bigger answer is garbage (a year of daily values: ~30 KiB)
PREVIEW_CHARS = 60  # what an error message quotes of a body it cannot use
_CANCEL_POLL = 0.1  # how often a caller waiting for an answer looks at ``cancel``
_SHORT_WAIT = 0.002  # seconds an answer is awaited before the caller gives its turn up


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


def _retry_after(response: Answer, now: float) -> float | None:
    value = response.headers.get("retry-after")
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


def _plain_text(response: Answer) -> str | None:
    """The first line of a short plain-text error body (not an HTML page)."""
    ctype = response.headers.get("content-type", "").lower()
    if "html" in ctype or not response.content or len(response.content) > 2000:
        return None
    try:
        text = response.content.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or text.startswith("<"):
        return None
    return " ".join(text.splitlines()[0].split())[:200] or None


class _Worker:
    """A daemon thread that runs a client's exchanges one at a time.

    Between exchanges it waits in its client's idle list; a worker whose exchange was
    abandoned (deadline, cancel) finishes it on its own and ends instead of coming back.
    """

    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], bool] | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None or not job():  # a job says whether the worker stays
                return


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
        deadline: float = DEFAULT_DEADLINE,
        cancel: threading.Event | None = None,
        waiting: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        if deadline <= 0:
            raise ValueError("deadline must be positive")
        self.settings = settings
        self.deadline = float(deadline)
        self.cancel = cancel
        # entered while the caller waits for an answer (the bridge gives its account
        # thread's turn up: linky2mqtt.turns)
        self.waiting = waiting
        self.provider = settings.provider
        self.description = settings.description
        self.clock = clock
        self.budget = budget or Budget(default_windows(self.provider), MemoryLedger(), clock)
        self.retry = retry or RetryPolicy()
        timeout = httpx.Timeout(30.0, connect=10.0)
        self._own_http = http is None
        if http is None and env_proxies():  # httpx honours the proxy, the lean wire not
            http = httpx.Client(timeout=timeout)
        self.http = http  # the injected client, or the one made for a proxy, or None
        self._wire: Wire = LeanWire(timeout) if self.http is None else HttpxWire(self.http)
        self.user_agent = user_agent or USER_AGENT
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0
        self._idle: list[_Worker] = []  # exchange workers waiting for the next exchange
        self._idle_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"EnedisClient({self.provider}, account={self.settings.account!r})"

    def close(self) -> None:
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.jobs.put(None)
        self._wire.close()
        if self._own_http and self.http is not None:
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
        *,
        retry: RetryPolicy | None = None,
    ) -> FetchResult:
        """Daily energy (Wh) or, for Kind.MAX_POWER, daily max power (VA); end exclusive.

        ``retry`` replaces the client's retry policy for this call."""
        return self._fetch(pdl, kind, "daily", start, end, priority=priority, retry=retry)

    def curve(
        self,
        pdl: str,
        kind: Kind,
        start: date,
        end: date,
        priority: Priority = Priority.FRESH,
        *,
        retry: RetryPolicy | None = None,
    ) -> FetchResult:
        """Load-curve intervals (Wh per interval, UTC start); end exclusive."""
        if kind is Kind.MAX_POWER:
            raise ValueError("max power has no load curve")
        return self._fetch(pdl, kind, "curve", start, end, priority=priority, retry=retry)

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
            return self.retry.call(attempt, waiting=self.waiting)
        except NoData:
            return None

    def covered_pdls(self) -> list[str] | None:
        """PDLs the token covers (conso: the JWT's ``sub``); None for a provider whose
        credentials do not list them (:attr:`Provider.lists_pdls`)."""
        if not self.description.lists_pdls:
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
        if self.description.lists_pdls:
            covered = self.covered_pdls() or []
            if pdl not in covered:
                raise AuthError(f"PDL {pdl} is not covered by the {self.provider} token",
                                provider=self.provider)

    def _fetch(
        self, pdl: str, kind: Kind, series: Series, start: date, end: date, *, priority: Priority,
        retry: RetryPolicy | None = None,
    ) -> FetchResult:
        self._check_pdl(pdl)
        end = min(end, paris_today(self.clock.now()))
        readings: list[Reading] = []
        missing: list[date] = []
        for a, b in _chunks(start, end, self.description.days_per_call[series]):
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
                chunk = (retry or self.retry).call(attempt, waiting=self.waiting)
            except NoData as exc:
                log.info("%s %s %s..%s: no data (%s)", self.provider, pdl, a, b, exc.code)
                missing.extend(_days(a, b))
                continue
            present = local_days(chunk)
            missing.extend(d for d in _days(a, b) if d not in present)
            readings.extend(chunk)
        return FetchResult(readings, missing)

    # -- one attempt ------------------------------------------------------------------

    def _attempt(self, call: Call, pdl: str | None, priority: Priority) -> Any:
        """One attempt (plus, for OAuth2 providers, one token refresh on 401): the JSON
        body."""
        if self.description.auth != "oauth2":
            headers = providers.static_auth(self.settings)
            return self._decode(call, self._send(call, headers, None, pdl, priority))
        token = self._access_token(priority)
        response = self._send(call, {"Authorization": f"Bearer {token}"}, None, pdl, priority)
        if response.status == 401:
            log.info("%s: token refused (401), requesting a new one once", self.provider)
            self._drop_token(token)
            token = self._access_token(priority)
            response = self._send(call, {"Authorization": f"Bearer {token}"}, None, pdl, priority)
        return self._decode(call, response)

    def _access_token(self, priority: Priority) -> str:
        with self._token_lock:
            if self._token is not None and self.clock.time() < self._token_expires:
                return self._token
            call, basic = providers.token_call(self.settings)
            try:
                response = self._send(call, {}, basic, None, priority)
                if response.status in (400, 401, 403):
                    code, message = providers.error_details(self._json(response))
                    raise AuthError(
                        message or "client credentials refused",
                        provider=self.provider,
                        endpoint=call.path,
                        status=response.status,
                        code=code,
                    )
                try:
                    token, lifetime = providers.parse_token(self._decode(call, response))
                except BadResponse as exc:
                    raise self._bad(call, exc.message) from None
            except (TransportError, ApiError, BadResponse) as exc:
                exc.account_wide = True  # no token, no request for any meter of the account
                raise
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
    ) -> Answer:
        self._check_cancel(call)
        scopes = scopes_for(self.provider, self.settings.account, pdl)
        sent_at = self.budget.acquire(scopes, priority)
        return self._send_now(call, headers, basic,
                              lambda: self.budget.settle(scopes, sent_at))

    def _send_now(self, call: Call, headers: dict[str, str],
                  basic: tuple[str, str] | None,
                  going: Callable[[], None]) -> Answer:
        self._check_cancel(call)
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json", **headers}
        began = time.monotonic()
        try:
            response = self._exchange(call, all_headers, basic, going)
        except httpx.TimeoutException as exc:
            raise Timeout(
                f"timed out ({type(exc).__name__})", provider=self.provider, endpoint=call.path
            ) from None
        except httpx.TransportError as exc:
            raise TransportError(
                f"no answer ({type(exc).__name__})", provider=self.provider, endpoint=call.path
            ) from None
        if log.isEnabledFor(logging.DEBUG):  # the parameters' text is not made for nothing
            log.debug(
                "%s %s %s %s -> %d in %.0f ms",
                self.provider,
                call.method,
                call.path,
                " ".join(f"{k}={v}" for k, v in call.params.items()),
                response.status,
                (time.monotonic() - began) * 1000,
            )
        return response

    def _check_cancel(self, call: Call) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("stopping: request not sent", provider=self.provider,
                            endpoint=call.path)

    def _exchange(self, call: Call, headers: dict[str, str],
                  basic: tuple[str, str] | None,
                  going: Callable[[], None] | None = None) -> Answer:
        """Send ``call`` and read its whole answer within ``deadline`` seconds;
        ``going()`` runs on the worker just before the request goes out.

        Raises httpx's own exceptions (mapped by the caller), or Timeout past the
        deadline, Cancelled when ``cancel`` is set, BadResponse for a body over MAX_BODY.
        """
        done = threading.Event()
        abandon = threading.Event()
        result: list[Answer | BaseException] = []
        url = self.settings.url + call.path

        def work() -> None:
            try:
                if going is not None:
                    going()
                answer = self._wire.exchange(
                    call.method, url, params=call.params, form=call.form, headers=headers,
                    basic=basic, abandon=abandon, max_body=MAX_BODY)
                if answer is not None:  # None: abandoned, nobody waits for it
                    result.append(answer)
            except BodyTooLarge:
                result.append(self._bad(call, f"answer larger than {MAX_BODY} bytes"))
            except BaseException as exc:  # handed to the caller's thread
                result.append(exc)

        def job() -> bool:
            """Run ``work``; whether this worker may take the next exchange."""
            work()
            with self._idle_lock:
                done.set()
                stays = not abandon.is_set() and not self._closed
                if stays:
                    self._idle.append(worker)
            return stays

        def give_up() -> None:
            with self._idle_lock:  # the worker, past its exchange, does not come back
                abandon.set()

        ends = time.monotonic() + self.deadline
        with self._idle_lock:
            idle = self._idle.pop() if self._idle else None
        worker = idle or _Worker(f"enedis-{self.provider}")
        worker.jobs.put(job)
        # an answer within a few milliseconds (a local gateway) is awaited on the turn:
        # giving it up and taking it back would cost more than the wait
        if not done.wait(_SHORT_WAIT):
            with self.waiting():
                self._await(call, done, ends, give_up)
        got = result[0]
        if isinstance(got, BaseException):
            raise got
        return got

    def _await(self, call: Call, done: threading.Event, ends: float,
               give_up: Callable[[], None]) -> None:
        """Wait for the exchange's worker until ``ends`` (monotonic) or ``cancel``."""
        while not done.is_set():
            left = ends - time.monotonic()
            if left <= 0:
                give_up()
                raise Timeout(f"no complete answer within {self.deadline:g} s",
                              provider=self.provider, endpoint=call.path)
            if self.cancel is None:
                done.wait(left)
                continue
            if self.cancel.is_set():
                give_up()
                raise Cancelled("stopping: request abandoned", provider=self.provider,
                                endpoint=call.path)
            done.wait(min(left, _CANCEL_POLL))

    @staticmethod
    def _json(response: Answer) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _not_json(self, response: Answer) -> str:
        """What a 2xx answer that is not JSON held: size, type, and its start (bounded,
        the client's own secrets masked)."""
        data = response.content
        ctype = response.headers.get("content-type", "no content type").split(";")[0].strip()
        if not data.strip():
            return f"expected JSON, got an empty body ({ctype})"
        if data.strip() == b"null":
            return "expected a JSON document, got null"
        if "json" in ctype.lower():
            return f"got {len(data)} bytes, not valid JSON: {self._preview(data)}"
        return f"expected JSON, got {ctype} ({len(data)} bytes): {self._preview(data)}"

    def _preview(self, data: bytes) -> str:
        """The start of a body, on one line, at most PREVIEW_CHARS characters."""
        text = data[: 4 * PREVIEW_CHARS + 4096].decode("utf-8", "replace")
        settings = self.settings
        for secret in (settings.token, settings.client_secret, self._token):
            if secret:
                text = text.replace(str(secret), "***")
        text = " ".join(text.split())
        cut = text[:PREVIEW_CHARS]
        shown = repr(cut)[1:-1]
        return shown + ("…" if len(text) > PREVIEW_CHARS else "")

    def _bad(self, call: Call, message: str) -> BadResponse:
        return BadResponse(message, provider=self.provider, endpoint=call.path)

    def _decode(self, call: Call, response: Answer) -> Any:
        status = response.status
        body = self._json(response)
        if 200 <= status < 300:
            if body is None:
                raise BadResponse(
                    self._not_json(response),
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
            message or response.reason or "error",
            provider=self.provider,
            endpoint=call.path,
            code=code,
            retry_after=self._retry_after(response, body),
        )

    def _retry_after(self, response: Answer, body: Any) -> float | None:
        """When to come back: a ``Retry-After`` header, else what the body says
        (``nextAccessTime``, ``Call threshold allowed on H:MM:SS``); seconds."""
        now = self.clock.time()
        header = _retry_after(response, now)
        return header if header is not None else providers.retry_hint(body, now)
