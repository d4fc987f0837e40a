"""An :class:`~linky2mqtt.enedis.EnedisClient` for tests: one attempt a request, no
sleeping, an in-memory budget ledger, the suite's clock unless told otherwise."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import httpx

from linky2mqtt.clock import Clock
from linky2mqtt.enedis import (
    Budget,
    EnedisClient,
    MemoryLedger,
    ProviderSettings,
    RetryPolicy,
    default_windows,
    no_sleep,
)
from tests.support.clock import SUITE_CLOCK


def one_try_client(settings: ProviderSettings, *,
                   handler: Callable[[httpx.Request], httpx.Response] | None = None,
                   budget: Budget | None = None, clock: Clock = SUITE_CLOCK,
                   retry: RetryPolicy | None = None,
                   waiting: Callable[[], AbstractContextManager[object]] = nullcontext,
                   ) -> EnedisClient:
    """A client of ``settings`` that tries each request once (unless ``retry`` says
    otherwise); ``handler`` answers in place of the network (an httpx MockTransport),
    else ``settings.base_url`` does. ``budget`` defaults to the provider's windows on a
    memory ledger and ``clock``; ``waiting`` is the client's (linky2mqtt.turns)."""
    http = None if handler is None else httpx.Client(transport=httpx.MockTransport(handler))
    return EnedisClient(
        settings, clock=clock, http=http,
        retry=retry or RetryPolicy(attempts=1, sleep=no_sleep), waiting=waiting,
        budget=budget or Budget(default_windows(settings.provider), MemoryLedger(), clock))
