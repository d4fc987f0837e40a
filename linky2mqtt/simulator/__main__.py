"""``python -m linky2mqtt.simulator``: the same as ``linky2mqtt simulator``."""

from linky2mqtt.simulator.cli import main

raise SystemExit(main())
