"""Secret: a string that never shows itself.

Tokens, client secrets and passwords travel through the program wrapped in :class:`Secret`.
``str()``, ``repr()`` and ``format()`` give ``"***"``, so a secret that slips into a log
line, an exception message or a dataclass ``repr`` stays hidden. The value comes out only
through :meth:`Secret.reveal`, at the one place that must send it (an HTTP header, the
MQTT CONNECT packet). Two secrets are equal when their values are; secrets are hashable.
"""

from __future__ import annotations

from typing import Any, Final

MASK: Final = "***"


class Secret:
    """An immutable string value whose textual forms are always ``"***"``."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The real value: call it only where the value must be sent."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling keeps the value (multiprocessing needs it); printing never does.
        return (Secret, (self._value,))
