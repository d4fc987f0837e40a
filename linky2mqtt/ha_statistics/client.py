"""The websocket side of the statistics sink: one authenticated connection to Home Assistant.

:class:`HAConnection` speaks Home Assistant's websocket API (``auth_required`` ->
``auth`` -> ``auth_ok``/``auth_invalid``, then commands with increasing ``id`` answered by
``result`` messages) over the synchronous ``websockets`` client. Errors are split so the
sink can react: :class:`HAUnavailable` (network, timeouts: retry later), :class:`HAAuthError`
(token refused), :class:`HAError` (a command answered ``success: false``). Frames are never
logged: the auth frame carries the access token.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from contextlib import ExitStack
from typing import Any

from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.sync.client import ClientConnection, connect

from linky2mqtt.errors import Linky2MqttError

log = logging.getLogger(__name__)

USER_AGENT = "linky2mqtt websockets"


class _NoFrames(logging.Filter):
    """Drops websockets' frame dumps: the auth frame carries the access token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_WS_LOG = logging.getLogger(f"{__name__}.websocket")
_WS_LOG.setLevel(logging.INFO)
_WS_LOG.addFilter(_NoFrames())


class HomeAssistantError(Linky2MqttError):
    """Base of the statistics import's errors (never holds the access token)."""


class HAError(HomeAssistantError):
    """Home Assistant answered a command with ``success: false``."""

    def __init__(self, command: str, code: str, message: str) -> None:
        super().__init__(f"{command} failed: {code}: {message}")
        self.code = code


class HAAuthError(HomeAssistantError):
    """Home Assistant refused the access token (``auth_invalid``)."""


class HAUnavailable(HomeAssistantError):
    """Home Assistant could not be reached or the connection broke."""


def websocket_url(url: str) -> str:
    """``http(s)://host:port[/]`` -> ``ws(s)://host:port/api/websocket``; ws URLs as is."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        return url.strip()
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("Home Assistant URL must be http(s):// or ws(s)://")
    path = parts.path.rstrip("/") + "/api/websocket"
    return urllib.parse.urlunsplit(
        ("ws" if scheme == "http" else "wss", parts.netloc, path, "", "")
    )


class HAConnection:
    """One authenticated websocket to Home Assistant, commands answered in order."""

    def __init__(self, ws_url: str, token: str, *, timeout: float) -> None:
        self._timeout = timeout
        self._next_id = 1
        self._stack = ExitStack()
        try:
            # not enter_context(): websockets 15 (the version amqtt pins) types
            # Connection.__enter__ as returning a plain Connection
            self._ws: ClientConnection = connect(
                ws_url,
                open_timeout=timeout,
                close_timeout=2,
                max_size=None,
                proxy=None,
                compression=None,
                user_agent_header=USER_AGENT,
                logger=_WS_LOG,
            )
            self._stack.callback(self._ws.close)
        except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as err:
            raise HAUnavailable(f"cannot connect to {_safe_url(ws_url)}: {describe(err)}") from None
        try:
            first = self._recv()
            if first.get("type") != "auth_required":
                raise HAUnavailable(f"unexpected first message type {first.get('type')!r}")
            self._send({"type": "auth", "access_token": token})
            answer = self._recv()
            if answer.get("type") == "auth_invalid":
                message = str(answer.get("message", "")).replace(token, "***")
                raise HAAuthError(f"Home Assistant refused the access token: {message}")
            if answer.get("type") != "auth_ok":
                raise HAUnavailable(f"unexpected auth answer type {answer.get('type')!r}")
            self.ha_version = str(answer.get("ha_version", "?"))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            self._stack.close()
        except Exception:
            log.debug("statistics: error while closing the websocket", exc_info=True)

    def call(self, command: str, **payload: Any) -> Any:
        """Send one command, return its ``result``; HAError on ``success: false``."""
        mid = self._next_id
        self._next_id += 1
        self._send({"id": mid, "type": command, **payload})
        while True:
            msg = self._recv()
            if msg.get("id") != mid or msg.get("type") != "result":
                continue  # an event or a stale answer: not ours
            if not msg.get("success"):
                error = msg.get("error") or {}
                raise HAError(command, str(error.get("code")), str(error.get("message")))
            return msg.get("result")

    def _send(self, obj: dict[str, Any]) -> None:
        try:
            self._ws.send(json.dumps(obj, separators=(",", ":")))
        except (OSError, WebSocketException) as err:
            raise HAUnavailable(f"connection lost: {describe(err)}") from None

    def _recv(self) -> dict[str, Any]:
        try:
            raw = self._ws.recv(timeout=self._timeout)
        except TimeoutError:
            raise HAUnavailable(f"no answer within {self._timeout:g} s") from None
        except (OSError, WebSocketException) as err:
            raise HAUnavailable(f"connection lost: {describe(err)}") from None
        msg = json.loads(raw)
        if isinstance(msg, list):  # coalesced messages (never asked for; be tolerant)
            raise HAUnavailable("coalesced messages are not supported")
        if not isinstance(msg, dict):
            raise HAUnavailable("unexpected message")
        return msg


def describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _safe_url(url: str) -> str:
    """The URL without userinfo or query (where a token could hide)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
