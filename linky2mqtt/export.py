"""``linky2mqtt export``: what the store holds, as CSV or JSON lines, without asking upstream.

One row per day, month or clock hour of ``[start, end)`` (local days, Europe/Paris) that
the store holds for one PDL and kind: ``pdl, kind, step, start, end, value, unit,
complete``. ``start``/``end`` are ISO 8601 with the Paris offset; energy is in kWh (exact
to the Wh), max power in VA. A month row sums the days held (``complete`` when every day
of the month is in the store and in the range); an hour row comes from the stored load
curve (``complete`` when every interval of that hour is held). Days the store lacks give
no row: nothing is fetched.

CSV: ``,`` and ``.`` by default; ``delimiter``/``decimal`` change them (French Excel wants
``;`` and ``,``: ``--excel-fr``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any, Final, TextIO

from linky2mqtt.model import Kind, day_bounds, kwh, local_iso
from linky2mqtt.store import Store

__all__ = ["COLUMNS", "export_rows", "write_csv", "write_jsonl"]

COLUMNS: Final = ("pdl", "kind", "step", "start", "end", "value", "unit", "complete")


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def export_rows(store: Store, pdl: str, kind: Kind, step: str, *, start: date,
                end: date) -> Iterator[dict[str, Any]]:
    """The rows of ``[start, end)``, oldest first."""
    base = {"pdl": pdl, "kind": kind.value, "step": step}
    if kind is Kind.MAX_POWER:
        if step != "day":
            raise ValueError("max_power is a daily series: use --step day")
        for day, (va, _peak) in sorted(store.max_power_values(pdl, start, end).items()):
            day_start, day_end = day_bounds(day)
            yield {**base, "start": local_iso(day_start), "end": local_iso(day_end),
                   "value": round(va, 3), "unit": "VA", "complete": True}
        return
    if step == "day":
        for day, wh in sorted(store.daily_values(pdl, kind, start, end).items()):
            day_start, day_end = day_bounds(day)
            yield {**base, "start": local_iso(day_start), "end": local_iso(day_end),
                   "value": kwh(wh), "unit": "kWh", "complete": True}
    elif step == "month":
        daily = store.daily_values(pdl, kind, start, end)
        month = _month_start(start)
        while month < end:
            following = _next_month(month)
            days = [wh for d, wh in daily.items() if month <= d < following]
            if days:
                span = (min(following, end) - max(month, start)).days
                whole = month >= start and following <= end
                yield {**base, "start": local_iso(day_bounds(month)[0]),
                       "end": local_iso(day_bounds(following)[0]),
                       "value": kwh(sum(days)), "unit": "kWh",
                       "complete": whole and len(days) == span}
            month = following
    elif step == "hour":
        day = start
        while day < end:
            hourly = store.hourly_day(pdl, kind, day)
            for h in hourly.hours:
                if h.wh or h.complete:
                    yield {**base, "start": local_iso(h.start), "end": local_iso(h.end),
                           "value": kwh(h.wh), "unit": "kWh", "complete": h.complete}
            day += timedelta(days=1)
    else:
        raise ValueError(f"step must be day, month or hour, not {step!r}")


def _number(value: float, decimal: str) -> str:
    text = repr(float(value)) if not float(value).is_integer() else f"{value:.1f}"
    text = text if "e" not in text else f"{value:.6f}"
    return text.replace(".", decimal) if decimal != "." else text


def write_csv(rows: Iterator[dict[str, Any]], out: TextIO, *, delimiter: str = ",",
              decimal: str = ".") -> int:
    """Write ``rows`` as CSV with a header line; return how many rows were written."""
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    n = 0
    for row in rows:
        cells = [row[c] for c in COLUMNS]
        cells[COLUMNS.index("value")] = _number(row["value"], decimal)
        cells[COLUMNS.index("complete")] = "true" if row["complete"] else "false"
        writer.writerow(cells)
        n += 1
    return n


def write_jsonl(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    """Write one JSON object per line; return how many."""
    n = 0
    for row in rows:
        out.write(json.dumps({c: row[c] for c in COLUMNS}, ensure_ascii=False) + "\n")
        n += 1
    return n
