"""The backfill's lines count every request of the backfill, however long the first window
takes to be parsed and committed (a loaded machine: seconds after its request)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest

from linky2mqtt.progress import BackfillProgress, SeriesCount
from tests.support.clock import SUITE_START, HeldClock


def test_the_done_line_counts_the_requests_made_before_the_first_window_was_stored(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = HeldClock(SUITE_START)
    requests: list[float] = []  # the ledger: when each request was made
    held = [0]
    wanted = 30
    pdl = "22516914714270"

    def counts() -> list[SeriesCount]:
        return [SeriesCount("consumption/day", held[0], wanted)]

    progress = BackfillProgress("biz", counts,
                                lambda since: sum(1 for t in requests if t >= since),
                                lambda: "3/1000 per hour", wall=clock.time)
    progress.poll_began()
    requests.append(clock.time())  # the token
    clock.advance(0.01)
    requests.append(clock.time())  # the first window of days
    clock.advance(4.0)  # parsed and committed 4 s later (two busy cores)
    held[0] = 10
    first = date(2026, 11, 28)
    with caplog.at_level(logging.INFO, logger="linky2mqtt.backfill"):
        progress.stored("consumption/day", "daily", [first - timedelta(i) for i in range(10)])
        for window in (1, 2):
            requests.append(clock.time())
            clock.advance(0.5)
            held[0] = 10 * (window + 1)
            progress.stored("consumption/day", "daily",
                            [first - timedelta(10 * window + i) for i in range(10)])
        progress.polled(pdl, 0, None, None, [pdl])
    done = [r.getMessage() for r in caplog.records if "backfill done" in r.getMessage()]
    assert len(done) == 1, caplog.text
    assert done[0].startswith("account biz: backfill done: 30 days, 0 hourly days, "
                              "4 requests, "), done[0]
