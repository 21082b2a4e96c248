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
  per final milestone; the final one stands. Rate records are not corrected.

Everything is vectorised (no per-event Python loop; loops run over rounds of repeated keys and
over the few final milestones a late batch can touch) and independent of how the stream is cut
into batches: every decision is a function of the arrival stream and an event's position in
it. :class:`~ticker.aggregate.reference.EventTimeReferenceFold` is the per-event specification.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ticker.aggregate.aggregator import Aggregator, BatchRejected
from ticker.aggregate.milestones import Milestone
from ticker.aggregate.state import SCHEMA_VERSION, AggregateState, SnapshotError, write_npz
from ticker.clock import US_PER_S, format_time
from ticker.events import COLUMNS, OrderBatch
from ticker.scenario.spec import Scenario
from ticker.views import BrandGMV, Peak

_MIN = np.iinfo(np.int64).min
_TIMING_ORDER = {"live": 0, "final": 1, "correction": 2}
_KIND_ORDER = {"gmv": 0, "brand_gmv": 1, "time_to_value": 2, "rate_record": 3}


@dataclass(frozen=True, slots=True)
class EventTimeConfig:
    """How far behind the newest event time an order may arrive and still be on time, and how
    long (in watermark time) an accepted order's id is remembered to recognise a redelivery."""

    lateness_us: int = 5 * US_PER_S
    dedup_us: int = 60 * US_PER_S

    @classmethod
    def from_profile(cls, profile) -> EventTimeConfig:
        return cls(profile.lateness_us, profile.dedup_us)


def aggregator_for(scenario: Scenario, brand_names: tuple[str, ...] | list[str], run: str,
                   disorder: dict[str, Any] | None, state: AggregateState | EventTimeState | None = None,
                   ) -> Aggregator | EventTimeAggregator:
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


def sort_key(m: Milestone) -> tuple:
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
    open_finals: list[dict] = field(default_factory=list)
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
        arrays = {"second_orders": self.second_orders, "second_gmv": self.second_gmv,
                  "dedup_time": self.dedup_time, "dedup_keys": self.dedup_keys,
                  "dedup_until": self.dedup_until}
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

    def _meta(self, run: str, arrays: dict, scalars: dict) -> dict:
        return {"schema": SCHEMA_VERSION, "run": run, "event_time": scalars,
                "live": self.live.parts()[1], "final": self.final.parts()[1],
                "open_finals": self.open_finals,
                "milestones": [m.to_json_us() for m in self.milestones]}

    def to_snapshot(self, run: str) -> bytes:
        arrays, scalars = self._own()
        return write_npz(self._arrays(arrays), self._meta(run, arrays, scalars))

    @classmethod
    def from_parts(cls, meta: dict, arrays: dict[str, np.ndarray]) -> EventTimeState:
        def inner(prefix: str) -> AggregateState:
            mine = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + ".")}
            return AggregateState.from_parts(meta[prefix], mine, [])

        buffer = OrderBatch(**{n: arrays[f"buffer.{n}"] for n in COLUMNS})
        return cls(live=inner("live"), final=inner("final"), **meta["event_time"],
                   second_orders=arrays["second_orders"], second_gmv=arrays["second_gmv"],
                   dedup_time=arrays["dedup_time"], dedup_keys=arrays["dedup_keys"],
                   dedup_until=arrays["dedup_until"],
                   buffer=buffer, open_finals=[dict(m) for m in meta["open_finals"]],
                   milestones=[Milestone(**m) for m in meta["milestones"]])

    def differences(self, other) -> list[str]:
        if not isinstance(other, EventTimeState):
            return ["kind of state (arrival-ordered against ordered)"]
        out = [f"live.{n}" for n in self.live.differences(other.live)]
        out += [f"final.{n}" for n in self.final.differences(other.final)]
        mine, theirs = self._own(), other._own()
        out += [k for k in mine[0] if not np.array_equal(mine[0][k], theirs[0][k])]
        out += [k for k in mine[1] if mine[1][k] != theirs[1][k]]
        if self.open_finals != other.open_finals:
            out.append("open_finals")
        if self.milestones != other.milestones:
            out.append("milestones")
        return out

    def equals(self, other) -> bool:
        return not self.differences(other)


class EventTimeAggregator:
    """Folds an arrival-ordered stream: watermark, duplicates, reorder buffer, live and final
    milestones and corrections (see the module doc). The same views as :class:`Aggregator`.

    ``apply(batch)`` takes the next events in arrival order and returns the milestones they
    announce (live, final and corrections, in canonical order); ``finish()`` ends the stream:
    the watermark goes to +∞, so the reorder buffer is released and the last finals announced.
    """

    def __init__(self, scenario: Scenario, brand_names: tuple[str, ...] | list[str], run: str,
                 config: EventTimeConfig | None = None, state: EventTimeState | None = None):
        self.config = config or EventTimeConfig()
        self.live = Aggregator(scenario, run, state.live if state else None, brand_names=brand_names)
        self.final = Aggregator(scenario, run, state.final if state else None, brand_names=brand_names)
        if state is None:
            state = EventTimeState(self.live.state, self.final.state,
                                   second_orders=np.zeros(self.live.seconds, np.int64),
                                   second_gmv=np.zeros(self.live.seconds, np.int64))
        self.state = state
        self.scenario, self.brand_names, self.run = scenario, self.live.brand_names, run
        self.zone, self.start_us, self.currency = scenario.zone, scenario.start_us, scenario.currency
        self.thresholds = self.live.thresholds
        self._rule_masks = self.final.rules

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

        accepted = self._deduplicate(batch, before, after[-1])
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
        self._add_series(taken)
        found = self._feed(self.live, taken, "live")

        # The final stream: the reorder buffer releases on-time events once the watermark passes
        # their time, in (event time, order id, kind) order; a late event is released on arrival,
        # i.e. after every on-time event whose time is before the watermark it arrived at.
        on_time = rows[~late[rows]]
        pool = OrderBatch.concat([st.buffer, taken if not len(late_rows) else batch.take(on_time),
                                  batch.take(late_rows)])
        held = len(pool) - len(late_rows)
        place = pool.event_time.copy()
        place[held:] = before[late_rows]
        out = np.ones(len(pool), bool)
        out[:held] = pool.event_time[:held] < after[-1]
        segment_rows = _final_order(np.flatnonzero(out), place, held, pool)
        segment = pool.take(segment_rows)
        # the buffer's size after each arrival: what entered minus what the watermark released
        released = segment_rows[segment_rows < held]
        leave = np.searchsorted(after, pool.event_time[released], side="right")  # sorted queries
        size = len(st.buffer) + np.cumsum(np.bincount(on_time, minlength=n)
                                          - np.bincount(leave, minlength=n)[:n])
        st.buffer_max = max(st.buffer_max, int(size.max()))
        st.buffer = pool.take(np.flatnonzero(~out))
        found += self._final(segment, segment_rows >= held)

        st.next_seq = batch.end_seq
        st.max_time_us = int(seen[-1])
        return self._record(found)

    def finish(self) -> list[Milestone]:
        """The end of the stream: release the reorder buffer, close both folds' last seconds."""
        st = self.state
        pool = st.buffer
        order = _final_order(np.arange(len(pool)), pool.event_time, len(pool), pool)
        found = self._final(pool.take(order), np.zeros(len(pool), bool))
        st.buffer = OrderBatch.empty()
        found += self._remap(self.live.finish(), None, "live")
        found += self._remap(self.final.finish(), None, "final")
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
        w = np.searchsorted(windows[:, 0], times, side="right") - 1
        ok = (w >= 0) & (times < windows[np.maximum(w, 0), 1])
        if not ok.all():
            i = int(np.argmin(ok))
            raise BatchRejected(f"seq {batch.seq[i]}: event time {times[i]} µs is outside every "
                                f"sales window of {self.scenario.name}")
        probe = copy.copy(self.live)
        probe.state = dataclasses.replace(self.live.state, next_seq=batch.first_seq, last_time_us=_MIN)
        probe.validate(OrderBatch(**{**batch.columns(), "event_time": np.full(len(times), times.min())}))

    def _deduplicate(self, batch: OrderBatch, before: np.ndarray, watermark_end: int) -> np.ndarray:
        """Which events are accepted: not a redelivery (same order id, kind and event time) of
        an accepted event still remembered.

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
        if len(wt):
            shared |= wt[np.minimum(np.searchsorted(wt, ts), len(wt) - 1)] == ts
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
        return accepted

    def _add_series(self, batch: OrderBatch) -> None:
        """Per-second orders and GMV by event time: order-independent sums."""
        st = self.state
        second = (batch.event_time - self.start_us) // US_PER_S
        size = len(st.second_orders)
        np.add.at(st.second_gmv, second, batch.amount_minor)  # exact: int64, not float weights
        placed = batch.kind == 0
        st.second_orders += np.bincount(second[placed], minlength=size)

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
            if row < 0:  # the previous batch's last event (a rate record closed now)
                seq = st.live_last_arrival if timing == "live" else st.final_last_arrival
                when = m.event_time_us
            else:
                batch = fed[1]
                seq = int(batch.seq[row])
                when = m.event_time_us if m.kind == "rate_record" else int(batch.event_time[row])
            ident = f"{m.id}:live" if timing == "live" else m.id
            final = dataclasses.replace(m, id=ident, seq=seq, event_time_us=when, timing=timing)
            out.append(final)
            if timing == "final" and m.kind != "rate_record" and row >= 0:
                batch = fed[1]
                st.open_finals.append({
                    "id": m.id, "kind": m.kind, "subject": m.subject, "threshold": m.threshold_minor,
                    "value": m.value_minor, "before": m.value_minor - int(batch.amount_minor[row]),
                    "inner_seq": m.seq, "time": int(batch.event_time[row]),
                    "order_id": int(batch.order_id[row]), "order_kind": int(batch.kind[row]),
                    "brand": int(batch.brand[row]), "delta": 0, "rank": m.rank,
                    "headline": m.headline})
        return out

    def _final(self, segment: OrderBatch, is_late: np.ndarray) -> list[Milestone]:
        """Fold the next piece of the final stream; late events in it are checked against the
        final milestones announced before them."""
        if not len(segment):
            return []
        base = self.final.state.next_seq
        found = self._feed(self.final, segment, "final")
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
    def _before(late: OrderBatch, m: dict) -> np.ndarray:
        t, oid = late.event_time, late.order_id
        return (t < m["time"]) | ((t == m["time"]) & ((oid < m["order_id"]) | (
            (oid == m["order_id"]) & (late.kind < m["order_kind"]))))

    def _subject(self, late: OrderBatch, m: dict) -> np.ndarray:
        if m["kind"] == "gmv":
            return np.ones(len(late), bool)
        if m["kind"] == "brand_gmv":
            return late.brand == m["brand"]
        rule = next(r for r in self.final.rules if r.subject == m["subject"]
                    and r.value_minor == m["threshold"])
        inside = (late.event_time >= rule.start_us) & (late.event_time < rule.deadline_us)
        if rule.column is not None:
            inside &= getattr(late, rule.column) == rule.index
        return inside

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

    def format(self, amount_minor: int) -> str:
        return self.live.format(amount_minor)

    def report(self) -> dict:
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



def _keys(order_id: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """(order id, kind) as one uint64; ids are compared on their low 63 bits."""
    return (order_id.view(np.uint64) << np.uint64(1)) | kind.astype(np.uint64)


def _final_order(rows: np.ndarray, place: np.ndarray, held: int, pool: OrderBatch) -> np.ndarray:
    """``rows`` of ``pool`` in final-stream order: by place (event time; a late event's: the
    watermark it arrived at), a late event before an on-time one at the same place, then order
    id and kind (late events: arrival). The pool is nearly sorted, so a stable sort by place
    (timsort) is cheap; only ties go through a full lexsort."""
    rows = rows[np.argsort(place[rows], kind="stable")]
    p = place[rows]
    tied = np.zeros(len(rows), bool)
    same = p[1:] == p[:-1]
    tied[1:] |= same
    tied[:-1] |= same
    if tied.any():
        t = rows[tied]
        late = t >= held
        key1 = np.where(late, pool.seq[t], pool.order_id[t])
        key2 = np.where(late, 0, pool.kind[t])
        rows[tied] = t[np.lexsort((key2, key1, ~late, place[t]))]
    return rows
