"""linky2mqtt: French Linky smart-meter data (Enedis) on MQTT."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("linky2mqtt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
