"""The additive part of the fold: a batch's amounts and counts into the per-brand,
per-(platform, region) and per-second totals.

:class:`~ticker.aggregate.Aggregator` folds every batch with it before looking for milestones;
the cluster's pass 1 (:mod:`ticker.cluster.scan`), which folds a part of the stream without
knowing the totals before it, folds with it alone. One function, so the two can never count
differently — and the tricks that make it cheap serve both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ticker.clock import US_PER_S
from ticker.events import OrderBatch


@dataclass(frozen=True, slots=True)
class Totals:
    """The arrays a batch is added into (views of an aggregator's state, or of a part's)."""

    brand_gmv: np.ndarray  # int64[brands]
    brand_orders: np.ndarray  # int64[brands]
    mix_gmv: np.ndarray  # int64[platforms, regions]
    mix_orders: np.ndarray  # int64[platforms, regions]
    second_orders: np.ndarray  # int64[seconds]: placed orders per second
    second_gmv: np.ndarray  # int64[seconds]
    second0_us: int  # the time at which ``second_*[0]`` starts


@dataclass(frozen=True, slots=True)
class Folded:
    """Where the batch went: its seconds ``first..last`` (indices into ``second_*``) and each
    one's end row (one past its last event; a second with no event ends where the one before
    does). ``running[1:]`` is the running sum of the batch's amounts, ``running[0]`` zero."""

    first: int
    last: int
    ends: np.ndarray
    running: np.ndarray


def add_batch(totals: Totals, batch: OrderBatch, refunds: np.ndarray, running: np.ndarray
              ) -> Folded:
    """Add ``batch`` (non-empty, in time order; ``refunds``: its refund rows) into ``totals``.

    ``running``: an int64 buffer of ``len(batch) + 1`` whose first element is 0 (reused by the
    caller, so a batch costs no fresh pages). Refunds take their amounts off but count no order.
    O(events), plus O(seconds spanned) and, for a batch as large as the catalogue, O(brands).
    """
    amount, times = batch.amount_minor, batch.event_time
    brand = batch.brand  # int32 as stored: ufunc.at is faster on it than on an intp copy
    np.add.at(totals.brand_gmv, brand, amount)
    count_into(totals.brand_orders, brand)
    mix = mix_code(batch, totals.mix_gmv.shape[1], totals.mix_gmv.size)
    np.add.at(totals.mix_gmv.reshape(-1), mix, amount)
    totals.mix_orders.reshape(-1)[:] += np.bincount(mix, minlength=totals.mix_orders.size)
    first = (int(times[0]) - totals.second0_us) // US_PER_S
    last = (int(times[-1]) - totals.second0_us) // US_PER_S
    counts, ends = second_runs(times, totals.second0_us + first * US_PER_S, last - first + 1)
    np.cumsum(amount, out=running[1:])
    # every second first..last as one slice: those between sales windows add zeros
    totals.second_orders[first:last + 1] += counts
    totals.second_gmv[first:last + 1] += np.diff(running[ends], prepend=0)
    if len(refunds):  # refunds are events, not orders: take them back out of the counts
        np.subtract.at(totals.brand_orders, brand[refunds], 1)
        np.subtract.at(totals.mix_orders.reshape(-1), mix[refunds], 1)
        np.subtract.at(totals.second_orders, (times[refunds] - totals.second0_us) // US_PER_S, 1)
    return Folded(first, last, ends, running)


def count_into(counts: np.ndarray, codes: np.ndarray) -> None:
    """``counts[code] += 1`` for every code. ``bincount`` builds a table as long as ``counts``,
    so it pays only for a batch about as long as the table (measured on 290,000 brands: ufunc.at
    0.10 ms against bincount's 0.16 ms for 65,536 events, 1.74 against 1.44 ms for 1,048,576)."""
    if len(codes) < len(counts):
        np.add.at(counts, codes, 1)
    else:
        counts += np.bincount(codes, minlength=len(counts))


def mix_code(batch: OrderBatch, regions: int, cells: int) -> np.ndarray:
    """Each event's (platform, region) cell, ``platform × regions + region``; in uint8
    arithmetic (8 times less memory traffic than intp) when the cells fit in a byte."""
    if cells <= 256:
        code = np.multiply(batch.platform, np.uint8(regions))
        code += batch.region
        return code  # type: ignore[no-any-return]  # numpy's stubs: ufunc results are Any
    return batch.platform.astype(np.intp) * regions + batch.region  # type: ignore[no-any-return]


def second_runs(times: np.ndarray, start_us: int, seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``seconds`` seconds from ``start_us`` on: its event count and one past its last
    event's row (``times`` sorted, all inside those seconds).

    Times are sorted, so each second is one run. When the batch has few seconds for its
    events (a busy stretch), a binary search per second finds the runs' ends; when it has
    many (a small scale, a quiet stretch), counting each event's second is cheaper than
    ``log(events)`` per second. Both give the same runs.
    """
    if seconds * 8 < len(times):
        bounds = np.arange(1, seconds + 1, dtype=np.int64)
        bounds *= US_PER_S
        bounds += start_us
        ends = np.searchsorted(times, bounds)
        return np.diff(ends, prepend=0), ends
    offset = times - start_us
    offset //= US_PER_S
    counts = np.bincount(offset, minlength=seconds)
    return counts, np.cumsum(counts)
