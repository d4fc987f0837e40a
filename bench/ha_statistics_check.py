"""Check the statistics sink against a real Home Assistant (by hand; not run in CI).

Imports ``--days`` (default 7) days of simulator hourly data for PDL 12345678901234 as
``linky2mqtt:12345678901234_consumption`` with :class:`linky2mqtt.ha_statistics.StatisticsSink`,
then checks, over Home Assistant's own websocket API:

1. ``recorder/statistics_during_period`` (hour) returns one row per hour, each ``state``
   equal to the simulator's hour in kWh and ``sum`` the running total from 0;
2. a re-run with nothing dirty sends nothing, a re-run after a dirty mark rewrites the same
   rows (no duplicate, same sums) and one more day continues the sum;
3. ``energy/save_prefs`` with the statistic as grid consumption, then ``energy/validate``
   reports no issue for it.

The hours come from the simulator's ground truth (``linky2mqtt.simulator.data.curve``)
aggregated with ``linky2mqtt.model.aggregate_hours``, as the bridge does from its store.

Run as root from /work/main (Home Assistant runs in the chroot of ../shared/tools/ha)::

    bash ../shared/tools/ha/setup.sh
    T=$(mktemp -d)
    python3 ../shared/tools/ha/run_ha.py --start-broker --out $T/ha.json &
    while [ ! -f $T/ha.json ]; do sleep 0.5; done
    .venv/bin/python bench/ha_statistics_check.py --ha-json $T/ha.json
    kill -TERM "$(python3 -c "import json;print(json.load(open('$T/ha.json'))['runner_pid'])")"

Exit status 0 when every check passed. The token is never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from linky2mqtt.clock import SYSTEM_CLOCK
from linky2mqtt.ha_statistics import HAConnection, MemorySyncState, StatisticsSink, websocket_url
from linky2mqtt.model import PARIS, Kind, Reading, aggregate_hours, day_bounds, kwh, local_iso
from linky2mqtt.simulator import data as simdata

PDL = "12345678901234"
SID = f"linky2mqtt:{PDL}_consumption"


class SimulatorHours:
    """hours_source for the sink: simulator curve -> Readings -> aggregate_hours."""

    def __init__(self) -> None:
        self.days: set[date] = set()

    def __call__(
        self, pdl: str, kind: Kind, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        out: list[tuple[datetime, float]] = []
        for day in sorted(self.days):
            for hour in hourly(pdl, kind, day):
                if start <= hour[0] < end:
                    out.append(hour)
        return out


def hourly(pdl: str, kind: Kind, day: date) -> list[tuple[datetime, float]]:
    points = simdata.curve(pdl, kind, day) or ()
    readings = [
        Reading(pdl, kind, f"PT{p.minutes}M", p.start.astimezone(UTC), p.watts * p.minutes / 60)
        for p in points
    ]
    return [(h.start, h.wh) for h in aggregate_hours(readings, day).hours]


def wait_rows(
    conn: HAConnection, start: datetime, end: datetime, expected: list[tuple[datetime, float]]
) -> list[Any]:
    """Home Assistant's import is queued in the recorder: poll until the rows match."""
    deadline = time.monotonic() + 30
    while True:
        result = conn.call(
            "recorder/statistics_during_period",
            start_time=start.isoformat(),
            end_time=end.isoformat(),
            statistic_ids=[SID],
            period="hour",
            types=["sum", "state"],
        )
        rows: list[Any] = result.get(SID, [])
        if not compare(rows, expected) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def compare(rows: list[Any], hours: list[tuple[datetime, float]]) -> list[str]:
    problems = []
    if len(rows) != len(hours):
        problems.append(f"{len(rows)} rows, expected {len(hours)}")
    running = 0.0
    for row, (start, wh) in zip(rows, hours, strict=False):
        running += wh
        got = datetime.fromtimestamp(row["start"] / 1000, UTC)
        want_sum = round(running / 1000, 6)
        if got != start or row["state"] != kwh(wh) or abs(row["sum"] - want_sum) > 1e-9:
            problems.append(
                f"{local_iso(start)}: got start {local_iso(got)} state {row['state']} "
                f"sum {row['sum']}, expected state {kwh(wh)} sum {want_sum}"
            )
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ha-json", required=True, help="session JSON written by run_ha.py")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument(
        "--last-day",
        type=date.fromisoformat,
        default=None,
        help="last local day to import (default: the day before yesterday)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    session = json.loads(Path(args.ha_json).read_text())
    url, token = session["base_url"], session["token"]
    last = args.last_day or (datetime.now(PARIS).date() - timedelta(days=2))
    first = last - timedelta(days=args.days - 1)
    failures: list[str] = []

    source = SimulatorHours()
    source.days = {first + timedelta(days=i) for i in range(args.days)}
    expected = source(PDL, Kind.CONSUMPTION, day_bounds(first)[0], day_bounds(last)[1])
    print(f"HA {session.get('ha_version')} at {url}; importing {first}..{last}: "
          f"{len(expected)} hours, {kwh(sum(wh for _, wh in expected))} kWh")  # fmt: skip

    sink = StatisticsSink(url, token, MemorySyncState(), SYSTEM_CLOCK, hours_source=source)
    sink.notify(PDL, Kind.CONSUMPTION, day_bounds(first)[0])
    report = sink.sync()
    print(f"sync 1: rows={report.rows} calls={report.calls} error={report.error}")
    if not report.ok:
        failures.append(f"first sync: {report.error}")

    conn = HAConnection(websocket_url(url), token, timeout=30)
    try:
        rows = wait_rows(conn, day_bounds(first)[0], day_bounds(last)[1], expected)
        problems = compare(rows, expected)
        print(f"statistics_during_period: {len(rows)} hourly rows; mismatches: {len(problems)}")
        for row in rows[:2] + rows[-2:]:
            print(f"  {local_iso(datetime.fromtimestamp(row['start'] / 1000, UTC))} {row}")
        failures += problems[:10]

        report = sink.sync()
        print(f"sync 2 (nothing dirty): calls={report.calls}")
        if report.calls:
            failures.append("a sync with nothing dirty sent imports")

        sink.notify(PDL, Kind.CONSUMPTION, day_bounds(first)[0])
        report = sink.sync()
        time.sleep(2)  # let the recorder apply the rewrite before reading it back
        rows2 = wait_rows(conn, day_bounds(first)[0], day_bounds(last)[1], expected)
        print(f"sync 3 (re-run): rows={report.rows}; identical rows: {rows2 == rows}")
        if rows2 != rows:
            failures.append("re-run changed the rows")

        extra = last + timedelta(days=1)
        source.days.add(extra)
        sink.notify(PDL, Kind.CONSUMPTION, day_bounds(extra)[0])
        report = sink.sync()
        expected = source(PDL, Kind.CONSUMPTION, day_bounds(first)[0], day_bounds(extra)[1])
        rows3 = wait_rows(conn, day_bounds(first)[0], day_bounds(extra)[1], expected)
        problems = compare(rows3, expected)
        last_sum = rows3[-1]["sum"] if rows3 else None
        print(f"sync 4 (one more day): rows={report.rows}; total rows {len(rows3)}; "
              f"mismatches: {len(problems)}; last sum {last_sum}")  # fmt: skip
        failures += problems[:10]

        daily = [
            (day, kwh(sum(wh for _, wh in hourly(PDL, Kind.CONSUMPTION, day))),
             kwh(simdata.daily_wh(PDL, Kind.CONSUMPTION, day) or 0))
            for day in sorted(source.days)
        ]  # fmt: skip
        print("per day kWh (hours summed, simulator daily):", daily)
        failures += [f"{d}: hours {h} != daily {w}" for d, h, w in daily if abs(h - w) > 0.001]

        # backfill of older days, the two DST changes among them: everything from
        # 2026-03-28 on is rewritten, sums stay continuous
        dst_days = [date(2026, 3, 28), date(2026, 3, 29), date(2026, 10, 24), date(2026, 10, 25)]
        source.days.update(dst_days)
        sink.notify(PDL, Kind.CONSUMPTION, day_bounds(dst_days[0])[0])
        report = sink.sync()
        expected = source(PDL, Kind.CONSUMPTION, day_bounds(dst_days[0])[0], day_bounds(extra)[1])
        rows5 = wait_rows(conn, day_bounds(dst_days[0])[0], day_bounds(extra)[1], expected)
        problems = compare(rows5, expected)
        per_day: dict[str, list[str]] = {}
        for row in rows5:
            iso = local_iso(datetime.fromtimestamp(row["start"] / 1000, UTC))
            per_day.setdefault(iso[:10], []).append(iso[11:])
        counts = {d: len(per_day.get(d, [])) for d in ("2026-03-29", "2026-10-25")}
        print(f"sync 5 (backfill with DST days): rows={report.rows}; total rows {len(rows5)}; "
              f"mismatches: {len(problems)}; rows on DST days {counts}")  # fmt: skip
        print("  2026-03-29:", per_day.get("2026-03-29", [])[:4])
        print("  2026-10-25:", per_day.get("2026-10-25", [])[:5])
        failures += problems[:10]
        if len(per_day.get("2026-03-29", [])) != 23 or len(per_day.get("2026-10-25", [])) != 25:
            failures.append("DST days do not have 23 and 25 rows")

        listed = conn.call("recorder/list_statistic_ids", statistic_type="sum")
        print("list_statistic_ids:", [m for m in listed if m["statistic_id"] == SID])

        prefs = {
            "energy_sources": [
                {
                    "type": "grid",
                    "flow_from": [{"stat_energy_from": SID, "stat_cost": None,
                                   "entity_energy_price": None, "number_energy_price": None}],
                    "flow_to": [],
                    "cost_adjustment_day": 0,
                }
            ],
            "device_consumption": [],
        }  # fmt: skip
        conn.call("energy/save_prefs", **prefs)
        validation = conn.call("energy/validate")
        print("energy/validate:", json.dumps(validation))
        issues = [i for group in validation.get("energy_sources", []) for i in group]
        if issues:
            failures.append(f"energy/validate issues: {issues}")
        print(
            "recorder/validate_statistics:", json.dumps(conn.call("recorder/validate_statistics"))
        )
    finally:
        conn.close()
        sink.close()

    for failure in failures:
        print("FAIL:", failure)
    print("PASSED" if not failures else f"FAILED ({len(failures)})")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
