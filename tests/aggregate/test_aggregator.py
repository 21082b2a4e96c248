"""The vectorised aggregator agrees exactly with the per-event reference fold."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ticker.aggregate import Aggregator, BatchRejected, milestone_sort_key
from ticker.aggregate.reference import ReferenceFold
from ticker.aggregate.totals import Totals, add_batch
from ticker.clock import US_PER_S
from ticker.events import COLUMNS, OrderBatch
from ticker.scenario import parse_scenario
from ticker.scenario.model import Scenario
from ticker.views import BrandGMV, Peak, Snapshot

from .unit_scenario import NAMES, UNIT, UNIT_DIMS, UNIT_TOML

W1, W2 = UNIT.windows[0].start_us, UNIT.windows[1].start_us


def make_batch(first_seq: int, times, brands, amounts, kinds, platforms=None, regions=None,
               order_ids=None) -> OrderBatch:
    """Orders numbered 1000, 1001, ... unless ``order_ids`` names them (redeliveries, ties)."""
    n = len(times)
    return OrderBatch(
        seq=np.arange(first_seq, first_seq + n, dtype=np.int64),
        event_time=np.asarray(times, np.int64),
        order_id=(np.asarray(order_ids, np.int64) if order_ids is not None
                  else np.arange(n, dtype=np.int64) + 1000),
        brand=np.asarray(brands, np.int32),
        platform=np.asarray(platforms if platforms is not None else [0] * n, np.uint8),
        region=np.asarray(regions if regions is not None else [0] * n, np.uint8),
        amount_minor=np.asarray(amounts, np.int64),
        kind=np.asarray(kinds, np.uint8),
    )


@st.composite
def streams(draw):
    """Sorted times across both windows, few brands, small amounts, refunds, exact hits; the
    stream may be empty, and the cuts may repeat or sit at either end (empty batches)."""
    n = draw(st.integers(0, 300))
    steps = draw(st.lists(st.sampled_from([0, 1, 250_000, 999_999, 1_000_000, 2_500_000]),
                          min_size=n, max_size=n))
    jump = draw(st.integers(0, n))
    times, t = [], W1
    for i, step in enumerate(steps):
        if i == jump:
            t = W2
        t += step
        times.append(t)
    brands = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    refund = draw(st.lists(st.sampled_from([False, False, False, True]), min_size=n, max_size=n))
    values = draw(st.lists(st.sampled_from([1, 25, 50, 99, 100, 150, 200, 400]), min_size=n, max_size=n))
    amounts = [-v if r else v for v, r in zip(values, refund, strict=True)]
    kinds = [1 if r else 0 for r in refund]
    platforms = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    regions = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    stream = make_batch(0, times, brands, amounts, kinds, platforms, regions)
    return stream, sorted(draw(st.lists(st.integers(0, n), max_size=8)))


def fold(stream: OrderBatch, cuts: list[int], *, grow: bool = False, scenario: Scenario = UNIT
         ) -> Aggregator:
    """The aggregator after ``stream`` cut at ``cuts``; with ``grow``, its catalogue starts with
    Apple alone and grows (``add_brands``) just before a batch names a brand it does not know."""
    agg = Aggregator(scenario, "unit", brand_names=NAMES[:1] if grow else NAMES)
    edges = [0, *cuts, len(stream)]
    for lo, hi in itertools.pairwise(edges):
        batch = stream.slice(lo, hi)
        if grow:
            known = len(agg.brand_names)
            agg.add_brands(NAMES[known:max(known, int(batch.brand.max(initial=0)) + 1)])
        agg.apply(batch)
    agg.finish()
    return agg


def expected_views(ref: ReferenceFold, size: int) -> tuple[list, tuple[int, int], dict[int, int]]:
    """Leaderboard (ties by catalogue order), peak second and brands past each threshold, from the
    reference fold."""
    board = sorted(range(len(ref.names)), key=lambda b: (-ref.brand_gmv[b], b))[:size]
    busiest = max(ref.second_orders.values(), default=0)
    second = min((k for k, v in ref.second_orders.items() if v == busiest), default=0) if busiest else 0
    return ([(ref.names[b], ref.brand_gmv[b]) for b in board],
            (busiest, UNIT.start_us + second * 1_000_000), dict(zip(ref.thresholds, ref.race, strict=True)))


@given(streams())  # as many examples as the profile says: 50 (dev), 200 (CI)
def test_aggregator_agrees_with_reference_fold(case):
    stream, cuts = case
    agg = fold(stream, cuts)
    ref = ReferenceFold(UNIT, NAMES, "unit")
    ref.apply(stream)
    ref.finish()
    s = agg.state
    assert s.gmv_minor == ref.gmv
    assert (s.orders, s.refunds, s.next_seq) == (ref.orders, ref.refunds, ref.next_seq)
    assert (s.gmv_level, s.rate_record) == (ref.gmv_level, ref.record)
    assert s.brand_gmv.tolist() == ref.brand_gmv
    assert s.brand_orders.tolist() == ref.brand_orders
    assert s.brand_level.tolist() == ref.brand_level
    assert s.race_count.tolist() == ref.race
    assert s.rule_value.tolist() == [r["acc"] for r in ref.rules]  # time-to-value: so far, and
    assert s.rule_done.tolist() == [r["done"] for r in ref.rules]  # reached or closed
    assert {k: v for k, v in enumerate(s.second_orders.tolist()) if k in ref.second_orders} \
        == ref.second_orders
    assert int(s.second_orders.sum()) == ref.orders
    assert {k: int(s.second_gmv[k]) for k in ref.second_gmv} == ref.second_gmv
    assert {(p, g): int(s.mix_gmv[p, g]) for p, g in ref.mix_gmv} == ref.mix_gmv
    assert {(p, g): int(s.mix_orders[p, g]) for p, g in ref.mix_orders} == ref.mix_orders
    assert int(s.mix_gmv.sum()) == ref.gmv and int(s.mix_orders.sum()) == ref.orders
    assert sorted(s.milestones, key=milestone_sort_key) == sorted(ref.milestones, key=milestone_sort_key)
    board, peak, over = expected_views(ref, UNIT.milestones.leaderboard_size)
    assert (agg.leaderboard(), agg.peak(), agg.brands_over()) == (board, peak, over)
    assert agg.leaderboard(99) == expected_views(ref, 99)[0]  # capped at the catalogue
    assert agg.leaderboard(1) == expected_views(ref, 1)[0]
    assert agg.snapshot() == Snapshot(
        run="unit", events=ref.next_seq, event_time_us=int(stream.event_time[-1]) if len(stream) else 0,
        gmv_minor=ref.gmv, orders=ref.orders, refunds=ref.refunds, peak=Peak(*peak),
        leaderboard=tuple(BrandGMV(*row) for row in board), brands_over=over,
        milestones=tuple(sorted(ref.milestones, key=milestone_sort_key)))


@given(streams())
def test_a_catalogue_grown_on_the_way_gives_the_same_state(case):
    stream, cuts = case
    grown, whole = fold(stream, cuts, grow=True), fold(stream, cuts)
    for name in ("brand_gmv", "brand_orders", "brand_level"):  # grown, not converted
        assert getattr(grown.state, name).dtype == getattr(whole.state, name).dtype, name
    assert whole.brand_names[:len(grown.brand_names)] == grown.brand_names
    assert grown.state.brand_gmv.tolist() == whole.state.brand_gmv.tolist()[:len(grown.brand_names)]
    assert grown.state.milestones == whole.state.milestones


# no festival GMV milestones and no brand races: both are optional in a scenario file
BARE = parse_scenario(UNIT_TOML.replace('gmv_every = "5.00"\n', "").replace(
    'brand_thresholds = ["1.00", "2.00", "4.00"]\n', ""), "bare.toml")


@given(streams())
def test_a_scenario_without_gmv_milestones_or_brand_races_agrees_with_the_reference_fold(case):
    stream, cuts = case
    agg = fold(stream, cuts, scenario=BARE)
    ref = ReferenceFold(BARE, NAMES, "unit")
    ref.apply(stream)
    ref.finish()
    assert (agg.gmv, agg.state.brand_gmv.tolist()) == (ref.gmv, ref.brand_gmv)
    assert sorted(agg.milestones, key=milestone_sort_key) == sorted(ref.milestones, key=milestone_sort_key)
    assert not [m for m in agg.milestones if m.kind in ("gmv", "brand_gmv")]


def test_adding_no_brands_changes_nothing():
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    before = agg.state.copy()
    agg.add_brands([])
    assert agg.brand_names == tuple(NAMES) and agg.state.equals(before)


@given(streams(), st.lists(st.integers(0, 300), max_size=10))
def test_any_batch_cut_gives_the_same_state_and_milestones(case, other_cuts):
    stream, cuts = case
    a = fold(stream, cuts)
    b = fold(stream, sorted(c for c in other_cuts if c <= len(stream)))
    assert a.state.differences(b.state) == []


def test_a_refund_dip_does_not_cross_twice_and_the_first_reaching_order_is_named():
    # Apple: +90, +20 (crosses 1.00 at seq 1), -50 (back to 60), +60 (back to 120: no new milestone)
    batch = make_batch(0, [W1 + 10, W1 + 20, W1 + 30, W1 + 40], [0, 0, 0, 0], [90, 20, -50, 60],
                       [0, 0, 1, 0])
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    found = [m for m in agg.apply(batch) if m.kind == "brand_gmv"]
    assert [(m.subject, m.threshold_minor, m.seq, m.value_minor) for m in found] == [("Apple", 100, 1, 110)]


def test_brands_crossing_in_one_batch_are_ranked_by_seq():
    batch = make_batch(0, [W1 + i for i in range(4)], [1, 0, 2, 0], [100, 50, 150, 50], [0] * 4)
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    races = [(m.subject, m.rank, m.seq) for m in agg.apply(batch)
             if m.kind == "brand_gmv" and m.threshold_minor == 100]
    assert races == [("L'Oréal", 1, 0), ("brand-3", 2, 2), ("Apple", 3, 3)]


def test_one_big_order_crosses_several_thresholds_at_the_same_seq():
    """Milestones of one order come in the canonical order: festival GMV, brand races (by
    threshold), time-to-value, whatever their subjects' spelling."""
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    found = agg.apply(make_batch(0, [W1 + 5], [0], [500], [0]))
    assert [(m.kind, m.subject, m.threshold_minor) for m in found] == [
        ("gmv", "all", 500), ("brand_gmv", "Apple", 100), ("brand_gmv", "Apple", 200),
        ("brand_gmv", "Apple", 400), ("time_to_value", "brand:Apple", 150)]
    assert {m.seq for m in found} == {0}


def test_time_to_value_names_the_crossing_order_and_window_expiry_closes_it():
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    batch = make_batch(0, [W1 + 100, W1 + 1_500_000, W1 + 2_000_000], [0, 0, 0], [100, 50, 900], [0, 0, 0])
    found = [m for m in agg.apply(batch) if m.kind == "time_to_value" and m.subject == "brand:Apple"]
    assert [(m.seq, m.value_minor) for m in found] == [(1, 150)]
    assert found[0].headline == "Apple reaches RMB 1.50 in 1.50 seconds (the first two seconds)"


def test_rate_records_are_announced_once_their_second_is_complete():
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    one = make_batch(0, [W1, W1 + 1, W1 + 2], [3, 3, 3], [1, 1, 1], [0, 0, 0])
    assert [m for m in agg.apply(one) if m.kind == "rate_record"] == []
    two = make_batch(3, [W1 + 1_000_000], [3], [1], [0])
    records = [m for m in agg.apply(two) if m.kind == "rate_record"]
    assert [(m.value_minor, m.seq) for m in records] == [(3, 2)]
    assert [m.value_minor for m in agg.finish()] == []  # 1 order/s is no record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"brand": [0, 99]}, "seq 2: brand id 99 is not in the catalogue (expected 0..11)"),
        ({"amount_minor": [10, -5]}, "seq 2: amount_minor -5: a placed order needs a positive amount"),
        ({"kind": [0, 1]}, "seq 2: amount_minor 10: a refund needs a negative amount"),
        ({"event_time": [W1, W1 + 3_600_000_000]}, "seq 2: event time 1635699600000000 µs is "
         "outside every sales window of unit"),
        ({"event_time": [W1 + 5, W1]}, "seq 2: event time goes backwards (expected events in time order)"),
        ({"region": [0, 7]}, "seq 2: region 7 is not in regions (expected 0..1)"),
        ({"platform": [9, 0]}, "seq 1: platform 9 is not in platforms (expected 0..1)"),
        ({"seq": [5, 6]}, "seq 5: batch skips to seq 5, expected seq 1 next"),
        ({"seq": [0, 1]}, "seq 0: batch repeats seq 0, expected seq 1 next"),
    ],
)
def test_bad_batches_are_rejected_whole_naming_the_seq(change, message):
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, [W1], [1], [10], [0]))
    before = agg.state.copy()
    columns = make_batch(1, [W1 + 1, W1 + 2], [0, 0], [10, 10], [0, 0]).columns()
    for name, values in change.items():
        columns[name] = np.asarray(values, dtype=COLUMNS[name])
    with pytest.raises(BatchRejected) as err:
        agg.apply(OrderBatch(**columns))
    assert str(err.value) == message
    assert agg.state.equals(before)


def test_without_brand_names_the_aggregator_takes_the_scenarios_catalogue():
    """How a replay builds its fold: no names given, the scenario's catalogue names the brands
    (its two named brands, then the generated tail), and brand ids are checked against it; no
    run id given, the milestones' ids carry the scenario's name."""
    agg = Aggregator(UNIT_DIMS)
    assert agg.brand_names == ("Apple", "L'Oréal", *(f"brand-{i:06d}" for i in range(3, 13)))
    found = agg.apply(make_batch(0, [W1, W1 + 1], [1, 11], [600, 600], [0, 0]))
    assert found[0].id == "unit:gmv:all:500"
    # each crosses the brand races' three thresholds (RMB 1, 2, 4), named from the catalogue
    assert [m.subject for m in found if m.kind == "brand_gmv"] == ["L'Oréal"] * 3 + ["brand-000012"] * 3
    with pytest.raises(BatchRejected) as err:
        agg.apply(make_batch(2, [W1 + 2], [12], [10], [0]))
    assert str(err.value) == "seq 2: brand id 12 is not in the catalogue (expected 0..11)"


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 999_999), st.integers(0, 3),
                          st.integers(1, 500), st.booleans()), min_size=1, max_size=80),
       st.integers(0, 2))
def test_the_additive_fold_adds_each_event_and_says_where_each_second_ends(events, busy):
    """``totals.add_batch``, which the aggregator and the cluster's pass 1 share, against a plain
    per-event loop: each event's amount into its brand, (platform, region) cell and second, each
    placed order counted once (a refund counts none), and ``ends[k]``, one past the last row of
    second ``first + k`` (what pass 1 reads each second's last seq from). ``busy`` crowds the
    events into a few seconds, so both ways of finding the seconds' runs are taken."""
    rows = sorted((s // (1 + 15 * busy), us, b, a, r) for s, us, b, a, r in events)
    n = len(rows)
    start = W1 - 7 * US_PER_S  # the totals' second 0 starts 7 s before the first window
    times = [start + (7 + s) * US_PER_S + us for s, us, _, _, _ in rows]
    amounts = [-a if r else a for _, _, _, a, r in rows]
    batch = make_batch(0, times, [b for _, _, b, _, _ in rows], amounts, [int(r) for *_, r in rows],
                       [b % 2 for _, _, b, _, _ in rows], [(b // 2) % 2 for _, _, b, _, _ in rows])
    seconds = 64
    totals = Totals(np.zeros(4, np.int64), np.zeros(4, np.int64), np.zeros((2, 2), np.int64),
                    np.zeros((2, 2), np.int64), np.zeros(seconds, np.int64), np.zeros(seconds, np.int64),
                    start)
    refunds = np.flatnonzero([r for *_, r in rows])
    folded = add_batch(totals, batch, refunds, np.zeros(n + 1, np.int64))
    want = {name: np.zeros_like(getattr(totals, name)) for name in
            ("brand_gmv", "brand_orders", "mix_gmv", "mix_orders", "second_orders", "second_gmv")}
    for t, (_, _, b, _, r), amount in zip(times, rows, amounts, strict=True):
        second, cell = (t - start) // US_PER_S, (b % 2, (b // 2) % 2)
        want["brand_gmv"][b] += amount
        want["mix_gmv"][cell] += amount
        want["second_gmv"][second] += amount
        if not r:
            want["brand_orders"][b] += 1
            want["mix_orders"][cell] += 1
            want["second_orders"][second] += 1
    for name, array in want.items():
        assert getattr(totals, name).tolist() == array.tolist(), name
    first, last = (times[0] - start) // US_PER_S, (times[-1] - start) // US_PER_S
    assert (folded.first, folded.last) == (first, last)
    assert folded.ends.tolist() == [sum((t - start) // US_PER_S <= s for t in times)
                                    for s in range(first, last + 1)]
    assert folded.running.tolist() == [0, *itertools.accumulate(amounts)]


# Each id column's refusal, as the user reads it: the column's name, the range it must be in (the
# unit scenario: 12 brands, 2 platforms, 2 regions; kinds 0 and 1), and the largest value its
# dtype holds, so a bad value can be drawn anywhere outside the range.
_ID_REFUSALS = {
    "brand": ("seq {seq}: brand id {value} is not in the catalogue (expected 0..11)", 12, 2**31 - 1),
    "platform": ("seq {seq}: platform {value} is not in platforms (expected 0..1)", 2, 255),
    "region": ("seq {seq}: region {value} is not in regions (expected 0..1)", 2, 255),
    "kind": ("seq {seq}: kind {value} is not in kinds (0 placed, 1 refunded) (expected 0..1)", 2, 255),
}


@pytest.mark.parametrize("column", sorted(_ID_REFUSALS))
@given(data=st.data())
def test_an_id_outside_its_range_is_refused_naming_the_first_such_event(column, data):
    """Any value outside a column's range (just above it, the dtype's largest, a negative brand
    id), in any rows of a batch: the batch is refused whole, naming the first bad event's seq and
    value and the range expected, and nothing of it is folded."""
    line, size, largest = _ID_REFUSALS[column]
    outside = st.sampled_from([size, largest]) | st.integers(size, largest)
    if column == "brand":
        outside |= st.integers(-(2**31), -1)
    n = data.draw(st.integers(1, 12), label="events")
    bad = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1), label="bad rows"))
    values = data.draw(st.lists(outside, min_size=len(bad), max_size=len(bad)), label="values")
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, [W1], [1], [10], [0]))
    before = agg.state.copy()
    columns = make_batch(1, [W1 + 1 + i for i in range(n)], [i % 12 for i in range(n)], [10] * n,
                         [0] * n, [i % 2 for i in range(n)], [(i // 2) % 2 for i in range(n)]).columns()
    for row, value in zip(bad, values, strict=True):
        columns[column][row] = value
    with pytest.raises(BatchRejected) as err:
        agg.apply(OrderBatch(**columns))
    assert str(err.value) == line.format(seq=1 + bad[0], value=values[0])
    assert agg.state.equals(before)


@example([(0, 5), (1, 0)])  # a zero refund after a sound order: the sound order was named
@example([(0, 5), (0, 0)])  # a zero order after a sound one
@given(st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(-3, 3) | st.integers(-999, 999)),
                min_size=1, max_size=12))
def test_a_placed_order_needs_a_positive_amount_and_a_refund_a_negative_one(rows):
    """Any kinds and amounts, zero included: the batch is folded if every placed order's amount is
    positive and every refund's negative, else refused whole at the first row that is not, in
    its words. (Small amounts: an order of RMB 10 billion would cross 2 billion of the unit
    scenario's RMB 5 thresholds, one milestone each.)"""
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, [W1], [1], [10], [0]))
    before = agg.state.copy()
    kinds = [k for k, _ in rows]
    amounts = [a for _, a in rows]
    batch = make_batch(1, [W1 + 1 + i for i in range(len(rows))], [2] * len(rows), amounts, kinds)
    wrong = [i for i, (k, a) in enumerate(rows) if (a <= 0 if k == 0 else a >= 0)]
    if not wrong:
        agg.apply(batch)
        assert agg.state.gmv_minor == 10 + sum(amounts)
        assert (agg.state.orders, agg.state.refunds) == (1 + kinds.count(0), kinds.count(1))
        return
    i = wrong[0]
    with pytest.raises(BatchRejected) as err:
        agg.apply(batch)
    need = "a placed order needs a positive amount" if kinds[i] == 0 else "a refund needs a negative amount"
    assert str(err.value) == f"seq {1 + i}: amount_minor {amounts[i]}: {need}"
    assert agg.state.equals(before)


@pytest.mark.parametrize(("seqs", "message"), [
    ([1, 2, 4, 5], "seq 4: expected seq 3 (sequence numbers must be contiguous)"),
    ([1, 2, 3, 3], "seq 3: expected seq 4 (sequence numbers must be contiguous)")])
def test_a_gap_or_a_repeat_inside_a_batch_names_the_first_wrong_seq(seqs, message):
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, [W1], [1], [10], [0]))
    before = agg.state.copy()
    columns = make_batch(1, [W1 + 1 + i for i in range(4)], [0] * 4, [10] * 4, [0] * 4).columns()
    columns["seq"] = np.asarray(seqs, np.int64)
    with pytest.raises(BatchRejected) as err:
        agg.apply(OrderBatch(**columns))
    assert str(err.value) == message
    assert agg.state.equals(before)


@pytest.mark.parametrize(("offsets", "seq"), [
    ([11, 13, 12, 14], 3),  # backwards inside the batch
    ([5, 20, 21, 22], 1),  # the batch starts before the last event accepted (at 10)
    ([10, 12, 11, 13], 3)])  # starting at that very time is fine; then backwards
def test_time_going_backwards_names_the_first_event_out_of_order(offsets, seq):
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, [W1 + 10], [1], [10], [0]))
    before = agg.state.copy()
    with pytest.raises(BatchRejected) as err:
        agg.apply(make_batch(1, [W1 + t for t in offsets], [0] * 4, [10] * 4, [0] * 4))
    assert str(err.value) == f"seq {seq}: event time goes backwards (expected events in time order)"
    assert agg.state.equals(before)


def test_snapshot_round_trips():
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    agg.apply(make_batch(0, [W1 + i * 400_000 for i in range(8)], [0, 1, 2, 0, 1, 2, 0, 1],
                         [70, 80, 90, 70, 80, 90, 70, -20], [0] * 7 + [1]))
    restored = type(agg.state).from_snapshot(agg.state.to_snapshot("unit"), "snap", "unit")
    assert restored.equals(agg.state)
    assert restored.milestones and restored.milestones == agg.state.milestones


@pytest.mark.parametrize("grown", [False, True])
def test_more_crossing_brands_than_the_16_bit_table_holds_agree_with_the_reference(grown):
    """32,768 brands crossing in one batch, the first count a 16-bit table cannot number (1..n),
    take the boolean-mask path instead; ``grown``: the catalogue starts with two brands and the
    rest are added before the batch."""
    n = 1 << 15
    names = [f"b{i}" for i in range(n)]
    names[:2] = NAMES[:2]  # the time-to-value rule names Apple
    rng = np.random.default_rng(n)
    brands = rng.permutation(n)
    batch = make_batch(0, [W1 + i for i in range(n)], brands, rng.integers(100, 500, n), [0] * n)
    agg = Aggregator(UNIT, "unit", brand_names=names[:2] if grown else names)
    if grown:
        agg.add_brands(names[2:])
    ref = ReferenceFold(UNIT, names, "unit")
    found, expected = agg.apply(batch), ref.apply(batch)
    assert len(found) > n
    assert sorted(found, key=milestone_sort_key) == sorted(expected, key=milestone_sort_key)
    assert agg.state.brand_level.tolist() == ref.brand_level
    assert agg.state.race_count.tolist() == ref.race


def test_the_boolean_path_forgets_the_brands_of_the_batch_before():
    """Two batches in a row with 1 << 15 crossing brands each, the second's set shifted by one:
    Apple, a candidate in the first batch only, has the second batch's last order (one fen),
    which must not count toward the brand whose place it would take among its candidates."""
    n = 1 << 15
    names = [*NAMES[:2], *(f"b{i}" for i in range(2, n + 1))]
    first = make_batch(0, [W1 + i for i in range(n)], np.arange(n), [100] * n, [0] * n)
    second = make_batch(n, [W1 + n + i for i in range(n + 1)], [*range(1, n + 1), 0],
                        [*[100] * n, 1], [0] * (n + 1))
    agg, ref = Aggregator(UNIT, "unit", brand_names=names), ReferenceFold(UNIT, names, "unit")
    for batch in (first, second):
        found, expected = agg.apply(batch), ref.apply(batch)
        assert sorted(found, key=milestone_sort_key) == sorted(expected, key=milestone_sort_key)
    assert agg.state.brand_level.tolist() == ref.brand_level


def test_more_platform_and_region_cells_than_a_byte_holds_are_each_counted():
    """16 platforms by 20 regions: 320 (platform, region) cells, past the 256 the byte-wide cell
    numbers hold. Each cell gets one order of its own amount, and one refund."""
    mix = ('[[platforms]]\nname = "Tmall"\nshare = 0.5\n[[platforms]]\nname = "Taobao"\n'
           'share = 0.5\n[[regions]]\nname = "East"\nshare = 0.5\n[[regions]]\nname = "West"\n'
           'share = 0.5\n')
    assert mix in UNIT_TOML
    many = parse_scenario(UNIT_TOML.replace(mix, "".join(
        f'[[platforms]]\nname = "P{p}"\nshare = 0.0625\n' for p in range(16)) + "".join(
        f'[[regions]]\nname = "{"West" if g == 1 else f"R{g}"}"\nshare = 0.05\n'
        for g in range(20))), "many.toml")
    cells = [(p, g) for p in range(16) for g in range(20)]
    amounts = [1 + p * 100 + g for p, g in cells]
    batch = make_batch(0, [W1 + i for i in range(len(cells) + 1)], [3] * (len(cells) + 1),
                       [*amounts, -5], [0] * len(cells) + [1],
                       [p for p, _ in cells] + [15], [g for _, g in cells] + [19])
    agg = Aggregator(many, "many", brand_names=NAMES)
    agg.apply(batch)
    gmv, orders = np.zeros((16, 20), np.int64), np.zeros((16, 20), np.int64)
    for (p, g), amount in zip(cells, amounts, strict=True):
        gmv[p, g], orders[p, g] = amount, 1
    gmv[15, 19] -= 5
    assert agg.state.mix_gmv.tolist() == gmv.tolist()
    assert agg.state.mix_orders.tolist() == orders.tolist()


def test_finish_completes_the_open_second_once_even_the_festivals_first():
    """Second 0 is open when the stream ends: finish announces its record, once; the reference
    fold too (the property test's streams seldom stay in second 0)."""
    agg, ref = Aggregator(UNIT, "unit", brand_names=NAMES), ReferenceFold(UNIT, NAMES, "unit")
    for fold in (agg, ref):
        fold.apply(make_batch(0, [W1, W1 + 5], [3, 3], [1, 1], [0, 0]))
        assert [(m.kind, m.threshold_minor, m.value_minor, m.seq) for m in fold.finish()] == \
            [("rate_record", 0, 2, 1)]
        assert fold.finish() == []
    assert agg.state.open_second == -1 == ref.open_second
