"""CPU per upstream exchange, by wire: ``python -m bench.wire`` (informative, not in the table).

One daily-consumption request to the simulator (in its own process, :mod:`bench.sim_child`)
repeated 2,000 times on each wire; the CPU of this process (all its threads) per exchange,
best of 3 loops. The wires: the bridge's :class:`~linky2mqtt.enedis.wire.LeanWire`, the
standard library's ``http.client`` with keep-alive (what the lean wire replaced first),
and :class:`~linky2mqtt.enedis.wire.HttpxWire` over a default ``httpx.Client``.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from bench.pin import install

install()

import httpx  # noqa: E402

from bench.size import simulator_process  # noqa: E402
from linky2mqtt.enedis.wire import HttpxWire, LeanWire  # noqa: E402

PATH = "/mesure_synchrone_auto/v2/consommation_quotidienne"
PARAMS = {"pointId": "40000000000001", "dateDebut": "2026-11-27", "dateFin": "2026-11-28"}
HEADERS = {"Authorization": "Bearer x", "User-Agent": "bench", "Accept": "application/json"}
COUNT = 2000


def cpu_us(exchange: Callable[[], object], count: int = COUNT) -> float:
    """Microseconds of process CPU per call, best of 3 loops (after 50 warm-up calls)."""
    for _ in range(50):
        exchange()
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        for _ in range(count):
            exchange()
        best = min(best, (time.process_time() - began) / count * 1e6)
    return best


def main() -> int:
    abandon = threading.Event()
    with simulator_process() as url:
        lean = LeanWire(httpx.Timeout(30.0, connect=10.0))
        heavy = HttpxWire(httpx.Client())
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
        target = PATH + "?" + urlencode(PARAMS)

        def stdlib() -> bytes:
            conn.request("GET", target, headers=HEADERS)
            return conn.getresponse().read()

        def on(wire: LeanWire | HttpxWire) -> Callable[[], object]:
            return lambda: wire.exchange("GET", url + PATH, params=PARAMS, form=None,
                                         headers=HEADERS, basic=None, abandon=abandon,
                                         max_body=1 << 25)

        for name, exchange in (("lean wire", on(lean)), ("http.client", stdlib),
                               ("httpx wire", on(heavy))):
            print(f"{name:12s} {cpu_us(exchange):6.0f} us CPU per exchange")
        lean.close()
        heavy.http.close()
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
