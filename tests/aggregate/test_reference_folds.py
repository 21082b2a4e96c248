"""The reference folds are the tests' oracle, so they are held to the rule they check the real
folds against: fed in any batches, they end where they end fed the whole stream at once (the
other tests feed them whole, which left their between-batch bookkeeping unchecked)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.aggregate.eventtime import sort_key
from ticker.aggregate.reference import EventTimeReferenceFold, ReferenceFold
from ticker.events import OrderBatch

from .test_aggregator import make_batch, streams
from .test_eventtime import DEDUP, LATENESS, SLOW, arrivals, fold, reference
from .unit_scenario import NAMES, UNIT


@given(streams())
def test_the_reference_fed_in_batches_is_the_reference_fed_whole(case):
    stream, cuts = case
    whole = ReferenceFold(UNIT, NAMES, "unit")
    found_whole = whole.apply(stream) + whole.finish()
    cut = ReferenceFold(UNIT, NAMES, "unit")
    found_cut = []
    for lo, hi in itertools.pairwise([0, *cuts, len(stream)]):
        found_cut += cut.apply(stream.slice(lo, hi))
    found_cut += cut.finish()
    assert found_cut == found_whole and cut.milestones == whole.milestones == found_whole
    assert vars(cut) == vars(whole)  # every total, series, rule and the open second


@given(arrivals())
def test_the_event_time_reference_fed_in_batches_is_the_reference_fed_whole(case):
    _, arrived, cuts = case
    whole = EventTimeReferenceFold(UNIT, NAMES, "unit", LATENESS, DEDUP)
    found_whole = whole.apply(arrived) + whole.finish()
    cut = EventTimeReferenceFold(UNIT, NAMES, "unit", LATENESS, DEDUP)
    found_cut = []
    for lo, hi in itertools.pairwise([0, *cuts, len(arrived)]):
        found_cut += cut.apply(arrived.slice(lo, hi))
    found_cut += cut.finish()
    assert found_cut == found_whole and cut.milestones == whole.milestones
    assert (cut.duplicates, cut.late, cut.late_us_max, cut.late_us_total) == (
        whole.duplicates, whole.late, whole.late_us_max, whole.late_us_total)


@pytest.mark.parametrize(("gap", "duplicates", "gmv"), [(-1, 1, 110), (0, 0, 210)])
def test_a_redelivery_is_a_duplicate_until_the_watermark_reaches_its_dedup_expiry(gap, duplicates, gmv):
    """Order 5 at the window's start is remembered until start + DEDUP; order 6 moves the
    watermark (its time - LATENESS) to one microsecond before that, or exactly there; then order
    5 comes again: a duplicate before its expiry, a late order (counted again) at it. Counted
    again, it is still the order that crossed Apple's RMB 1.00, not an order before it: that
    final milestone is not corrected."""
    start = UNIT.windows[0].start_us
    batch = make_batch(0, [start, start + DEDUP + LATENESS + gap, start], [0, 1, 0], [100, 10, 100], [0] * 3,
                       order_ids=[5, 6, 5])
    agg, ref = fold(batch, []), reference(batch)
    assert (agg.state.duplicates, agg.state.gmv_minor, agg.state.late) == (duplicates, gmv, 1 - duplicates)
    assert (ref.duplicates, ref.live.gmv, ref.late) == (duplicates, gmv, 1 - duplicates)
    assert not [m for m in agg.state.milestones if m.kind == "brand_gmv" and m.timing == "correction"]
    assert sorted(ref.milestones, key=sort_key) == sorted(agg.state.milestones, key=sort_key)


@pytest.mark.parametrize(("gap", "records"), [
    (-1, [("final", 2, 0, 2)]),  # second 0 still open: its final count takes the late order in
    (0, [("correction", 2, 0, 2), ("final", 1, 0, 0)]),  # decided at its last instant: corrected
])
def test_a_second_is_decided_once_the_watermark_reaches_its_end(gap, records):
    """One order in second 0; an order 3 s (the lateness) after second 0's end, give or take
    ``gap`` µs, moves the watermark to its end; then a late order into second 0."""
    start = UNIT.windows[0].start_us
    batch = make_batch(0, [start + 500_000, start + 1_000_000 + LATENESS + gap, start + 600_000],
                       [0, 1, 0], [100, 10, 100], [0] * 3)
    agg, ref = fold(batch, []), reference(batch)
    for milestones in (agg.state.milestones, ref.milestones):
        assert sorted((m.timing, m.value_minor, m.threshold_minor, m.seq) for m in milestones
                      if m.kind == "rate_record" and m.timing != "live") == records


def _twin(order_id: int) -> int:
    """The int64 that differs from ``order_id`` in the top bit alone."""
    return order_id - 2**63 if order_id >= 0 else order_id + 2**63


@SLOW
@given(arrivals(), st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=4), st.data())
def test_the_fold_and_the_reference_agree_on_duplicates_whatever_the_order_ids(case, pool, data):
    """Order ids anywhere in int64 — negative, extreme, and pairs that differ only in the top
    bit — drawn from a small pool, so that orders at one event time share ids: the fold and its
    oracle drop the same deliveries as redeliveries and end with the same totals. (ticker's own
    ids are 0 <= id < 2**63, from the generator and from ingest; the folds take any int64, and
    the other tests number orders 1000, 1001, ..., which never reaches the sign or top bit.)"""
    _, arrived, cuts = case
    ids = pool + [_twin(i) for i in pool]
    chosen = data.draw(st.lists(st.sampled_from(ids), min_size=len(arrived), max_size=len(arrived)))
    arrived = OrderBatch(**{**arrived.columns(), "order_id": np.array(chosen, np.int64)})
    agg, ref = fold(arrived, cuts), reference(arrived)
    s = agg.state
    assert (s.duplicates, s.late, s.gmv_minor, s.orders, s.refunds) == (
        ref.duplicates, ref.late, ref.live.gmv, ref.live.orders, ref.live.refunds)
    assert s.brand_gmv.tolist() == ref.live.brand_gmv
