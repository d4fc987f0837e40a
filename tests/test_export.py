"""``linky2mqtt export``: the store's data out as CSV / JSON lines, without a request upstream.

A real bridge fills the store from the simulator; then the export runs and its values are
compared with the simulator's own data (computed here, tests/support/bridge.py), and the
simulator's request count must not move."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from linky2mqtt.bridge import Bridge
from linky2mqtt.config import load_text
from linky2mqtt.model import Kind, day_bounds, local_iso
from linky2mqtt.simulator import Simulator
from linky2mqtt.store import Store
from tests.support.bridge import (
    account_yaml,
    config_yaml,
    days_back,
    truth_day_kwh,
    truth_hours,
    wait_until,
)
from tests.support.broker import Mosquitto
from tests.support.cli import run_cli, saved_root_logging
from tests.support.clock import SUITE_CLOCK

PDL = "22516914714270"
DAYS = 45
HOURS = 3


@pytest.fixture
def filled(broker: Mosquitto, simulator: Simulator, tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "s.db"
    account = account_yaml("biz", "dataconnect", simulator, [
        {"pdl": PDL, "steps": ["day", "hour"], "max_power": True,
         "backfill_days": {"day": DAYS, "hour": HOURS}}],
        client_id="sim-client", client_secret="sim-secret")
    text = config_yaml(broker.url, store, [account], extra="commands: false\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    bridge = Bridge(load_text(text, env={}), stagger=0.0, clock=SUITE_CLOCK)
    bridge.start()
    try:
        days = days_back(DAYS)
        with Store(store) as db:
            wait_until(lambda: len(db.days_with_daily(PDL, Kind.CONSUMPTION, days[-1],
                                                      days[0] + timedelta(1))) == DAYS
                       and len(db.max_power_values(PDL, days[-1], days[0] + timedelta(1)))
                       == DAYS
                       and len(db.days_with_complete_curve(
                           PDL, Kind.CONSUMPTION, days[HOURS - 1],
                           days[0] + timedelta(1))) == HOURS, 60, "the backfill")
    finally:
        bridge.stop()
    return cfg, store


def _export(*args: str) -> tuple[int, str, str]:
    with saved_root_logging():
        return run_cli("export", *args)


def test_export_days_hours_months_and_max_power_equal_the_simulators_data(
        filled: tuple[Path, Path], simulator: Simulator, tmp_path: Path) -> None:
    cfg, store = filled
    before = simulator.stats()["total"]
    days = sorted(days_back(DAYS))
    start, end = days[0], days[-1] + timedelta(days=1)

    rc, out, err = _export("-c", str(cfg), "--pdl", PDL, "--start", start.isoformat(),
                           "--end", end.isoformat())
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["start"] for r in rows] == [local_iso(day_bounds(d)[0]) for d in days]
    for row, day in zip(rows, days, strict=True):
        assert row["end"] == local_iso(day_bounds(day)[1])
        assert float(row["value"]) == truth_day_kwh(simulator, PDL, Kind.CONSUMPTION, day)
        assert (row["pdl"], row["kind"], row["step"], row["unit"], row["complete"]) == (
            PDL, "consumption", "day", "kWh", "true")
    assert out.startswith("pdl,kind,step,start,end,value,unit,complete\r\n")

    # hours, as JSON lines, into a file
    hour_days = sorted(days_back(HOURS))
    target = tmp_path / "hours.jsonl"
    rc, out, err = _export("--store", str(store), "--pdl", PDL, "--step", "hour",
                           "--start", hour_days[0].isoformat(),
                           "--end", (hour_days[-1] + timedelta(1)).isoformat(),
                           "--format", "jsonl", "-o", str(target))
    assert rc == 0 and out == "", err
    lines = [json.loads(ln) for ln in target.read_text().splitlines()]
    want = [p for d in hour_days for p in (truth_hours(simulator, PDL, Kind.CONSUMPTION, d)
                                           or [])]
    assert len(lines) == len(want) == 24 * HOURS
    for got, expected in zip(lines, want, strict=True):
        assert (got["start"], got["end"], got["value"]) == (
            expected["start"], expected["end"], pytest.approx(expected["value"], abs=1e-9))
        assert got["complete"] is True and got["unit"] == "kWh"
    assert f"{len(lines)} rows written to {target}" in err

    # months: the sum of the days held; complete only for a whole month in the range
    rc, out, err = _export("--store", str(store), "--pdl", PDL, "--step", "month",
                           "--start", start.isoformat(), "--end", end.isoformat(),
                           "--format", "jsonl")
    assert rc == 0, err
    months = [json.loads(ln) for ln in out.splitlines()]
    by_month: dict[str, list[date]] = {}
    for d in days:
        by_month.setdefault(d.strftime("%Y-%m"), []).append(d)
    assert [m["start"][:7] for m in months] == sorted(by_month)
    for m in months:
        month_days = by_month[m["start"][:7]]
        total = sum(truth_day_kwh(simulator, PDL, Kind.CONSUMPTION, d) or 0 for d in month_days)
        assert m["value"] == pytest.approx(total, abs=1e-6)
        first = date.fromisoformat(m["start"][:10])
        whole = first >= start and len(month_days) == (
            (first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
        assert m["complete"] is whole

    # max power, French spreadsheet format
    rc, out, err = _export("--store", str(store), "--pdl", PDL, "--kind", "max_power",
                           "--start", start.isoformat(), "--end", end.isoformat(),
                           "--excel-fr")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out), delimiter=";"))
    assert len(rows) == DAYS
    for row, day in zip(rows, days, strict=True):
        va = simulator.daily_wh(PDL, Kind.MAX_POWER, day)
        assert va is not None
        assert float(row["value"].replace(",", ".")) == pytest.approx(va, abs=1e-3)
        assert row["unit"] == "VA" and "," in row["value"] and "." not in row["value"]

    assert before > 0
    assert simulator.stats()["total"] == before  # no request upstream


def test_export_usage_errors(tmp_path: Path) -> None:
    rc, _, err = _export("--store", str(tmp_path / "none.db"), "--pdl", PDL,
                         "--start", "2026-01-01", "--end", "2026-02-01")
    assert rc == 2 and "no store at" in err and not (tmp_path / "none.db").exists()
    rc, _, err = _export("--store", str(tmp_path / "x.db"), "--pdl", PDL,
                         "--start", "2026-02-01", "--end", "2026-01-01")
    assert rc == 2 and "--start must be before --end" in err
    rc, _, err = _export("--store", "x.db", "--pdl", PDL, "--kind", "max_power",
                         "--step", "hour", "--start", "2026-01-01", "--end", "2026-01-02")
    assert rc == 2 and "max_power is a daily series" in err
    rc, _, err = _export("--store", "x.db", "--pdl", PDL, "--start", "2026-01-01",
                         "--end", "2026-01-02", "--delimiter", ",", "--decimal", ",")
    assert rc == 2 and "--delimiter" in err
