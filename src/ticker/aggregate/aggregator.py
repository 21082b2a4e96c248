"""The aggregator: folds :class:`~ticker.events.OrderBatch` es into running totals and milestones.

``Aggregator.apply(batch)`` checks the whole batch first (nothing of a rejected batch is
applied), then folds it with a handful of vector operations: ``np.add.at`` into per-brand and
per-(platform, region) arrays, a run-length pass for the per-second counts (event times are
sorted, so each second is one run). It costs about 15 ns per event on one core, independent of
the catalogue size but for one O(brands) comparison per batch.

Milestones are found exactly without a per-event Python loop: a cheap upper bound (a brand's
total after the batch, plus what refunds in the batch took away) names the few brands that can
have crossed a threshold; only their events are searched, block by block, and re-summed in
``seq`` order only in the blocks where a threshold can first be reached, to find the very order
that crossed (:func:`~ticker.aggregate.dimensions.crossings_in_blocks`). A threshold is crossed
once, at the first order whose running total reaches it, also when refunds make the total go
down and up again. Everything is independent of how the
stream is cut into batches; :mod:`ticker.aggregate.reference` is the per-event Python fold it
must agree with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ticker.aggregate.dimensions import DimensionFold, DimensionTotal, crossings_in_blocks
from ticker.aggregate.milestones import (
    Milestone,
    brand_milestone,
    gmv_milestone,
    rate_record_milestone,
    time_to_value_milestone,
)
from ticker.aggregate.state import AggregateState
from ticker.aggregate.totals import Totals, add_batch
from ticker.clock import US_PER_S
from ticker.errors import TickerError
from ticker.events import OrderBatch
from ticker.scenario.brands import catalogue
from ticker.scenario.model import Scenario, TimeToValue
from ticker.views import BrandGMV, Peak, Snapshot

_NEVER = np.iinfo(np.int64).max
_KIND_ORDER = {"gmv": 0, "brand_gmv": 1, "time_to_value": 2, "rate_record": 3}


class BatchRejected(TickerError, ValueError):
    """A batch breaks the stream's rules; the message names the first offending ``seq``."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A compiled time-to-value rule: which column to match, from when, until when."""

    column: str | None  # None: every order counts
    index: int
    start_us: int
    deadline_us: int
    value_minor: int
    subject: str
    name: str
    label: str


def refund_rows(batch: OrderBatch) -> np.ndarray:
    """The rows of ``batch``'s refunds, ascending (its kinds are 0 or 1: checked, or made so)."""
    return np.flatnonzero(batch.kind.view(bool))


def milestone_sort_key(m: Milestone) -> tuple[int, int, str, int]:
    """The canonical order of milestones: by the crossing order, then kind, subject, threshold."""
    return (m.seq, _KIND_ORDER.get(m.kind, 9), m.subject, m.threshold_minor)


class Aggregator:
    """Folds the order stream of one run into running totals and milestones.

    ``run`` names the run in every milestone id (default: the scenario's name); ``state``
    continues from a snapshot. Feed it batches in ``seq`` order with :meth:`apply`, call
    :meth:`finish` after the last one (the last second's rate record is only known then), and
    read it through the typed views (:attr:`gmv`, :attr:`orders`, :meth:`leaderboard`,
    :meth:`peak`, :meth:`brands_over`, :attr:`milestones`, :meth:`snapshot`). The raw arrays
    are in :attr:`state` (an :class:`AggregateState`) for the pipeline's snapshots.

    >>> import ticker
    >>> scenario = ticker.resolve("smoke")
    >>> agg = ticker.Aggregator(scenario, run="demo")
    >>> for batch in ticker.generate(scenario, seed=1, scale=0.01):
    ...     _ = agg.apply(batch)
    >>> _ = agg.finish()
    >>> top = agg.leaderboard(3)
    >>> top[0].brand, top[0].gmv_minor >= top[1].gmv_minor >= top[2].gmv_minor
    ('Aurora', True)
    >>> agg.milestones[0].id
    'demo:brand_gmv:Aurora:10000000'
    """

    def __init__(self, scenario: Scenario, run: str | None = None,
                 state: AggregateState | None = None, *, brand_names: Sequence[str] | None = None):
        self.scenario = scenario
        # brand ids index the scenario's catalogue; a caller folding a stream of its own may
        # name its brands instead
        self.brand_names = tuple(brand_names) if brand_names is not None else catalogue(scenario).names
        self.run = scenario.name if run is None else run
        self.currency = scenario.currency
        self.zone = scenario.zone
        self.start_us = scenario.start_us
        self.seconds = (scenario.end_us - scenario.start_us) // US_PER_S
        self.windows = np.array([(w.start_us, w.end_us) for w in scenario.windows], np.int64)
        rules = scenario.milestones
        self.thresholds = np.array(rules.brand_thresholds_minor, dtype=np.int64)
        self._threshold_or_never = np.append(self.thresholds, _NEVER)
        self.gmv_every = rules.gmv_every_minor
        self.min_gain = rules.rate_record_min_gain
        self.rules = tuple(self._compile(r) for r in rules.time_to_value)
        self.state = state or AggregateState.empty(
            len(self.brand_names), len(scenario.platforms), len(scenario.regions), self.seconds,
            len(self.thresholds), len(self.rules))
        # a snapshot taken before the catalogue grew (ingested runs): the fold, its dimensions
        # included, starts on the snapshot's brands and then grows by the rest
        names = self.brand_names
        short = len(names) - len(self.state.brand_gmv)
        if short > 0:
            self.brand_names = names[:-short]
        # derived from state.brand_level, kept to make the per-batch candidate test one compare
        self._next_threshold = self._threshold_or_never[self.state.brand_level]
        self._flag = np.zeros(len(self.brand_names), dtype=bool)
        self._code = np.zeros(len(self.brand_names), dtype=np.int16)
        self._scratch = np.zeros(1, dtype=np.int64)
        self._bool_scratch = np.zeros(1, dtype=bool)
        self._lost = np.zeros(len(self.brand_names), dtype=np.int64)  # zero between batches
        #: this batch's gathered brands (sorted), their rows and each row's place among them
        self._gathered: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.dims = DimensionFold(scenario, self.state, self.brand_names, self.run,
                                  self.currency) if scenario.dimensions else None
        if short > 0:
            self.add_brands(names[-short:])

    def add_brands(self, names: list[str] | tuple[str, ...]) -> None:
        """Grow the catalogue by brands first seen in an ingested stream (``ticker import`` /
        ``follow``); their totals start at zero. The run directory's catalogue file is what
        makes a replay or a resume rebuild the same ids."""
        if not names:
            return
        more = len(names)
        self.brand_names += tuple(names)
        st = self.state
        st.brand_gmv = np.append(st.brand_gmv, np.zeros(more, np.int64))
        st.brand_orders = np.append(st.brand_orders, np.zeros(more, np.int64))
        st.brand_level = np.append(st.brand_level, np.zeros(more, np.int8))
        self._next_threshold = self._threshold_or_never[st.brand_level]
        self._flag = np.zeros(len(self.brand_names), dtype=bool)
        self._code = np.zeros(len(self.brand_names), dtype=np.int16)
        self._lost = np.zeros(len(self.brand_names), dtype=np.int64)
        if self.dims is not None:
            self.dims.brand_names = self.brand_names
            self.dims.add_brands(more)

    def _totals(self) -> Totals:
        """The state's arrays the additive fold adds into (re-read each batch: a snapshot
        restore or :meth:`add_brands` replaces them)."""
        st = self.state
        return Totals(st.brand_gmv, st.brand_orders, st.mix_gmv, st.mix_orders, st.second_orders,
                      st.second_gmv, self.start_us)

    def _running(self, n: int) -> np.ndarray:
        """A reused int64 buffer of n + 1 for the batch's running sum, starting at 0."""
        if len(self._scratch) < n + 1:
            self._scratch = np.zeros(n + 1, dtype=np.int64)
        return self._scratch[: n + 1]

    def _compile(self, rule: TimeToValue) -> CompiledRule:
        kind, _, name = rule.subject.partition(":")
        names = {"brand": self.brand_names,
                 "platform": [p for p, _ in self.scenario.platforms],
                 "region": [r for r, _ in self.scenario.regions]}
        index = list(names[kind]).index(name) if kind in names else -1
        deadline = _NEVER if rule.within_s is None else rule.start_us + round(rule.within_s * US_PER_S)
        return CompiledRule(None if kind == "all" else kind, index, rule.start_us, deadline,
                     rule.value_minor, rule.subject, name or self.scenario.title, rule.label)

    # --- the fold ------------------------------------------------------------------------------

    def apply(self, batch: OrderBatch) -> list[Milestone]:
        """Fold one batch; returns the milestones it crossed, in canonical order.

        Raises :class:`BatchRejected` (and changes nothing) when the batch breaks the rules.
        """
        n = len(batch)
        if n == 0:
            return []
        refunds = self._validate(batch)
        st = self.state
        times = batch.event_time
        gmv_before = st.gmv_minor
        folded = add_batch(self._totals(), batch, refunds, self._running(n))
        first, last, running = folded.first, folded.last, folded.running
        batch_gmv = int(running[-1])
        refunded = -int(batch.amount_minor[refunds].sum())
        st.gmv_minor += batch_gmv
        st.orders += n - len(refunds)
        st.refunds += len(refunds)
        st.next_seq = batch.end_seq
        st.last_time_us = int(times[-1])

        # the per-brand dimension races' candidates join the brand races' in one gather
        self._gathered = None
        also = self.dims.brand_candidates(batch, refunds) if self.dims is not None else None
        found = self._threshold_crossings(batch, refunds, gmv_before, batch_gmv + refunded,
                                          running[1:], also)
        for r, rule in enumerate(self.rules):
            if not st.rule_done[r] and times[-1] >= rule.start_us:
                found += self._time_to_value(batch, r, rule)
        found += self._rate_records(batch, first, last)
        if self.dims is not None:
            found += self.dims.apply(batch, refunds,
                                     self._gathered_rows)
        found.sort(key=milestone_sort_key)
        self._record(found)
        return found

    def _threshold_crossings(self, batch: OrderBatch, refunds: np.ndarray, gmv_before: int,
                             placed_gmv: int, batch_running: np.ndarray,
                             also: np.ndarray | None = None) -> list[Milestone]:
        """Festival GMV thresholds and brand races crossed by ``batch``, whose amounts are
        already in the totals (``batch_running``: their running sum; ``placed_gmv``: the sum of
        its positive amounts)."""
        st = self.state
        brand, amount = batch.brand, batch.amount_minor
        found: list[Milestone] = []
        self._gathered = None  # nothing of an earlier batch's gather is used
        if self.gmv_every and gmv_before + placed_gmv >= (st.gmv_level + 1) * self.gmv_every:
            found += self._gmv_crossings(batch, gmv_before, batch_running)
        candidates = np.zeros(0, np.intp)
        if len(self.thresholds):
            candidates = np.flatnonzero(st.brand_gmv >= self._next_threshold)
            if len(refunds):  # a brand may have crossed, then fallen back below by the batch's end
                rb = brand[refunds]
                np.subtract.at(self._lost, rb, amount[refunds])  # O(refunds), no sort
                dipped = rb[st.brand_gmv[rb] + self._lost[rb] >= self._next_threshold[rb]]
                self._lost[rb] = 0
                candidates = np.union1d(candidates, dipped)
        union = candidates if also is None or not len(also) else np.union1d(candidates, also)
        if len(union):
            self._gathered = (union, *self._brand_rows(batch, union))
        if len(candidates):
            found += self._brand_crossings(batch, candidates)
        return found

    def _brand_rows(self, batch: OrderBatch, candidates: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``batch`` whose brand is one of ``candidates`` (sorted), ascending, and
        each row's place among the candidates: one gather over the brand column."""
        brand = batch.brand
        if len(candidates) < 1 << 15:
            # Number the candidates 1..k in a 16-bit table: one gather finds their events
            self._code[candidates] = np.arange(1, len(candidates) + 1, dtype=np.int16)
            codes = np.take(self._code, brand)
            self._code[candidates] = 0
            rows = np.flatnonzero(codes != 0)  # flatnonzero is 7x faster on bool
            number = codes[rows].astype(np.intp)
            number -= 1
            return rows, number
        self._flag[candidates] = True
        rows = np.flatnonzero(np.take(self._flag, brand))
        self._flag[candidates] = False
        return rows, np.searchsorted(candidates, brand[rows])

    def _gathered_rows(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_brand_rows` for a subset of the brands gathered for the batch being folded,
        from that gather. Every caller asks for brands the gather covers (the brand races'
        candidates, :meth:`DimensionFold.brand_candidates`), so it has always been made."""
        assert self._gathered is not None
        union, rows, number = self._gathered
        if len(candidates) == len(union):
            return rows, number
        place = np.full(len(union), -1, np.intp)
        place[np.searchsorted(union, candidates)] = np.arange(len(candidates))
        mine = place[number]
        keep = np.flatnonzero(mine >= 0)
        return rows[keep], mine[keep]

    def _record(self, found: list[Milestone]) -> None:
        """Keep the state's list in canonical order whatever the batch cuts (a rate record can
        be announced a batch after orders with higher seqs)."""
        stored = self.state.milestones
        late = stored and found and milestone_sort_key(found[0]) < milestone_sort_key(stored[-1])
        stored.extend(found)
        if late:
            stored.sort(key=milestone_sort_key)

    def finish(self) -> list[Milestone]:
        """Close the stream: the last second is complete, so it may be a rate record."""
        st = self.state
        found: list[Milestone] = []
        if st.open_second >= 0:
            found = self.rate_records_in([st.open_second], [st.open_second_last_seq])
            st.open_second = -1
        self._record(found)
        return found

    def validate(self, batch: OrderBatch) -> None:
        """Raise :class:`BatchRejected` naming the first offending seq; O(events)."""
        if len(batch):
            self._validate(batch)

    def _validate(self, batch: OrderBatch) -> np.ndarray:
        """:meth:`validate`, returning the rows of the batch's refunds (the fold needs them).

        Each check is one cheap pass (a max over an unsigned view also catches negative ids);
        only when one fails is the batch searched for the first offending row.
        """
        st = self.state
        seq, times = batch.seq, batch.event_time
        if batch.first_seq != st.next_seq:
            what = "repeats" if batch.first_seq < st.next_seq else "skips to"
            raise BatchRejected(f"seq {batch.first_seq}: batch {what} seq {batch.first_seq}, "
                                f"expected seq {st.next_seq} next")
        # The generator and the log build seq with arange; a batch whose ends disagree with its
        # length has a gap or a repeat inside.
        if int(seq[-1]) - int(seq[0]) != len(seq) - 1:
            i = int(np.argmax(np.diff(seq) != 1))
            raise BatchRejected(f"seq {seq[i + 1]}: expected seq {seq[i] + 1} "
                                "(sequence numbers must be contiguous)")
        backwards = np.less(times[1:], times[:-1], out=self._bools(len(times) - 1))
        if times[0] < st.last_time_us or backwards.any():
            i = 0 if times[0] < st.last_time_us else int(np.argmax(backwards)) + 1
            raise BatchRejected(f"seq {seq[i]}: event time goes backwards "
                                "(expected events in time order)")
        inside = sum(int(np.searchsorted(times, end) - np.searchsorted(times, start))
                     for start, end in self.windows)
        if inside != len(times):
            ok = np.zeros(len(times), bool)
            for start, end in self.windows:
                ok |= (times >= start) & (times < end)
            i = int(np.argmin(ok))
            raise BatchRejected(f"seq {seq[i]}: event time {times[i]} µs is outside every sales "
                                f"window of {self.scenario.name}")
        self._check_range(batch, "brand", len(self.brand_names), "brand id", "the catalogue")
        self._check_range(batch, "platform", len(self.scenario.platforms), "platform", "platforms")
        self._check_range(batch, "region", len(self.scenario.regions), "region", "regions")
        self._check_range(batch, "kind", 2, "kind", "kinds (0 placed, 1 refunded)")
        amount = batch.amount_minor
        refunds = refund_rows(batch)  # kind is 0 or 1: checked above
        # Every refund negative and exactly the other rows positive: one compare and a count.
        positive = np.count_nonzero(np.greater(amount, 0, out=self._bools(len(amount))))
        if positive != len(amount) - len(refunds) or (len(refunds) and amount[refunds].max() >= 0):
            # a placed order of 0 or less, a refund of 0 or more (a zero refund included)
            wrong = np.where(batch.kind == 0, amount <= 0, amount >= 0)
            i = int(np.argmax(wrong))
            what = "a placed order needs a positive amount" if batch.kind[i] == 0 else \
                "a refund needs a negative amount"
            raise BatchRejected(f"seq {seq[i]}: amount_minor {amount[i]}: {what}")
        return refunds

    def _bools(self, n: int) -> np.ndarray:
        """A reused bool buffer of n for the checks' comparisons (no fresh pages per batch)."""
        if len(self._bool_scratch) < n:
            self._bool_scratch = np.empty(n, dtype=bool)
        return self._bool_scratch[:n]

    def _check_range(self, batch: OrderBatch, column: str, size: int, what: str, where: str) -> None:
        values = getattr(batch, column)
        # The same bits read as unsigned: a negative id becomes huge, so one max checks both ends.
        if values.view(values.dtype.str.replace("i", "u")).max() >= size:
            i = int(np.argmax((values < 0) | (values >= size)))
            raise BatchRejected(f"seq {batch.seq[i]}: {what} {values[i]} is not in {where} "
                                f"(expected 0..{size - 1})")

    # --- milestone rules -----------------------------------------------------------------------

    def _gmv_crossings(self, batch: OrderBatch, before: int, batch_running: np.ndarray
                       ) -> list[Milestone]:
        st = self.state
        found: list[Milestone] = []
        # every level up to the one the batch's highest running GMV reaches is crossed in it
        # (a bounded loop: a GMV step of 0, never called for, would divide by zero, not spin)
        top = (before + int(batch_running.max())) // self.gmv_every
        for level in range(st.gmv_level + 1, top + 1):
            threshold = level * self.gmv_every
            # a one-byte compare into a reused buffer; argmax stops at the first True
            reached = np.greater_equal(batch_running, threshold - before,
                                       out=self._bools(len(batch_running)))
            i = int(np.argmax(reached))
            st.gmv_level = level
            found.append(gmv_milestone(self.run, threshold, before + int(batch_running[i]),
                                       int(batch.seq[i]), int(batch.event_time[i]), self.currency))
        return found

    def _brand_crossings(self, batch: OrderBatch, candidates: np.ndarray) -> list[Milestone]:
        """Search only the candidate brands' events to find each crossing order."""
        st = self.state
        rows, number = self._gathered_rows(candidates)
        crossings, level_after = crossings_in_blocks(
            len(batch), rows, number, batch.amount_minor[rows], candidates, st.brand_gmv,
            st.brand_level, self.thresholds)
        self._next_threshold[candidates] = self._threshold_or_never[level_after]
        found: list[Milestone] = []
        for row, level, b, value in crossings:
            st.race_count[level] += 1
            rank = int(st.race_count[level])
            found.append(brand_milestone(self.run, self.brand_names[b], int(self.thresholds[level]),
                                         value, int(batch.seq[row]), int(batch.event_time[row]),
                                         rank, self.currency))
        return found

    def _time_to_value(self, batch: OrderBatch, r: int, rule: CompiledRule) -> list[Milestone]:
        st = self.state
        times = batch.event_time
        lo = int(np.searchsorted(times, rule.start_us))
        hi = int(np.searchsorted(times, rule.deadline_us))
        found: list[Milestone] = []
        if hi > lo:
            amounts = batch.amount_minor[lo:hi]
            rows = np.arange(lo, hi)
            if rule.column is not None:
                mine = getattr(batch, rule.column)[lo:hi] == rule.index
                amounts, rows = amounts[mine], rows[mine]
            if len(amounts):
                totals = int(st.rule_value[r]) + np.cumsum(amounts)
                st.rule_value[r] = totals[-1]
                if totals.max() >= rule.value_minor:
                    j = int(np.argmax(totals >= rule.value_minor))
                    st.rule_value[r] = totals[j]  # a reached rule stops counting
                    row = int(rows[j])
                    found.append(time_to_value_milestone(
                        self.run, rule.subject, rule.name, rule.label, rule.value_minor,
                        int(totals[j]), int(batch.seq[row]), int(times[row]),
                        int(times[row]) - rule.start_us, self.currency))
                    st.rule_done[r] = True
        if times[-1] >= rule.deadline_us:
            st.rule_done[r] = True
        return found

    def _rate_records(self, batch: OrderBatch, first: int, last: int) -> list[Milestone]:
        """Seconds this batch completes (any left open before it, and all but its last) that
        beat the record by ``min_gain``.

        A new record is always a strict running maximum of the completed seconds (whatever was
        below the bar before it is below it now), so one ``maximum.accumulate`` and a binary
        search per record find them all, however many seconds the batch completes.
        """
        st = self.state
        since = first if st.open_second < 0 else st.open_second
        completed = st.second_orders[since:last]
        found: list[Milestone] = []
        if len(completed):
            peaks = np.maximum.accumulate(completed)
            while True:
                # count > record × (1 + gain) is count > floor(record × (1 + gain)) for integers
                i = int(np.searchsorted(peaks, math.floor(st.rate_record * (1 + self.min_gain)),
                                        side="right"))
                if i == len(peaks):
                    break
                second = since + i
                if second < first:
                    seq = st.open_second_last_seq
                else:
                    end = np.searchsorted(batch.event_time, self.start_us + (second + 1) * US_PER_S)
                    seq = int(batch.seq[int(end) - 1])  # the second's last event
                found += self.rate_records_in([second], [seq])
        st.open_second = last
        st.open_second_last_seq = int(batch.seq[-1])
        return found

    def rate_records_in(self, seconds: list[int], last_seqs: list[int]) -> list[Milestone]:
        """The rate-record rule over whole (closed) seconds, in order: a new record, and its
        milestone named by the second's last event (``last_seqs``), for each second whose
        placed orders beat the standing record by more than ``min_gain``. The fold calls it as
        seconds close; the cluster's assembly, over the merged per-second series."""
        st = self.state
        found: list[Milestone] = []
        for second, seq in zip(seconds, last_seqs, strict=True):
            count = int(st.second_orders[second])
            if count <= st.rate_record * (1 + self.min_gain):
                continue
            previous, st.rate_record = st.rate_record, count
            found.append(rate_record_milestone(self.run, previous, count, int(seq),
                                               self.start_us + int(second) * US_PER_S, self.zone))
        return found

    # --- views -----------------------------------------------------------------------------------

    @property
    def gmv(self) -> int:
        """Festival GMV so far, minor units (refunds deducted)."""
        return self.state.gmv_minor

    @property
    def orders(self) -> int:
        """Orders placed so far (refunds are not orders)."""
        return self.state.orders

    @property
    def milestones(self) -> tuple[Milestone, ...]:
        """Every milestone so far, in canonical order."""
        return tuple(self.state.milestones)

    def leaderboard(self, size: int | None = None) -> list[BrandGMV]:
        """The top ``size`` brands by GMV (default: the scenario's leaderboard size), largest
        first, ties in catalogue order; O(brands) with a small partial sort."""
        size = size or self.scenario.milestones.leaderboard_size
        gmv = self.state.brand_gmv
        size = min(size, len(gmv))
        if size == 0:
            return []
        cut = np.partition(gmv, len(gmv) - size)[len(gmv) - size]  # the size-th largest GMV
        # a tie at the cut goes to the brands first in the catalogue (argpartition's pick is arbitrary)
        above = np.flatnonzero(gmv > cut)
        top = np.concatenate([above, np.flatnonzero(gmv == cut)[: size - len(above)]])
        top = top[np.lexsort((top, -gmv[top]))]
        return [BrandGMV(self.brand_names[b], int(gmv[b])) for b in top]

    def peak(self) -> Peak:
        """The busiest event-time second so far: its order count and its start (UTC µs)."""
        second = int(np.argmax(self.state.second_orders))
        return Peak(int(self.state.second_orders[second]), self.start_us + second * US_PER_S)

    def snapshot(self) -> Snapshot:
        """Everything the views show, at once, as one immutable value."""
        st = self.state
        # before the first event last_time_us is int64's minimum (the order check's "nothing yet")
        return Snapshot(run=self.run, events=st.next_seq,
                        event_time_us=st.last_time_us if st.next_seq else 0,
                        gmv_minor=st.gmv_minor, orders=st.orders, refunds=st.refunds,
                        peak=self.peak(), leaderboard=tuple(self.leaderboard()),
                        brands_over=self.brands_over(), milestones=self.milestones)

    def dimension_totals(self, name: str) -> list[DimensionTotal]:
        """Each value of the scenario's dimension ``name`` (its ``rest`` first) with its GMV and
        orders so far; ``KeyError`` for a dimension the scenario does not declare."""
        if self.dims is None:
            raise KeyError(name)
        return self.dims.totals(name)

    def brands_over(self) -> dict[int, int]:
        """Brands that have passed each brand threshold (a pass is never taken back)."""
        return {int(t): int(c) for t, c in zip(self.thresholds, self.state.race_count, strict=True)}


class TrustedAggregator(Aggregator):
    """An aggregator that skips the batch checks: for batches an outer fold has checked (the
    event-time fold's inner folds), or rows the generator made (the cluster's pass 2, whose
    rows have seq gaps by design)."""

    def _validate(self, batch: OrderBatch) -> np.ndarray:
        return refund_rows(batch)
