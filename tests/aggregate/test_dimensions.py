"""Dimensions beyond brand: per-value totals and races against an independent per-event fold,
for any stream and any batch cuts; the snapshot round trip; a scenario without dimensions keeps
its state exactly."""

from __future__ import annotations

import bisect
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.aggregate import AggregateState, Aggregator, milestone_sort_key
from ticker.aggregate.dimensions import first_crossings, milestone_kind
from ticker.events import OrderBatch
from ticker.scenario import parse_scenario
from ticker.scenario.dimensions import DimensionTable, tables
from ticker.scenario.model import Scenario

from .test_aggregator import fold as aggregator_fold
from .test_aggregator import make_batch, streams
from .unit_scenario import NAMES, UNIT, UNIT_DIMS, UNIT_DIMS3, UNIT_DIMS_TOML

BASE_KINDS = {"gmv", "brand_gmv", "time_to_value", "rate_record"}
MASK = (1 << 64) - 1


def channel_of(table: DimensionTable, order_id: int) -> int:
    """The seller of an order id, in plain Python integers and a binary search: an independent
    statement of the hash and the CDF that the vectorised guide-table lookup must agree with."""
    x = (order_id & MASK) ^ int(table.salt)
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & MASK
    x ^= x >> 29
    x >>= 1
    return bisect.bisect_right([int(b) for b in table.bounds], x) - 1


def reference(stream: OrderBatch, scenario: Scenario = UNIT_DIMS) -> tuple[dict, list[tuple]]:
    """Per-value totals and every dimension milestone, one event at a time."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    races: list[tuple] = []
    seller_total: dict[tuple[str, int], int] = defaultdict(int)
    passed: dict[tuple[str, int], int] = defaultdict(int)
    ranks: dict[tuple[str, int], int] = defaultdict(int)
    brand_total = defaultdict(int)
    for i in range(len(stream)):
        amount, brand = int(stream.amount_minor[i]), int(stream.brand[i])
        placed = int(stream.kind[i]) == 0
        brand_total[brand] += amount
        for table in tables(scenario):
            d = table.dimension
            if table.per_order:
                code = channel_of(table, int(stream.order_id[i]))
                entity, total_key, subject = code, (d.name, code), table.names[code]
                seller_total[total_key] += amount
                total = seller_total[total_key]
                kind, racing, noun = milestone_kind(table), code != 0, d.label
            else:
                code = int(table.brand_value[brand])
                entity, subject, total = brand, NAMES[brand], brand_total[brand]
                kind, racing = milestone_kind(table, code), code != 0
                noun = d.values[code - 1].label if racing else ""
            totals[(d.name, table.names[code])][0] += amount
            totals[(d.name, table.names[code])][1] += placed
            while racing and passed[(d.name, entity)] < len(d.thresholds_minor) and \
                    total >= d.thresholds_minor[passed[(d.name, entity)]]:
                threshold = d.thresholds_minor[passed[(d.name, entity)]]
                passed[(d.name, entity)] += 1
                ranks[(kind, threshold)] += 1
                races.append((int(stream.seq[i]), kind, subject, threshold, total,
                              ranks[(kind, threshold)], int(stream.event_time[i]), noun))
    return dict(totals), races


def fold(stream: OrderBatch, cuts: list[int], scenario=UNIT_DIMS, *, grow: bool = False
         ) -> Aggregator:
    return aggregator_fold(stream, cuts, grow=grow, scenario=scenario)


@st.composite
def with_order_ids(draw):
    """A stream whose order ids come from a small pool of random 63-bit ids (so a refund often
    shares its order's id, as in a real stream) and random batch cuts."""
    stream, cuts = draw(streams())
    pool = draw(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=12))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=len(stream),
                          max_size=len(stream)))
    columns = stream.columns()
    columns["order_id"] = np.array([pool[p] for p in picks], np.int64)
    return OrderBatch(**columns), cuts


def found_races(agg: Aggregator) -> list[tuple]:
    """The fold's dimension milestones as the reference states them (the headline's noun)."""
    found = []
    for m in agg.milestones:
        if m.kind in BASE_KINDS:
            continue
        assert m.headline.startswith(f"{m.subject} is the "), m.headline
        noun = m.headline[len(m.subject):].split(" ", 4)[4].rsplit(" to pass ", 1)[0]  # past "is the 1st"
        found.append((m.seq, m.kind, m.subject, m.threshold_minor, m.value_minor, m.rank,
                      m.event_time_us, noun))
    return sorted(found)


@pytest.mark.parametrize("scenario", [UNIT_DIMS, UNIT_DIMS3], ids=["two", "three"])
@given(case=with_order_ids())
def test_totals_and_races_agree_with_an_independent_fold_for_any_cuts(scenario, case):
    stream, cuts = case
    agg = fold(stream, cuts, scenario)
    totals, races = reference(stream, scenario)
    for table in tables(scenario):
        name = table.dimension.name
        got = {(name, t.value): [t.gmv_minor, t.orders] for t in agg.dimension_totals(name)}
        assert all(type(t.gmv_minor) is int and type(t.orders) is int
                   for t in agg.dimension_totals(name))
        want = {(name, v): totals.get((name, v), [0, 0]) for v in table.names}
        assert got == want
    assert found_races(agg) == sorted(races)
    # the base fold is untouched by the dimensions: the same state as the scenario without
    plain = fold(stream, cuts, UNIT).state
    mine = agg.state.copy()
    mine.milestones = [m for m in mine.milestones if m.kind in BASE_KINDS]
    mine.dim_gmv = mine.dim_orders = mine.dim_level = mine.dim_race = None
    assert mine.equals(plain)


@pytest.mark.parametrize("scenario", [UNIT_DIMS, UNIT_DIMS3], ids=["two", "three"])
@given(case=with_order_ids(), at=st.integers(0, 300))
def test_a_catalogue_grown_on_the_way_or_on_resume_gives_the_same_totals_and_races(scenario, case, at):
    """``ticker import`` / ``follow`` add the brands first seen in the stream (``add_brands``),
    and a run resumed from a snapshot taken before the catalogue grew grows it on load: the
    dimensions' totals, races and state are those of a fold that knew every brand from the start."""
    stream, cuts = case
    whole, grown = fold(stream, cuts, scenario), fold(stream, cuts, scenario, grow=True)
    for table in tables(scenario):
        name = table.dimension.name
        assert grown.dimension_totals(name) == whole.dimension_totals(name)
    assert grown.state.milestones == whole.state.milestones
    at = min(at, len(stream))
    head = stream.slice(0, at)
    before = Aggregator(scenario, "unit", brand_names=NAMES[:int(head.brand.max(initial=0)) + 1])
    before.apply(head)
    snapshot = AggregateState.from_snapshot(before.state.to_snapshot("unit"), "snap", "unit")
    resumed = Aggregator(scenario, "unit", snapshot, brand_names=NAMES)
    resumed.apply(stream.slice(at, len(stream)))
    resumed.finish()
    assert resumed.state.differences(fold(stream, [at], scenario).state) == []


@pytest.mark.parametrize("short", [1, 2, 11])
@given(with_order_ids(), st.integers(0, 300))
def test_a_run_resumed_on_a_catalogue_grown_by_any_number_of_brands_is_the_whole_fold(short, case, at):
    """A snapshot taken when the catalogue had ``12 - short`` brands (the stream before it used
    only those), resumed with all 12: the state is that of one fold of the whole stream. One
    brand more is the common case of ``follow`` (a new seller between two snapshots)."""
    stream, _ = case
    at = min(at, len(stream))
    columns = stream.columns()
    columns["brand"][:at] %= 12 - short
    stream = OrderBatch(**columns)
    before = Aggregator(UNIT_DIMS, "unit", brand_names=NAMES[:12 - short])
    before.apply(stream.slice(0, at))
    snapshot = AggregateState.from_snapshot(before.state.to_snapshot("unit"), "snap", "unit")
    resumed = Aggregator(UNIT_DIMS, "unit", snapshot, brand_names=NAMES)
    assert resumed.brand_names == tuple(NAMES)
    resumed.apply(stream.slice(at, len(stream)))
    resumed.finish()
    assert resumed.state.differences(fold(stream, [at]).state) == []


def test_a_segment_race_and_a_brand_race_crossed_by_different_brands_in_one_batch():
    """With segment thresholds that are no brand thresholds, brand-3 passes RMB 1.00 (a brand
    race's, not a segment's) and then L'Oréal RMB 1.50 (a segment race's, not a brand race's) in
    the same batch: the aggregator's one gather of the batch's rows covers both kinds of
    candidate, and each race names its own order."""
    split = parse_scenario(UNIT_DIMS_TOML.replace('thresholds = ["1.00", "2.00"]',
                                                  'thresholds = ["1.50", "2.00"]'), "split.toml")
    w1 = split.windows[0].start_us
    stream = make_batch(0, [w1, w1 + 1, w1 + 2], [1, 2, 1], [100, 100, 50], [0, 0, 0])
    agg = fold(stream, [1], split)
    _, races = reference(stream, split)
    found = found_races(agg)
    assert found == sorted(races)
    assert (2, "tmall_global_brand_gmv", "L'Oréal", 150, 150, 1, w1 + 2, "Tmall Global brand") in found
    # a dimension milestone's id names the run, as the base kinds' do
    assert [m.id for m in agg.milestones if m.kind not in BASE_KINDS] == [
        "unit:tmall_global_brand_gmv:L'Oréal:150"]


def test_a_rate_record_announced_a_batch_late_takes_its_canonical_place():
    """L'Oréal's first order passes RMB 1.00 in the brand race and in its segment's race, and ends
    the batch and the festival's first second; the next batch opens the next second, so only
    then is that second a rate record, named by the same order. The kept milestones are in
    canonical order (brand race, rate record, then the dimension's), as a snapshot stores them."""
    w1 = UNIT_DIMS.windows[0].start_us
    stream = make_batch(0, [w1, w1 + 1_000_000], [1, 3], [100, 1], [0, 0])
    agg = fold(stream, [1])
    kinds = [(m.seq, m.kind) for m in agg.state.milestones]
    assert kinds[:3] == [(0, "brand_gmv"), (0, "rate_record"), (0, "tmall_global_brand_gmv")]
    assert agg.state.milestones == sorted(agg.state.milestones, key=milestone_sort_key)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=200))
def test_the_vectorised_seller_lookup_is_the_binary_search(ids):
    table = next(t for t in tables(UNIT_DIMS) if t.per_order)
    codes = table.order_codes(np.array(ids, np.int64))
    assert codes.tolist() == [channel_of(table, i) for i in ids]


@given(with_order_ids())
def test_snapshot_round_trips_the_dimension_state(case):
    stream, cuts = case
    agg = fold(stream, cuts)
    back = AggregateState.from_snapshot(agg.state.to_snapshot("unit"), "snap", "unit")
    assert back.equals(agg.state)
    # a fold resumed from the snapshot continues exactly
    resumed = Aggregator(UNIT_DIMS, "unit", back, brand_names=NAMES)
    assert resumed.dimension_totals("channel") == agg.dimension_totals("channel")


def test_a_scenario_without_dimensions_has_no_dimension_state() -> None:
    agg = Aggregator(UNIT, "unit", brand_names=NAMES)
    assert agg.dims is None
    assert all(getattr(agg.state, f) is None for f in ("dim_gmv", "dim_orders", "dim_level",
                                                         "dim_race"))
    arrays, _ = agg.state.parts()
    assert not [k for k in arrays if k.startswith("dim_")]
    # asking for a dimension the scenario does not declare names it, with or without dimensions
    for scenario in (UNIT, UNIT_DIMS):
        with pytest.raises(KeyError, match="'segmnet'"):
            Aggregator(scenario, "unit", brand_names=NAMES).dimension_totals("segmnet")


@st.composite
def crossing_cases(draw):
    """A batch's entity and amount columns (refunds included), totals before it, levels."""
    n = draw(st.integers(1, 400))
    entities = draw(st.integers(1, 6))
    codes = np.array(draw(st.lists(st.integers(0, entities - 1), min_size=n, max_size=n)), np.int64)
    amount = np.array(draw(st.lists(st.integers(-50, 100).filter(bool), min_size=n, max_size=n)),
                      np.int64)
    thresholds = np.cumsum(draw(st.lists(st.integers(1, 3000), min_size=1, max_size=3)))
    level = np.array(draw(st.lists(st.integers(0, len(thresholds)), min_size=entities,
                                   max_size=entities)), np.int8)
    # a total before the batch below the next threshold it has not passed (never reached it)
    below = np.append(thresholds, 10**9)[level]
    before = np.array([draw(st.integers(0, int(b) - 1)) for b in below], np.int64)
    return codes, amount, thresholds.astype(np.int64), level, before


@given(crossing_cases())
def test_the_block_search_finds_each_first_crossing_row_by_row(case):
    """first_crossings (blocks of rows, only some re-summed) against a row-by-row running total."""
    codes, amount, thresholds, level, before = case
    after = before.copy()
    np.add.at(after, codes, amount)
    expected, running, passed = [], before.copy(), level.astype(int).copy()
    for row, (code, value) in enumerate(zip(codes.tolist(), amount.tolist(), strict=True)):
        running[code] += value
        while passed[code] < len(thresholds) and running[code] >= thresholds[passed[code]]:
            expected.append((row, int(passed[code]), code, int(running[code])))
            passed[code] += 1
    candidates = np.arange(len(before))
    got = first_crossings(codes, amount, candidates, after, level, thresholds)
    assert got == expected
    assert level.tolist() == passed.tolist()


@given(st.lists(st.tuples(st.integers(0, 13), st.integers(1, 500)), min_size=1, max_size=40))
def test_brands_beyond_the_catalogue_count_as_the_rest_of_a_per_brand_dimension(orders):
    """An ingested stream can name brands the scenario's catalogue does not have (``follow``
    adds them after its 12): a per-brand dimension counts them under its rest ("domestic"), and
    they race in no value's race."""
    names = [*NAMES, "newcomer-a", "newcomer-b"]
    agg = Aggregator(UNIT_DIMS, "unit", brand_names=names)
    w1 = UNIT_DIMS.windows[0].start_us
    brands, amounts = [b for b, _ in orders], [a for _, a in orders]
    agg.apply(make_batch(0, [w1 + i for i in range(len(orders))], brands, amounts, [0] * len(orders)))
    segment = next(t for t in tables(UNIT_DIMS) if t.dimension.name == "segment")
    want = {v: [0, 0] for v in segment.names}
    for brand, amount in orders:
        value = segment.names[int(segment.brand_value[brand]) if brand < len(NAMES) else 0]
        want[value][0] += amount
        want[value][1] += 1
    assert {t.value: [t.gmv_minor, t.orders] for t in agg.dimension_totals("segment")} == want
    raced = {m.subject for m in agg.milestones if m.kind.endswith("_brand_gmv") and m.kind != "brand_gmv"}
    assert not raced & {"newcomer-a", "newcomer-b"}


@pytest.mark.parametrize("k", [32_767, 32_768, 40_000])
def test_first_crossings_with_as_many_candidates_as_a_16_bit_number_holds_and_more(k: int):
    """Candidates are numbered in 16 bits while they fit (up to 32,767) and in 32 bits past
    that: with k sellers each selling 1, then 2 (in that order), every one of them passes the
    thresholds 1 and 3 at its own rows."""
    codes = np.concatenate([np.arange(k), np.arange(k)]).astype(np.int32)
    amount = np.concatenate([np.ones(k, np.int64), np.full(k, 2, np.int64)])
    totals = np.full(k, 3, np.int64)  # after the batch
    level = np.zeros(k, np.int8)
    found = first_crossings(codes, amount, np.arange(k), totals, level, np.array([1, 3], np.int64))
    assert found == [(e, 0, e, 1) for e in range(k)] + [(k + e, 1, e, 3) for e in range(k)]
    assert (level == 2).all()
