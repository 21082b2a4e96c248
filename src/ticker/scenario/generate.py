"""The deterministic, chunked order generator: ``(scenario, seed, scale) -> Iterator[OrderBatch]``.

How the stream is made, and why it is the same bytes however it is cut or parallelised:

* **Counts per second are fixed up front.** Each second's expected orders (the rate curve, times
  the scale) are rounded with a carried remainder, so every second's count, the festival's total
  and the published peak are exact at every scale. Inside a second, arrival times are uniform
  order statistics, i.e. a Poisson process conditioned on its per-second count. A free Poisson
  count would overshoot the published peak by the largest of thousands of fluctuations.
* **Chunks are fixed by the scenario, not by the caller.** Seconds are grouped into chunks of
  about :data:`CHUNK_EVENTS` orders; chunk ``c`` draws its times from its own
  ``SeedSequence(seed, spawn_key=(c,))`` and knows its first sequence number from a prefix sum.
  Any worker can make any chunk alone; batches are cut from the concatenation afterwards.
* **Brand, amount, platform and region are stratified.** Order ``p`` (the ``p``-th placed order of
  the festival) takes a number ``u`` from the Weyl sequence ``x0 + p·α mod 2^64`` with irrational
  ``α`` (a randomly shifted Kronecker sequence: randomised quasi-Monte Carlo). ``u`` picks the
  brand by inverse CDF (each brand one interval), and ``u``'s position inside that interval
  picks the amount's quantile, so each brand's orders are spread evenly over the order-value
  law too. Platform and region come from two more Weyl sequences. Brand counts and GMV then
  match their targets within about one order at any scale: a replay at scale 0.001 still
  shows exactly two brands over RMB 10 billion, not two on average.
* **Refunds are compensating events** for orders of the same chunk: a systematic sample of
  ``refund_rate`` of its orders, each refunded after an exponential delay, clipped to the chunk
  and to its sales window so no refund leaves the festival. A chunk is ~65,000 orders, which at
  full scale and peak rate is well under a second: there refunds follow almost at once, so a
  ``refund_delay_s`` longer than a chunk's span is honoured only at small scales.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ticker.events import COLUMNS, OrderBatch, OrderKind
from ticker.scenario.brands import BrandCatalogue, order_law
from ticker.scenario.brands import catalogue as catalogue_of
from ticker.scenario.curves import window_rates
from ticker.scenario.model import Scenario, ScenarioError
from ticker.validate import SCALE

CHUNK_EVENTS = 1 << 16
DEFAULT_BATCH_EVENTS = 1 << 20
#: The fewest orders a replay may have: below it a scale reduces a festival to a handful of
#: orders whose figures mean nothing (``--scale 1e-6`` made smoke 2 orders).
MIN_ORDERS = 100
_AMOUNT_QUANTILES = 1 << 12  # entries of the order-value table
_AMOUNT_ONE = 1 << 16  # fixed-point 1.0 of the order-value factor
_SHARE_SLOTS = 1 << 10  # resolution of platform and region shares
_US = 1_000_000


def _weyl_increment(prime: int) -> np.uint64:
    """The fractional part of sqrt(prime) as a 64-bit fixed-point odd increment."""
    return np.uint64((math.isqrt(prime << 128) & ((1 << 64) - 1)) | 1)


_BRAND, _PLATFORM, _REGION, _ORDER_ID = range(4)
_GUIDE_BITS = 20  # the brand guide table has 2^20 entries: about 3 brands per entry at most
_CELL_BITS = 16  # the brand cell table: 2^16 int32 = 256 KB, stays in the core's cache
_INCREMENTS = np.array([_weyl_increment(p) for p in (2, 3, 5, 7)], dtype=np.uint64)


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """Everything chunk generation needs, computed once per (scenario, seed, scale)."""

    scenario: Scenario
    seed: int
    scale: float
    catalogue: BrandCatalogue
    second_us: np.ndarray  # start of every second of every window
    window_end_us: np.ndarray  # end of the window each second belongs to
    base_counts: np.ndarray  # orders per second on the curve
    burst_counts: np.ndarray  # (bursts, seconds) flash-sale orders per second
    burst_brand: np.ndarray
    burst_gmv: np.ndarray  # minor units, split exactly over the burst's orders
    chunk_sec: np.ndarray  # chunk c covers seconds [chunk_sec[c], chunk_sec[c+1])
    chunk_placed: np.ndarray  # placed orders before chunk c
    chunk_refunds: np.ndarray
    chunk_seq: np.ndarray  # first seq of chunk c (and the total at the end)
    brand_start: np.ndarray  # brand b owns u in [brand_start[b], brand_start[b+1])
    brand_guide: np.ndarray  # first brand whose interval reaches k / 2^_GUIDE_BITS (int32)
    brand_cell: np.ndarray  # the brand owning all of [k, k+1) / 2^_CELL_BITS, else -1 (int32)
    order_value: np.ndarray  # average amount per brand at this scale, minor units, int64
    brand_record: np.ndarray  # (brands, 4) f8: interval start, end, order_value's i8 bits, pad
    amount_table: np.ndarray  # order-value factor quantiles, fixed point, mean exactly 1
    platform_table: np.ndarray
    region_table: np.ndarray
    offsets: np.ndarray  # Weyl start points, from the seed

    @property
    def chunks(self) -> int:
        return len(self.chunk_sec) - 1

    @property
    def total_events(self) -> int:
        return int(self.chunk_seq[-1])

    @property
    def total_orders(self) -> int:
        return int(self.chunk_placed[-1])


def make_plan(scenario: Scenario, seed: int | None = None, scale: float = 1.0) -> Plan:
    """Lay out the festival's seconds, chunks and tables; O(seconds + brands)."""
    if (problem := SCALE.problem(scale)) is not None:
        raise ScenarioError([f"--scale: {problem}"])
    seed = scenario.seed if seed is None else seed
    offset_s = int(scenario.zone.utcoffset(None).total_seconds())
    seconds, ends, rates = [], [], []
    for i, window in enumerate(scenario.windows):
        seconds.append(window.start_us + np.arange(window.seconds, dtype=np.int64) * _US)
        ends.append(np.full(window.seconds, window.end_us, dtype=np.int64))
        rates.append(window_rates(window, offset_s, f"{scenario.path}: windows[{i}].orders: "))
    second_us = np.concatenate(seconds)
    rate = np.concatenate(rates)
    base_counts = _carry_round(rate * scale)
    if int(base_counts.sum()) < MIN_ORDERS:  # a "festival" of 2 orders is not this scenario
        raise ScenarioError([f"--scale: {scenario.name} at scale {scale:g} is "
                             f"{int(base_counts.sum())} orders; expected at least {MIN_ORDERS:,} "
                             f"(scale {MIN_ORDERS / float(rate.sum()):.2g} or more)"])

    catalogue = catalogue_of(scenario)
    n_bursts = len(scenario.bursts)
    burst_counts = np.zeros((n_bursts, len(second_us)), dtype=np.int64)
    burst_brand = np.zeros(n_bursts, dtype=np.int32)
    burst_gmv = np.zeros(n_bursts, dtype=np.int64)
    burst_by_brand = np.zeros(len(catalogue))
    for k, burst in enumerate(scenario.bursts):
        brand = catalogue.index(burst.brand)
        first = int(np.searchsorted(second_us, burst.start_us))
        count = max(1, round(burst.gmv_minor / _named_avg(scenario, burst.brand) * scale))
        burst_counts[k, first:first + burst.seconds] = _carry_round(
            np.full(burst.seconds, count / burst.seconds))
        burst_brand[k] = brand
        burst_gmv[k] = burst.gmv_minor
        burst_by_brand[brand] += burst.gmv_minor

    share, value = order_law(catalogue, scenario.path, float(rate.sum()), scenario.refund_rate,
                             burst_by_brand)
    order_value = np.rint(value / scale).astype(np.int64)
    amount_table = _amount_table(scenario.order_value_sigma)
    if int(order_value.max()) * int(amount_table.max()) >= 2**62:
        raise ScenarioError([f"--scale: expected a larger scale: at {scale} single orders are "
                             "too large for int64 minor units"])
    brand_start, brand_guide, brand_cell = _brand_cdf(share)

    placed = base_counts + burst_counts.sum(axis=0)
    cum = np.cumsum(placed)
    total = int(cum[-1]) if len(cum) else 0
    cuts = np.searchsorted(cum, np.arange(CHUNK_EVENTS, total, CHUNK_EVENTS), side="left") + 1
    chunk_sec = np.unique(np.concatenate([[0], cuts, [len(second_us)]])).astype(np.int64)
    chunk_placed = np.concatenate([[0], cum[chunk_sec[1:] - 1]]).astype(np.int64)
    refunds_before = np.floor(chunk_placed * scenario.refund_rate).astype(np.int64)
    chunk_refunds = np.diff(refunds_before)
    chunk_seq = np.concatenate([[0], np.cumsum(np.diff(chunk_placed) + chunk_refunds)])

    return Plan(
        scenario=scenario, seed=seed, scale=scale, catalogue=catalogue,
        second_us=second_us, window_end_us=np.concatenate(ends), base_counts=base_counts,
        burst_counts=burst_counts, burst_brand=burst_brand, burst_gmv=burst_gmv,
        chunk_sec=chunk_sec, chunk_placed=chunk_placed, chunk_refunds=chunk_refunds,
        chunk_seq=chunk_seq.astype(np.int64), brand_start=brand_start, brand_guide=brand_guide,
        brand_cell=brand_cell,
        order_value=order_value, brand_record=_brand_records(brand_start, order_value),
        amount_table=amount_table,
        platform_table=_share_table([s for _, s in scenario.platforms]),
        region_table=_share_table([s for _, s in scenario.regions]),
        offsets=np.random.SeedSequence(seed).generate_state(4, dtype=np.uint64),
    )


def _named_avg(scenario: Scenario, name: str) -> int:
    for brand in scenario.named_brands:
        if brand.name == name:
            return brand.avg_order_minor
    raise ScenarioError([f"{scenario.path}: bursts: expected a brand with an avg_order (one of "
                         f"brands.named), found {name!r}"])


def _carry_round(expected: np.ndarray) -> np.ndarray:
    """Integers whose running sums stay within 1/2 of the running sums of ``expected``."""
    cum = np.floor(np.cumsum(expected) + 0.5).astype(np.int64)
    return np.diff(cum, prepend=0)


def _amount_table(sigma: float) -> np.ndarray:
    """Midpoint quantiles of a lognormal with mean 1, fixed point, summing exactly to N·1.0."""
    normal = NormalDist()
    z = np.array([normal.inv_cdf((i + 0.5) / _AMOUNT_QUANTILES) for i in range(_AMOUNT_QUANTILES)])
    q = np.exp(sigma * z)
    table: np.ndarray = np.rint(q / q.mean() * _AMOUNT_ONE).astype(np.int64)
    table[-1] += _AMOUNT_ONE * _AMOUNT_QUANTILES - int(table.sum())
    return table


def _share_table(shares: list[float]) -> np.ndarray:
    """A lookup table of :data:`_SHARE_SLOTS` entries holding each index in proportion."""
    slots = _carry_round(np.asarray(shares) * _SHARE_SLOTS)
    return np.repeat(np.arange(len(shares), dtype=np.uint8), slots)


def _brand_cdf(share: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brand intervals on [0, 1), a guide table that finds one in O(1) on average, and the cell
    table: for each of 2^_CELL_BITS equal cells, the brand whose interval holds all of it, or
    -1 where a brand starts inside the cell (a zero-width brand too)."""
    start = np.concatenate([[0.0], np.cumsum(share)])
    start /= start[-1]
    start[-1] = 1.0
    cells = np.arange(1 << _GUIDE_BITS, dtype=np.float64) / (1 << _GUIDE_BITS)
    guide = (np.searchsorted(start, cells, side="right") - 1).astype(np.int32)
    edges = np.arange((1 << _CELL_BITS) + 1, dtype=np.float64) / (1 << _CELL_BITS)
    # the brand of the cell's first point, and the last brand starting before the cell's end
    first = np.searchsorted(start, edges[:-1], side="right") - 1
    last = np.searchsorted(start, edges[1:], side="left") - 1
    cell = np.where(first == last, first, -1).astype(np.int32)
    return start, guide, cell


def _brand_records(start: np.ndarray, order_value: np.ndarray) -> np.ndarray:
    """Everything a draw needs of its brand in one 32-byte row (interval start and end, the
    order value's int64 bits, padding), so one gather (``take(axis=0)`` copies whole rows)
    fetches it from one cache line instead of three gathers from three tables; the draws land
    at random brands, so every gather is a cache miss."""
    table = np.zeros((len(order_value), 4), dtype=np.float64)
    table[:, 0] = start[:-1]
    table[:, 1] = start[1:]
    table[:, 2] = order_value.view(np.float64)
    return table


def _pick_brand(plan: Plan, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brand (inverse CDF), order-value quantile and the brand's average order value of each
    64-bit Weyl draw; O(1) per draw.

    Most draws (53-95 % in the bundled scenarios) fall in a cell of the small cell table that one
    brand owns whole: one lookup in a cache-resident table names it. The rest (the cells the
    long tail's small brands share) go through the guide table, whose entry is the first brand
    that can own the draw, and step over the few brands sharing its cell. Either way one 32-byte
    row of the brand's record then gives its interval and order value; the quantile is the
    draw's relative position inside the interval. The big tables are random lookups (cache
    misses): the cell table spares most draws one of them. The plain reference (a binary
    search) is in tests/scenario/test_generate.py.
    """
    u = (bits >> np.uint64(11)).astype(np.float64)
    u *= 1.0 / (1 << 53)
    brand = plan.brand_cell.take((bits >> np.uint64(64 - _CELL_BITS)).view(np.int64))
    shared = np.flatnonzero(brand < 0)
    if len(shared):
        found = plan.brand_guide.take(
            (bits.take(shared) >> np.uint64(64 - _GUIDE_BITS)).view(np.int64))
        u_shared = u.take(shared)
        end = plan.brand_start[1:]
        ahead = np.flatnonzero(u_shared >= end.take(found))
        while len(ahead):
            found[ahead] += 1
            ahead = ahead[u_shared[ahead] >= end.take(found[ahead])]
        brand[shared] = found
    records = plan.brand_record.take(brand, axis=0)
    lo, hi = records[:, 0], records[:, 1]
    u -= lo
    u *= _AMOUNT_QUANTILES
    span = np.subtract(hi, lo)
    u /= span
    quantile = u.astype(np.int64)
    np.minimum(quantile, _AMOUNT_QUANTILES - 1, out=quantile)
    return brand, quantile, records[:, 2].view(np.int64)


def _weyl(plan: Plan, p: np.ndarray, stream: int) -> np.ndarray:
    x: np.ndarray = p * _INCREMENTS[stream]
    x += plan.offsets[stream]
    return x


def _order_ids(plan: Plan, p: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """splitmix64's finaliser over a Weyl sequence: ids that look random, unique per order
    (computed in ``out``, an int64 array of ``p``'s length, when given)."""
    x: np.ndarray = np.multiply(p, _INCREMENTS[_ORDER_ID],
                                out=None if out is None else out.view(np.uint64))
    x += plan.offsets[_ORDER_ID]
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    x >>= np.uint64(1)
    return x.view(np.int64)


def _lookup(table: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """``table[top 10 bits]`` for a table of :data:`_SHARE_SLOTS` entries."""
    bits >>= np.uint64(64 - 10)
    return table.take(bits.view(np.int64))


def _second_times(rng: np.random.Generator, second_us: np.ndarray, counts: np.ndarray
                  ) -> np.ndarray:
    """Sorted arrival times (µs) of ``counts[i]`` orders in each second ``second_us[i]``.

    Uniform order statistics from exponential spacings: one extra spacing per second, so the
    cost is O(orders + seconds) with no sort.
    """
    busy = np.flatnonzero(counts)
    if not len(busy):
        return np.empty(0, dtype=np.int64)
    per = counts[busy]
    last = np.cumsum(per + 1) - 1
    spacing = np.cumsum(rng.standard_exponential(int(last[-1]) + 1))
    closing = spacing[last]
    before = np.empty_like(closing)
    before[0] = 0.0
    before[1:] = closing[:-1]
    keep = np.ones(len(spacing), dtype=bool)
    keep[last] = False
    frac = spacing[keep]
    frac -= np.repeat(before, per)
    frac *= np.repeat(_US / (closing - before), per)
    offset = frac.astype(np.int64)
    np.minimum(offset, _US - 1, out=offset)  # rounding must never push an order into the next second
    offset += np.repeat(second_us[busy], per)
    return offset


def generate_chunk(plan: Plan, c: int, buffers: Buffers | None = None) -> OrderBatch:
    """The events of chunk ``c``: a pure function of (plan, c); O(events in the chunk).
    ``buffers``: columns to reuse once the chunk before is dropped (no fresh pages each time)."""
    n = int(plan.chunk_seq[c + 1] - plan.chunk_seq[c])
    columns = buffers.get(n) if buffers is not None else _empty_columns(n)
    fill_chunk(plan, c, columns)
    return OrderBatch(**columns)


def _copy(batch: OrderBatch, out: dict[str, np.ndarray], at: int) -> None:
    for name, column in out.items():
        column[at:at + len(batch)] = getattr(batch, name)


def _empty_columns(n: int) -> dict[str, np.ndarray]:
    return {name: np.empty(n, dtype) for name, dtype in COLUMNS.items()}


class Buffers:
    """Batch or chunk columns to write into, reused once nothing refers to them any more.

    A fresh 40 MB batch costs ~10 % of generating it in page faults (the kernel zeroing every
    new page); the consumer usually drops a batch before asking for the one after next, so two
    sets of columns are kept and one is written again when its arrays' only reference is ours
    (no batch, slice or buffer of them alive: CPython's reference count says so exactly; a
    view handed out holds a reference to its kept array).
    """

    KEPT = 2

    def __init__(self) -> None:
        self.kept: list[dict[str, np.ndarray]] = []

    def get(self, n: int) -> dict[str, np.ndarray]:
        """Columns of length ``n``: views of a free kept set at least that long, else new ones
        (kept in place of a free shorter set, so chunks of growing length settle too)."""
        free = [i for i, columns in enumerate(self.kept) if self._free(columns)]
        for i in free:
            if len(self.kept[i]["seq"]) >= n:
                return {name: column[:n] for name, column in self.kept[i].items()}
        columns = _empty_columns(n)
        if len(self.kept) < self.KEPT:
            self.kept.append(columns)
        elif free:
            self.kept[free[0]] = columns
        return columns

    @staticmethod
    def _free(columns: dict[str, np.ndarray]) -> bool:
        # the dict's reference and getrefcount's argument: nothing else holds the array
        return hasattr(sys, "getrefcount") and all(
            sys.getrefcount(columns[name]) == 2 for name in columns)


def fill_chunk(plan: Plan, c: int, out: dict[str, np.ndarray]) -> None:
    """Write chunk ``c``'s events into ``out``, one array per column of the chunk's length (a
    slice of a batch's columns, or of shared memory): nothing is copied after.

    A refund carries the columns of the order it refunds, and every column but the time is a
    function of the placed order's number ``p``; so the chunk's events are laid out first (the
    placed order each one carries, ``src``), and brand, amount, ids, platform and region are
    computed once per event in their final places instead of per order and then merged.
    """
    s0, s1 = int(plan.chunk_sec[c]), int(plan.chunk_sec[c + 1])
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(plan.seed, spawn_key=(c,))))
    times = _second_times(rng, plan.second_us[s0:s1], plan.base_counts[s0:s1])
    label = None
    bursts = [k for k in range(len(plan.burst_brand)) if plan.burst_counts[k, s0:s1].any()]
    if bursts:  # merge flash-sale orders into the curve's, by time
        parts_t, parts_l = [times], [np.full(len(times), -1)]
        for k in bursts:
            bt = _second_times(rng, plan.second_us[s0:s1], plan.burst_counts[k, s0:s1])
            parts_t.append(bt)
            parts_l.append(np.full(len(bt), k))
        times, label = np.concatenate(parts_t), np.concatenate(parts_l)
        order = np.argsort(times, kind="stable")
        times, label = times[order], label[order]

    n = len(times)
    first = int(plan.chunk_placed[c])
    refunds = int(plan.chunk_refunds[c])
    seq0 = int(plan.chunk_seq[c])
    out["seq"][:] = np.arange(seq0, seq0 + n + refunds, dtype=np.int64)
    kind = out["kind"]
    kind.fill(OrderKind.PLACED)
    src: np.ndarray | None = None  # the placed order (0..n-1) each event carries, if not its own
    if refunds:
        refunded = ((np.arange(refunds) + rng.random()) * (n / refunds)).astype(np.int64)
        delay = (rng.standard_exponential(refunds) * plan.scenario.refund_delay_s * _US
                 ).astype(np.int64)
        chunk_end = int(plan.second_us[s1 - 1]) + _US
        placed_at = times[refunded]
        window_end = plan.window_end_us[np.searchsorted(plan.second_us, placed_at, side="right") - 1]
        when = np.minimum(placed_at + delay, np.minimum(window_end, chunk_end) - 1)
        order = np.argsort(when, kind="stable")
        refunded, when = refunded[order], when[order]
        # Each refund goes after every order at or before its time; orders shift past earlier
        # refunds. The orders keep their order: event e carries order e - (refunds before e).
        refund_at = np.searchsorted(times, when, side="right")
        refund_at += np.arange(refunds)
        src = np.ones(n + refunds, dtype=np.int64)
        src[refund_at] = 0
        np.cumsum(src, out=src)
        src -= 1
        src[refund_at] = refunded
        kind[refund_at] = OrderKind.REFUNDED
        np.take(times, src, out=out["event_time"])
        out["event_time"][refund_at] = when
        p = np.add(src.view(np.uint64), np.uint64(first))
    else:
        out["event_time"][:] = times
        p = np.arange(first, first + n, dtype=np.uint64)
    brand, quantile, value = _pick_brand(plan, _weyl(plan, p, _BRAND))
    out["brand"][:] = brand
    amount = out["amount_minor"]
    np.multiply(value, plan.amount_table.take(quantile), out=amount)
    amount >>= 16
    if label is not None:
        label_at = label if src is None else label.take(src)
        for k in bursts:
            mine = np.flatnonzero(label == k)  # the burst's placed orders, in time order
            at = np.flatnonzero(label_at == k)
            i = int(plan.burst_counts[k, :s0].sum()) + np.searchsorted(
                mine, at if src is None else src[at])  # the burst's order number
            count = int(plan.burst_counts[k].sum())
            out["brand"][at] = plan.burst_brand[k]
            amount[at] = plan.burst_gmv[k] // count + (i < plan.burst_gmv[k] % count)
    if refunds:
        amount[refund_at] *= -1
    _order_ids(plan, p, out["order_id"])
    out["platform"][:] = _lookup(plan.platform_table, _weyl(plan, p, _PLATFORM))
    out["region"][:] = _lookup(plan.region_table, _weyl(plan, p, _REGION))


def chunks(plan: Plan, *, workers: int = 1, start_chunk: int = 0) -> Iterator[OrderBatch]:
    """The plan's chunks in order; with ``workers > 1``, made by that many processes
    (:mod:`ticker.scenario.parallel`: through shared memory, at most ``2 × workers + 2`` chunks
    in flight, so memory stays bounded). Where shared memory is not a file system (not Linux),
    the chunks are made in this process.
    """
    from ticker.scenario import parallel

    if workers > 1 and parallel.available():
        yield from parallel.chunks(plan, workers, start_chunk)
        return
    for c in range(start_chunk, plan.chunks):
        yield generate_chunk(plan, c)


def batches(plan: Plan, batch_size: int = DEFAULT_BATCH_EVENTS, *, start_seq: int = 0,
            workers: int = 1) -> Iterator[OrderBatch]:
    """The plan's events from ``start_seq`` on, in batches of ``batch_size`` (the last fewer):
    the cut :func:`~ticker.events.rebatch` makes of :func:`chunks`, without the copies.

    A batch's columns are allocated once (or reused, :class:`Buffers`) and each chunk is
    written straight into its place;
    only a chunk that crosses a batch's end (or starts before ``start_seq``) is made on its own
    and copied in two, and a batch inside one chunk is a view of it. With ``workers > 1`` the
    chunks are lent from shared memory (:func:`ticker.scenario.parallel.lent`) and copied once,
    into their batch.
    """
    from ticker.scenario import parallel

    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    end = plan.total_events
    if start_seq >= end:
        return
    c0 = int(np.searchsorted(plan.chunk_seq, start_seq, side="right")) - 1
    lending = workers > 1 and parallel.available()
    made: Generator[tuple[int, OrderBatch | None], None, None] = (
        parallel.lent(plan, workers, c0) if lending
        else ((c, None) for c in range(c0, plan.chunks)))
    buffers = Buffers()
    out: dict[str, np.ndarray] = {}
    at = 0  # events already in ``out``
    chunk: OrderBatch | None = None  # chunk c made on its own (or lent), when not written in place
    try:
        for c, chunk in made:
            a, b = int(plan.chunk_seq[c]), int(plan.chunk_seq[c + 1])
            lo = max(a, start_seq)
            while lo < b:
                if not out:
                    want = min(batch_size, end - lo)
                    if chunk is None and b - lo >= want and (lo > a or b - a > want):
                        chunk = generate_chunk(plan, c)  # the batch lies inside this chunk
                    if chunk is not None and not lending and b - lo >= want:
                        yield chunk.slice(lo - a, lo - a + want)  # a view, no copy
                        lo += want
                        continue
                    out, at = buffers.get(want), 0
                hi = min(b, lo + len(out["seq"]) - at)
                if chunk is None and lo == a and hi == b:
                    fill_chunk(plan, c, {name: column[at:at + b - a] for name, column in out.items()})
                else:
                    if chunk is None:
                        chunk = generate_chunk(plan, c)
                    _copy(chunk.slice(lo - a, hi - a), out, at)
                at += hi - lo
                lo = hi
                if at == len(out["seq"]):
                    yield OrderBatch(**out)
                    out = {}
            chunk = None  # a lent chunk's slot is reused once the next chunk is asked for
    finally:
        chunk = None
        if lending:
            made.close()


def generate(scenario: Scenario, seed: int | None = None, scale: float = 1.0, *,
             batch_size: int = DEFAULT_BATCH_EVENTS, workers: int = 1) -> Iterator[OrderBatch]:
    """The festival's order stream, cut into batches of ``batch_size`` events.

    The same (scenario, seed, scale) gives the same events, whatever the batch size or workers.
    """
    plan = make_plan(scenario, seed, scale)
    yield from batches(plan, batch_size, workers=workers)
