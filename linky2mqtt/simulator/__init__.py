"""The Enedis simulator: one local HTTP server speaking the three upstream providers.

Conso API (``/api/...``), Enedis Data Connect (``/oauth2/v3/token``,
``/mesure_synchrone_auto/v2/...``, ``/metering_data_*/v5/...``,
``/situation_contrat_auto/v1/{pdl}``) and MyElectricalData v1, with deterministic data,
Enedis' rules and error bodies, switchable faults and quotas, and a control endpoint
under ``/_sim/``. The product imports it only for the ``demo`` and ``simulator`` commands.

In Python (tests, benchmarks)::

    sim = Simulator(SimOptions(port=0, clock=SYSTEM_CLOCK, latency=0.0, fault_rate=0.0))
    sim.start()                           # serves in a background thread
    sim.url                               # base_url for all three providers, on one port
    sim.script(path_regex, ["500", ...])  # queue faults (names: simulator.faults)
    sim.set(latency=..., rate_per_second=...)   # change options while it runs
    sim.stats(); sim.reset_stats()        # what GET /_sim/stats says, per (provider, pdl,
                                          # endpoint, status)
    sim.make_conso_token(["12345678901234"])    # a Conso API token covering these PDLs
    sim.daily_wh(pdl, kind, day); sim.curve(pdl, kind, day); sim.max_power(pdl, day)
                                          # the ground truth tests compare payloads with
    sim.stop()

Over HTTP: ``GET /_sim/stats``, ``POST /_sim/reset``, ``POST /_sim/script``,
``POST /_sim/config``. On the command line: ``linky2mqtt simulator --port 8080``. The test
fixtures are in ``tests/support/simulator.py``.
"""

from linky2mqtt.simulator.core import Simulator
from linky2mqtt.simulator.options import SimOptions

__all__ = ["SimOptions", "Simulator"]
