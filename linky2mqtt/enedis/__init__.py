"""linky2mqtt.enedis: a client for Enedis Linky data through three providers.

No MQTT, no YAML, no configuration file here: the caller builds :class:`ProviderSettings`
with plain strings and injects the HTTP client, the clock, the budget and the retry policy::

    client = EnedisClient(ProviderSettings(provider="dataconnect", client_id=..., ...),
                          budget=Budget(windows, ledger, clock), retry=RetryPolicy())
    client.daily(pdl, kind, start, end, priority=Priority.FRESH) -> FetchResult
    client.curve(pdl, kind, start, end, priority=...) -> FetchResult   # end exclusive
    client.contract(pdl) -> Contract | None
    client.covered_pdls() -> list[str] | None     # the PDLs a token covers, when it says

Priorities: ``FRESH`` (yesterday's data) > ``COMMAND`` > ``BACKFILL``. When the budget
does not allow a request within ``max_wait`` seconds (2 s by default) the client raises
:class:`errors.BudgetExhausted` with ``retry_at`` instead of sleeping. All datetimes are
aware: UTC inside, Europe/Paris only for upstream dates.
"""

from . import errors
from .budget import (
    Budget,
    Ledger,
    MemoryLedger,
    Priority,
    Window,
    default_windows,
    scopes_for,
)
from .client import USER_AGENT, EnedisClient, FetchResult
from .contract import Contract, ContractEntry, parse_contract, subscribed_kva
from .providers import DEFAULT_BASE_URLS, PROVIDERS, REGISTRY, Provider, ProviderSettings, provider
from .retry import RetryPolicy, is_transient, no_sleep

__all__ = [
    "DEFAULT_BASE_URLS",
    "PROVIDERS",
    "REGISTRY",
    "USER_AGENT",
    "Budget",
    "Contract",
    "ContractEntry",
    "EnedisClient",
    "FetchResult",
    "Ledger",
    "MemoryLedger",
    "Priority",
    "Provider",
    "ProviderSettings",
    "RetryPolicy",
    "Window",
    "default_windows",
    "errors",
    "is_transient",
    "no_sleep",
    "parse_contract",
    "provider",
    "scopes_for",
    "subscribed_kva",
]
