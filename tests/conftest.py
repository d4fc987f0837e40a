"""Shared fixtures: a private mosquitto broker, the simulator, MQTT collectors."""

pytest_plugins = ["tests.support.broker", "tests.support.simulator"]
