"""Logging: one line per event, text or JSON, with every known secret masked.

Modules never log secrets on purpose; :class:`RedactingFilter` is the second line of
defence. Every secret value from the configuration (tokens, client secrets, passwords) is
registered with it, and any log record whose rendered message contains one has it
replaced by ``***`` before a handler sees it. Bearer tokens and ``Authorization`` header
values are masked by pattern too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

_AUTH_RE = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for s in secrets:
            if s and len(s) >= 4:
                self._secrets.add(s)

    def redact(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            if s in text:
                text = text.replace(s, "***")
        text = _AUTH_RE.sub(lambda m: m.group(1) + (m.group(2) or "") + "***", text)
        return _BEARER_RE.sub(lambda m: m.group(1) + "***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if record.exc_info:
            import traceback

            clean_exc = self.redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
            record.exc_text = None
            clean = f"{clean}\n{clean_exc.rstrip()}"
        record.msg = clean
        record.args = None
        return True


class OneLineFilter(logging.Filter):
    """Below debug, an exception is one line (``message: Type: first line``), never a
    traceback: at info the log says what failed; ``log.level: debug`` shows where."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            lines = str(exc).strip().splitlines()
            what = f"{exc.__class__.__name__}: {lines[0]}" if lines else exc.__class__.__name__
            record.msg = f"{record.getMessage()}: {what} (log level debug shows the traceback)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"
                ),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            },
            ensure_ascii=False,
        )


REDACTOR = RedactingFilter()


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None,
                  secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once (called by the CLI)."""
    REDACTOR.add(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    if level.lower() != "debug":
        handler.addFilter(OneLineFilter())  # before the redactor: it redacts the line
    handler.addFilter(REDACTOR)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_linky2mqtt", False):
            root.removeHandler(h)
    handler._linky2mqtt = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Third-party chatter below our own level of interest.
    for noisy in ("httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
