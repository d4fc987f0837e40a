"""The simulator's HTTP request and response values (shared by the app and the Tempo
stand-in, so that neither imports the other's server)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

__all__ = ["UNKNOWN", "Request", "Response", "json_response"]

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        path, _, query = self.target.partition("?")
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "query", parse_qs(query, keep_blank_values=True))

    def param(self, *names: str) -> str | None:
        for name in names:
            values = self.query.get(name)
            if values:
                return values[0]
        return None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    drop: bool = False
    delay: float = 0.0  # real seconds to wait before answering
    trickle: float = 0.0  # > 0: write the body one byte every ``trickle`` real seconds
    provider: str = UNKNOWN
    endpoint: str = UNKNOWN
    pdl: str | None = None
    counted: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode())
