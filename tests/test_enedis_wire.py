"""The lean wire (HTTP/1.1 over kept-alive sockets) over real sockets: against the
simulator it gives the same answers as httpx; against scripted raw servers, keep-alive,
a connection closed while idle, ``Connection: close``, chunked bodies, interim and
bodiless answers, malformed answers, timeouts, refused connections, oversized and
abandoned bodies, and TLS verification."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from linky2mqtt.enedis import EnedisClient, ProviderSettings
from linky2mqtt.enedis.wire import Answer, BodyTooLarge, HttpxWire, LeanWire, env_proxies
from linky2mqtt.model import Kind, paris_today
from linky2mqtt.simulator import Simulator
from tests.support.clock import SUITE_CLOCK
from tests.support.pki import pki  # noqa: F401  (fixture)
from tests.support.simulator import SIM_CLIENT
from tests.support.waiting import wait_until

PDL = "22516914714270"
TIMEOUT = httpx.Timeout(5.0, connect=5.0)


def exchange(wire: LeanWire | HttpxWire, url: str, *, method: str = "GET",
             params: dict[str, str] | None = None, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, basic: tuple[str, str] | None = None,
             abandon: threading.Event | None = None, max_body: int = 1 << 20) -> Answer:
    got = wire.exchange(method, url, params=params or {}, form=form,
                        headers=headers or {}, basic=basic,
                        abandon=abandon or threading.Event(), max_body=max_body)
    assert got is not None
    return got


# -- the same answers as httpx, from the simulator ---------------------------------------


def test_lean_and_httpx_wires_read_the_simulator_alike(simulator: Simulator) -> None:
    lean = LeanWire(TIMEOUT)
    with httpx.Client(timeout=TIMEOUT) as client:
        heavy = HttpxWire(client)
        answers: dict[str, list[Answer]] = {"lean": [], "httpx": []}
        for name, wire in (("lean", lean), ("httpx", heavy)):
            token = exchange(wire, simulator.url + "/oauth2/v3/token", method="POST",
                             form={"grant_type": "client_credentials"}, basic=SIM_CLIENT)
            assert token.status == 200, token.content
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            day = paris_today(SUITE_CLOCK.now()) - timedelta(days=1)
            params = {"pointId": PDL, "dateDebut": (day - timedelta(days=2)).isoformat(),
                      "dateFin": day.isoformat()}
            for path in ("/mesure_synchrone_auto/v2/consommation_quotidienne",
                         "/mesure_synchrone_auto/v2/courbe_de_charge_consommation"):
                answers[name].append(exchange(wire, simulator.url + path, params=params,
                                              headers=bearer))
            # refused: no token; unknown path
            answers[name].append(exchange(
                wire, simulator.url + "/mesure_synchrone_auto/v2/consommation_quotidienne",
                params=params))
            answers[name].append(exchange(wire, simulator.url + "/no/such/path"))
    lean.close()
    statuses = [a.status for a in answers["lean"]]
    assert statuses == [200, 200, 401, 404]
    for mine, theirs in zip(answers["lean"], answers["httpx"], strict=True):
        assert (mine.status, mine.reason, mine.content) == (
            theirs.status, theirs.reason, theirs.content)
        assert mine.headers["content-type"] == theirs.headers["content-type"]
    assert b"2026-" in answers["lean"][0].content  # a real answer, with its dates


def test_the_bridge_client_makes_the_lean_wire_and_fetches_through_it(
        simulator: Simulator) -> None:
    settings = ProviderSettings("dataconnect", client_id=SIM_CLIENT[0],
                                client_secret=SIM_CLIENT[1], base_url=simulator.url)
    with EnedisClient(settings, clock=SUITE_CLOCK) as client:
        assert isinstance(client._wire, LeanWire)
        day = paris_today(SUITE_CLOCK.now()) - timedelta(days=1)
        got = client.daily(PDL, Kind.CONSUMPTION, day - timedelta(days=6), day)
        assert len(got.readings) == 6 and not got.missing
        curve = client.curve(PDL, Kind.CONSUMPTION, day - timedelta(days=1), day)
        assert len(curve.readings) == 48
        # the token, the daily and the curve call went over one kept connection
        assert client._wire.idle_connections() == 1


# -- scripted raw servers ------------------------------------------------------------------


Handler = Callable[[socket.socket, int], None]  # a connection and its index


class RawServer:
    """A TCP server that runs ``handler`` for every connection, in its own thread."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.tls = tls
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed = 0  # connections the server closed
        self.requests: list[bytes] = []
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index = self.accepted
            self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(10)
            self.handler(conn, index)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()
            self.closed += 1

    def read_request(self, conn: socket.socket) -> bytes | None:
        """One request (headers and a Content-Length body), or None at end of stream."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        self.requests.append(head + b"\r\n\r\n" + body)
        return head

    def close(self) -> None:
        self.sock.close()
        for thread in self._threads:
            thread.join(10)


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    made: list[RawServer] = []

    def make(handler: Handler, **kw: object) -> RawServer:
        server = RawServer(handler, **kw)  # type: ignore[arg-type]
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def test_keep_alive_sends_every_request_on_one_connection(
        raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, _index: int) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(ok())

    server = raw_server(handler)
    wire = LeanWire(TIMEOUT)
    for _ in range(5):
        assert exchange(wire, server.url + "/x").json() == {"ok": True}
    assert server.accepted == 1
    assert len(server.requests) == 5
    wire.close()


def test_a_connection_the_server_closed_while_idle_is_not_used(
        raw_server: Callable[..., RawServer]) -> None:
    # the server answers one request per connection and closes, without saying so
    def handler(conn: socket.socket, _index: int) -> None:
        if server.read_request(conn) is not None:
            conn.sendall(ok())

    server = raw_server(handler)
    wire = LeanWire(TIMEOUT)
    for i in range(3):
        assert exchange(wire, server.url + "/x").status == 200
        closed = i + 1
        wait_until(lambda: server.closed == closed, 10, "the server closed")  # noqa: B023
    assert server.accepted == 3  # each later request saw its kept connection closed
    assert len(server.requests) == 3  # and nothing was sent on it
    assert wire.idle_connections() == 1
    wire.close()


def test_a_request_is_never_sent_twice_by_the_wire(
        raw_server: Callable[..., RawServer]) -> None:
    # the server reads the second request of a connection and closes without answering:
    # it may have acted on it, so the wire does not send it again (the budgeted retry
    # policy above decides)
    def handler(conn: socket.socket, index: int) -> None:
        if server.read_request(conn) is not None:
            conn.sendall(ok())
        if index == 0:
            server.read_request(conn)

    server = raw_server(handler)
    wire = LeanWire(TIMEOUT)
    assert exchange(wire, server.url + "/x").status == 200
    with pytest.raises(httpx.RemoteProtocolError, match="closed the connection without"):
        exchange(wire, server.url + "/x")
    assert server.accepted == 1 and len(server.requests) == 2
    assert exchange(wire, server.url + "/x").status == 200  # a new connection
    assert server.accepted == 2


def test_a_fresh_connection_closed_before_the_answer_is_an_error_not_a_retry(
        raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, _index: int) -> None:
        server.read_request(conn)  # and close without answering

    server = raw_server(handler)
    wire = LeanWire(TIMEOUT)
    with pytest.raises(httpx.RemoteProtocolError):
        exchange(wire, server.url + "/x")
    assert server.accepted == 1


def test_connection_close_and_chunked_answers(raw_server: Callable[..., RawServer]) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"5\r\n{\"a\":\r\n3\r\n12}\r\n0\r\n\r\n")

    def handler(conn: socket.socket, index: int) -> None:
        while server.read_request(conn) is not None:
            if index == 0:
                conn.sendall(ok(extra=b"Connection: close\r\n"))
                return
            conn.sendall(chunked)

    server = raw_server(handler)
    wire = LeanWire(TIMEOUT)
    assert exchange(wire, server.url + "/x").json() == {"ok": True}
    assert wire.idle_connections() == 0  # "Connection: close": not kept
    assert exchange(wire, server.url + "/x").json() == {"a": 12}
    assert exchange(wire, server.url + "/x").json() == {"a": 12}
    assert server.accepted == 2 and wire.idle_connections() == 1


def test_what_goes_on_the_wire(raw_server: Callable[..., RawServer]) -> None:
    def handler(conn: socket.socket, _index: int) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(ok())

    server = raw_server(handler)
    wire = LeanWire(TIMEOUT)
    exchange(wire, server.url + "/base/path", params={"a": "1 2", "b": "é"},
             headers={"User-Agent": "ua/1", "Accept": "application/json"})
    exchange(wire, server.url + "/token", method="POST",
             form={"grant_type": "client_credentials", "x": "a&b"}, basic=("id", "s:e"))
    get, post = server.requests
    assert get.startswith(b"GET /base/path?a=1%202&b=%C3%A9 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in get
    assert b"User-Agent: ua/1\r\n" in get and b"Accept: application/json\r\n" in get
    assert post.startswith(b"POST /token HTTP/1.1\r\n")
    assert b"Authorization: Basic aWQ6czpl\r\n" in post  # base64 of "id:s:e"
    assert b"Content-Type: application/x-www-form-urlencoded\r\n" in post
    assert post.endswith(b"\r\n\r\ngrant_type=client_credentials&x=a%26b")
    wire.close()


def scripted(answers: list[bytes]) -> Handler:
    """A handler that answers the n-th request of a connection with ``answers[n]``."""
    def handler(conn: socket.socket, _index: int) -> None:
        for answer in answers:
            if conn.recv(65536) == b"":
                return
            conn.sendall(answer)
    return handler


@pytest.mark.parametrize(("answer", "status", "content", "kept"), [
    # an interim 100 and 103, then the answer
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
     + ok(), 200, b'{"ok":true}', True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, b"", True),
    # no length: the body ends with the connection
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 200,
     b"until the end", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", 200, b"{}", False),
    # a folded header line, a status without reason, a chunk extension and a trailer
    (b"HTTP/1.1 200\r\nX-Long: a\r\n  b\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2;ext=1\r\n{}\r\n0\r\nX-Trailer: t\r\n\r\n", 200, b"{}", True),
    (ok(b"{}", b"Content-Length: 2\r\n"), 200, b"{}", True),  # the same length twice
    # bytes past the answer: read, but the connection is not kept
    (ok(b"{}") + b"HTTP/1.1 200 OK\r\n", 200, b"{}", False),
])
def test_answers_of_every_framing(raw_server: Callable[..., RawServer], answer: bytes,
                                  status: int, content: bytes, kept: bool) -> None:
    server = raw_server(scripted([answer]))
    wire = LeanWire(TIMEOUT)
    got = exchange(wire, server.url + "/x")
    assert (got.status, got.content) == (status, content)
    assert wire.idle_connections() == (1 if kept else 0)
    if b"X-Long" in answer:
        assert got.headers["x-long"] == "a b" and got.reason == ""


@pytest.mark.parametrize(("answer", "error"), [
    (b"garbage\r\n\r\n", "not an HTTP/1.x status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 header"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000, "too long"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "before the end"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n{}", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}", "transfer coding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}xx0\r\n\r\n",
     "CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", "before the end"),
])
def test_malformed_answers_are_protocol_errors(raw_server: Callable[..., RawServer],
                                               answer: bytes, error: str) -> None:
    server = raw_server(scripted([answer]))
    wire = LeanWire(TIMEOUT)
    with pytest.raises(httpx.RemoteProtocolError, match=error):
        exchange(wire, server.url + "/x")
    assert wire.idle_connections() == 0


@pytest.mark.parametrize("header", [{"X-Evil": "a\r\nInjected: 1"}, {"X\nY": "1"},
                                    {"X": "€"}, {"A:B": "1"}])
def test_a_header_that_would_break_the_request_is_refused_unsent(
        raw_server: Callable[..., RawServer], header: dict[str, str]) -> None:
    server = raw_server(scripted([ok()]))
    with pytest.raises(httpx.LocalProtocolError):
        exchange(LeanWire(TIMEOUT), server.url + "/x", headers=header)
    assert server.accepted == 0


def test_timeouts_and_refusals_are_httpx_errors(raw_server: Callable[..., RawServer]) -> None:
    silent = threading.Event()

    def handler(conn: socket.socket, _index: int) -> None:
        server.read_request(conn)
        silent.wait(10)  # never answers (released at the end)

    server = raw_server(handler)
    wire = LeanWire(httpx.Timeout(0.3, connect=2.0))
    try:
        with pytest.raises(httpx.ReadTimeout):
            exchange(wire, server.url + "/x")
    finally:
        silent.set()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(httpx.ConnectError):
        exchange(wire, f"http://127.0.0.1:{port}/x")
    with pytest.raises(httpx.UnsupportedProtocol):
        exchange(wire, "ftp://127.0.0.1/x")


def test_an_oversized_or_abandoned_body_drops_its_connection(
        raw_server: Callable[..., RawServer]) -> None:
    big = b"[" + b"0," * 5000 + b"0]"

    def handler(conn: socket.socket, _index: int) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(ok(big))

    server = raw_server(handler)
    wire = LeanWire(TIMEOUT)
    with pytest.raises(BodyTooLarge):
        exchange(wire, server.url + "/x", max_body=1000)
    assert wire.idle_connections() == 0
    gone = threading.Event()
    gone.set()
    assert wire.exchange("GET", server.url + "/x", params={}, form=None, headers={},
                         basic=None, abandon=gone, max_body=1 << 20) is None
    assert wire.idle_connections() == 0
    assert len(exchange(wire, server.url + "/x").content) == len(big)
    assert server.accepted == 3 and wire.idle_connections() == 1


def test_tls_is_verified(raw_server: Callable[..., RawServer], pki: Path) -> None:  # noqa: F811
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki / "server.crt", pki / "server.key")

    def handler(conn: socket.socket, _index: int) -> None:
        while server.read_request(conn) is not None:
            conn.sendall(ok())

    server = raw_server(handler, tls=tls, host="0.0.0.0")
    # the default context (certifi's CAs) does not know the test CA
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        exchange(LeanWire(TIMEOUT), server.url + "/x")
    trusting = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    wire = LeanWire(TIMEOUT, ssl_context=trusting)
    assert exchange(wire, server.url + "/x").json() == {"ok": True}
    assert exchange(wire, server.url + "/x").json() == {"ok": True}
    assert server.accepted == 2  # the refused handshake, then one kept connection
    # a name the certificate does not hold is refused too
    other = LeanWire(TIMEOUT, ssl_context=trusting)
    with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|match"):
        exchange(other, f"https://127.0.0.2:{server.port}/x")
    wire.close()


def test_env_proxies_reads_every_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not env_proxies()
    monkeypatch.setenv("NO_PROXY", "example.org")
    assert not env_proxies()  # an exception list alone names no proxy
    for name in ("https_proxy", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://proxy.test:3128")
        assert env_proxies(), name
        monkeypatch.delenv(name)


@pytest.mark.parametrize("framing", ["sized", "chunked", "until-close"])
def test_a_body_past_the_limit_is_refused_in_every_framing(
        raw_server: Callable[..., RawServer], framing: str) -> None:
    body = b"x" * 3000
    answer = {
        "sized": ok(body),
        "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"".join(b"3e8\r\n" + body[i:i + 1000] + b"\r\n"
                               for i in range(0, 3000, 1000)) + b"0\r\n\r\n"),
        "until-close": b"HTTP/1.1 200 OK\r\n\r\n" + body,
    }[framing]
    for limit, refused in ((2999, True), (3000, False)):
        server = raw_server(scripted([answer]))
        wire = LeanWire(TIMEOUT)
        if refused:
            with pytest.raises(BodyTooLarge):
                exchange(wire, server.url + "/x", max_body=limit)
            assert wire.idle_connections() == 0
        else:
            assert exchange(wire, server.url + "/x", max_body=limit).content == body
