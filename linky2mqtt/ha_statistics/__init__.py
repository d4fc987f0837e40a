"""Home Assistant long-term statistics sink: hour-exact energy for the Energy dashboard.

MQTT sensors are recorded by Home Assistant when a value arrives, so yesterday's energy
lands in one lump this morning. This module places every hour where it belongs by writing
*external statistics* over Home Assistant's websocket API (``recorder/import_statistics``):

* one statistic per meter and kind: ``linky2mqtt:<pdl>_consumption`` / ``_production``,
  source ``linky2mqtt``, kWh, ``has_sum``, ``mean_type`` 0, ``unit_class`` ``energy``;
* one row per local clock hour (23 or 25 on DST days): ``start`` the local hour with its
  offset, ``state`` the hour's kWh, ``sum`` the running total in kWh.

It is incremental and idempotent. The account threads call :meth:`StatisticsSink.notify`
(through :class:`StatisticsWorker`, the thread that runs the sync) after they stored new
hourly data; that marks the statistic dirty from that hour on, persistently
(:class:`SyncState`, implemented by the SQLite store). :meth:`StatisticsSink.sync` then asks
Home Assistant for the running sum just before the dirty hour, recomputes every row from
there to the latest hour held, writes them in chunks (Home Assistant overwrites rows with
the same start) and marks the statistic clean. Sums therefore never restart at 0, stay
monotonic across runs, restarts and backfills, and nothing is sent when nothing is dirty.

``sync`` never raises and never touches MQTT: Home Assistant being down or refusing the
token leaves the statistic dirty for a later run (with a bounded backoff between
connection attempts). The access token never appears in logs or exception messages.
"""

from linky2mqtt.ha_statistics.client import (
    HAAuthError,
    HAConnection,
    HAError,
    HAUnavailable,
    HomeAssistantError,
    websocket_url,
)
from linky2mqtt.ha_statistics.sink import (
    SOURCE,
    HoursSource,
    MemorySyncState,
    NameFor,
    PartsFor,
    PartsSource,
    StatisticsSink,
    SyncReport,
    SyncState,
    build_rows,
    default_name,
    statistic_id,
)
from linky2mqtt.ha_statistics.worker import StatisticsWorker, store_hours

__all__ = [
    "SOURCE",
    "HAAuthError",
    "HAConnection",
    "HAError",
    "HAUnavailable",
    "HomeAssistantError",
    "HoursSource",
    "MemorySyncState",
    "NameFor",
    "PartsFor",
    "PartsSource",
    "StatisticsSink",
    "StatisticsWorker",
    "SyncReport",
    "SyncState",
    "build_rows",
    "default_name",
    "statistic_id",
    "store_hours",
    "websocket_url",
]
