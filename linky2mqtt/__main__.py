"""python -m linky2mqtt."""

from linky2mqtt.cli import main

raise SystemExit(main())
