"""How one exchange reaches the server and comes back as an :class:`Answer`.

Two wires, one contract (:class:`Wire`):

- :class:`LeanWire`, what the bridge uses: HTTP/1.1 written and read here, over sockets
  kept alive (a pool per origin, at most :data:`MAX_IDLE` idle each). Per request it
  costs a fraction of the CPU of ``httpx.Client`` for the same exchange
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
  checked); no compression is asked for (``Accept-Encoding: identity``);
- what it reads of HTTP/1.x: the status line (1xx interim answers skipped), headers
  (at most :data:`MAX_HEADERS` lines of at most :data:`MAX_LINE` bytes; obsolete folded
  lines joined), a body framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the
  end of the connection, none for HEAD, 204 and 304. ``Connection: close`` and HTTP/1.0
  answers end the connection; so does anything left unread after the answer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
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
MAX_LINE = 65536  # bytes in a status or header line (as http.client)
MAX_HEADERS = 100  # header lines in an answer (as http.client)
_READ_SIZE = 64 * 1024
_BAD_FIELD = re.compile(r"[\r\n\0]")
_DIGITS = re.compile(r"[0-9]{1,18}")  # a Content-Length: ASCII digits only
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")  # a chunk size: hex digits only

Origin = tuple[str, str, int]
_NO_BODY = (204, 304)


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


class _Ended(Exception):
    """The server closed the connection (end of stream)."""


class _Connection:
    """One socket and what was received on it but not consumed yet."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(_READ_SIZE)
        if not data:
            raise _Ended
        self.buf += data

    def line(self) -> bytes:
        """One line, its end included."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                out = bytes(self.buf[:end + 1])
                del self.buf[:end + 1]
                return out
            if len(self.buf) > MAX_LINE:
                raise httpx.RemoteProtocolError("a status or header line is too long")
            self._fill()

    def some(self, most: int) -> bytes:
        """Between 1 and ``most`` bytes: what is buffered, else what one read brings."""
        if not self.buf:
            self._fill()
        out = bytes(self.buf[:most])
        del self.buf[:most]
        return out

    def exactly(self, count: int) -> bytes:
        while len(self.buf) < count:
            self._fill()
        out = bytes(self.buf[:count])
        del self.buf[:count]
        return out

    def still_open(self) -> bool:
        """Whether this idle connection can carry a request: nothing left over, nothing to
        read (readable means the server closed it, or sent what nobody asked for)."""
        if self.buf:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


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
    """HTTP/1.1 over kept-alive sockets (see the module's docstring)."""

    def __init__(self, timeout: httpx.Timeout, *, ssl_context: ssl.SSLContext | None = None,
                 max_idle: int = MAX_IDLE) -> None:
        self._connect_timeout = timeout.connect
        self._read_timeout = timeout.read
        self._write_timeout = timeout.write
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}
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
        scheme, host = parts.scheme, parts.hostname
        if scheme not in ("http", "https") or not host:
            raise httpx.UnsupportedProtocol(f"cannot send to {scheme or 'no'} URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise httpx.UnsupportedProtocol(f"bad port in URL: {exc}") from None
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(params, quote_via=quote)) if q)
        if query:
            target += "?" + query
        default_port = 443 if scheme == "https" else 80
        netloc = f"[{host}]" if ":" in host else host
        fields = {"Host": netloc if port == default_port else f"{netloc}:{port}",
                  "Accept-Encoding": "identity", **headers}
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            fields["Content-Type"] = "application/x-www-form-urlencoded"
        if body or method in ("POST", "PUT", "PATCH"):
            fields["Content-Length"] = str(len(body))
        if basic is not None:
            pair = f"{basic[0]}:{basic[1]}".encode()
            fields["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        request = _request_head(method, target, fields) + body
        origin: Origin = (scheme, host, port)
        conn = self._take(origin) or self._connect(origin)
        try:
            answer, reusable = self._exchange(conn, method, request, abandon, max_body)
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._give_back(origin, conn)
        else:
            conn.close()
        return answer

    def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        try:
            sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:  # refused, unreachable, name not found
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._context().wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            sock.close()
            raise httpx.ConnectTimeout(f"TLS with {host}:{port} timed out") from None
        except OSError as exc:  # the certificate refused, the handshake failed
            sock.close()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        return _Connection(sock)

    def _exchange(self, conn: _Connection, method: str, request: bytes,
                  abandon: threading.Event, max_body: int) -> tuple[Answer | None, bool]:
        """Send ``request`` on ``conn`` and read the answer; (answer or None when
        abandoned, whether the connection may carry another request)."""
        try:
            conn.sock.settimeout(self._write_timeout)
            conn.sock.sendall(request)
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out") from None
        except OSError as exc:
            raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from None
        try:
            conn.sock.settimeout(self._read_timeout)
            return _read_answer(conn, method, abandon, max_body)
        except TimeoutError:
            raise httpx.ReadTimeout("the answer did not come in time") from None
        except _Ended:
            raise httpx.RemoteProtocolError("the server closed the connection before the "
                                            "end of its answer") from None
        except OSError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from None

    def _take(self, origin: Origin) -> _Connection | None:
        """An idle connection still open, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                conn = idle.pop() if idle else None
            if conn is None or conn.still_open():
                return conn
            conn.close()

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
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
        """Connections waiting in the pool (for tests)."""
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


def _request_head(method: str, target: str, fields: dict[str, str]) -> bytes:
    """The request line and headers; a name or value that would break the framing (CR,
    LF, NUL) or that Latin-1 cannot encode is refused before anything is sent."""
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in fields.items():
        if _BAD_FIELD.search(name) or _BAD_FIELD.search(value) or ":" in name:
            raise httpx.LocalProtocolError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise httpx.LocalProtocolError("a header holds characters HTTP cannot carry") from None


def _read_answer(conn: _Connection, method: str, abandon: threading.Event,
                 max_body: int) -> tuple[Answer | None, bool]:
    """Status line, headers and body of one answer (see the module's docstring)."""
    while True:
        try:
            line = conn.line()
        except _Ended:
            raise httpx.RemoteProtocolError(
                "the server closed the connection without answering") from None
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {line[:60]!r}")
        status = int(code)
        headers = _read_headers(conn)
        if not 100 <= status < 200 or status == 101:
            break  # 1xx: an interim answer, the real one follows
    keep = version != "HTTP/1.0" and "close" not in headers.get("connection", "").lower()
    coding = headers.get("transfer-encoding", "").lower()
    chunks: list[bytes] = []
    if method == "HEAD" or status in _NO_BODY or 100 <= status < 200:
        pass
    elif coding:
        if coding.rsplit(",", 1)[-1].strip() != "chunked":
            raise httpx.RemoteProtocolError(f"unsupported transfer coding {coding!r}")
        if not _read_chunked(conn, chunks, abandon, max_body):
            return None, False
    elif "content-length" in headers:
        texts = {v.strip() for v in headers["content-length"].split(",")}
        if len(texts) != 1 or not all(_DIGITS.fullmatch(v) for v in texts):
            raise httpx.RemoteProtocolError("unreadable Content-Length")
        lengths = {int(v) for v in texts}
        if not _read_sized(conn, lengths.pop(), chunks, abandon, max_body):
            return None, False
    else:  # the body ends with the connection
        keep = False
        if not _read_to_end(conn, chunks, abandon, max_body):
            return None, False
    return Answer(status, reason.strip(), headers, b"".join(chunks)), keep and not conn.buf


def _read_headers(conn: _Connection) -> dict[str, str]:
    headers: dict[str, str] = {}
    name = ""
    for _ in range(MAX_HEADERS + 1):
        line = conn.line()
        if line in (b"\r\n", b"\n"):
            return headers
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and name:  # an obsolete folded line: the value goes on
            headers[name] += " " + text.strip()
            continue
        field, colon, value = text.partition(":")
        if not colon or not field or field != field.strip():
            raise httpx.RemoteProtocolError(f"not a header line: {line[:60]!r}")
        name = field.lower()
        headers[name] = value.strip()
    raise httpx.RemoteProtocolError(f"more than {MAX_HEADERS} header lines")


def _read_sized(conn: _Connection, left: int, chunks: list[bytes], abandon: threading.Event,
                max_body: int) -> bool:
    """Read ``left`` bytes into ``chunks`` (at most ``max_body``); False when abandoned."""
    if left > max_body:
        raise BodyTooLarge
    while left:
        if abandon.is_set():
            return False
        chunk = conn.some(min(left, _READ_SIZE))
        left -= len(chunk)
        chunks.append(chunk)
    return True


def _read_chunked(conn: _Connection, chunks: list[bytes], abandon: threading.Event,
                  max_body: int) -> bool:
    size = 0
    while True:
        if abandon.is_set():
            return False
        line = conn.line().split(b";", 1)[0].strip()
        if not _HEX.fullmatch(line):
            raise httpx.RemoteProtocolError(f"not a chunk size: {line[:20]!r}")
        left = int(line, 16)
        if left == 0:
            _read_headers(conn)  # the trailer, up to its empty line
            return True
        if not _read_sized(conn, left, chunks, abandon, max_body - size):
            return False
        size += left
        if conn.exactly(2) != b"\r\n":
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF")


def _read_to_end(conn: _Connection, chunks: list[bytes], abandon: threading.Event,
                 max_body: int) -> bool:
    size = 0
    while True:
        if abandon.is_set():
            return False
        try:
            chunk = conn.some(_READ_SIZE)
        except _Ended:
            return True
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge
        chunks.append(chunk)
