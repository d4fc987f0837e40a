"""A websocket server on 127.0.0.1 run by an asyncio loop in a background thread: the
lifecycle shared by the test stand-ins (:mod:`tests.support.fake_ha`,
:mod:`tests.support.supervisor`)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class LoopServer:
    """Subclasses give ``_handle`` (one websocket connection), ``_process_request`` (the
    HTTP request before the handshake: a response ends it there, None goes on) and
    ``_log`` (the server's logger); ``port`` 0 takes a free port at the first start,
    which ``down()`` then ``up()`` keep."""

    port: int = 0
    _log: logging.Logger
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: Server | None = None

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def _process_request(self, connection: ServerConnection,
                         request: Request) -> Response | None:
        return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    def down(self) -> None:
        """Stop listening and drop every open connection (the port stays reserved)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is None:
            return
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    async def _serve(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port,
                                   process_request=self._process_request, max_size=None,
                                   reuse_address=True, logger=self._log)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
