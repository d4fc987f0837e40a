"""The Enedis simulator: one local HTTP server speaking the three upstream providers.

Conso API (``/api/...``), Enedis Data Connect (``/oauth2/v3/token``,
``/mesure_synchrone_auto/v2/...``, ``/metering_data_*/v5/...``,
``/situation_contrat_auto/v1/{pdl}``) and MyElectricalData v1, with deterministic data,
Enedis' rules and error bodies, switchable faults and quotas, and a control endpoint
under ``/_sim/``. The product imports it only for the ``demo`` and ``simulator`` commands.
"""

from linky2mqtt.simulator.core import Simulator
from linky2mqtt.simulator.options import SimOptions

__all__ = ["SimOptions", "Simulator"]
