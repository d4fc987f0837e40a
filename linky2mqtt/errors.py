"""The root of every error linky2mqtt raises on purpose, and the families under it.

::

    Linky2MqttError
    ├── ConfigError            linky2mqtt.config: the configuration is not valid (every
    │                          problem listed, with its dotted path)
    ├── AddonOptionsError      linky2mqtt.addon: the add-on's options cannot make one
    ├── StoreError             linky2mqtt.store: the store cannot be opened, read or written
    ├── StoreDamaged           linky2mqtt.storecheck: PRAGMA quick_check found damage
    ├── StoreInUse             linky2mqtt.storelock: another bridge holds the store
    ├── EnedisError            linky2mqtt.enedis.errors: the upstream client's tree
    └── HomeAssistantError     linky2mqtt.ha_statistics: the statistics import's errors
        ├── HAError            Home Assistant answered ``success: false``
        ├── HAAuthError        the access token was refused
        └── HAUnavailable      not reachable, or the connection broke

The command line (:mod:`linky2mqtt.cli`) maps each family, once, to an exit code and one
line saying what to do. No message of this tree ever holds a secret.
"""

from __future__ import annotations

__all__ = ["Linky2MqttError"]


class Linky2MqttError(Exception):
    """Anything linky2mqtt raises on purpose; ``str()`` is a readable line."""
