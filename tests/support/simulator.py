"""Simulator fixtures: ``simulator`` (started on a free port) and
``make_simulator(**SimOptions fields)`` for a custom one (e.g. ``clock=FastClock(...)``).
Both run on the suite's pinned clock (``SUITE_CLOCK``) unless given another.
Every simulator made here is stopped after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from linky2mqtt.simulator import SimOptions, Simulator
from tests.support.clock import SUITE_CLOCK

MakeSimulator = Callable[..., Simulator]


@pytest.fixture
def make_simulator() -> Iterator[MakeSimulator]:
    made: list[Simulator] = []

    def make(**options: Any) -> Simulator:
        options.setdefault("port", 0)
        options.setdefault("clock", SUITE_CLOCK)
        sim = Simulator(SimOptions(**options))
        sim.start()
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.stop()


@pytest.fixture
def simulator(make_simulator: MakeSimulator) -> Simulator:
    return make_simulator()


# ----- helpers for tests that talk to the simulator over HTTP -----------------------------

SIM_CLIENT = ("sim-client", "sim-secret")


def dataconnect_token(client: Any) -> str:
    """A Data Connect access token from the simulator (``client``: an httpx.Client)."""
    resp = client.post("/oauth2/v3/token", data={"grant_type": "client_credentials"},
                       auth=SIM_CLIENT)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])
