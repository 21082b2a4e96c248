"""Event time: the aggregator for *arrival-ordered* streams (out of order, duplicated, late).

:class:`EventTimeAggregator` takes batches in arrival order (``seq`` contiguous, event times in
any order) and keeps today's :class:`~ticker.aggregate.Aggregator` as its engine, twice:

* **Watermark.** ``W = (largest event time seen) − lateness``, per event, never going back. An
  event is *late* when its event time is before the watermark just before it arrived.
* **Duplicates.** The same ``(order_id, kind)`` again is dropped and counted when the accepted
  one is still remembered: an accepted event's key is kept until the watermark passes
  ``max(its event time, the watermark at its arrival) + dedup``. The window therefore holds the
  keys of about ``rate × (lateness + dedup)`` events, whatever the stream's length.
* **Totals** (GMV, orders, refunds, per brand, per platform × region) and the **per-second series
  by event time** are sums over every accepted event, late ones included: the same for any
  arrival order.
* **Live milestones** (``timing = "live"``): the inner aggregator fed the accepted events in
  arrival order — today's rules on the arrival order (its clock is the largest event time seen,
  so a rate record is "orders per second as they arrived").
* **Final milestones** (``timing = "final"``): the inner aggregator fed the *final stream*: a
  reorder buffer holds each on-time event until the watermark passes its event time, then
  releases it in (event time, order id, kind) order; a late event enters the final stream on
  arrival. So a final milestone names the first order in event-time order (ties by order id)
  whose running total reaches the threshold, is announced when the watermark passes it, and
  never changes. With no late event the final stream is exactly the sorted stream.
* **Corrections** (``timing = "correction"``, ``corrects`` = the final milestone's id): a late
  event that, had it been on time, would have come before a final milestone's crossing order
  and — with the other such late events of the same total — would have made the running total
  reach the threshold before that order (or, refunds, no longer at it). At most one correction
  per final milestone; the final one stands. The races of ``[[dimensions]]`` are corrected the
  same way (a per-order dimension's total is its seller's: the late events of the same seller).
* **Rate records** (final): a second is decided when the watermark passes its end; a placed order
  arriving into a decided second that changes the record chain announces the changed records as
  corrections (see ``_final_records``); :meth:`EventTimeAggregator.rate_records` is the chain as
  it stands, after ``finish()`` that of the exact per-second series.
* **Time rules** (time-to-value) see every order at its own event time, in both streams.

Everything is vectorised (no per-event Python loop; loops run over rounds of repeated keys and
over the few final milestones a late batch can touch) and independent of how the stream is cut
into batches: every decision is a function of the arrival stream and an event's position in
it. :class:`~ticker.aggregate.reference.EventTimeReferenceFold` is the per-event specification.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ticker.aggregate.aggregator import (
    Aggregator,
    BatchRejected,
    CompiledRule,
    TrustedAggregator,
    milestone_sort_key,
)
from ticker.aggregate.dimensions import milestone_kind
from ticker.aggregate.milestones import Milestone, rate_record_milestone, time_to_value_milestone
from ticker.aggregate.state import SCHEMA_VERSION, AggregateState, SnapshotError, write_npz
from ticker.clock import US_PER_S, format_time
from ticker.events import COLUMNS, OrderBatch
from ticker.scenario.dimensions import DimensionTable, tables
from ticker.scenario.disorder import DisorderProfile
from ticker.scenario.model import Scenario
from ticker.views import BrandGMV, Peak

_MIN = np.iinfo(np.int64).min
_TIMING_ORDER = {"live": 0, "final": 1, "correction": 2}
_KIND_ORDER = {"gmv": 0, "brand_gmv": 1, "time_to_value": 2, "rate_record": 3}
#: no piece of the final stream yet (see EventTimeAggregator._final)
_NO_SEGMENT = (OrderBatch.empty(), np.zeros(0, bool), np.zeros(0, np.intp), np.zeros(0, np.int64))
#: the state's own arrays (besides the two inner states and the reorder buffer)
_OWN_ARRAYS = ("second_orders", "second_gmv", "dedup_time", "dedup_keys", "dedup_until",
               "last_second", "last_time", "last_order", "last_kind", "last_seq")


@dataclass(frozen=True, slots=True)
class EventTimeConfig:
    """How far behind the newest event time an order may arrive and still be on time, and how
    long (in watermark time) an accepted order's id is remembered to recognise a redelivery."""

    lateness_us: int = 5 * US_PER_S
    dedup_us: int = 60 * US_PER_S

    @classmethod
    def from_profile(cls, profile: DisorderProfile) -> EventTimeConfig:
        return cls(profile.lateness_us, profile.dedup_us)


def aggregator_for(scenario: Scenario, brand_names: Sequence[str], run: str,
                   disorder: dict[str, Any] | None,
                   state: AggregateState | EventTimeState | None = None) -> Aggregator | EventTimeAggregator:
    """The aggregator a run needs: today's for an ordered run; for a run whose ``run.json``
    records a disorder profile, the event-time one with the profile's lateness and dedup window.
    A snapshot of the other kind is refused."""
    if not disorder:
        if isinstance(state, EventTimeState):
            raise SnapshotError("snapshot of an arrival-ordered run, but this run is ordered")
        return Aggregator(scenario, run, state, brand_names=brand_names)
    if state is not None and not isinstance(state, EventTimeState):
        raise SnapshotError("snapshot of an ordered run, but this run is arrival-ordered")
    config = EventTimeConfig(round(disorder["lateness_s"] * US_PER_S), round(disorder["dedup_s"] * US_PER_S))
    return EventTimeAggregator(scenario, brand_names, run, config, state)


def sort_key(m: Milestone) -> tuple[int, int, str, int, int]:
    """Canonical order of an arrival-ordered run's milestones: seq, kind, subject, threshold,
    then live before final before correction."""
    return (m.seq, _KIND_ORDER.get(m.kind, 9), m.subject, m.threshold_minor,
            _TIMING_ORDER.get(m.timing or "final", 9))


@dataclass(eq=False)
class EventTimeState:
    """Everything an arrival-ordered fold holds; reads like an :class:`AggregateState` for totals.

    Snapshots keep it whole (both inner states, the reorder buffer, the duplicate window), so a
    resume or ``state --at`` carries on exactly.
    """

    live: AggregateState
    final: AggregateState
    next_seq: int = 0  # arrival seqs folded: [0, next_seq)
    max_time_us: int = _MIN  # the largest event time seen
    second_orders: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    second_gmv: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    duplicates: int = 0
    late: int = 0  # accepted events behind the watermark on arrival
    late_us_total: int = 0  # how far behind, summed (µs)
    late_us_max: int = 0
    buffer_max: int = 0  # the reorder buffer's largest size after a batch
    live_last_arrival: int = -1  # arrival seq of the last event fed to each inner fold
    final_last_arrival: int = -1
    corrected: int = 0
    buffer: OrderBatch = field(default_factory=OrderBatch.empty)  # seq column = arrival seq
    dedup_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted
    dedup_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    dedup_until: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: final milestones a late event may still correct: their crossing order and totals
    open_finals: list[dict[str, Any]] = field(default_factory=list)
    decided_until: int = 0  # festival seconds the watermark has passed: their rate records decided
    #: the final rate-record chain: second, count, id of the milestone that last announced it
    records: list[dict[str, Any]] = field(default_factory=list)
    #: each undecided second's last counted order (event-time order): second, time, id, kind, seq
    last_second: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_seq: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    milestones: list[Milestone] = field(default_factory=list)

    # --- what readers of an AggregateState use ---------------------------------------------------
    gmv_minor = property(lambda self: self.live.gmv_minor)
    orders = property(lambda self: self.live.orders)
    refunds = property(lambda self: self.live.refunds)
    brand_gmv = property(lambda self: self.live.brand_gmv)
    brand_orders = property(lambda self: self.live.brand_orders)
    mix_gmv = property(lambda self: self.live.mix_gmv)
    mix_orders = property(lambda self: self.live.mix_orders)
    brand_level = property(lambda self: self.final.brand_level)
    race_count = property(lambda self: self.final.race_count)
    last_time_us = property(lambda self: self.max_time_us)
    open_second = property(lambda self: self.final.open_second)

    def watermark_us(self, lateness_us: int) -> int:
        return _MIN if self.max_time_us == _MIN else self.max_time_us - lateness_us

    # --- copies, comparisons, snapshots ------------------------------------------------------------

    def _own(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        arrays = {name: getattr(self, name) for name in _OWN_ARRAYS}
        arrays |= {f"buffer.{n}": c for n, c in self.buffer.columns().items()}
        scalars = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), int)}
        return arrays, scalars

    def copy(self) -> EventTimeState:
        arrays, scalars = self._own()
        return EventTimeState.from_parts(self._meta("", arrays, scalars),
                                         {k: v.copy() for k, v in self._arrays(arrays).items()})

    def _arrays(self, own: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        live, _ = self.live.parts()
        final, _ = self.final.parts()
        return own | {f"live.{k}": v for k, v in live.items()} | {f"final.{k}": v for k, v in final.items()}

    def _meta(self, run: str, arrays: dict[str, np.ndarray], scalars: dict[str, int]) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "run": run, "event_time": scalars,
                "live": self.live.parts()[1], "final": self.final.parts()[1],
                "open_finals": self.open_finals, "records": self.records,
                "milestones": [m.to_json_us() for m in self.milestones]}

    def to_snapshot(self, run: str) -> bytes:
        arrays, scalars = self._own()
        return write_npz(self._arrays(arrays), self._meta(run, arrays, scalars))

    @classmethod
    def from_parts(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> EventTimeState:
        def inner(prefix: str) -> AggregateState:
            mine = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + ".")}
            return AggregateState.from_parts(meta[prefix], mine, [])

        buffer = OrderBatch(**{n: arrays[f"buffer.{n}"] for n in COLUMNS})
        own: dict[str, Any] = {name: arrays[name] for name in _OWN_ARRAYS}
        return cls(live=inner("live"), final=inner("final"), **meta["event_time"], **own,
                   buffer=buffer, open_finals=[dict(m) for m in meta["open_finals"]],
                   records=[dict(r) for r in meta["records"]],
                   milestones=[Milestone(**m) for m in meta["milestones"]])

    def differences(self, other: object) -> list[str]:
        if not isinstance(other, EventTimeState):
            return ["kind of state (arrival-ordered against ordered)"]
        out = [f"live.{n}" for n in self.live.differences(other.live)]
        out += [f"final.{n}" for n in self.final.differences(other.final)]
        mine, theirs = self._own(), other._own()
        out += [k for k in mine[0] if not np.array_equal(mine[0][k], theirs[0][k])]
        out += [k for k in mine[1] if mine[1][k] != theirs[1][k]]
        if self.open_finals != other.open_finals:
            out.append("open_finals")
        if self.records != other.records:
            out.append("records")
        if self.milestones != other.milestones:
            out.append("milestones")
        return out

    def equals(self, other: object) -> bool:
        return not self.differences(other)


class _InnerFold(TrustedAggregator):
    """Today's fold on one of the two streams, for its order-count milestones (festival GMV,
    brand races) and, on the live stream, its totals and rate records. Its time rules are the
    outer fold's, at each order's own event time (the inner clock is the running maximum); so
    are the final stream's rate records (decided as the watermark passes each second).

    The outer fold has checked every batch, so the inner folds skip the checks; the final one
    (``totals=False``) keeps only what its milestones need: festival and brand GMV."""

    def __init__(self, scenario: Scenario, run: str, state: AggregateState | None, *,
                 brand_names: Sequence[str], rate_records: bool):
        super().__init__(scenario, run, state, brand_names=brand_names)
        self.rate_records = rate_records

    def apply(self, batch: OrderBatch) -> list[Milestone]:
        if self.rate_records or not len(batch):
            return super().apply(batch)
        st = self.state
        amount = batch.amount_minor
        refunds = self._validate(batch)
        running = self._running(len(batch))
        np.cumsum(amount, out=running[1:])
        gmv_before, batch_gmv = st.gmv_minor, int(running[-1])
        np.add.at(st.brand_gmv, batch.brand, amount)
        st.gmv_minor += batch_gmv
        st.orders += len(batch) - len(refunds)
        st.refunds += len(refunds)
        st.next_seq = batch.end_seq
        st.last_time_us = int(batch.event_time[-1])
        st.open_second = (st.last_time_us - self.start_us) // US_PER_S
        st.open_second_last_seq = int(batch.seq[-1])
        found = self._threshold_crossings(batch, refunds, gmv_before,
                                          batch_gmv - int(amount[refunds].sum()), running[1:])
        if self.dims is not None:  # the scenario's [[dimensions]] races (aggregate/dimensions.py)
            found += self.dims.apply(batch, refunds)
        found.sort(key=milestone_sort_key)
        self._record(found)
        return found

    def _time_to_value(self, batch: OrderBatch, r: int, rule: CompiledRule) -> list[Milestone]:
        return []

    def _rate_records(self, batch: OrderBatch, first: int, last: int) -> list[Milestone]:
        if self.rate_records:
            return super()._rate_records(batch, first, last)
        self.state.open_second, self.state.open_second_last_seq = last, int(batch.seq[-1])
        return []

    def finish(self) -> list[Milestone]:
        if self.rate_records:
            return super().finish()
        self.state.open_second = -1
        return []


class EventTimeAggregator:
    """Folds an arrival-ordered stream: watermark, duplicates, reorder buffer, live and final
    milestones and corrections (see the module doc). The same views as :class:`Aggregator`.

    ``apply(batch)`` takes the next events in arrival order and returns the milestones they
    announce (live, final and corrections, in canonical order); ``finish()`` ends the stream:
    the watermark goes to +∞, so the reorder buffer is released and the last finals announced.
    """

    def __init__(self, scenario: Scenario, brand_names: Sequence[str], run: str,
                 config: EventTimeConfig | None = None, state: EventTimeState | None = None):
        self.config = config or EventTimeConfig()
        self.live = _InnerFold(scenario, run, state.live if state else None, brand_names=brand_names,
                               rate_records=True)
        self.final = _InnerFold(scenario, run, state.final if state else None,
                                brand_names=brand_names, rate_records=False)
        if state is None:
            state = EventTimeState(self.live.state, self.final.state,
                                   second_orders=np.zeros(self.live.seconds, np.int64),
                                   second_gmv=np.zeros(self.live.seconds, np.int64))
        self.state = state
        self.scenario, self.brand_names, self.run = scenario, self.live.brand_names, run
        self.zone, self.start_us, self.currency = scenario.zone, scenario.start_us, scenario.currency
        self.thresholds = self.live.thresholds
        self.gain = scenario.milestones.rate_record_min_gain
        #: this batch's piece of the final stream, its late and counted rows and places
        self._segment = _NO_SEGMENT
        #: the [[dimensions]] races' milestone kinds, and how a late event's entity is told: a
        #: per-order dimension's table (the seller of its order id), None per brand (its brand)
        self._dimension_kinds = _dimension_kinds(scenario)

    @property
    def watermark_us(self) -> int:
        return self.state.watermark_us(self.config.lateness_us)

    def add_brands(self, names: list[str] | tuple[str, ...]) -> None:
        """Grow both inner folds' catalogues (brands first seen by ``import`` / ``follow``)."""
        self.live.add_brands(names)
        self.final.add_brands(names)
        self.brand_names = self.live.brand_names

    # --- the fold -------------------------------------------------------------------------------

    def apply(self, batch: OrderBatch) -> list[Milestone]:
        n = len(batch)
        if n == 0:
            return []
        st, cfg = self.state, self.config
        self._validate(batch)
        times = batch.event_time
        # the watermark just before and just after each arrival
        seen = np.maximum.accumulate(times)
        np.maximum(seen, st.max_time_us, out=seen)
        after = seen - cfg.lateness_us
        before = np.empty(n, np.int64)
        before[0] = st.watermark_us(cfg.lateness_us)
        before[1:] = after[:-1]

        accepted, by_time = self._deduplicate(batch, before, after[-1])
        self.accepted = accepted  # which events of the last batch counted (not redeliveries)
        rows = np.flatnonzero(accepted)
        late_rows = rows[times[rows] < before[rows]]
        late = np.zeros(n, bool)
        late[late_rows] = True
        st.duplicates += n - len(rows)
        if len(late_rows):
            behind = before[late_rows] - times[late_rows]
            st.late += len(late_rows)
            st.late_us_total += int(behind.sum())
            st.late_us_max = max(st.late_us_max, int(behind.max()))

        taken = batch.take(rows) if len(rows) < n else batch
        second = self._add_series(taken)
        found = self._feed(self.live, taken, "live")
        found += self._time_rules(self.live, taken, "live")
        # an order into a second whose rate record the watermark had already decided
        into_decided = self.start_us + (second + 1) * US_PER_S <= before[rows]

        # The final stream: the reorder buffer releases on-time events once the watermark passes
        # their time, in (event time, order id, kind) order; a late event is released on arrival,
        # i.e. after every on-time event whose time is before the watermark it arrived at.
        # on-time orders by event time (the dedup's sort): the buffer is kept in final order, so
        # the final order's stable sort merges two sorted runs
        # The pool is the buffer and the batch side by side; ``pick`` names its held orders
        # (the buffer, then the on-time arrivals by time) and then the late ones.
        on_time_mask = accepted & ~late
        on_time = by_time[on_time_mask[by_time]]
        b = len(st.buffer)
        pool = OrderBatch.concat([st.buffer, batch])
        pick = np.concatenate([np.arange(b), b + on_time, b + late_rows])
        held = len(pick) - len(late_rows)
        place = pool.event_time[pick]
        place[held:] = before[late_rows]
        out = np.ones(len(pick), bool)
        out[:held] = place[:held] < after[-1]
        segment_rows = _final_order(np.flatnonzero(out), place, held, pool, pick)
        segment = pool.take(pick[segment_rows])
        is_late = segment_rows >= held
        # The buffer's size after each arrival: what entered minus what the watermark released.
        # It only falls when the watermark moves, so its largest is just before a move (or at
        # the end): only those arrivals are counted (released times come sorted).
        peaks = np.append(np.flatnonzero(after[1:] != after[:-1]), n - 1)
        released = place[segment_rows[~is_late]]
        size = (len(st.buffer) + np.cumsum(on_time_mask)[peaks]
                - np.searchsorted(released, after[peaks], side="left"))
        st.buffer_max = max(st.buffer_max, int(size.max()))
        st.buffer = pool.take(pick[_final_order(np.flatnonzero(~out), place, held, pool, pick)])
        counted = np.ones(len(pick), bool)  # counts in its second's decision (not a correction)
        counted[held:] = ~into_decided[np.searchsorted(rows, late_rows)]
        found += self._final(segment, is_late, counted[segment_rows], place[segment_rows])

        placed = into_decided & (taken.kind == 0)
        found += self._final_records(second[placed], taken.take(np.flatnonzero(placed)),
                                     before[rows[placed]], int(after[-1]))
        self._keep_last_events()
        st.next_seq = batch.end_seq
        st.max_time_us = int(seen[-1])
        return self._record(found)

    def finish(self) -> list[Milestone]:
        """The end of the stream: release the reorder buffer, close both folds' last seconds."""
        st = self.state
        pool = st.buffer
        order = _final_order(np.arange(len(pool)), pool.event_time, len(pool), pool, np.arange(len(pool)))
        segment = pool.take(order)
        found = self._final(segment, np.zeros(len(pool), bool), np.ones(len(pool), bool),
                            segment.event_time)
        st.buffer = OrderBatch.empty()
        found += self._remap(self.live.finish(), None, "live")
        found += self._remap(self.final.finish(), None, "final")
        found += self._decide(self.live.seconds)
        self._keep_last_events()
        return self._record(found)

    def _record(self, found: list[Milestone]) -> list[Milestone]:
        found.sort(key=sort_key)
        stored = self.state.milestones
        late = stored and found and sort_key(found[0]) < sort_key(stored[-1])
        stored.extend(found)
        if late:
            stored.sort(key=sort_key)
        return found

    def _validate(self, batch: OrderBatch) -> None:
        """Today's checks of :meth:`Aggregator.validate` but time order (checked on a copy whose
        times are all the batch's earliest), and every time inside a sales window."""
        st = self.state
        if batch.first_seq != st.next_seq:
            what = "repeats" if batch.first_seq < st.next_seq else "skips to"
            raise BatchRejected(f"seq {batch.first_seq}: batch {what} seq {batch.first_seq}, "
                                f"expected seq {st.next_seq} next")
        times = batch.event_time
        windows = self.live.windows
        lo, hi = int(times.min()), int(times.max())
        w = int(np.searchsorted(windows[:, 0], lo, side="right")) - 1
        if w >= 0 and hi < windows[w, 1]:  # all in the window of the earliest: nothing outside
            ok = np.ones(1, bool)
        else:
            w_all = np.searchsorted(windows[:, 0], times, side="right") - 1
            ok = (w_all >= 0) & (times < windows[np.maximum(w_all, 0), 1])
        if not ok.all():
            i = int(np.argmin(ok))
            raise BatchRejected(f"seq {batch.seq[i]}: event time {times[i]} µs is outside every "
                                f"sales window of {self.scenario.name}")
        probe = copy.copy(self.live)
        probe.state = dataclasses.replace(self.live.state, next_seq=batch.first_seq, last_time_us=_MIN)
        Aggregator._validate(probe, OrderBatch(**{**batch.columns(),
                                                  "event_time": np.full(len(times), lo)}))

    def _deduplicate(self, batch: OrderBatch, before: np.ndarray, watermark_end: int
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Which events are accepted: not a redelivery (same order id, kind and event time) of
        an accepted event still remembered; and the batch's rows by event time (stable).

        Only events sharing an event time with another of the batch or with a remembered one can
        be redeliveries; the stream is nearly in time order, so a stable sort by time is cheap
        and names those few. The exact rule runs on them, in rounds over repeated keys. The
        window keeps (time, key, until) sorted by time.
        """
        st = self.state
        times = batch.event_time
        n = len(times)
        by_time = np.argsort(times, kind="stable")
        ts = times[by_time]
        shared = np.zeros(n, bool)
        same = ts[1:] == ts[:-1]
        shared[1:] |= same
        shared[:-1] |= same
        wt = st.dedup_time
        if len(wt):  # only times up to the window's newest can be in it: a prefix of ts
            k = int(np.searchsorted(ts, wt[-1], side="right"))
            shared[:k] |= wt[np.minimum(np.searchsorted(wt, ts[:k]), len(wt) - 1)] == ts[:k]
        keep_until = np.maximum(times, before) + self.config.dedup_us
        accepted = np.ones(n, bool)
        cand = by_time[shared]  # in time order, arrival order within a time
        forget = np.zeros(0, np.intp)
        remember: list[np.ndarray] = []
        if len(cand):
            lo = np.searchsorted(wt, times[cand[0]])
            hi = np.searchsorted(wt, times[cand[-1]], side="right")
            w_rows = np.arange(lo, hi)
            w_rows = w_rows[np.isin(wt[w_rows], times[cand])]
            forget = w_rows
            # window entries first, then candidates in arrival order, grouped by (time, key)
            t_all = np.concatenate([wt[w_rows], times[cand]])
            k_all = np.concatenate([st.dedup_keys[w_rows], _keys(batch.order_id[cand], batch.kind[cand])])
            src = np.concatenate([np.arange(len(w_rows)), len(w_rows) + np.arange(len(cand))])
            order = np.lexsort((src, k_all, t_all))
            st_, sk = t_all[order], k_all[order]
            starts = np.ones(len(order), bool)
            starts[1:] = (st_[1:] != st_[:-1]) | (sk[1:] != sk[:-1])
            group = np.cumsum(starts) - 1
            rank = np.arange(len(order)) - np.flatnonzero(starts)[group]
            until = np.full(int(group[-1]) + 1, _MIN, np.int64)
            from_window = order < len(w_rows)
            until[group[from_window]] = st.dedup_until[w_rows[order[from_window]]]
            mine = ~from_window
            for r in range(int(rank[mine].max()) + 1 if mine.any() else 0):
                pos = np.flatnonzero(mine & (rank == r))
                rows = cand[order[pos] - len(w_rows)]
                dup = until[group[pos]] > before[rows]
                accepted[rows[dup]] = False
                until[group[pos[~dup]]] = keep_until[rows[~dup]]
            first = np.flatnonzero(starts)
            remember = [st_[first], sk[first], until]
        # remember every other accepted event, forget what the watermark has passed; a timsort
        # merges the sorted runs in linear time
        plain = by_time[~shared]
        keep = np.ones(len(wt), bool)
        keep[forget] = False
        wt = np.concatenate([wt[keep], times[plain], *remember[:1]])
        wk = np.concatenate([st.dedup_keys[keep], _keys(batch.order_id[plain], batch.kind[plain]),
                             *remember[1:2]])
        wu = np.concatenate([st.dedup_until[keep], keep_until[plain], *remember[2:]])
        alive = wu > watermark_end
        merge = np.argsort(wt[alive], kind="stable")
        st.dedup_time, st.dedup_keys = wt[alive][merge], wk[alive][merge]
        st.dedup_until = wu[alive][merge]
        return accepted, by_time

    def _add_series(self, batch: OrderBatch) -> np.ndarray:
        """Per-second orders and GMV by event time: order-independent sums. Returns each
        event's second."""
        st = self.state
        second = (batch.event_time - self.start_us) // US_PER_S
        np.add.at(st.second_gmv, second, batch.amount_minor)  # exact: int64, not float weights
        placed = second[batch.kind == 0]
        if len(placed):  # counted over the batch's own span of seconds, not the festival's
            lo = int(placed.min())
            counts = np.bincount(placed - lo)
            st.second_orders[lo:lo + len(counts)] += counts
        return second

    def _feed(self, inner: Aggregator, batch: OrderBatch, timing: str) -> list[Milestone]:
        """Fold ``batch`` into an inner aggregator on its own contiguous seqs and a non-decreasing
        clock (the running maximum of the event times); milestones mapped back to arrival seqs
        and true event times."""
        if not len(batch):
            return []
        st = self.state
        base = inner.state.next_seq
        clock = np.maximum.accumulate(batch.event_time)
        np.maximum(clock, inner.state.last_time_us, out=clock)
        fed = OrderBatch(**{**batch.columns(), "event_time": clock,
                            "seq": np.arange(base, base + len(batch), dtype=np.int64)})
        found = inner.apply(fed)
        inner.state.milestones.clear()
        out = self._remap(found, (base, batch), timing)
        if timing == "live":
            st.live_last_arrival = int(batch.seq[-1])
        else:
            st.final_last_arrival = int(batch.seq[-1])
        return out

    def _remap(self, found: list[Milestone], fed: tuple[int, OrderBatch] | None, timing: str
               ) -> list[Milestone]:
        st = self.state
        out = []
        for m in found:
            row = m.seq - fed[0] if fed is not None else -1
            if fed is None or row < 0:  # the previous batch's last event (a rate record closed now)
                seq = st.live_last_arrival if timing == "live" else st.final_last_arrival
                when = m.event_time_us
            else:
                batch = fed[1]
                seq = int(batch.seq[row])
                when = m.event_time_us if m.kind == "rate_record" else int(batch.event_time[row])
            ident = f"{m.id}:live" if timing == "live" else m.id
            final = dataclasses.replace(m, id=ident, seq=seq, event_time_us=when, timing=timing)
            out.append(final)
            if timing == "final" and (m.kind in ("gmv", "brand_gmv", "time_to_value")
                                      or m.kind in self._dimension_kinds) \
                    and fed is not None and row >= 0:
                batch = fed[1]
                st.open_finals.append({
                    "id": m.id, "kind": m.kind, "subject": m.subject, "threshold": m.threshold_minor,
                    "value": m.value_minor, "before": m.value_minor - int(batch.amount_minor[row]),
                    "inner_seq": m.seq, "time": int(batch.event_time[row]),
                    "order_id": int(batch.order_id[row]), "order_kind": int(batch.kind[row]),
                    "brand": int(batch.brand[row]), "delta": 0, "rank": m.rank,
                    "headline": m.headline})
        return out

    def _final(self, segment: OrderBatch, is_late: np.ndarray, counted: np.ndarray,
               place: np.ndarray) -> list[Milestone]:
        """Fold the next piece of the final stream; late events in it are checked against the
        final milestones announced before them. ``counted``: the events that count in their
        second's rate-record decision (all but late orders into an already decided second);
        ``place``: each one's place in the final order (event time; a late one's: the watermark
        it arrived at), sorted."""
        self._segment = (segment, is_late, np.flatnonzero(is_late & counted), place)
        if not len(segment):
            return []
        base = self.final.state.next_seq
        found = self._feed(self.final, segment, "final")
        found += self._time_rules(self.final, segment, "final", base)
        # in final-stream order whatever the cuts (the inner fold's and the rules' interleave)
        self.state.open_finals.sort(key=lambda m: (m["inner_seq"], _KIND_ORDER.get(m["kind"], 9),
                                                   m["subject"], m["threshold"]))
        late = np.flatnonzero(is_late)
        if len(late) and self.state.open_finals:
            found += self._corrections(segment.take(late), base + late)
        return found

    def _corrections(self, late: OrderBatch, inner_seq: np.ndarray) -> list[Milestone]:
        """For each final milestone a late event may move: accumulate the matching late amounts
        before its crossing (in event-time order) and announce a correction at the first that
        moves it. Loops over milestones (a handful), vectorised over late events."""
        st = self.state
        found = []
        earliest = int(late.event_time.min())
        for m in st.open_finals:
            if m["time"] < earliest:
                continue
            mine = (inner_seq > m["inner_seq"]) & self._before(late, m) & self._subject(late, m)
            if not mine.any():
                continue
            idx = np.flatnonzero(mine)
            delta = m["delta"] + np.cumsum(late.amount_minor[idx])
            moved = (m["before"] + delta >= m["threshold"]) | (m["value"] + delta < m["threshold"])
            if not moved.any():
                m["delta"] = int(delta[-1])
                continue
            j = int(np.argmax(moved))
            row = int(idx[j])
            value = m["value"] + int(delta[j])
            earlier = m["before"] + int(delta[j]) >= m["threshold"]
            when = format_time(int(late.event_time[row]), self.zone, precision="milliseconds")
            how = "it was reached before that order" if earlier else "that order no longer reaches it"
            found.append(Milestone(
                f"{m['id']}:correction", m["kind"], m["subject"], m["threshold"], value,
                int(late.seq[row]), int(late.event_time[row]), m["rank"],
                f"Correction: {m['headline']} — a late order of {when} means {how}",
                timing="correction", corrects=m["id"]))
            m["done"] = True
            st.corrected += 1
        st.open_finals = [m for m in st.open_finals if not m.get("done")]
        return found

    @staticmethod
    def _before(late: OrderBatch, m: dict[str, Any]) -> np.ndarray:
        t, oid = late.event_time, late.order_id
        before: np.ndarray = (t < m["time"]) | ((t == m["time"]) & ((oid < m["order_id"]) | (
            (oid == m["order_id"]) & (late.kind < m["order_kind"]))))
        return before

    def _subject(self, late: OrderBatch, m: dict[str, Any]) -> np.ndarray:
        """The late events of the milestone's total: all (festival), its brand's (a brand race,
        or a brand's race within a per-brand dimension's value), its seller's (a per-order
        dimension: the seller of the crossing order's id), or inside its time rule."""
        if m["kind"] == "gmv":
            return np.ones(len(late), bool)
        if m["kind"] == "brand_gmv" or (m["kind"] in self._dimension_kinds
                                        and self._dimension_kinds[m["kind"]] is None):
            same: np.ndarray = late.brand == m["brand"]
            return same
        table = self._dimension_kinds.get(m["kind"])
        if table is not None:
            seller = table.order_codes(np.array([m["order_id"]], np.int64))[0]
            sold: np.ndarray = table.order_codes(late.order_id) == seller
            return sold
        rule = next(r for r in self.final.rules if r.subject == m["subject"]
                    and r.value_minor == m["threshold"])
        inside: np.ndarray = (late.event_time >= rule.start_us) & (late.event_time < rule.deadline_us)
        if rule.column is not None:
            inside &= getattr(late, rule.column) == rule.index
        return inside

    def _time_rules(self, inner: Aggregator, stream: OrderBatch, timing: str, base: int = 0
                    ) -> list[Milestone]:
        """Time-to-value rules on one of the two streams, each order at its own event time: an
        order counts when its time is inside the rule's window, wherever it stands in the
        stream (a late one too). A rule is done when reached; it never closes by time, since a
        late order may still belong to its window. Loops over the rules (a handful)."""
        st = inner.state
        times = stream.event_time
        found: list[Milestone] = []
        for r, rule in enumerate(inner.rules):
            if st.rule_done[r]:
                continue
            mine = (times >= rule.start_us) & (times < rule.deadline_us)
            if rule.column is not None:
                mine &= getattr(stream, rule.column) == rule.index
            rows = np.flatnonzero(mine)
            if not len(rows):
                continue
            totals = int(st.rule_value[r]) + np.cumsum(stream.amount_minor[rows])
            reached = totals >= rule.value_minor
            if not reached.any():
                st.rule_value[r] = totals[-1]
                continue
            j = int(np.argmax(reached))
            row = int(rows[j])
            st.rule_value[r], st.rule_done[r] = totals[j], True
            t = int(times[row])
            m = time_to_value_milestone(self.run, rule.subject, rule.name, rule.label,
                                        rule.value_minor, int(totals[j]), int(stream.seq[row]), t,
                                        t - rule.start_us, self.currency)
            if timing == "live":
                found.append(dataclasses.replace(m, id=f"{m.id}:live", timing="live"))
                continue
            found.append(dataclasses.replace(m, timing="final"))
            self.state.open_finals.append({
                "id": m.id, "kind": m.kind, "subject": m.subject, "threshold": m.threshold_minor,
                "value": m.value_minor, "before": m.value_minor - int(stream.amount_minor[row]),
                "inner_seq": base + row, "time": t, "order_id": int(stream.order_id[row]),
                "order_kind": int(stream.kind[row]), "brand": int(stream.brand[row]), "delta": 0,
                "rank": m.rank, "headline": m.headline})
        return found

    # --- rate records of the final stream -------------------------------------------------------
    #
    # A second is decided when the watermark passes its end: its count is then that of every
    # order of it that had arrived (late ones included), and the record chain over the decided
    # seconds grows by today's rule (a count beating the record by ``min_gain``), attributed to
    # the second's last order in event-time order. An order that arrives into a decided second
    # adds one to its count; when that changes the chain (the second is a record, or becomes
    # one), the chain is recomputed from that second and each record that changed is announced
    # as a correction naming the record that stood there. ``rate_records()`` is the chain.

    def _last_event(self, second: int) -> int:
        """The arrival seq of ``second``'s last counted order in event-time order (time, order
        id, kind): the one kept from earlier batches, this batch's final-stream segment (its
        on-time orders come sorted: one binary search) and its late orders counted there."""
        st = self.state
        segment, is_late, late, place = self._segment
        start = self.start_us + second * US_PER_S
        best: tuple[int, int, int, int] | None = None
        at = int(np.searchsorted(st.last_second, second))
        if at < len(st.last_second) and st.last_second[at] == second:
            best = (int(st.last_time[at]), int(st.last_order[at]), int(st.last_kind[at]),
                    int(st.last_seq[at]))
        i = int(np.searchsorted(place, start + US_PER_S)) - 1
        while i >= 0 and is_late[i]:
            i -= 1
        rows = [i] if i >= 0 and segment.event_time[i] >= start else []
        rows += late[(segment.event_time[late] >= start)
                     & (segment.event_time[late] < start + US_PER_S)].tolist()
        for row in rows:
            mine = (int(segment.event_time[row]), int(segment.order_id[row]), int(segment.kind[row]),
                    int(segment.seq[row]))
            best = mine if best is None else max(best, mine)
        assert best is not None, f"second {second} decided with orders but none kept"
        return best[3]

    def _keep_last_events(self) -> None:
        """Keep the last counted order of each second still undecided (the second the
        watermark is in, at most a couple): from before, and from this batch's segment."""
        st = self.state
        segment, is_late, late, place = self._segment
        lo = self.start_us + st.decided_until * US_PER_S
        rows = late[segment.event_time[late] >= lo]
        tail = int(np.searchsorted(place, lo))
        on_time = np.flatnonzero(~is_late[tail:]) + tail
        sec_on = (segment.event_time[on_time] - self.start_us) // US_PER_S
        rows = np.concatenate([rows, on_time[np.flatnonzero(np.diff(sec_on, append=np.int64(-1)) != 0)]])
        keep = st.last_second >= st.decided_until
        second = np.concatenate([st.last_second[keep],
                                 (segment.event_time[rows] - self.start_us) // US_PER_S])
        time = np.concatenate([st.last_time[keep], segment.event_time[rows]])
        order = np.concatenate([st.last_order[keep], segment.order_id[rows]])
        kind = np.concatenate([st.last_kind[keep], segment.kind[rows].astype(np.int64)])
        seq = np.concatenate([st.last_seq[keep], segment.seq[rows]])
        by = np.lexsort((kind, order, time, second))
        last = by[np.flatnonzero(np.diff(second[by], append=np.int64(-1)) != 0)]
        st.last_second, st.last_time, st.last_order = second[last], time[last], order[last]
        st.last_kind, st.last_seq = kind[last], seq[last]
        self._segment = _NO_SEGMENT

    def _until(self, watermark: int) -> int:
        """How many festival seconds a watermark has passed (second s when W ≥ its end)."""
        if watermark == _MIN:
            return self.state.decided_until
        passed = (watermark - self.start_us) // US_PER_S
        return int(min(max(passed, self.state.decided_until), self.live.seconds))

    def _greedy(self, lo: int, hi: int, record: int) -> list[tuple[int, int]]:
        """The records (second, count) among seconds [lo, hi) after ``record``: each beats the
        one before by ``min_gain``. A record is a strict running maximum, so one
        ``maximum.accumulate`` and a binary search per record find them all."""
        counts = self.state.second_orders[lo:hi]
        out: list[tuple[int, int]] = []
        if not len(counts):
            return out
        peaks = np.maximum.accumulate(counts)
        while True:
            i = int(np.searchsorted(peaks, math.floor(record * (1 + self.gain)), side="right"))
            if i == len(peaks):
                return out
            record = int(counts[i])
            out.append((lo + i, record))

    def _decide(self, until: int) -> list[Milestone]:
        """Decide the seconds up to ``until``: the final rate records they set."""
        st = self.state
        if until <= st.decided_until:
            return []
        records = st.records
        found: list[Milestone] = []
        for second, count in self._greedy(st.decided_until, until, records[-1]["value"] if records else 0):
            previous = records[-1]["value"] if records else 0
            m = rate_record_milestone(self.run, previous, count, self._last_event(second),
                                      self.start_us + second * US_PER_S, self.zone)
            found.append(dataclasses.replace(m, timing="final"))
            records.append({"second": second, "value": count, "id": m.id})
        st.decided_until = until
        return found

    def _final_records(self, second: np.ndarray, late: OrderBatch, before: np.ndarray,
                       watermark: int) -> list[Milestone]:
        """Decide the seconds this batch's watermark passes, and take in the placed orders that
        arrived into decided seconds (``late``, their ``second`` and the watermark each arrived
        at), in arrival order.

        An order into a decided second changes the chain only if that second is a record or
        now beats the record before it; the chain up to that second depends only on earlier
        changes, so one vectorised test finds the next order that changes it, and the loop
        runs once per change, not per order."""
        st = self.state
        counts = st.second_orders
        np.subtract.at(counts, second, 1)  # back in one by one, as they arrived
        found: list[Milestone] = []
        pos = 0
        while True:
            k = self._first_change(second[pos:], self._until(watermark)) if pos < len(second) else -1
            if k < 0:
                found += self._decide(self._until(watermark))
                np.add.at(counts, second[pos:], 1)
                return found
            k += pos
            found += self._decide(self._until(int(before[k])))
            np.add.at(counts, second[pos:k + 1], 1)
            found += self._rechain(int(second[k]), int(late.seq[k]), int(late.event_time[k]),
                                   int(late.order_id[k]))
            pos = k + 1

    def _first_change(self, second: np.ndarray, until: int) -> int:
        """The first of these orders (into decided seconds) that changes the record chain, or
        −1; the chain is as it would be with the seconds up to ``until`` decided."""
        st = self.state
        more = self._greedy(st.decided_until, until, st.records[-1]["value"] if st.records else 0)
        chain_second = np.array([r["second"] for r in st.records] + [s for s, _ in more], np.int64)
        chain_value = np.array([r["value"] for r in st.records] + [c for _, c in more], np.int64)
        # the count each order brings its second to: earlier orders of this run of arrivals too
        by = np.argsort(second, kind="stable")
        s_sorted = second[by]
        starts = np.flatnonzero(np.diff(s_sorted, prepend=np.int64(-1)) != 0)
        rank = np.empty(len(second), np.int64)
        rank[by] = np.arange(len(second)) - np.repeat(starts, np.diff(starts, append=len(second)))
        count = st.second_orders[second] + rank + 1
        at = np.searchsorted(chain_second, second, side="right") - 1  # the record standing there
        if len(chain_second) == 0:  # no record yet (nothing decided has an order): any one sets it
            is_record = np.zeros(len(second), bool)
            previous = np.zeros(len(second), np.int64)
        else:
            is_record = (at >= 0) & (chain_second[np.maximum(at, 0)] == second)
            standing = np.where(is_record, at - 1, at)
            previous = np.where(standing >= 0, chain_value[np.maximum(standing, 0)], 0)
        changes = is_record | (count > np.floor(previous * (1 + self.gain)))
        return int(np.argmax(changes)) if changes.any() else -1

    def _rechain(self, second: int, seq: int, time_us: int, order_id: int) -> list[Milestone]:
        """The chain from ``second`` on, recomputed over the decided seconds; each record up to
        where it meets the old chain again is announced as a correction."""
        st = self.state
        old = st.records
        j = next((i for i, r in enumerate(old) if r["second"] >= second), len(old))
        start = old[j - 1]["value"] if j else 0
        new = self._greedy(second, st.decided_until, start)
        old_keys = {(r["second"], r["value"], old[i - 1]["value"] if i else 0): i
                    for i, r in enumerate(old) if i >= j}
        chain = old[:j]
        found: list[Milestone] = []
        when = format_time(time_us, self.zone, precision="milliseconds")
        previous = start
        for x, count in new:
            rejoin = old_keys.get((x, count, previous))
            if rejoin is not None:
                chain += old[rejoin:]
                break
            standing = next((r for r in reversed(old) if r["second"] <= x), None)
            m = rate_record_milestone(self.run, previous, count, seq, self.start_us + x * US_PER_S,
                                      self.zone)
            how = "raises that second's count" if x == second else "changes the record before it"
            ident = f"{m.id}:correction:{order_id}"  # one per late order (a seq is not stable)
            found.append(dataclasses.replace(
                m, id=ident, headline=f"Correction: {m.headline} — a late order of {when} {how}",
                timing="correction", corrects=standing["id"] if standing else m.id))
            chain.append({"second": x, "value": count, "id": ident})
            previous = count
        st.records = chain
        st.corrected += len(found)
        return found

    def rate_records(self) -> list[tuple[int, int, str]]:
        """The final rate-record chain as it stands, corrections applied: (second's start µs,
        orders in it, the id of the milestone that last announced it), oldest first. After
        ``finish()`` it is the chain of the exact per-second series."""
        return [(self.start_us + r["second"] * US_PER_S, r["value"], r["id"]) for r in self.state.records]

    # --- views ------------------------------------------------------------------------------------

    def leaderboard(self, size: int | None = None) -> list[BrandGMV]:
        return self.live.leaderboard(size)

    def peak(self) -> Peak:
        """The busiest event-time second, late orders included: its order count and start (µs)."""
        second = int(np.argmax(self.state.second_orders))
        return Peak(int(self.state.second_orders[second]), self.start_us + second * US_PER_S)

    def brands_over(self) -> dict[int, int]:
        """Brands past each threshold by the final milestones."""
        return self.final.brands_over()

    def report(self) -> dict[str, Any]:
        """The event-time figures a summary and a tick carry."""
        st = self.state
        return {"watermark": None if st.max_time_us == _MIN else
                format_time(self.watermark_us, self.zone, precision="microseconds"),
                "lateness_s": self.config.lateness_us / US_PER_S,
                "dedup_s": self.config.dedup_us / US_PER_S,
                "duplicates_dropped": st.duplicates, "late_orders": st.late,
                "late_max_s": st.late_us_max / US_PER_S,
                "late_mean_s": round(st.late_us_total / st.late / US_PER_S, 6) if st.late else 0.0,
                "corrections": st.corrected, "reorder_buffer": len(st.buffer),
                "reorder_buffer_max": st.buffer_max, "dedup_window": len(st.dedup_keys)}



def _dimension_kinds(scenario: Scenario) -> dict[str, DimensionTable | None]:
    """Each [[dimensions]] race's milestone kind: per order ``{dimension}_gmv`` -> its table,
    per brand ``{value}_brand_gmv`` -> None (a brand's race within its value)."""
    kinds: dict[str, DimensionTable | None] = {}
    for table in tables(scenario):
        if not table.dimension.thresholds_minor:
            continue
        if table.per_order:
            kinds[milestone_kind(table)] = table
        else:
            kinds.update({milestone_kind(table, code): None for code in range(1, len(table.names))})
    return kinds


def _keys(order_id: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """(order id, kind) as one uint64; ids are compared on their low 63 bits."""
    return (order_id.view(np.uint64) << np.uint64(1)) | kind.astype(np.uint64)


def _final_order(rows: np.ndarray, place: np.ndarray, held: int, pool: OrderBatch, pick: np.ndarray
                 ) -> np.ndarray:
    """``rows`` (of ``pick``, the orders of ``pool`` in play; ``held`` of them on time, then
    the late ones) in final-stream order: by place (event time; a late event's: the watermark
    it arrived at), a late event before an on-time one at the same place, then order id and
    kind (late events: arrival). The rows come as a few sorted runs, so a stable sort by place
    (timsort) is a merge; only ties go through a full lexsort."""
    rows = rows[np.argsort(place[rows], kind="stable")]
    p = place[rows]
    tied = np.zeros(len(rows), bool)
    same = p[1:] == p[:-1]
    tied[1:] |= same
    tied[:-1] |= same
    if tied.any():
        t = rows[tied]
        late = t >= held
        key1 = np.where(late, pool.seq[pick[t]], pool.order_id[pick[t]])
        key2 = np.where(late, 0, pool.kind[pick[t]])
        rows[tied] = t[np.lexsort((key2, key1, ~late, place[t]))]
    return rows
