"""The heartbeat file of a running bridge, and the check behind ``linky2mqtt healthcheck``.

The bridge writes ``<store.path>.health`` every :data:`INTERVAL` seconds from a thread
(:class:`Heartbeat`): ``{"time": epoch, "mqtt_connected": bool, "pid": int,
"disconnected_since": epoch | null}``. The file is replaced atomically (write a temporary
file, then rename), so a reader never sees half of it; it is created 0600. Times are real
wall-clock seconds (``time.time()``), never a test clock: the check runs in another process.

:func:`check` reads it: healthy when the file is fresh (at most :data:`MAX_AGE` seconds
old) and MQTT has not been disconnected for more than :data:`MAX_DISCONNECTED` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INTERVAL = 30.0
MAX_AGE = 120.0
MAX_DISCONNECTED = 300.0

__all__ = ["INTERVAL", "MAX_AGE", "MAX_DISCONNECTED", "Heartbeat", "check", "health_path"]


def health_path(store_path: str | Path) -> Path | None:
    """Where the heartbeat of a bridge using ``store_path`` lives (None: in-memory store)."""
    text = str(store_path)
    if text == ":memory:" or text.startswith("file:"):
        return None
    return Path(f"{text}.health")


class Heartbeat:
    """Writes the heartbeat file now and every ``interval`` seconds until stopped."""

    def __init__(self, path: Path, is_connected: Callable[[], bool], *,
                 interval: float = INTERVAL, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self.is_connected = is_connected
        self.interval = interval
        self.now = now
        self.disconnected_since: float | None = now()  # not connected yet at start
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            self.beat()
            if self._stop.wait(self.interval):
                return

    def beat(self) -> None:
        """Write the file once; a failure (disk full...) is logged once, never raised."""
        now = self.now()
        connected = bool(self.is_connected())
        if connected:
            self.disconnected_since = None
        elif self.disconnected_since is None:
            self.disconnected_since = now
        body = {"time": now, "mqtt_connected": connected, "pid": os.getpid(),
                "disconnected_since": self.disconnected_since}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(body))
            os.chmod(tmp, 0o600)  # a leftover from an older version may be 0644
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failing:
                log.error("cannot write the heartbeat file %s: %s", self.path,
                          exc.strerror or exc)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat file %s written again", self.path)
        self._failing = False


def check(path: Path, *, now: float | None = None, max_age: float = MAX_AGE,
          max_disconnected: float = MAX_DISCONNECTED) -> str | None:
    """None when healthy, else one line saying what is wrong."""
    now = time.time() if now is None else now
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no heartbeat file {path}: is the bridge running?"
    except (OSError, ValueError) as exc:
        return f"heartbeat file {path} unreadable: {exc}"
    stamp = doc.get("time") if isinstance(doc, dict) else None
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return f"heartbeat file {path} has no time"
    age = now - float(stamp)
    if age > max_age:
        return f"heartbeat file {path} is {age:.0f} s old (limit {max_age:.0f} s)"
    since = doc.get("disconnected_since")
    if (not doc.get("mqtt_connected") and isinstance(since, int | float)
            and not isinstance(since, bool) and now - float(since) > max_disconnected):
        return (f"MQTT disconnected for {now - float(since):.0f} s "
                f"(limit {max_disconnected:.0f} s)")
    return None
