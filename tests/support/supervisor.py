"""A Home Assistant Supervisor stand-in for the add-on tests: HTTP + websocket on 127.0.0.1.

What an add-on started by the real Supervisor (2026.08, supervisor/api/services.py and
api/proxy.py) can ask, and nothing else:

* ``GET /services/mqtt`` with ``Authorization: Bearer <SUPERVISOR_TOKEN>``: ``{"result":
  "ok", "data": {host, port, ssl, username, password, protocol, addon}}`` for the broker
  the test started; ``400 {"result": "error", "message": "Service not enabled"}`` when the
  test gave none; ``401`` for a wrong token;
* ``/core/websocket``: the Home Assistant proxy. It sends ``auth_required``, accepts
  ``{"type": "auth", "access_token": <SUPERVISOR_TOKEN>}`` (else ``auth_invalid``
  "Invalid access"), then opens its own connection to the test's Home Assistant
  (``ha_url``, the fake one in CI or a real one) authenticated with *its* Home Assistant
  token, answers ``auth_ok`` with Home Assistant's version and relays frames both ways.
  ``supervisor/*`` and ``hassio/*`` commands are refused, as the real proxy does.

Everything is recorded for assertions: ``service_calls`` (path, token accepted),
``ws_auth`` (the access tokens the add-on sent), ``relayed`` (command types forwarded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.ws_server import LoopServer

_LOG = logging.getLogger("tests.supervisor")
_LOG.setLevel(logging.INFO)  # no frame dumps: they carry tokens

SUPERVISOR_TOKEN = "supervisor-token-for-the-addon-test"


@dataclass
class Broker:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    protocol: str = "3.1.1"

    def data(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "ssl": self.ssl,
                "username": self.username, "password": self.password,
                "protocol": self.protocol, "addon": "core_mosquitto"}


@dataclass
class SupervisorStandIn(LoopServer):
    token: str = SUPERVISOR_TOKEN
    broker: Broker | None = None
    ha_url: str | None = None  # http://127.0.0.1:port of the test's Home Assistant
    ha_token: str | None = None
    port: int = 0
    service_calls: list[tuple[str, bool]] = field(default_factory=list)
    ws_auth: list[str] = field(default_factory=list)
    relayed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _log = _LOG

    def env(self) -> dict[str, str]:
        """What the Supervisor gives an add-on, pointed at this stand-in."""
        return {"SUPERVISOR_TOKEN": self.token, "LINKY2MQTT_SUPERVISOR_URL": self.url}

    # -- HTTP: /services/mqtt ------------------------------------------------------------

    def _process_request(self, connection: ServerConnection,
                         request: Request) -> Response | None:
        if request.path == "/core/websocket":
            return None  # the websocket handshake goes on
        auth = request.headers.get("Authorization", "")
        ok = auth == f"Bearer {self.token}"
        with self._lock:
            self.service_calls.append((request.path, ok))
        if not ok:
            return _json(401, {"result": "error", "message": "Unauthorized"})
        if request.path == "/services/mqtt":
            if self.broker is None:
                return _json(400, {"result": "error", "message": "Service not enabled"})
            return _json(200, {"result": "ok", "data": self.broker.data()})
        return _json(404, {"result": "error", "message": "Not found"})

    # -- websocket: the Home Assistant proxy ---------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            await ws.send(json.dumps({"type": "auth_required", "ha_version": "supervisor"}))
            try:
                auth = json.loads(await ws.recv())
            except ValueError:
                auth = {}
            token = str(auth.get("access_token", "")) if isinstance(auth, dict) else ""
            with self._lock:
                self.ws_auth.append(token)
            if token != self.token:
                await ws.send(json.dumps({"type": "auth_invalid", "message": "Invalid access"}))
                await ws.close()
                return
            assert self.ha_url is not None and self.ha_token is not None
            upstream_url = self.ha_url.replace("http://", "ws://", 1) + "/api/websocket"
            async with connect(upstream_url, max_size=None, logger=_LOG) as up:
                first = json.loads(await up.recv())
                assert first.get("type") == "auth_required"
                await up.send(json.dumps({"type": "auth", "access_token": self.ha_token}))
                answer = json.loads(await up.recv())
                if answer.get("type") != "auth_ok":
                    await ws.close(1011, "Home Assistant refused the Supervisor")
                    return
                await ws.send(json.dumps(answer))
                await asyncio.gather(self._down(up, ws), self._up(ws, up))
        except ConnectionClosed:
            return

    async def _up(self, ws: ServerConnection, up: Any) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                kind = str(msg.get("type", ""))
                if kind.startswith(("supervisor/", "hassio/")):
                    await ws.send(json.dumps({
                        "id": msg.get("id"), "type": "result", "success": False,
                        "error": {"code": "unauthorized", "message": "Unauthorized"}}))
                    continue
                with self._lock:
                    self.relayed.append(kind)
                await up.send(raw)
        except ConnectionClosed:
            pass
        finally:
            await up.close()

    async def _down(self, up: Any, ws: ServerConnection) -> None:
        try:
            async for raw in up:
                await ws.send(raw)
        except ConnectionClosed:
            pass
        finally:
            await ws.close()


def _json(status: int, body: dict[str, Any]) -> Response:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}[status]
    headers = Headers([("Content-Type", "application/json"),
                       ("Content-Length", str(len(data))), ("Connection", "close")])
    return Response(status, reason, headers, data)


@pytest.fixture
def supervisor() -> Iterator[SupervisorStandIn]:
    stand_in = SupervisorStandIn().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def main() -> None:  # pragma: no cover - used by scripts/image-smoke.sh
    """Serve a stand-in until killed: ``python -m tests.support.supervisor --broker-port N``."""
    import argparse
    import signal

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--broker-host", default="127.0.0.1")
    p.add_argument("--broker-port", type=int, default=None)
    p.add_argument("--token", default=SUPERVISOR_TOKEN)
    a = p.parse_args()
    broker = None if a.broker_port is None else Broker(a.broker_host, a.broker_port)
    sup = SupervisorStandIn(token=a.token, broker=broker, port=a.port).start()
    print(sup.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    sup.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
