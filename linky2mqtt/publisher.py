"""From the store to the broker: every retained topic, every hourly batch, discovery.

The publisher is the only place that decides *what* goes out and *when*; ``topics`` says
what each payload looks like and ``mqtt`` owns the connection.

* Retained payloads are written to the store first, then published: on every
  (re)connect :meth:`Publisher.republish_all` sends them all again from the store.
* Hourly batches are kept in the store as *pending* until the broker's PUBACK arrives;
  pending batches are sent again after a reconnect or a restart.
* ``day`` never moves back to an older date; ``month`` is republished whenever a day of
  it changes (the month of the latest day last, so that it is the retained one).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from linky2mqtt import homeassistant, topics
from linky2mqtt.model import HourTotals, Kind, Reading, day_bounds, readings_hour_totals
from linky2mqtt.mqtt import MqttLink
from linky2mqtt.pricing import Pricing, split_fields
from linky2mqtt.store import Store

log = logging.getLogger(__name__)

# Payload of a pending-batch mark: "this day's batch is to be built and published".
TO_PUBLISH = b""
# Acknowledged batches forgotten in the store in one transaction once this many wait
# (or as soon as no acknowledgement is awaited): at most this many are sent again after
# a crash (duplicates, never losses).
ACK_LOT = 256


class Publisher:
    def __init__(
        self,
        link: MqttLink,
        store: Store,
        base_topic: str,
        *,
        on_publish: Callable[[str, bytes, bool], None] | None = None,
    ) -> None:
        self.link = link
        self.store = store
        self.base = base_topic
        self.on_publish = on_publish
        # tariffs: the split and cost added to day/month payloads and hourly points
        self.pricing: Pricing | None = None
        # batches the broker acknowledged, forgotten in the store in one transaction
        # after each lot of PUBACKs (MqttLink.after_acks); a marked day's batch is pending
        # as its mark (no second write of the body), and the ack of a batch forgets the
        # mark only if no newer mark of that day was written since it was sent
        # (``_marks``: (topic, day) -> how many times marked; ``_acked_lock`` makes the
        # check and the delete one step against a new mark)
        # (filled by the link's worker through a C-level append: no Python call per ack)
        self._acked: deque[tuple[str, str, bytes, int | None]] = deque()
        self._acked_lock = threading.Lock()
        self._marks: dict[tuple[str, str], int] = {}
        # acknowledged batches not yet forgotten in the store: written in lots of
        # ACK_LOT, or as soon as nothing more is awaited (a backfill's acks cost one
        # transaction per lot, not one per PUBACK); a day written pending again in the
        # meantime is taken out of the lot (_keep_pending)
        self._forget: dict[tuple[str, str], list[bytes]] = {}
        # marked days whose readings are being committed (mark_curve .. curve_stored): the
        # account thread publishes them once committed; a (re)connect meanwhile must not
        # build them from the store as it was before the commit (``_deferred``: skipped by
        # republish_all, published by curve_stored if its own send found no connection)
        self._committing: set[tuple[str, str]] = set()
        self._deferred: set[tuple[str, str]] = set()
        link.after_acks = self._forget_acked

    # ---- low level -------------------------------------------------------------------

    def retained(self, topic: str, payload: dict[str, Any] | bytes) -> None:
        """Remember ``payload`` as the retained value of ``topic`` and publish it."""
        body = payload if isinstance(payload, bytes) else topics.dumps(payload)
        self.store.set_retained(topic, body)
        self._send(topic, body, retain=True)

    def batch(self, topic: str, payload: dict[str, Any], key: str) -> None:
        """Publish an hourly batch; it stays pending in the store until acknowledged."""
        body = topics.dumps(payload)
        with self._acked_lock:
            self._keep_pending(topic, [key])
            self.store.add_pending_batch(topic, key, body)
        self._send(topic, body, retain=False, on_ack=self._acker(topic, key, body))

    def _acker(self, topic: str, key: str, body: bytes,
               mark: int | None = None) -> Callable[[], None]:
        """On PUBACK: this exact batch (or, ``mark`` given, its day's mark as it was when
        the batch was sent) is to be forgotten: pending until then."""
        return partial(self._acked.append, (topic, key, body, mark))

    def _forget_acked(self, *, now: bool = False) -> None:
        """After a lot of PUBACKs (the link's worker): what they acknowledged is forgotten
        in the store, in lots (:data:`ACK_LOT`, or when no ack is awaited, or ``now``)."""
        with self._acked_lock:
            acked = self._acked
            entries = [acked.popleft() for _ in range(len(acked))]
            forget = self._forget
            for topic, key, body, mark in entries:
                if mark is None:
                    forget.setdefault((topic, key), []).append(body)
                elif self._marks.get((topic, key)) == mark:  # not marked again since
                    forget.setdefault((topic, key), []).append(TO_PUBLISH)
                    del self._marks[(topic, key)]
            if forget and (now or len(forget) >= ACK_LOT or not self.link.awaiting_acks()):
                self._forget = {}
                self.store.ack_batches((topic, key, body) for (topic, key), bodies
                                       in forget.items() for body in bodies)

    def _keep_pending(self, topic: str, keys: Iterable[str]) -> None:
        """Days of ``topic`` about to be written pending again: an acknowledgement of an
        earlier batch of theirs not yet written must not forget the new row (the caller
        holds ``_acked_lock``)."""
        if self._forget:
            for key in keys:
                self._forget.pop((topic, key), None)

    def _send(self, topic: str, body: bytes, *, retain: bool,
              on_ack: Callable[[], None] | None = None) -> bool:
        sent = self.link.publish(topic, body, qos=1, retain=retain, on_ack=on_ack)
        if sent and self.on_publish is not None:
            self.on_publish(topic, body, retain)
        return sent

    def republish_all(self) -> None:
        """After a (re)connect: every retained topic, then every unacknowledged batch."""
        self._forget_acked(now=True)  # what was acknowledged is not sent again
        retained = self.store.all_retained()
        for topic, body in retained:
            self._send(topic, body, retain=True)
        pending = self.store.pending_batch_entries()
        for topic, key, body in pending:
            if body == TO_PUBLISH:
                with self._acked_lock:
                    committing = (topic, key) in self._committing
                    if committing:
                        self._deferred.add((topic, key))
                if not committing:
                    self._publish_marked(topic, key)
                continue
            self._send(topic, body, retain=False,
                       on_ack=self._acker(topic, key, body))
        log.info("republished %d retained topics and %d pending hourly batches",
                 len(retained), len(pending))

    # ---- meter data ------------------------------------------------------------------

    def daily_changed(self, pdl: str, kind: Kind, days: Iterable[date],
                      fetched_at: datetime) -> None:
        """Days of daily values (energy or max power) were stored: publish what follows."""
        days = sorted(set(days))
        if not days:
            return
        latest = self.store.latest_daily_day(pdl, kind)
        if latest is None:
            return
        if kind is Kind.MAX_POWER:
            self._publish_max_power(pdl, latest)
            return
        day_topic = topics.meter_topic(self.base, pdl, kind, "day")
        previous = self._retained_date(day_topic)
        # a newer day, or the latest day itself corrected; never an older one
        if previous is None or latest > previous or (latest == previous and latest in days):
            values = self.store.daily_values(pdl, kind, latest, latest + timedelta(days=1))
            if latest in values:
                self.retained(day_topic, self._day_split(pdl, kind, topics.day_payload(
                    pdl, latest, values[latest], self.store.daily_quality(pdl, kind, latest),
                    fetched_at), latest, values[latest]))
        # month: each month touched, oldest first; the latest day's month last (retained)
        months = sorted({(d.year, d.month) for d in days} - {(latest.year, latest.month)})
        months.append((latest.year, latest.month))
        month_topic = topics.meter_topic(self.base, pdl, kind, "month")
        for y, m in months:
            month = f"{y:04d}-{m:02d}"
            first, nxt = topics.month_bounds(month)
            upto = min(latest, nxt - timedelta(days=1))
            values = self.store.daily_values(pdl, kind, first, nxt)
            payload = self._month_split(pdl, kind, topics.month_payload(
                pdl, month, values, upto), values, upto)
            if (y, m) == (latest.year, latest.month):
                self.retained(month_topic, payload)
            else:
                # an older month completed or corrected late: seen once, then the
                # current month is the retained value again
                self._send(month_topic, topics.dumps(payload), retain=False)

    def mark_curve(self, pdl: str, kind: Kind, days: Iterable[date]) -> None:
        """Before curve readings of ``days`` are committed: remember that their batches are
        to be published, so that a crash between the commit and the publication loses
        nothing (:meth:`republish_all` builds them from the store)."""
        with self._acked_lock:
            self.store.add_pending_batches(self._mark_days(pdl, kind, days))

    def curve_marks(self, pdl: str, kind: Kind, days: Iterable[date]
                    ) -> list[tuple[str, str, bytes]]:
        """:meth:`mark_curve` but for the store: the pending rows to commit in the same
        transaction as the readings (``Store.save_window(pending=...)``), which makes the
        mark and the readings one step (the account thread's way: one commit a window)."""
        with self._acked_lock:
            return self._mark_days(pdl, kind, days)

    def _mark_days(self, pdl: str, kind: Kind, days: Iterable[date]
                   ) -> list[tuple[str, str, bytes]]:
        """The marks of ``days`` in memory, and their pending rows (the caller holds
        ``_acked_lock``: an acknowledgement of an earlier mark cannot delete a new one,
        whose count differs, and an earlier batch's waiting deletion is dropped)."""
        topic = topics.meter_topic(self.base, pdl, kind, "hour")
        keys = [day.isoformat() for day in sorted(set(days))]
        for key in keys:
            self._marks[(topic, key)] = self._marks.get((topic, key), 0) + 1
            self._committing.add((topic, key))
        self._keep_pending(topic, keys)
        return [(topic, key, TO_PUBLISH) for key in keys]

    def curve_stored(self, pdl: str, kind: Kind, fetched: Iterable[date],
                     changed: Iterable[date], readings: Iterable[Reading] | None = None,
                     *, stored: int | None = None) -> None:
        """After the commit: publish the days that changed, drop the other marks.
        ``readings``: what was just stored of this meter's series (the batches are built
        from them when they are all the store holds of those days, see
        :meth:`curve_changed`); ``stored``: how many curve rows the store held over the
        ``fetched`` days' span once committed (``Store.save_window``), else counted."""
        fetched, changed = set(fetched), set(changed)
        topic = topics.meter_topic(self.base, pdl, kind, "hour")
        try:
            sent = self.curve_changed(pdl, kind, changed, marked=True, readings=readings,
                                      stored=None if stored is None else (fetched, stored))
        finally:
            with self._acked_lock:
                deferred = set()
                for key in {day.isoformat() for day in fetched | changed}:
                    self._committing.discard((topic, key))
                    if (topic, key) in self._deferred:
                        self._deferred.discard((topic, key))
                        deferred.add(key)
        for key in sorted(deferred & {day.isoformat() for day in changed} - sent):
            # connected while it was committed, after this thread's send found no link
            self._publish_marked(topic, key)
        self.split_changed(pdl, kind, changed)
        unchanged = [day.isoformat() for day in sorted(fetched - changed)]
        if unchanged:
            with self._acked_lock:
                for key in unchanged:
                    self._marks.pop((topic, key), None)
                self.store.ack_batches((topic, key, TO_PUBLISH) for key in unchanged)

    def _publish_marked(self, topic: str, key: str) -> None:
        pdl, kind_name = topic[len(self.base) + 1:].split("/")[:2]
        self.store.ack_batch(topic, key, TO_PUBLISH)
        try:
            kind, day = Kind(kind_name), date.fromisoformat(key)
        except ValueError:
            return
        self.curve_changed(pdl, kind, [day])

    def reconcile_daily(self, pdl: str, kind: Kind, now: datetime) -> None:
        """At start: publish the day/month (or max power) values when the retained ones lag
        the store (a crash between a commit and its publication)."""
        latest = self.store.latest_daily_day(pdl, kind)
        if latest is None:
            return
        if kind is Kind.MAX_POWER:
            if self._retained_date(topics.max_power_topic(self.base, pdl)) != latest:
                self._publish_max_power(pdl, latest)
            return
        if self._retained_date(topics.meter_topic(self.base, pdl, kind, "day")) != latest:
            self.daily_changed(pdl, kind, [latest], now)
            return
        first, nxt = topics.month_bounds(f"{latest:%Y-%m}")
        held = self.store.daily_values(pdl, kind, first, nxt)
        month = self._month_split(pdl, kind, topics.month_payload(
            pdl, f"{latest:%Y-%m}", held, latest), held, latest)
        month_topic = topics.meter_topic(self.base, pdl, kind, "month")
        if self.store.get_retained(month_topic) != topics.dumps(month):
            self.retained(month_topic, month)

    def curve_changed(self, pdl: str, kind: Kind, days: Iterable[date], *,
                      marked: bool = False, readings: Iterable[Reading] | None = None,
                      stored: tuple[set[date], int] | None = None) -> set[str]:
        """Curve points of ``days`` were stored: one hourly batch per day, oldest first.

        The days (a backfill window: up to 7 contiguous days) are added up from
        ``readings``, the window just stored, when the store holds nothing else of those
        days (:meth:`_hour_totals`), else read back in one query; their batches are kept
        pending in one transaction before the first is sent, so a backfill's batches go
        out at the broker's pace rather than the disk's. Days ``marked`` by
        :meth:`mark_curve` are pending already: their mark stays until the broker
        acknowledges the batch (after a crash the batch is built again)."""
        topic = topics.meter_topic(self.base, pdl, kind, "hour")
        days = set(days)
        entries: list[tuple[str, str, bytes]] = []
        for day, hourly in sorted(self._hour_totals(pdl, kind, days, readings,
                                                    stored).items()):
            if not hourly.hours:
                continue
            labels = self.pricing.hour_labels(pdl, kind, day) if self.pricing else None
            if labels:
                payload = topics.hour_payload(pdl, hourly)
                for point, (number, _, _) in zip(payload["points"], hourly.hours,
                                                 strict=True):
                    start = datetime.fromtimestamp(hourly.lo + 3600 * number, UTC)
                    point.update(labels.get(start, {}))
                body = topics.dumps(payload)
            else:
                body = topics.hour_body(pdl, hourly)  # the same bytes, without the dicts
            entries.append((topic, day.isoformat(), body))
        marks: list[int | None] = [None] * len(entries)
        if marked:
            with self._acked_lock:
                marks = [self._marks.get((topic, key)) for _, key, _ in entries]
                sent = {key for _, key, _ in entries}
                for day in days:  # a day without hours: its mark stays in the store
                    if day.isoformat() not in sent:
                        self._marks.pop((topic, day.isoformat()), None)
        # a day not marked (or marked=False) is kept pending with its body
        unmarked = [e for e, m in zip(entries, marks, strict=True) if m is None]
        if unmarked:
            with self._acked_lock:
                self._keep_pending(topic, [key for _, key, _ in unmarked])
                self.store.add_pending_batches(unmarked)
        sent = set()
        for (_, key, body), mark in zip(entries, marks, strict=True):
            if self._send(topic, body, retain=False,
                          on_ack=self._acker(topic, key, body, mark)):
                sent.add(key)
        return sent

    def _hour_totals(self, pdl: str, kind: Kind, days: set[date],
                     readings: Iterable[Reading] | None,
                     stored: tuple[set[date], int] | None = None) -> dict[date, HourTotals]:
        """The clock hours of ``days``: from ``readings`` (just stored) when the store
        holds exactly their rows over those days (counted, none read back: it holds them
        all, so the same count means nothing else), else from the store. ``stored``:
        (days, rows) the store counted over those days' span as it committed the
        readings (``days`` holding ``days`` here), so that no count is asked here."""
        if readings is not None and days:
            if stored is not None and days <= stored[0]:
                totals, held = readings_hour_totals(readings, kind, stored[0])
                if held and held == stored[1]:
                    return {day: totals[day] for day in days}
            else:
                totals, held = readings_hour_totals(readings, kind, days)
                start, end = day_bounds(min(days))[0], day_bounds(max(days))[1]
                if held and self.store.curve_row_count(pdl, kind, start, end) == held:
                    return totals
        return self.store.hour_totals(pdl, kind, days)

    def _day_split(self, pdl: str, kind: Kind, payload: dict[str, Any], day: date,
                   wh: float) -> dict[str, Any]:
        b = self.pricing.day(pdl, kind, day, wh) if self.pricing else None
        return payload if b is None else {**payload, **split_fields(b)}

    def _month_split(self, pdl: str, kind: Kind, payload: dict[str, Any],
                     daily: dict[date, float], upto: date) -> dict[str, Any]:
        if self.pricing is None or not self.pricing.priced(pdl, kind):
            return payload
        b = self.pricing.month(pdl, kind, {d: v for d, v in daily.items() if d <= upto})
        return payload if b is None else {**payload, **split_fields(b, month=True)}

    def split_changed(self, pdl: str, kind: Kind, days: Iterable[date]) -> None:
        """The split of ``days`` may have changed (their load curve arrived, a Tempo colour
        became known): republish the retained day if it is one of them, and their months."""
        if self.pricing is None or not self.pricing.priced(pdl, kind):
            return
        days = sorted(set(days))
        if not days:
            return
        day_topic = topics.meter_topic(self.base, pdl, kind, "day")
        body = self.store.get_retained(day_topic)
        if body:
            try:
                payload = json.loads(body)
                day = date.fromisoformat(payload["date"])
            except (ValueError, KeyError, TypeError):
                payload, day = None, None
            if payload is not None and day in days:
                values = self.store.daily_values(pdl, kind, day, day + timedelta(days=1))
                if day in values:
                    self.retained(day_topic, self._day_split(pdl, kind, payload, day,
                                                             values[day]))
        latest = self.store.latest_daily_day(pdl, kind)
        if latest is None:
            return
        month_topic = topics.meter_topic(self.base, pdl, kind, "month")
        for y, m in sorted({(d.year, d.month) for d in days if d <= latest}):
            month = f"{y:04d}-{m:02d}"
            first, nxt = topics.month_bounds(month)
            upto = min(latest, nxt - timedelta(days=1))
            values = self.store.daily_values(pdl, kind, first, nxt)
            if not values:
                continue
            payload = self._month_split(pdl, kind, topics.month_payload(
                pdl, month, values, upto), values, upto)
            if (y, m) == (latest.year, latest.month):
                self.retained(month_topic, payload)
            else:
                self._send(month_topic, topics.dumps(payload), retain=False)

    def _publish_max_power(self, pdl: str, day: date) -> None:
        got = self.store.max_power_values(pdl, day, day + timedelta(days=1)).get(day)
        if got is None:
            return
        va, peak_at = got
        self.retained(topics.max_power_topic(self.base, pdl),
                      topics.max_power_payload(pdl, day, va, peak_at))

    def _retained_date(self, topic: str) -> date | None:
        body = self.store.get_retained(topic)
        if not body:
            return None
        try:
            return date.fromisoformat(json.loads(body)["date"])
        except (ValueError, KeyError, TypeError):
            return None

    # ---- Home Assistant --------------------------------------------------------------

    def discovery(self, prefix: str, meters: list[homeassistant.MeterInfo], version: str,
                  configured: set[str]) -> None:
        for meter in meters:
            topic, payload = homeassistant.discovery(prefix, self.base, meter, version)
            self._send(topic, topics.dumps(payload), retain=True)
            self.store.set_announced(meter.pdl, True)
        for pdl in sorted(self.store.announced_meters() - configured):
            log.info("meter %s is no longer configured: clearing its discovery", pdl)
            self._send(homeassistant.removal(prefix, pdl), b"", retain=True)
            self.store.set_announced(pdl, False)
