"""The one retry policy of the client (tenacity), in one place.

What is retried (:func:`is_transient`): transport errors and timeouts, 429 quota answers,
5xx answers, and garbage bodies (:class:`~linky2mqtt.enedis.errors.BadResponse`: a proxy
error page or a truncated body is transient in practice; it is bounded exactly like a 5xx).
Never retried: 400, 401/403, 404 and our own ``BudgetExhausted``.

Bounds: at most ``attempts`` attempts AND at most ``max_time`` seconds in total (a wait
that would cross ``max_time`` is not started: the last error is raised). Waits grow
exponentially (``initial`` x 2^n, capped at ``maximum``) plus a random jitter in
``[0, jitter]``. When the error says how long to wait (``ApiError.retry_after``: a
``Retry-After`` header, or a 429 body's hint), exactly that wait is used, without jitter,
if it fits both bounds; if it does not, the error is raised at once (nothing of the wait is
slept) and the caller defers (the bridge asks that meter again at that time: 429 is never a
failed poll, see :func:`linky2mqtt.scheduler.after_poll`).

Tests remove the sleeping with ``RetryPolicy(sleep=no_sleep)`` (or any recorder); the
total-time bound then counts the waits that would have been slept.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from .errors import BadResponse, QuotaError, ServerError, TransportError

__all__ = ["RetryPolicy", "is_transient", "no_sleep"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """True for the failures worth another attempt."""
    return isinstance(exc, TransportError | QuotaError | ServerError | BadResponse)


def no_sleep(seconds: float) -> None:
    """A sleep that does not sleep (tests)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    max_time: float = 120.0
    initial: float = 2.0
    maximum: float = 60.0
    jitter: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.max_time < 0 or self.initial < 0 or self.maximum < 0 or self.jitter < 0:
            raise ValueError("retry times must not be negative")

    def backoff(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        retry_after: object = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after >= 0:
            return float(retry_after)
        base = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        return base + self.rng.uniform(0.0, self.jitter)

    def call(self, fn: Callable[[], T], *,
             waiting: Callable[[], AbstractContextManager[object]] = nullcontext) -> T:
        """Run ``fn`` under this policy; the last exception is raised when giving up.
        ``waiting()`` is entered around each pause between two attempts."""

        # The first attempt runs outside tenacity (most calls succeed at once, and
        # tenacity's machinery costs more than a lean exchange); a transient failure of
        # it is handed to tenacity as its attempt 1 (replayed, not run again), so that
        # waits, bounds and logs are those of one tenacity loop from the start.
        began = time.monotonic()
        try:
            return fn()
        except BaseException as exc:
            if not is_transient(exc) or self.attempts == 1:
                raise
            failed: list[BaseException] = [exc]
        spent = time.monotonic() - began  # the first attempt, before tenacity's clock

        def attempt() -> T:
            if failed:
                raise failed.pop()
            return fn()

        def pause(seconds: float) -> None:
            with waiting():
                self.sleep(seconds)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.backoff(state.attempt_number, exc)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.attempts:
                return True
            elapsed = max((state.seconds_since_start or 0.0) + spent, state.idle_for)
            return elapsed + state.upcoming_sleep > self.max_time

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s; attempt %d/%d failed, retrying in %.1f s",
                exc,
                state.attempt_number,
                self.attempts,
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=stop,
            wait=wait,
            sleep=pause,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)
