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
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ticker.events import COLUMNS, OrderBatch, OrderKind, rebatch
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
    brand_start, brand_guide = _brand_cdf(share)

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


def _brand_cdf(share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brand intervals on [0, 1) and a guide table that finds one in O(1) on average."""
    start = np.concatenate([[0.0], np.cumsum(share)])
    start /= start[-1]
    start[-1] = 1.0
    cells = np.arange(1 << _GUIDE_BITS, dtype=np.float64) / (1 << _GUIDE_BITS)
    guide = (np.searchsorted(start, cells, side="right") - 1).astype(np.int32)
    return start, guide


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

    The draw's top :data:`_GUIDE_BITS` bits index the guide table, which names the first brand
    that can own it; the loop steps over the few brands sharing that cell (average O(1)). The
    quantile is the draw's relative position inside its brand's interval. The plain reference
    (a binary search) is in tests/scenario/test_generate.py.
    """
    u = (bits >> np.uint64(11)).astype(np.float64)
    u *= 1.0 / (1 << 53)
    brand = plan.brand_guide.take((bits >> np.uint64(64 - _GUIDE_BITS)).view(np.int64))
    records = plan.brand_record.take(brand, axis=0)
    hi = records[:, 1]
    moved = ahead = np.flatnonzero(u >= hi)
    end = plan.brand_start[1:]
    while len(ahead):
        brand[ahead] += 1
        ahead = ahead[u[ahead] >= end.take(brand[ahead])]
    if len(moved):
        records[moved] = plan.brand_record.take(brand[moved], axis=0)
    lo = records[:, 0]
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


def _order_ids(plan: Plan, p: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a Weyl sequence: ids that look random, unique per order."""
    x = _weyl(plan, p, _ORDER_ID)
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


def generate_chunk(plan: Plan, c: int) -> OrderBatch:
    """The events of chunk ``c``: a pure function of (plan, c); O(events in the chunk)."""
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
    p = np.arange(first, first + n, dtype=np.uint64)
    brand, quantile, value = _pick_brand(plan, _weyl(plan, p, _BRAND))
    amount = np.multiply(value, plan.amount_table.take(quantile))
    amount >>= 16
    if label is not None:
        for k in bursts:
            mine = np.flatnonzero(label == k)
            brand[mine] = plan.burst_brand[k]
            done = int(plan.burst_counts[k, :s0].sum())
            count = int(plan.burst_counts[k].sum())
            i = done + np.arange(len(mine))
            amount[mine] = plan.burst_gmv[k] // count + (i < plan.burst_gmv[k] % count)
    placed = {
        "event_time": times,
        "order_id": _order_ids(plan, p),
        "brand": brand,  # int32 from the guide table
        "platform": _lookup(plan.platform_table, _weyl(plan, p, _PLATFORM)),
        "region": _lookup(plan.region_table, _weyl(plan, p, _REGION)),
        "amount_minor": amount,
    }
    refunds = int(plan.chunk_refunds[c])
    total = n + refunds
    seq = np.arange(plan.chunk_seq[c], plan.chunk_seq[c] + total, dtype=np.int64)
    if not refunds:
        return OrderBatch(seq=seq, kind=np.zeros(n, dtype=np.uint8), **placed)

    refunded = ((np.arange(refunds) + rng.random()) * (n / refunds)).astype(np.int64)
    delay = (rng.standard_exponential(refunds) * plan.scenario.refund_delay_s * _US).astype(np.int64)
    chunk_end = int(plan.second_us[s1 - 1]) + _US
    placed_at = times[refunded]
    window_end = plan.window_end_us[np.searchsorted(plan.second_us, placed_at, side="right") - 1]
    when = np.minimum(placed_at + delay, np.minimum(window_end, chunk_end) - 1)
    order = np.argsort(when, kind="stable")
    refunded, when = refunded[order], when[order]
    # Each refund goes after every order at or before its time; orders shift past earlier refunds.
    refund_at = np.searchsorted(times, when, side="right")
    refund_at += np.arange(refunds)
    is_refund = np.zeros(total, dtype=bool)
    is_refund[refund_at] = True
    is_order = ~is_refund
    kind = np.zeros(total, dtype=np.uint8)
    kind[refund_at] = OrderKind.REFUNDED
    columns = {"seq": seq, "kind": kind}
    for name, values in placed.items():
        out = np.empty(total, dtype=COLUMNS[name])
        out[is_order] = values
        out[refund_at] = values.take(refunded)
        columns[name] = out
    columns["event_time"][refund_at] = when
    columns["amount_minor"][refund_at] *= -1
    return OrderBatch(**columns)


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


def generate(scenario: Scenario, seed: int | None = None, scale: float = 1.0, *,
             batch_size: int = DEFAULT_BATCH_EVENTS, workers: int = 1) -> Iterator[OrderBatch]:
    """The festival's order stream, cut into batches of ``batch_size`` events.

    The same (scenario, seed, scale) gives the same events, whatever the batch size or workers.
    """
    plan = make_plan(scenario, seed, scale)
    yield from rebatch(chunks(plan, workers=workers), batch_size)
