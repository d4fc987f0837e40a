"""How one exchange reaches the server and comes back as an :class:`Answer`.

Two wires, one contract (:class:`Wire`):

- :class:`LeanWire`, what the bridge uses: the standard library's ``http.client`` with
  keep-alive connections (a pool per origin, at most :data:`MAX_IDLE` idle each). Per
  request it costs about a third of the CPU of ``httpx.Client`` for the same exchange
  (``docs/client.md``): a 10,000-meter bridge makes 20,000 requests a cycle.
- :class:`HttpxWire`, over an ``httpx.Client``: used when the caller injects one (tests
  with ``httpx.MockTransport``, special transports) and when the environment names a
  proxy (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, lower case too: httpx honours
  them, the lean wire does not). See :func:`env_proxies`.

Both read the body in chunks, stop at the next chunk once ``abandon`` is set (the caller
gave up: deadline, cancel) and refuse a body over ``max_body`` bytes
(:class:`BodyTooLarge`). Both raise httpx's own exceptions for transport failures::

    httpx.TransportError
    ├── httpx.TimeoutException: ConnectTimeout, ReadTimeout, WriteTimeout
    └── ConnectError, ReadError, WriteError, RemoteProtocolError, UnsupportedProtocol

so the caller maps errors one way whatever the wire. The lean wire's details:

- timeouts: ``connect`` while connecting, ``read`` for every read, ``write`` for sends;
- a connection taken from the pool is first checked: one the server closed while it was
  idle (or that holds unread bytes) is dropped and the next one, or a new one, is used.
  A request is never sent twice by the wire: one that fails after it went out fails
  (``RemoteProtocolError``...), and the caller's retry policy, which counts every attempt
  against the budget, decides;
- a connection goes back to the pool only when its answer was read to the end and the
  server did not ask to close it;
- TLS with httpx's default context (certifi's CAs, ``SSL_CERT_FILE``; host name
  checked); no compression is asked for (``Accept-Encoding: identity``).
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx

__all__ = ["MAX_IDLE", "Answer", "BodyTooLarge", "HttpxWire", "LeanWire", "Wire",
           "env_proxies"]

MAX_IDLE = 4  # idle connections kept per origin (an account runs one exchange at a time)
_READ_SIZE = 64 * 1024

Origin = tuple[str, str, int]


class BodyTooLarge(Exception):
    """The answer's body went past ``max_body`` bytes (nothing more is read)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One whole answer: status, reason phrase, headers (names in lower case; a repeated
    header keeps its last value) and body."""

    status: int
    reason: str
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.content)


class Wire(Protocol):
    def exchange(self, method: str, url: str, *, params: dict[str, str],
                 form: dict[str, str] | None, headers: dict[str, str],
                 basic: tuple[str, str] | None, abandon: threading.Event,
                 max_body: int) -> Answer | None:
        """Send one request and read its whole answer; None when ``abandon`` was set
        while reading."""

    def close(self) -> None: ...


def env_proxies() -> bool:
    """Whether the environment names a proxy httpx would use."""
    found = urllib.request.getproxies_environment()
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection can carry a request: nothing to read on it (readable
    means the server closed it, or sent what nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class HttpxWire:
    """The exchange through an ``httpx.Client`` (closed by whoever made it)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def exchange(self, method: str, url: str, *, params: dict[str, str],
                 form: dict[str, str] | None, headers: dict[str, str],
                 basic: tuple[str, str] | None, abandon: threading.Event,
                 max_body: int) -> Answer | None:
        request = self.http.build_request(method, url, params=params or None, data=form,
                                          headers=headers)
        response = self.http.send(request, auth=basic, stream=True)
        try:
            if response.is_stream_consumed:  # read already (a mock transport)
                content = response.content
            else:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    if abandon.is_set():
                        return None
                    size += len(chunk)
                    if size > max_body:
                        raise BodyTooLarge
                    chunks.append(chunk)
                content = b"".join(chunks)
        finally:
            response.close()
        return Answer(response.status_code, response.reason_phrase,
                      {k.lower(): v for k, v in response.headers.items()}, content)

    def close(self) -> None:
        """Nothing: the ``httpx.Client`` belongs to whoever made it."""


class LeanWire:
    """``http.client`` with keep-alive (see the module's docstring)."""

    def __init__(self, timeout: httpx.Timeout, *, ssl_context: ssl.SSLContext | None = None,
                 max_idle: int = MAX_IDLE) -> None:
        self._connect_timeout = timeout.connect
        self._read_timeout = timeout.read
        self._write_timeout = timeout.write
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # made on the first https request only
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def exchange(self, method: str, url: str, *, params: dict[str, str],
                 form: dict[str, str] | None, headers: dict[str, str],
                 basic: tuple[str, str] | None, abandon: threading.Event,
                 max_body: int) -> Answer | None:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"cannot send to {scheme or 'no'} URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise httpx.UnsupportedProtocol(f"bad port in URL: {exc}") from None
        origin: Origin = (scheme, parts.hostname, port)
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(params, quote_via=quote)) if q)
        if query:
            target += "?" + query
        fields = dict(headers)
        body = None
        if form is not None:
            body = urlencode(form).encode()
            fields["Content-Type"] = "application/x-www-form-urlencoded"
            fields["Content-Length"] = str(len(body))
        if basic is not None:
            pair = f"{basic[0]}:{basic[1]}".encode()
            fields["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        conn = self._take(origin) or self._connect(origin)
        try:
            response = self._send(conn, method, target, fields, body)
        except BaseException:
            conn.close()
            raise
        return self._read(origin, conn, response, abandon, max_body)

    def _connect(self, origin: Origin) -> http.client.HTTPConnection:
        scheme, host, port = origin
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout,
                                               context=self._context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:  # refused, unreachable, name not found, TLS refused
            conn.close()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        sock: socket.socket = conn.sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _send(self, conn: http.client.HTTPConnection, method: str, target: str,
              fields: dict[str, str], body: bytes | None) -> http.client.HTTPResponse:
        """Send the request; its status line and headers."""
        sock: socket.socket = conn.sock
        sock.settimeout(self._write_timeout)
        try:
            conn.putrequest(method, target)
            for name, value in fields.items():
                conn.putheader(name, value)
            conn.endheaders(body)
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out") from None
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from None
        sock.settimeout(self._read_timeout)
        try:
            return conn.getresponse()
        except TimeoutError:
            raise httpx.ReadTimeout("no answer in time") from None
        except http.client.HTTPException as exc:  # RemoteDisconnected: closed, no answer
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from None

    def _read(self, origin: Origin, conn: http.client.HTTPConnection,
              response: http.client.HTTPResponse, abandon: threading.Event,
              max_body: int) -> Answer | None:
        """The whole answer; the connection goes back to the pool when reusable."""
        reusable = False
        try:
            chunks: list[bytes] = []
            size = 0
            while True:
                if abandon.is_set():
                    return None
                try:
                    chunk = response.read1(_READ_SIZE)
                except TimeoutError:
                    raise httpx.ReadTimeout("the answer stalled") from None
                except http.client.HTTPException as exc:
                    raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from None
                except OSError as exc:
                    raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from None
                if not chunk:
                    break
                size += len(chunk)
                if size > max_body:
                    raise BodyTooLarge
                chunks.append(chunk)
            # read to the end (a chunked body closes itself at its last chunk; a sized
            # one is whole when nothing is left) and not to be closed: kept
            reusable = not response.will_close and (response.isclosed()
                                                    or response.length == 0)
            headers = {k.lower(): v for k, v in response.getheaders()}
            return Answer(response.status, response.reason, headers, b"".join(chunks))
        finally:
            response.close()  # its reader only: the socket is the connection's
            if reusable:
                self._give_back(origin, conn)
            else:
                conn.close()

    def _take(self, origin: Origin) -> http.client.HTTPConnection | None:
        """An idle connection still open, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                conn = idle.pop() if idle else None
            if conn is None or _still_open(conn):
                return conn
            conn.close()

    def _give_back(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if not self._closed and len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def idle_connections(self) -> int:
        """Connections waiting in the pool (for tests and the bench)."""
        with self._lock:
            return sum(len(conns) for conns in self._idle.values())

    def close(self) -> None:
        """Close the idle connections; a connection in use closes when its answer ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
