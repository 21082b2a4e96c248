"""The fold of a scenario's ``[[dimensions]]``: running totals per value, and races on them.

The aggregator hands every batch it has folded to :class:`DimensionFold` (only when the scenario
declares dimensions: a scenario without keeps its fold and its bytes exactly).

* **Totals.** A per-order dimension (livestream channels) gets each event's seller code from its
  order id (:meth:`~ticker.scenario.dimensions.DimensionTable.order_codes`), then one
  ``np.add.at`` of the amounts and one ``bincount`` of the orders over the small code column. A
  per-brand dimension (a segment) needs no per-event work at all: its totals are the brands'
  totals summed by value, exactly, whenever they are asked for (O(brands)).
* **Races.** Per-order: each seller passing each of the dimension's thresholds, ranked ("the 30th
  livestream channel to pass RMB 100 million"; kind ``{dimension}_gmv``, subject the seller).
  Per-brand: each brand of a value passing the thresholds, ranked within the value ("the 235th
  Tmall Global brand to pass RMB 10 million"; kind ``{value}_brand_gmv``, subject the brand).
  Both find the crossing order as the brand races do: an upper bound (the total after the batch
  plus what the batch's refunds took away) names the candidates, and only their events are
  searched block by block (:func:`first_crossings`). A pass is never taken back.

State lives in the :class:`~ticker.aggregate.state.AggregateState` (``dim_*`` arrays), so
snapshots, resume and ``verify`` carry it like everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ticker.aggregate.milestones import Milestone, milestone_id, ordinal
from ticker.aggregate.state import AggregateState
from ticker.events import OrderBatch
from ticker.money import Currency, money_label
from ticker.scenario.dimensions import DimensionTable, tables
from ticker.scenario.model import Scenario

_NEVER = np.iinfo(np.int64).max
#: the rows of a batch that belong to given (sorted) brands, and each row's place among them
BrandRows = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class DimensionTotal:
    """One value's running totals: net GMV (minor units) and placed orders."""

    value: str
    gmv_minor: int
    orders: int


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where one dimension's part of the ``dim_*`` arrays sits."""

    table: DimensionTable
    kind: str  # per order: the milestone kind; per brand: unused (one kind per value)
    offset: int  # into dim_gmv / dim_orders (per order)
    level: int  # into dim_level
    race: int  # into dim_race
    size: int  # sellers incl. rest (per order) or brands (per brand)
    thresholds: np.ndarray


def milestone_kind(table: DimensionTable, code: int = 0) -> str:
    """``channel_gmv`` for a per-order dimension, ``tmall_global_brand_gmv`` for a value."""
    if table.per_order:
        return f"{table.dimension.name}_gmv"
    return f"{table.names[code]}_brand_gmv"


class DimensionFold:
    """Totals and races of every declared dimension, kept in ``state``'s ``dim_*`` arrays."""

    def __init__(self, scenario: Scenario, state: AggregateState, brand_names: Sequence[str],
                 run: str, currency: Currency):
        self.run, self.currency, self.brand_names = run, currency, brand_names
        self.layouts: list[_Layout] = []
        offset = level = race = 0
        for table in tables(scenario):
            d = table.dimension
            thresholds = np.array(d.thresholds_minor, np.int64)
            if table.per_order:
                size = len(table.names)
                self.layouts.append(_Layout(table, milestone_kind(table), offset, level, race,
                                            size, thresholds))
                offset += size
                race += len(thresholds)
            else:
                size = len(brand_names)
                self.layouts.append(_Layout(table, "", 0, level, race, size, thresholds))
                race += len(d.values) * len(thresholds)
            level += size
        self.state = state
        if state.dim_gmv is None:
            state.dim_gmv = np.zeros(offset, np.int64)
            state.dim_orders = np.zeros(offset, np.int64)
            state.dim_level = np.zeros(level, np.int8)
            state.dim_race = np.zeros(race, np.int64)
        # per brand: each brand's value code, padded with rest for brands an ingested stream added
        self._value = [self._brand_codes(lay) for lay in self.layouts]
        self._kinds: dict[str, tuple[int, int]] | None = None  # for counted(): built when asked
        self._brand_index: dict[str, int] | None = None
        self.levels_changed()
        self._lost = np.zeros(max((lay.size for lay in self.layouts), default=0), np.int64)

    def levels_changed(self, layout: int | None = None, entities: np.ndarray | None = None
                       ) -> None:
        """Re-derive what the fold keeps from ``dim_level`` after a caller wrote it directly:
        every layout's, or only ``entities`` (codes, or brands) of layout ``layout`` (the
        cluster's pass 2 watches one or two entities at a time)."""
        if layout is None or entities is None:
            self._next = [self._next_thresholds(lay, value, np.arange(lay.size))
                          for lay, value in zip(self.layouts, self._value, strict=True)]
            return
        lay = self.layouts[layout]
        self._next[layout][entities] = self._next_thresholds(lay, self._value[layout], entities)

    def _next_thresholds(self, lay: _Layout, value: np.ndarray, entities: np.ndarray
                         ) -> np.ndarray:
        """The next threshold of each of ``entities`` (never for ``rest``), kept so that a
        batch's candidate test is one compare; derived from ``dim_level``."""
        assert self.state.dim_level is not None
        level = self.state.dim_level[lay.level + entities]
        next_threshold: np.ndarray = np.append(lay.thresholds, _NEVER)[level]
        if lay.table.per_order:
            next_threshold[entities == 0] = _NEVER  # rest is no seller
        else:
            next_threshold[value[entities] == 0] = _NEVER  # rest brands race in the brand races only
        return next_threshold

    def _brand_codes(self, lay: _Layout) -> np.ndarray:
        codes = lay.table.brand_value
        if lay.table.per_order or len(codes) >= len(self.brand_names):
            return codes[:len(self.brand_names)]
        return np.concatenate([codes, np.zeros(len(self.brand_names) - len(codes), np.int32)])

    # --- the fold --------------------------------------------------------------------------

    def apply(self, batch: OrderBatch, refunds: np.ndarray,
              brand_rows: BrandRows | None = None) -> list[Milestone]:
        """Fold a batch the aggregator has validated and folded (``refunds``: its refund rows).

        ``brand_rows`` (optional) finds the rows of given brands in the batch, for the per-brand
        races: the aggregator passes the one gather it made for its own brand races and for
        :meth:`brand_candidates`, so the brand column is not read again.
        """
        st = self.state
        assert st.dim_gmv is not None and st.dim_orders is not None
        found: list[Milestone] = []
        for lay, value, next_threshold in zip(self.layouts, self._value, self._next, strict=True):
            if lay.table.per_order:
                codes = lay.table.order_codes(batch.order_id)
                gmv = st.dim_gmv[lay.offset:lay.offset + lay.size]
                orders = st.dim_orders[lay.offset:lay.offset + lay.size]
                np.add.at(gmv, codes, batch.amount_minor)
                orders += np.bincount(codes, minlength=lay.size)
                if len(refunds):
                    np.subtract.at(orders, codes[refunds], 1)
                if len(lay.thresholds):
                    found += self._races(lay, batch, refunds, codes, gmv, None, next_threshold)
            elif len(lay.thresholds):
                found += self._races(lay, batch, refunds, batch.brand, st.brand_gmv, value,
                                     next_threshold, brand_rows)
        return found

    def brand_candidates(self, batch: OrderBatch, refunds: np.ndarray) -> np.ndarray:
        """Every brand that may cross a per-brand race's threshold in ``batch`` (its totals
        already folded), sorted: what the aggregator's one gather must cover."""
        st = self.state
        parts = [self._candidates(batch, refunds, batch.brand, st.brand_gmv, next_threshold)
                 for lay, next_threshold in zip(self.layouts, self._next, strict=True)
                 if not lay.table.per_order and len(lay.thresholds)]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.intp)

    def _candidates(self, batch: OrderBatch, refunds: np.ndarray, codes: np.ndarray,
                    totals: np.ndarray, next_threshold: np.ndarray) -> np.ndarray:
        """Entities whose total after the batch, plus what its refunds took away, reaches their
        next threshold: the only ones that can have crossed it in the batch."""
        candidates = np.flatnonzero(totals >= next_threshold)
        if len(refunds):  # an entity may have crossed, then fallen back by the batch's end
            rc, lost = codes[refunds], self._lost[:len(totals)]  # lost: zero between batches
            np.subtract.at(lost, rc, batch.amount_minor[refunds])  # O(refunds), no sort
            dipped = rc[totals[rc] + lost[rc] >= next_threshold[rc]]
            lost[rc] = 0
            candidates = np.union1d(candidates, dipped)
        return candidates

    def _races(self, lay: _Layout, batch: OrderBatch, refunds: np.ndarray, codes: np.ndarray,
               totals: np.ndarray, value: np.ndarray | None, next_threshold: np.ndarray,
               brand_rows: BrandRows | None = None) -> list[Milestone]:
        st = self.state
        assert st.dim_level is not None and st.dim_race is not None
        level = st.dim_level[lay.level:lay.level + lay.size]
        candidates = self._candidates(batch, refunds, codes, totals, next_threshold)
        if not len(candidates):
            return []
        found: list[Milestone] = []
        if brand_rows is None:
            crossings = first_crossings(codes, batch.amount_minor, candidates, totals, level,
                                        lay.thresholds)
        else:
            rows, number = brand_rows(candidates)
            crossings, _ = crossings_in_blocks(len(batch), rows, number, batch.amount_minor[rows],
                                               candidates, totals, level, lay.thresholds)
        next_threshold[candidates] = np.append(lay.thresholds, _NEVER)[level[candidates]]
        for row, step, entity, total in crossings:
            threshold = int(lay.thresholds[step])
            if value is None:
                race = lay.race + step
                kind, subject = lay.kind, lay.table.names[entity]
                noun = lay.table.dimension.label
            else:
                code = int(value[entity])
                race = lay.race + (code - 1) * len(lay.thresholds) + step
                kind, subject = milestone_kind(lay.table, code), self.brand_names[entity]
                noun = lay.table.dimension.values[code - 1].label
            st.dim_race[race] += 1
            found.append(dimension_milestone(self.run, kind, subject, threshold, total,
                                             int(batch.seq[row]), int(batch.event_time[row]),
                                             int(st.dim_race[race]), noun, self.currency))
        return found

    def counted(self, m: Milestone) -> Milestone | None:
        """Count a milestone of these races that another fold found (the cluster's pass 2 folds
        each range on its own, so its ranks mean nothing), in seq order, as if this fold had
        found it: the entity's level and the race's count advance, and it comes back ranked.
        None for a milestone of no dimension's race (this fold is left as it was)."""
        if self._kinds is None:
            self._kinds = {}
            for i, lay in enumerate(self.layouts):
                if lay.table.per_order:
                    self._kinds[lay.kind] = (i, 0)
                else:
                    for code in range(1, len(lay.table.names)):
                        self._kinds[milestone_kind(lay.table, code)] = (i, code)
        where = self._kinds.get(m.kind)
        if where is None:
            return None
        i, code = where
        lay = self.layouts[i]
        step = int(np.searchsorted(lay.thresholds, m.threshold_minor))
        if lay.table.per_order:
            entity = lay.table.names.index(m.subject)
            race, noun = lay.race + step, lay.table.dimension.label
        else:
            if self._brand_index is None:
                self._brand_index = {name: b for b, name in enumerate(self.brand_names)}
            entity = self._brand_index[m.subject]
            race = lay.race + (code - 1) * len(lay.thresholds) + step
            noun = lay.table.dimension.values[code - 1].label
        st = self.state
        assert st.dim_level is not None and st.dim_race is not None
        st.dim_level[lay.level + entity] += 1
        level = int(st.dim_level[lay.level + entity])
        self._next[i][entity] = lay.thresholds[level] if level < len(lay.thresholds) else _NEVER
        st.dim_race[race] += 1
        return dimension_milestone(self.run, m.kind, m.subject, m.threshold_minor, m.value_minor,
                                   m.seq, m.event_time_us, int(st.dim_race[race]), noun,
                                   self.currency)

    def add_brands(self, more: int) -> None:
        """An ingested stream added brands: they are ``rest`` of every per-brand dimension."""
        st = self.state
        assert st.dim_level is not None
        parts, at = [], 0
        for i, lay in enumerate(self.layouts):
            parts.append(st.dim_level[at:at + lay.size])
            at += lay.size
            if not lay.table.per_order:
                parts.append(np.zeros(more, np.int8))
                self.layouts[i] = _Layout(lay.table, lay.kind, lay.offset, lay.level, lay.race,
                                          lay.size + more, lay.thresholds)
        st.dim_level = np.concatenate(parts) if parts else st.dim_level
        level = 0
        for i, lay in enumerate(self.layouts):
            self.layouts[i] = _Layout(lay.table, lay.kind, lay.offset, level, lay.race, lay.size,
                                      lay.thresholds)
            level += lay.size
        self._value = [self._brand_codes(lay) for lay in self.layouts]
        self._brand_index = None
        self.levels_changed()
        self._lost = np.zeros(max((lay.size for lay in self.layouts), default=0), np.int64)

    # --- views ---------------------------------------------------------------------------------

    def totals(self, name: str) -> list[DimensionTotal]:
        """Every value of dimension ``name`` (``rest`` first) with its GMV and orders so far."""
        st = self.state
        assert st.dim_gmv is not None and st.dim_orders is not None
        for lay, value in zip(self.layouts, self._value, strict=True):
            if lay.table.dimension.name != name:
                continue
            if lay.table.per_order:
                gmv = st.dim_gmv[lay.offset:lay.offset + lay.size]
                orders = st.dim_orders[lay.offset:lay.offset + lay.size]
            else:
                n = len(lay.table.names)
                gmv, orders = np.zeros(n, np.int64), np.zeros(n, np.int64)
                np.add.at(gmv, value, st.brand_gmv)
                np.add.at(orders, value, st.brand_orders)
            return [DimensionTotal(v, int(g), int(o))
                    for v, g, o in zip(lay.table.names, gmv.tolist(), orders.tolist(), strict=True)]
        raise KeyError(name)


def dimension_milestone(run: str, kind: str, subject: str, threshold: int, total: int, seq: int,
                        time_us: int, rank: int, noun: str, currency: Currency) -> Milestone:
    """A seller or a brand of a value passing a dimension's threshold: "Viya is the 30th Taobao
    Live channel to pass RMB 100 million" (``noun`` the dimension's or the value's label)."""
    return Milestone(milestone_id(run, kind, subject, threshold), kind, subject, threshold, total,
                     seq, time_us, rank,
                     f"{subject} is the {ordinal(rank)} {noun} to pass {money_label(threshold, currency)}")


def first_crossings(codes: np.ndarray, amount: np.ndarray, candidates: np.ndarray,
                    totals: np.ndarray, level: np.ndarray, thresholds: np.ndarray
                    ) -> list[tuple[int, int, int, int]]:
    """For each candidate entity, the first row of the batch at which its running total reaches
    each threshold it had not passed: ``(row, threshold index, entity, total at the row)`` in row
    order. ``totals`` are the entities' totals *after* the batch; ``level`` (how many thresholds
    each has passed) is advanced in place. No loop over entities or rows.
    """
    # candidate i is numbered i + 1, others 0: in 16 bits when they fit (a cheaper gather)
    small = np.int16 if len(candidates) < 1 << 15 else np.int32
    number = np.zeros(len(totals), small)
    number[candidates] = np.arange(1, len(candidates) + 1, dtype=small)
    numbers = np.take(number, codes)
    rows = np.flatnonzero(numbers != 0)  # flatnonzero is 7x faster on bool
    found, _ = crossings_in_blocks(len(codes), rows, numbers[rows].astype(np.intp) - 1,
                                   amount[rows], candidates, totals, level, thresholds)
    return found


#: the block search's table has at most this many blocks per candidate
_MAX_BLOCKS = 256


def crossings_in_blocks(n: int, rows: np.ndarray, number: np.ndarray, amount: np.ndarray,
                        entities: np.ndarray, totals: np.ndarray, level: np.ndarray,
                        thresholds: np.ndarray) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """:func:`first_crossings` once the candidates' rows are chosen: ``rows`` (ascending) are
    every row of a batch of ``n`` that belongs to a candidate, ``number`` each row's candidate
    (0..k-1, indexing ``entities``) and ``amount`` its amount. Returns the crossings in row
    order and each candidate's level after the batch (``level`` is advanced in place too).

    Re-summing every candidate row in entity order would sort them all (at a small scale most
    of a batch belongs to brands that pass a threshold in it). Instead the batch is cut into
    blocks of rows, and one scatter sums each candidate's amounts per block: the running total
    before each block, and an upper bound of every running total inside it (that plus the
    block's positive amounts), follow by a cumulative sum per candidate. The first row reaching
    a threshold lies in a block that starts below it and whose bound reaches it (a block that
    starts at or over it follows an earlier crossing); only those blocks' rows are sorted and
    re-summed, exactly, from their block's start.
    """
    k = len(entities)
    lvl = level[entities].astype(np.intp)
    if not len(rows):
        return [], lvl
    wanted = max(1, min(_MAX_BLOCKS, len(rows) // (8 * k)))  # the table stays ~1/8 of the rows
    shift = max(0, (n - 1).bit_length() - (wanted.bit_length() - 1))
    blocks = ((n - 1) >> shift) + 1
    key = rows >> shift
    key += number * blocks  # candidate-major: a candidate's blocks are contiguous, in row order
    net: np.ndarray = np.zeros(k * blocks, np.int64)  # flat for the scatter, then (k, blocks)
    np.add.at(net, key, amount)
    refunds = np.flatnonzero(amount < 0)
    upper = net.copy()  # a block's positive amounts: its net minus its refunds
    if len(refunds):
        np.subtract.at(upper, key[refunds], amount[refunds])
    net = net.reshape(k, blocks)
    ends = np.cumsum(net, axis=1)
    # each candidate's total before the batch, from its total after it
    ends += (totals[entities] - ends[:, -1])[:, None]
    starts = ends - net
    upper = upper.reshape(k, blocks) + starts
    scan = np.zeros((k, blocks), bool)
    steps = thresholds.tolist()
    for step, threshold in enumerate(steps):
        scan |= (starts < threshold) & (upper >= threshold) & (lvl <= step)[:, None]
    picked = np.flatnonzero(scan.reshape(-1)[key])
    picked = picked[np.argsort(key[picked], kind="stable")]  # by candidate, block, row
    group = key[picked]
    running = np.cumsum(amount[picked])
    first = np.flatnonzero(np.diff(group, prepend=-1) != 0)
    # each picked row's exact total: its block's start plus the block's rows up to it
    offset = starts.reshape(-1)[group[first]] - np.where(first > 0, running[first - 1], 0)
    running += np.repeat(offset, np.diff(first, append=len(picked)))
    who = group // blocks
    reached = np.zeros(k, np.intp)
    out: list[tuple[int, int, int, int]] = []
    for step, threshold in enumerate(steps):
        # each candidate's first picked row at or over the threshold, if it had not passed it
        hits = np.flatnonzero((running >= threshold) & (lvl[who] <= step))
        if not len(hits):
            continue
        firsts = hits[np.flatnonzero(np.diff(who[hits], prepend=-1) != 0)]
        reached[who[firsts]] = step + 1
        out += [(int(rows[picked[j]]), step, int(entities[who[j]]), int(running[j])) for j in firsts]
    # a threshold is passed once: the level never goes back (thresholds increase)
    level_after = np.maximum(lvl, reached)
    level[entities] = level_after
    out.sort()  # race order follows seq (one order has one entity)
    return out, level_after
