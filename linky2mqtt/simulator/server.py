"""The HTTP layer: a threaded HTTP/1.1 server (keep-alive, Content-Length) over an App.

Each connection gets a daemon thread; ``stop()`` stops accepting, closes every open
connection (so keep-alive clients see the outage) and interrupts pending delays.
Logs one line per request (method, path, status, provider/endpoint, PDL, duration);
query strings of the token endpoint and Authorization headers are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from linky2mqtt.simulator.app import App
from linky2mqtt.simulator.http import Request, Response
from linky2mqtt.simulator.tempo import TempoStandIn

log = logging.getLogger("linky2mqtt.simulator")

IDLE_TIMEOUT = 60.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EnedisSimulator/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True
    server: SimHTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def _handle(self) -> None:
        started = time.monotonic()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = self.server.app.handle(Request(self.command, self.path, headers, body))
        if resp.delay > 0 and self.server.stopping.wait(resp.delay):
            resp = Response(0, drop=True, provider=resp.provider, endpoint=resp.endpoint,
                            pdl=resp.pdl, counted=resp.counted)
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for name, value in resp.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self._write_body(resp)
        self._log(resp, time.monotonic() - started)

    def _write_body(self, resp: Response) -> None:
        if resp.trickle <= 0:
            self.wfile.write(resp.body)
            return
        for i in range(len(resp.body)):  # the "trickle" fault: one byte at a time
            if i and self.server.stopping.wait(resp.trickle):
                self.close_connection = True
                return
            self.wfile.write(resp.body[i:i + 1])
            self.wfile.flush()

    def _log(self, resp: Response, elapsed: float) -> None:
        path = self.path.partition("?")[0] if "token" in self.path else self.path
        status = "dropped" if resp.drop else str(resp.status)
        log.info("%s %s -> %s %s/%s pdl=%s %.1fms", self.command, path, status,
                 resp.provider, resp.endpoint, resp.pdl or "-", elapsed * 1000)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (killed, timed out) is not an error."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class ServerThread:
    """Runs a SimHTTPServer in a background daemon thread."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self.httpd = SimHTTPServer((host, port), app)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"simulator-{self.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
        self._thread.join(timeout=5)


class _Alone:
    """Serves only the stand-in (unknown paths: 404), for :func:`serve_tempo`."""

    def __init__(self, stand_in: TempoStandIn) -> None:
        self.stand_in = stand_in

    def handle(self, req: Request) -> Response:
        resp = self.stand_in.handle(req)
        if resp is None:
            return Response(404, b'{"error": "not_found"}')
        return resp


def serve_tempo(stand_in: TempoStandIn, host: str = "127.0.0.1", port: int = 0) -> ServerThread:
    """Start the stand-in alone on ``host:port`` (0: a free port); ``.stop()`` it after.

    The simulator's HTTP layer only calls ``app.handle(request)``, which ``_Alone`` has.
    """
    server = ServerThread(cast(App, _Alone(stand_in)), host, port)
    server.start()
    return server
